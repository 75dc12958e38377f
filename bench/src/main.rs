//! `skein-bench`: throughput and latency of a fresh skein-broker process.
//!
//! The load comes from librdkafka's own `rdkafka_performance` (built from the
//! source in the rdkafka-sys crate): produce 1 KiB and 100 B records with acks=1
//! and acks=all, and one consumer reading each topic back. A second consumer
//! that only walks batch headers (plain Fetch requests, no record parsing) shows
//! what the broker itself can serve. Last, the broker is restarted on the
//! resulting log after a clean stop and after kill -9, and its start-up timed.
//! Three brokers with RF=3 show the cost of replication, saturated and at half
//! the saturating rate (latency). Each scenario also reports the brokers' CPU
//! seconds (user + system, from /proc) per GB, and the client's (the producing
//! or consuming client: brokers and client share this machine's cores, so the
//! client's share bounds what the brokers can be shown to do). Prints a table
//! and writes JSON.

mod acls;
mod groups;
mod paced;
mod quotas;
mod scale;
mod tls;

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
    /// Seconds of the fixed-rate latency run.
    #[arg(long, default_value_t = 10.0)]
    latency_seconds: f64,
    /// Partitions of the `scale` scenario (capped by the open files limit).
    #[arg(long, default_value_t = 100_000)]
    scale_partitions: i32,
    /// Scenarios to run (comma-separated): produce, consume, groups, cluster,
    /// latency, restart, acls (produce with 5,001 ACL bindings against an open
    /// broker), quotas (produce under 2,001 client quotas against none), tls
    /// (produce and consume over SASL_SSL against plaintext, SCRAM logins per
    /// second), and scale (not by default: `make bench-scale`). The
    /// rest by default. `cluster` and `latency` compare with the single
    /// broker's acks=all figures, so they run its 1 KiB acks=all produce too.
    #[arg(long, value_delimiter = ',', default_values_t = ["produce", "consume", "groups", "cluster", "latency", "restart", "acls", "quotas", "tls"].map(String::from))]
    only: Vec<String>,
    /// Extra broker settings (key=value), repeatable.
    #[arg(long = "set")]
    sets: Vec<String>,
    /// The broker predates `http.listener` (a build from before issue 11, for
    /// comparisons across history): do not set it.
    #[arg(long, hide = true)]
    no_http_listener: bool,
}

impl Args {
    /// Settings every broker gets: no HTTP listener (several run side by
    /// side), then the user's.
    fn common_sets(&self) -> Vec<String> {
        let http = (!self.no_http_listener).then(|| "http.listener=".to_string());
        http.into_iter().chain(self.sets.iter().cloned()).collect()
    }
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
        // The broker's output goes beside its log directory (appended over
        // restarts), so a failed run leaves its evidence.
        let output = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.with_extension("out"))
                .map_or_else(|_| Stdio::null(), Stdio::from)
        };
        let mut cmd = Command::new(bin);
        cmd.arg("--set")
            .arg(format!("log.dirs={}", dir.display()))
            .arg("--set")
            .arg(format!("listeners=PLAINTEXT://127.0.0.1:{port}"))
            .stdout(output())
            .stderr(output());
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
    // Its exit status compares two counters that a retry after local queue-full
    // backpressure leaves one apart even when every record was delivered, so the
    // caller checks the row (delivery errors) instead.
    let row = text
        .lines()
        .rfind(|l| l.starts_with('|') && !l.contains("elapsed"))
        .unwrap_or_else(|| panic!("rdkafka_performance printed no result ({}): {text}", out.status));
    row.split('|')
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect()
}

/// What one produce run measured.
struct Produced {
    mbps: f64,
    rps: f64,
    p50: f64,
    p99: f64,
    /// Record bytes produced.
    bytes: u64,
    /// CPU seconds the brokers used meanwhile (all of them, user + system).
    cpu: f64,
    /// CPU seconds the producing client used (rdkafka_performance, or the paced producer).
    client: f64,
}

impl Produced {
    /// Broker CPU seconds per GB of records produced.
    fn cpu_per_gb(&self) -> f64 {
        self.cpu / (self.bytes as f64 / 1e9)
    }

    /// Client CPU seconds per GB of records produced.
    fn client_per_gb(&self) -> f64 {
        self.client / (self.bytes as f64 / 1e9)
    }
}

/// Produces `count` records of `size` bytes with rdkafka_performance, `extra`
/// arguments last (a later `-X` overrides an earlier one), while metering the
/// CPU of `brokers`; latency is per record, enqueue to acknowledgement.
#[allow(clippy::too_many_arguments)]
fn produce(
    perf: &Path,
    topic: &str,
    bootstrap: &str,
    size: usize,
    count: usize,
    acks: &str,
    lat_file: &Path,
    brokers: &[u32],
    extra: &[String],
) -> Produced {
    let mut args: Vec<String> = [
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
    args.extend(extra.iter().cloned());
    let cpu = CpuMeter::start(brokers);
    let client = ClientMeter::start();
    let row = run_perf(perf, &args);
    let cpu = cpu.seconds();
    let client = client.seconds();
    // | elapsed | msgs | bytes | rtt | dr | dr_m/s | dr_MB/s | dr_err | ...
    let delivered: usize = row[4].parse().unwrap();
    assert!(
        delivered == count && row[7] == "0",
        "{topic}: {delivered} of {count} records delivered, {} delivery errors",
        row[7]
    );
    let rps: f64 = row[5].parse().unwrap();
    let mbps: f64 = row[6].parse().unwrap();
    let (p50, p99) = latencies(lat_file);
    Produced {
        mbps,
        rps,
        p50,
        p99,
        bytes: (size * count) as u64,
        cpu,
        client,
    }
}

/// Writes dirty pages back and empties the page cache, where the benchmark
/// may (as root): before the single broker's produce scenarios and before the
/// cluster's. A log written into a full page cache pays for reclaim on every
/// page, and the cluster scenario, after several gigabytes of earlier ones,
/// measured a third of the rate and three times the CPU per GB of the same
/// build on a fresh cache. (Not between the single broker's scenarios: the
/// consumers read back from the page cache what was produced.) Without root
/// it only syncs; the first line says which.
fn settle_page_cache() -> bool {
    let _ = Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

/// p50 and p99 of the latencies (microseconds, one per line) rdkafka_performance wrote, in ms.
fn latencies(file: &Path) -> (f64, f64) {
    let mut lat: Vec<u64> = std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    if lat.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    lat.sort_unstable();
    (percentile(&lat, 0.50), percentile(&lat, 0.99))
}

/// CPU time (user + system) of a set of processes from a starting point, read
/// from /proc/PID/stat: what the brokers spent on a scenario, whichever of their
/// threads did the work.
struct CpuMeter {
    pids: Vec<u32>,
    start: f64,
}

impl CpuMeter {
    fn start(pids: &[u32]) -> CpuMeter {
        CpuMeter {
            pids: pids.to_vec(),
            start: pids.iter().map(|p| cpu_seconds(*p)).sum(),
        }
    }

    fn seconds(&self) -> f64 {
        self.pids.iter().map(|p| cpu_seconds(*p)).sum::<f64>() - self.start
    }
}

/// utime + stime of a process so far, seconds (0 if it is gone).
fn cpu_seconds(pid: u32) -> f64 {
    let ticks = cpu_seconds_ticks();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name in parentheses may hold spaces: count fields after it.
    // proc(5) fields 14 and 15 (utime, stime) are the 12th and 13th after it.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let f: Vec<f64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    (f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)) / ticks
}

/// Clock ticks per second (`getconf CLK_TCK`), read once.
fn cpu_seconds_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// CPU time of this process and of the children it has waited for, from a
/// starting point: the client's share of the two cores. rdkafka_performance is
/// a child reaped when its run ends (its time then joins cutime + cstime); the
/// paced producer and the raw Fetch reader are this process's own threads.
struct ClientMeter {
    start: f64,
}

impl ClientMeter {
    fn start() -> ClientMeter {
        ClientMeter {
            start: own_cpu_seconds(),
        }
    }

    fn seconds(&self) -> f64 {
        own_cpu_seconds() - self.start
    }
}

/// utime + stime + cutime + cstime of this process (proc(5) fields 14-17).
fn own_cpu_seconds() -> f64 {
    let ticks = cpu_seconds_ticks();
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let f: Vec<f64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    f.get(11..15).map_or(0.0, |v| v.iter().sum::<f64>()) / ticks
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
    let run = |name: &str| args.only.iter().any(|o| o == name);
    let dir = std::env::temp_dir().join(format!("skein-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    // Topics are auto-created by the producers' metadata requests with this many partitions.
    let mut sets = vec![
        format!("num.partitions={}", args.partitions),
        "group.initial.rebalance.delay.ms=0".to_string(),
    ];
    sets.extend(args.common_sets());
    let (mut broker, first_start) = Broker::start(&args.broker, dir.clone(), port, &sets);
    let bootstrap = broker.bootstrap();
    let settled = settle_page_cache();
    println!(
        "skein-bench: broker started in {:.1} ms on an empty log; page cache {} before the single broker's and the cluster's produce scenarios",
        first_start.as_secs_f64() * 1e3,
        if settled { "emptied" } else { "not emptied (needs root)" }
    );
    println!(
        "{:<44} {:>9} {:>11} {:>9} {:>9} {:>9} {:>10}",
        "scenario", "MB/s", "records/s", "p50 ms", "p99 ms", "CPU s/GB", "client s/GB"
    );
    let mut json = Vec::new();
    let mut topics = Vec::new();
    let mut single_acks_all = None;
    let lat_file = dir.join("latency.txt");
    let scenarios: &[(usize, &str)] = if run("produce") || run("consume") {
        &[(1024, "1"), (1024, "all"), (100, "1"), (100, "all")]
    } else if run("cluster") || run("latency") {
        &[(1024, "all")] // what the cluster is compared with
    } else {
        &[]
    };
    for &(size, acks) in scenarios {
        let topic = format!("bench-{size}b-acks-{acks}");
        let bytes = if size < 1024 { args.bytes / 10 } else { args.bytes };
        let count = bytes / size;
        let acks_num = if acks == "all" { "-1" } else { "1" };
        let r = produce(
            &args.perf,
            &topic,
            &bootstrap,
            size,
            count,
            acks_num,
            &lat_file,
            &[broker.child.id()],
            &[],
        );
        let name = format!("produce {size} B acks={acks}");
        print_produced(&name, &r, "");
        json.push(format!(
            r#"{{"scenario":"{name}","record_bytes":{size},"acks":"{acks}","records":{count},"mb_per_s":{:.1},"records_per_s":{:.0},"p50_ms":{:.3},"p99_ms":{:.3},"broker_cpu_s_per_gb":{:.2},"client_cpu_s_per_gb":{:.2}}}"#,
            r.mbps,
            r.rps,
            r.p50,
            r.p99,
            r.cpu_per_gb(),
            r.client_per_gb()
        ));
        if size == 1024 && acks == "all" {
            single_acks_all = Some(r);
        }
        topics.push((topic, size, count));
    }
    for (topic, size, count) in topics.iter().filter(|_| run("consume")) {
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
        let cpu = CpuMeter::start(&[broker.child.id()]);
        let client = ClientMeter::start();
        let row = run_perf(&args.perf, &perf_args);
        let cpu_per_gb = cpu.seconds() / ((size * count) as f64 / 1e9);
        let client_per_gb = client.seconds() / ((size * count) as f64 / 1e9);
        // | elapsed | msgs | bytes | rtt | m/s | MB/s | ...
        let rps: f64 = row[4].parse().unwrap();
        let mbps: f64 = row[5].parse().unwrap();
        let name = format!("consume {size} B (librdkafka)");
        println!(
            "{name:<44} {mbps:>9.1} {rps:>11.0} {:>9} {:>9} {cpu_per_gb:>9.2} {client_per_gb:>10.2}",
            "-", "-"
        );
        json.push(format!(
            r#"{{"scenario":"{name}","record_bytes":{size},"mb_per_s":{mbps:.1},"records_per_s":{rps:.0},"broker_cpu_s_per_gb":{cpu_per_gb:.2},"client_cpu_s_per_gb":{client_per_gb:.2}}}"#
        ));
        let cpu = CpuMeter::start(&[broker.child.id()]);
        let client = ClientMeter::start();
        let (bytes, secs) = raw_fetch(&bootstrap, topic, args.partitions, 1 << 20);
        let cpu_per_gb = cpu.seconds() / (bytes as f64 / 1e9);
        let client_per_gb = client.seconds() / (bytes as f64 / 1e9);
        let mbps = bytes as f64 / secs / 1e6;
        let name = format!("consume {size} B (raw Fetch, headers only)");
        println!(
            "{name:<44} {mbps:>9.1} {:>11} {:>9} {:>9} {cpu_per_gb:>9.2} {client_per_gb:>10.2}",
            "-", "-", "-"
        );
        json.push(format!(
            r#"{{"scenario":"{name}","record_bytes":{size},"mb_per_s":{mbps:.1},"broker_cpu_s_per_gb":{cpu_per_gb:.2},"client_cpu_s_per_gb":{client_per_gb:.2}}}"#
        ));
    }
    if run("groups") {
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
    }
    if let Some(single) = single_acks_all.as_ref().filter(|_| run("cluster") || run("latency")) {
        json.extend(cluster(&args, &dir, single, run("cluster"), run("latency")));
    }
    if run("scale") {
        json.extend(scale::run(&args, &dir));
    }
    if run("acls") {
        json.extend(acls::run(&args, &dir, &lat_file));
    }
    if run("quotas") {
        json.extend(quotas::run(&args, &dir, &lat_file));
    }
    if run("tls") {
        json.extend(tls::run(&args, &dir));
    }
    if run("restart") {
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
    }
    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&args.out, format!("[\n  {}\n]\n", json.join(",\n  "))).unwrap();
    println!("results written to {}", args.out.display());
}

/// Two brokers produced to twice each, alternately (1 KiB records, acks=1,
/// `args.bytes` per run), the better run of each kept: a comparison in one run
/// on a noisy machine (the ACL and quota scenarios).
fn produce_side_by_side(args: &Args, brokers: [&Broker; 2], prefix: &str, lat_file: &Path) -> Option<[Produced; 2]> {
    let size = 1024;
    let mut best: [Option<Produced>; 2] = [None, None];
    for round in 0..2 {
        for (i, broker) in brokers.into_iter().enumerate() {
            let r = produce(
                &args.perf,
                &format!("{prefix}-{i}-{round}"),
                &broker.bootstrap(),
                size,
                args.bytes / size,
                "1",
                lat_file,
                &[broker.child.id()],
                &[],
            );
            if best[i].as_ref().is_none_or(|b| r.mbps > b.mbps) {
                best[i] = Some(r);
            }
        }
    }
    let [Some(a), Some(b)] = best else { return None };
    Some([a, b])
}

fn print_produced(name: &str, r: &Produced, note: &str) {
    println!(
        "{name:<44} {:>9.1} {:>11.0} {:>9.2} {:>9.2} {:>9.2} {:>10.2}{note}",
        r.mbps,
        r.rps,
        r.p50,
        r.p99,
        r.cpu_per_gb(),
        r.client_per_gb()
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Three local brokers, a topic with RF=3 and min.insync.replicas=2, 1 KiB
/// records with acks=all: the cost of replication next to `single`, the single
/// broker's acks=all run of the same benchmark, as ratios of throughput and of
/// CPU per GB. Then (`latency`) records at half the saturating rate with a
/// consumer reading them as they come: produce and end-to-end latency.
fn cluster(args: &Args, dir: &Path, single: &Produced, saturate: bool, latency: bool) -> Vec<String> {
    let brokers = start_cluster(
        args,
        dir,
        "cluster",
        3,
        &[
            format!("num.partitions={}", args.partitions),
            "default.replication.factor=3".to_string(),
            "min.insync.replicas=2".to_string(),
        ],
    );
    let pids: Vec<u32> = brokers.iter().map(|b| b.child.id()).collect();
    let bootstrap: Vec<String> = brokers.iter().map(Broker::bootstrap).collect();
    let bootstrap = bootstrap.join(",");
    let lat_file = dir.join("cluster-latency.txt");
    let mut json = Vec::new();
    // Without the saturating run, the latency run takes half the single broker's rate.
    let mut saturating = single.mbps;
    if saturate {
        settle_page_cache();
        let count = args.bytes / 1024;
        let r = produce(
            &args.perf,
            "bench-cluster-rf3",
            &bootstrap,
            1024,
            count,
            "-1",
            &lat_file,
            &pids,
            &[],
        );
        let ratio = r.mbps / single.mbps;
        let cpu_ratio = r.cpu_per_gb() / single.cpu_per_gb();
        let name = "produce 1024 B acks=all, 3 brokers RF=3";
        print_produced(
            name,
            &r,
            &format!("  ({ratio:.2}x the single broker's MB/s, {cpu_ratio:.2}x its CPU per GB)"),
        );
        json.push(format!(
            r#"{{"scenario":"{name}","record_bytes":1024,"acks":"all","brokers":3,"replication_factor":3,"records":{count},"mb_per_s":{:.1},"records_per_s":{:.0},"p50_ms":{:.3},"p99_ms":{:.3},"broker_cpu_s_per_gb":{:.2},"client_cpu_s_per_gb":{:.2},"ratio_to_single_broker":{ratio:.2},"cpu_per_gb_ratio_to_single_broker":{cpu_ratio:.2}}}"#,
            r.mbps,
            r.rps,
            r.p50,
            r.p99,
            r.cpu_per_gb(),
            r.client_per_gb()
        ));
        saturating = r.mbps;
    }
    if latency {
        json.push(fixed_rate(args, dir, &bootstrap, &pids, saturating / 2.0));
    }
    json
}

/// Starts `n` brokers as one cluster (every one a voter of the metadata
/// quorum), their logs under `dir/<name>-node<i>`, and waits until each
/// accepts connections.
fn start_cluster(args: &Args, dir: &Path, name: &str, n: usize, sets: &[String]) -> Vec<Broker> {
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
            let mut all = vec![
                format!("node.id={i}"),
                format!("listeners=PLAINTEXT://127.0.0.1:{p},CONTROLLER://127.0.0.1:{c}"),
                format!("controller.quorum.voters={}", voters.join(",")),
            ];
            all.extend(sets.iter().cloned());
            all.extend(args.common_sets());
            Broker::spawn(&args.broker, dir.join(format!("{name}-node{i}")), *p, &all)
        })
        .collect();
    for b in &brokers {
        b.wait_ready(t0);
    }
    brokers
}

/// acks=all 1 KiB records at `mbps` (a fixed rate, not a burst) for
/// `--latency-seconds`, a consumer reading them as they arrive: p50/p99 of the
/// producer's latency (send to acknowledgement) and of the consumer's (send to
/// receipt). linger.ms=1: at a fixed rate a record waits for the linger, and
/// librdkafka's default of 5 ms would be most of what is measured.
fn fixed_rate(args: &Args, dir: &Path, bootstrap: &str, pids: &[u32], mbps: f64) -> String {
    let size = 1024;
    let rate = (mbps * 1e6 / size as f64).max(1.0);
    let count = (rate * args.latency_seconds) as usize;
    let topic = "bench-latency-rf3";
    groups::create_topic(bootstrap.split(',').next().unwrap(), topic);
    std::thread::sleep(Duration::from_secs(1));
    let consumer_lat = dir.join("e2e-latency.txt");
    let mut cargs = vec![
        "-C".to_string(),
        "-t".into(),
        topic.into(),
        "-b".into(),
        bootstrap.into(),
    ];
    for p in 0..args.partitions {
        cargs.extend(["-p".to_string(), p.to_string()]);
    }
    cargs.extend(
        [
            "-o",
            "beginning",
            "-c",
            &count.to_string(),
            "-q",
            "-u",
            "-l",
            "-A",
            &consumer_lat.display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let consumer = Command::new(&args.perf)
        .args(&cargs)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the latency consumer");
    std::thread::sleep(Duration::from_secs(2));
    let cpu = CpuMeter::start(pids);
    let client = ClientMeter::start();
    let paced = paced::run(bootstrap, topic, size, rate, count as f64 / rate, 1).expect("the paced producer");
    let cpu = cpu.seconds();
    let client = client.seconds();
    assert!(
        paced.delivered == count && paced.errors == 0,
        "{topic}: {} of {count} records delivered, {} delivery errors",
        paced.delivered,
        paced.errors
    );
    let (p50, p99) = if paced.latencies_us.is_empty() {
        (f64::NAN, f64::NAN)
    } else {
        (
            percentile(&paced.latencies_us, 0.50),
            percentile(&paced.latencies_us, 0.99),
        )
    };
    let r = Produced {
        mbps: (size * count) as f64 / 1e6 / paced.seconds,
        rps: count as f64 / paced.seconds,
        p50,
        p99,
        bytes: (size * count) as u64,
        cpu,
        client,
    };
    let mut consumer = consumer;
    let deadline = Instant::now() + Duration::from_secs(60);
    while consumer.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = consumer.kill();
    let _ = consumer.wait();
    let (c50, c99) = latencies(&consumer_lat);
    let name = "acks=all RF=3 at half the saturating rate";
    print_produced(name, &r, "");
    println!(
        "{:<44} {:>9} {:>11} {c50:>9.2} {c99:>9.2}",
        "  end to end (send to consumed)", "", ""
    );
    format!(
        r#"{{"scenario":"{name}","record_bytes":{size},"acks":"all","brokers":3,"replication_factor":3,"target_mb_per_s":{mbps:.1},"mb_per_s":{:.1},"records_per_s":{:.0},"produce_p50_ms":{:.3},"produce_p99_ms":{:.3},"end_to_end_p50_ms":{c50:.3},"end_to_end_p99_ms":{c99:.3},"broker_cpu_s_per_gb":{:.2},"client_cpu_s_per_gb":{:.2}}}"#,
        r.mbps,
        r.rps,
        r.p50,
        r.p99,
        r.cpu_per_gb(),
        r.client_per_gb()
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
