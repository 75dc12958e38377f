//! The leader epoch cache (Kafka's `LeaderEpochFileCache`): for each leader
//! epoch, the first offset written in it. A follower asks the leader for the end
//! of its latest epoch (OffsetForLeaderEpoch, KIP-101/279) and truncates what
//! lies beyond, so a log never keeps a tail the new leader does not have.
//!
//! Persisted as `leader-epoch-checkpoint` in Kafka's text format: a version
//! line, a count line, then `epoch start_offset` per line.

use std::io;
use std::path::{Path, PathBuf};

/// Epoch entries in increasing epoch and offset order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<(i32, i64)>,
    path: Option<PathBuf>,
}

/// Kafka's UNDEFINED_EPOCH / UNDEFINED_EPOCH_OFFSET.
pub const UNDEFINED: (i32, i64) = (-1, -1);

impl LeaderEpochCache {
    /// Loads the cache of the log in `dir` (empty if the file is missing).
    pub fn load(dir: &Path) -> io::Result<LeaderEpochCache> {
        let path = dir.join("leader-epoch-checkpoint");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let mut entries = Vec::new();
        for line in text.lines().skip(2) {
            let mut it = line.split_whitespace();
            if let (Some(Ok(e)), Some(Ok(o))) = (it.next().map(str::parse), it.next().map(str::parse)) {
                entries.push((e, o));
            }
        }
        Ok(LeaderEpochCache {
            entries,
            path: Some(path),
        })
    }

    fn persist(&self) -> io::Result<()> {
        let Some(path) = &self.path else { return Ok(()) };
        let mut text = format!("0\n{}\n", self.entries.len());
        for (e, o) in &self.entries {
            text.push_str(&format!("{e} {o}\n"));
        }
        crate::atomic_file::replace(path, text.as_bytes())
    }

    /// Records that `epoch` starts at `offset`, if it is newer than the latest.
    pub fn assign(&mut self, epoch: i32, offset: i64) -> io::Result<()> {
        if epoch < 0 || self.entries.last().is_some_and(|&(e, _)| e >= epoch) {
            return Ok(());
        }
        self.entries.push((epoch, offset));
        self.persist()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        LeaderEpochCache {
            entries: entries.to_vec(),
            path: None,
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
}
