//! Skein's web console: a read-only view of Kafka clusters, served by the
//! operator (every cluster it manages, with their conditions and Events) and
//! by `skeinctl console` (any cluster, for local use). The pages are plain
//! HTML, CSS and JavaScript embedded in the binary: no build step, no
//! framework, nothing fetched from elsewhere; they poll the JSON of
//! `server.rs` every two seconds.

pub mod collect;
pub mod server;
pub mod view;

pub use server::{router, ClusterEntry, SingleCluster, Source};
