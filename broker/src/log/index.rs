//! Sparse per-segment indexes, in Kafka's file formats.
//!
//! `.index` maps a relative offset to a byte position (8-byte entries);
//! `.timeindex` maps a timestamp to a relative offset (12-byte entries). One entry
//! is added per `index.interval.bytes` of log, so a lookup is a binary search to
//! the nearest entry at or below the target followed by a short forward scan of
//! batch headers. Entries are kept in memory (a 1 GiB segment at the default
//! interval has ~260k entries, 2 MiB) and written to the file when the segment
//! is flushed, rolled or closed: an index holds no file open, so a partition
//! costs one open file (its active log), as a Kafka broker's does. A crash may
//! leave an index shorter than its log; the segments a crash can leave that way
//! are rebuilt from the log at start, and a short index is still a correct one.

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// The file behind an index: how many entries of the in-memory list it holds.
#[derive(Debug)]
struct Backing {
    path: PathBuf,
    persisted: usize,
    /// The file's length: more than `persisted` entries' worth when it was
    /// found with a torn or invalid tail, which a rebuild must cut too. None:
    /// the file was not read (an empty segment's) and is cut to nothing when
    /// first written.
    on_disk: Option<u64>,
    /// Entries written since the file was last fsynced.
    unsynced: bool,
}

impl Backing {
    fn unread(path: &Path) -> Backing {
        Backing {
            path: path.to_path_buf(),
            persisted: 0,
            on_disk: None,
            unsynced: false,
        }
    }

    /// Appends `bytes` (the entries after `persisted`) and, with `sync`, fsyncs.
    fn write(&mut self, bytes: &[u8], now_persisted: usize, sync: bool) -> io::Result<()> {
        if bytes.is_empty() && !(sync && self.unsynced) {
            return Ok(());
        }
        let mut f = match self.on_disk {
            Some(_) => OpenOptions::new().append(true).create(true).open(&self.path)?,
            // Not read, so nothing of it is in memory (`persisted` is 0): start it afresh.
            None => OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&self.path)?,
        };
        f.write_all(bytes)?;
        self.on_disk = Some(self.on_disk.unwrap_or(0) + bytes.len() as u64);
        self.persisted = now_persisted;
        self.unsynced = true;
        if sync {
            f.sync_data()?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// Cuts the file to `keep` entries of `entry_len` bytes if it holds more.
    fn truncate(&mut self, keep: usize, entry_len: usize) -> io::Result<()> {
        // Entries past `persisted` are written from memory later: the file
        // keeps only those already in it that survive.
        let persisted = keep.min(self.persisted);
        let len = (persisted * entry_len) as u64;
        if self.on_disk.is_none_or(|on_disk| len < on_disk) {
            match OpenOptions::new().write(true).open(&self.path) {
                Ok(f) => f.set_len(len)?,
                Err(e) if e.kind() == io::ErrorKind::NotFound && self.on_disk.is_none() => {}
                Err(e) => return Err(e),
            }
            self.persisted = persisted;
            self.on_disk = Some(len);
            self.unsynced = true;
        }
        Ok(())
    }
}

/// Offset index: relative offset -> file position of the batch holding it.
#[derive(Debug)]
pub struct OffsetIndex {
    backing: Backing,
    entries: Vec<(u32, u32)>,
}

impl OffsetIndex {
    /// Opens (or creates) an index file and loads its entries. A trailing partial
    /// entry or one that goes backwards marks the file as corrupt (`None`).
    pub fn open(path: &Path) -> io::Result<(OffsetIndex, bool)> {
        let bytes = create_and_read(path)?;
        let mut entries = Vec::with_capacity(bytes.len() / 8);
        let mut valid = bytes.len() % 8 == 0;
        for c in bytes.chunks_exact(8) {
            let rel = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
            let pos = u32::from_be_bytes([c[4], c[5], c[6], c[7]]);
            if let Some(&(lr, lp)) = entries.last() {
                if rel <= lr || pos <= lp {
                    valid = false;
                    break;
                }
            }
            entries.push((rel, pos));
        }
        let backing = Backing {
            path: path.to_path_buf(),
            persisted: entries.len(),
            on_disk: Some(bytes.len() as u64),
            unsynced: false,
        };
        Ok((OffsetIndex { backing, entries }, valid))
    }

    /// The index of an empty segment, without reading its file: whatever the
    /// file holds indexes nothing and is cut at the first write.
    pub fn assume_empty(path: &Path) -> OffsetIndex {
        OffsetIndex {
            backing: Backing::unread(path),
            entries: Vec::new(),
        }
    }

    /// Adds an entry (in memory until the next `write`); entries must increase.
    pub fn append(&mut self, relative_offset: u32, position: u32) {
        if let Some(&(r, p)) = self.entries.last() {
            if relative_offset <= r || position <= p {
                return;
            }
        }
        self.entries.push((relative_offset, position));
    }

    /// The entry with the largest relative offset <= `relative_offset` (binary search).
    pub fn lookup(&self, relative_offset: u32) -> Option<(u32, u32)> {
        let i = self.entries.partition_point(|&(r, _)| r <= relative_offset);
        (i > 0).then(|| self.entries[i - 1])
    }

    pub fn last(&self) -> Option<(u32, u32)> {
        self.entries.last().copied()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drops every entry whose position is at or past `position` (after a truncation).
    pub fn truncate_to_position(&mut self, position: u32) -> io::Result<()> {
        let keep = self.entries.partition_point(|&(_, p)| p < position);
        self.entries.truncate(keep);
        self.backing.truncate(keep, 8)
    }

    /// Empties the index (before a rebuild).
    pub fn clear(&mut self) -> io::Result<()> {
        self.entries.clear();
        self.backing.truncate(0, 8)
    }

    /// Writes the entries the file does not have yet; with `sync`, fsyncs it.
    pub fn write(&mut self, sync: bool) -> io::Result<()> {
        let mut bytes = Vec::with_capacity((self.entries.len() - self.backing.persisted) * 8);
        for &(rel, pos) in &self.entries[self.backing.persisted..] {
            bytes.extend_from_slice(&rel.to_be_bytes());
            bytes.extend_from_slice(&pos.to_be_bytes());
        }
        self.backing.write(&bytes, self.entries.len(), sync)
    }

    pub fn path(&self) -> &Path {
        &self.backing.path
    }
}

/// Time index: timestamp -> relative offset of the first batch whose max timestamp reaches it.
#[derive(Debug)]
pub struct TimeIndex {
    backing: Backing,
    entries: Vec<(i64, u32)>,
}

impl TimeIndex {
    /// Opens (or creates) a time index; `false` if the file is corrupt.
    pub fn open(path: &Path) -> io::Result<(TimeIndex, bool)> {
        let bytes = create_and_read(path)?;
        let mut entries = Vec::with_capacity(bytes.len() / 12);
        let mut valid = bytes.len() % 12 == 0;
        for c in bytes.chunks_exact(12) {
            let ts = i64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            let rel = u32::from_be_bytes([c[8], c[9], c[10], c[11]]);
            if let Some(&(lt, lr)) = entries.last() {
                if ts <= lt || rel < lr {
                    valid = false;
                    break;
                }
            }
            entries.push((ts, rel));
        }
        let backing = Backing {
            path: path.to_path_buf(),
            persisted: entries.len(),
            on_disk: Some(bytes.len() as u64),
            unsynced: false,
        };
        Ok((TimeIndex { backing, entries }, valid))
    }

    /// The time index of an empty segment, without reading its file (as [`OffsetIndex::assume_empty`]).
    pub fn assume_empty(path: &Path) -> TimeIndex {
        TimeIndex {
            backing: Backing::unread(path),
            entries: Vec::new(),
        }
    }

    /// Adds an entry (in memory until the next `write`) if `timestamp` is larger than the last one's.
    pub fn maybe_append(&mut self, timestamp: i64, relative_offset: u32) {
        if let Some(&(t, _)) = self.entries.last() {
            if timestamp <= t {
                return;
            }
        }
        self.entries.push((timestamp, relative_offset));
    }

    /// The relative offset of the last entry whose timestamp is below `timestamp`:
    /// every batch before it has max timestamp < target, so the scan may start there.
    pub fn lookup(&self, timestamp: i64) -> Option<u32> {
        let i = self.entries.partition_point(|&(t, _)| t < timestamp);
        (i > 0).then(|| self.entries[i - 1].1)
    }

    pub fn last(&self) -> Option<(i64, u32)> {
        self.entries.last().copied()
    }

    /// Drops entries at or past `relative_offset`.
    pub fn truncate_to_offset(&mut self, relative_offset: u32) -> io::Result<()> {
        let keep = self.entries.partition_point(|&(_, r)| r < relative_offset);
        self.entries.truncate(keep);
        self.backing.truncate(keep, 12)
    }

    pub fn clear(&mut self) -> io::Result<()> {
        self.entries.clear();
        self.backing.truncate(0, 12)
    }

    /// Writes the entries the file does not have yet; with `sync`, fsyncs it.
    pub fn write(&mut self, sync: bool) -> io::Result<()> {
        let mut bytes = Vec::with_capacity((self.entries.len() - self.backing.persisted) * 12);
        for &(ts, rel) in &self.entries[self.backing.persisted..] {
            bytes.extend_from_slice(&ts.to_be_bytes());
            bytes.extend_from_slice(&rel.to_be_bytes());
        }
        self.backing.write(&bytes, self.entries.len(), sync)
    }
}

/// Reads an index file, creating it empty if it is missing (as Kafka lays them out).
fn create_and_read(path: &Path) -> io::Result<Vec<u8>> {
    let mut file = OpenOptions::new().read(true).append(true).create(true).open(path)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_index_lookup_finds_the_nearest_entry_below() {
        let dir = tempfile::tempdir().unwrap();
        let (mut idx, ok) = OffsetIndex::open(&dir.path().join("0.index")).unwrap();
        assert!(ok);
        assert_eq!(idx.lookup(5), None);
        for i in 1..100u32 {
            idx.append(i * 10, i * 4096);
        }
        assert_eq!(idx.lookup(9), None);
        assert_eq!(idx.lookup(10), Some((10, 4096)));
        assert_eq!(idx.lookup(15), Some((10, 4096)));
        assert_eq!(idx.lookup(990), Some((990, 99 * 4096)));
        assert_eq!(idx.lookup(u32::MAX), Some((990, 99 * 4096)));
        idx.write(true).unwrap();
        drop(idx);
        let (idx, ok) = OffsetIndex::open(&dir.path().join("0.index")).unwrap();
        assert!(ok);
        assert_eq!(idx.len(), 99);
        assert_eq!(idx.lookup(505), Some((500, 50 * 4096)));
    }

    #[test]
    fn corrupt_offset_index_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.index");
        std::fs::write(&p, [0u8, 0, 0, 5, 0, 0, 1, 0, 0, 0, 0, 3, 0, 0, 2, 0]).unwrap();
        assert!(!OffsetIndex::open(&p).unwrap().1);
        std::fs::write(&p, [0u8, 0, 0, 5, 0]).unwrap();
        assert!(!OffsetIndex::open(&p).unwrap().1);
    }

    #[test]
    fn a_rebuild_cuts_a_torn_tail_so_new_entries_are_not_written_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.index");
        // One whole entry, then half of one (a crash mid-write).
        std::fs::write(&p, [0u8, 0, 0, 5, 0, 0, 1, 0, 0, 0, 0, 9]).unwrap();
        let (mut idx, ok) = OffsetIndex::open(&p).unwrap();
        assert!(!ok);
        idx.clear().unwrap();
        idx.append(7, 100);
        idx.write(true).unwrap();
        let (idx, ok) = OffsetIndex::open(&p).unwrap();
        assert!(ok, "the rebuilt file is whole");
        assert_eq!(idx.last(), Some((7, 100)));
        // The same with only a torn entry (nothing valid before it).
        std::fs::write(&p, [0u8, 0, 0, 5]).unwrap();
        let (mut idx, _) = OffsetIndex::open(&p).unwrap();
        idx.clear().unwrap();
        idx.append(3, 50);
        idx.write(true).unwrap();
        assert_eq!(OffsetIndex::open(&p).unwrap().0.last(), Some((3, 50)));
    }

    #[test]
    fn time_index_lookup_and_truncate() {
        let dir = tempfile::tempdir().unwrap();
        let (mut ti, _) = TimeIndex::open(&dir.path().join("0.timeindex")).unwrap();
        ti.maybe_append(100, 0);
        ti.maybe_append(90, 5); // not increasing: skipped
        ti.maybe_append(200, 10);
        ti.maybe_append(300, 20);
        assert_eq!(ti.lookup(50), None);
        assert_eq!(ti.lookup(100), None);
        assert_eq!(ti.lookup(150), Some(0));
        assert_eq!(ti.lookup(301), Some(20));
        ti.truncate_to_offset(10).unwrap();
        assert_eq!(ti.last(), Some((100, 0)));
    }

    #[test]
    fn entries_reach_the_file_when_written_and_a_truncation_below_them_cuts_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.index");
        let (mut idx, _) = OffsetIndex::open(&p).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().len(),
            0,
            "an index file exists from the start"
        );
        for i in 1..=4u32 {
            idx.append(i, i * 100);
        }
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 0, "appends stay in memory");
        idx.write(false).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 32);
        idx.append(5, 500);
        idx.truncate_to_position(250).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().len(),
            16,
            "the file holds no entry past the cut"
        );
        idx.append(3, 260);
        idx.write(false).unwrap();
        let (again, ok) = OffsetIndex::open(&p).unwrap();
        assert!(ok);
        assert_eq!(again.entries, vec![(1, 100), (2, 200), (3, 260)]);

        let tp = dir.path().join("0.timeindex");
        let (mut ti, _) = TimeIndex::open(&tp).unwrap();
        ti.maybe_append(10, 0);
        ti.maybe_append(20, 4);
        ti.write(true).unwrap();
        ti.clear().unwrap();
        assert_eq!(std::fs::metadata(&tp).unwrap().len(), 0);
        ti.maybe_append(30, 0);
        ti.write(false).unwrap();
        assert_eq!(TimeIndex::open(&tp).unwrap().0.entries, vec![(30, 0)]);
    }
}
