//! Transactions (KIP-98), modelled on `group/`: the pure state machine of one
//! transactional id (`state`); the records of `__transaction_state` (`log`);
//! the coordinator that persists and completes transactions (`coordinator`).

pub mod coordinator;
pub mod log;
pub mod state;

pub use coordinator::{Marker, TransactionCoordinator, TxnHost};
pub use log::TRANSACTION_STATE_TOPIC;
pub use state::{InitOutcome, TxnError, TxnMetadata, TxnState, TV_1, TV_2};
