//! Bounded resources under abuse: floods of connections and of giant frames cost
//! the abuser, not the broker. `max.connections`, `max.connections.per.ip`,
//! `connections.max.idle.ms` and `queued.max.request.bytes`, against a real
//! broker process, with its memory read from /proc.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{one_record_batch, BrokerProcess, Client};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn api_versions_ok(c: &mut Client) -> bool {
    c.call_raw(3, &ApiVersionsRequest::default()).is_some()
}

/// Peak and current resident memory of a process, in bytes.
fn rss(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap()
            * 1024
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_secs(15), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn max_connections_per_ip_closes_the_connection_over_the_limit() {
    let b = BrokerProcess::start(&["max.connections.per.ip=3"]);
    // The start-up probe's connection is still counted until the broker sees it close.
    std::thread::sleep(Duration::from_millis(300));
    let mut held: Vec<Client> = (0..3).map(|_| b.connect()).collect();
    for c in &mut held {
        assert!(api_versions_ok(c));
    }
    let mut extra = b.connect();
    assert!(extra.closed_by_broker(), "a fourth connection from 127.0.0.1 was kept");
    // A place freed is a place taken again.
    held.pop();
    wait_until("a freed place", || api_versions_ok(&mut b.connect()));
}

#[test]
fn max_connections_closes_the_connection_over_the_limit() {
    let b = BrokerProcess::start(&["max.connections=2"]);
    // The start-up probe's connection is still counted until the broker sees it close.
    std::thread::sleep(Duration::from_millis(300));
    let mut held: Vec<Client> = (0..2).map(|_| b.connect()).collect();
    for c in &mut held {
        assert!(api_versions_ok(c));
    }
    assert!(b.connect().closed_by_broker(), "a third connection was kept");
    drop(held);
    wait_until("freed places", || api_versions_ok(&mut b.connect()));
}

#[test]
fn connections_max_idle_ms_closes_silent_and_stalled_connections() {
    let b = BrokerProcess::start(&["connections.max.idle.ms=400"]);
    let mut busy = b.connect();
    let mut silent = b.connect();
    let mut stalled = b.connect();
    // Half a frame: a length and two bytes of a 100-byte request, then nothing.
    stalled.send_bytes(&[0, 0, 0, 100, 0, 18]).unwrap();
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(200));
        assert!(api_versions_ok(&mut busy), "a connection in use was closed as idle");
    }
    assert!(silent.closed_by_broker());
    assert!(stalled.closed_by_broker());
}

#[test]
fn queued_max_request_bytes_below_socket_request_max_bytes_is_refused_at_start() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_skein-broker"))
        .args([
            "--set",
            "queued.max.request.bytes=1000",
            "--set",
            "socket.request.max.bytes=2000",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("queued.max.request.bytes"), "{err}");
}

fn produce_one(c: &mut Client, i: usize) -> i16 {
    let batch = one_record_batch(None, Bytes::from(format!("record-{i}")));
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("steady")))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default().with_records(Some(batch))
            ])]);
    c.call(3, &req).responses[0].partition_responses[0].error_code
}

#[test]
fn a_flood_of_100_mib_frames_keeps_memory_bounded_and_producers_served() {
    const MIB: u64 = 1 << 20;
    let queued = 256 * MIB;
    let b = BrokerProcess::start(&[
        &format!("queued.max.request.bytes={queued}"),
        "socket.request.max.bytes=104857600",
    ]);
    let pid = b.child.id();
    let mut producer = b.connect();
    let create = CreateTopicsRequest::default().with_topics(vec![create_topics_request::CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_static_str("steady")))
        .with_num_partitions(1)
        .with_replication_factor(1)]);
    assert_eq!(producer.call(7, &create).topics[0].error_code, 0);
    assert_eq!(produce_one(&mut producer, 0), 0);
    let (_, baseline) = rss(pid);

    // Eight abusers, each sending 100 MiB frames of zeros (read whole, then
    // refused as an unknown request) as fast as loopback carries them.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let abusers: Vec<_> = (0..8)
        .map(|_| {
            let (stop, sent, port) = (Arc::clone(&stop), Arc::clone(&sent), b.port);
            std::thread::spawn(move || {
                let chunk = vec![0u8; MIB as usize];
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
                        continue;
                    };
                    s.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
                    if s.write_all(&(100 * MIB as i32).to_be_bytes()).is_err() {
                        continue;
                    }
                    for _ in 0..100 {
                        if stop.load(Ordering::Relaxed) || s.write_all(&chunk).is_err() {
                            break;
                        }
                        sent.fetch_add(chunk.len(), Ordering::Relaxed);
                    }
                    let _ = s.read(&mut [0u8; 1]);
                }
            })
        })
        .collect();

    // A well-behaved producer keeps producing throughout.
    let t0 = Instant::now();
    let mut acked = 0;
    while t0.elapsed() < Duration::from_secs(8) {
        assert_eq!(produce_one(&mut producer, acked + 1), 0);
        acked += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for a in abusers {
        a.join().unwrap();
    }
    let (peak, _) = rss(pid);
    let flooded = sent.load(Ordering::Relaxed) as u64;
    eprintln!(
        "flood: {} MiB sent by 8 abusers in 8 s; producer acked {acked} requests; broker RSS baseline {} MiB, peak {} MiB (queued.max.request.bytes {} MiB)",
        flooded / MIB,
        baseline / MIB,
        peak / MIB,
        queued / MIB
    );
    assert!(
        flooded > 4 * queued,
        "the flood was too small to prove anything ({flooded} bytes)"
    );
    assert!(acked >= 20, "the producer was starved: {acked} requests in 8 s");
    assert!(
        peak < baseline + queued + 64 * MIB,
        "peak RSS {peak} exceeds baseline {baseline} + queued.max.request.bytes {queued} + 64 MiB"
    );
}

#[test]
fn a_flood_of_connections_is_refused_past_max_connections_and_memory_stays_flat() {
    let b = BrokerProcess::start(&["max.connections=500"]);
    let pid = b.child.id();
    let (_, baseline) = rss(pid);
    let mut held = Vec::new();
    let mut failed = Vec::new();
    for _ in 0..1500 {
        match TcpStream::connect(("127.0.0.1", b.port)) {
            Ok(s) => held.push(Some(s)),
            Err(e) => failed.push(e.to_string()),
        }
    }
    // The broker accepts from its backlog at its own pace (a loaded machine may
    // take seconds): keep reading the connections not yet closed until the
    // ones over the limit are, or a deadline passes.
    let mut refused = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while held.len() - refused > 500 && Instant::now() < deadline {
        for slot in held.iter_mut() {
            let Some(s) = slot else { continue };
            s.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
            match s.read(&mut [0u8; 1]) {
                Ok(0) => {
                    refused += 1;
                    *slot = None;
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    refused += 1;
                    *slot = None;
                }
                _ => {}
            }
        }
    }
    let (peak, _) = rss(pid);
    eprintln!(
        "connection flood: {} opened ({} connects failed{}), {refused} closed by the broker; RSS baseline {} KiB, peak {} KiB",
        held.len(),
        failed.len(),
        failed.first().map(|e| format!(", first: {e}")).unwrap_or_default(),
        baseline / 1024,
        peak / 1024
    );
    assert!(
        held.len() >= 1000,
        "only {} of 1500 connections could be opened",
        held.len()
    );
    assert!(
        refused + 500 >= held.len(),
        "only {refused} of {} connections were refused with max.connections=500",
        held.len()
    );
    drop(held);
    wait_until("service after the flood", || api_versions_ok(&mut b.connect()));
    assert!(
        peak < baseline + (128 << 20),
        "peak RSS {peak} grew more than 128 MiB over {baseline}"
    );
}

/// The soft and hard open-files limits of a process, from /proc.
fn open_files_limits(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    let v: Vec<u64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    (v[0], v[1])
}

#[test]
fn the_broker_raises_its_open_files_limit_to_the_hard_limit() {
    let (_, hard) = open_files_limits(std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // prlimit sets a low soft limit and execs the broker in the same process.
    let mut child = std::process::Command::new("prlimit")
        .arg(format!("--nofile=256:{hard}"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_skein-broker"))
        .args(["--set", &format!("log.dirs={}", dir.path().display())])
        .args(["--set", &format!("listeners=PLAINTEXT://127.0.0.1:{port}")])
        .args(["--set", "http.listener="])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !common::listening(port) {
        assert!(child.try_wait().unwrap().is_none(), "the broker exited");
        assert!(t0.elapsed() < Duration::from_secs(20), "broker did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let limits = open_files_limits(child.id());
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(limits, (hard, hard), "soft limit raised from 256 to the hard limit");
}
