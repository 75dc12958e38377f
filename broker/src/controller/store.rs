//! The metadata log and state machine on disk, for openraft.
//!
//! `<log.dirs>/__cluster_metadata-0/` holds `log` (length-prefixed JSON entries,
//! appended and fsynced before openraft is told they are durable), `vote`,
//! `committed`, `purged` and `snapshot` (the image at a log position). The log
//! is small and changes rarely, so it is also kept in memory; truncation and
//! purging rewrite the file. Start-up loads the snapshot and openraft re-applies
//! the committed entries after it.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, Cursor, Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, LogId, OptionalSend, RaftLogReader, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership, Vote,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::image::{MetadataImage, Reply};
use super::TypeConfig;

type NodeId = u64;
type Node = super::QuorumNode;

fn io_err(e: impl std::error::Error + 'static) -> io::Error {
    io::Error::other(e.to_string())
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(io_err),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn encode_entries<'a>(entries: impl Iterator<Item = &'a Entry<TypeConfig>>) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    for e in entries {
        let json = serde_json::to_vec(e).map_err(io_err)?;
        buf.extend_from_slice(&(json.len() as u32).to_be_bytes());
        buf.extend_from_slice(&json);
    }
    Ok(buf)
}

#[derive(Debug)]
struct LogInner {
    dir: PathBuf,
    entries: BTreeMap<u64, Entry<TypeConfig>>,
    file: File,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
    purged: Option<LogId<NodeId>>,
}

impl LogInner {
    /// Appends entries to the file, fsyncs, then adds them to memory.
    fn write_entries(&mut self, entries: Vec<Entry<TypeConfig>>) -> io::Result<()> {
        let buf = encode_entries(entries.iter())?;
        self.file.write_all(&buf)?;
        self.file.sync_data()?;
        for e in entries {
            self.entries.insert(e.log_id.index, e);
        }
        Ok(())
    }

    fn rewrite(&mut self) -> io::Result<()> {
        let path = self.dir.join("log");
        crate::atomic_file::replace(&path, &encode_entries(self.entries.values())?)?;
        self.file = OpenOptions::new().append(true).open(&path)?;
        Ok(())
    }
}

/// The Raft log and vote. Clones share the same log (openraft reads with one while writing with another).
#[derive(Debug, Clone)]
pub struct LogStore {
    inner: Arc<Mutex<LogInner>>,
}

impl LogStore {
    /// Opens the log in `dir`, dropping a torn last entry left by a crash.
    pub fn open(dir: &Path) -> io::Result<LogStore> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("log");
        let mut bytes = Vec::new();
        match File::open(&path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut entries = BTreeMap::new();
        let mut pos = 0usize;
        while pos + 4 <= bytes.len() {
            let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().expect("4 bytes")) as usize;
            let Some(json) = bytes.get(pos + 4..pos + 4 + len) else {
                break;
            };
            let Ok(entry) = serde_json::from_slice::<Entry<TypeConfig>>(json) else {
                break;
            };
            entries.insert(entry.log_id.index, entry);
            pos += 4 + len;
        }
        if pos < bytes.len() {
            tracing::warn!(bytes = bytes.len() - pos, "cutting a torn tail off the metadata log");
            let f = OpenOptions::new().write(true).open(&path)?;
            f.set_len(pos as u64)?;
            f.sync_all()?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(LogStore {
            inner: Arc::new(Mutex::new(LogInner {
                dir: dir.to_path_buf(),
                entries,
                file,
                vote: read_json(&dir.join("vote"))?,
                committed: read_json(&dir.join("committed"))?,
                purged: read_json(&dir.join("purged"))?,
            })),
        })
    }

    /// The id of the last entry in the log (or of the last purged one).
    pub fn last_log_id(&self) -> Option<LogId<NodeId>> {
        let inner = self.lock();
        inner.entries.values().next_back().map(|e| e.log_id).or(inner.purged)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LogInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs disk work for the log on a blocking thread.
    async fn with_inner<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut LogInner) -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&mut inner.lock().unwrap_or_else(|e| e.into_inner())))
            .await
            .unwrap_or_else(|e| Err(io::Error::other(e.to_string())))
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        Ok(self.lock().entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let last = self.last_log_id();
        Ok(LogState {
            last_purged_log_id: self.lock().purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let vote = *vote;
        self.with_inner(move |i| {
            crate::atomic_file::replace(&i.dir.join("vote"), &serde_json::to_vec(&vote).map_err(io_err)?)?;
            i.vote = Some(vote);
            Ok(())
        })
        .await
        .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.lock().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), StorageError<NodeId>> {
        self.with_inner(move |i| {
            crate::atomic_file::replace(
                &i.dir.join("committed"),
                &serde_json::to_vec(&committed).map_err(io_err)?,
            )?;
            i.committed = committed;
            Ok(())
        })
        .await
        .map_err(|e| StorageIOError::write(&e).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.lock().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        let result = self.with_inner(move |i| i.write_entries(entries)).await;
        let failed = result.as_ref().err().map(|e| StorageIOError::write_logs(e).into());
        callback.log_io_completed(result);
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.with_inner(move |i| {
            i.entries.split_off(&log_id.index);
            i.rewrite()
        })
        .await
        .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.with_inner(move |i| {
            crate::atomic_file::replace(
                &i.dir.join("purged"),
                &serde_json::to_vec(&Some(log_id)).map_err(io_err)?,
            )?;
            i.purged = Some(log_id);
            i.entries = i.entries.split_off(&(log_id.index + 1));
            i.rewrite()
        })
        .await
        .map_err(|e| StorageIOError::write_logs(&e).into())
    }
}

/// The state machine's persisted form: the image at a log position.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct StoredSnapshot {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, Node>,
    image: MetadataImage,
    snapshot_id: String,
}

/// Applies committed commands to the shared [`MetadataImage`] and publishes each new version.
#[derive(Debug, Clone)]
pub struct StateMachine {
    dir: PathBuf,
    image: Arc<RwLock<MetadataImage>>,
    state: Arc<Mutex<StoredSnapshot>>,
    /// The index of the last applied log entry, sent after every apply (even
    /// when it did not move): the broker's reconciler watches it, and a
    /// proposer waits on it to read its own write.
    applied: watch::Sender<u64>,
}

impl StateMachine {
    /// Loads the last snapshot, if any, into `image`.
    pub fn open(dir: &Path, image: Arc<RwLock<MetadataImage>>, applied: watch::Sender<u64>) -> io::Result<Self> {
        let snap: StoredSnapshot = read_json(&dir.join("snapshot"))?.unwrap_or_default();
        *image.write().unwrap_or_else(|e| e.into_inner()) = snap.image.clone();
        applied.send_replace(snap.last_applied.map_or(0, |l| l.index));
        Ok(StateMachine {
            dir: dir.to_path_buf(),
            image,
            state: Arc::new(Mutex::new(snap)),
            applied,
        })
    }

    /// Tells watchers the log is applied up to `index` (never backwards).
    fn publish_applied(&self, index: u64) {
        self.applied.send_modify(|v| *v = index.max(*v));
    }

    fn state(&self) -> std::sync::MutexGuard<'_, StoredSnapshot> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn current(&self) -> StoredSnapshot {
        let mut s = self.state().clone();
        s.image = self.image.read().unwrap_or_else(|e| e.into_inner()).clone();
        s
    }

    // openraft's traits fix the error type; it is large, but errors here are rare.
    #[allow(clippy::result_large_err)]
    fn to_snapshot(s: &StoredSnapshot) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let bytes = serde_json::to_vec(s).map_err(|e| StorageIOError::read_state_machine(&e))?;
        Ok(Snapshot {
            meta: SnapshotMeta {
                last_log_id: s.last_applied,
                last_membership: s.membership.clone(),
                snapshot_id: s.snapshot_id.clone(),
            },
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let mut s = self.current();
        s.snapshot_id = match s.last_applied {
            Some(l) => format!("{}-{}", l.leader_id, l.index),
            None => "empty".into(),
        };
        let bytes = serde_json::to_vec(&s).map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        let path = self.dir.join("snapshot");
        tokio::task::spawn_blocking(move || crate::atomic_file::replace(&path, &bytes))
            .await
            .unwrap_or_else(|e| Err(io::Error::other(e.to_string())))
            .map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        Self::to_snapshot(&s)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, Node>), StorageError<NodeId>> {
        let s = self.state();
        Ok((s.last_applied, s.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Reply>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut replies = Vec::new();
        let last = {
            let mut image = self.image.write().unwrap_or_else(|e| e.into_inner());
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            for entry in entries {
                state.last_applied = Some(entry.log_id);
                replies.push(match entry.payload {
                    EntryPayload::Blank => Reply::Ok,
                    EntryPayload::Normal(cmd) => image.apply(cmd),
                    EntryPayload::Membership(m) => {
                        state.membership = StoredMembership::new(Some(entry.log_id), m);
                        Reply::Ok
                    }
                });
            }
            state.last_applied.map_or(0, |l| l.index)
        };
        self.publish_applied(last);
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Node>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let bytes = snapshot.into_inner();
        let mut s: StoredSnapshot =
            serde_json::from_slice(&bytes).map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        s.last_applied = meta.last_log_id;
        s.membership = meta.last_membership.clone();
        s.snapshot_id = meta.snapshot_id.clone();
        let path = self.dir.join("snapshot");
        let stored = serde_json::to_vec(&s).map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        tokio::task::spawn_blocking(move || crate::atomic_file::replace(&path, &stored))
            .await
            .unwrap_or_else(|e| Err(io::Error::other(e.to_string())))
            .map_err(|e| StorageIOError::write_snapshot(None, &e))?;
        *self.image.write().unwrap_or_else(|e| e.into_inner()) = s.image.clone();
        let last = s.last_applied.map_or(0, |l| l.index);
        *self.state() = s;
        self.publish_applied(last);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let Some(s) = read_json::<StoredSnapshot>(&self.dir.join("snapshot"))
            .map_err(|e| StorageIOError::read_snapshot(None, &e))?
        else {
            return Ok(None);
        };
        Self::to_snapshot(&s).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::image::Command;
    use openraft::CommittedLeaderId;

    fn entry(index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
            payload: EntryPayload::Normal(Command::DeleteTopic {
                name: format!("t{index}"),
            }),
        }
    }

    fn indexes(store: &LogStore) -> Vec<u64> {
        store.lock().entries.keys().copied().collect()
    }

    #[tokio::test]
    async fn the_log_survives_reopening_after_truncate_purge_and_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        store
            .with_inner(|i| i.write_entries((1..=5).map(entry).collect()))
            .await
            .unwrap();
        store.truncate(entry(4).log_id).await.unwrap();
        assert_eq!(indexes(&LogStore::open(dir.path()).unwrap()), vec![1, 2, 3]);
        store.purge(entry(1).log_id).await.unwrap();
        let mut reopened = LogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&reopened), vec![2, 3]);
        let state = reopened.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(entry(1).log_id));
        assert_eq!(state.last_log_id, Some(entry(3).log_id));
        // A crash in the middle of an append leaves half an entry: it is cut.
        let mut f = OpenOptions::new().append(true).open(dir.path().join("log")).unwrap();
        f.write_all(&[0, 0, 0, 50, b'{']).unwrap();
        assert_eq!(indexes(&LogStore::open(dir.path()).unwrap()), vec![2, 3]);
        let again = LogStore::open(dir.path()).unwrap();
        again.with_inner(|i| i.write_entries(vec![entry(4)])).await.unwrap();
        assert_eq!(indexes(&LogStore::open(dir.path()).unwrap()), vec![2, 3, 4]);
    }

    #[tokio::test]
    async fn the_applied_watch_carries_the_last_applied_index_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let image = Arc::new(RwLock::new(MetadataImage::default()));
        let (tx, rx) = watch::channel(0u64);
        let mut sm = StateMachine::open(dir.path(), Arc::clone(&image), tx).unwrap();
        assert_eq!(*rx.borrow(), 0);
        sm.apply((1..=3).map(entry)).await.unwrap();
        assert_eq!(*rx.borrow(), 3);
        sm.apply(vec![entry(4)]).await.unwrap();
        assert_eq!(*rx.borrow(), 4);
        // Reopened from its snapshot, the machine starts at the snapshot's index.
        let mut builder = sm.get_snapshot_builder().await;
        builder.build_snapshot().await.unwrap();
        let (tx, rx) = watch::channel(0u64);
        StateMachine::open(dir.path(), image, tx).unwrap();
        assert_eq!(*rx.borrow(), 4);
    }

    #[tokio::test]
    async fn the_vote_is_durable() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path()).unwrap();
        let vote = Vote::new_committed(3, 1);
        store.save_vote(&vote).await.unwrap();
        assert_eq!(
            LogStore::open(dir.path()).unwrap().read_vote().await.unwrap(),
            Some(vote)
        );
    }
}
