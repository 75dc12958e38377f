//! Atomic replacement of small state files (checkpoints, snapshots, metadata):
//! a reader after a crash sees the old contents or the new, never a mix.
//!
//! Write a temporary file beside the target, fsync it, rename it over the
//! target, then fsync the directory: without that last step the rename itself
//! may not survive a power loss, and the old file comes back.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// Replaces `path` with `bytes`, durably.
pub fn replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

/// Replaces `path` with `bytes` by a rename, without fsync: a reader sees the old
/// contents or the new after the process dies; for a shutdown that syncs the
/// whole file system afterwards ([`sync_file_system`]).
pub fn replace_unsynced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// Overwrites `path` with `bytes` in place, without fsync: one `pwrite` at the
/// start and a cut to the new length. Only for small files whose format says
/// how much of it is valid (a count line) and whose contents can be rebuilt
/// from the data they describe (the leader epoch cache, from the batches):
/// a process killed between the write and the cut leaves a longer file whose
/// extra lines the count excludes; a power loss may leave old, new or torn
/// contents, which the reader detects or the rebuild corrects. A temporary file
/// and a rename per leadership change cost an inode allocation and, on ext4,
/// a forced write-back (auto_da_alloc): most of a start-up with many partitions.
pub fn overwrite_unsynced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    f.write_all_at(bytes, 0)?;
    f.set_len(bytes.len() as u64)
}

/// Makes everything written to the file system holding `dir` durable (`syncfs`),
/// failing if writing any of it back fails (Linux 5.8 and later report that).
pub fn sync_file_system(dir: &Path) -> io::Result<()> {
    let d = File::open(dir)?;
    // SAFETY: syncfs takes a file descriptor that `d` keeps open for the call.
    if unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&d)) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overwrite_in_place_replaces_longer_and_shorter_contents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leader-epoch-checkpoint");
        overwrite_unsynced(&path, b"0\n2\n0 0\n1 10\n").unwrap();
        overwrite_unsynced(&path, b"0\n1\n5 7\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"0\n1\n5 7\n");
        overwrite_unsynced(&path, b"0\n3\n5 7\n6 8\n7 9\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"0\n3\n5 7\n6 8\n7 9\n");
    }

    #[test]
    fn replace_writes_then_overwrites_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.checkpoint");
        replace(&path, b"one").unwrap();
        replace(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.checkpoint")]);
    }

    #[test]
    fn a_missing_directory_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        assert!(replace(&dir.path().join("absent/state"), b"x").is_err());
    }
}
