//! A bounded set of open segment files. A broker with 100,000 partitions would
//! otherwise hold 100,000 log files open, more than many hosts and containers
//! allow a process (and a soft limit cannot be raised past the hard one). Each
//! segment's log is a [`CachedFile`]: opened on first use, closed again when
//! more files are open than the budget allows, least recently used first, and
//! reopened by the next read or append. Idle partitions hold no file.
//!
//! A caller holding an `Arc<File>` from [`CachedFile::get`] (a fetch being sent,
//! a background fsync) keeps that descriptor until it is done: eviction only
//! drops the cache's reference. Hand-written: the file-descriptor caches of the
//! crates we looked at own the files and hand out guards that would pin a
//! descriptor for a whole zero-copy send.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// The process-wide set of cached files.
struct Registry {
    files: Mutex<Vec<Weak<CachedFile>>>,
    open: AtomicUsize,
    tick: AtomicU64,
    budget: AtomicUsize,
}

fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(|| Registry {
        files: Mutex::new(Vec::new()),
        open: AtomicUsize::new(0),
        tick: AtomicU64::new(0),
        budget: AtomicUsize::new(default_budget()),
    })
}

/// Half the open files soft limit (the broker raises it to the hard limit at
/// start): the other half is left to sockets, index and checkpoint files.
fn default_budget() -> usize {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct passed by reference.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } == 0 {
        l.rlim_cur
    } else {
        1024
    };
    (soft / 2).clamp(64, 1 << 30) as usize
}

/// Sets how many segment files may stay open (tests, and a broker that knows better).
pub fn set_budget(files: usize) {
    registry().budget.store(files.max(1), Ordering::SeqCst);
}

/// How many segment files may stay open.
pub fn budget() -> usize {
    registry().budget.load(Ordering::SeqCst)
}

/// How many segment files are open now.
pub fn open_count() -> usize {
    registry().open.load(Ordering::SeqCst)
}

/// A segment file opened on demand (read + append) and closable at any time.
#[derive(Debug)]
pub struct CachedFile {
    path: PathBuf,
    slot: Mutex<Option<Arc<File>>>,
    last_used: AtomicU64,
}

impl CachedFile {
    /// Opens (creating it if missing) `path` now and registers it.
    pub fn open(path: &Path) -> io::Result<Arc<CachedFile>> {
        let f = Arc::new(CachedFile {
            path: path.to_path_buf(),
            slot: Mutex::new(None),
            last_used: AtomicU64::new(0),
        });
        {
            let mut files = registry().files.lock().unwrap_or_else(|e| e.into_inner());
            files.push(Arc::downgrade(&f));
        }
        f.open_file(true)?;
        Ok(f)
    }

    /// The open file, reopened if it was closed (never created again: a file
    /// removed with its partition stays removed).
    pub fn get(&self) -> io::Result<Arc<File>> {
        self.open_file(false)
    }

    fn open_file(&self, create: bool) -> io::Result<Arc<File>> {
        let r = registry();
        self.last_used
            .store(r.tick.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        let file = {
            let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(f) = slot.as_ref() {
                return Ok(Arc::clone(f));
            }
            let f = Arc::new(
                OpenOptions::new()
                    .read(true)
                    .append(true)
                    .create(create)
                    .open(&self.path)?,
            );
            *slot = Some(Arc::clone(&f));
            f
        };
        if r.open.fetch_add(1, Ordering::SeqCst) + 1 > r.budget.load(Ordering::SeqCst) {
            evict();
        }
        Ok(file)
    }

    /// Whether the file is open now.
    pub fn is_open(&self) -> bool {
        self.slot.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    /// Closes the cache's reference (holders of an `Arc<File>` keep theirs).
    fn close(&self) -> bool {
        // A file in use right now is skipped rather than waited for.
        let Ok(mut slot) = self.slot.try_lock() else {
            return false;
        };
        if slot.take().is_some() {
            registry().open.fetch_sub(1, Ordering::SeqCst);
            return true;
        }
        false
    }
}

impl Drop for CachedFile {
    fn drop(&mut self) {
        let slot = self.slot.get_mut().unwrap_or_else(|e| e.into_inner());
        if slot.take().is_some() {
            registry().open.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Closes the least recently used files until a tenth of the budget is free
/// (so that the scan, linear in the registered files, runs rarely).
fn evict() {
    let r = registry();
    let budget = r.budget.load(Ordering::SeqCst);
    let target = budget - budget / 10;
    let mut files = r.files.lock().unwrap_or_else(|e| e.into_inner());
    let open = r.open.load(Ordering::SeqCst);
    if open <= budget {
        return; // another thread evicted meanwhile
    }
    files.retain(|w| w.strong_count() > 0);
    let mut candidates: Vec<(u64, Arc<CachedFile>)> = files
        .iter()
        .filter_map(Weak::upgrade)
        .filter(|f| f.is_open())
        .map(|f| (f.last_used.load(Ordering::Relaxed), f))
        .collect();
    candidates.sort_unstable_by_key(|(used, _)| *used);
    let mut excess = open.saturating_sub(target);
    for (_, f) in candidates {
        if excess == 0 {
            break;
        }
        if f.close() {
            excess -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    // One test: the budget is process-wide.
    #[test]
    fn files_beyond_the_budget_are_closed_least_recently_used_first_and_reopen_on_use() {
        let dir = tempfile::tempdir().unwrap();
        set_budget(20);
        let files: Vec<_> = (0..40)
            .map(|i| CachedFile::open(&dir.path().join(format!("{i}.log"))).unwrap())
            .collect();
        // Counted over this test's files: other tests in this process open
        // and close files of their own meanwhile (the global count moves).
        let open_here = files.iter().filter(|f| f.is_open()).count();
        assert!(open_here <= 20, "open: {open_here}");
        assert!(files[39].is_open(), "the newest stays open");
        assert!(!files[0].is_open(), "the oldest was closed");
        // A holder keeps its descriptor across eviction; writes through it land.
        let held = files[39].get().unwrap();
        for f in &files[..30] {
            f.get().unwrap();
        }
        assert!(!files[39].is_open());
        (&*held).write_all(b"still open").unwrap();
        drop(held);
        // Reopening finds what was written.
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 10];
        files[39].get().unwrap().read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"still open");
        // Dropping closes: no descriptor of the process points into this
        // test's directory any more (the global count is other tests' too).
        drop(files);
        let ours = std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|target| target.starts_with(dir.path()))
            .count();
        assert_eq!(ours, 0, "descriptors left open after the files were dropped");
        set_budget(default_budget());
    }
}
