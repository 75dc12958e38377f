//! Many partitions (`make bench-scale`, `--only scale`): one broker holding N
//! partitions of RF=1, then three brokers holding N partitions of RF=3. For
//! each: how fast the topics are created and led, each broker's memory, open
//! files and threads, a Metadata request for every topic, the metadata
//! snapshot's size, and the restarts: after a clean stop and after kill -9
//! (one broker), and a broker that was away while the quorum moved on and
//! catches up from the snapshot (three brokers; the snapshot is larger than
//! the 4 MiB a gRPC message held by default, so it travels in chunks).
//!
//! A broker keeps at most half its open files limit of segment files open
//! (idle ones are closed and reopened on use), so N is not capped by the
//! limit; the table shows the open files each broker held.

use std::path::Path;
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::groups::Conn;
use crate::{start_cluster, Args, Broker};

/// Partitions per topic.
const PER_TOPIC: i32 = 1000;
/// New partitions per CreateTopics request (the broker takes up to 10,000).
/// Two thousand keep one request's metadata entry well within the
/// controller's 5 s attempt on this machine. (A retried attempt that had
/// committed once answered TOPIC_ALREADY_EXISTS; the same create committed
/// twice is now the same create, so larger requests are correct, only slower
/// to answer.)
const PER_REQUEST: i32 = 2_000;

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

pub fn run(args: &Args, dir: &Path) -> Vec<String> {
    let n = (args.scale_partitions / PER_TOPIC).max(1) * PER_TOPIC;
    [(1, 1), (3, 3)]
        .into_iter()
        .map(|(brokers, rf)| one(args, dir, brokers, rf, n))
        .collect()
}

/// Resident memory (MB), open files and threads of a process, from /proc.
fn footprint(pid: u32) -> (f64, usize, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |key: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    (field("VmRSS:") as f64 / 1024.0, fds, field("Threads:") as usize)
}

/// Partitions of the `scale-*` topics that broker `b` knows with a leader,
/// how many `prefix*` topics it knows, the Metadata round trip and the response size.
fn led_with(b: &Broker, prefix: &str) -> (usize, usize, Duration, usize) {
    let mut c = Conn::connect(&b.bootstrap());
    let t0 = Instant::now();
    let md = c.call(12, &MetadataRequest::default().with_topics(None));
    let took = t0.elapsed();
    fn named<'a>(
        md: &'a MetadataResponse,
        p: &'a str,
    ) -> impl Iterator<Item = &'a metadata_response::MetadataResponseTopic> {
        md.topics
            .iter()
            .filter(move |t| t.name.as_ref().is_some_and(|n| n.starts_with(p)))
    }
    let led = named(&md, "scale-")
        .flat_map(|t| &t.partitions)
        .filter(|p| p.error_code == 0 && p.leader_id.0 >= 0)
        .count();
    (led, named(&md, prefix).count(), took, c.last_response_bytes)
}

fn led(b: &Broker) -> (usize, usize, Duration, usize) {
    led_with(b, "scale-")
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !done() {
        assert!(t0.elapsed() < limit, "scale: {what} not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    t0.elapsed()
}

/// The size of the metadata snapshot in a broker's log directory, bytes (0 if none yet).
fn snapshot_bytes(dir: &Path) -> u64 {
    std::fs::metadata(dir.join("__cluster_metadata-0").join("snapshot")).map_or(0, |m| m.len())
}

fn one(args: &Args, dir: &Path, count: usize, rf: i16, n: i32) -> String {
    let label = format!(
        "{n} partitions, {count} broker{}, RF={rf}",
        if count > 1 { "s" } else { "" }
    );
    let sets = [
        format!("default.replication.factor={rf}"),
        // A snapshot soon, and only a short log tail kept after it.
        "metadata.log.max.entries.between.snapshots=5".to_string(),
    ];
    let mut brokers = start_cluster(args, dir, &format!("scale{count}"), count, &sets);
    wait_for("every broker registered", Duration::from_secs(60), || {
        Conn::connect(&brokers[0].bootstrap())
            .call(12, &MetadataRequest::default())
            .brokers
            .len()
            == count
    });
    let mut c = Conn::connect(&brokers[0].bootstrap());
    let topics = n / PER_TOPIC;
    let per_request = (PER_REQUEST / PER_TOPIC).max(1) as usize;
    let t0 = Instant::now();
    let all: Vec<i32> = (0..topics).collect();
    for chunk in all.chunks(per_request) {
        let req = CreateTopicsRequest::default().with_timeout_ms(120_000).with_topics(
            chunk
                .iter()
                .map(|t| {
                    CreatableTopic::default()
                        .with_name(name(&format!("scale-{t}")))
                        .with_num_partitions(PER_TOPIC)
                        .with_replication_factor(rf)
                })
                .collect(),
        );
        for t in c.call(5, &req).topics {
            assert_eq!(t.error_code, 0, "scale: creating {:?}: {:?}", t.name, t.error_message);
        }
    }
    let created = t0.elapsed();
    wait_for("every partition led on every broker", Duration::from_secs(600), || {
        brokers.iter().all(|b| led(b).0 == n as usize)
    });
    let all_led = t0.elapsed();
    let (_, _, md_time, md_bytes) = led(&brokers[0]);
    let prints: Vec<(f64, usize, usize)> = brokers.iter().map(|b| footprint(b.child.id())).collect();
    let rss = prints.iter().map(|p| p.0).fold(0.0, f64::max);
    let fds = prints.iter().map(|p| p.1).max().unwrap_or(0);
    let threads = prints.iter().map(|p| p.2).max().unwrap_or(0);
    println!("{label}:");
    println!(
        "  created in {:.1} s ({:.0} partitions/s), all led on every broker after {:.1} s",
        created.as_secs_f64(),
        n as f64 / created.as_secs_f64(),
        all_led.as_secs_f64()
    );
    println!("  per broker at most: RSS {rss:.0} MB, {fds} open files, {threads} threads");
    println!(
        "  Metadata of every topic: {:.1} ms, {:.1} MB",
        md_time.as_secs_f64() * 1e3,
        md_bytes as f64 / 1e6
    );
    let restarts = if count == 1 {
        let b = &mut brokers[0];
        let mut times = Vec::new();
        for kill9 in [false, true] {
            b.stop(kill9);
            let port = b.restart();
            let led_again = wait_for(
                "every partition led after the restart",
                Duration::from_secs(600),
                || led(b).0 == n as usize,
            );
            times.push((port, port + led_again));
        }
        println!(
            "  restart after a clean stop: listening {:.2} s, every partition led {:.2} s; after kill -9: {:.2} s, {:.2} s",
            times[0].0.as_secs_f64(),
            times[0].1.as_secs_f64(),
            times[1].0.as_secs_f64(),
            times[1].1.as_secs_f64()
        );
        format!(
            r#","clean_restart_listening_s":{:.2},"clean_restart_led_s":{:.2},"kill9_restart_listening_s":{:.2},"kill9_restart_led_s":{:.2}"#,
            times[0].0.as_secs_f64(),
            times[0].1.as_secs_f64(),
            times[1].0.as_secs_f64(),
            times[1].1.as_secs_f64()
        )
    } else {
        // The last broker stops; the quorum moves on by more than the log it
        // keeps after a snapshot (small topics the other two can hold), so the
        // broker comes back to an InstallSnapshot of the whole image.
        let away = count - 1;
        brokers[away].stop(false);
        let mut c = Conn::connect(&brokers[0].bootstrap());
        for i in 0..50 {
            let req =
                CreateTopicsRequest::default()
                    .with_timeout_ms(30_000)
                    .with_topics(vec![CreatableTopic::default()
                        .with_name(name(&format!("moved-on-{i}")))
                        .with_num_partitions(1)
                        .with_replication_factor(1)]);
            let r = c.call(5, &req);
            assert_eq!(r.topics[0].error_code, 0, "scale: {:?}", r.topics[0].error_message);
        }
        let t1 = Instant::now();
        brokers[away].restart();
        let caught_up = wait_for(
            "the returning broker to know every topic",
            Duration::from_secs(300),
            || {
                let (led_n, moved_on, _, _) = led_with(&brokers[away], "moved-on-");
                led_n == n as usize && moved_on == 50
            },
        );
        let took = t1.elapsed().max(caught_up);
        println!(
            "  a broker away while the quorum moved on: knows every partition {:.2} s after it starts",
            took.as_secs_f64()
        );
        format!(r#","returning_broker_caught_up_s":{:.2}"#, took.as_secs_f64())
    };
    let snapshot = brokers.iter().map(|b| snapshot_bytes(&b.dir)).max().unwrap_or(0);
    println!("  metadata snapshot {:.2} MB", snapshot as f64 / 1e6);
    drop(brokers);
    format!(
        r#"{{"scenario":"scale: {label}","partitions":{n},"brokers":{count},"replication_factor":{rf},"create_s":{:.2},"partitions_per_s":{:.0},"all_led_s":{:.2},"rss_mb_max":{rss:.0},"open_files_max":{fds},"threads_max":{threads},"metadata_all_ms":{:.1},"metadata_all_bytes":{md_bytes},"snapshot_bytes":{snapshot}{restarts}}}"#,
        created.as_secs_f64(),
        n as f64 / created.as_secs_f64(),
        all_led.as_secs_f64(),
        md_time.as_secs_f64() * 1e3
    )
}
