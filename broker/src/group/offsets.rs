//! Committed offsets and their records in `__consumer_offsets`, in Kafka's own
//! key and value schemas (OffsetCommitKey v1, OffsetCommitValue v3), so Kafka's
//! tools can read the topic. Pure encoding and decoding; the coordinator writes.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// One committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
}

/// A decoded `__consumer_offsets` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetRecord {
    /// An offset commit, or its removal (tombstone) when `value` is None.
    Offset {
        group: String,
        topic: String,
        partition: i32,
        value: Option<CommittedOffset>,
    },
    /// Group metadata (key version 2); its value is not interpreted here.
    Group { group: String },
}

/// The partition of `__consumer_offsets` that holds a group: Kafka's
/// `abs(groupId.hashCode()) % partitions`, with Java's String hash, so the same
/// group maps to the same partition as in Kafka.
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let mut h: i32 = 0;
    for unit in group.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(unit as i32);
    }
    (h & 0x7fff_ffff) % partitions.max(1)
}

/// A Kafka STRING (int16 length, UTF-8) as the internal topics' schemas write it.
pub(crate) fn put_str(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

/// A Kafka STRING read back; None when the bytes do not hold one.
pub(crate) fn get_str(b: &mut &[u8]) -> Option<String> {
    if b.remaining() < 2 {
        return None;
    }
    let len = b.get_i16();
    if len < 0 || b.remaining() < len as usize {
        return None;
    }
    let s = String::from_utf8(b[..len as usize].to_vec()).ok()?;
    b.advance(len as usize);
    Some(s)
}

/// The record key of an offset commit.
pub fn offset_key(group: &str, topic: &str, partition: i32) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(1);
    put_str(&mut b, group);
    put_str(&mut b, topic);
    b.put_i32(partition);
    b.freeze()
}

/// The record value of an offset commit.
pub fn offset_value(v: &CommittedOffset) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(3);
    b.put_i64(v.offset);
    b.put_i32(v.leader_epoch);
    put_str(&mut b, &v.metadata);
    b.put_i64(v.commit_timestamp);
    b.freeze()
}

/// Decodes one record of `__consumer_offsets`; None for anything unrecognised.
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Option<OffsetRecord> {
    let mut k = key;
    if k.remaining() < 2 {
        return None;
    }
    match k.get_i16() {
        0 | 1 => {
            let group = get_str(&mut k)?;
            let topic = get_str(&mut k)?;
            if k.remaining() < 4 {
                return None;
            }
            let partition = k.get_i32();
            let value = match value {
                None => None,
                Some(mut v) => {
                    if v.remaining() < 2 {
                        return None;
                    }
                    let version = v.get_i16();
                    if v.remaining() < 8 {
                        return None;
                    }
                    let offset = v.get_i64();
                    let leader_epoch = if version >= 3 && v.remaining() >= 4 {
                        v.get_i32()
                    } else {
                        -1
                    };
                    let metadata = get_str(&mut v)?;
                    let commit_timestamp = if v.remaining() >= 8 { v.get_i64() } else { 0 };
                    Some(CommittedOffset {
                        offset,
                        leader_epoch,
                        metadata,
                        commit_timestamp,
                    })
                }
            };
            Some(OffsetRecord::Offset {
                group,
                topic,
                partition,
                value,
            })
        }
        2 => Some(OffsetRecord::Group {
            group: get_str(&mut k)?,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_partition_matches_kafkas_java_hash() {
        // Java: "hello".hashCode() == 99162322; "polygenelubricants".hashCode() == Integer.MIN_VALUE,
        // which Kafka's Utils.abs maps to 0.
        assert_eq!(partition_for("hello", 50), 99_162_322 % 50);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert_eq!(partition_for("", 50), 0);
        for g in ["a", "consumer-group-1", "ünïcödé"] {
            assert!((0..50).contains(&partition_for(g, 50)));
        }
    }

    #[test]
    fn offset_records_round_trip_and_tombstones_decode() {
        let v = CommittedOffset {
            offset: 42,
            leader_epoch: 3,
            metadata: "m".into(),
            commit_timestamp: 7,
        };
        let key = offset_key("g", "t", 5);
        assert_eq!(
            decode(&key, Some(&offset_value(&v))),
            Some(OffsetRecord::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 5,
                value: Some(v)
            })
        );
        assert!(matches!(
            decode(&key, None),
            Some(OffsetRecord::Offset { value: None, .. })
        ));
        assert_eq!(decode(&[0, 9], None), None);
        assert_eq!(decode(&key[..5], None), None);
    }
}
