//! The live-socket fuzzer: request frames recorded from real clients
//! (`tests/data/client-frames.bin`, made by `scripts/record-client-frames.py`:
//! confluent-kafka's idempotent lz4 producer, consumer groups classic and
//! KIP-848, its admin client, kafka-python) are mutated as an attacker would
//! (bit flips, byte edits, truncation, length and count fields, API key and
//! version edits, splices) and sent to a real broker process. Afterwards the
//! broker is up, serves produce and fetch, and every record written before the
//! storm is intact.
//!
//! The coverage-guided targets live in `fuzz/`; `write_fuzz_seed_corpora` below
//! turns the same recordings into their seed corpora.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{one_record_batch, BrokerProcess, Client};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};

/// Frames the storm sends (the issue asks for at least 100,000).
const STORM_FRAMES: usize = 100_000;
/// Connections sending at once.
const WORKERS: usize = 4;

fn recorded_frames() -> Vec<Vec<u8>> {
    let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/client-frames.bin"))
        .expect("tests/data/client-frames.bin (scripts/record-client-frames.py writes it)");
    let mut frames = Vec::new();
    let mut rest = &bytes[..];
    while rest.len() >= 4 {
        let n = i32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        frames.push(rest[4..4 + n].to_vec());
        rest = &rest[4 + n..];
    }
    assert!(rest.is_empty(), "the recording ends inside a frame");
    frames
}

/// splitmix64: deterministic, so a failing seed can be replayed (`SKEIN_FUZZ_SEED`).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Values that make length and count fields lie.
const INTERESTING: [i32; 10] = [0, -1, 1, 0x7f, 0xff, 0x7fff, 0xffff, 0x7fff_ffff, i32::MIN, 0x0100_0000];

/// One mutated frame, length prefix included (itself a lie one time in ten).
fn mutated_frame(rng: &mut Rng, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut body = frames[rng.below(frames.len())].clone();
    for _ in 0..1 + rng.below(4) {
        let len = body.len();
        let at = rng.below(len);
        match rng.below(10) {
            0 if len > 0 => body[at] ^= 1 << rng.below(8),
            1 if len > 0 => body[at] = rng.next() as u8,
            2 => body.truncate(at),
            3 if len >= 4 => {
                let v = INTERESTING[rng.below(INTERESTING.len())];
                let at = rng.below(len - 3);
                if rng.below(2) == 0 {
                    body[at..at + 4].copy_from_slice(&v.to_be_bytes());
                } else {
                    body[at..at + 2].copy_from_slice(&(v as i16).to_be_bytes());
                }
            }
            4 if len >= 2 => body[..2].copy_from_slice(&(rng.below(80) as i16 - 2).to_be_bytes()),
            5 if len >= 4 => body[2..4].copy_from_slice(&(rng.below(20) as i16 - 2).to_be_bytes()),
            6 => {
                let other = &frames[rng.below(frames.len())];
                body.truncate(at);
                body.extend_from_slice(&other[rng.below(other.len())..]);
            }
            7 => {
                let chunk: Vec<u8> = (0..1 + rng.below(64)).map(|_| rng.next() as u8).collect();
                body.splice(at..at, chunk);
            }
            8 => {
                let end = (at + 1 + rng.below(32)).min(len);
                body.drain(at..end);
            }
            _ => {
                let end = (at + 1 + rng.below(64)).min(len);
                let copy = body[at..end].to_vec();
                body.splice(at..at, copy);
            }
        }
    }
    let prefix = if rng.below(10) == 0 {
        INTERESTING[rng.below(INTERESTING.len())]
    } else {
        body.len() as i32
    };
    let mut wire = prefix.to_be_bytes().to_vec();
    wire.extend_from_slice(&body);
    wire
}

fn tn(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn produce(c: &mut Client, topic: &str, partition: i32, key: &str, value: &str) -> (i16, i64) {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(tn(topic))
            .with_partition_data(vec![produce_request::PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(one_record_batch(
                    Some(Bytes::from(key.to_string())),
                    Bytes::from(value.to_string()),
                )))])]);
    let resp = c.call(9, &req);
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// Every record of one partition, as (offset, key, value).
fn fetch_all(c: &mut Client, topic: &str, partition: i32) -> Vec<(i64, Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    loop {
        let req = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_topics(vec![fetch_request::FetchTopic::default()
                .with_topic(tn(topic))
                .with_partitions(vec![fetch_request::FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(out.len() as i64)
                    .with_partition_max_bytes(1 << 20)])]);
        let resp = c.call(12, &req);
        let p = &resp.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "fetch {topic}-{partition}");
        let mut records = p.records.clone().unwrap_or_default();
        if records.is_empty() {
            return out;
        }
        while !records.is_empty() {
            let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut records).expect("decodable batches");
            for r in set.records {
                out.push((
                    r.offset,
                    r.key.unwrap_or_default().to_vec(),
                    r.value.unwrap_or_default().to_vec(),
                ));
            }
        }
    }
}

/// Sends mutated frames on fresh connections until `total` are written.
fn storm(port: u16, frames: Arc<Vec<Vec<u8>>>, seed: u64, total: usize) -> (usize, usize) {
    let sent = Arc::new(AtomicUsize::new(0));
    let connections = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..WORKERS as u64)
        .map(|w| {
            let (frames, sent, connections) = (Arc::clone(&frames), Arc::clone(&sent), Arc::clone(&connections));
            std::thread::spawn(move || {
                let mut rng = Rng(seed ^ (w << 56));
                let mut sink = vec![0u8; 1 << 16];
                while sent.load(Ordering::Relaxed) < total {
                    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
                        continue;
                    };
                    connections.fetch_add(1, Ordering::Relaxed);
                    let timeout = Some(Duration::from_millis(250));
                    s.set_read_timeout(timeout).unwrap();
                    s.set_write_timeout(timeout).unwrap();
                    // A burst on one connection: the broker answers or closes it.
                    for _ in 0..1 + rng.below(8) {
                        if s.write_all(&mutated_frame(&mut rng, &frames)).is_err() {
                            break;
                        }
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    let _ = s.shutdown(Shutdown::Write);
                    while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("storm worker");
    }
    (sent.load(Ordering::Relaxed), connections.load(Ordering::Relaxed))
}

#[test]
fn live_broker_survives_mutated_client_frames() {
    let frames = Arc::new(recorded_frames());
    assert!(frames.len() >= 50, "recording too small: {}", frames.len());
    let seed = std::env::var("SKEIN_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_5eed_u64);
    let mut b = BrokerProcess::start(&[]);
    let mut c = b.connect();
    let create = CreateTopicsRequest::default().with_topics(vec![create_topics_request::CreatableTopic::default()
        .with_name(tn("intact"))
        .with_num_partitions(3)
        .with_replication_factor(1)]);
    assert_eq!(c.call(5, &create).topics[0].error_code, 0);
    let mut written = vec![Vec::new(); 3];
    for i in 0..60 {
        let (p, key, value) = (i % 3, format!("k{i}"), format!("before the storm {i}"));
        let (err, offset) = produce(&mut c, "intact", p as i32, &key, &value);
        assert_eq!(err, 0);
        written[p].push((offset, key.into_bytes(), value.into_bytes()));
    }

    let t0 = Instant::now();
    let (sent, connections) = storm(b.port, Arc::clone(&frames), seed, STORM_FRAMES);
    eprintln!(
        "storm: {sent} mutated frames from {} recorded, {connections} connections, {:.1} s, seed {seed}",
        frames.len(),
        t0.elapsed().as_secs_f64()
    );
    assert!(sent >= STORM_FRAMES);
    assert!(b.alive(), "the broker must survive (seed {seed})");

    let mut c = b.connect();
    assert_eq!(c.call(3, &ApiVersionsRequest::default()).error_code, 0);
    for (p, before) in written.iter_mut().enumerate() {
        let (err, offset) = produce(&mut c, "intact", p as i32, "after", "the storm");
        assert_eq!(err, 0, "produce after the storm");
        before.push((offset, b"after".to_vec(), b"the storm".to_vec()));
        assert_eq!(&fetch_all(&mut c, "intact", p as i32), before, "partition {p}");
    }
}

/// Writes the coverage-guided targets' seed corpora (`fuzz/corpus/<target>`) from
/// the recorded frames: `make fuzz-seed`, then `make fuzz-cmin`.
#[test]
#[ignore = "writes fuzz/corpus; run by make fuzz-seed"]
fn write_fuzz_seed_corpora() {
    use skein_broker::controller::image::{Command, MetadataImage};
    use skein_broker::protocol::API_TABLE;

    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus"));
    let write = |target: &str, name: String, bytes: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    for (i, frame) in recorded_frames().iter().enumerate() {
        let key = i16::from_be_bytes([frame[0], frame[1]]);
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        // The request targets' input: table row, version within its range, then
        // the frame from the correlation id on.
        let Some(row) = API_TABLE.iter().position(|e| e.key as i16 == key) else {
            continue;
        };
        let entry = &API_TABLE[row];
        if version < entry.versions.min || version > entry.versions.max {
            continue;
        }
        let mut input = vec![row as u8, (version - entry.versions.min) as u8];
        input.extend_from_slice(&frame[4..]);
        write("request_decode", format!("recorded-{i:04}"), &input);
        write("request_handle", format!("recorded-{i:04}"), &input);
        if entry.key == ApiKey::Produce {
            let mut body = Bytes::copy_from_slice(frame);
            RequestHeader::decode(&mut body, ApiKey::Produce.request_header_version(version)).unwrap();
            let req = ProduceRequest::decode(&mut body, version).unwrap();
            for t in req.topic_data {
                for p in t.partition_data {
                    let records = p.records.unwrap_or_default();
                    write(
                        "record_batch",
                        format!("recorded-{i:04}-{}", p.index),
                        &[&[0u8][..], &records].concat(),
                    );
                }
            }
        }
    }
    use kafka_protocol::records::*;
    for (name, compression) in [
        ("none", Compression::None),
        ("gzip", Compression::Gzip),
        ("snappy", Compression::Snappy),
        ("lz4", Compression::Lz4),
        ("zstd", Compression::Zstd),
    ] {
        let records: Vec<Record> = (0..5)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: 7,
                producer_epoch: 0,
                timestamp_type: TimestampType::Creation,
                offset: i,
                sequence: i as i32,
                timestamp: 1_700_000_000_000 + i,
                key: Some(Bytes::from(format!("key{i}"))),
                value: Some(Bytes::from(vec![b'v'; 20])),
                headers: [(StrBytes::from_static_str("h"), Some(Bytes::from_static(b"x")))]
                    .into_iter()
                    .collect(),
            })
            .collect();
        let mut buf = bytes::BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression,
        };
        RecordBatchEncoder::encode(&mut buf, records.iter(), &options).unwrap();
        write("record_batch", format!("codec-{name}"), &[&[0u8][..], &buf].concat());
    }

    let commands = vec![
        Command::RegisterBroker {
            id: 3,
            host: "h".into(),
            port: 9092,
            rack: Some("r".into()),
            endpoints: Vec::new(),
        },
        Command::CreateTopic {
            name: "c".into(),
            id: Default::default(),
            configs: [("cleanup.policy".to_string(), "compact".to_string())].into(),
            assignments: vec![vec![0, 1, 2], vec![1, 2, 0]],
        },
        Command::CreatePartitions {
            name: "a".into(),
            assignments: vec![vec![2, 0, 1]],
        },
        Command::AlterPartition {
            topic: "a".into(),
            partition: 0,
            leader: 0,
            leader_epoch: 0,
            partition_epoch: 0,
            isr: vec![0, 1],
        },
        Command::Reassign {
            topic: "a".into(),
            partition: 1,
            target: Some(vec![2]),
        },
        Command::ElectUnclean {
            partitions: vec![("a".into(), 0)],
        },
        Command::FenceBroker { id: 1, epoch: 2 },
        Command::ControlledShutdown { id: 2, epoch: 3 },
        Command::AllocateProducerIds { broker: 0 },
        Command::SetBrokerConfigs {
            resource: "".into(),
            configs: [("log.retention.ms".to_string(), "1000".to_string())].into(),
        },
        Command::DeleteTopic { name: "b".into() },
    ];
    let mut sequence = vec![0u8];
    for (i, cmd) in commands.iter().enumerate() {
        let json = serde_json::to_vec(cmd).unwrap();
        write(
            "metadata_command",
            format!("command-{i:02}"),
            &[&[0u8][..], &json].concat(),
        );
        sequence.extend_from_slice(&json);
    }
    write("metadata_command", "commands".into(), &sequence);
    let entry = openraft::Entry::<skein_broker::controller::TypeConfig> {
        log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(1, 0), 5),
        payload: openraft::EntryPayload::Normal(commands[1].clone()),
    };
    write(
        "metadata_command",
        "entry".into(),
        &[&[1u8][..], &serde_json::to_vec(&entry).unwrap()].concat(),
    );
    let mut image = MetadataImage::default();
    for cmd in commands {
        image.apply(cmd);
    }
    write(
        "metadata_command",
        "image".into(),
        &[&[2u8][..], &serde_json::to_vec(&image).unwrap()].concat(),
    );
}
