//! Bytes as a produce request's records: split into batches, each validated,
//! then decoded (inflating compressed ones under the cap) and read for record
//! timestamps and transaction markers, as the log, the cleaner and ListOffsets do.

use bytes::Bytes;
use skein_broker::log::batch::{control_type, peek_size, record_timestamps, split_batches};
use skein_broker::log::compression::{decode_batch, MAX_INFLATED_BATCH_BYTES};

/// Offsets in the v2 batch header (Kafka's DefaultRecordBatch).
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;

/// One input.
pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut records = rest.to_vec();
    // A mutated batch almost never carries a valid CRC; half the inputs get theirs
    // recomputed so the fuzzer reaches what lies behind the check.
    if mode & 1 == 1 {
        let mut pos = 0;
        while let Some(size) = peek_size(&records[pos..]) {
            let end = (pos + size).min(records.len());
            if end - pos <= ATTRIBUTES {
                break;
            }
            let crc = crc32c::crc32c(&records[pos + ATTRIBUTES..end]);
            records[pos + CRC..pos + ATTRIBUTES].copy_from_slice(&crc.to_be_bytes());
            pos = end;
        }
    }
    let Ok(batches) = split_batches(&records) else {
        return;
    };
    for (_, range) in batches {
        let batch = &records[range];
        let _ = record_timestamps(batch);
        let _ = control_type(batch);
        let _ = decode_batch(&mut Bytes::copy_from_slice(batch), MAX_INFLATED_BATCH_BYTES);
    }
}
