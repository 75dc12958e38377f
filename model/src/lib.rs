//! Skein's model: the rules the broker, the admin client, the command-line tool
//! and the operator must agree on, as pure functions and types.
//!
//! It owns the `(i+j) mod n` replica placement, the reassignment plan that moves
//! a cluster to a new broker set, Kafka's topic-name rules, and the config
//! definitions with their validation. It must never do I/O, spawn tasks or
//! depend on a codec or a runtime: everything here is driven by unit and
//! property tests alone. The broker's CreateTopics, CreatePartitions and
//! controller call it; so does `skeinctl reassign plan`. The metadata
//! quorum's voter changes (KIP-853) are planned here too (`voters`).

pub mod config;
pub mod placement;
pub mod plan;
pub mod topic_config;
pub mod topic_name;
pub mod voters;
