//! Authorization over the wire, tested by denial: for every API Skein serves,
//! a principal without the operation Kafka checks gets Kafka's error, and the
//! same request succeeds (or fails for another reason) once an ACL grants
//! exactly that operation. One broker with a SASL_PLAINTEXT listener and the
//! StandardAuthorizer; `User:admin` is a super user and sets the ACLs.

mod common;

use bytes::Bytes;
use common::{one_record_batch, BrokerProcess, Client};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use skein_broker::protocol::API_TABLE;

const JAAS: &str = "org.apache.kafka.common.security.plain.PlainLoginModule required \
     user_admin=\"admin-secret\" user_alice=\"alice-secret\" user_bob=\"bob-secret\";";

// Kafka's codes: resource types, pattern types, operations, permissions.
const TOPIC: i8 = 2;
const GROUP: i8 = 3;
const CLUSTER: i8 = 4;
const TXN: i8 = 5;
const LITERAL: i8 = 3;
const PREFIXED: i8 = 4;
const READ: i8 = 3;
const WRITE: i8 = 4;
const CREATE: i8 = 5;
const DELETE: i8 = 6;
const ALTER: i8 = 7;
const DESCRIBE: i8 = 8;
const CLUSTER_ACTION: i8 = 9;
const DESCRIBE_CONFIGS: i8 = 10;
const ALTER_CONFIGS: i8 = 11;
const IDEMPOTENT_WRITE: i8 = 12;
const DENY: i8 = 2;
const ALLOW: i8 = 3;

const TAF: ResponseError = ResponseError::TopicAuthorizationFailed;
const GAF: ResponseError = ResponseError::GroupAuthorizationFailed;
const CAF: ResponseError = ResponseError::ClusterAuthorizationFailed;
const TIAF: ResponseError = ResponseError::TransactionalIdAuthorizationFailed;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}
fn tn(v: &str) -> TopicName {
    TopicName(s(v))
}
fn gid(v: &str) -> GroupId {
    GroupId(s(v))
}

/// A binding: (resource type, name, pattern, operation).
type Grant = (i8, &'static str, i8, i8);

fn broker() -> BrokerProcess {
    BrokerProcess::start_on(
        "SASL_PLAINTEXT",
        &[
            "sasl.enabled.mechanisms=PLAIN",
            &format!("listener.name.sasl_plaintext.plain.sasl.jaas.config={JAAS}"),
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users=User:admin",
            "group.initial.rebalance.delay.ms=0",
        ],
    )
}

fn login(b: &BrokerProcess, user: &str) -> Client {
    let mut c = b.connect();
    c.authenticate_plain(user, &format!("{user}-secret"));
    c
}

fn acl_creation(principal: &str, g: Grant, permission: i8) -> create_acls_request::AclCreation {
    create_acls_request::AclCreation::default()
        .with_resource_type(g.0)
        .with_resource_name(s(g.1))
        .with_resource_pattern_type(g.2)
        .with_principal(s(principal))
        .with_host(s("*"))
        .with_operation(g.3)
        .with_permission_type(permission)
}

fn create_acls(admin: &mut Client, principal: &str, grants: &[Grant], permission: i8) {
    if grants.is_empty() {
        return;
    }
    let req = CreateAclsRequest::default()
        .with_creations(grants.iter().map(|&g| acl_creation(principal, g, permission)).collect());
    let r = admin.call(3, &req);
    for x in &r.results {
        assert_eq!(x.error_code, 0, "CreateAcls: {:?}", x.error_message);
    }
}

/// A DescribeAcls filter of ANY everything (null names, as clients send).
fn describe_any() -> DescribeAclsRequest {
    DescribeAclsRequest::default()
        .with_resource_type_filter(1)
        .with_resource_name_filter(None)
        .with_pattern_type_filter(1)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(1)
        .with_permission_type(1)
}

/// A DeleteAcls filter of ANY everything.
fn delete_any() -> delete_acls_request::DeleteAclsFilter {
    delete_acls_request::DeleteAclsFilter::default()
        .with_resource_type_filter(1)
        .with_resource_name_filter(None)
        .with_pattern_type_filter(1)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(1)
        .with_permission_type(1)
}

/// Deletes every binding of `principal`; returns how many there were.
fn revoke_all(admin: &mut Client, principal: &str) -> usize {
    let r = admin.call(
        3,
        &DeleteAclsRequest::default().with_filters(vec![delete_any()
            .with_resource_type_filter(1)
            .with_pattern_type_filter(1)
            .with_principal_filter(Some(s(principal)))
            .with_operation(1)
            .with_permission_type(1)]),
    );
    assert_eq!(r.filter_results[0].error_code, 0);
    r.filter_results[0].matching_acls.len()
}

fn produce(c: &mut Client, topic: &str) -> i16 {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(tn(topic))
            .with_partition_data(vec![produce_request::PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(one_record_batch(None, Bytes::from_static(b"v"))))])]);
    c.call(9, &req).responses[0].partition_responses[0].error_code
}

fn fetch(c: &mut Client, replica: i32) -> i16 {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(replica))
        .with_max_wait_ms(0)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(tn("t"))
            .with_partitions(vec![
                fetch_request::FetchPartition::default().with_partition_max_bytes(1 << 20)
            ])]);
    c.call(12, &req).responses[0].partitions[0].error_code
}

fn commit(c: &mut Client, group: &str) -> i16 {
    let r = c.call(
        9,
        &OffsetCommitRequest::default()
            .with_group_id(gid(group))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(tn("t"))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default().with_committed_offset(0),
                ])]),
    );
    r.topics[0].partitions[0].error_code
}

fn offset_fetch(c: &mut Client, group: &str) -> (i16, i16) {
    let r = c.call(
        8,
        &OffsetFetchRequest::default().with_groups(vec![offset_fetch_request::OffsetFetchRequestGroup::default()
            .with_group_id(gid(group))
            .with_topics(Some(vec![offset_fetch_request::OffsetFetchRequestTopics::default()
                .with_name(tn("t"))
                .with_partition_indexes(vec![0])]))]),
    );
    let g = &r.groups[0];
    let partition = g.topics.first().map_or(0, |t| t.partitions[0].error_code);
    (g.error_code, partition)
}

fn offset_delete(c: &mut Client, group: &str) -> (i16, i16) {
    let r = c.call(
        0,
        &OffsetDeleteRequest::default()
            .with_group_id(gid(group))
            .with_topics(vec![offset_delete_request::OffsetDeleteRequestTopic::default()
                .with_name(tn("t"))
                .with_partitions(vec![
                    offset_delete_request::OffsetDeleteRequestPartition::default(),
                ])]),
    );
    let partition = r.topics.first().map_or(0, |t| t.partitions[0].error_code);
    (r.error_code, partition)
}

fn describe_configs(c: &mut Client, resource_type: i8, name: &str) -> i16 {
    let r = c.call(
        4,
        &DescribeConfigsRequest::default().with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(s(name)),
        ]),
    );
    r.results[0].error_code
}

fn alter_configs(c: &mut Client, resource_type: i8, name: &str, key: &str, value: &str) -> i16 {
    let r = c.call(
        2,
        &AlterConfigsRequest::default()
            .with_validate_only(true)
            .with_resources(vec![alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(s(name))
                .with_configs(vec![alter_configs_request::AlterableConfig::default()
                    .with_name(s(key))
                    .with_value(Some(s(value)))])]),
    );
    r.responses[0].error_code
}

fn incremental_alter_configs(c: &mut Client, resource_type: i8, name: &str, key: &str, value: &str) -> i16 {
    let r = c.call(
        1,
        &IncrementalAlterConfigsRequest::default()
            .with_validate_only(true)
            .with_resources(vec![incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(s(name))
                .with_configs(vec![incremental_alter_configs_request::AlterableConfig::default()
                    .with_name(s(key))
                    .with_config_operation(0)
                    .with_value(Some(s(value)))])]),
    );
    r.responses[0].error_code
}

fn consumer_heartbeat(c: &mut Client, group: &str) -> i16 {
    c.call(
        0,
        &ConsumerGroupHeartbeatRequest::default()
            .with_group_id(gid(group))
            .with_member_id(s("m-auth"))
            .with_rebalance_timeout_ms(10_000)
            .with_subscribed_topic_names(Some(vec![tn("t")]))
            .with_topic_partitions(Some(vec![])),
    )
    .error_code
}

/// One row: the API, the grants it needs besides the one under test, the
/// grants under test, the error without them, and the call (its error code).
struct Row {
    api: ApiKey,
    what: &'static str,
    base: &'static [Grant],
    grants: &'static [Grant],
    denied: ResponseError,
    call: fn(&mut Client) -> i16,
}

fn add_partitions(c: &mut Client) -> i16 {
    c.call(
        3,
        &AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(s("tx")))
            .with_v3_and_below_topics(vec![add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                .with_name(tn("t"))
                .with_partitions(vec![0])]),
    )
    .results_by_topic_v3_and_below[0]
        .results_by_partition[0]
        .partition_error_code
}

fn add_offsets(c: &mut Client) -> i16 {
    c.call(
        3,
        &AddOffsetsToTxnRequest::default()
            .with_transactional_id(TransactionalId(s("tx")))
            .with_group_id(GroupId(s("g"))),
    )
    .error_code
}

fn txn_commit(c: &mut Client) -> i16 {
    c.call(
        3,
        &TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(s("tx")))
            .with_group_id(GroupId(s("g")))
            .with_generation_id(-1)
            .with_topics(vec![txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                .with_name(tn("t"))
                .with_partitions(vec![
                    txn_offset_commit_request::TxnOffsetCommitRequestPartition::default().with_committed_offset(1),
                ])]),
    )
    .topics[0]
        .partitions[0]
        .error_code
}

fn rows() -> Vec<Row> {
    macro_rules! row {
        ($api:ident, $what:expr, $base:expr, $grants:expr, $denied:expr, $call:expr) => {
            Row {
                api: ApiKey::$api,
                what: $what,
                base: $base,
                grants: $grants,
                denied: $denied,
                call: $call,
            }
        };
    }
    vec![
        row!(
            Produce,
            "WRITE on the topic",
            &[],
            &[(TOPIC, "t", LITERAL, WRITE)],
            TAF,
            |c| produce(c, "t")
        ),
        row!(
            Produce,
            "a transactional producer: WRITE on its transactional id",
            &[(TOPIC, "t", LITERAL, WRITE)],
            &[(TXN, "tx", LITERAL, WRITE)],
            TIAF,
            |c| {
                let req = ProduceRequest::default()
                    .with_transactional_id(Some(TransactionalId(s("tx"))))
                    .with_acks(-1)
                    .with_timeout_ms(5000)
                    .with_topic_data(vec![produce_request::TopicProduceData::default()
                        .with_name(tn("t"))
                        .with_partition_data(vec![produce_request::PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(one_record_batch(None, Bytes::from_static(b"v"))))])]);
                c.call(9, &req).responses[0].partition_responses[0].error_code
            }
        ),
        row!(
            Fetch,
            "READ on the topic",
            &[],
            &[(TOPIC, "t", LITERAL, READ)],
            TAF,
            |c| fetch(c, -1)
        ),
        row!(
            Fetch,
            "a follower: CLUSTER_ACTION",
            &[],
            &[(CLUSTER, "kafka-cluster", LITERAL, CLUSTER_ACTION)],
            TAF,
            |c| fetch(c, 7)
        ),
        row!(
            ListOffsets,
            "DESCRIBE on the topic",
            &[],
            &[(TOPIC, "t", LITERAL, DESCRIBE)],
            TAF,
            |c| {
                c.call(
                    7,
                    &ListOffsetsRequest::default().with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
                        .with_name(tn("t"))
                        .with_partitions(vec![
                            list_offsets_request::ListOffsetsPartition::default().with_timestamp(-1)
                        ])]),
                )
                .topics[0]
                    .partitions[0]
                    .error_code
            }
        ),
        row!(
            Metadata,
            "DESCRIBE on a named topic",
            &[],
            &[(TOPIC, "t", LITERAL, DESCRIBE)],
            TAF,
            |c| {
                c.call(
                    12,
                    &MetadataRequest::default().with_topics(Some(vec![
                        metadata_request::MetadataRequestTopic::default().with_name(Some(tn("t"))),
                    ])),
                )
                .topics[0]
                    .error_code
            }
        ),
        row!(
            Metadata,
            "auto-creation: CREATE on the topic",
            &[(TOPIC, "auto-made", LITERAL, DESCRIBE)],
            &[(TOPIC, "auto-made", LITERAL, CREATE)],
            TAF,
            |c| {
                c.call(
                    12,
                    &MetadataRequest::default()
                        .with_allow_auto_topic_creation(true)
                        .with_topics(Some(vec![
                            metadata_request::MetadataRequestTopic::default().with_name(Some(tn("auto-made")))
                        ])),
                )
                .topics[0]
                    .error_code
            }
        ),
        row!(
            CreateTopics,
            "CREATE on the topic",
            &[],
            &[(TOPIC, "new-topic", LITERAL, CREATE)],
            TAF,
            |c| {
                c.call(
                    7,
                    &CreateTopicsRequest::default()
                        .with_validate_only(true)
                        .with_topics(vec![create_topics_request::CreatableTopic::default()
                            .with_name(tn("new-topic"))
                            .with_num_partitions(1)
                            .with_replication_factor(1)]),
                )
                .topics[0]
                    .error_code
            }
        ),
        row!(
            CreateTopics,
            "CREATE on the cluster",
            &[],
            &[(CLUSTER, "kafka-cluster", LITERAL, CREATE)],
            TAF,
            |c| {
                c.call(
                    7,
                    &CreateTopicsRequest::default()
                        .with_validate_only(true)
                        .with_topics(vec![create_topics_request::CreatableTopic::default()
                            .with_name(tn("other-topic"))
                            .with_num_partitions(1)
                            .with_replication_factor(1)]),
                )
                .topics[0]
                    .error_code
            }
        ),
        row!(
            DeleteTopics,
            "DELETE on the topic",
            &[],
            &[(TOPIC, "doomed", LITERAL, DELETE)],
            TAF,
            |c| {
                c.call(
                    6,
                    &DeleteTopicsRequest::default().with_topics(vec![
                        delete_topics_request::DeleteTopicState::default().with_name(Some(tn("doomed"))),
                    ]),
                )
                .responses[0]
                    .error_code
            }
        ),
        row!(
            DeleteRecords,
            "DELETE on the topic",
            &[],
            &[(TOPIC, "t", LITERAL, DELETE)],
            TAF,
            |c| {
                c.call(
                    2,
                    &DeleteRecordsRequest::default().with_timeout_ms(5000).with_topics(vec![
                        delete_records_request::DeleteRecordsTopic::default()
                            .with_name(tn("t"))
                            .with_partitions(vec![
                                delete_records_request::DeleteRecordsPartition::default().with_offset(0)
                            ]),
                    ]),
                )
                .topics[0]
                    .partitions[0]
                    .error_code
            }
        ),
        row!(
            InitProducerId,
            "an idempotent producer: IDEMPOTENT_WRITE on the cluster",
            &[],
            &[(CLUSTER, "kafka-cluster", LITERAL, IDEMPOTENT_WRITE)],
            CAF,
            |c| c
                .call(4, &InitProducerIdRequest::default().with_transactional_id(None))
                .error_code
        ),
        row!(
            InitProducerId,
            "an idempotent producer: or WRITE on some topic (KIP-679)",
            &[],
            &[(TOPIC, "t", LITERAL, WRITE)],
            CAF,
            |c| c
                .call(4, &InitProducerIdRequest::default().with_transactional_id(None))
                .error_code
        ),
        row!(
            InitProducerId,
            "a transactional producer: WRITE on its transactional id",
            &[],
            &[(TXN, "tx", LITERAL, WRITE)],
            TIAF,
            |c| c
                .call(
                    4,
                    &InitProducerIdRequest::default().with_transactional_id(Some(TransactionalId(s("tx"))))
                )
                .error_code
        ),
        row!(
            AddPartitionsToTxn,
            "WRITE on the transactional id",
            &[(TOPIC, "t", LITERAL, WRITE)],
            &[(TXN, "tx", LITERAL, WRITE)],
            TIAF,
            |c| add_partitions(c)
        ),
        row!(
            AddPartitionsToTxn,
            "WRITE on the topic",
            &[(TXN, "tx", LITERAL, WRITE)],
            &[(TOPIC, "t", LITERAL, WRITE)],
            TAF,
            |c| add_partitions(c)
        ),
        row!(
            AddPartitionsToTxn,
            "the batched form (v4+, broker to broker): CLUSTER_ACTION",
            &[(TXN, "tx", LITERAL, WRITE), (TOPIC, "t", LITERAL, WRITE)],
            &[(CLUSTER, "kafka-cluster", LITERAL, CLUSTER_ACTION)],
            CAF,
            |c| c.call(4, &AddPartitionsToTxnRequest::default()).error_code
        ),
        row!(
            AddOffsetsToTxn,
            "WRITE on the transactional id",
            &[(GROUP, "g", LITERAL, READ)],
            &[(TXN, "tx", LITERAL, WRITE)],
            TIAF,
            |c| add_offsets(c)
        ),
        row!(
            AddOffsetsToTxn,
            "READ on the group",
            &[(TXN, "tx", LITERAL, WRITE)],
            &[(GROUP, "g", LITERAL, READ)],
            GAF,
            |c| add_offsets(c)
        ),
        row!(
            EndTxn,
            "WRITE on the transactional id",
            &[],
            &[(TXN, "tx", LITERAL, WRITE)],
            TIAF,
            |c| c
                .call(
                    3,
                    &EndTxnRequest::default()
                        .with_transactional_id(TransactionalId(s("tx")))
                        .with_committed(true)
                )
                .error_code
        ),
        row!(
            TxnOffsetCommit,
            "WRITE on the transactional id",
            &[(GROUP, "g", LITERAL, READ), (TOPIC, "t", LITERAL, READ)],
            &[(TXN, "tx", LITERAL, WRITE)],
            TIAF,
            |c| txn_commit(c)
        ),
        row!(
            TxnOffsetCommit,
            "READ on the group",
            &[(TXN, "tx", LITERAL, WRITE), (TOPIC, "t", LITERAL, READ)],
            &[(GROUP, "g", LITERAL, READ)],
            GAF,
            |c| txn_commit(c)
        ),
        row!(
            TxnOffsetCommit,
            "READ on the topic",
            &[(TXN, "tx", LITERAL, WRITE), (GROUP, "g", LITERAL, READ)],
            &[(TOPIC, "t", LITERAL, READ)],
            TAF,
            |c| txn_commit(c)
        ),
        row!(
            WriteTxnMarkers,
            "CLUSTER_ACTION on the cluster",
            &[],
            &[(CLUSTER, "kafka-cluster", LITERAL, CLUSTER_ACTION)],
            CAF,
            |c| {
                c.call(
                    1,
                    &WriteTxnMarkersRequest::default().with_markers(vec![
                        write_txn_markers_request::WritableTxnMarker::default()
                            .with_producer_id(ProducerId(424242))
                            .with_topics(vec![write_txn_markers_request::WritableTxnMarkerTopic::default()
                                .with_name(tn("t"))
                                .with_partition_indexes(vec![0])]),
                    ]),
                )
                .markers[0]
                    .topics[0]
                    .partitions[0]
                    .error_code
            }
        ),
        row!(
            DescribeTransactions,
            "DESCRIBE on the transactional id",
            &[],
            &[(TXN, "tx", LITERAL, DESCRIBE)],
            TIAF,
            |c| c
                .call(
                    0,
                    &DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(s("tx"))])
                )
                .transaction_states[0]
                .error_code
        ),
        row!(
            DescribeProducers,
            "READ on the topic",
            &[],
            &[(TOPIC, "t", LITERAL, READ)],
            TAF,
            |c| {
                c.call(
                    0,
                    &DescribeProducersRequest::default().with_topics(vec![
                        describe_producers_request::TopicRequest::default()
                            .with_name(tn("t"))
                            .with_partition_indexes(vec![0]),
                    ]),
                )
                .topics[0]
                    .partitions[0]
                    .error_code
            }
        ),
        row!(
            OffsetForLeaderEpoch,
            "DESCRIBE on the topic",
            &[],
            &[(TOPIC, "t", LITERAL, DESCRIBE)],
            TAF,
            |c| {
                c.call(
                    4,
                    &OffsetForLeaderEpochRequest::default().with_topics(vec![
                        offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                            .with_topic(tn("t"))
                            .with_partitions(vec![
                                offset_for_leader_epoch_request::OffsetForLeaderPartition::default(),
                            ]),
                    ]),
                )
                .topics[0]
                    .partitions[0]
                    .error_code
            }
        ),
        row!(
            OffsetCommit,
            "READ on the group",
            &[(TOPIC, "t", LITERAL, READ)],
            &[(GROUP, "g", LITERAL, READ)],
            GAF,
            |c| commit(c, "g")
        ),
        row!(
            OffsetCommit,
            "READ on the topic",
            &[(GROUP, "g", LITERAL, READ)],
            &[(TOPIC, "t", LITERAL, READ)],
            TAF,
            |c| commit(c, "g")
        ),
        row!(
            OffsetFetch,
            "DESCRIBE on the group",
            &[(TOPIC, "t", LITERAL, DESCRIBE)],
            &[(GROUP, "g", LITERAL, DESCRIBE)],
            GAF,
            |c| offset_fetch(c, "g").0
        ),
        row!(
            OffsetFetch,
            "DESCRIBE on the topic",
            &[(GROUP, "g", LITERAL, DESCRIBE)],
            &[(TOPIC, "t", LITERAL, DESCRIBE)],
            TAF,
            |c| offset_fetch(c, "g").1
        ),
        row!(
            FindCoordinator,
            "DESCRIBE on the group",
            &[],
            &[(GROUP, "g", LITERAL, DESCRIBE)],
            GAF,
            |c| {
                c.call(
                    4,
                    &FindCoordinatorRequest::default().with_coordinator_keys(vec![s("g")]),
                )
                .coordinators[0]
                    .error_code
            }
        ),
        row!(
            FindCoordinator,
            "DESCRIBE on the transactional id",
            &[],
            &[(TXN, "tx", LITERAL, DESCRIBE)],
            TIAF,
            |c| {
                c.call(
                    4,
                    &FindCoordinatorRequest::default()
                        .with_key_type(1)
                        .with_coordinator_keys(vec![s("tx")]),
                )
                .coordinators[0]
                    .error_code
            }
        ),
        row!(
            JoinGroup,
            "READ on the group",
            &[],
            &[(GROUP, "jg", LITERAL, READ)],
            GAF,
            |c| {
                c.call(
                    9,
                    &JoinGroupRequest::default()
                        .with_group_id(gid("jg"))
                        .with_session_timeout_ms(10_000)
                        .with_rebalance_timeout_ms(10_000)
                        .with_protocol_type(s("consumer"))
                        .with_protocols(vec![
                            join_group_request::JoinGroupRequestProtocol::default().with_name(s("range"))
                        ]),
                )
                .error_code
            }
        ),
        row!(
            SyncGroup,
            "READ on the group",
            &[],
            &[(GROUP, "jg", LITERAL, READ)],
            GAF,
            |c| {
                c.call(
                    5,
                    &SyncGroupRequest::default()
                        .with_group_id(gid("jg"))
                        .with_member_id(s("m")),
                )
                .error_code
            }
        ),
        row!(
            Heartbeat,
            "READ on the group",
            &[],
            &[(GROUP, "jg", LITERAL, READ)],
            GAF,
            |c| {
                c.call(
                    4,
                    &HeartbeatRequest::default()
                        .with_group_id(gid("jg"))
                        .with_member_id(s("m")),
                )
                .error_code
            }
        ),
        row!(
            LeaveGroup,
            "READ on the group",
            &[],
            &[(GROUP, "jg", LITERAL, READ)],
            GAF,
            |c| {
                c.call(
                    5,
                    &LeaveGroupRequest::default().with_group_id(gid("jg")).with_members(vec![
                        leave_group_request::MemberIdentity::default().with_member_id(s("m")),
                    ]),
                )
                .error_code
            }
        ),
        row!(
            DescribeGroups,
            "DESCRIBE on the group",
            &[],
            &[(GROUP, "g", LITERAL, DESCRIBE)],
            GAF,
            |c| {
                c.call(5, &DescribeGroupsRequest::default().with_groups(vec![gid("g")]))
                    .groups[0]
                    .error_code
            }
        ),
        // ListGroups has no error for this: a group the principal may not
        // DESCRIBE is left out (answered here as GROUP_AUTHORIZATION_FAILED).
        row!(
            ListGroups,
            "DESCRIBE on the group, or it is not listed",
            &[],
            &[(GROUP, "g", LITERAL, DESCRIBE)],
            GAF,
            |c| {
                let listed = c
                    .call(4, &ListGroupsRequest::default())
                    .groups
                    .iter()
                    .any(|g| g.group_id.0.as_str() == "g");
                if listed {
                    0
                } else {
                    GAF.code()
                }
            }
        ),
        row!(
            ListGroups,
            "DESCRIBE on the cluster lists every group",
            &[],
            &[(CLUSTER, "kafka-cluster", LITERAL, DESCRIBE)],
            GAF,
            |c| {
                let listed = c
                    .call(4, &ListGroupsRequest::default())
                    .groups
                    .iter()
                    .any(|g| g.group_id.0.as_str() == "g");
                if listed {
                    0
                } else {
                    GAF.code()
                }
            }
        ),
        row!(
            DeleteGroups,
            "DELETE on the group",
            &[],
            &[(GROUP, "gone", LITERAL, DELETE)],
            GAF,
            |c| {
                c.call(2, &DeleteGroupsRequest::default().with_groups_names(vec![gid("gone")]))
                    .results[0]
                    .error_code
            }
        ),
        row!(
            OffsetDelete,
            "DELETE on the group",
            &[(TOPIC, "t", LITERAL, READ)],
            &[(GROUP, "g", LITERAL, DELETE)],
            GAF,
            |c| offset_delete(c, "g").0
        ),
        row!(
            OffsetDelete,
            "READ on the topic",
            &[(GROUP, "g", LITERAL, DELETE)],
            &[(TOPIC, "t", LITERAL, READ)],
            TAF,
            |c| offset_delete(c, "g").1
        ),
        row!(
            DescribeConfigs,
            "a topic: DESCRIBE_CONFIGS on it",
            &[],
            &[(TOPIC, "t", LITERAL, DESCRIBE_CONFIGS)],
            TAF,
            |c| describe_configs(c, 2, "t")
        ),
        row!(
            DescribeConfigs,
            "a broker: DESCRIBE_CONFIGS on the cluster",
            &[],
            &[(CLUSTER, "kafka-cluster", LITERAL, DESCRIBE_CONFIGS)],
            CAF,
            |c| describe_configs(c, 4, "0")
        ),
        row!(
            DescribeConfigs,
            "a group: DESCRIBE_CONFIGS on it",
            &[],
            &[(GROUP, "g", LITERAL, DESCRIBE_CONFIGS)],
            GAF,
            |c| describe_configs(c, 32, "g")
        ),
        row!(
            AlterConfigs,
            "a topic: ALTER_CONFIGS on it",
            &[],
            &[(TOPIC, "t", LITERAL, ALTER_CONFIGS)],
            TAF,
            |c| alter_configs(c, 2, "t", "retention.ms", "1000")
        ),
        row!(
            AlterConfigs,
            "a broker: ALTER_CONFIGS on the cluster",
            &[],
            &[(CLUSTER, "kafka-cluster", LITERAL, ALTER_CONFIGS)],
            CAF,
            |c| alter_configs(c, 4, "0", "log.retention.ms", "100000")
        ),
        row!(
            IncrementalAlterConfigs,
            "a topic: ALTER_CONFIGS on it",
            &[],
            &[(TOPIC, "t", LITERAL, ALTER_CONFIGS)],
            TAF,
            |c| incremental_alter_configs(c, 2, "t", "retention.ms", "1000")
        ),
        row!(
            IncrementalAlterConfigs,
            "a broker: ALTER_CONFIGS on the cluster",
            &[],
            &[(CLUSTER, "kafka-cluster", LITERAL, ALTER_CONFIGS)],
            CAF,
            |c| incremental_alter_configs(c, 4, "0", "log.retention.ms", "100000")
        ),
        row!(
            IncrementalAlterConfigs,
            "a group: ALTER_CONFIGS on it",
            &[],
            &[(GROUP, "g", LITERAL, ALTER_CONFIGS)],
            GAF,
            |c| incremental_alter_configs(c, 32, "g", "consumer.session.timeout.ms", "45000")
        ),
        row!(
            CreatePartitions,
            "ALTER on the topic",
            &[],
            &[(TOPIC, "t", LITERAL, ALTER)],
            TAF,
            |c| {
                c.call(
                    3,
                    &CreatePartitionsRequest::default()
                        .with_validate_only(true)
                        .with_timeout_ms(5000)
                        .with_topics(vec![create_partitions_request::CreatePartitionsTopic::default()
                            .with_name(tn("t"))
                            .with_count(2)]),
                )
                .results[0]
                    .error_code
            }
        ),
        row!(
            ElectLeaders,
            "ALTER on the cluster",
            &[],
            &[(CLUSTER, "kafka-cluster", LITERAL, ALTER)],
            CAF,
            |c| {
                c.call(
                    2,
                    &ElectLeadersRequest::default().with_topic_partitions(Some(vec![
                        elect_leaders_request::TopicPartitions::default()
                            .with_topic(tn("t"))
                            .with_partitions(vec![0]),
                    ])),
                )
                .error_code
            }
        ),
        row!(
            AlterPartitionReassignments,
            "ALTER on the cluster",
            &[],
            &[(CLUSTER, "kafka-cluster", LITERAL, ALTER)],
            CAF,
            |c| { c.call(0, &AlterPartitionReassignmentsRequest::default()).error_code }
        ),
        row!(
            ListPartitionReassignments,
            "DESCRIBE on the cluster",
            &[],
            &[(CLUSTER, "kafka-cluster", LITERAL, DESCRIBE)],
            CAF,
            |c| { c.call(0, &ListPartitionReassignmentsRequest::default()).error_code }
        ),
        row!(
            DescribeLogDirs,
            "DESCRIBE on the cluster",
            &[],
            &[(CLUSTER, "kafka-cluster", LITERAL, DESCRIBE)],
            CAF,
            |c| { c.call(4, &DescribeLogDirsRequest::default()).error_code }
        ),
        row!(
            DescribeQuorum,
            "DESCRIBE on the cluster",
            &[],
            &[(CLUSTER, "kafka-cluster", LITERAL, DESCRIBE)],
            CAF,
            |c| {
                c.call(
                    2,
                    &DescribeQuorumRequest::default().with_topics(vec![describe_quorum_request::TopicData::default()
                        .with_topic_name(tn("__cluster_metadata"))
                        .with_partitions(vec![describe_quorum_request::PartitionData::default()])]),
                )
                .error_code
            }
        ),
        row!(
            UnregisterBroker,
            "ALTER on the cluster",
            &[],
            &[(CLUSTER, "kafka-cluster", LITERAL, ALTER)],
            CAF,
            |c| {
                c.call(0, &UnregisterBrokerRequest::default().with_broker_id(BrokerId(42)))
                    .error_code
            }
        ),
        row!(
            UpdateFeatures,
            "ALTER on the cluster",
            &[],
            &[(CLUSTER, "kafka-cluster", LITERAL, ALTER)],
            CAF,
            |c| {
                c.call(
                    1,
                    &UpdateFeaturesRequest::default().with_feature_updates(vec![
                        update_features_request::FeatureUpdateKey::default()
                            .with_feature(StrBytes::from_static_str("transaction.version"))
                            .with_max_version_level(2)
                            .with_upgrade_type(1),
                    ]),
                )
                .error_code
            }
        ),
        row!(
            AddRaftVoter,
            "ALTER on the cluster",
            &[],
            &[(CLUSTER, "kafka-cluster", LITERAL, ALTER)],
            CAF,
            |c| c.call(0, &AddRaftVoterRequest::default().with_voter_id(7)).error_code
        ),
        row!(
            RemoveRaftVoter,
            "ALTER on the cluster",
            &[],
            &[(CLUSTER, "kafka-cluster", LITERAL, ALTER)],
            CAF,
            |c| c
                .call(0, &RemoveRaftVoterRequest::default().with_voter_id(7))
                .error_code
        ),
        row!(
            UpdateRaftVoter,
            "CLUSTER_ACTION on the cluster",
            &[],
            &[(CLUSTER, "kafka-cluster", LITERAL, CLUSTER_ACTION)],
            CAF,
            |c| c
                .call(0, &UpdateRaftVoterRequest::default().with_voter_id(7))
                .error_code
        ),
        row!(
            DescribeUserScramCredentials,
            "DESCRIBE on the cluster",
            &[],
            &[(CLUSTER, "kafka-cluster", LITERAL, DESCRIBE)],
            CAF,
            |c| { c.call(0, &DescribeUserScramCredentialsRequest::default()).error_code }
        ),
        row!(
            AlterUserScramCredentials,
            "ALTER on the cluster",
            &[],
            &[(CLUSTER, "kafka-cluster", LITERAL, ALTER)],
            CAF,
            |c| {
                c.call(
                    0,
                    &AlterUserScramCredentialsRequest::default().with_deletions(vec![
                        alter_user_scram_credentials_request::ScramCredentialDeletion::default()
                            .with_name(s("nobody"))
                            .with_mechanism(1),
                    ]),
                )
                .results[0]
                    .error_code
            }
        ),
        row!(
            DescribeAcls,
            "DESCRIBE on the cluster",
            &[],
            &[(CLUSTER, "kafka-cluster", LITERAL, DESCRIBE)],
            CAF,
            |c| {
                c.call(
                    3,
                    &describe_any()
                        .with_resource_type_filter(1)
                        .with_pattern_type_filter(1)
                        .with_operation(1)
                        .with_permission_type(1),
                )
                .error_code
            }
        ),
        row!(
            CreateAcls,
            "ALTER on the cluster",
            &[],
            &[(CLUSTER, "kafka-cluster", LITERAL, ALTER)],
            CAF,
            |c| {
                c.call(
                    3,
                    &CreateAclsRequest::default().with_creations(vec![acl_creation(
                        "User:zed",
                        (TOPIC, "z", LITERAL, READ),
                        ALLOW,
                    )]),
                )
                .results[0]
                    .error_code
            }
        ),
        row!(
            DeleteAcls,
            "ALTER on the cluster",
            &[],
            &[(CLUSTER, "kafka-cluster", LITERAL, ALTER)],
            CAF,
            |c| {
                c.call(
                    3,
                    &DeleteAclsRequest::default().with_filters(vec![delete_any()
                        .with_resource_type_filter(1)
                        .with_pattern_type_filter(1)
                        .with_principal_filter(Some(s("User:zed")))
                        .with_operation(1)
                        .with_permission_type(1)]),
                )
                .filter_results[0]
                    .error_code
            }
        ),
        row!(
            DescribeClientQuotas,
            "DESCRIBE_CONFIGS on the cluster",
            &[],
            &[(CLUSTER, "kafka-cluster", LITERAL, DESCRIBE_CONFIGS)],
            CAF,
            |c| { c.call(1, &DescribeClientQuotasRequest::default()).error_code }
        ),
        row!(
            AlterClientQuotas,
            "ALTER_CONFIGS on the cluster",
            &[],
            &[(CLUSTER, "kafka-cluster", LITERAL, ALTER_CONFIGS)],
            CAF,
            |c| {
                c.call(
                    1,
                    &AlterClientQuotasRequest::default().with_entries(vec![
                        alter_client_quotas_request::EntryData::default()
                            .with_entity(vec![alter_client_quotas_request::EntityData::default()
                                .with_entity_type(s("client-id"))
                                .with_entity_name(Some(s("zed")))])
                            .with_ops(vec![alter_client_quotas_request::OpData::default()
                                .with_key(s("producer_byte_rate"))
                                .with_value(1024.0)]),
                    ]),
                )
                .entries[0]
                    .error_code
            }
        ),
        row!(
            ConsumerGroupHeartbeat,
            "READ on the group",
            &[(TOPIC, "t", LITERAL, DESCRIBE)],
            &[(GROUP, "cg", LITERAL, READ)],
            GAF,
            |c| consumer_heartbeat(c, "cg")
        ),
        row!(
            ConsumerGroupHeartbeat,
            "DESCRIBE on the subscribed topics",
            &[(GROUP, "cg", LITERAL, READ)],
            &[(TOPIC, "t", LITERAL, DESCRIBE)],
            TAF,
            |c| consumer_heartbeat(c, "cg")
        ),
        row!(
            ConsumerGroupDescribe,
            "DESCRIBE on the group",
            &[],
            &[(GROUP, "cg", LITERAL, DESCRIBE)],
            GAF,
            |c| {
                c.call(
                    0,
                    &ConsumerGroupDescribeRequest::default().with_group_ids(vec![gid("cg")]),
                )
                .groups[0]
                    .error_code
            }
        ),
        // The heartbeat rows above left a member of "cg" subscribed to "t".
        row!(
            ConsumerGroupDescribe,
            "DESCRIBE on the members' topics",
            &[(GROUP, "cg", LITERAL, DESCRIBE)],
            &[(TOPIC, "t", LITERAL, DESCRIBE)],
            TAF,
            |c| {
                c.call(
                    0,
                    &ConsumerGroupDescribeRequest::default().with_group_ids(vec![gid("cg")]),
                )
                .groups[0]
                    .error_code
            }
        ),
    ]
}

/// APIs Kafka does not authorize: what they answer is the same for everyone.
const NOT_AUTHORIZED: &[ApiKey] = &[
    ApiKey::ApiVersions,
    // It lists only the transactional ids the caller may describe.
    ApiKey::ListTransactions,
    ApiKey::SaslHandshake,
    ApiKey::SaslAuthenticate,
    // Only its authorized operations depend on the ACLs (tested below).
    ApiKey::DescribeCluster,
];

#[test]
fn every_api_is_denied_without_its_operation_and_allowed_with_it() {
    let b = broker();
    let mut admin = login(&b, "admin");
    for name in ["t", "doomed"] {
        let r = admin.call(
            7,
            &CreateTopicsRequest::default().with_topics(vec![create_topics_request::CreatableTopic::default()
                .with_name(tn(name))
                .with_num_partitions(1)
                .with_replication_factor(1)]),
        );
        assert_eq!(r.topics[0].error_code, 0, "create {name}");
    }
    assert_eq!(produce(&mut admin, "t"), 0);
    assert_eq!(commit(&mut admin, "g"), 0, "the admin commits for group g");

    let rows = rows();
    for entry in API_TABLE {
        assert!(
            NOT_AUTHORIZED.contains(&entry.key) || rows.iter().any(|r| r.api == entry.key),
            "{:?} has no authorization row",
            entry.key
        );
    }
    let mut alice = login(&b, "alice");
    let mut failures = Vec::new();
    for row in &rows {
        create_acls(&mut admin, "User:alice", row.base, ALLOW);
        let without = (row.call)(&mut alice);
        create_acls(&mut admin, "User:alice", row.grants, ALLOW);
        let with = (row.call)(&mut alice);
        revoke_all(&mut admin, "User:alice");
        if without != row.denied.code() || with == row.denied.code() {
            failures.push(format!(
                "{:?} ({}): without the grant {without} (want {:?}), with it {with}",
                row.api, row.what, row.denied
            ));
        }
    }
    assert!(failures.is_empty(), "rows that failed:\n{}", failures.join("\n"));
}

#[test]
fn deny_beats_allow_prefixes_match_and_metadata_hides_what_cannot_be_described() {
    let b = broker();
    let mut admin = login(&b, "admin");
    for name in ["app-orders", "app-secret", "other"] {
        let r = admin.call(
            7,
            &CreateTopicsRequest::default().with_topics(vec![create_topics_request::CreatableTopic::default()
                .with_name(tn(name))
                .with_num_partitions(1)
                .with_replication_factor(1)]),
        );
        assert_eq!(r.topics[0].error_code, 0);
    }
    create_acls(&mut admin, "User:bob", &[(TOPIC, "app-", PREFIXED, WRITE)], ALLOW);
    create_acls(&mut admin, "User:bob", &[(TOPIC, "app-secret", LITERAL, WRITE)], DENY);
    let mut bob = login(&b, "bob");
    assert_eq!(produce(&mut bob, "app-orders"), 0, "the prefix allows");
    assert_eq!(produce(&mut bob, "app-secret"), TAF.code(), "DENY beats ALLOW");
    assert_eq!(produce(&mut bob, "other"), TAF.code(), "deny by default");
    // "All topics" lists only what bob may DESCRIBE (WRITE implies it), and
    // KIP-430's authorized operations come from the ACLs.
    let md = bob.call(
        12,
        &MetadataRequest::default()
            .with_topics(None)
            .with_include_topic_authorized_operations(true),
    );
    let mut names: Vec<&str> = md
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref())
        .map(|n| n.0.as_str())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["app-orders", "app-secret"],
        "a DENY of WRITE is not a DENY of DESCRIBE"
    );
    let ops = md
        .topics
        .iter()
        .find(|t| t.name.as_ref().unwrap().0.as_str() == "app-orders")
        .unwrap()
        .topic_authorized_operations;
    assert_eq!(ops, (1 << WRITE) | (1 << DESCRIBE));
    let cluster = bob.call(
        0,
        &DescribeClusterRequest::default().with_include_cluster_authorized_operations(true),
    );
    assert_eq!(cluster.cluster_authorized_operations, 0);
    let cluster = admin.call(
        0,
        &DescribeClusterRequest::default().with_include_cluster_authorized_operations(true),
    );
    assert_eq!(
        cluster.cluster_authorized_operations.count_ones(),
        7,
        "a super user may do all 7 cluster operations"
    );

    // DescribeAcls groups bindings by resource pattern; MATCH finds the
    // patterns that cover a name.
    let described = admin.call(
        3,
        &describe_any()
            .with_resource_type_filter(TOPIC)
            .with_resource_name_filter(Some(s("app-secret")))
            .with_pattern_type_filter(2)
            .with_operation(1)
            .with_permission_type(1),
    );
    assert_eq!(described.error_code, 0);
    let mut patterns: Vec<(String, i8)> = described
        .resources
        .iter()
        .map(|r| (r.resource_name.to_string(), r.pattern_type))
        .collect();
    patterns.sort();
    assert_eq!(
        patterns,
        [("app-".to_string(), PREFIXED), ("app-secret".to_string(), LITERAL)]
    );
    assert_eq!(revoke_all(&mut admin, "User:bob"), 2);
    assert_eq!(
        produce(&mut bob, "app-orders"),
        TAF.code(),
        "revoked at once, on an open connection"
    );
}

#[test]
fn without_an_authorizer_the_acl_apis_answer_security_disabled() {
    let b = BrokerProcess::start(&[]);
    let mut c = b.connect();
    let r = c.call(
        3,
        &CreateAclsRequest::default().with_creations(vec![acl_creation("User:a", (TOPIC, "t", LITERAL, READ), ALLOW)]),
    );
    assert_eq!(r.results[0].error_code, ResponseError::SecurityDisabled.code());
    let r = c.call(
        3,
        &describe_any()
            .with_resource_type_filter(1)
            .with_pattern_type_filter(1)
            .with_operation(1)
            .with_permission_type(1),
    );
    assert_eq!(r.error_code, ResponseError::SecurityDisabled.code());
    // Everything else is open, and every operation is "authorized".
    let md = c.call(
        12,
        &MetadataRequest::default().with_include_topic_authorized_operations(true),
    );
    assert!(md.topics.is_empty());
    let cluster = c.call(
        0,
        &DescribeClusterRequest::default().with_include_cluster_authorized_operations(true),
    );
    assert_eq!(cluster.cluster_authorized_operations.count_ones(), 7);
}

#[test]
fn invalid_bindings_and_filters_get_invalid_request_each() {
    let b = broker();
    let mut admin = login(&b, "admin");
    let r = admin.call(
        3,
        &CreateAclsRequest::default().with_creations(vec![
            acl_creation("User:a", (TOPIC, "t", LITERAL, READ), ALLOW),
            acl_creation("User:a", (CLUSTER, "not-the-cluster", LITERAL, ALTER), ALLOW),
            acl_creation("User:a", (TOPIC, "t", 2, READ), ALLOW), // MATCH is only a filter
            acl_creation("no-colon", (TOPIC, "t", LITERAL, READ), ALLOW),
            acl_creation("User:a", (TOPIC, "t", LITERAL, 1), ALLOW), // ANY operation
            acl_creation("User:a", (99, "t", LITERAL, READ), ALLOW),
        ]),
    );
    let codes: Vec<i16> = r.results.iter().map(|x| x.error_code).collect();
    let bad = ResponseError::InvalidRequest.code();
    assert_eq!(codes, [0, bad, bad, bad, bad, bad]);
    let r = admin.call(
        3,
        &describe_any()
            .with_resource_type_filter(0)
            .with_pattern_type_filter(1)
            .with_operation(1)
            .with_permission_type(1),
    );
    assert_eq!(r.error_code, bad, "UNKNOWN is not a filter");
    assert_eq!(
        revoke_all(&mut admin, "User:a"),
        1,
        "only the valid binding was created"
    );
}
