//! Certificates: the cluster CA (signs the brokers' server certificates) and
//! the clients CA (signs users' certificates), issued and renewed so that a
//! connected client is never broken and nothing restarts.
//!
//! `plan` decides (pure, with the clock passed in) what to create, issue and
//! drop; the reconcilers read the Secrets and carry the steps out.

// Until the listeners change wires these into the KafkaCluster reconcile (issue
// 23), only their tests call them.
#![allow(dead_code)]

pub mod issue;
pub mod plan;
