//! Response frames that carry file ranges, so that fetched batches go from the
//! page cache to the socket with `sendfile` and never through user space.
//!
//! kafka-protocol encodes a response into one buffer, copying `records` in. To
//! avoid that copy, a fetch puts a *placeholder* in `records`: a range of the
//! right length in a read-only anonymous mapping, which is address space the
//! encoder never reads (see [`zero_region`]). [`SpliceBuf`] is the buffer
//! the encoder writes into; when it is handed a placeholder's bytes it ends the
//! current chunk and records the file range instead. kafka-protocol has no hook
//! for this, hence the hand-written buffer.

use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;

use crate::log::FileSlice;

/// One piece of a response frame.
#[derive(Debug)]
pub enum FramePart {
    Bytes(Bytes),
    File(FileSlice),
}

/// A whole response frame (length prefix included), in order.
#[derive(Debug, Default)]
pub struct Frame {
    pub parts: Vec<FramePart>,
}

impl Frame {
    pub fn from_bytes(b: Bytes) -> Frame {
        Frame {
            parts: vec![FramePart::Bytes(b)],
        }
    }

    /// Total bytes on the wire.
    pub fn len(&self) -> usize {
        self.parts
            .iter()
            .map(|p| match p {
                FramePart::Bytes(b) => b.len(),
                FramePart::File(f) => f.len,
            })
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The frame as one buffer, reading file parts (for tests and in-process callers).
    pub fn to_bytes(&self) -> std::io::Result<Bytes> {
        use std::os::unix::fs::FileExt;
        let mut out = BytesMut::with_capacity(self.len());
        for p in &self.parts {
            match p {
                FramePart::Bytes(b) => out.extend_from_slice(b),
                FramePart::File(f) => {
                    let start = out.len();
                    out.resize(start + f.len, 0);
                    f.file.read_exact_at(&mut out[start..], f.position)?;
                }
            }
        }
        Ok(out.freeze())
    }
}

/// A registered placeholder: its address and length, the file range it stands
/// for, and the placeholder itself (held so its address cannot be reused).
#[derive(Debug)]
struct Placeholder {
    addr: usize,
    len: usize,
    file: FileSlice,
    _keep: Bytes,
}

/// File ranges a handler wants spliced into its response, keyed by placeholder.
#[derive(Debug, Clone, Default)]
pub struct ZeroCopy(Arc<Mutex<Registry>>);

#[derive(Debug, Default)]
struct Registry {
    placeholders: Vec<Placeholder>,
    /// Where the next placeholder starts in the zero region: distinct ranges
    /// keep placeholders of one response apart.
    next: usize,
}

/// Address space for placeholders: a read-only, private anonymous mapping.
/// It reserves no memory (MAP_NORESERVE, never writable) and any read sees the
/// kernel's shared zero page, so a placeholder costs neither an allocation nor
/// a memset of the bytes it stands for. None if the mapping failed.
fn zero_region() -> Option<&'static [u8]> {
    const SIZE: usize = 1 << 36; // 64 GiB of address space, far above any response.
    struct Region(Option<&'static [u8]>);
    static REGION: OnceLock<Region> = OnceLock::new();
    REGION
        .get_or_init(|| {
            // SAFETY: a fresh mapping nobody else refers to; it is readable for
            // its whole length and never unmapped, so the slice is valid for 'static.
            unsafe {
                let p = libc::mmap(
                    std::ptr::null_mut(),
                    SIZE,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                );
                Region((p != libc::MAP_FAILED).then(|| std::slice::from_raw_parts(p as *const u8, SIZE)))
            }
        })
        .0
}

impl ZeroCopy {
    /// A placeholder for `slice` to put where its bytes belong in the response.
    pub fn placeholder(&self, slice: FileSlice) -> Bytes {
        let mut reg = self.lock();
        let start = reg.next;
        let b = match zero_region() {
            Some(zeros) if start + slice.len <= zeros.len() => {
                reg.next = start + slice.len.max(1);
                Bytes::from_static(&zeros[start..start + slice.len])
            }
            // No region, or a response beyond it: a real (zeroed) buffer.
            _ => Bytes::from(vec![0u8; slice.len]),
        };
        reg.placeholders.push(Placeholder {
            addr: b.as_ptr() as usize,
            len: b.len(),
            file: slice,
            _keep: b.clone(),
        });
        b
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn find(&self, ptr: usize, len: usize) -> Option<FileSlice> {
        self.lock()
            .placeholders
            .iter()
            .find(|p| p.addr == ptr && p.len == len)
            .map(|p| p.file.clone())
    }

    pub fn is_empty(&self) -> bool {
        self.lock().placeholders.is_empty()
    }

    /// Forgets every placeholder (a long-polling fetch reads again). `next`
    /// stays where it is, so new placeholders never share an old one's address.
    pub fn clear(&self) {
        self.lock().placeholders.clear();
    }
}

/// The buffer responses are encoded into: bytes, with placeholders swapped for file ranges.
pub struct SpliceBuf {
    zero_copy: ZeroCopy,
    parts: Vec<FramePart>,
    current: BytesMut,
    /// Bytes in `parts` (offsets the encoder sees are global).
    base: usize,
}

impl SpliceBuf {
    pub fn new(capacity: usize, zero_copy: ZeroCopy) -> SpliceBuf {
        SpliceBuf {
            zero_copy,
            parts: Vec::new(),
            current: BytesMut::with_capacity(capacity),
            base: 0,
        }
    }

    pub fn finish(mut self) -> Frame {
        if !self.current.is_empty() {
            self.parts.push(FramePart::Bytes(self.current.freeze()));
        }
        Frame { parts: self.parts }
    }
}

// SAFETY: every method delegates to the inner BytesMut, which upholds BufMut's contract.
unsafe impl BufMut for SpliceBuf {
    fn remaining_mut(&self) -> usize {
        self.current.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller initialised `cnt` bytes of the chunk we handed out.
        unsafe { self.current.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.current.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        if !src.is_empty() {
            if let Some(file) = self.zero_copy.find(src.as_ptr() as usize, src.len()) {
                let done = std::mem::take(&mut self.current);
                self.base += done.len() + file.len;
                if !done.is_empty() {
                    self.parts.push(FramePart::Bytes(done.freeze()));
                }
                self.parts.push(FramePart::File(file));
                return;
            }
        }
        self.current.extend_from_slice(src);
    }
}

impl ByteBufMut for SpliceBuf {
    fn offset(&self) -> usize {
        self.base + self.current.len()
    }

    // Gaps (back-patched lengths) are only used by messages without records,
    // so they never span a splice; offsets before one would be a bug.
    fn seek(&mut self, offset: usize) {
        self.current.resize(offset - self.base, 0);
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        &mut self.current[r.start - self.base..r.end - self.base]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{encode_frame, encode_response};
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::FetchResponse;
    use std::io::Write;

    fn response(records: [Bytes; 2]) -> FetchResponse {
        let [a, b] = records;
        FetchResponse::default().with_responses(vec![FetchableTopicResponse::default().with_partitions(vec![
            PartitionData::default().with_partition_index(0).with_records(Some(a)),
            PartitionData::default().with_partition_index(1).with_records(Some(b)),
        ])])
    }

    #[test]
    fn spliced_frame_equals_the_plain_encoding() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"....first-range....second-range..").unwrap();
        let file = Arc::new(f);
        let zc = ZeroCopy::default();
        let p1 = zc.placeholder(FileSlice {
            file: Arc::clone(&file),
            position: 4,
            len: 11,
        });
        let p2 = zc.placeholder(FileSlice {
            file,
            position: 19,
            len: 12,
        });
        for version in [4, 11, 12] {
            let spliced = encode_frame(7, version, &response([p1.clone(), p2.clone()]), zc.clone()).unwrap();
            assert_eq!(
                spliced.parts.iter().filter(|p| matches!(p, FramePart::File(_))).count(),
                2
            );
            let plain = encode_response(
                7,
                version,
                &response([Bytes::from_static(b"first-range"), Bytes::from_static(b"second-range")]),
            )
            .unwrap();
            assert_eq!(spliced.to_bytes().unwrap(), plain, "v{version}");
            assert_eq!(spliced.len(), plain.len());
        }
    }
}
