//! Produce (key 0): validate, append, acknowledge per `acks`.
//!
//! Advertised from v0 because librdkafka turns compression off against a broker
//! that does not list the old versions; only v3+ (record batch v2) is served.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::VersionRange;

use super::{append_error_code, str_bytes};
use crate::cluster::Partition;
use crate::log::AppendError;
use crate::protocol::handler::{Handler, Operation, RequestContext, ResourceType};
use crate::quota::QuotaType;

pub struct Produce;

impl Handler for Produce {
    type Request = ProduceRequest;
    // v10 adds the new leader's tagged fields (left out: optional), v11
    // TRANSACTION_ABORTABLE, v12 transaction version 2 (KIP-890 part 2: the
    // leader adds the partition to the producer's transaction itself).
    const VERSIONS: VersionRange = VersionRange { min: 3, max: 12 };
    const ADVERTISED: VersionRange = VersionRange { min: 0, max: 12 };

    async fn handle(ctx: RequestContext, req: ProduceRequest) -> Option<ProduceResponse> {
        let version = ctx.api_version();
        let acks = req.acks;
        let timeout = std::time::Duration::from_millis(req.timeout_ms.clamp(0, 300_000) as u64);
        // Every partition is appended before any acks=all wait, so the
        // partitions of one request replicate side by side: the request takes
        // its slowest partition's round trip, not the sum of them all.
        let authz = ctx.authz();
        let mut topics = Vec::with_capacity(req.topic_data.len());
        for topic_data in req.topic_data {
            let name = topic_data.name.0.to_string();
            // A transactional producer also needs WRITE on its transactional id.
            let allowed = authz.allows(Operation::Write, ResourceType::Topic, &name);
            let txn_denied = req
                .transactional_id
                .as_ref()
                .is_some_and(|id| !authz.allows(Operation::Write, ResourceType::TransactionalId, id));
            let mut partitions = Vec::with_capacity(topic_data.partition_data.len());
            for pd in topic_data.partition_data {
                let r = PartitionProduceResponse::default()
                    .with_index(pd.index)
                    .with_base_offset(-1)
                    .with_log_append_time_ms(-1)
                    .with_log_start_offset(-1);
                partitions.push(if txn_denied {
                    Pending::Done(r.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code()))
                } else if allowed {
                    let request = Request {
                        version,
                        acks,
                        transactional_id: req.transactional_id.as_ref().map(|id| id.0.as_str()),
                    };
                    append(&ctx, request, &name, pd.index, pd.records, r).await
                } else {
                    let code = ResponseError::TopicAuthorizationFailed;
                    Pending::Done(r.with_error_code(code.code()))
                });
            }
            topics.push((topic_data.name, partitions));
        }
        // A producer over its byte rate is told to pause, and its connection
        // reads nothing more until then (acks=0 included: it gets no response).
        let throttle = ctx.record_quota(QuotaType::Produce, ctx.request_bytes as f64);
        if acks == 0 {
            for (_, partitions) in &topics {
                for pending in partitions {
                    if let Pending::Done(r) = pending {
                        ctx.metrics().error(ApiKey::Produce, r.error_code);
                    }
                }
            }
            return None;
        }
        // Appended: what is left is waiting, which need not hold up the
        // connection's next request.
        ctx.detach.release();
        let mut responses = Vec::with_capacity(topics.len());
        for (name, partitions) in topics {
            let mut partition_responses = Vec::with_capacity(partitions.len());
            for pending in partitions {
                let r = match pending {
                    Pending::Done(r) => r,
                    Pending::Replicating(r, p, end) => match p.wait_for_replication(end, timeout).await {
                        Ok(()) => r.with_log_start_offset(p.log_start_offset()),
                        Err(code) => fail(
                            version,
                            r.with_base_offset(-1).with_log_append_time_ms(-1),
                            code,
                            format!("{code:?} while waiting for the in-sync replicas"),
                        ),
                    },
                };
                ctx.metrics().error(ApiKey::Produce, r.error_code);
                partition_responses.push(r);
            }
            responses.push(
                TopicProduceResponse::default()
                    .with_name(name)
                    .with_partition_responses(partition_responses),
            );
        }
        Some(
            ProduceResponse::default()
                .with_responses(responses)
                .with_throttle_time_ms(i32::try_from(throttle).unwrap_or(i32::MAX)),
        )
    }
}

/// One partition's answer: final, or appended and waiting for the ISR (acks=all).
enum Pending {
    Done(PartitionProduceResponse),
    Replicating(PartitionProduceResponse, Arc<Partition>, i64),
}

fn fail(version: i16, r: PartitionProduceResponse, code: ResponseError, msg: String) -> PartitionProduceResponse {
    // INVALID_RECORD exists from v8; older clients know it as CORRUPT_MESSAGE.
    let code = if code == ResponseError::InvalidRecord && version < 8 {
        ResponseError::CorruptMessage
    } else {
        code
    };
    r.with_error_code(code.code()).with_error_message(Some(str_bytes(msg)))
}

/// Validates and appends one partition's records.
/// What one Produce request says about all its partitions.
struct Request<'a> {
    version: i16,
    acks: i16,
    transactional_id: Option<&'a str>,
}

async fn append(
    ctx: &RequestContext,
    req: Request<'_>,
    topic: &str,
    index: i32,
    records: Option<bytes::Bytes>,
    r: PartitionProduceResponse,
) -> Pending {
    let Request {
        version,
        acks,
        transactional_id,
    } = req;
    if !matches!(acks, -1..=1) {
        let msg = format!("acks must be -1, 0 or 1, not {acks}");
        return Pending::Done(fail(version, r, ResponseError::InvalidRequiredAcks, msg));
    }
    let p = match ctx.replicas().leader_partition(topic, index) {
        Ok(p) => p,
        Err(code) => {
            let msg = match code {
                ResponseError::NotLeaderOrFollower => "This broker is not the leader of this partition.",
                _ => "This server does not host this topic-partition.",
            };
            return Pending::Done(fail(version, r, code, msg.into()));
        }
    };
    let min_isr = p.min_insync_replicas();
    let isr = p.isr_len() as i32;
    if acks == -1 && isr < min_isr {
        let msg = format!(
            "The size of the current ISR {isr} is insufficient to satisfy the min.isr requirement of {min_isr}"
        );
        return Pending::Done(fail(version, r, ResponseError::NotEnoughReplicas, msg));
    }
    let Some(records) = records else {
        return Pending::Done(fail(
            version,
            r,
            ResponseError::InvalidRecord,
            "records are null".into(),
        ));
    };
    // KIP-890 part 1: the first transactional batch of a transaction here is
    // appended only once its coordinator confirms the partition is in it, so
    // a late or stray write cannot open a transaction no marker will close.
    // Part 2: from v12 the coordinator adds the partition instead (the
    // client sent no AddPartitionsToTxn).
    if let (Some(id), Ok(h)) = (transactional_id, crate::log::batch::BatchHeader::parse(&records)) {
        if p.needs_verification(&h) {
            let add = version >= 12;
            match ctx
                .txns()
                .verify(id, (h.producer_id, h.producer_epoch), (topic.to_string(), index), add)
                .await
            {
                Ok(()) => p.mark_verified(h.producer_id, h.producer_epoch),
                Err(e) => {
                    // Kafka's mapping: the coordinator's transient errors
                    // become a retriable one, a fenced producer's its old
                    // code, and the rest abortable from v11 (the client
                    // aborts and goes on), fatal before.
                    let code = match e {
                        ResponseError::CoordinatorNotAvailable
                        | ResponseError::NotCoordinator
                        | ResponseError::CoordinatorLoadInProgress
                        | ResponseError::ConcurrentTransactions
                        | ResponseError::BrokerNotAvailable
                        | ResponseError::NetworkException => ResponseError::NotEnoughReplicas,
                        ResponseError::InvalidProducerEpoch | ResponseError::ProducerFenced => {
                            ResponseError::InvalidProducerEpoch
                        }
                        _ if version >= 11 => ResponseError::TransactionAbortable,
                        _ => ResponseError::InvalidTxnState,
                    };
                    let msg = format!("the transaction coordinator did not confirm this partition: {e:?}");
                    return Pending::Done(fail(version, r, code, msg));
                }
            }
        }
    }
    let size = records.len();
    match ctx.replicas().append(&p, records).await {
        Ok(info) => {
            if !info.duplicate {
                p.metrics
                    .messages_in
                    .inc_by((info.last_offset - info.base_offset + 1).max(0) as u64);
                p.metrics.bytes_in.inc_by(size as u64);
            }
            let r = r
                .with_base_offset(info.base_offset)
                .with_log_append_time_ms(info.log_append_time);
            if acks == -1 {
                Pending::Replicating(r, p, info.last_offset + 1)
            } else {
                Pending::Done(r.with_log_start_offset(p.log_start_offset()))
            }
        }
        Err(e) => {
            tracing::debug!(topic, partition = index, "produce refused: {e}");
            let code = append_error_code(&e);
            let r = match e {
                // RecordErrors exist from v8.
                AppendError::InvalidRecord { ref records, .. } if version >= 8 => r.with_record_errors(
                    records
                        .iter()
                        .map(|(i, reason)| {
                            BatchIndexAndErrorMessage::default()
                                .with_batch_index(*i)
                                .with_batch_index_error_message(Some(str_bytes(reason.clone())))
                        })
                        .collect(),
                ),
                _ => r,
            };
            Pending::Done(fail(version, r, code, e.to_string()))
        }
    }
}
