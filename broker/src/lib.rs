//! Skein's broker: a Kafka-compatible server.
//!
//! `config` holds Kafka's properties; `log` the storage of one partition;
//! `cluster` the topics and partitions this broker serves; `group` consumer
//! groups and committed offsets; `protocol` the wire
//! protocol, one handler per API; `server` the listener and connections.

pub mod atomic_file;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod controller;
pub mod coordinator;
pub mod error;
pub mod group;
pub mod http;
pub mod log;
pub mod metrics;
pub mod protocol;
pub mod quota;
pub mod replication;
pub mod security;
pub mod server;
pub mod txn;
