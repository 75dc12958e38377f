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
    produce_at(c, 9, tid, topic, batch)
}

/// Produce v12 (transaction version 2): no AddPartitionsToTxn before it.
fn produce_v12(c: &mut Client, tid: &str, topic: &str, batch: Bytes) -> i16 {
    produce_at(c, 12, tid, topic, batch)
}

fn produce_at(c: &mut Client, version: i16, tid: &str, topic: &str, batch: Bytes) -> i16 {
    let r = c.call(
        version,
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
    // From Produce v11 the client is told it may abort and go on.
    let code = produce_at(
        &mut c,
        11,
        "late-app",
        "never-added",
        txn_batch(producer.0, producer.1, 0),
    );
    assert_eq!(code, ResponseError::TransactionAbortable.code());
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

fn api_versions(c: &mut Client) -> ApiVersionsResponse {
    c.call(
        3,
        &ApiVersionsRequest::default()
            .with_client_software_name(s("skein-test"))
            .with_client_software_version(s("1")),
    )
}

/// The finalized level of `transaction.version` (0 when not finalized) and the features epoch.
fn transaction_version(c: &mut Client) -> (i16, i64) {
    let r = api_versions(c);
    let level = r
        .finalized_features
        .iter()
        .find(|f| f.name.as_str() == "transaction.version")
        .map_or(0, |f| f.max_version_level);
    (level, r.finalized_features_epoch)
}

/// EndTxn v5: the error and the producer id and epoch to go on with.
fn end_v5(c: &mut Client, tid: &str, (pid, epoch): (i64, i16), commit: bool) -> (i16, (i64, i16)) {
    let r = c.call(
        5,
        &EndTxnRequest::default()
            .with_transactional_id(TransactionalId(s(tid)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_committed(commit),
    );
    (r.error_code, (r.producer_id.0, r.producer_epoch))
}

/// TxnOffsetCommit v5 (no AddOffsetsToTxn before it) of `offset` for partition 0 of `topic`.
fn txn_offset_commit_v5(
    c: &mut Client,
    tid: &str,
    group: &str,
    (pid, epoch): (i64, i16),
    topic: &str,
    offset: i64,
) -> i16 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = c.call(
            5,
            &TxnOffsetCommitRequest::default()
                .with_transactional_id(TransactionalId(s(tid)))
                .with_group_id(GroupId(s(group)))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_generation_id(-1)
                .with_member_id(s(""))
                .with_topics(vec![txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                    .with_name(TopicName(s(topic)))
                    .with_partitions(vec![
                        txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(offset),
                    ])]),
        );
        let code = r.topics[0].partitions[0].error_code;
        // The group's coordinator may still be loading on a fresh broker.
        let retriable = [
            ResponseError::CoordinatorLoadInProgress.code(),
            ResponseError::CoordinatorNotAvailable.code(),
        ];
        if !retriable.contains(&code) || Instant::now() > deadline {
            return code;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The group's committed offset for partition 0 of `topic` (-1 for none).
fn committed(c: &mut Client, group: &str, topic: &str) -> i64 {
    let r = c.call(
        1,
        &OffsetFetchRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(Some(vec![offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partition_indexes(vec![0])])),
    );
    r.topics[0].partitions[0].committed_offset
}

#[test]
fn transaction_version_2_bumps_the_epoch_per_transaction_and_fences_the_last_one_s_late_write() {
    let b = BrokerProcess::start(&[]);
    let mut c = b.connect();
    // A new cluster finalizes transaction.version 2, and serves the versions
    // a client of it speaks.
    let versions = api_versions(&mut c);
    let max = |key: i16| versions.api_keys.iter().find(|k| k.api_key == key).unwrap().max_version;
    assert!(
        max(0) >= 12 && max(26) >= 5 && max(28) >= 5,
        "Produce v12, EndTxn v5, TxnOffsetCommit v5"
    );
    let supported = versions
        .supported_features
        .iter()
        .find(|f| f.name.as_str() == "transaction.version")
        .expect("transaction.version supported");
    assert_eq!((supported.min_version, supported.max_version), (0, 2));
    assert_eq!(transaction_version(&mut c).0, 2);

    create_topic(&mut c, "tv2");
    let (pid, e) = init(&mut c, "tv2-app");
    // The partition joins the transaction through its leader: no AddPartitionsToTxn.
    assert_eq!(produce_v12(&mut c, "tv2-app", "tv2", txn_batch(pid, e, 0)), 0);
    assert_eq!(offsets(&mut c, "tv2"), (1, 0), "the transaction is open");
    // So does the group's offsets partition: no AddOffsetsToTxn.
    assert_eq!(
        txn_offset_commit_v5(&mut c, "tv2-app", "tv2-group", (pid, e), "tv2", 42),
        0
    );
    let (code, next) = end_v5(&mut c, "tv2-app", (pid, e), true);
    assert_eq!((code, next), (0, (pid, e + 1)), "the commit answers the bumped epoch");
    assert_eq!(wait_stable(&mut c, "tv2", 2), (2, 2), "the commit marker written");
    let deadline = Instant::now() + Duration::from_secs(20);
    while committed(&mut c, "tv2-group", "tv2") != 42 {
        assert!(Instant::now() < deadline, "the offset never took effect");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The EndTxn duplicated on another connection is answered as the retry it is.
    let mut other = b.connect();
    assert_eq!(end_v5(&mut other, "tv2-app", (pid, e), true), (0, (pid, e + 1)));
    // A write of the committed transaction delayed until now (Jepsen's lost
    // write): its epoch is the finished transaction's, so it is fenced, and
    // opens nothing.
    let code = produce_v12(&mut c, "tv2-app", "tv2", txn_batch(pid, e, 1));
    assert_eq!(code, ResponseError::InvalidProducerEpoch.code());
    assert_eq!(offsets(&mut c, "tv2"), (2, 2));
    // So is its EndTxn for a new transaction, and its offset commit.
    assert_eq!(
        end_v5(&mut other, "tv2-app", (pid, e), false).0,
        ResponseError::InvalidTxnState.code()
    );
    assert_eq!(
        txn_offset_commit_v5(&mut other, "tv2-app", "tv2-group", (pid, e), "tv2", 99),
        ResponseError::InvalidProducerEpoch.code()
    );
    // The next transaction runs at the bumped epoch, from sequence 0.
    assert_eq!(produce_v12(&mut c, "tv2-app", "tv2", txn_batch(pid, e + 1, 0)), 0);
    assert_eq!(end_v5(&mut c, "tv2-app", (pid, e + 1), false), (0, (pid, e + 2)));
    assert_eq!(wait_stable(&mut c, "tv2", 4), (4, 4), "the abort marker written");
    // An abort with nothing open bumps the epoch too; a commit of nothing is refused.
    assert_eq!(
        end_v5(&mut c, "tv2-app", (pid, e + 2), true).0,
        ResponseError::InvalidTxnState.code()
    );
    assert_eq!(end_v5(&mut c, "tv2-app", (pid, e + 2), false), (0, (pid, e + 3)));
    assert_eq!(
        committed(&mut c, "tv2-group", "tv2"),
        42,
        "the aborted offsets never took effect"
    );
    // A client of version 1 on the same id keeps its classic protocol.
    let classic = init(&mut c, "tv2-app");
    assert_eq!(classic, (pid, e + 4));
    assert_eq!(add_partition(&mut c, "tv2-app", classic, "tv2"), 0);
    assert_eq!(produce(&mut c, "tv2-app", "tv2", txn_batch(pid, e + 4, 0)), 0);
    assert_eq!(end(&mut c, "tv2-app", classic, true), 0);
    assert_eq!(wait_stable(&mut c, "tv2", 6), (6, 6));
}

#[test]
fn update_features_moves_transaction_version_by_kafka_s_rules() {
    let b = BrokerProcess::start(&[]);
    let mut c = b.connect();
    let update = |c: &mut Client, feature: &str, level: i16, upgrade_type: i8, validate_only: bool| {
        let r = c.call(
            1,
            &UpdateFeaturesRequest::default()
                .with_timeout_ms(10_000)
                .with_validate_only(validate_only)
                .with_feature_updates(vec![update_features_request::FeatureUpdateKey::default()
                    .with_feature(s(feature))
                    .with_max_version_level(level)
                    .with_upgrade_type(upgrade_type)]),
        );
        assert_eq!(r.results.len(), 1, "v1 answers per feature");
        r.error_code
    };
    let (level, epoch) = transaction_version(&mut c);
    assert_eq!(level, 2);
    let invalid = ResponseError::InvalidUpdateVersion.code();
    let cases = [
        ("a downgrade named an upgrade", "transaction.version", 1, 1),
        ("a level no broker supports", "transaction.version", 3, 1),
        ("an unknown feature", "no.such.version", 1, 1),
        ("an unknown upgrade type", "transaction.version", 1, 9),
    ];
    for (name, feature, level, t) in cases {
        assert_eq!(update(&mut c, feature, level, t, false), invalid, "{name}");
    }
    assert_eq!(update(&mut c, "transaction.version", 1, 2, true), 0, "validate only");
    assert_eq!(transaction_version(&mut c), (2, epoch), "nothing changed");
    // A safe downgrade to 1: clients are told to speak version 1.
    assert_eq!(update(&mut c, "transaction.version", 1, 2, false), 0);
    let (level, after) = transaction_version(&mut c);
    assert_eq!(level, 1);
    assert!(after > epoch, "the features epoch moves with a change");
    // Back to 2 with an upgrade.
    assert_eq!(update(&mut c, "transaction.version", 2, 1, false), 0);
    assert_eq!(transaction_version(&mut c).0, 2);
}
