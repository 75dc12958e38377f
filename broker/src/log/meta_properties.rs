//! `meta.properties`: which cluster and node a log dir belongs to, as Kafka
//! writes it (version 1: `cluster.id`, `node.id`, `directory.id`).
//!
//! Written on a log dir's first start and checked on every later one, so a
//! reused volume (a pod's claim bound to another cluster, two brokers given one
//! directory) refuses to start instead of joining the wrong cluster as the wrong
//! broker with someone else's data.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

/// The file's name in each log dir.
pub const FILE: &str = "meta.properties";

/// Why a log dir cannot be used by this broker.
#[derive(Debug, thiserror::Error)]
pub enum MetaPropertiesError {
    #[error("cannot read or write {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} is malformed: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error(
        "{path} says this log dir belongs to cluster `{found}`, but cluster.id is `{configured}`: \
         a volume of another cluster must not join this one (give it an empty log dir, or the right cluster.id)"
    )]
    WrongCluster {
        path: PathBuf,
        found: String,
        configured: String,
    },
    #[error(
        "{path} says this log dir belongs to node {found}, but node.id is {configured}: \
         one broker's data must not be served as another's (give it its own log dir)"
    )]
    WrongNode { path: PathBuf, found: i32, configured: i32 },
}

/// The identity recorded in a log dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaProperties {
    pub cluster_id: String,
    pub node_id: i32,
    /// Kafka's per-directory id (KIP-858), random at first start.
    pub directory_id: String,
}

impl MetaProperties {
    fn render(&self) -> String {
        format!(
            "#\n# Written by skein-broker at this log dir's first start; checked at every start.\n#\n\
             version=1\ncluster.id={}\nnode.id={}\ndirectory.id={}\n",
            self.cluster_id, self.node_id, self.directory_id
        )
    }

    fn parse(path: &Path, text: &str) -> Result<MetaProperties, MetaPropertiesError> {
        let bad = |reason: String| MetaPropertiesError::Malformed {
            path: path.to_path_buf(),
            reason,
        };
        let mut props = BTreeMap::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| bad(format!("`{line}` is not key=value")))?;
            props.insert(k.trim(), v.trim());
        }
        match props.get("version") {
            Some(&"1") => {}
            Some(v) => return Err(bad(format!("version {v}; this broker reads version 1 (KRaft)"))),
            None => return Err(bad("no version".into())),
        }
        let cluster_id = props.get("cluster.id").ok_or_else(|| bad("no cluster.id".into()))?;
        let node_id = props
            .get("node.id")
            .ok_or_else(|| bad("no node.id".into()))?
            .parse()
            .map_err(|_| bad("node.id is not an integer".into()))?;
        Ok(MetaProperties {
            cluster_id: cluster_id.to_string(),
            node_id,
            directory_id: props.get("directory.id").unwrap_or(&"").to_string(),
        })
    }
}

/// Checks `dir`'s `meta.properties` against this broker's cluster and node id,
/// writing it if the dir has none (its first start).
pub fn ensure(dir: &Path, cluster_id: &str, node_id: i32) -> Result<MetaProperties, MetaPropertiesError> {
    let path = dir.join(FILE);
    let io_err = |source| MetaPropertiesError::Io {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let found = MetaProperties::parse(&path, &text)?;
            if found.cluster_id != cluster_id {
                return Err(MetaPropertiesError::WrongCluster {
                    path,
                    found: found.cluster_id,
                    configured: cluster_id.to_string(),
                });
            }
            if found.node_id != node_id {
                return Err(MetaPropertiesError::WrongNode {
                    path,
                    found: found.node_id,
                    configured: node_id,
                });
            }
            Ok(found)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(io_err)?;
            let meta = MetaProperties {
                cluster_id: cluster_id.to_string(),
                node_id,
                directory_id: uuid::Uuid::new_v4().simple().to_string(),
            };
            crate::atomic_file::replace(&path, meta.render().as_bytes()).map_err(io_err)?;
            Ok(meta)
        }
        Err(e) => Err(io_err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_dir_is_claimed_on_first_start_and_kept_by_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let first = ensure(dir.path(), "c1", 3).unwrap();
        let again = ensure(dir.path(), "c1", 3).unwrap();
        assert_eq!(first, again);
        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert!(text.contains("version=1\ncluster.id=c1\nnode.id=3\n"), "{text}");
    }

    #[test]
    fn a_log_dir_of_another_cluster_or_node_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        ensure(dir.path(), "c1", 3).unwrap();
        let e = ensure(dir.path(), "c2", 3).unwrap_err();
        assert!(matches!(e, MetaPropertiesError::WrongCluster { .. }), "{e}");
        assert!(e
            .to_string()
            .contains("belongs to cluster `c1`, but cluster.id is `c2`"));
        let e = ensure(dir.path(), "c1", 4).unwrap_err();
        assert!(
            matches!(
                e,
                MetaPropertiesError::WrongNode {
                    found: 3,
                    configured: 4,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn a_malformed_meta_properties_is_an_error_not_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        for (text, why) in [
            ("version=0\ncluster.id=c\nbroker.id=1\n", "version 0"),
            ("cluster.id=c\nnode.id=1\n", "no version"),
            ("version=1\nnode.id=1\n", "no cluster.id"),
            ("version=1\ncluster.id=c\nnode.id=one\n", "not an integer"),
            ("version=1\ngarbage\n", "not key=value"),
        ] {
            std::fs::write(dir.path().join(FILE), text).unwrap();
            let e = ensure(dir.path(), "c", 1).unwrap_err().to_string();
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }
}
