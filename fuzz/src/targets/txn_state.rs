//! Bytes as what transactions read back at start-up: a `__transaction_state`
//! record (key and value, as the coordinator's load decodes them), a
//! `.txnindex` file and a producer-state snapshot (as a log's open reads them).

use skein_broker::log::producer_state::ProducerStateManager;
use skein_broker::log::txn_index;
use skein_broker::txn::log::{decode_key, decode_value};

/// One input: the first byte picks the reader, the second splits key from value.
pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            let Some((&split, rest)) = rest.split_first() else {
                return;
            };
            let (key, value) = rest.split_at((split as usize).min(rest.len()));
            if let Some(id) = decode_key(key) {
                let _ = decode_value(&id, value);
            }
        }
        1 => {
            let _ = txn_index::parse(rest, 0, i64::MAX);
        }
        _ => {
            let _ = ProducerStateManager::decode(rest);
        }
    }
}
