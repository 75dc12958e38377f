//! The v2 record batch header (KIP-98), read and patched in place.
//!
//! The broker stores batches exactly as producers send them; it only needs the
//! fixed 61-byte header to validate, assign offsets and index. kafka-protocol's
//! `RecordBatchDecoder` decodes whole batches (and decompresses them), which the
//! hot path must not do, so the header is read here by hand.

use bytes::{Buf, BufMut};

/// Size of the fixed batch header.
pub const HEADER_LEN: usize = 61;
/// Bytes before `batchLength`'s coverage starts (baseOffset + batchLength).
pub const LOG_OVERHEAD: usize = 12;

const BASE_OFFSET: usize = 0;
const BATCH_LENGTH: usize = 8;
const PARTITION_LEADER_EPOCH: usize = 12;
#[allow(dead_code)] // documents the layout
const MAGIC: usize = 16;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
#[allow(dead_code)] // documents the layout
const LAST_OFFSET_DELTA: usize = 23;
#[allow(dead_code)] // documents the layout
const BASE_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;
#[allow(dead_code)] // documents the layout
const PRODUCER_ID: usize = 43;
#[allow(dead_code)] // documents the layout
const PRODUCER_EPOCH: usize = 51;
#[allow(dead_code)] // documents the layout
const BASE_SEQUENCE: usize = 53;
#[allow(dead_code)] // documents the layout
const RECORDS_COUNT: usize = 57;

/// The smallest encoding of one record.
const MIN_RECORD_LEN: usize = 7;

const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;

/// Why a batch was refused. Each maps to a Kafka error code in the produce handler.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum BatchError {
    #[error("batch shorter than its header ({0} bytes)")]
    Truncated(usize),
    #[error("batch length {declared} does not match the {available} bytes present")]
    LengthMismatch { declared: i64, available: usize },
    #[error("unsupported magic byte {0} (only v2 record batches are accepted)")]
    Magic(i8),
    #[error("CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Crc { stored: u32, computed: u32 },
    #[error("invalid record count {count} for last offset delta {last_offset_delta}")]
    RecordCount { count: i32, last_offset_delta: i32 },
}

/// The fixed header of one v2 record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Bytes after the length field; the whole batch is `batch_length + 12` bytes.
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

impl BatchHeader {
    /// Reads the header at the start of `buf` (which must hold at least [`HEADER_LEN`] bytes).
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() < HEADER_LEN {
            return Err(BatchError::Truncated(buf.len()));
        }
        let mut b = buf;
        Ok(BatchHeader {
            base_offset: b.get_i64(),
            batch_length: b.get_i32(),
            partition_leader_epoch: b.get_i32(),
            magic: b.get_i8(),
            crc: b.get_u32(),
            attributes: b.get_i16(),
            last_offset_delta: b.get_i32(),
            base_timestamp: b.get_i64(),
            max_timestamp: b.get_i64(),
            producer_id: b.get_i64(),
            producer_epoch: b.get_i16(),
            base_sequence: b.get_i32(),
            records_count: b.get_i32(),
        })
    }

    /// Total size of the batch on the wire and on disk.
    pub fn size(&self) -> usize {
        self.batch_length as usize + LOG_OVERHEAD
    }
    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_BIT != 0
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }
    /// The sequence of the batch's last record, wrapping at i32::MAX as Kafka does.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return -1;
        }
        let last = self.base_sequence as i64 + self.last_offset_delta as i64;
        (last % (i32::MAX as i64 + 1)) as i32
    }
}

/// Reads the length prefix of the batch at the start of `buf`, if 12 bytes are there:
/// the total size of the batch.
pub fn peek_size(buf: &[u8]) -> Option<usize> {
    if buf.len() < LOG_OVERHEAD {
        return None;
    }
    let len = (&buf[BATCH_LENGTH..LOG_OVERHEAD]).get_i32();
    if len < 0 {
        return None;
    }
    Some(len as usize + LOG_OVERHEAD)
}

/// Checks one complete batch: length, magic, record count, CRC32C over attributes..end.
pub fn validate(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    let h = BatchHeader::parse(batch)?;
    if h.magic != 2 {
        return Err(BatchError::Magic(h.magic));
    }
    if h.batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32 || h.size() != batch.len() {
        return Err(BatchError::LengthMismatch {
            declared: h.batch_length as i64,
            available: batch.len(),
        });
    }
    if h.last_offset_delta < 0 || h.records_count < 1 || h.records_count - 1 != h.last_offset_delta {
        return Err(BatchError::RecordCount {
            count: h.records_count,
            last_offset_delta: h.last_offset_delta,
        });
    }
    // A record takes at least 7 bytes (length, attributes, timestamp delta, offset
    // delta, key and value lengths, header count), so a count the bytes cannot hold
    // is a lie. A compressed batch is decoded into records in memory (cleaner,
    // ListOffsets, the compacted-topic key check), so its count is bounded by what
    // those records may occupy: 128 MiB / size_of::<Record>(), about 700,000.
    let records_bytes = batch.len() - HEADER_LEN;
    let max_records = if h.attributes & 0x07 == 0 {
        records_bytes / MIN_RECORD_LEN
    } else {
        super::compression::MAX_INFLATED_BATCH_BYTES / std::mem::size_of::<kafka_protocol::records::Record>()
    };
    if h.records_count as usize > max_records {
        return Err(BatchError::RecordCount {
            count: h.records_count,
            last_offset_delta: h.last_offset_delta,
        });
    }
    let computed = crc32c::crc32c(&batch[ATTRIBUTES..]);
    if computed != h.crc {
        return Err(BatchError::Crc {
            stored: h.crc,
            computed,
        });
    }
    Ok(h)
}

/// Splits a produce request's record bytes into validated batches.
pub fn split_batches(records: &[u8]) -> Result<Vec<(BatchHeader, std::ops::Range<usize>)>, BatchError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < records.len() {
        let rest = &records[pos..];
        let size = match peek_size(rest) {
            Some(size) if size >= HEADER_LEN => size,
            Some(size) => {
                return Err(BatchError::LengthMismatch {
                    declared: size as i64 - 12,
                    available: rest.len(),
                })
            }
            None => return Err(BatchError::Truncated(rest.len())),
        };
        if size > rest.len() {
            return Err(BatchError::LengthMismatch {
                declared: size as i64 - 12,
                available: rest.len(),
            });
        }
        let h = validate(&rest[..size])?;
        out.push((h, pos..pos + size));
        pos += size;
    }
    Ok(out)
}

/// Writes the broker-assigned base offset (outside the CRC's coverage).
pub fn set_base_offset(batch: &mut [u8], offset: i64) {
    (&mut batch[BASE_OFFSET..BASE_OFFSET + 8]).put_i64(offset);
}

/// Writes the partition leader epoch (outside the CRC's coverage).
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    (&mut batch[PARTITION_LEADER_EPOCH..PARTITION_LEADER_EPOCH + 4]).put_i32(epoch);
}

/// Marks the batch LogAppendTime with the broker's clock and recomputes its CRC.
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    let (head, tail) = batch.split_at_mut(HEADER_LEN);
    set_log_append_time_split(head, tail, now_ms);
}

/// [`set_log_append_time`] on a batch held as its header and the records after it.
pub fn set_log_append_time_split(head: &mut [u8], tail: &[u8], now_ms: i64) {
    let mut attrs = (&head[ATTRIBUTES..ATTRIBUTES + 2]).get_i16();
    attrs |= TIMESTAMP_TYPE_BIT;
    (&mut head[ATTRIBUTES..ATTRIBUTES + 2]).put_i16(attrs);
    (&mut head[MAX_TIMESTAMP..MAX_TIMESTAMP + 8]).put_i64(now_ms);
    let crc = crc32c::crc32c_append(crc32c::crc32c(&head[ATTRIBUTES..]), tail);
    (&mut head[CRC..CRC + 4]).put_u32(crc);
}

/// Encodes (key, value) pairs as one v2 batch without a producer id, offsets
/// from 0 (the log assigns real ones). Used for the broker's own records
/// (`__consumer_offsets`) and by tests.
pub fn encode_records(
    records: &[(Option<bytes::Bytes>, Option<bytes::Bytes>)],
    timestamp: i64,
    compression: kafka_protocol::records::Compression,
) -> Result<bytes::Bytes, String> {
    encode(records, timestamp, compression, None)
}

/// One batch of `records`; transactional, from `producer` (id, epoch), when given.
fn encode(
    records: &[(Option<bytes::Bytes>, Option<bytes::Bytes>)],
    timestamp: i64,
    compression: kafka_protocol::records::Compression,
    producer: Option<(i64, i16)>,
) -> Result<bytes::Bytes, String> {
    use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
    let (producer_id, producer_epoch) = producer.unwrap_or((-1, -1));
    let recs: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: producer.is_some(),
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder keeps records in one batch while offset - sequence is constant.
            sequence: i as i32 - 1,
            timestamp,
            key: key.clone(),
            value: value.clone(),
            headers: Default::default(),
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        recs.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .map_err(|e| e.to_string())?;
    Ok(buf.freeze())
}

/// A transaction marker's type (the control record's key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlType {
    Abort,
    Commit,
}

/// A control batch holding one transaction marker (Kafka's EndTransactionMarker:
/// key version 0 and type, value version 0 and the coordinator's epoch).
pub fn encode_marker(
    producer_id: i64,
    producer_epoch: i16,
    control: ControlType,
    coordinator_epoch: i32,
    timestamp: i64,
) -> Result<bytes::Bytes, String> {
    use bytes::BufMut;
    use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
    let mut key = bytes::BytesMut::with_capacity(4);
    key.put_i16(0);
    key.put_i16(match control {
        ControlType::Abort => 0,
        ControlType::Commit => 1,
    });
    let mut value = bytes::BytesMut::with_capacity(6);
    value.put_i16(0);
    value.put_i32(coordinator_epoch);
    let record = Record {
        transactional: true,
        control: true,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id,
        producer_epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp,
        key: Some(key.freeze()),
        value: Some(value.freeze()),
        headers: Default::default(),
    };
    let mut buf = bytes::BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        std::iter::once(&record),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| e.to_string())?;
    Ok(buf.freeze())
}

/// The marker type of a control batch (its first record's key); None when
/// `batch` is not a well-formed one.
pub fn control_type(batch: &[u8]) -> Option<ControlType> {
    let h = BatchHeader::parse(batch).ok()?;
    if !h.is_control() || h.attributes & 0x07 != 0 {
        return None;
    }
    let mut rec = batch.get(HEADER_LEN..h.size().min(batch.len()))?;
    // Record: length, attributes (1 byte), timestamp delta, offset delta, key length, key.
    read_varint(&mut rec)?;
    rec = rec.get(1..)?;
    read_varint(&mut rec)?;
    read_varint(&mut rec)?;
    let key_len = read_varint(&mut rec)?;
    if key_len < 4 {
        return None;
    }
    match i16::from_be_bytes([*rec.get(2)?, *rec.get(3)?]) {
        0 => Some(ControlType::Abort),
        1 => Some(ControlType::Commit),
        _ => None,
    }
}

/// Whether a control record's key is a commit marker's.
pub fn control_key_is_commit(key: &[u8]) -> bool {
    key.len() >= 4 && i16::from_be_bytes([key[2], key[3]]) == 1
}

/// One transactional batch of `records` from a producer, sequence -1 (the
/// group coordinator's TxnOffsetCommit writes; their order is the coordinator's).
pub fn encode_transactional(
    records: &[(Option<bytes::Bytes>, Option<bytes::Bytes>)],
    producer_id: i64,
    producer_epoch: i16,
    timestamp: i64,
) -> Result<bytes::Bytes, String> {
    encode(
        records,
        timestamp,
        kafka_protocol::records::Compression::None,
        Some((producer_id, producer_epoch)),
    )
}

/// A zig-zag varint (at most 5 bytes).
fn read_varint(b: &mut &[u8]) -> Option<i64> {
    let mut value: u64 = 0;
    for i in 0..5 {
        let byte = *b.first()?;
        *b = &b[1..];
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    None
}

/// Timestamps of the records of one batch, with their offsets, for exact
/// ListOffsets lookups (decompressing when needed; only done off the hot path).
pub fn record_timestamps(batch: &[u8]) -> Vec<(i64, i64)> {
    let h = match BatchHeader::parse(batch) {
        Ok(h) => h,
        Err(_) => return Vec::new(),
    };
    if h.is_log_append_time() {
        // Every record carries the same time: the first offset stands for all.
        return vec![(h.base_offset, h.max_timestamp)];
    }
    let mut buf = bytes::Bytes::copy_from_slice(batch);
    match super::compression::decode_batch(&mut buf, super::compression::MAX_INFLATED_BATCH_BYTES) {
        Ok(set) => set.records.iter().map(|r| (r.offset, r.timestamp)).collect(),
        Err(_) => vec![(h.base_offset, h.max_timestamp)],
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

    /// Encodes a real v2 batch of `n` records with kafka-protocol's encoder.
    pub fn make_batch(n: usize, ts: i64, pid: i64, epoch: i16, seq: i32, compression: Compression) -> Bytes {
        let records: Vec<Record> = (0..n)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: pid,
                producer_epoch: epoch,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The encoder groups records whose offset - sequence is constant into one batch.
                sequence: seq + i as i32,
                timestamp: ts + i as i64,
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(format!("value-{i}"))),
                headers: [(StrBytes::from_static_str("h"), Some(Bytes::from_static(b"v")))]
                    .into_iter()
                    .collect(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            records.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .expect("encode");
        buf.freeze()
    }

    #[test]
    fn parses_and_validates_an_encoded_batch() {
        let b = make_batch(5, 1000, 7, 1, 0, Compression::None);
        let h = validate(&b).unwrap();
        assert_eq!(
            (h.records_count, h.last_offset_delta, h.producer_id, h.base_sequence),
            (5, 4, 7, 0)
        );
        assert_eq!(h.size(), b.len());
        assert_eq!(h.max_timestamp, 1004);
        assert_eq!(h.last_sequence(), 4);
    }

    #[test]
    fn bad_crc_wrong_magic_and_length_mismatch_are_rejected() {
        let b = make_batch(3, 0, -1, -1, -1, Compression::None);
        let mut crc = b.to_vec();
        let last = crc.len() - 1;
        crc[last] ^= 0xff;
        assert!(matches!(validate(&crc), Err(BatchError::Crc { .. })));
        let mut magic = b.to_vec();
        magic[MAGIC] = 1;
        assert_eq!(validate(&magic), Err(BatchError::Magic(1)));
        assert!(matches!(
            split_batches(&b[..b.len() - 1]),
            Err(BatchError::LengthMismatch { .. })
        ));
        assert!(matches!(
            split_batches(&b[..20]),
            Err(BatchError::LengthMismatch { .. })
        ));
    }

    #[test]
    fn log_append_time_rewrites_max_timestamp_and_keeps_crc_valid() {
        let mut b = make_batch(2, 5, -1, -1, -1, Compression::Gzip).to_vec();
        set_log_append_time(&mut b, 99_999);
        set_base_offset(&mut b, 42);
        let h = validate(&b).unwrap();
        assert!(h.is_log_append_time());
        assert_eq!((h.max_timestamp, h.base_offset), (99_999, 42));
    }

    #[test]
    fn record_timestamps_reads_compressed_batches() {
        let mut b = make_batch(3, 100, -1, -1, -1, Compression::Lz4).to_vec();
        set_base_offset(&mut b, 10);
        assert_eq!(record_timestamps(&b), vec![(10, 100), (11, 101), (12, 102)]);
    }
}
