//! The fuzz targets' bodies (`targets`) and what the request targets share:
//! how fuzz input becomes a request frame.

use skein_broker::protocol::API_TABLE;

pub mod targets;

/// A request frame (without its length prefix) from fuzz input. Most random
/// bytes name no served API, so the first byte picks a row of the dispatch table
/// and the second a version within its range; the rest is the frame from the
/// correlation id on. Every served (API, version) is reached this way.
pub fn request_frame(data: &[u8]) -> Option<Vec<u8>> {
    let (&row, rest) = data.split_first()?;
    let (&version, rest) = rest.split_first()?;
    let entry = &API_TABLE[row as usize % API_TABLE.len()];
    let span = (entry.versions.max - entry.versions.min + 1) as u8;
    let version = entry.versions.min + (version % span) as i16;
    let mut frame = Vec::with_capacity(rest.len() + 4);
    frame.extend_from_slice(&(entry.key as i16).to_be_bytes());
    frame.extend_from_slice(&version.to_be_bytes());
    frame.extend_from_slice(rest);
    Some(frame)
}
