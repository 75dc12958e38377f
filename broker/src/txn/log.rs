//! Records of `__transaction_state`, in Kafka's own schemas
//! (TransactionLogKey v0: the transactional id; TransactionLogValue v0:
//! producer id and epoch, timeout, state, partitions, timestamps), so Kafka's
//! tools can read the topic. A tombstone removes an expired id. Pure encoding
//! and decoding: every length and count read is checked against what is left.

use std::collections::BTreeSet;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::state::{TxnMetadata, TxnState, NO_EPOCH, NO_PRODUCER_ID};
use crate::group::offsets::{get_str, put_str};

/// The internal topic holding transactions' state.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

pub fn key(transactional_id: &str) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    put_str(&mut b, transactional_id);
    b.freeze()
}

pub fn value(m: &TxnMetadata) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i64(m.producer_id);
    b.put_i16(m.producer_epoch);
    b.put_i32(m.timeout_ms);
    b.put_i8(m.state.id());
    // Partitions grouped by topic.
    let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
    for (t, p) in &m.partitions {
        match topics.last_mut() {
            Some((last, ps)) if *last == t.as_str() => ps.push(*p),
            _ => topics.push((t.as_str(), vec![*p])),
        }
    }
    b.put_i32(topics.len() as i32);
    for (t, ps) in topics {
        put_str(&mut b, t);
        b.put_i32(ps.len() as i32);
        for p in ps {
            b.put_i32(p);
        }
    }
    b.put_i64(m.last_update_ms);
    b.put_i64(m.start_ms);
    b.freeze()
}

/// The transactional id of a record key; None for anything unrecognised.
pub fn decode_key(mut k: &[u8]) -> Option<String> {
    if k.remaining() < 2 || k.get_i16() != 0 {
        return None;
    }
    get_str(&mut k)
}

/// A record value (None for a damaged one or another version).
pub fn decode_value(transactional_id: &str, mut v: &[u8]) -> Option<TxnMetadata> {
    if v.remaining() < 2 || v.get_i16() != 0 || v.remaining() < 8 + 2 + 4 + 1 + 4 {
        return None;
    }
    let producer_id = v.get_i64();
    let producer_epoch = v.get_i16();
    let timeout_ms = v.get_i32();
    let state = TxnState::from_id(v.get_i8())?;
    let topics = v.get_i32();
    let mut partitions = BTreeSet::new();
    if topics > 0 {
        // A topic takes at least 6 bytes (name length and partition count).
        if topics as usize > v.remaining() / 6 {
            return None;
        }
        for _ in 0..topics {
            let topic = get_str(&mut v)?;
            if v.remaining() < 4 {
                return None;
            }
            let n = v.get_i32();
            if n < 0 || n as usize > v.remaining() / 4 {
                return None;
            }
            for _ in 0..n {
                partitions.insert((topic.clone(), v.get_i32()));
            }
        }
    }
    if v.remaining() < 16 {
        return None;
    }
    Some(TxnMetadata {
        transactional_id: transactional_id.to_string(),
        producer_id,
        last_producer_id: NO_PRODUCER_ID,
        producer_epoch,
        last_producer_epoch: NO_EPOCH,
        timeout_ms,
        state,
        partitions,
        last_update_ms: v.get_i64(),
        start_ms: v.get_i64(),
    })
}

/// The `__transaction_state` partition of a transactional id: Kafka's
/// `abs(transactionalId.hashCode()) % partitions`, as for groups.
pub fn partition_for(transactional_id: &str, partitions: i32) -> i32 {
    crate::group::offsets::partition_for(transactional_id, partitions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_damage_is_refused() {
        let mut m = TxnMetadata::new("app-1", 4000, 60_000, 1_000);
        m.state = TxnState::Ongoing;
        m.producer_epoch = 3;
        m.start_ms = 900;
        m.partitions = [("a".to_string(), 0), ("a".to_string(), 2), ("b".to_string(), 1)].into();
        let k = key("app-1");
        let v = value(&m);
        assert_eq!(decode_key(&k).as_deref(), Some("app-1"));
        assert_eq!(decode_value("app-1", &v), Some(m.clone()));
        // Every truncation is refused, never read past its end.
        for cut in 0..v.len() {
            assert_eq!(decode_value("app-1", &v[..cut]), None, "cut at {cut}");
        }
        // A hostile partition count does not allocate or loop for it.
        let mut hostile = v.to_vec();
        hostile[17..21].copy_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(decode_value("app-1", &hostile), None);
        // An unknown state id or version is not a transaction.
        let mut bad = v.to_vec();
        bad[16] = 42;
        assert_eq!(decode_value("app-1", &bad), None);
        assert_eq!(decode_key(&[0, 1]), None);
    }
}
