//! Property tests: random and mutated bytes thrown at the request decoder and at a
//! live connection never crash the broker, and data written before stays intact.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use common::{encode_request, BrokerProcess};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use proptest::prelude::*;
use skein_broker::cluster::{Broker, NewTopic};
use skein_broker::config::BrokerConfig;
use skein_broker::protocol::handle_frame;

fn tn(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// Valid request frames (without the length prefix) to mutate.
fn seeds() -> Vec<Vec<u8>> {
    let batch = {
        use kafka_protocol::records::*;
        let r = Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: -1,
            timestamp: 5,
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::from_static(b"v")),
            headers: Default::default(),
        };
        let mut buf = bytes::BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            [r].iter(),
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .unwrap();
        buf.freeze()
    };
    let produce =
        ProduceRequest::default()
            .with_acks(1)
            .with_topic_data(vec![produce_request::TopicProduceData::default()
                .with_name(tn("fuzz"))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default().with_records(Some(batch))
                ])]);
    let fetch = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(tn("fuzz"))
            .with_partitions(vec![
                fetch_request::FetchPartition::default().with_partition_max_bytes(1 << 20)
            ])]);
    let create = CreateTopicsRequest::default()
        .with_validate_only(true)
        .with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(tn("other"))
            .with_num_partitions(2)
            .with_replication_factor(1)]);
    let metadata =
        MetadataRequest::default().with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default().with_name(Some(tn("fuzz")))
        ]));
    [
        encode_request(9, 1, &produce),
        encode_request(12, 2, &fetch),
        encode_request(7, 3, &create),
        encode_request(12, 4, &metadata),
        encode_request(3, 5, &ApiVersionsRequest::default()),
    ]
    .into_iter()
    .map(|f| f[4..].to_vec())
    .collect()
}

fn mutate(seed: &[u8], edits: &[(usize, u8)], cut: usize) -> Vec<u8> {
    let mut v = seed.to_vec();
    for &(pos, byte) in edits {
        let i = pos % v.len();
        v[i] = byte;
    }
    v.truncate(v.len() - cut % v.len().max(1));
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// The decoder and handlers, driven in-process without a socket.
    #[test]
    fn decoder_survives_random_and_mutated_frames(
        random in proptest::collection::vec(any::<u8>(), 0..256),
        which in 0usize..5,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in 0usize..40,
    ) {
        let (rt, broker) = in_process_broker();
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mutated = mutate(&seeds()[which], &edits, cut);
        rt.block_on(async {
            let _ = handle_frame(Arc::clone(broker), peer, Bytes::from(random)).await;
            let _ = handle_frame(Arc::clone(broker), peer, Bytes::from(mutated)).await;
        });
    }
}

/// One broker for all cases (runtime, broker, and its data directory kept alive).
fn in_process_broker() -> (&'static tokio::runtime::Runtime, &'static Arc<Broker>) {
    static CELL: std::sync::OnceLock<(tokio::runtime::Runtime, Arc<Broker>, tempfile::TempDir)> =
        std::sync::OnceLock::new();
    let (rt, broker, _) = CELL.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut m = BTreeMap::new();
        m.insert("log.dirs".to_string(), dir.path().display().to_string());
        m.insert("listeners".to_string(), "PLAINTEXT://127.0.0.1:0".to_string());
        let rt = tokio::runtime::Runtime::new().unwrap();
        let config = BrokerConfig::from_map(m).unwrap();
        let broker = rt.block_on(async {
            let controller = skein_broker::controller::Controller::start(&config).await.unwrap();
            let broker = Broker::open(config, controller).unwrap();
            broker.start().await.unwrap();
            broker
        });
        let topic = NewTopic {
            name: "fuzz".into(),
            partitions: 1,
            replication_factor: 1,
            assignments: vec![],
            configs: BTreeMap::new(),
        };
        rt.block_on(broker.create_topic(topic)).unwrap();
        (rt, broker, dir)
    });
    (rt, broker)
}

#[test]
fn live_connection_survives_random_and_mutated_bytes() {
    use std::io::Write;
    let mut b = BrokerProcess::start(&["socket.request.max.bytes=65536"]);
    let mut c = b.connect();
    // Write a record before the storm.
    let seed = seeds();
    let mut first = Vec::new();
    first.extend_from_slice(&(seed[0].len() as i32).to_be_bytes());
    first.extend_from_slice(&seed[0]);
    c.send_bytes(&encode_request(
        7,
        1,
        &CreateTopicsRequest::default().with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(tn("fuzz"))
            .with_num_partitions(1)
            .with_replication_factor(1)]),
    ))
    .unwrap();
    c.read_frame().unwrap();
    c.send_bytes(&first).unwrap();
    c.read_frame().unwrap();

    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 300,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let strategy = (
        proptest::collection::vec(any::<u8>(), 0..512),
        0usize..5,
        proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        0usize..40,
        any::<bool>(),
    );
    runner
        .run(&strategy, |(random, which, edits, cut, framed)| {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", b.port)).unwrap();
            s.set_read_timeout(Some(std::time::Duration::from_millis(200))).unwrap();
            let body = if framed {
                mutate(&seed[which], &edits, cut)
            } else {
                random
            };
            let mut bytes = Vec::new();
            if framed {
                bytes.extend_from_slice(&(body.len() as i32).to_be_bytes());
            }
            bytes.extend_from_slice(&body);
            let _ = s.write_all(&bytes);
            let mut sink = [0u8; 4096];
            let _ = std::io::Read::read(&mut s, &mut sink);
            Ok(())
        })
        .unwrap();
    assert!(b.alive(), "the broker must survive");

    // Afterwards a valid request works and the first record is intact at offset 0.
    let mut c = b.connect();
    let fetch = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(tn("fuzz"))
            .with_partitions(vec![
                fetch_request::FetchPartition::default().with_partition_max_bytes(1 << 20)
            ])]);
    let resp = c.call(12, &fetch);
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    let mut recs = p.records.clone().unwrap();
    let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut recs).unwrap();
    assert_eq!(set.records[0].offset, 0);
    assert_eq!(set.records[0].key.as_deref(), Some(&b"k"[..]));
}
