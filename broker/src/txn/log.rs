//! Records of `__transaction_state`, in Kafka's own schemas
//! (TransactionLogKey v0: the transactional id; TransactionLogValue: producer
//! id and epoch, timeout, state, partitions, timestamps), so Kafka's tools can
//! read the topic. A transaction of version 1 is written as value v0; one of
//! version 2 as v1, the flexible form whose tagged fields carry the previous
//! and next producer ids and the client's transaction version. A tombstone
//! removes an expired id. Pure encoding and decoding: every length and count
//! read is checked against what is left.
//!
//! The varints are written here rather than with kafka-protocol's codecs:
//! these are records, not protocol messages, and the crate has no schema for
//! them.

use std::collections::BTreeSet;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::state::{TxnMetadata, TxnState, NO_PRODUCER_ID, TV_1, TV_2};
use crate::group::offsets::{get_str, put_str};

/// The internal topic holding transactions' state.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

pub fn key(transactional_id: &str) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    put_str(&mut b, transactional_id);
    b.freeze()
}

/// A transaction's record value: v0 for version 1, v1 (flexible: compact
/// strings and arrays, and the tagged fields PreviousProducerId (0),
/// NextProducerId (1) and ClientTransactionVersion (2), each written when
/// not its default) for version 2.
pub fn value(m: &TxnMetadata) -> Bytes {
    let version: i16 = if m.client_version >= TV_2 { 1 } else { 0 };
    let mut b = BytesMut::new();
    b.put_i16(version);
    b.put_i64(m.producer_id);
    b.put_i16(m.producer_epoch);
    b.put_i32(m.timeout_ms);
    b.put_i8(m.state.id());
    let topics = by_topic(m);
    if version == 0 {
        b.put_i32(topics.len() as i32);
        for (t, ps) in topics {
            put_str(&mut b, t);
            b.put_i32(ps.len() as i32);
            for p in ps {
                b.put_i32(p);
            }
        }
    } else {
        put_uvarint(&mut b, topics.len() as u64 + 1);
        for (t, ps) in topics {
            put_uvarint(&mut b, t.len() as u64 + 1);
            b.put_slice(t.as_bytes());
            put_uvarint(&mut b, ps.len() as u64 + 1);
            for p in ps {
                b.put_i32(p);
            }
            put_uvarint(&mut b, 0);
        }
    }
    b.put_i64(m.last_update_ms);
    b.put_i64(m.start_ms);
    if version == 1 {
        put_tags(&mut b, m);
    }
    b.freeze()
}

/// Partitions grouped by topic, in order.
fn by_topic(m: &TxnMetadata) -> Vec<(&str, Vec<i32>)> {
    let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
    for (t, p) in &m.partitions {
        match topics.last_mut() {
            Some((last, ps)) if *last == t.as_str() => ps.push(*p),
            _ => topics.push((t.as_str(), vec![*p])),
        }
    }
    topics
}

fn put_uvarint(b: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        b.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    b.put_u8(v as u8);
}

fn get_uvarint(v: &mut &[u8]) -> Option<u64> {
    let mut out = 0u64;
    for shift in (0..35).step_by(7) {
        if !v.has_remaining() {
            return None;
        }
        let byte = v.get_u8();
        out |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(out);
        }
    }
    None
}

/// A compact length (Kafka writes length + 1; 0 is null) of items of at
/// least `item_bytes` each: refused when what is left cannot hold them.
fn get_compact_len(v: &mut &[u8], item_bytes: usize) -> Option<usize> {
    let n = get_uvarint(v)?;
    let n = usize::try_from(n.checked_sub(1)?).ok()?;
    (n <= v.remaining() / item_bytes).then_some(n)
}

/// Value v1's tagged fields, those not at their default.
fn put_tags(b: &mut BytesMut, m: &TxnMetadata) {
    let mut tags: Vec<(u64, Vec<u8>)> = Vec::new();
    if m.last_producer_id != NO_PRODUCER_ID {
        tags.push((0, m.last_producer_id.to_be_bytes().to_vec()));
    }
    if m.next_producer_id != NO_PRODUCER_ID {
        tags.push((1, m.next_producer_id.to_be_bytes().to_vec()));
    }
    if m.client_version != TV_1 {
        tags.push((2, m.client_version.to_be_bytes().to_vec()));
    }
    put_uvarint(b, tags.len() as u64);
    for (tag, data) in tags {
        put_uvarint(b, tag);
        put_uvarint(b, data.len() as u64);
        b.put_slice(&data);
    }
}

/// Skips a struct's tagged fields.
fn skip_tags(v: &mut &[u8]) -> Option<()> {
    let count = get_uvarint(v)?;
    for _ in 0..count {
        get_uvarint(v)?;
        let size = usize::try_from(get_uvarint(v)?).ok()?;
        if size > v.remaining() {
            return None;
        }
        v.advance(size);
    }
    Some(())
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
    let v = &mut v;
    if v.remaining() < 2 {
        return None;
    }
    let version = v.get_i16();
    if !(0..=1).contains(&version) || v.remaining() < 8 + 2 + 4 + 1 {
        return None;
    }
    let producer_id = v.get_i64();
    let mut m = TxnMetadata::new(transactional_id, producer_id, 0, -1);
    m.producer_epoch = v.get_i16();
    m.timeout_ms = v.get_i32();
    m.state = TxnState::from_id(v.get_i8())?;
    m.partitions = if version == 0 {
        partitions_v0(v)?
    } else {
        partitions_v1(v)?
    };
    if v.remaining() < 16 {
        return None;
    }
    m.last_update_ms = v.get_i64();
    m.start_ms = v.get_i64();
    if version == 1 {
        read_tags(&mut m, v)?;
    }
    Some(m)
}

/// Value v0's partitions: an int32 count of topics, each a string and an
/// int32 count of partitions.
fn partitions_v0(v: &mut &[u8]) -> Option<BTreeSet<(String, i32)>> {
    if v.remaining() < 4 {
        return None;
    }
    let topics = v.get_i32();
    let mut partitions = BTreeSet::new();
    // A topic takes at least 6 bytes (name length and partition count).
    if topics > 0 && topics as usize > v.remaining() / 6 {
        return None;
    }
    for _ in 0..topics.max(0) {
        let topic = get_str(v)?;
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
    Some(partitions)
}

/// Value v1's partitions: compact arrays and strings, tagged fields per topic.
fn partitions_v1(v: &mut &[u8]) -> Option<BTreeSet<(String, i32)>> {
    let mut partitions = BTreeSet::new();
    // A topic takes at least 3 bytes (name length, partition count, tags).
    let topics = get_compact_len(v, 3)?;
    for _ in 0..topics {
        let len = get_compact_len(v, 1)?;
        let topic = std::str::from_utf8(&v[..len]).ok()?.to_string();
        v.advance(len);
        let n = get_compact_len(v, 4)?;
        for _ in 0..n {
            partitions.insert((topic.clone(), v.get_i32()));
        }
        skip_tags(v)?;
    }
    Some(partitions)
}

/// Value v1's tagged fields: the previous and next producer ids and the
/// client's transaction version; a later version's tags are skipped.
fn read_tags(m: &mut TxnMetadata, v: &mut &[u8]) -> Option<()> {
    let count = get_uvarint(v)?;
    if count > v.remaining() as u64 / 2 {
        return None;
    }
    for _ in 0..count {
        let tag = get_uvarint(v)?;
        let size = usize::try_from(get_uvarint(v)?).ok()?;
        if size > v.remaining() {
            return None;
        }
        let (mut data, rest) = v.split_at(size);
        *v = rest;
        match (tag, size) {
            (0, 8) => m.last_producer_id = data.get_i64(),
            (1, 8) => m.next_producer_id = data.get_i64(),
            (2, 2) => m.client_version = data.get_i16(),
            (0..=2, _) => return None,
            _ => {}
        }
    }
    Some(())
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

    #[test]
    fn a_version_2_transaction_is_value_v1_with_its_tagged_fields() {
        let mut m = TxnMetadata::new("app-2", 4000, 60_000, 1_000);
        m.state = TxnState::PrepareCommit;
        m.producer_epoch = i16::MAX;
        m.last_producer_id = 3000;
        m.next_producer_id = 5000;
        m.client_version = TV_2;
        m.start_ms = 900;
        m.partitions = [("a".to_string(), 0), ("a".to_string(), 2), ("b".to_string(), 1)].into();
        let v = value(&m);
        assert_eq!(&v[..2], &[0, 1], "value version 1");
        let mut read = decode_value("app-2", &v).unwrap();
        // The last epoch is not in the record (as in Kafka).
        read.last_producer_epoch = m.last_producer_epoch;
        assert_eq!(read, m);
        for cut in 0..v.len() {
            assert_eq!(decode_value("app-2", &v[..cut]), None, "cut at {cut}");
        }
        // Defaults are left out: no tags at all.
        let plain = TxnMetadata {
            client_version: TV_2,
            ..TxnMetadata::new("app-2", 4000, 60_000, 1_000)
        };
        let v = value(&plain);
        assert_eq!(decode_value("app-2", &v).unwrap().client_version, TV_2);
        // A hostile topic count is refused without allocating for it.
        let mut hostile = value(&m).to_vec();
        hostile[17] = 0xff;
        hostile.truncate(18);
        hostile.extend_from_slice(&[0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(decode_value("app-2", &hostile), None);
        // An unknown tag (a later version's field) is skipped.
        let mut later = value(&plain).to_vec();
        let tags_at = later.len() - 5; // a count of one, then tag 2, size 2, the version
        assert_eq!(later[tags_at], 1);
        later[tags_at] = 2;
        later.extend_from_slice(&[9, 1, 0]);
        assert_eq!(decode_value("app-2", &later).unwrap().client_version, TV_2);
    }
}
