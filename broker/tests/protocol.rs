//! Protocol-level tests against a real broker process: every API at every served
//! version, KIP-511, and each kind of bad input with its error code or a closed
//! connection, after which the broker still serves everyone else.

mod common;

use bytes::{Bytes, BytesMut};
use common::{encode_request, BrokerProcess, Client};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use skein_broker::protocol::API_TABLE;

fn tn(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn records(n: usize, value_len: usize) -> Bytes {
    let recs: Vec<Record> = (0..n)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32 - 1,
            timestamp: 1_700_000_000_000,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(vec![b'v'; value_len])),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        recs.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

fn produce_request(topic: &str, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(tn(topic))
            .with_partition_data(vec![produce_request::PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])])
}

fn produce_error(c: &mut Client, version: i16, topic: &str, records: Bytes) -> (i16, i64) {
    let resp = c.call(version, &produce_request(topic, records));
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

fn create_topic(c: &mut Client, name: &str) {
    let req = CreateTopicsRequest::default().with_timeout_ms(5000).with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(tn(name))
            .with_num_partitions(1)
            .with_replication_factor(1),
    ]);
    let resp = c.call(7, &req);
    assert_eq!(resp.topics[0].error_code, 0, "{:?}", resp.topics[0].error_message);
}

fn fetch_all(c: &mut Client, topic: &str) -> (i64, usize) {
    let req = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(50 << 20)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(tn(topic))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(50 << 20)])]);
    let resp = c.call(12, &req);
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    (p.high_watermark, p.records.as_ref().map_or(0, |r| r.len()))
}

/// A request of each API with default fields must get a well-formed response at
/// every version the broker serves.
#[test]
fn every_api_answers_at_every_served_version() {
    let b = BrokerProcess::start(&["group.initial.rebalance.delay.ms=0"]);
    let mut c = b.connect();
    create_topic(&mut c, "versions");
    for entry in API_TABLE {
        for v in entry.versions.min..=entry.versions.max {
            macro_rules! check {
                ($req:expr) => {{
                    let _resp = c.call(v, &$req);
                }};
            }
            match entry.key {
                ApiKey::Produce => check!(produce_request("versions", records(1, 10))),
                ApiKey::Fetch => {
                    check!(FetchRequest::default().with_max_wait_ms(0).with_topics(vec![
                        fetch_request::FetchTopic::default()
                            .with_topic(tn("versions"))
                            .with_partitions(vec![
                                fetch_request::FetchPartition::default().with_partition_max_bytes(1 << 20)
                            ])
                    ]))
                }
                ApiKey::ListOffsets => check!(ListOffsetsRequest::default().with_topics(vec![
                    list_offsets_request::ListOffsetsTopic::default()
                        .with_name(tn("versions"))
                        .with_partitions(vec![
                            list_offsets_request::ListOffsetsPartition::default().with_timestamp(-1)
                        ])
                ])),
                ApiKey::Metadata => {
                    check!(MetadataRequest::default().with_topics(if v == 0 { Some(vec![]) } else { None }))
                }
                ApiKey::ApiVersions => check!(ApiVersionsRequest::default()),
                ApiKey::CreateTopics => {
                    check!(CreateTopicsRequest::default().with_validate_only(true))
                }
                ApiKey::DeleteTopics => check!(DeleteTopicsRequest::default()),
                ApiKey::DeleteRecords => check!(DeleteRecordsRequest::default()),
                ApiKey::InitProducerId => check!(InitProducerIdRequest::default()),
                ApiKey::DescribeConfigs => check!(DescribeConfigsRequest::default().with_resources(vec![
                    describe_configs_request::DescribeConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(StrBytes::from_static_str("versions")),
                    describe_configs_request::DescribeConfigsResource::default()
                        .with_resource_type(4)
                        .with_resource_name(StrBytes::from_static_str("0")),
                ])),
                ApiKey::AlterConfigs => check!(AlterConfigsRequest::default()),
                ApiKey::CreatePartitions => check!(CreatePartitionsRequest::default()),
                ApiKey::IncrementalAlterConfigs => {
                    check!(IncrementalAlterConfigsRequest::default())
                }
                ApiKey::DescribeCluster => check!(DescribeClusterRequest::default()),
                ApiKey::FindCoordinator => check!(if v >= 4 {
                    FindCoordinatorRequest::default().with_coordinator_keys(vec![StrBytes::from_static_str("g")])
                } else {
                    FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g"))
                }),
                ApiKey::JoinGroup => check!(JoinGroupRequest::default()
                    .with_group_id(GroupId(StrBytes::from_string(format!("join-v{v}"))))
                    .with_session_timeout_ms(10_000)
                    .with_rebalance_timeout_ms(10_000)
                    .with_protocol_type(StrBytes::from_static_str("consumer"))
                    .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default()
                        .with_name(StrBytes::from_static_str("range"))])),
                ApiKey::SyncGroup => {
                    check!(SyncGroupRequest::default().with_group_id(GroupId(StrBytes::from_static_str("g"))))
                }
                ApiKey::Heartbeat => {
                    check!(HeartbeatRequest::default().with_group_id(GroupId(StrBytes::from_static_str("g"))))
                }
                ApiKey::LeaveGroup => {
                    check!(LeaveGroupRequest::default().with_group_id(GroupId(StrBytes::from_static_str("g"))))
                }
                ApiKey::OffsetCommit => check!(OffsetCommitRequest::default()
                    .with_group_id(GroupId(StrBytes::from_static_str("admin-commit")))
                    .with_generation_id_or_member_epoch(-1)
                    .with_topics(vec![offset_commit_request::OffsetCommitRequestTopic::default()
                        .with_name(tn("versions"))
                        .with_partitions(vec![
                            offset_commit_request::OffsetCommitRequestPartition::default().with_committed_offset(1)
                        ])])),
                ApiKey::OffsetFetch => check!(if v >= 8 {
                    OffsetFetchRequest::default()
                        .with_groups(vec![offset_fetch_request::OffsetFetchRequestGroup::default()
                            .with_group_id(GroupId(StrBytes::from_static_str("admin-commit")))])
                } else {
                    OffsetFetchRequest::default().with_group_id(GroupId(StrBytes::from_static_str("admin-commit")))
                }),
                ApiKey::DescribeGroups => check!(DescribeGroupsRequest::default().with_groups(vec![
                    GroupId(StrBytes::from_static_str("admin-commit")),
                    GroupId(StrBytes::from_static_str("none"))
                ])),
                ApiKey::ListGroups => check!(ListGroupsRequest::default()),
                ApiKey::ConsumerGroupHeartbeat => check!(ConsumerGroupHeartbeatRequest::default()
                    .with_group_id(GroupId(StrBytes::from_string(format!("cg-v{v}"))))
                    .with_member_id(StrBytes::from_string(format!("member-v{v}")))
                    .with_rebalance_timeout_ms(10_000)
                    .with_subscribed_topic_names(Some(vec![tn("versions")]))
                    .with_topic_partitions(Some(vec![]))),
                ApiKey::ConsumerGroupDescribe => check!(ConsumerGroupDescribeRequest::default().with_group_ids(vec![
                    GroupId(StrBytes::from_static_str("cg-v0")),
                    GroupId(StrBytes::from_static_str("none"))
                ])),
                ApiKey::OffsetDelete => {
                    check!(OffsetDeleteRequest::default()
                        .with_group_id(GroupId(StrBytes::from_static_str("admin-commit"))))
                }
                ApiKey::OffsetForLeaderEpoch => check!(OffsetForLeaderEpochRequest::default().with_topics(vec![
                    offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                        .with_topic(tn("versions"))
                        .with_partitions(vec![
                            offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                        ])
                ])),
                ApiKey::DeleteGroups => {
                    check!(DeleteGroupsRequest::default()
                        .with_groups_names(vec![GroupId(StrBytes::from_static_str("none"))]))
                }
                ApiKey::ElectLeaders => check!(ElectLeadersRequest::default().with_topic_partitions(Some(vec![
                    elect_leaders_request::TopicPartitions::default()
                        .with_topic(tn("versions"))
                        .with_partitions(vec![0])
                ]))),
                ApiKey::AlterPartitionReassignments => {
                    check!(AlterPartitionReassignmentsRequest::default().with_topics(vec![
                        alter_partition_reassignments_request::ReassignableTopic::default()
                            .with_name(tn("versions"))
                            .with_partitions(vec![
                                alter_partition_reassignments_request::ReassignablePartition::default()
                            ])
                    ]))
                }
                ApiKey::ListPartitionReassignments => check!(ListPartitionReassignmentsRequest::default()),
                ApiKey::DescribeLogDirs => check!(DescribeLogDirsRequest::default()),
                ApiKey::DescribeQuorum => check!(DescribeQuorumRequest::default().with_topics(vec![
                    describe_quorum_request::TopicData::default()
                        .with_topic_name(tn("__cluster_metadata"))
                        .with_partitions(vec![describe_quorum_request::PartitionData::default()])
                ])),
                ApiKey::UnregisterBroker => check!(UnregisterBrokerRequest::default().with_broker_id(BrokerId(42))),
                ApiKey::UpdateFeatures => check!(UpdateFeaturesRequest::default()),
                // A PLAINTEXT listener has no SASL: ILLEGAL_SASL_STATE, then the
                // connection closes, so each is sent on a connection of its own.
                ApiKey::SaslHandshake => {
                    let r = b.connect().call(
                        v,
                        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
                    );
                    assert_eq!(r.error_code, ResponseError::IllegalSaslState.code());
                }
                ApiKey::SaslAuthenticate => {
                    let r = b.connect().call(v, &SaslAuthenticateRequest::default());
                    assert_eq!(r.error_code, ResponseError::IllegalSaslState.code());
                }
                ApiKey::DescribeUserScramCredentials => check!(DescribeUserScramCredentialsRequest::default()),
                ApiKey::AlterUserScramCredentials => check!(AlterUserScramCredentialsRequest::default()),
                // No authorizer here: SECURITY_DISABLED (tests/authorization.rs covers the rest).
                ApiKey::DescribeAcls => {
                    let r = c.call(
                        v,
                        &DescribeAclsRequest::default()
                            .with_resource_type_filter(1)
                            .with_resource_name_filter(None)
                            .with_pattern_type_filter(1)
                            .with_principal_filter(None)
                            .with_host_filter(None)
                            .with_operation(1)
                            .with_permission_type(1),
                    );
                    assert_eq!(r.error_code, ResponseError::SecurityDisabled.code());
                }
                ApiKey::CreateAcls => check!(CreateAclsRequest::default()),
                ApiKey::DeleteAcls => check!(DeleteAclsRequest::default()),
                ApiKey::DescribeClientQuotas => {
                    let r = c.call(v, &DescribeClientQuotasRequest::default());
                    assert_eq!(r.error_code, 0);
                    assert_eq!(r.entries.map(|e| e.len()), Some(0));
                }
                ApiKey::AlterClientQuotas => {
                    let r = c.call(v, &AlterClientQuotasRequest::default().with_validate_only(true));
                    assert!(r.entries.is_empty());
                }
                ApiKey::AddPartitionsToTxn if v <= 3 => {
                    // No InitProducerId first: Kafka's INVALID_PRODUCER_ID_MAPPING.
                    let r = c.call(
                        v,
                        &AddPartitionsToTxnRequest::default()
                            .with_v3_and_below_transactional_id(TransactionalId(StrBytes::from_static_str("none")))
                            .with_v3_and_below_topics(vec![
                                add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                                    .with_name(tn("versions"))
                                    .with_partitions(vec![0]),
                            ]),
                    );
                    assert_eq!(
                        r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
                        ResponseError::InvalidProducerIdMapping.code()
                    );
                }
                ApiKey::AddPartitionsToTxn => check!(AddPartitionsToTxnRequest::default()),
                ApiKey::AddOffsetsToTxn => check!(AddOffsetsToTxnRequest::default()),
                ApiKey::EndTxn => {
                    let r = c.call(
                        v,
                        &EndTxnRequest::default()
                            .with_transactional_id(TransactionalId(StrBytes::from_static_str("none"))),
                    );
                    assert_eq!(r.error_code, ResponseError::InvalidProducerIdMapping.code());
                }
                ApiKey::WriteTxnMarkers => check!(WriteTxnMarkersRequest::default()),
                ApiKey::TxnOffsetCommit => check!(TxnOffsetCommitRequest::default()),
                ApiKey::DescribeTransactions => {
                    let r = c.call(
                        v,
                        &DescribeTransactionsRequest::default()
                            .with_transactional_ids(vec![TransactionalId(StrBytes::from_static_str("none"))]),
                    );
                    assert_eq!(
                        r.transaction_states[0].error_code,
                        ResponseError::TransactionalIdNotFound.code()
                    );
                }
                ApiKey::ListTransactions => {
                    let r = c.call(
                        v,
                        &ListTransactionsRequest::default()
                            .with_duration_filter(-1)
                            .with_state_filters(vec![StrBytes::from_static_str("NoSuchState")]),
                    );
                    assert_eq!(r.error_code, 0);
                    assert_eq!(r.unknown_state_filters.len(), 1);
                }
                ApiKey::DescribeProducers => {
                    let r = c.call(
                        v,
                        &DescribeProducersRequest::default().with_topics(vec![
                            describe_producers_request::TopicRequest::default()
                                .with_name(tn("versions"))
                                .with_partition_indexes(vec![0]),
                        ]),
                    );
                    assert_eq!(r.topics[0].partitions[0].error_code, 0);
                }
                // A broker alone: node 0 is its only voter, and node 7 is unknown.
                ApiKey::AddRaftVoter => {
                    let r = c.call(v, &AddRaftVoterRequest::default().with_voter_id(0));
                    assert_eq!(r.error_code, ResponseError::DuplicateVoter.code());
                    let r = c.call(
                        v,
                        &AddRaftVoterRequest::default().with_voter_id(7).with_timeout_ms(1000),
                    );
                    assert_eq!(r.error_code, ResponseError::RequestTimedOut.code(), "{r:?}");
                    let r = c.call(
                        v,
                        &AddRaftVoterRequest::default()
                            .with_voter_id(7)
                            .with_cluster_id(Some(StrBytes::from_static_str("another-cluster"))),
                    );
                    assert_eq!(r.error_code, ResponseError::InconsistentClusterId.code());
                }
                ApiKey::RemoveRaftVoter => {
                    let r = c.call(v, &RemoveRaftVoterRequest::default().with_voter_id(0));
                    assert_eq!(r.error_code, ResponseError::InvalidRequest.code());
                    let r = c.call(v, &RemoveRaftVoterRequest::default().with_voter_id(7));
                    assert_eq!(r.error_code, ResponseError::VoterNotFound.code());
                }
                ApiKey::UpdateRaftVoter => {
                    // No listener: nothing to update to.
                    let r = c.call(v, &UpdateRaftVoterRequest::default().with_voter_id(0));
                    assert_eq!(r.error_code, ResponseError::InvalidRequest.code());
                }
                other => panic!("no version test for {other:?}"),
            }
        }
    }
}

#[test]
fn api_versions_lists_the_table_and_answers_unknown_versions_in_v0() {
    let b = BrokerProcess::start(&[]);
    let mut c = b.connect();
    let resp = c.call(3, &ApiVersionsRequest::default());
    assert_eq!(resp.error_code, 0);
    let produce = resp.api_keys.iter().find(|k| k.api_key == 0).unwrap();
    assert_eq!((produce.min_version, produce.max_version), (0, 12));
    assert_eq!(resp.api_keys.len(), API_TABLE.len());
    // KIP-511: a newer client's version gets UNSUPPORTED_VERSION in a v0 body.
    let mut frame = encode_request(3, 77, &ApiVersionsRequest::default()).to_vec();
    frame[6..8].copy_from_slice(&99i16.to_be_bytes());
    c.send_bytes(&frame).unwrap();
    let raw = c.read_frame().expect("a response, not a closed connection");
    assert_eq!(
        &raw[..4],
        &77i32.to_be_bytes(),
        "v0 response header: the correlation id"
    );
    let mut body = raw.slice(4..);
    let v0 = ApiVersionsResponse::decode(&mut body, 0).unwrap();
    assert_eq!(v0.error_code, ResponseError::UnsupportedVersion.code());
    assert!(v0.api_keys.iter().any(|k| k.api_key == 18 && k.max_version == 3));
}

#[test]
fn invalid_batches_get_their_error_codes_and_write_nothing() {
    let b = BrokerProcess::start(&["message.max.bytes=2000"]);
    let mut c = b.connect();
    create_topic(&mut c, "bad");
    let good = records(3, 10);

    let mut crc = good.to_vec();
    let last = crc.len() - 1;
    crc[last] ^= 0x5a;
    assert_eq!(
        produce_error(&mut c, 9, "bad", Bytes::from(crc)).0,
        ResponseError::CorruptMessage.code(),
        "bad CRC"
    );

    let mut magic = good.to_vec();
    magic[16] = 1;
    assert_eq!(
        produce_error(&mut c, 9, "bad", Bytes::from(magic.clone())).0,
        ResponseError::InvalidRecord.code(),
        "wrong magic"
    );
    assert_eq!(
        produce_error(&mut c, 7, "bad", Bytes::from(magic)).0,
        ResponseError::CorruptMessage.code(),
        "wrong magic, pre-v8 client"
    );

    let mut long = good.to_vec();
    long[11] = long[11].wrapping_add(5); // batch length larger than the bytes present
    assert_eq!(
        produce_error(&mut c, 9, "bad", Bytes::from(long)).0,
        ResponseError::CorruptMessage.code(),
        "length mismatch"
    );

    let truncated = good.slice(..good.len() - 7);
    assert_eq!(
        produce_error(&mut c, 9, "bad", truncated).0,
        ResponseError::CorruptMessage.code(),
        "truncated batch"
    );

    assert_eq!(
        produce_error(&mut c, 9, "bad", Bytes::new()).0,
        ResponseError::CorruptMessage.code(),
        "no batches"
    );
    assert_eq!(
        produce_error(&mut c, 9, "bad", records(1, 5000)).0,
        ResponseError::MessageTooLarge.code(),
        "over message.max.bytes"
    );
    assert_eq!(
        produce_error(&mut c, 9, "no-such-topic", good.clone()).0,
        ResponseError::UnknownTopicOrPartition.code(),
        "unknown topic"
    );

    let mut bad_acks = produce_request("bad", good.clone());
    bad_acks.acks = 2;
    let resp = c.call(9, &bad_acks);
    assert_eq!(
        resp.responses[0].partition_responses[0].error_code,
        ResponseError::InvalidRequiredAcks.code(),
        "acks=2"
    );

    assert_eq!(fetch_all(&mut c, "bad"), (0, 0), "nothing was written");
    assert_eq!(
        produce_error(&mut c, 9, "bad", good),
        (0, 0),
        "a valid batch still works"
    );
}

#[test]
fn acks_all_below_min_insync_replicas_is_refused() {
    let b = BrokerProcess::start(&["min.insync.replicas=2"]);
    let mut c = b.connect();
    create_topic(&mut c, "isr");
    assert_eq!(
        produce_error(&mut c, 9, "isr", records(1, 1)).0,
        ResponseError::NotEnoughReplicas.code()
    );
    let mut acks1 = produce_request("isr", records(1, 1));
    acks1.acks = 1;
    assert_eq!(c.call(9, &acks1).responses[0].partition_responses[0].error_code, 0);
}

#[test]
fn idempotent_producer_retries_and_fencing_over_the_wire() {
    let b = BrokerProcess::start(&[]);
    let mut c = b.connect();
    create_topic(&mut c, "idem");
    let init = c.call(
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60000),
    );
    assert_eq!(init.error_code, 0);
    let pid = init.producer_id.0;
    let batch = |seq: i32, epoch: i16| {
        let recs: Vec<Record> = (0..2)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: pid,
                producer_epoch: epoch,
                timestamp_type: TimestampType::Creation,
                offset: i,
                sequence: seq + i as i32,
                timestamp: 1,
                key: None,
                value: Some(Bytes::from_static(b"x")),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            recs.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .unwrap();
        buf.freeze()
    };
    assert_eq!(produce_error(&mut c, 9, "idem", batch(0, 0)), (0, 0));
    assert_eq!(produce_error(&mut c, 9, "idem", batch(2, 0)), (0, 2));
    assert_eq!(
        produce_error(&mut c, 9, "idem", batch(0, 0)),
        (0, 0),
        "a retry gets its original offset"
    );
    assert_eq!(
        produce_error(&mut c, 9, "idem", batch(7, 0)).0,
        ResponseError::OutOfOrderSequenceNumber.code()
    );
    assert_eq!(
        produce_error(&mut c, 9, "idem", batch(0, 1)),
        (0, 4),
        "a new epoch starts at sequence 0"
    );
    assert_eq!(
        produce_error(&mut c, 9, "idem", batch(4, 0)).0,
        ResponseError::InvalidProducerEpoch.code(),
        "old epoch fenced"
    );
    assert_eq!(fetch_all(&mut c, "idem").0, 6);
}

#[test]
fn malformed_frames_close_only_their_connection() {
    let mut b = BrokerProcess::start(&["socket.request.max.bytes=1048576"]);
    let mut keep = b.connect();
    create_topic(&mut keep, "survivor");
    assert_eq!(produce_error(&mut keep, 9, "survivor", records(10, 10)), (0, 0));

    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "frame over socket.request.max.bytes",
            (2_000_000i32).to_be_bytes().to_vec(),
        ),
        ("negative frame size", (-5i32).to_be_bytes().to_vec()),
        (
            "frame shorter than a header",
            [&4i32.to_be_bytes()[..], &[0, 18, 0, 0]].concat(),
        ),
        (
            "unknown API key",
            [&10i32.to_be_bytes()[..], &[0x03, 0xe7, 0, 0, 0, 0, 0, 1, 0, 0]].concat(),
        ),
        ("Produce v2 (too old)", {
            let f = encode_request(3, 1, &produce_request("survivor", records(1, 1)));
            let mut f = f.to_vec();
            f[6..8].copy_from_slice(&2i16.to_be_bytes());
            f
        }),
        (
            "garbage body",
            [
                &12i32.to_be_bytes()[..],
                &[0, 3, 0, 9, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0x7f],
            ]
            .concat(),
        ),
        ("truncated Metadata body", {
            let f = encode_request(
                9,
                1,
                &MetadataRequest::default().with_topics(Some(vec![
                    metadata_request::MetadataRequestTopic::default().with_name(Some(tn("survivor")))
                ])),
            );
            let mut f = f[..f.len() - 3].to_vec();
            let len = (f.len() - 4) as i32;
            f[..4].copy_from_slice(&len.to_be_bytes());
            f
        }),
    ];
    for (name, bytes) in cases {
        let mut c = b.connect();
        c.send_bytes(&bytes).unwrap();
        assert!(c.closed_by_broker(), "{name}: the broker should close the connection");
        assert!(b.alive(), "{name}: the broker must not crash");
    }
    // A frame that promises more bytes than it sends just waits; closing it is harmless.
    let mut c = b.connect();
    c.send_bytes(&[0, 0, 0, 100, 0, 3]).unwrap();
    drop(c);
    assert_eq!(
        fetch_all(&mut keep, "survivor"),
        fetch_all(&mut b.connect(), "survivor")
    );
    assert_eq!(fetch_all(&mut keep, "survivor").0, 10);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let b = BrokerProcess::start(&[]);
    let mut c = b.connect();
    create_topic(&mut c, "pipe");
    let mut all = Vec::new();
    for i in 0..50 {
        all.extend_from_slice(&encode_request(9, 1000 + i, &produce_request("pipe", records(1, 100))));
        all.extend_from_slice(&encode_request(12, 2000 + i, &MetadataRequest::default()));
    }
    c.send_bytes(&all).unwrap();
    for i in 0..50 {
        for expected in [1000 + i, 2000 + i] {
            let frame = c.read_frame().unwrap();
            assert_eq!(i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]), expected);
        }
    }
}

fn gid(s: &str) -> GroupId {
    GroupId(StrBytes::from_string(s.to_string()))
}

fn commit(c: &mut Client, group: &str, generation: i32, member: &str, topic: &str, metadata: &str) -> i16 {
    let req = OffsetCommitRequest::default()
        .with_group_id(gid(group))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(StrBytes::from_string(member.to_string()))
        .with_topics(vec![offset_commit_request::OffsetCommitRequestTopic::default()
            .with_name(tn(topic))
            .with_partitions(vec![
                offset_commit_request::OffsetCommitRequestPartition::default()
                    .with_committed_offset(5)
                    .with_committed_metadata(Some(StrBytes::from_string(metadata.to_string()))),
            ])]);
    c.call(8, &req).topics[0].partitions[0].error_code
}

#[test]
fn offset_commits_are_checked_against_the_group() {
    let b = BrokerProcess::start(&["group.initial.rebalance.delay.ms=0"]);
    let mut c = b.connect();
    create_topic(&mut c, "committed");
    let join = |c: &mut Client, member: &str| {
        c.call(
            9,
            &JoinGroupRequest::default()
                .with_group_id(gid("checked"))
                .with_session_timeout_ms(10_000)
                .with_rebalance_timeout_ms(10_000)
                .with_member_id(StrBytes::from_string(member.to_string()))
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str("range"))]),
        )
    };
    let first = join(&mut c, "");
    assert_eq!(first.error_code, ResponseError::MemberIdRequired.code());
    let joined = join(&mut c, first.member_id.as_str());
    assert_eq!((joined.error_code, joined.generation_id), (0, 1));
    let member = joined.member_id.to_string();
    let sync = c.call(
        5,
        &SyncGroupRequest::default()
            .with_group_id(gid("checked"))
            .with_generation_id(1)
            .with_member_id(StrBytes::from_string(member.clone())),
    );
    assert_eq!(sync.error_code, 0);
    assert_eq!(commit(&mut c, "checked", 1, &member, "committed", ""), 0);
    assert_eq!(
        commit(&mut c, "checked", 0, &member, "committed", ""),
        ResponseError::IllegalGeneration.code()
    );
    assert_eq!(
        commit(&mut c, "checked", 1, "someone-else", "committed", ""),
        ResponseError::UnknownMemberId.code()
    );
    assert_eq!(
        commit(&mut c, "checked", -1, "", "committed", ""),
        ResponseError::UnknownMemberId.code(),
        "admin commit to a live group"
    );
    assert_eq!(
        commit(&mut c, "checked", 1, &member, "no-such-topic", ""),
        ResponseError::UnknownTopicOrPartition.code()
    );
    assert_eq!(
        commit(&mut c, "checked", 1, &member, "committed", &"m".repeat(5000)),
        ResponseError::OffsetMetadataTooLarge.code()
    );
    assert_eq!(
        commit(&mut c, "", -1, "", "committed", ""),
        ResponseError::InvalidGroupId.code()
    );
    let hb = c.call(
        4,
        &HeartbeatRequest::default()
            .with_group_id(gid("checked"))
            .with_generation_id(7)
            .with_member_id(StrBytes::from_string(member.clone())),
    );
    assert_eq!(hb.error_code, ResponseError::IllegalGeneration.code());
    let fetched = c.call(
        7,
        &OffsetFetchRequest::default()
            .with_group_id(gid("checked"))
            .with_topics(Some(vec![offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(tn("committed"))
                .with_partition_indexes(vec![0])])),
    );
    assert_eq!(fetched.topics[0].partitions[0].committed_offset, 5);
}

#[test]
fn offset_delete_removes_offsets_of_topics_nobody_subscribes_to() {
    let b = BrokerProcess::start(&[]);
    let mut c = b.connect();
    create_topic(&mut c, "gone");
    assert_eq!(commit(&mut c, "standalone", -1, "", "gone", ""), 0);
    let delete = |c: &mut Client, group: &str, topic: &str| {
        c.call(
            0,
            &OffsetDeleteRequest::default()
                .with_group_id(gid(group))
                .with_topics(vec![offset_delete_request::OffsetDeleteRequestTopic::default()
                    .with_name(tn(topic))
                    .with_partitions(vec![
                        offset_delete_request::OffsetDeleteRequestPartition::default(),
                    ])]),
        )
    };
    let r = delete(&mut c, "standalone", "gone");
    assert_eq!((r.error_code, r.topics[0].partitions[0].error_code), (0, 0));
    let fetched = c.call(
        7,
        &OffsetFetchRequest::default()
            .with_group_id(gid("standalone"))
            .with_topics(Some(vec![offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(tn("gone"))
                .with_partition_indexes(vec![0])])),
    );
    assert_eq!(fetched.topics[0].partitions[0].committed_offset, -1);
    assert_eq!(
        delete(&mut c, "no-such-group", "gone").error_code,
        ResponseError::GroupIdNotFound.code()
    );
}

#[test]
fn list_groups_filters_by_state() {
    let b = BrokerProcess::start(&["group.initial.rebalance.delay.ms=0"]);
    let mut c = b.connect();
    create_topic(&mut c, "listed");
    // An Empty group (offsets only) and a group with a member waiting in CompletingRebalance.
    assert_eq!(commit(&mut c, "idle", -1, "", "listed", ""), 0);
    let join = |c: &mut Client, member: &str| {
        c.call(
            9,
            &JoinGroupRequest::default()
                .with_group_id(gid("busy"))
                .with_session_timeout_ms(10_000)
                .with_rebalance_timeout_ms(10_000)
                .with_member_id(StrBytes::from_string(member.to_string()))
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str("range"))]),
        )
    };
    let first = join(&mut c, "");
    assert_eq!(join(&mut c, first.member_id.as_str()).error_code, 0);
    let list = |c: &mut Client, states: &[&'static str]| -> Vec<(String, String)> {
        let r = c.call(
            4,
            &ListGroupsRequest::default()
                .with_states_filter(states.iter().map(|s| StrBytes::from_static_str(s)).collect()),
        );
        let mut v: Vec<_> = r
            .groups
            .iter()
            .map(|g| (g.group_id.0.to_string(), g.group_state.to_string()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        list(&mut c, &[]),
        vec![
            ("busy".into(), "CompletingRebalance".into()),
            ("idle".into(), "Empty".into())
        ]
    );
    assert_eq!(list(&mut c, &["Empty"]), vec![("idle".into(), "Empty".into())]);
    assert_eq!(list(&mut c, &["Stable"]), vec![]);
}

#[test]
fn dynamic_cluster_defaults_are_set_and_described_under_the_empty_broker_name() {
    use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let b = BrokerProcess::start(&[]);
    let mut c = b.connect();
    const BROKER: i8 = 4;
    let set = |name: &str, key: &str, value: &str| {
        IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(BROKER)
            .with_resource_name(StrBytes::from_string(name.into()))
            .with_configs(vec![AlterableConfig::default()
                .with_name(StrBytes::from_string(key.into()))
                .with_config_operation(0)
                .with_value(Some(StrBytes::from_string(value.into())))])])
    };
    let resp = c.call(1, &set("", "unclean.leader.election.enable", "true"));
    assert_eq!(resp.responses[0].error_code, 0, "{:?}", resp.responses[0].error_message);
    let resp = c.call(1, &set("", "unclean.leader.election.enable", "maybe"));
    assert_eq!(resp.responses[0].error_code, ResponseError::InvalidConfig.code());
    let resp = c.call(1, &set("0", "leader.replication.throttled.rate", "5000"));
    assert_eq!(resp.responses[0].error_code, 0);
    let describe = |name: &str| {
        DescribeConfigsRequest::default()
            .with_include_synonyms(true)
            .with_resources(vec![describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(BROKER)
                .with_resource_name(StrBytes::from_string(name.into()))
                .with_configuration_keys(None)])
    };
    // The cluster resource lists only the dynamic defaults.
    let resp = c.call(4, &describe(""));
    let configs: Vec<_> = resp.results[0]
        .configs
        .iter()
        .map(|c| {
            (
                c.name.to_string(),
                c.value.as_ref().map(|v| v.to_string()),
                c.config_source,
            )
        })
        .collect();
    assert_eq!(
        configs,
        vec![(
            "unclean.leader.election.enable".to_string(),
            Some("true".to_string()),
            3
        )]
    );
    // Broker 0 shows each value with its source and the layers below it.
    let resp = c.call(4, &describe("0"));
    let find = |k: &str| resp.results[0].configs.iter().find(|c| c.name.as_str() == k).unwrap();
    let unclean = find("unclean.leader.election.enable");
    assert_eq!((unclean.value.as_deref(), unclean.config_source), (Some("true"), 3));
    let sources: Vec<i8> = unclean.synonyms.iter().map(|s| s.source).collect();
    assert_eq!(sources, vec![3, 5], "dynamic default, then the default");
    let rate = find("leader.replication.throttled.rate");
    assert_eq!(
        (rate.value.as_deref(), rate.config_source, rate.read_only),
        (Some("5000"), 2, false)
    );
    assert!(find("log.dirs").read_only);
}

/// Two brokers forming one metadata quorum, each on free ports, killed on drop.
struct TwoBrokers {
    brokers: Vec<std::process::Child>,
    ports: Vec<u16>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Drop for TwoBrokers {
    fn drop(&mut self) {
        for b in &mut self.brokers {
            let _ = b.kill();
            let _ = b.wait();
        }
    }
}

fn two_brokers() -> TwoBrokers {
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let ports: Vec<(u16, u16)> = (0..2).map(|_| (free(), free())).collect();
    let voters = format!("0@127.0.0.1:{},1@127.0.0.1:{}", ports[0].1, ports[1].1);
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let brokers = ports
        .iter()
        .enumerate()
        .map(|(i, (p, c))| {
            std::process::Command::new(env!("CARGO_BIN_EXE_skein-broker"))
                .args(["--set", &format!("node.id={i}")])
                .args(["--set", &format!("log.dirs={}", dirs[i].path().display())])
                .args([
                    "--set",
                    &format!("listeners=PLAINTEXT://127.0.0.1:{p},CONTROLLER://127.0.0.1:{c}"),
                ])
                .args(["--set", &format!("controller.quorum.voters={voters}")])
                .args(["--set", "http.listener="])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let t = TwoBrokers {
        brokers,
        ports: ports.iter().map(|p| p.0).collect(),
        _dirs: dirs,
    };
    let t0 = std::time::Instant::now();
    while !t.ports.iter().all(|p| common::listening(*p)) {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(30),
            "brokers did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    t
}

/// Bytes of the log of `topic` partition 0 on the broker `c` talks to,
/// whether the high watermark has reached them or not (DescribeLogDirs).
fn log_size(c: &mut Client, topic: &str) -> i64 {
    let req = DescribeLogDirsRequest::default().with_topics(Some(vec![
        describe_log_dirs_request::DescribableLogDirTopic::default()
            .with_topic(tn(topic))
            .with_partitions(vec![0]),
    ]));
    let r = c.call(1, &req);
    r.results
        .iter()
        .flat_map(|d| &d.topics)
        .flat_map(|t| &t.partitions)
        .map(|p| p.partition_size)
        .sum()
}

#[test]
fn a_produce_waiting_for_replicas_does_not_hold_up_the_connections_next_request() {
    let cluster = two_brokers();
    // The topic's leader, once both brokers are registered and it is created with RF=2.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let leader = loop {
        assert!(std::time::Instant::now() < deadline, "no leader for a topic of RF=2");
        let mut c = Client::connect(cluster.ports[0]);
        let req = CreateTopicsRequest::default().with_timeout_ms(5000).with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(tn("wait"))
                .with_num_partitions(1)
                .with_replication_factor(2),
        ]);
        let code = c.call(7, &req).topics[0].error_code;
        let md = c.call(
            12,
            &MetadataRequest::default().with_topics(Some(vec![
                metadata_request::MetadataRequestTopic::default().with_name(Some(tn("wait")))
            ])),
        );
        let p = md.topics.first().and_then(|t| t.partitions.first());
        match p {
            Some(p) if (code == 0 || code == ResponseError::TopicAlreadyExists.code()) && p.isr_nodes.len() == 2 => {
                break p.leader_id.0
            }
            _ => std::thread::sleep(std::time::Duration::from_millis(200)),
        }
    };
    let follower = 1 - leader as usize;
    let mut c = Client::connect(cluster.ports[leader as usize]);
    assert_eq!(
        produce_error(&mut c, 9, "wait", records(1, 10)).0,
        0,
        "both in sync, acks=all answers"
    );
    let one = log_size(&mut c, "wait");
    // The follower stops: an acks=all produce now waits for it (until the
    // request's timeout, or until the ISR shrinks after replica.lag.time.max.ms).
    let stop = |sig: &str| {
        std::process::Command::new("kill")
            .args([sig, &cluster.brokers[follower].id().to_string()])
            .status()
            .unwrap()
    };
    stop("-STOP");
    let mut acks1 = produce_request("wait", records(1, 10));
    acks1.acks = 1;
    // Waits up to 20 s; the check below gives up after 3.
    let waiting = produce_request("wait", records(1, 10)).with_timeout_ms(20_000);
    let mut pipelined = encode_request(9, 501, &waiting).to_vec();
    pipelined.extend_from_slice(&encode_request(9, 502, &acks1));
    c.send_bytes(&pipelined).unwrap();
    // The second request is appended while the first still waits.
    let mut other = Client::connect(cluster.ports[leader as usize]);
    let appended = (0..30).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        log_size(&mut other, "wait") == 3 * one
    });
    stop("-CONT");
    assert!(
        appended,
        "the acks=1 produce behind a waiting acks=all produce was not appended"
    );
    // Responses still come in request order.
    for expected in [501, 502] {
        let frame = c.read_frame().expect("a response");
        assert_eq!(i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]), expected);
    }
}
