//! Transactions at the protocol level, where the clients cannot be made to
//! misbehave: a late transactional write after its transaction ended (the
//! hole KIP-890 part 1 closes), a write to a partition never added, stale
//! epochs, and the coordinator's errors for requests out of order.

mod common;

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::{BrokerProcess, Client};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn create_topic(c: &mut Client, name: &str) {
    let r = c.call(
        5,
        &CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(TopicName(s(name)))
                .with_num_partitions(1)
                .with_replication_factor(1),
        ]),
    );
    assert_eq!(r.topics[0].error_code, 0);
}

/// A transactional batch of one record with this sequence.
fn txn_batch(pid: i64, epoch: i16, seq: i32) -> Bytes {
    use kafka_protocol::records::*;
    let r = Record {
        transactional: true,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 0,
        producer_id: pid,
        producer_epoch: epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: seq,
        timestamp: 5,
        key: None,
        value: Some(Bytes::from_static(b"v")),
        headers: Default::default(),
    };
    let mut buf = BytesMut::new();
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
}

fn produce(c: &mut Client, tid: &str, topic: &str, batch: Bytes) -> i16 {
    let r = c.call(
        9,
        &ProduceRequest::default()
            .with_transactional_id(Some(TransactionalId(s(tid))))
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![produce_request::TopicProduceData::default()
                .with_name(TopicName(s(topic)))
                .with_partition_data(vec![produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch))])]),
    );
    r.responses[0].partition_responses[0].error_code
}

fn init(c: &mut Client, tid: &str) -> (i64, i16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = c.call(
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(s(tid))))
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        );
        if r.error_code == 0 {
            return (r.producer_id.0, r.producer_epoch);
        }
        assert!(Instant::now() < deadline, "InitProducerId: {}", r.error_code);
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn add_partition(c: &mut Client, tid: &str, (pid, epoch): (i64, i16), topic: &str) -> i16 {
    let r = c.call(
        3,
        &AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(s(tid)))
            .with_v3_and_below_producer_id(ProducerId(pid))
            .with_v3_and_below_producer_epoch(epoch)
            .with_v3_and_below_topics(vec![add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![0])]),
    );
    r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
}

fn end(c: &mut Client, tid: &str, (pid, epoch): (i64, i16), commit: bool) -> i16 {
    c.call(
        3,
        &EndTxnRequest::default()
            .with_transactional_id(TransactionalId(s(tid)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_committed(commit),
    )
    .error_code
}

/// (high watermark, last stable offset) of partition 0, from ListOffsets.
fn offsets(c: &mut Client, topic: &str) -> (i64, i64) {
    let latest = |c: &mut Client, isolation: i8| {
        c.call(
            5,
            &ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_isolation_level(isolation)
                .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
                    .with_name(TopicName(s(topic)))
                    .with_partitions(vec![
                        list_offsets_request::ListOffsetsPartition::default().with_timestamp(-1)
                    ])]),
        )
        .topics[0]
            .partitions[0]
            .offset
    };
    (latest(c, 0), latest(c, 1))
}

/// Waits until both the high watermark and the last stable offset reach `end`.
fn wait_stable(c: &mut Client, topic: &str, end: i64) -> (i64, i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (hw, lso) = offsets(c, topic);
        if (hw == end && lso == end) || Instant::now() > deadline {
            return (hw, lso);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_late_write_after_its_transaction_ended_is_refused_and_opens_no_transaction() {
    let b = BrokerProcess::start(&[]);
    let mut c = b.connect();
    create_topic(&mut c, "late");
    let producer = init(&mut c, "late-app");
    assert_eq!(add_partition(&mut c, "late-app", producer, "late"), 0);
    assert_eq!(
        produce(&mut c, "late-app", "late", txn_batch(producer.0, producer.1, 0)),
        0
    );
    let (hw, lso) = offsets(&mut c, "late");
    assert_eq!((hw, lso), (1, 0), "the open transaction holds the stable offset");
    assert_eq!(end(&mut c, "late-app", producer, true), 0);
    assert_eq!(wait_stable(&mut c, "late", 2), (2, 2), "the commit marker written");
    // A write delayed past the commit, with the same epoch: without KIP-890's
    // check it would open a transaction no marker ever closes.
    let code = produce(&mut c, "late-app", "late", txn_batch(producer.0, producer.1, 1));
    assert_eq!(code, ResponseError::InvalidTxnState.code());
    assert_eq!(
        offsets(&mut c, "late"),
        (2, 2),
        "nothing appended, the stable offset free"
    );
    // The EndTxn duplicated on another connection: a retry of the commit is
    // answered as done, an abort of the committed transaction refused; neither
    // writes a marker.
    let mut other = b.connect();
    assert_eq!(end(&mut other, "late-app", producer, true), 0);
    assert_eq!(
        end(&mut other, "late-app", producer, false),
        ResponseError::InvalidTxnState.code()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(offsets(&mut c, "late"), (2, 2));
    // A partition never added to the transaction is refused the same way.
    create_topic(&mut c, "never-added");
    assert_eq!(add_partition(&mut c, "late-app", producer, "late"), 0);
    let code = produce(&mut c, "late-app", "never-added", txn_batch(producer.0, producer.1, 0));
    assert_eq!(code, ResponseError::InvalidTxnState.code());
    assert_eq!(offsets(&mut c, "never-added"), (0, 0));
    // The producer's own transaction goes on: the next write is verified and appended.
    assert_eq!(
        produce(&mut c, "late-app", "late", txn_batch(producer.0, producer.1, 1)),
        0
    );
    assert_eq!(end(&mut c, "late-app", producer, false), 0);
    assert_eq!(wait_stable(&mut c, "late", 4), (4, 4));
}

#[test]
fn the_coordinator_answers_requests_out_of_order_with_kafka_s_errors() {
    let b = BrokerProcess::start(&[]);
    let mut c = b.connect();
    create_topic(&mut c, "order");
    let producer = init(&mut c, "order-app");
    // Nothing to end yet.
    assert_eq!(
        end(&mut c, "order-app", producer, true),
        ResponseError::InvalidTxnState.code()
    );
    // A wrong producer id or epoch.
    let wrong_id = (producer.0 + 1, producer.1);
    assert_eq!(
        add_partition(&mut c, "order-app", wrong_id, "order"),
        ResponseError::InvalidProducerIdMapping.code()
    );
    let old_epoch = (producer.0, producer.1 - 1);
    assert_eq!(
        add_partition(&mut c, "order-app", old_epoch, "order"),
        ResponseError::ProducerFenced.code()
    );
    // A second InitProducerId bumps the epoch: the first producer is fenced.
    let successor = init(&mut c, "order-app");
    assert_eq!(successor, (producer.0, producer.1 + 1));
    assert_eq!(
        add_partition(&mut c, "order-app", producer, "order"),
        ResponseError::ProducerFenced.code()
    );
    // Clients before AddPartitionsToTxn v2 know it as INVALID_PRODUCER_EPOCH.
    let r = c.call(
        1,
        &AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(s("order-app")))
            .with_v3_and_below_producer_id(ProducerId(producer.0))
            .with_v3_and_below_producer_epoch(producer.1)
            .with_v3_and_below_topics(vec![add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                .with_name(TopicName(s("order")))
                .with_partitions(vec![0])]),
    );
    assert_eq!(
        r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
        ResponseError::InvalidProducerEpoch.code()
    );
    // A timeout above transaction.max.timeout.ms.
    let r = c.call(
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(s("order-app"))))
            .with_transaction_timeout_ms(900_001)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    );
    assert_eq!(r.error_code, ResponseError::InvalidTransactionTimeout.code());
}
