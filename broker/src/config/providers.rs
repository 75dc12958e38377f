//! Kafka's config providers (KIP-297, and KIP-421 for broker configs): a value
//! `${NAME:path:key}` (or `${NAME:key}`) is replaced at start-up by what the
//! provider NAME, declared by `config.providers=NAME,...` and
//! `config.providers.NAME.class=...`, finds there. This is how a value that only
//! exists at run time reaches a config file written ahead of it: a broker pod's
//! init container writes the node's zone to a file, and `broker.rack` reads it.
//!
//! Kafka's three classes are served:
//! - `org.apache.kafka.common.config.provider.FileConfigProvider`:
//!   `${file:/path/to/file.properties:key}`, a key of a properties file;
//! - `org.apache.kafka.common.config.provider.DirectoryConfigProvider`:
//!   `${dir:/path/to/dir:name}`, the content of the file `name` in a directory
//!   (surrounding whitespace trimmed, as broker config values are);
//! - `org.apache.kafka.common.config.provider.EnvVarConfigProvider`: `${env:NAME}`.
//!
//! `config.providers.NAME.param.allowed.paths` (comma-separated) limits a file
//! or directory provider to those trees, as Kafka's KIP-993 does. A value names
//! a provider that is not declared: left as it is (as Kafka does). A file that
//! is missing or a key it lacks: a config error naming both, never the
//! contents (a resolved value may be a password).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use super::ConfigError;

pub const FILE: &str = "org.apache.kafka.common.config.provider.FileConfigProvider";
pub const DIRECTORY: &str = "org.apache.kafka.common.config.provider.DirectoryConfigProvider";
pub const ENV: &str = "org.apache.kafka.common.config.provider.EnvVarConfigProvider";

/// The keys that declare providers (`config.providers`, `config.providers.*`).
pub fn is_provider_key(key: &str) -> bool {
    key == "config.providers" || key.starts_with("config.providers.")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Directory,
    Env,
}

struct Provider {
    kind: Kind,
    allowed: Option<Vec<PathBuf>>,
}

/// Replaces every `${NAME:...}` of a declared provider in `values`, and takes
/// the provider declarations out (they configure this step, not the broker).
/// `env` is the process environment for the env provider.
pub fn resolve(values: &mut BTreeMap<String, String>, env: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    let declared = values.get("config.providers").cloned().unwrap_or_default();
    let mut providers = BTreeMap::new();
    for name in declared.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let class_key = format!("config.providers.{name}.class");
        let class = values
            .get(&class_key)
            .map(|c| c.trim().to_string())
            .ok_or_else(|| ConfigError::Invalid {
                key: "config.providers".into(),
                value: declared.clone(),
                reason: format!("provider `{name}` has no {class_key}"),
            })?;
        let kind = match class.as_str() {
            FILE => Kind::File,
            DIRECTORY => Kind::Directory,
            ENV => Kind::Env,
            _ => {
                return Err(ConfigError::Invalid {
                    key: class_key,
                    value: class,
                    reason: format!("Skein serves Kafka's {FILE}, {DIRECTORY} and {ENV}"),
                })
            }
        };
        let allowed = values
            .get(&format!("config.providers.{name}.param.allowed.paths"))
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(PathBuf::from)
                    .collect()
            });
        providers.insert(name.to_string(), Provider { kind, allowed });
    }
    values.retain(|k, _| !is_provider_key(k));
    if providers.is_empty() {
        return Ok(());
    }
    for (key, value) in values.iter_mut() {
        *value = substitute(key, value, &providers, env)?;
    }
    Ok(())
}

/// `value` with each `${NAME:[path:]key}` of a known provider replaced.
fn substitute(
    key: &str,
    value: &str,
    providers: &BTreeMap<String, Provider>,
    env: &BTreeMap<String, String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let inner = &after[..end];
        match reference(inner, providers) {
            Some((provider, path, name)) => out.push_str(&lookup(key, provider, path, name, env)?),
            None => out.push_str(&rest[start..start + 2 + end + 1]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `NAME:path:key` or `NAME:key` of a declared provider.
fn reference<'a>(
    inner: &'a str,
    providers: &'a BTreeMap<String, Provider>,
) -> Option<(&'a Provider, Option<&'a str>, &'a str)> {
    let (name, rest) = inner.split_once(':')?;
    let provider = providers.get(name)?;
    // As Kafka's pattern: the path runs to the last colon (a path may hold none
    // on Linux in practice; a key never does).
    Some(match rest.rsplit_once(':') {
        Some((path, key)) => (provider, Some(path), key),
        None => (provider, None, rest),
    })
}

fn lookup(
    key: &str,
    provider: &Provider,
    path: Option<&str>,
    name: &str,
    env: &BTreeMap<String, String>,
) -> Result<String, ConfigError> {
    let fail = |reason: String| ConfigError::Invalid {
        key: key.to_string(),
        // The reference, not what it resolves to.
        value: format!("${{...:{}:{name}}}", path.unwrap_or("")),
        reason,
    };
    if provider.kind == Kind::Env {
        return env
            .get(name)
            .cloned()
            .ok_or_else(|| fail(format!("the environment has no variable {name}")));
    }
    let path = path.ok_or_else(|| fail("a file or directory provider needs ${NAME:path:key}".into()))?;
    let path = Path::new(path);
    if path.components().any(|c| c == Component::ParentDir) || !path.is_absolute() {
        return Err(fail("the path must be absolute, without `..`".into()));
    }
    if let Some(allowed) = &provider.allowed {
        if !allowed.iter().any(|a| path.starts_with(a)) {
            return Err(fail("the path is outside the provider's allowed.paths".into()));
        }
    }
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| ConfigError::Io {
            path: p.display().to_string(),
            reason: e.to_string(),
        })
    };
    match provider.kind {
        Kind::Directory => {
            if name.contains('/') || name == ".." || name.is_empty() {
                return Err(fail("a directory provider's key is a file name".into()));
            }
            Ok(read(&path.join(name))?.trim().to_string())
        }
        Kind::File => {
            let text = read(path)?;
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
                .filter_map(|l| l.split_once('='))
                .find(|(k, _)| k.trim() == name)
                .map(|(_, v)| v.trim().to_string())
                .ok_or_else(|| fail(format!("{} has no key {name}", path.display())))
        }
        Kind::Env => unreachable!("answered above"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_directory_provider_reads_a_file_per_key_and_the_declarations_leave() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rack"), "zone-b\n").unwrap();
        std::fs::write(dir.path().join("external"), "10.0.0.7:31234").unwrap();
        let d = dir.path().display();
        let mut v = values(&[
            ("config.providers", "dir"),
            ("config.providers.dir.class", DIRECTORY),
            ("broker.rack", &format!("${{dir:{d}:rack}}")),
            (
                "advertised.listeners",
                &format!("EXTERNAL://${{dir:{d}:external}},PLAIN://h:9092"),
            ),
            ("other", "${unknown:x:y} and ${HOSTNAME}"),
        ]);
        resolve(&mut v, &BTreeMap::new()).unwrap();
        assert_eq!(v["broker.rack"], "zone-b");
        assert_eq!(v["advertised.listeners"], "EXTERNAL://10.0.0.7:31234,PLAIN://h:9092");
        assert_eq!(v["other"], "${unknown:x:y} and ${HOSTNAME}");
        assert!(!v.keys().any(|k| is_provider_key(k)));
    }

    #[test]
    fn file_and_env_providers_read_a_properties_key_and_a_variable() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.properties");
        std::fs::write(&f, "# c\nssl.key.password = s3cret\nrack=r1\n").unwrap();
        let mut v = values(&[
            ("config.providers", "file, env"),
            ("config.providers.file.class", FILE),
            ("config.providers.env.class", ENV),
            (
                "ssl.key.password",
                &format!("${{file:{}:ssl.key.password}}", f.display()),
            ),
            ("broker.rack", "${env:ZONE}"),
        ]);
        let env = values(&[("ZONE", "z9")]);
        resolve(&mut v, &env).unwrap();
        assert_eq!(v["ssl.key.password"], "s3cret");
        assert_eq!(v["broker.rack"], "z9");
    }

    #[test]
    fn each_bad_reference_is_a_config_error_that_never_shows_contents() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "s3cret").unwrap();
        let d = dir.path().display().to_string();
        let run = |pairs: &[(&str, &str)]| {
            let mut v = values(pairs);
            resolve(&mut v, &BTreeMap::new()).map(|_| v)
        };
        let dir_provider = |value: &str, allowed: Option<&str>| {
            let mut p = vec![
                ("config.providers", "dir"),
                ("config.providers.dir.class", DIRECTORY),
                ("x", value),
            ];
            if let Some(a) = allowed {
                p.push(("config.providers.dir.param.allowed.paths", a));
            }
            run(&p.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>())
        };
        type Resolved = Result<BTreeMap<String, String>, ConfigError>;
        let cases: Vec<(&str, Resolved, &str)> = vec![
            (
                "missing file",
                dir_provider(&format!("${{dir:{d}:rack}}"), None),
                "cannot read",
            ),
            ("relative path", dir_provider("${dir:etc:rack}", None), "absolute"),
            (
                "parent dir",
                dir_provider(&format!("${{dir:{d}/..:x}}"), None),
                "absolute",
            ),
            (
                "key with slash",
                dir_provider(&format!("${{dir:{d}:a/b}}"), None),
                "file name",
            ),
            (
                "outside allowed.paths",
                dir_provider(&format!("${{dir:{d}:pw}}"), Some("/nowhere")),
                "allowed.paths",
            ),
            ("no path", dir_provider("${dir:pw}", None), "path:key"),
            (
                "undeclared class",
                run(&[("config.providers", "vault")]),
                "config.providers.vault.class",
            ),
            (
                "unknown class",
                run(&[
                    ("config.providers", "v"),
                    ("config.providers.v.class", "com.example.Vault"),
                ]),
                "Skein serves",
            ),
            (
                "unset variable",
                run(&[
                    ("config.providers", "env"),
                    ("config.providers.env.class", ENV),
                    ("x", "${env:NOPE}"),
                ]),
                "NOPE",
            ),
        ];
        for (name, got, want) in cases {
            let err = got.expect_err(name).to_string();
            assert!(err.contains(want), "{name}: {err}");
            assert!(!err.contains("s3cret"), "{name}: {err}");
        }
        // Allowed: inside the allowed tree.
        let ok = dir_provider(&format!("${{dir:{d}:pw}}"), Some(&d)).unwrap();
        assert_eq!(ok["x"], "s3cret");
    }

    #[test]
    fn an_unclosed_reference_is_left_as_written() {
        let mut v = values(&[
            ("config.providers", "env"),
            ("config.providers.env.class", ENV),
            ("x", "a ${env:Z"),
        ]);
        resolve(&mut v, &BTreeMap::new()).unwrap();
        assert_eq!(v["x"], "a ${env:Z");
    }
}
