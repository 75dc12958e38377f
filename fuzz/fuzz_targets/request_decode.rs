//! A request frame (without its length prefix) through the header and body
//! decoders of every API and version the broker serves, as `handle_frame` reads
//! it. Nothing is handled; this target finds decoder crashes and allocations
//! larger than the input (run with `-malloc_limit_mb`).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use skein_broker::protocol::{decode_frame, API_TABLE};

fuzz_target!(|data: &[u8]| {
    // Most random inputs name no served API; the first byte picks a table row and
    // the second a version in its range, so every (API, version) is reached.
    if data.len() < 2 {
        return;
    }
    let entry = &API_TABLE[data[0] as usize % API_TABLE.len()];
    let span = (entry.versions.max - entry.versions.min + 1) as u8;
    let version = entry.versions.min + (data[1] % span) as i16;
    let mut frame = Vec::with_capacity(data.len() + 2);
    frame.extend_from_slice(&(entry.key as i16).to_be_bytes());
    frame.extend_from_slice(&version.to_be_bytes());
    frame.extend_from_slice(&data[2..]);
    let _ = decode_frame(Bytes::from(frame));
});
