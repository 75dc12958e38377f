//! Transactions (KIP-98), modelled on `group/`: the pure state machine of one
//! transactional id (`state`); the coordinator, `__transaction_state` and the
//! markers build on it.

pub mod state;

pub use state::{InitOutcome, TxnError, TxnMetadata, TxnState};
