//! The leader epoch cache (Kafka's `LeaderEpochFileCache`): for each leader
//! epoch, the first offset written in it. A follower asks the leader for the end
//! of its latest epoch (OffsetForLeaderEpoch, KIP-101/279) and truncates what
//! lies beyond, so a log never keeps a tail the new leader does not have.
//!
//! Persisted as `leader-epoch-checkpoint` in Kafka's text format: a version
//! line, a count line, then `epoch start_offset` per line. The file is
//! overwritten in place without fsync (only the counted lines are read): every batch carries its leader epoch, so when the log is
//! opened the cache is checked against the log's last batch and rebuilt from
//! the batches where the file is missing, torn or behind. What only the file
//! knows (an epoch that began and wrote nothing) may be lost in a power loss,
//! which is the state the replica would be in had it crashed a moment earlier.

use std::io;
use std::path::{Path, PathBuf};

/// The checkpoint's file name in a partition's directory (Kafka's).
pub const FILE_NAME: &str = "leader-epoch-checkpoint";

/// Epoch entries in increasing epoch and offset order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<(i32, i64)>,
    path: Option<PathBuf>,
    /// An epoch was begun in memory and the file does not have it yet.
    unpersisted: bool,
}

/// Kafka's UNDEFINED_EPOCH / UNDEFINED_EPOCH_OFFSET.
pub const UNDEFINED: (i32, i64) = (-1, -1);

impl LeaderEpochCache {
    /// Loads the cache of the log in `dir`: empty if the file is missing or is
    /// not a well-formed checkpoint (the caller rebuilds it from the log).
    pub fn load(dir: &Path) -> io::Result<LeaderEpochCache> {
        Self::load_if(dir, true)
    }

    /// [`LeaderEpochCache::load`], where the caller listed `dir` and knows
    /// whether the file `exists` (a missing file is not looked for again).
    pub fn load_if(dir: &Path, exists: bool) -> io::Result<LeaderEpochCache> {
        let path = dir.join(FILE_NAME);
        if !exists {
            return Ok(LeaderEpochCache {
                entries: Vec::new(),
                path: Some(path),
                unpersisted: false,
            });
        }
        let bytes = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let entries = match parse(&bytes) {
            Some(entries) => entries,
            None => {
                tracing::warn!(path = %path.display(), "the leader epoch checkpoint is malformed; rebuilding it from the log");
                Vec::new()
            }
        };
        Ok(LeaderEpochCache {
            entries,
            path: Some(path),
            unpersisted: false,
        })
    }

    fn persist(&mut self) -> io::Result<()> {
        self.unpersisted = false;
        let Some(path) = &self.path else { return Ok(()) };
        crate::atomic_file::overwrite_unsynced(path, render(&self.entries).as_bytes())
    }

    /// Brings the cache up to the log's batches when the log's last batch has an
    /// epoch newer than the cache knows (or the cache is empty): `batches` yields
    /// (leader epoch, base offset) from the latest known epoch's start on.
    /// Returns whether anything changed (the file was rewritten).
    pub fn catch_up(&mut self, batches: impl Iterator<Item = (i32, i64)>) -> io::Result<bool> {
        let before = self.entries.len();
        for (epoch, offset) in batches {
            if epoch >= 0 && self.entries.last().is_none_or(|&(e, _)| epoch > e) {
                self.entries.push((epoch, offset));
            }
        }
        let changed = self.entries.len() != before;
        if changed {
            self.persist()?;
        }
        Ok(changed)
    }

    /// Forgets epochs that start at or after `offset` in memory only: at open,
    /// the file is left as it is until the next change rewrites it.
    pub fn forget_from(&mut self, offset: i64) {
        self.entries.retain(|&(_, o)| o < offset);
    }

    /// Records that `epoch` starts at `offset`, if it is newer than the latest.
    /// Called for every batch written: the file then has every epoch that
    /// holds a batch.
    pub fn assign(&mut self, epoch: i32, offset: i64) -> io::Result<()> {
        self.begin(epoch, offset);
        if self.unpersisted {
            self.persist()?;
        }
        Ok(())
    }

    /// Records that `epoch` starts at `offset` in memory only: a new leader's
    /// epoch, written to the file with the first batch of it (or the next
    /// change). Until then the file lacks an epoch that holds nothing, which is
    /// what the log itself shows after a crash (see the module's note), and a
    /// broker taking the lead of many idle partitions writes no files.
    pub fn begin(&mut self, epoch: i32, offset: i64) {
        if epoch < 0 || self.entries.last().is_some_and(|&(e, _)| e >= epoch) {
            return;
        }
        self.entries.push((epoch, offset));
        self.unpersisted = true;
    }

    /// The latest epoch, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|&(e, _)| e)
    }

    /// The start offset of the latest epoch.
    pub fn latest_start(&self) -> Option<i64> {
        self.entries.last().map(|&(_, o)| o)
    }

    /// OffsetForLeaderEpoch: the largest epoch <= `epoch` and the offset where it
    /// ends (the next epoch's start, or `log_end` for the latest). UNDEFINED if
    /// `epoch` is older than everything known.
    pub fn end_offset_for(&self, epoch: i32, log_end: i64) -> (i32, i64) {
        let Some(i) = self.entries.iter().rposition(|&(e, _)| e <= epoch) else {
            return UNDEFINED;
        };
        let found = self.entries[i].0;
        let end = self.entries.get(i + 1).map_or(log_end, |&(_, o)| o);
        (found, end)
    }

    /// Forgets epochs that start at or after `offset` (the log was truncated there).
    pub fn truncate_from(&mut self, offset: i64) -> io::Result<()> {
        let before = self.entries.len();
        self.entries.retain(|&(_, o)| o < offset);
        if self.entries.len() != before {
            self.persist()?;
        }
        Ok(())
    }
}

fn render(entries: &[(i32, i64)]) -> String {
    let mut text = format!("0\n{}\n", entries.len());
    for (e, o) in entries {
        text.push_str(&format!("{e} {o}\n"));
    }
    text
}

/// A checkpoint's entries: version 0, a count, that many `epoch offset` lines
/// with epochs increasing and offsets not decreasing; None for anything else
/// (an empty file left by a power loss, a torn write).
fn parse(bytes: &[u8]) -> Option<Vec<(i32, i64)>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.lines();
    if lines.next()?.trim() != "0" {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let mut entries: Vec<(i32, i64)> = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let mut it = lines.next()?.split_whitespace();
        let (e, o): (i32, i64) = (it.next()?.parse().ok()?, it.next()?.parse().ok()?);
        if it.next().is_some() || e < 0 || o < 0 || entries.last().is_some_and(|&(le, lo)| e <= le || o < lo) {
            return None;
        }
        entries.push((e, o));
    }
    Some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        LeaderEpochCache {
            entries: entries.to_vec(),
            path: None,
            unpersisted: false,
        }
    }

    #[test]
    fn end_offset_is_the_next_epochs_start_or_the_log_end() {
        let c = cache(&[(0, 0), (2, 100), (5, 250)]);
        assert_eq!(c.end_offset_for(0, 300), (0, 100));
        assert_eq!(
            c.end_offset_for(1, 300),
            (0, 100),
            "an unknown epoch answers for the one before it"
        );
        assert_eq!(c.end_offset_for(2, 300), (2, 250));
        assert_eq!(c.end_offset_for(5, 300), (5, 300));
        assert_eq!(c.end_offset_for(9, 300), (5, 300));
        assert_eq!(cache(&[(3, 10)]).end_offset_for(2, 20), UNDEFINED);
    }

    #[test]
    fn truncation_forgets_later_epochs_and_assign_ignores_older_ones() {
        let mut c = cache(&[(0, 0), (2, 100), (5, 250)]);
        c.truncate_from(120).unwrap();
        assert_eq!(c.entries, vec![(0, 0), (2, 100)]);
        c.assign(1, 130).unwrap();
        assert_eq!(c.latest_epoch(), Some(2));
        c.assign(6, 130).unwrap();
        assert_eq!(c.entries, vec![(0, 0), (2, 100), (6, 130)]);
    }

    #[test]
    fn the_checkpoint_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = LeaderEpochCache::load(dir.path()).unwrap();
        c.assign(0, 0).unwrap();
        c.assign(3, 42).unwrap();
        let again = LeaderEpochCache::load(dir.path()).unwrap();
        assert_eq!(again.entries, vec![(0, 0), (3, 42)]);
        let text = std::fs::read_to_string(dir.path().join("leader-epoch-checkpoint")).unwrap();
        assert_eq!(text, "0\n2\n0 0\n3 42\n");
    }

    #[test]
    fn a_torn_or_empty_checkpoint_loads_as_empty_and_catch_up_rebuilds_it_from_batches() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leader-epoch-checkpoint");
        for bad in [
            &b"0\n3\n0 0\n2 10\n"[..],
            b"0\n1\n",
            b"\0\0\0\0",
            b"1\n1\n0 0\n",
            b"0\n2\n3 10\n2 20\n",
            b"0\nx\n",
        ] {
            std::fs::write(&path, bad).unwrap();
            assert_eq!(LeaderEpochCache::load(dir.path()).unwrap().entries, vec![], "{bad:?}");
        }
        std::fs::write(&path, b"").unwrap();
        let mut c = LeaderEpochCache::load(dir.path()).unwrap();
        let batches = [(0, 0), (0, 5), (-1, 7), (2, 9), (2, 12), (1, 14), (4, 20)];
        assert!(c.catch_up(batches.into_iter()).unwrap());
        assert_eq!(c.entries, vec![(0, 0), (2, 9), (4, 20)]);
        assert_eq!(
            LeaderEpochCache::load(dir.path()).unwrap().entries,
            c.entries,
            "rewritten"
        );
        assert!(!c.catch_up([(4, 25)].into_iter()).unwrap(), "nothing newer: no write");
    }

    #[test]
    fn forgetting_at_open_leaves_the_file_until_the_next_change() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = LeaderEpochCache::load(dir.path()).unwrap();
        c.assign(1, 0).unwrap();
        c.forget_from(0);
        assert_eq!(c.latest_epoch(), None);
        assert_eq!(LeaderEpochCache::load(dir.path()).unwrap().entries, vec![(1, 0)]);
        c.assign(2, 0).unwrap();
        assert_eq!(LeaderEpochCache::load(dir.path()).unwrap().entries, vec![(2, 0)]);
    }
}
