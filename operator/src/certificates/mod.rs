//! Certificates: the cluster CA (signs the brokers' server certificates) and
//! the clients CA (signs users' certificates), issued and renewed so that a
//! connected client is never broken and nothing restarts.
//!
//! `plan` decides (pure, with the clock passed in) what to create, issue and
//! drop; the reconcilers read the Secrets and carry the steps out.

pub mod issue;
pub mod material;
pub mod plan;
