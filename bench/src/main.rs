//! `skein-bench`: throughput and latency of a fresh skein-broker process.
//!
//! The load comes from librdkafka's own `rdkafka_performance` (built from the
//! source in the rdkafka-sys crate): produce 1 KiB and 100 B records with acks=1
//! and acks=all, and one consumer reading each topic back. A second consumer
//! that only walks batch headers (plain Fetch requests, no record parsing) shows
//! what the broker itself can serve. Last, the broker is restarted on the
//! resulting log after a clean stop and after kill -9, and its start-up timed.
//! Prints a table and writes JSON.

mod groups;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use clap::Parser;
use kafka_protocol::messages::{fetch_request, FetchRequest, FetchResponse, RequestHeader, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

#[derive(Parser, Debug)]
struct Args {
    /// The skein-broker binary.
    #[arg(long)]
    broker: PathBuf,
    /// librdkafka's rdkafka_performance binary.
    #[arg(long)]
    perf: PathBuf,
    /// Where to write the JSON results.
    #[arg(long, default_value = "bench-results/latest.json")]
    out: PathBuf,
    /// Bytes to produce per 1 KiB scenario (100 B scenarios use a tenth).
    #[arg(long, default_value_t = 1 << 30)]
    bytes: usize,
    /// Partitions per topic.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Run only the group coordinator scenarios.
    #[arg(long)]
    groups_only: bool,
    /// Extra broker settings (key=value), repeatable.
    #[arg(long = "set")]
    sets: Vec<String>,
}

struct Broker {
    child: Child,
    port: u16,
    dir: PathBuf,
    bin: PathBuf,
    sets: Vec<String>,
}

impl Broker {
    fn start(bin: &Path, dir: PathBuf, port: u16, sets: &[String]) -> (Broker, Duration) {
        let t0 = Instant::now();
        let b = Broker::spawn(bin, dir, port, sets);
        b.wait_ready(t0);
        (b, t0.elapsed())
    }

    /// Waits until the client listener accepts connections.
    fn wait_ready(&self, since: Instant) {
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(since.elapsed() < Duration::from_secs(120), "broker did not start");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Starts the process without waiting (cluster members need each other to start).
    fn spawn(bin: &Path, dir: PathBuf, port: u16, sets: &[String]) -> Broker {
        let mut cmd = Command::new(bin);
        cmd.arg("--set")
            .arg(format!("log.dirs={}", dir.display()))
            .arg("--set")
            .arg(format!("listeners=PLAINTEXT://127.0.0.1:{port}"))
            .arg("--set")
            .arg("http.listener=")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for s in sets {
            cmd.arg("--set").arg(s);
        }
        let child = cmd.spawn().expect("start skein-broker");
        Broker {
            child,
            port,
            dir,
            bin: bin.to_path_buf(),
            sets: sets.to_vec(),
        }
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn stop(&mut self, kill9: bool) {
        let sig = if kill9 { "-KILL" } else { "-TERM" };
        let _ = Command::new("kill").arg(sig).arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }

    fn restart(&mut self) -> Duration {
        let (b, took) = Broker::start(&self.bin, self.dir.clone(), self.port, &self.sets);
        *self = b;
        took
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs rdkafka_performance and returns the cells of its last table row.
fn run_perf(perf: &Path, args: &[String]) -> Vec<String> {
    let out = Command::new(perf)
        .args(args)
        .stderr(Stdio::null())
        .output()
        .expect("run rdkafka_performance");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "rdkafka_performance failed: {text}");
    let row = text
        .lines()
        .rfind(|l| l.starts_with('|') && !l.contains("elapsed"))
        .expect("a result row");
    row.split('|')
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect()
}

/// Produces `count` records of `size` bytes with rdkafka_performance:
/// (MB/s, records/s, p50 ms, p99 ms of enqueue-to-acknowledgement latency).
fn produce(
    perf: &Path,
    topic: &str,
    bootstrap: &str,
    size: usize,
    count: usize,
    acks: &str,
    lat_file: &Path,
) -> (f64, f64, f64, f64) {
    let args: Vec<String> = [
        "-P",
        "-t",
        topic,
        "-b",
        bootstrap,
        "-s",
        &size.to_string(),
        "-c",
        &count.to_string(),
        "-a",
        acks,
        "-X",
        "linger.ms=5",
        "-X",
        "batch.size=1000000",
        "-X",
        "queue.buffering.max.kbytes=1048576",
        "-q",
        "-u",
        "-l",
        "-A",
        &lat_file.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let row = run_perf(perf, &args);
    // | elapsed | msgs | bytes | rtt | dr | dr_m/s | dr_MB/s | ...
    let rps: f64 = row[5].parse().unwrap();
    let mbps: f64 = row[6].parse().unwrap();
    let mut lat: Vec<u64> = std::fs::read_to_string(lat_file)
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    lat.sort_unstable();
    (mbps, rps, percentile(&lat, 0.50), percentile(&lat, 0.99))
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p) as usize] as f64 / 1000.0
}

/// A consumer that sends plain Fetch requests and walks only batch headers: the
/// broker's serving rate without a client's per-record work.
fn raw_fetch(bootstrap: &str, topic: &str, partitions: i32, partition_max_bytes: i32) -> (usize, f64) {
    let mut s = TcpStream::connect(bootstrap).expect("connect");
    s.set_nodelay(true).unwrap();
    let mut offsets = vec![0i64; partitions as usize];
    let mut total = 0usize;
    let t0 = Instant::now();
    for correlation in 1.. {
        let req = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_max_bytes(64 << 20)
            .with_topics(vec![fetch_request::FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_string(topic.into())))
                .with_partitions(
                    (0..partitions)
                        .map(|p| {
                            fetch_request::FetchPartition::default()
                                .with_partition(p)
                                .with_fetch_offset(offsets[p as usize])
                                .with_partition_max_bytes(partition_max_bytes)
                        })
                        .collect(),
                )]);
        let header = RequestHeader::default()
            .with_request_api_key(1)
            .with_request_api_version(12)
            .with_correlation_id(correlation);
        let mut body = BytesMut::new();
        header.encode(&mut body, 2).unwrap();
        req.encode(&mut body, 12).unwrap();
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.put(body);
        s.write_all(&frame).unwrap();
        let mut len = [0u8; 4];
        s.read_exact(&mut len).unwrap();
        let mut resp = vec![0u8; i32::from_be_bytes(len) as usize];
        s.read_exact(&mut resp).unwrap();
        let mut buf = Bytes::from(resp);
        // Fetch v12 answers with the flexible (v1) response header.
        kafka_protocol::messages::ResponseHeader::decode(&mut buf, 1).expect("response header");
        let r = FetchResponse::decode(&mut buf, 12).expect("fetch response");
        let mut got = 0;
        for t in &r.responses {
            for p in &t.partitions {
                let recs = p.records.as_ref().map_or(&[][..], |b| &b[..]);
                got += recs.len();
                let mut pos = 0;
                while pos + 61 <= recs.len() {
                    let base = i64::from_be_bytes(recs[pos..pos + 8].try_into().unwrap());
                    let len = i32::from_be_bytes(recs[pos + 8..pos + 12].try_into().unwrap()) as usize;
                    let delta = i32::from_be_bytes(recs[pos + 23..pos + 27].try_into().unwrap()) as i64;
                    offsets[p.partition_index as usize] = base + delta + 1;
                    pos += 12 + len;
                }
            }
        }
        total += got;
        if got == 0 {
            break;
        }
    }
    (total, t0.elapsed().as_secs_f64())
}

fn main() {
    let args = Args::parse();
    let dir = std::env::temp_dir().join(format!("skein-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // Topics are auto-created by the producers' metadata requests with this many partitions.
    let mut sets = vec![
        format!("num.partitions={}", args.partitions),
        "group.initial.rebalance.delay.ms=0".to_string(),
    ];
    sets.extend(args.sets.iter().cloned());
    let (mut broker, first_start) = Broker::start(&args.broker, dir.clone(), port, &sets);
    let bootstrap = broker.bootstrap();
    println!(
        "skein-bench: broker started in {:.1} ms on an empty log",
        first_start.as_secs_f64() * 1e3
    );
    println!(
        "{:<40} {:>9} {:>11} {:>9} {:>9}",
        "scenario", "MB/s", "records/s", "p50 ms", "p99 ms"
    );
    let mut json = Vec::new();
    let mut topics = Vec::new();
    let mut single_acks_all = None;
    let lat_file = dir.join("latency.txt");
    let scenarios: &[(usize, &str)] = if args.groups_only {
        &[]
    } else {
        &[(1024, "1"), (1024, "all"), (100, "1"), (100, "all")]
    };
    for &(size, acks) in scenarios {
        let topic = format!("bench-{size}b-acks-{acks}");
        let bytes = if size < 1024 { args.bytes / 10 } else { args.bytes };
        let count = bytes / size;
        let acks_num = if acks == "all" { "-1" } else { "1" };
        let (mbps, rps, p50, p99) = produce(&args.perf, &topic, &bootstrap, size, count, acks_num, &lat_file);
        let name = format!("produce {size} B acks={acks}");
        println!("{name:<40} {mbps:>9.1} {rps:>11.0} {p50:>9.2} {p99:>9.2}");
        if size == 1024 && acks == "all" {
            single_acks_all = Some(mbps);
        }
        json.push(format!(
            r#"{{"scenario":"{name}","record_bytes":{size},"acks":"{acks}","records":{count},"mb_per_s":{mbps:.1},"records_per_s":{rps:.0},"p50_ms":{p50:.3},"p99_ms":{p99:.3}}}"#
        ));
        topics.push((topic, size, count));
    }
    for (topic, size, count) in &topics {
        if topic.ends_with("acks-all") {
            continue;
        }
        let mut perf_args = vec![
            "-C".to_string(),
            "-t".into(),
            topic.clone(),
            "-b".into(),
            bootstrap.clone(),
        ];
        for p in 0..args.partitions {
            perf_args.extend(["-p".to_string(), p.to_string()]);
        }
        perf_args.extend(
            [
                "-o",
                "beginning",
                "-c",
                &count.to_string(),
                "-B",
                "10000",
                "-q",
                "-u",
                "-X",
                "fetch.queue.backoff.ms=1",
                "-X",
                "queued.max.messages.kbytes=1048576",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        let row = run_perf(&args.perf, &perf_args);
        // | elapsed | msgs | bytes | rtt | m/s | MB/s | ...
        let rps: f64 = row[4].parse().unwrap();
        let mbps: f64 = row[5].parse().unwrap();
        let name = format!("consume {size} B (librdkafka)");
        println!("{name:<40} {mbps:>9.1} {rps:>11.0} {:>9} {:>9}", "-", "-");
        json.push(format!(
            r#"{{"scenario":"{name}","record_bytes":{size},"mb_per_s":{mbps:.1},"records_per_s":{rps:.0}}}"#
        ));
        let (bytes, secs) = raw_fetch(&bootstrap, topic, args.partitions, 1 << 20);
        let mbps = bytes as f64 / secs / 1e6;
        let name = format!("consume {size} B (raw Fetch, headers only)");
        println!("{name:<40} {mbps:>9.1} {:>11} {:>9} {:>9}", "-", "-", "-");
        json.push(format!(
            r#"{{"scenario":"{name}","record_bytes":{size},"mb_per_s":{mbps:.1}}}"#
        ));
    }
    let rebalance = groups::rebalance_ten(&bootstrap);
    println!(
        "rebalance of a group of 10 after an 11th joins: {:.1} ms",
        rebalance.as_secs_f64() * 1e3
    );
    json.push(format!(
        r#"{{"scenario":"rebalance 10+1 members","ms":{:.1}}}"#,
        rebalance.as_secs_f64() * 1e3
    ));
    if topics.is_empty() {
        groups::create_topic(&bootstrap, "bench-commits");
    }
    let commit_topic = topics.first().map_or("bench-commits".to_string(), |t| t.0.clone());
    let commits = groups::commits_per_second(&bootstrap, &commit_topic, 3.0);
    println!("offset commits (one committer, one at a time): {commits:.0}/s");
    json.push(format!(r#"{{"scenario":"offset commits","per_s":{commits:.0}}}"#));
    if let Some(single) = single_acks_all {
        json.push(cluster_produce(&args, &dir, single));
    }
    let log_bytes = walk_size(&dir);
    broker.stop(false);
    let clean = broker.restart();
    broker.stop(true);
    let unclean = broker.restart();
    println!(
        "start-up on a {:.2} GB log: {:.1} ms after a clean stop, {:.1} ms after kill -9 (recovery)",
        log_bytes as f64 / 1e9,
        clean.as_secs_f64() * 1e3,
        unclean.as_secs_f64() * 1e3
    );
    json.push(format!(
        r#"{{"scenario":"restart","log_bytes":{log_bytes},"clean_start_ms":{:.1},"unclean_start_ms":{:.1}}}"#,
        clean.as_secs_f64() * 1e3,
        unclean.as_secs_f64() * 1e3
    ));
    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&args.out, format!("[\n  {}\n]\n", json.join(",\n  "))).unwrap();
    println!("results written to {}", args.out.display());
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Three local brokers, a topic with RF=3 and min.insync.replicas=2, 1 KiB
/// records with acks=all: the cost of replication next to `single` MB/s, the
/// single broker's acks=all figure from the same run.
fn cluster_produce(args: &Args, dir: &Path, single: f64) -> String {
    let n = 3;
    let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
    let voters: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, (_, c))| format!("{i}@127.0.0.1:{c}"))
        .collect();
    let t0 = Instant::now();
    let brokers: Vec<Broker> = ports
        .iter()
        .enumerate()
        .map(|(i, (p, c))| {
            let mut sets = vec![
                format!("node.id={i}"),
                format!("listeners=PLAINTEXT://127.0.0.1:{p},CONTROLLER://127.0.0.1:{c}"),
                format!("controller.quorum.voters={}", voters.join(",")),
                format!("num.partitions={}", args.partitions),
                "default.replication.factor=3".to_string(),
                "min.insync.replicas=2".to_string(),
            ];
            sets.extend(args.sets.iter().cloned());
            Broker::spawn(&args.broker, dir.join(format!("cluster-node{i}")), *p, &sets)
        })
        .collect();
    for b in &brokers {
        b.wait_ready(t0);
    }
    let bootstrap: Vec<String> = brokers.iter().map(Broker::bootstrap).collect();
    let bootstrap = bootstrap.join(",");
    let lat_file = dir.join("cluster-latency.txt");
    let count = args.bytes / 1024;
    let (mbps, rps, p50, p99) = produce(
        &args.perf,
        "bench-cluster-rf3",
        &bootstrap,
        1024,
        count,
        "-1",
        &lat_file,
    );
    let ratio = mbps / single;
    let name = "produce 1024 B acks=all, 3 brokers RF=3";
    println!("{name:<40} {mbps:>9.1} {rps:>11.0} {p50:>9.2} {p99:>9.2}  ({ratio:.2}x the single broker)");
    drop(brokers);
    format!(
        r#"{{"scenario":"{name}","record_bytes":1024,"acks":"all","brokers":3,"replication_factor":3,"records":{count},"mb_per_s":{mbps:.1},"records_per_s":{rps:.0},"p50_ms":{p50:.3},"p99_ms":{p99:.3},"ratio_to_single_broker":{ratio:.2}}}"#
    )
}

fn walk_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}
