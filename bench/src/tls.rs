//! `tls`: the same producer and consumer over TLS and over plaintext, against
//! one broker with both listeners, as ratios in one run, and SCRAM logins per
//! second. rdkafka_performance is built without SSL, so both sides use
//! skein-client's connection (rustls for TLS): one produce stream of 1 MiB
//! requests of 1 KiB records (acks=1) and one raw Fetch reader, each run
//! plaintext then TLS, twice, keeping the better run of each.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    alter_user_scram_credentials_request, fetch_request, produce_request, AlterUserScramCredentialsRequest, BrokerId,
    CreateTopicsRequest, FetchRequest, ProduceRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use skein_client::scram::ScramHash;
use skein_client::security::tls_config;
use skein_client::{ClientSecurity, Connection, Protocol, SaslLogin};

use crate::{free_port, Args, Broker, CpuMeter};

const TOPIC: &str = "bench-tls";
const RECORD: usize = 1024;
/// Records per batch and batches per Produce request: 1 MiB requests.
const PER_BATCH: usize = 64;
const BATCHES: usize = 16;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../broker/tests/fixtures/tls")
}

/// One partition's worth of a Produce request: `BATCHES` batches of `PER_BATCH` records.
fn batches() -> Bytes {
    // Now, not 0: a segment whose first timestamp is from 1970 is past
    // segment.ms at once, and the log would roll at every batch (as Kafka's).
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut out = BytesMut::new();
    for _ in 0..BATCHES {
        let records: Vec<Record> = (0..PER_BATCH)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: -1,
                timestamp: now_ms,
                key: None,
                value: Some(Bytes::from(vec![b'x'; RECORD])),
                headers: Default::default(),
            })
            .collect();
        RecordBatchEncoder::encode(
            &mut out,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .expect("encode a batch");
    }
    out.freeze()
}

async fn connect(address: &str, security: &ClientSecurity) -> Connection {
    Connection::connect_with(
        address,
        "skein-bench".into(),
        Duration::from_secs(10),
        256 << 20,
        security,
    )
    .await
    .expect("connect")
}

/// Produces `bytes` of records; returns MB/s.
async fn produce(address: &str, security: &ClientSecurity, bytes: usize) -> f64 {
    let mut c = connect(address, security).await;
    let payload = batches();
    let per_request = PER_BATCH * BATCHES * RECORD;
    let t0 = Instant::now();
    let mut sent = 0;
    while sent < bytes {
        let req = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![produce_request::TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partition_data(vec![produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(payload.clone()))])]);
        let r = c.call(9, &req, Duration::from_secs(30)).await.expect("produce");
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0, "produce refused");
        sent += per_request;
    }
    sent as f64 / t0.elapsed().as_secs_f64() / 1e6
}

/// Reads the partition from the start to its end; returns (bytes, MB/s).
async fn consume(address: &str, security: &ClientSecurity) -> (usize, f64) {
    let mut c = connect(address, security).await;
    let mut offset = 0i64;
    let mut total = 0usize;
    let t0 = Instant::now();
    loop {
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_max_bytes(64 << 20)
            .with_topics(vec![fetch_request::FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partitions(vec![fetch_request::FetchPartition::default()
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(8 << 20)])]);
        let r = c
            .call(12, &req, Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("fetch from {address} at {offset} after {total} bytes: {e}"));
        let recs = r.responses[0].partitions[0].records.clone().unwrap_or_default();
        if recs.is_empty() {
            break;
        }
        total += recs.len();
        // Walk the batch headers for the next offset.
        let mut pos = 0;
        while pos + 61 <= recs.len() {
            let base = i64::from_be_bytes(recs[pos..pos + 8].try_into().unwrap());
            let len = i32::from_be_bytes(recs[pos + 8..pos + 12].try_into().unwrap()) as usize;
            let delta = i32::from_be_bytes(recs[pos + 23..pos + 27].try_into().unwrap()) as i64;
            offset = base + delta + 1;
            pos += 12 + len;
        }
    }
    (total, total as f64 / t0.elapsed().as_secs_f64() / 1e6)
}

/// SCRAM-SHA-512 logins over TLS, one connection each, for `seconds`.
async fn logins(address: &str, security: &ClientSecurity, seconds: f64) -> f64 {
    let t0 = Instant::now();
    let mut n = 0;
    while t0.elapsed().as_secs_f64() < seconds {
        connect(address, security).await;
        n += 1;
    }
    n as f64 / t0.elapsed().as_secs_f64()
}

struct Best {
    mbps: f64,
    cpu_per_gb: f64,
}

fn keep(best: &mut Option<Best>, mbps: f64, cpu_s: f64, bytes: usize) {
    let cpu_per_gb = cpu_s / (bytes as f64 / 1e9);
    if best.as_ref().is_none_or(|b| mbps > b.mbps) {
        *best = Some(Best { mbps, cpu_per_gb });
    }
}

pub fn run(args: &Args, dir: &Path) -> Vec<String> {
    let fx = fixtures();
    let (plain_port, tls_port) = (free_port(), free_port());
    let mut sets = args.common_sets();
    sets.extend([
        format!("listeners=PLAINTEXT://127.0.0.1:{plain_port},SASL_SSL://127.0.0.1:{tls_port}"),
        format!("ssl.keystore.location={}", fx.join("server.pem").display()),
        "sasl.enabled.mechanisms=SCRAM-SHA-512".to_string(),
    ]);
    // `Broker::spawn` sets a PLAINTEXT listener on plain_port; ours replaces it.
    let (broker, _) = Broker::start(&args.broker, dir.join("tls"), plain_port, &sets);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let trust = std::fs::read(fx.join("ca.pem")).expect("the test CA");
    let plain = ClientSecurity::plaintext();
    let tls = ClientSecurity {
        protocol: Protocol::SaslSsl,
        tls: Some(tls_config(&trust, None).expect("client TLS config")),
        sasl: Some(SaslLogin {
            mechanism: "SCRAM-SHA-512".into(),
            username: "bench".into(),
            password: "bench-secret".into(),
        }),
    };
    let plain_addr = format!("127.0.0.1:{plain_port}");
    let tls_addr = format!("127.0.0.1:{tls_port}");
    let bytes = args.bytes / 4;
    let pid = broker.child.id();
    let (produced, consumed, per_second) = rt.block_on(async {
        let mut admin = connect(&plain_addr, &plain).await;
        let create = CreateTopicsRequest::default().with_topics(vec![
            kafka_protocol::messages::create_topics_request::CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_num_partitions(1)
                .with_replication_factor(1),
        ]);
        admin
            .call(7, &create, Duration::from_secs(30))
            .await
            .expect("create topic");
        // The SCRAM user the TLS side logs in as (KIP-554: salt and salted password).
        let salt = b"skein-bench-salt".to_vec();
        let salted = ScramHash::Sha512.salted_password("bench-secret", &salt, 4096);
        let upsert = AlterUserScramCredentialsRequest::default().with_upsertions(vec![
            alter_user_scram_credentials_request::ScramCredentialUpsertion::default()
                .with_name(StrBytes::from_static_str("bench"))
                .with_mechanism(2)
                .with_iterations(4096)
                .with_salt(Bytes::from(salt))
                .with_salted_password(Bytes::from(salted)),
        ]);
        let r = admin
            .call(0, &upsert, Duration::from_secs(30))
            .await
            .expect("add the SCRAM user");
        assert_eq!(r.results[0].error_code, 0, "the SCRAM user was refused");
        let mut produced: [Option<Best>; 2] = [None, None];
        let mut consumed: [Option<Best>; 2] = [None, None];
        for _ in 0..2 {
            for (i, (addr, sec)) in [(&plain_addr, &plain), (&tls_addr, &tls)].into_iter().enumerate() {
                let cpu = CpuMeter::start(&[pid]);
                let mbps = produce(addr, sec, bytes).await;
                keep(&mut produced[i], mbps, cpu.seconds(), bytes);
                let cpu = CpuMeter::start(&[pid]);
                let (read, mbps) = consume(addr, sec).await;
                keep(&mut consumed[i], mbps, cpu.seconds(), read);
            }
        }
        let per_second = logins(&tls_addr, &tls, 3.0).await;
        (produced, consumed, per_second)
    });
    let mut json = Vec::new();
    for (what, runs) in [("produce", produced), ("consume", consumed)] {
        let [Some(p), Some(t)] = runs else { continue };
        let ratio = t.mbps / p.mbps;
        println!(
            "{:<44} {:>9.1} {:>11} {:>9} {:>9} {:>9.2}",
            format!("{what} 1024 B, skein-client, plaintext"),
            p.mbps,
            "-",
            "-",
            "-",
            p.cpu_per_gb
        );
        println!(
            "{:<44} {:>9.1} {:>11} {:>9} {:>9} {:>9.2}  ({ratio:.2}x plaintext)",
            format!("{what} 1024 B, skein-client, SASL_SSL"),
            t.mbps,
            "-",
            "-",
            "-",
            t.cpu_per_gb
        );
        json.push(format!(
            r#"{{"scenario":"{what} over TLS","plaintext_mb_per_s":{:.1},"tls_mb_per_s":{:.1},"ratio":{ratio:.3},"plaintext_broker_cpu_s_per_gb":{:.2},"tls_broker_cpu_s_per_gb":{:.2}}}"#,
            p.mbps, t.mbps, p.cpu_per_gb, t.cpu_per_gb
        ));
    }
    println!("SCRAM-SHA-512 logins over TLS (a connection each): {per_second:.0}/s");
    json.push(format!(
        r#"{{"scenario":"SCRAM-SHA-512 logins over TLS","per_s":{per_second:.0}}}"#
    ));
    drop(broker);
    json
}
