//! AddPartitionsToTxn (key 24): a transactional producer names the partitions
//! it is about to write, before it writes them. v0–3 carry one transaction
//! from a client; v4–5 a batch of them from a broker (KIP-890), where
//! `verify_only` asks whether a partition is already in the transaction
//! (part 1), and otherwise adds it for a client of transaction version 2
//! whose `Produce` v12 or `TxnOffsetCommit` v5 reached that broker (part 2:
//! Kafka's `transactionVersionForAddPartitionsToTxn`, v4 and later).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, TransactionalId};
use kafka_protocol::protocol::VersionRange;

use super::txn_error_code;
use crate::protocol::handler::{Handler, Operation, RequestContext, ResourceType};

pub struct AddPartitionsToTxn;

/// The answer for one transaction: per topic, per partition, an error code.
fn results(
    topics: &[AddPartitionsToTxnTopic],
    code_of: impl Fn(&str, i32) -> i16,
) -> Vec<AddPartitionsToTxnTopicResult> {
    topics
        .iter()
        .map(|t| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(
                    t.partitions
                        .iter()
                        .map(|p| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(*p)
                                .with_partition_error_code(code_of(t.name.0.as_str(), *p))
                        })
                        .collect(),
                )
        })
        .collect()
}

/// One transaction's partitions added (or verified): its per-partition results.
async fn add(
    ctx: &RequestContext,
    id: &str,
    producer: (i64, i16),
    topics: &[AddPartitionsToTxnTopic],
    verify_only: bool,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let authz = ctx.authz();
    let version = ctx.api_version();
    if !authz.allows(Operation::Write, ResourceType::TransactionalId, id) {
        let code = ResponseError::TransactionalIdAuthorizationFailed.code();
        return results(topics, |_, _| code);
    }
    // WRITE on each topic and each partition known; the rest are not attempted.
    let denied = |t: &str| !authz.allows(Operation::Write, ResourceType::Topic, t);
    let unknown = |t: &str, p: i32| !ctx.replicas().topic(t).is_some_and(|topic| topic.has_partition(p));
    let any_bad = topics
        .iter()
        .any(|t| denied(t.name.0.as_str()) || t.partitions.iter().any(|p| unknown(t.name.0.as_str(), *p)));
    if any_bad {
        return results(topics, |t, p| {
            if denied(t) {
                ResponseError::TopicAuthorizationFailed.code()
            } else if unknown(t, p) {
                ResponseError::UnknownTopicOrPartition.code()
            } else {
                ResponseError::OperationNotAttempted.code()
            }
        });
    }
    let partitions: Vec<(String, i32)> = topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.name.0.to_string(), *p)))
        .collect();
    let txns = ctx.txns();
    let outcome = if verify_only {
        let mut r = Ok(());
        for tp in &partitions {
            r = txns
                .coordinator()
                .verify_partition(txns.host(), id, producer.0, producer.1, tp)
                .await;
            if r.is_err() {
                break;
            }
        }
        r
    } else {
        let client_version = if version >= 4 {
            crate::txn::TV_2
        } else {
            crate::txn::TV_1
        };
        txns.coordinator()
            .add_partitions(txns.host(), id, producer.0, producer.1, &partitions, client_version)
            .await
    };
    let code = match outcome {
        Ok(()) => 0,
        Err(e) => {
            tracing::debug!(
                transactional_id = id,
                "AddPartitionsToTxn refused: {:?} {}",
                e.code,
                e.message
            );
            txn_error_code(e.code, version, 2)
        }
    };
    results(topics, |_, _| code)
}

impl Handler for AddPartitionsToTxn {
    type Request = AddPartitionsToTxnRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 5 };

    async fn handle(ctx: RequestContext, req: AddPartitionsToTxnRequest) -> Option<AddPartitionsToTxnResponse> {
        if ctx.api_version() <= 3 {
            let id = req.v3_and_below_transactional_id.0.to_string();
            let producer = (req.v3_and_below_producer_id.0, req.v3_and_below_producer_epoch);
            let r = add(&ctx, &id, producer, &req.v3_and_below_topics, false).await;
            return Some(AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(r));
        }
        // The batched form is broker-to-broker.
        if !ctx.authz().allows_cluster(Operation::ClusterAction) {
            return Some(
                AddPartitionsToTxnResponse::default().with_error_code(ResponseError::ClusterAuthorizationFailed.code()),
            );
        }
        let mut out = Vec::new();
        for t in &req.transactions {
            let id = t.transactional_id.0.to_string();
            let r = add(&ctx, &id, (t.producer_id.0, t.producer_epoch), &t.topics, t.verify_only).await;
            out.push(
                AddPartitionsToTxnResult::default()
                    .with_transactional_id(TransactionalId(t.transactional_id.0.clone()))
                    .with_topic_results(r),
            );
        }
        Some(AddPartitionsToTxnResponse::default().with_results_by_transaction(out))
    }
}
