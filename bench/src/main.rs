//! `skein-bench`: produce and consume throughput and latency against a fresh
//! skein-broker process, with librdkafka (through the rdkafka crate) as the client.
//!
//! Scenarios: 1 KiB and 100 B records, acks=1 and acks=all; a single consumer
//! reading each topic back; and the broker's start-up time on the resulting log
//! after a clean stop and after kill -9. Prints a table and writes JSON.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::Parser;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

#[derive(Parser, Debug)]
struct Args {
    /// The skein-broker binary.
    #[arg(long)]
    broker: PathBuf,
    /// Where to write the JSON results.
    #[arg(long, default_value = "bench-results/latest.json")]
    out: PathBuf,
    /// Bytes to produce per scenario.
    #[arg(long, default_value_t = 1 << 30)]
    bytes: usize,
    /// Partitions per topic.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
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
    fn start(bin: &PathBuf, dir: PathBuf, port: u16, sets: &[String]) -> (Broker, Duration) {
        let mut cmd = Command::new(bin);
        cmd.arg("--set")
            .arg(format!("log.dirs={}", dir.display()))
            .arg("--set")
            .arg(format!("listeners=PLAINTEXT://127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for s in sets {
            cmd.arg("--set").arg(s);
        }
        let t0 = Instant::now();
        let child = cmd.spawn().expect("start skein-broker");
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(120), "broker did not start");
            std::thread::sleep(Duration::from_millis(2));
        }
        (Broker { child, port, dir, bin: bin.clone(), sets: sets.to_vec() }, t0.elapsed())
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

/// Records each delivery's latency (enqueue to acknowledgement) in microseconds.
struct LatencyContext {
    sent: Mutex<Vec<Instant>>,
    latencies_us: Mutex<Vec<u32>>,
    errors: Mutex<u64>,
}

impl ClientContext for LatencyContext {}

impl ProducerContext for LatencyContext {
    type DeliveryOpaque = usize;
    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        let now = Instant::now();
        match result {
            Ok(_) => {
                let sent = self.sent.lock().unwrap()[index];
                self.latencies_us.lock().unwrap().push(now.duration_since(sent).as_micros() as u32);
            }
            Err(_) => *self.errors.lock().unwrap() += 1,
        }
    }
}

struct ProduceResult {
    records: usize,
    bytes: usize,
    secs: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn produce(bootstrap: &str, topic: &str, record_size: usize, total_bytes: usize, acks: &str, partitions: i32) -> ProduceResult {
    let n = total_bytes / record_size;
    let ctx = LatencyContext { sent: Mutex::new(Vec::with_capacity(n)), latencies_us: Mutex::new(Vec::with_capacity(n)), errors: Mutex::new(0) };
    let producer: ThreadedProducer<LatencyContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", acks)
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.kbytes", "262144")
        .set("queue.buffering.max.messages", "2000000")
        .set("compression.type", "none")
        .create_with_context(ctx)
        .expect("producer");
    let payload = vec![b'x'; record_size];
    let t0 = Instant::now();
    for i in 0..n {
        producer.context().sent.lock().unwrap().push(Instant::now());
        let mut record = BaseRecord::<(), [u8], usize>::with_opaque_to(topic, i).payload(&payload[..]).partition(i as i32 % partitions);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(120)).expect("flush");
    let secs = t0.elapsed().as_secs_f64();
    let errors = *producer.context().errors.lock().unwrap();
    assert_eq!(errors, 0, "delivery errors");
    let mut lat = producer.context().latencies_us.lock().unwrap().clone();
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p) as usize] as f64 / 1000.0;
    ProduceResult { records: n, bytes: n * record_size, secs, p50_ms: pct(0.50), p99_ms: pct(0.99) }
}

fn consume(bootstrap: &str, topic: &str, partitions: i32, expected: usize) -> (usize, usize, f64) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "skein-bench")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .set("queued.max.messages.kbytes", "1048576")
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let (mut records, mut bytes) = (0usize, 0usize);
    let t0 = Instant::now();
    while records < expected {
        match consumer.poll(Duration::from_secs(10)) {
            Some(Ok(m)) => {
                records += 1;
                bytes += m.payload().map_or(0, |p| p.len());
            }
            Some(Err(e)) => panic!("consume error: {e}"),
            None => panic!("no data for 10 s after {records} records"),
        }
    }
    (records, bytes, t0.elapsed().as_secs_f64())
}

fn main() {
    let args = Args::parse();
    let dir = std::env::temp_dir().join(format!("skein-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // Topics are auto-created by the producers' metadata requests with this many partitions.
    let mut sets = vec![format!("num.partitions={}", args.partitions)];
    sets.extend(args.sets.iter().cloned());
    let (mut broker, first_start) = Broker::start(&args.broker, dir.clone(), port, &sets);
    let bootstrap = broker.bootstrap();
    println!("skein-bench: broker started in {:.1} ms on an empty log", first_start.as_secs_f64() * 1e3);
    println!("{:<28} {:>10} {:>12} {:>10} {:>10}", "scenario", "MB/s", "records/s", "p50 ms", "p99 ms");
    let mut json = Vec::new();
    let mut topics = Vec::new();
    for (record_size, acks) in [(1024, "1"), (1024, "all"), (100, "1"), (100, "all")] {
        let topic = format!("bench-{record_size}b-acks-{acks}");
        // 100 B records are benchmarked on a tenth of the bytes (same record-count order).
        let bytes = if record_size < 1024 { args.bytes / 10 } else { args.bytes };
        let r = produce(&bootstrap, &topic, record_size, bytes, acks, args.partitions);
        let mbps = r.bytes as f64 / r.secs / 1e6;
        let rps = r.records as f64 / r.secs;
        let name = format!("produce {record_size} B acks={acks}");
        println!("{name:<28} {mbps:>10.1} {rps:>12.0} {:>10.2} {:>10.2}", r.p50_ms, r.p99_ms);
        json.push(format!(
            r#"{{"scenario":"{name}","record_bytes":{record_size},"acks":"{acks}","records":{},"mb_per_s":{mbps:.1},"records_per_s":{rps:.0},"p50_ms":{:.3},"p99_ms":{:.3}}}"#,
            r.records, r.p50_ms, r.p99_ms
        ));
        topics.push((topic, record_size, r.records));
    }
    for (topic, record_size, n) in &topics {
        if topic.ends_with("acks-all") {
            continue;
        }
        let (records, bytes, secs) = consume(&bootstrap, topic, args.partitions, *n);
        let mbps = bytes as f64 / secs / 1e6;
        let rps = records as f64 / secs;
        let name = format!("consume {record_size} B");
        println!("{name:<28} {mbps:>10.1} {rps:>12.0} {:>10} {:>10}", "-", "-");
        json.push(format!(r#"{{"scenario":"{name}","record_bytes":{record_size},"records":{records},"mb_per_s":{mbps:.1},"records_per_s":{rps:.0}}}"#));
    }
    let log_bytes: u64 = walk_size(&dir);
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

fn walk_size(dir: &std::path::Path) -> u64 {
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
