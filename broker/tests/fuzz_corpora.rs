//! Every input of the fuzz targets' checked-in corpora (fuzz/corpus/<target>)
//! through the same target bodies libFuzzer drives (fuzz/src/targets), in an
//! ordinary release build: a regression found once stays fixed without the
//! sanitizer build `make fuzz-check` needs. New coverage is `make fuzz`'s job;
//! this replays what it found.

#[path = "../../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod skein_fuzz;

// The target bodies name the shared helper as `crate::request_frame`.
use skein_fuzz::request_frame;
use skein_fuzz::targets;

use std::path::{Path, PathBuf};

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no input", dir.display());
    files
}

/// Each input through `run`; a panic names the input.
fn replay(target: &str, run: fn(&[u8])) {
    for path in corpus(target) {
        let data = std::fs::read(&path).expect("corpus input");
        if std::panic::catch_unwind(|| run(&data)).is_err() {
            panic!(
                "{target}: {} fails (see fuzz/corpus; run `cargo fuzz run {target} <file>`)",
                path.display()
            );
        }
    }
}

#[test]
fn request_decode_corpus() {
    replay("request_decode", targets::request_decode::run);
}

#[test]
fn request_handle_corpus() {
    replay("request_handle", targets::request_handle::run);
}

#[test]
fn record_batch_corpus() {
    replay("record_batch", targets::record_batch::run);
}

#[test]
fn metadata_command_corpus() {
    replay("metadata_command", targets::metadata_command::run);
}

#[test]
fn txn_state_corpus() {
    replay("txn_state", targets::txn_state::run);
}

#[test]
fn tls_accept_corpus() {
    replay("tls_accept", targets::tls_accept::run);
}

#[test]
fn client_certificate_corpus() {
    replay("client_certificate", targets::client_certificate::run);
}

#[test]
fn sasl_exchange_corpus() {
    replay("sasl_exchange", targets::sasl_exchange::run);
}

#[test]
fn request_frame_reaches_every_served_api() {
    let rows = skein_broker::protocol::API_TABLE.len();
    let keys: std::collections::BTreeSet<i16> = (0..rows as u8)
        .filter_map(|row| request_frame(&[row, 0, 0, 0, 0, 1]))
        .map(|f| i16::from_be_bytes([f[0], f[1]]))
        .collect();
    assert_eq!(keys.len(), rows);
}
