//! Replication: followers pull from their leader with Fetch (replica id set),
//! the leader tracks each follower's log end offset, and the high watermark is
//! the smallest log end over the ISR (`isr`, pure). Each broker runs one
//! [`fetcher`] task per leader it follows; a new leader epoch makes a follower
//! truncate its divergent tail (OffsetForLeaderEpoch) before it fetches again.
//! The leader's side ([`leader`]) records each follower fetch and throttles the
//! replicas a reassignment adds; the Fetch handler only calls it.
//! ISR changes are proposed to the controller, never applied locally.

pub mod fetcher;
mod host;
pub mod isr;
pub mod leader;
pub mod throttle;

pub use host::{Replica, ReplicaHost};
