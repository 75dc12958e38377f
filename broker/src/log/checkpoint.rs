//! Offset checkpoint files, in Kafka's text format (`recovery-point-offset-checkpoint`,
//! `log-start-offset-checkpoint`): a version line, a count line, then
//! `topic partition offset` per line. Replaced atomically (`atomic_file`).

use std::collections::HashMap;
use std::io;
use std::path::Path;

/// (topic, partition) -> offset.
pub type Checkpoint = HashMap<(String, i32), i64>;

/// Writes a checkpoint atomically.
pub fn write(path: &Path, entries: &Checkpoint) -> io::Result<()> {
    let mut text = format!("0\n{}\n", entries.len());
    let mut rows: Vec<_> = entries.iter().collect();
    rows.sort();
    for ((topic, partition), offset) in rows {
        text.push_str(&format!("{topic} {partition} {offset}\n"));
    }
    crate::atomic_file::replace(path, text.as_bytes())
}

/// Reads a checkpoint; a missing file is empty, a malformed one is an error.
pub fn read(path: &Path) -> io::Result<Checkpoint> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Checkpoint::new()),
        Err(e) => return Err(e),
    };
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("malformed checkpoint {}", path.display()),
        )
    };
    let mut lines = text.lines();
    if lines.next() != Some("0") {
        return Err(bad());
    }
    let count: usize = lines.next().and_then(|l| l.parse().ok()).ok_or_else(bad)?;
    let mut out = Checkpoint::new();
    for line in lines.take(count) {
        let mut parts = line.rsplitn(3, ' ');
        let offset = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let partition = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let topic = parts.next().ok_or_else(bad)?.to_string();
        out.insert((topic, partition), offset);
    }
    if out.len() != count {
        return Err(bad());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_in_kafka_format() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("recovery-point-offset-checkpoint");
        let mut c = Checkpoint::new();
        c.insert(("orders".into(), 0), 42);
        c.insert(("orders".into(), 1), 7);
        write(&p, &c).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "0\n2\norders 0 42\norders 1 7\n");
        assert_eq!(read(&p).unwrap(), c);
        assert!(read(&dir.path().join("missing")).unwrap().is_empty());
        std::fs::write(&p, "0\n3\norders 0 42\n").unwrap();
        assert!(read(&p).is_err());
    }
}
