//! One file per Kafka API. Each declares the versions it serves next to its code.

pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub mod alter_client_quotas;
pub mod alter_configs;
pub mod alter_partition_reassignments;
pub mod alter_user_scram_credentials;
pub mod api_versions;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod create_acls;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_acls;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_topics;
pub mod describe_acls;
pub mod describe_client_quotas;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_quorum;
pub mod describe_transactions;
pub mod describe_user_scram_credentials;
pub mod elect_leaders;
pub mod end_txn;
pub mod fetch;
pub mod find_coordinator;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod list_partition_reassignments;
pub mod list_transactions;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod raft_voters;
pub mod sasl_authenticate;
pub mod sasl_handshake;
pub mod sync_group;
pub mod txn_offset_commit;
pub mod unregister_broker;
pub mod update_features;
pub mod write_txn_markers;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;

use crate::log::ReadError;
use crate::protocol::handler::{Authz, Operation, ResourceType};

/// The `*_authorized_operations` value when the client did not ask for them.
pub const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

/// Kafka's check on a config resource: `op` (DESCRIBE_CONFIGS or
/// ALTER_CONFIGS) on the topic, on the cluster for a broker (and the
/// cluster-wide default, the empty broker name), or on the group; the error
/// to answer when it is denied. Other resource types are left to the handler.
pub fn config_resource_denied(
    authz: &Authz,
    op: Operation,
    resource_type: i8,
    name: &str,
) -> Option<(ResponseError, String)> {
    use describe_configs::{RESOURCE_BROKER, RESOURCE_GROUP, RESOURCE_TOPIC};
    let (allowed, error) = match resource_type {
        RESOURCE_TOPIC => (
            authz.allows(op, ResourceType::Topic, name),
            ResponseError::TopicAuthorizationFailed,
        ),
        RESOURCE_BROKER => (authz.allows_cluster(op), ResponseError::ClusterAuthorizationFailed),
        RESOURCE_GROUP => (
            authz.allows(op, ResourceType::Group, name),
            ResponseError::GroupAuthorizationFailed,
        ),
        _ => (true, ResponseError::UnknownServerError),
    };
    (!allowed).then(|| (error, "Authorization failed.".to_string()))
}

/// Proposes one metadata command: Ok, or the Kafka error (and message) it
/// was refused with, by the controller or on the way there.
pub async fn propose(
    ctx: &crate::protocol::handler::RequestContext,
    cmd: crate::controller::image::Command,
) -> Result<(), (ResponseError, String)> {
    match ctx.metadata().propose(cmd).await {
        Ok(crate::controller::image::Reply::Error { code, message }) => Err((
            ResponseError::try_from_code(code).unwrap_or(ResponseError::UnknownServerError),
            message,
        )),
        Ok(_) => Ok(()),
        Err(e) => Err((e.code, e.message)),
    }
}

/// Why the ACL-changing APIs refuse: no authorizer (SECURITY_DISABLED, with
/// Kafka's message) or no ALTER on the cluster.
pub fn acl_change_refused(authz: &Authz) -> Option<(ResponseError, String)> {
    if !authz.enabled() {
        Some((ResponseError::SecurityDisabled, create_acls::NO_AUTHORIZER.to_string()))
    } else if !authz.allows_cluster(Operation::Alter) {
        Some((ResponseError::ClusterAuthorizationFailed, String::new()))
    } else {
        None
    }
}

/// `operations` when the client asked for them, else OPERATIONS_NOT_REQUESTED.
pub fn authorized(requested: bool, operations: i32) -> i32 {
    if requested {
        operations
    } else {
        OPERATIONS_NOT_REQUESTED
    }
}

/// A `StrBytes` from any string.
/// Kafka's controller refuses a CreateTopics or CreatePartitions request that
/// would create more partitions than this in all (`MAX_PARTITIONS_PER_BATCH`,
/// KAFKA-17870 and KAFKA-19673); here it also keeps a few bytes of request from
/// allocating placements for billions of partitions or exhausting descriptors.
pub const MAX_PARTITIONS_PER_REQUEST: i64 = 10_000;

/// The error every topic of a request over [`MAX_PARTITIONS_PER_REQUEST`] gets.
pub fn too_many_partitions(total: i64) -> crate::cluster::AdminError {
    crate::cluster::AdminError::new(
        ResponseError::PolicyViolation,
        format!(
            "Excessively large number of partitions per request: {total} new partitions, at most {MAX_PARTITIONS_PER_REQUEST}."
        ),
    )
}

pub fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// A `TopicName` from any string.
pub fn topic_name(s: impl Into<String>) -> TopicName {
    TopicName(str_bytes(s))
}

/// A transaction API's error code for the client's version: PRODUCER_FENCED
/// (KIP-588) only from `fenced_since` on; older clients know it as
/// INVALID_PRODUCER_EPOCH.
pub fn txn_error_code(e: ResponseError, version: i16, fenced_since: i16) -> i16 {
    match e {
        ResponseError::ProducerFenced if version < fenced_since => ResponseError::InvalidProducerEpoch.code(),
        e => e.code(),
    }
}

pub use crate::error::append_error_code;

/// Kafka error code of a read failure.
pub fn read_error_code(e: &ReadError) -> ResponseError {
    match e {
        ReadError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        ReadError::Io(_) => ResponseError::KafkaStorageError,
    }
}
