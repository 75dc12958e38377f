//! A request frame (without its length prefix) through the header and body
//! decoders of every API and version the broker serves, as `handle_frame` reads
//! it. Nothing is handled; this target finds decoder crashes and allocations
//! larger than the input (run with `-malloc_limit_mb`).

use crate::request_frame;
use bytes::Bytes;
use skein_broker::protocol::decode_frame;

/// One input.
pub fn run(data: &[u8]) {
    let Some(frame) = request_frame(data) else {
        return;
    };
    let _ = decode_frame(Bytes::from(frame));
}
