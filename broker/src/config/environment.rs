//! Configuration from a container's environment, with no shell in the image:
//! `SKEIN_*` variables (as Kafka's images read `KAFKA_*`), and the `${HOSTNAME}`
//! and `${ORDINAL}` placeholders that let one StatefulSet pod template give each
//! pod its own `node.id` and advertised address.

use super::ConfigError;

/// The prefix of environment variables that set properties.
pub const PREFIX: &str = "SKEIN_";

/// `SKEIN_*` variables that are not properties: the paths and knobs the
/// project's own tools and tests pass to one another (the brokers they start
/// inherit them).
const NOT_PROPERTIES: &[&str] = &[
    "SKEIN_BROKER_BIN",
    "SKEIN_BROKER_IMAGE",
    "SKEIN_BOOTSTRAP_SERVER",
    "SKEIN_CACHE",
    "SKEIN_FUZZ_SEED",
    "SKEIN_IMAGE",
    "SKEIN_OPERATOR_BIN",
    "SKEIN_OPERATOR_NAMESPACES",
];

/// The property an environment variable names, Kafka-image style: after the
/// prefix, `_` is `.`, `__` is `_` and `___` is `-`; the rest is lower-cased.
/// `SKEIN_LOG_DIRS` is `log.dirs`. None for variables that are not properties.
pub fn property_of(var: &str) -> Option<String> {
    let rest = var.strip_prefix(PREFIX)?;
    if rest.is_empty() || NOT_PROPERTIES.contains(&var) {
        return None;
    }
    let mut out = String::with_capacity(rest.len());
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '_' {
            out.push(c.to_ascii_lowercase());
            continue;
        }
        let mut run = 1;
        while chars.peek() == Some(&'_') && run < 3 {
            chars.next();
            run += 1;
        }
        out.push(match run {
            1 => '.',
            2 => '_',
            _ => '-',
        });
    }
    Some(out)
}

/// The host's name and, for a StatefulSet pod (`NAME-N`), its ordinal N.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub name: String,
}

impl Host {
    /// This machine's (or pod's) host name, from the kernel.
    pub fn current() -> Host {
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_default();
        Host { name }
    }

    /// The trailing `-N` of the host name: a StatefulSet pod's ordinal.
    pub fn ordinal(&self) -> Option<u32> {
        let (_, n) = self.name.rsplit_once('-')?;
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        n.parse().ok()
    }

    /// `value` with `${HOSTNAME}` and `${ORDINAL}` replaced; an error names the
    /// property when the host name has no ordinal to give.
    pub fn substitute(&self, key: &str, value: &str) -> Result<String, ConfigError> {
        let mut out = value.replace("${HOSTNAME}", &self.name);
        if out.contains("${ORDINAL}") {
            let ordinal = self.ordinal().ok_or_else(|| ConfigError::Invalid {
                key: key.to_string(),
                value: value.to_string(),
                reason: format!(
                    "${{ORDINAL}} needs a host name ending in -N, as a StatefulSet pod's does; this host is `{}`",
                    self.name
                ),
            })?;
            out = out.replace("${ORDINAL}", &ordinal.to_string());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_name_properties_as_kafka_images_do() {
        assert_eq!(property_of("SKEIN_LOG_DIRS").as_deref(), Some("log.dirs"));
        assert_eq!(property_of("SKEIN_NODE_ID").as_deref(), Some("node.id"));
        assert_eq!(property_of("SKEIN_A__B___C_D").as_deref(), Some("a_b-c.d"));
        assert_eq!(property_of("SKEIN_BROKER_BIN"), None);
        assert_eq!(property_of("SKEIN_"), None);
        assert_eq!(property_of("KAFKA_LOG_DIRS"), None);
    }

    #[test]
    fn the_ordinal_is_the_trailing_number_of_a_statefulset_pod_name() {
        let host = |n: &str| Host { name: n.into() };
        assert_eq!(host("my-cluster-broker-12").ordinal(), Some(12));
        assert_eq!(host("my-cluster-broker").ordinal(), None);
        assert_eq!(host("broker-").ordinal(), None);
        assert_eq!(host("laptop").ordinal(), None);
        let h = host("kc-broker-2");
        assert_eq!(h.substitute("node.id", "${ORDINAL}").unwrap(), "2");
        assert_eq!(
            h.substitute("advertised.listeners", "INTERNAL://${HOSTNAME}.kc-brokers:9092")
                .unwrap(),
            "INTERNAL://kc-broker-2.kc-brokers:9092"
        );
        let err = host("laptop")
            .substitute("node.id", "${ORDINAL}")
            .unwrap_err()
            .to_string();
        assert!(err.contains("this host is `laptop`"), "{err}");
    }
}
