use super::batch::tests::make_batch;
use super::*;
use kafka_protocol::records::Compression;

fn config() -> LogConfig {
    LogConfig {
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

fn open(dir: &Path, cfg: LogConfig, clean: bool) -> Log {
    Log::open(dir, cfg, 0, 0, clean, 1_000).unwrap().0
}

fn batch(n: usize, ts: i64) -> Vec<u8> {
    make_batch(n, ts, -1, -1, -1, Compression::None).to_vec()
}

/// Offsets of every batch in a read result.
fn offsets(bytes: &[u8]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let h = batch::validate(&bytes[pos..pos + batch::peek_size(&bytes[pos..]).unwrap()]).unwrap();
        out.push((h.base_offset, h.last_offset()));
        pos += h.size();
    }
    out
}

#[test]
fn append_assigns_consecutive_offsets_and_read_returns_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config(), true);
    for i in 0..100 {
        let info = log.append(&batch(3, i), 1_000, 0).unwrap();
        assert_eq!((info.base_offset, info.last_offset), (i * 3, i * 3 + 2));
    }
    assert_eq!(log.log_end_offset(), 300);
    // Any offset inside a batch returns that whole batch first.
    let r = log.read(151, 1 << 20, true).unwrap();
    assert_eq!(offsets(&r.bytes)[0], (150, 152));
    assert_eq!(offsets(&r.bytes).last().unwrap().1, 299);
    // max_bytes smaller than a batch still returns one whole batch.
    let r = log.read(0, 10, true).unwrap();
    assert_eq!(offsets(&r.bytes), vec![(0, 2)]);
    assert!(log.read(0, 10, false).unwrap().bytes.is_empty());
    assert!(log.read(300, 1000, true).unwrap().bytes.is_empty());
    assert!(matches!(
        log.read(301, 1000, true),
        Err(ReadError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn index_lookup_finds_every_offset_across_rolled_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 4096,
            ..config()
        },
        true,
    );
    for i in 0..500 {
        log.append(&batch(2, i), 1_000, 0).unwrap();
    }
    assert!(log.segment_count() > 10, "segments: {}", log.segment_count());
    for off in (0..1000).step_by(7) {
        let r = log.read(off, 100, true).unwrap();
        let (first, last) = offsets(&r.bytes)[0];
        assert!(first <= off && off <= last, "offset {off} in {first}..{last}");
    }
    // Files are named by 20-digit base offsets.
    assert!(dir.path().join("00000000000000000000.log").exists());
    assert!(dir.path().join("00000000000000000000.index").exists());
    assert!(dir.path().join("00000000000000000000.timeindex").exists());
}

#[test]
fn segments_roll_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            segment_ms: 100,
            ..config()
        },
        true,
    );
    log.append(&batch(1, 1_000), 1_000, 0).unwrap();
    log.append(&batch(1, 1_050), 1_050, 0).unwrap();
    assert_eq!(log.segment_count(), 1);
    log.append(&batch(1, 1_200), 1_200, 0).unwrap();
    assert_eq!(log.segment_bases(), vec![0, 2]);
}

#[test]
fn timestamp_lookup_finds_the_first_record_at_or_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 2048,
            ..config()
        },
        true,
    );
    for i in 0..200 {
        // Batches of 3 records with timestamps 10i, 10i+1, 10i+2.
        log.append(&make_batch(3, i * 10, -1, -1, -1, Compression::Snappy), 0, 0)
            .unwrap();
    }
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 0)));
    assert_eq!(log.offset_for_timestamp(501).unwrap(), Some((501, 151)));
    assert_eq!(log.offset_for_timestamp(503).unwrap(), Some((510, 153)));
    assert_eq!(log.offset_for_timestamp(1_992).unwrap(), Some((1_992, 599)));
    assert_eq!(log.offset_for_timestamp(1_993).unwrap(), None);
    assert_eq!(log.max_timestamp_offset().unwrap(), Some((1_992, 599)));
}

#[test]
fn retention_by_size_and_time_deletes_whole_segments_and_moves_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_bytes: 1024,
        retention_bytes: 4096,
        ..config()
    };
    let mut log = open(dir.path(), cfg.clone(), true);
    for i in 0..200 {
        log.append(&batch(1, i), 1_000, 0).unwrap();
    }
    let before = log.segment_count();
    let deleted = log.apply_retention(1_000).unwrap();
    assert!(deleted > 0 && log.segment_count() == before - deleted);
    assert!(
        log.size_bytes() >= 4096 - 1024 && log.size_bytes() < 4096 + 1024,
        "{}",
        log.size_bytes()
    );
    assert_eq!(log.log_start_offset(), log.segment_bases()[0]);
    assert!(matches!(
        log.read(0, 100, true),
        Err(ReadError::OffsetOutOfRange { .. })
    ));

    let dir2 = tempfile::tempdir().unwrap();
    let mut log = open(
        dir2.path(),
        LogConfig {
            retention_ms: 500,
            ..cfg
        },
        true,
    );
    log.append(&batch(1, 100), 100, 0).unwrap();
    log.append(&batch(1, 10_000), 10_000, 0).unwrap();
    assert_eq!(
        log.apply_retention(10_000).unwrap(),
        0,
        "the active segment holds a fresh record"
    );
    assert_eq!(
        log.apply_retention(20_000).unwrap(),
        1,
        "an expired active segment is rolled and deleted"
    );
    assert_eq!(log.log_start_offset(), 2);
}

#[test]
fn delete_records_moves_log_start_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 512,
            ..config()
        },
        true,
    );
    for i in 0..50 {
        log.append(&batch(1, i), 0, 0).unwrap();
    }
    assert_eq!(log.delete_records_before(30).unwrap(), 30);
    assert!(log.segment_bases()[0] <= 30);
    assert!(matches!(
        log.read(29, 100, true),
        Err(ReadError::OffsetOutOfRange { .. })
    ));
    assert!(log.read(30, 100, true).is_ok());
    assert!(log.delete_records_before(51).is_err());
}

#[test]
fn recovery_truncates_a_torn_last_batch_at_every_byte_position() {
    let template = tempfile::tempdir().unwrap();
    let mut log = open(template.path(), config(), true);
    for i in 0..5 {
        log.append(&batch(4, i), 0, 0).unwrap();
    }
    let full = std::fs::read(template.path().join("00000000000000000000.log")).unwrap();
    let last_batch = full.len() - batch(4, 0).len();
    for cut in last_batch..full.len() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("00000000000000000000.log"), &full[..cut]).unwrap();
        let (log, stats) = Log::open(dir.path(), config(), 0, 0, false, 0).unwrap();
        assert_eq!(log.log_end_offset(), 16, "cut at {cut}");
        assert_eq!(stats.truncated_bytes as usize, cut - last_batch);
        assert_eq!(offsets(&log.read(0, 1 << 20, true).unwrap().bytes).len(), 4);
    }
}

#[test]
fn recovery_cuts_at_a_corrupt_batch_and_rebuilds_missing_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config(), true);
    for i in 0..40 {
        log.append(&batch(2, i), 0, 0).unwrap();
    }
    drop(log);
    let logf = dir.path().join("00000000000000000000.log");
    let mut bytes = std::fs::read(&logf).unwrap();
    let one = batch(2, 0).len();
    bytes[30 * one + 70] ^= 0x55; // damage the 31st batch's records
    std::fs::write(&logf, &bytes).unwrap();
    std::fs::remove_file(dir.path().join("00000000000000000000.index")).unwrap();
    let (log, stats) = Log::open(dir.path(), config(), 0, 0, false, 0).unwrap();
    assert_eq!(log.log_end_offset(), 60);
    assert_eq!(stats.recovered_segments, 1);
    for off in 0..60 {
        let r = log.read(off, 64, true).unwrap();
        let (a, b) = offsets(&r.bytes)[0];
        assert!(a <= off && off <= b);
    }
}

#[test]
fn clean_reopen_trusts_indexes_and_keeps_every_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 8192,
            ..config()
        },
        true,
    );
    for i in 0..300 {
        log.append(&batch(1, i), 0, 0).unwrap();
    }
    log.close(0).unwrap();
    drop(log);
    let (log, stats) = Log::open(
        dir.path(),
        LogConfig {
            segment_bytes: 8192,
            ..config()
        },
        300,
        0,
        true,
        0,
    )
    .unwrap();
    assert_eq!(stats.recovered_segments, 0);
    assert_eq!(log.log_end_offset(), 300);
    assert_eq!(offsets(&log.read(123, 1, true).unwrap().bytes), vec![(123, 123)]);
}

#[test]
fn idempotent_retries_are_deduplicated_and_state_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config(), true);
    let b0 = make_batch(5, 0, 42, 0, 0, Compression::None);
    let b1 = make_batch(5, 0, 42, 0, 5, Compression::None);
    assert_eq!(log.append(&b0, 0, 0).unwrap().base_offset, 0);
    assert_eq!(log.append(&b1, 0, 0).unwrap().base_offset, 5);
    let dup = log.append(&b0, 0, 0).unwrap();
    assert!(dup.duplicate);
    assert_eq!(dup.base_offset, 0);
    assert_eq!(log.log_end_offset(), 10);
    let gap = make_batch(1, 0, 42, 0, 11, Compression::None);
    assert!(matches!(
        log.append(&gap, 0, 0),
        Err(AppendError::Sequence(SequenceError::OutOfOrder { .. }))
    ));
    drop(log); // unclean: state is rebuilt from the log
    let (mut log, _) = Log::open(dir.path(), config(), 0, 0, false, 0).unwrap();
    assert!(log.append(&b1, 0, 0).unwrap().duplicate);
    log.close(0).unwrap();
    drop(log); // clean: state comes from the snapshot
    let (mut log, _) = Log::open(dir.path(), config(), 10, 0, true, 0).unwrap();
    assert!(log.append(&b1, 0, 0).unwrap().duplicate);
    let next = make_batch(1, 0, 42, 0, 10, Compression::None);
    assert_eq!(log.append(&next, 0, 0).unwrap().base_offset, 10);
}

#[test]
fn oversized_and_corrupt_batches_are_refused_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            max_message_bytes: 100,
            ..config()
        },
        true,
    );
    assert!(matches!(
        log.append(&batch(20, 0), 0, 0),
        Err(AppendError::TooLarge { .. })
    ));
    let mut bad = batch(1, 0);
    let n = bad.len();
    bad[n - 1] ^= 1;
    assert!(matches!(
        log.append(&bad, 0, 0),
        Err(AppendError::InvalidBatch(BatchError::Crc { .. }))
    ));
    assert!(matches!(log.append(&[], 0, 0), Err(AppendError::InvalidBatch(_))));
    assert_eq!(log.log_end_offset(), 0);
}

#[test]
fn log_append_time_topics_stamp_the_broker_clock() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            log_append_time: true,
            ..config()
        },
        true,
    );
    let info = log.append(&batch(2, 5), 77_777, 0).unwrap();
    assert_eq!(info.log_append_time, 77_777);
    let r = log.read(0, 1000, true).unwrap();
    let h = batch::validate(&r.bytes).unwrap();
    assert!(h.is_log_append_time());
    assert_eq!(h.max_timestamp, 77_777);
}

fn keyed_batch(records: &[(&str, Option<&str>)], ts: i64, compression: Compression) -> Vec<u8> {
    let pairs: Vec<_> = records
        .iter()
        .map(|(k, v)| {
            (
                Some(bytes::Bytes::from(k.to_string())),
                v.map(|v| bytes::Bytes::from(v.to_string())),
            )
        })
        .collect();
    batch::encode_records(&pairs, ts, compression).unwrap().to_vec()
}

/// Every record left in the log: (offset, key, value).
fn all_records(log: &Log) -> Vec<(i64, String, Option<String>)> {
    let bytes = log.read(log.log_start_offset(), usize::MAX, true).unwrap().bytes;
    let mut out = Vec::new();
    let mut buf = bytes::Bytes::from(bytes);
    let mut offset = log.log_start_offset();
    loop {
        if buf.is_empty() {
            // The read stops at a segment boundary; continue with the next one.
            let next = log.read(offset, usize::MAX, true).unwrap().bytes;
            if next.is_empty() {
                break;
            }
            buf = bytes::Bytes::from(next);
        }
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf).unwrap();
        for r in set.records {
            offset = r.offset + 1;
            out.push((
                r.offset,
                String::from_utf8(r.key.unwrap().to_vec()).unwrap(),
                r.value.map(|v| String::from_utf8(v.to_vec()).unwrap()),
            ));
        }
    }
    out
}

#[test]
fn compaction_keeps_the_latest_record_per_key_at_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        compact: true,
        delete: false,
        segment_bytes: 300,
        min_cleanable_dirty_ratio: 0.0,
        ..config()
    };
    let mut log = open(dir.path(), cfg, true);
    for round in 0..5 {
        for k in ["a", "b", "c"] {
            let v = format!("{k}{round}");
            log.append(
                &keyed_batch(&[(k, Some(v.as_str()))], 1_000, Compression::Lz4),
                1_000,
                0,
            )
            .unwrap();
        }
    }
    log.append(&keyed_batch(&[("b", None)], 1_000, Compression::None), 1_000, 0)
        .unwrap(); // tombstone, offset 15
    log.append(
        &keyed_batch(&[("d", Some("d0")), ("a", Some("a5"))], 1_000, Compression::None),
        1_000,
        0,
    )
    .unwrap();
    log.roll(2_000).unwrap(); // make every record cleanable
    let before = all_records(&log);
    assert_eq!(before.len(), 18);
    let inputs = log.cleanable_segments().expect("dirty");
    // Tombstones younger than the horizon stay.
    let (out, stats) = cleaner::clean(dir.path(), &inputs, 0, &[]).unwrap();
    log.swap_cleaned(out, 3_000).unwrap();
    assert_eq!(stats.records_read, 18);
    let after = all_records(&log);
    assert_eq!(
        after,
        vec![
            (14, "c".to_string(), Some("c4".to_string())),
            (15, "b".to_string(), None),
            (16, "d".to_string(), Some("d0".to_string())),
            (17, "a".to_string(), Some("a5".to_string())),
        ]
    );
    // Old tombstones go; offsets and reads still work, and so do appends.
    let inputs = log.cleanable_segments();
    assert!(inputs.is_none(), "nothing dirty after a full pass");
    log.append(&keyed_batch(&[("e", Some("e0"))], 1_000, Compression::None), 1_000, 0)
        .unwrap();
    log.roll(4_000).unwrap();
    let inputs = log.cleanable_segments().expect("new dirty segment");
    let (out, _) = cleaner::clean(dir.path(), &inputs, 2_000, &[]).unwrap();
    log.swap_cleaned(out, 4_000).unwrap();
    let keys: Vec<(i64, String)> = all_records(&log).into_iter().map(|(o, k, _)| (o, k)).collect();
    assert_eq!(
        keys,
        vec![(14, "c".into()), (16, "d".into()), (17, "a".into()), (18, "e".into())]
    );
    assert_eq!(log.log_end_offset(), 19);
    let r = log.read(17, 1, true).unwrap();
    assert_eq!(offsets(&r.bytes)[0], (16, 17), "the batch holding offset 17, whole");
}

#[test]
fn a_compacted_log_refuses_records_without_a_key_compressed_or_not() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            compact: true,
            ..config()
        },
        true,
    );
    for compression in [Compression::None, Compression::Lz4, Compression::Zstd] {
        let keyless = batch::encode_records(
            &[
                (Some(bytes::Bytes::from_static(b"k")), None),
                (None, Some(bytes::Bytes::from_static(b"v"))),
            ],
            0,
            compression,
        )
        .unwrap();
        match log.append(&keyless, 0, 0) {
            Err(AppendError::InvalidRecord { records, .. }) => {
                assert_eq!(
                    records.iter().map(|r| r.0).collect::<Vec<_>>(),
                    vec![1],
                    "{compression:?}"
                )
            }
            other => panic!("{compression:?}: {other:?}"),
        }
        log.append(&keyed_batch(&[("k", Some("v"))], 0, compression), 0, 0)
            .unwrap();
    }
    assert_eq!(log.log_end_offset(), 3, "only the keyed batches are in the log");
}

#[test]
fn a_lost_stale_or_torn_leader_epoch_checkpoint_is_rebuilt_from_the_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config(), true);
    for (epoch, batches) in [(0, 3), (2, 2), (5, 1)] {
        log.assign_epoch(epoch, log.log_end_offset()).unwrap();
        for _ in 0..batches {
            log.append(&batch(4, 1), 1_000, epoch).unwrap();
        }
    }
    let answers = |log: &Log| [0, 1, 2, 3, 4, 5, 6].map(|e| log.end_offset_for_epoch(e));
    let want = answers(&log);
    assert_eq!(want[2], (2, 20), "epoch 2 ends where epoch 5 starts");
    log.close(1_000).unwrap();
    drop(log);
    let path = dir.path().join("leader-epoch-checkpoint");
    for (case, contents) in [
        ("missing", None),
        ("empty after a power loss", Some(&b""[..])),
        ("stale: written before epochs 2 and 5", Some(&b"0\n1\n0 0\n"[..])),
        ("torn", Some(&b"0\n3\n0 0\n2 1"[..])),
    ] {
        match contents {
            None => std::fs::remove_file(&path).unwrap(),
            Some(c) => std::fs::write(&path, c).unwrap(),
        }
        for clean in [true, false] {
            let log = open(dir.path(), config(), clean);
            assert_eq!(answers(&log), want, "{case}, clean {clean}");
        }
    }
}

#[test]
fn a_shutdown_rewrites_the_producer_snapshot_only_when_the_state_changed() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let snapshot = |o: i64| dir.path().join(format!("{o:020}.snapshot"));
    let mut log = open(dir.path(), config(), true);
    log.append(&make_batch(2, 1_000, 7, 0, 0, Compression::None), 1_000, 0)
        .unwrap();
    assert_eq!(log.close_unsynced().unwrap(), 2);
    drop(log);
    let inode = std::fs::metadata(snapshot(2)).unwrap().ino();
    let mut log = open(dir.path(), config(), true);
    log.close_unsynced().unwrap();
    assert_eq!(
        std::fs::metadata(snapshot(2)).unwrap().ino(),
        inode,
        "unchanged: not rewritten"
    );
    log.expire_producers(10_000_000, 1_000);
    log.close_unsynced().unwrap();
    assert_ne!(
        std::fs::metadata(snapshot(2)).unwrap().ino(),
        inode,
        "a producer expired: rewritten"
    );
    drop(log);
    let log = open(dir.path(), config(), true);
    assert_eq!(log.producers().len(), 0, "the expiry survives the restart");
}

#[test]
fn an_idle_partition_stops_and_starts_without_writing_or_reading_anything_but_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let names = || {
        let mut n: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    };
    let mut log = open(dir.path(), config(), true);
    log.assign_epoch(3, 0).unwrap();
    assert_eq!(
        log.end_offset_for_epoch(3),
        (3, 0),
        "the new leader's epoch is known at once"
    );
    log.close_unsynced().unwrap();
    drop(log);
    assert!(
        !names()
            .iter()
            .any(|n| n.ends_with(".snapshot") || n == "leader-epoch-checkpoint"),
        "an idle partition leaves no snapshot and no epoch file: {:?}",
        names()
    );
    // A stale index beside an empty log (it cannot come from a clean stop,
    // but must not outlive the next write if it does).
    std::fs::write(dir.path().join(format!("{:020}.index", 0)), [0xffu8; 8]).unwrap();
    let mut log = open(dir.path(), config(), true);
    assert_eq!(
        log.latest_epoch(),
        None,
        "an epoch that wrote nothing is not in the file"
    );
    log.assign_epoch(4, 0).unwrap();
    for i in 0..40 {
        log.append(&batch(3, 1_000 + i), 1_000, 4).unwrap();
    }
    log.close_unsynced().unwrap();
    drop(log);
    assert!(
        names().contains(&"leader-epoch-checkpoint".to_string()),
        "written with the first batch"
    );
    for clean in [true, false] {
        let log = open(dir.path(), config(), clean);
        assert_eq!(log.latest_epoch(), Some((4, 0)));
        assert_eq!(log.log_end_offset(), 120);
        for o in [0, 1, 59, 60, 119] {
            assert_eq!(
                offsets(&log.read(o, 10, true).unwrap().bytes)[0].0,
                o / 3 * 3,
                "offset {o}, clean {clean}"
            );
        }
    }
    let (index, valid) = index::OffsetIndex::open(&dir.path().join(format!("{:020}.index", 0))).unwrap();
    assert!(
        valid && !index.is_empty(),
        "the index was written afresh, without the stale entry"
    );
}

/// A transactional batch of `n` records from producer `pid`.
fn txn_batch(n: usize, pid: i64, epoch: i16, seq: i32) -> Vec<u8> {
    use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: true,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: seq + i as i32,
            timestamp: 1_000,
            key: Some(bytes::Bytes::from(format!("k{i}"))),
            value: Some(bytes::Bytes::from(format!("v{i}"))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.to_vec()
}

fn marker(pid: i64, epoch: i16, commit: bool) -> Vec<u8> {
    let t = if commit {
        batch::ControlType::Commit
    } else {
        batch::ControlType::Abort
    };
    batch::encode_marker(pid, epoch, t, 3, 1_000).unwrap().to_vec()
}

#[test]
fn markers_encode_and_parse_as_control_batches() {
    for (commit, t) in [(true, batch::ControlType::Commit), (false, batch::ControlType::Abort)] {
        let m = marker(7, 2, commit);
        let h = batch::validate(&m).unwrap();
        assert!(h.is_control() && h.is_transactional());
        assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence), (7, 2, -1));
        assert_eq!(batch::control_type(&m), Some(t));
    }
    // Data is not a marker; a damaged batch is nothing.
    assert_eq!(batch::control_type(&txn_batch(1, 7, 2, 0)), None);
    assert_eq!(batch::control_type(&marker(7, 2, true)[..40]), None);
}

#[test]
fn open_transactions_hold_the_stable_offset_and_aborts_are_indexed_and_survive_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config(), true);
    log.append(&batch(2, 1_000), 1_000, 0).unwrap(); // 0-1
    log.append(&txn_batch(2, 1, 0, 0), 1_000, 0).unwrap(); // 2-3, producer 1
    log.append(&txn_batch(1, 2, 0, 0), 1_000, 0).unwrap(); // 4, producer 2
    assert_eq!(log.first_unstable_offset(), Some(2));
    log.append(&marker(1, 0, false), 1_000, 0).unwrap(); // 5: producer 1 aborts
    assert_eq!(log.first_unstable_offset(), Some(4));
    log.append(&marker(2, 0, true), 1_000, 0).unwrap(); // 6: producer 2 commits
    assert_eq!(log.first_unstable_offset(), None);
    let aborted = log.aborted_between(0, 7);
    assert_eq!(aborted.len(), 1);
    assert_eq!(
        (aborted[0].producer_id, aborted[0].first_offset, aborted[0].last_offset),
        (1, 2, 5)
    );
    assert!(log.aborted_between(6, 7).is_empty());
    assert!(txn_index::path(dir.path(), 0).exists());
    // A stale marker (an older epoch than the producer's) is refused.
    log.append(&marker(2, 1, false), 1_000, 0).unwrap();
    assert!(log.append(&marker(2, 0, false), 1_000, 0).is_err());
    log.append(&txn_batch(1, 3, 0, 0), 1_000, 0).unwrap(); // 8, producer 3 stays open
                                                           // A crash: no snapshot, the index file lost; both come back from the log.
    drop(log);
    std::fs::remove_file(txn_index::path(dir.path(), 0)).unwrap();
    let log = open(dir.path(), config(), false);
    assert_eq!(log.aborted_between(0, 9), aborted);
    assert_eq!(log.first_unstable_offset(), Some(8));
    assert!(txn_index::path(dir.path(), 0).exists());
    // A truncation below the abort marker forgets it, on disk too.
    let mut log = log;
    log.truncate_to(5, 1_000).unwrap();
    assert!(log.aborted_between(0, 9).is_empty());
    assert_eq!(log.first_unstable_offset(), Some(2));
    assert!(!txn_index::path(dir.path(), 0).exists());
}

#[test]
fn a_truncation_after_an_unclean_start_keeps_what_is_below_the_cut() {
    // Recovery at start-up reads the segment through its file handle; the
    // truncation's second recovery must read it again from the start.
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config(), true);
    for i in 0..10 {
        log.append(&batch(2, i), 1_000, 0).unwrap();
    }
    drop(log);
    let mut log = open(dir.path(), config(), false);
    log.truncate_to(11, 1_000).unwrap();
    assert_eq!(log.log_end_offset(), 10);
    assert_eq!(offsets(&log.read(0, 1 << 20, true).unwrap().bytes).len(), 5);
}

/// The read_committed rule as a consumer applies it: batches below the last
/// stable offset, minus those of aborted transactions (the fetched range's
/// aborted list), minus markers. Returns (producer id, base offset) of each.
fn read_committed(log: &Log) -> Vec<(i64, i64)> {
    let lso = log.first_unstable_offset().unwrap_or(log.log_end_offset());
    let aborted = log.aborted_between(0, lso);
    // A read returns one segment's batches at most: read on from where it ended.
    let mut bytes = Vec::new();
    let mut offset = 0;
    while let Some(slice) = log.read_slice_below(offset, usize::MAX >> 1, true, lso).unwrap() {
        let mut part = vec![0u8; slice.len];
        std::os::unix::fs::FileExt::read_exact_at(slice.file.as_ref(), &mut part, slice.position).unwrap();
        let mut pos = 0;
        while pos < part.len() {
            let h = batch::BatchHeader::parse(&part[pos..]).unwrap();
            offset = h.next_offset();
            pos += h.size();
        }
        bytes.extend_from_slice(&part);
    }
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let h = batch::BatchHeader::parse(&bytes[pos..]).unwrap();
        assert!(
            h.last_offset() < lso,
            "a batch at or above the last stable offset was returned"
        );
        let dropped = h.is_transactional()
            && aborted.iter().any(|t| {
                t.producer_id == h.producer_id && t.first_offset <= h.base_offset && h.base_offset <= t.last_offset
            });
        if !h.is_control() && !dropped {
            out.push((h.producer_id, h.base_offset));
        }
        pos += h.size();
    }
    out
}

#[test]
fn read_committed_never_returns_aborted_data_or_data_above_the_last_stable_offset() {
    // Random interleavings of three transactional producers and a plain one;
    // after every step the consumer's view is exactly the committed and plain
    // batches below the last stable offset.
    let mut seed: u64 = 0x5eed_1234;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(
            dir.path(),
            LogConfig {
                segment_bytes: 2048,
                ..config()
            },
            true,
        );
        // Per producer: its epoch, next sequence, the batches of its open transaction.
        let mut producers: Vec<(i16, i32, Vec<i64>)> = vec![(0, 0, Vec::new()); 3];
        let mut committed: Vec<(i64, i64)> = Vec::new();
        for _ in 0..60 {
            let p = next(4) as usize;
            if p == 3 {
                let info = log.append(&batch(1, 1_000), 1_000, 0).unwrap();
                committed.push((-1, info.base_offset));
            } else {
                let pid = 100 + p as i64;
                let (epoch, seq, open) = &mut producers[p];
                match next(4) {
                    0 | 1 => {
                        let info = log.append(&txn_batch(1, pid, *epoch, *seq), 1_000, 0).unwrap();
                        *seq += 1;
                        open.push(info.base_offset);
                    }
                    c => {
                        let commit = c == 2;
                        log.append(&marker(pid, *epoch, commit), 1_000, 0).unwrap();
                        if commit {
                            committed.extend(open.iter().map(|o| (pid, *o)));
                        }
                        open.clear();
                    }
                }
            }
            let lso = log.first_unstable_offset().unwrap_or(log.log_end_offset());
            let mut want: Vec<(i64, i64)> = committed.iter().copied().filter(|(_, o)| *o < lso).collect();
            want.sort_by_key(|(_, o)| *o);
            assert_eq!(read_committed(&log), want, "round {round}");
        }
        // Recovery rebuilds the same view.
        drop(log);
        let log = open(
            dir.path(),
            LogConfig {
                segment_bytes: 2048,
                ..config()
            },
            false,
        );
        let lso = log.first_unstable_offset().unwrap_or(log.log_end_offset());
        let mut want: Vec<(i64, i64)> = committed.iter().copied().filter(|(_, o)| *o < lso).collect();
        want.sort_by_key(|(_, o)| *o);
        assert_eq!(read_committed(&log), want, "round {round} after recovery");
    }
}

#[test]
fn compaction_drops_aborted_data_keeps_markers_and_leaves_open_transactions_alone() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        compact: true,
        delete: false,
        min_cleanable_dirty_ratio: 0.0,
        ..config()
    };
    let mut log = open(dir.path(), cfg, true);
    log.append(&keyed_batch(&[("k0", Some("old"))], 1_000, Compression::None), 1_000, 0)
        .unwrap(); // 0
    log.append(&txn_batch(1, 7, 0, 0), 1_000, 0).unwrap(); // 1: k0 -> v0, aborted below
    log.append(&marker(7, 0, false), 1_000, 0).unwrap(); // 2
    log.roll(2_000).unwrap();
    let inputs = log.cleanable_segments().expect("dirty");
    let (out, _) = cleaner::clean(dir.path(), &inputs, 0, log.aborted()).unwrap();
    log.swap_cleaned(out, 3_000).unwrap();
    let offsets: Vec<i64> = all_records(&log).into_iter().map(|(o, _, _)| o).collect();
    // The aborted write neither survives nor wins over the committed value; the marker stays.
    assert_eq!(offsets, vec![0, 2]);
    assert_eq!(all_records(&log)[0].2.as_deref(), Some("old"));
    // A segment holding an open transaction is not cleanable until it ends.
    log.append(&txn_batch(1, 8, 0, 0), 1_000, 0).unwrap(); // 3, open
    log.roll(4_000).unwrap();
    assert!(
        log.cleanable_segments().is_none(),
        "an open transaction's segment was offered"
    );
    log.append(&marker(8, 0, true), 1_000, 0).unwrap();
    log.roll(5_000).unwrap();
    assert!(log.cleanable_segments().is_some());
}
