//! Produce (key 0): validate, append, acknowledge per `acks`.
//!
//! Advertised from v0 because librdkafka turns compression off against a broker
//! that does not list the old versions; only v3+ (record batch v2) is served.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::VersionRange;

use super::{append_error_code, str_bytes};
use crate::cluster::Broker;
use crate::protocol::{Handler, RequestContext};

pub struct Produce;

impl Handler for Produce {
    type Request = ProduceRequest;
    const VERSIONS: VersionRange = VersionRange { min: 3, max: 9 };
    const ADVERTISED: VersionRange = VersionRange { min: 0, max: 9 };

    async fn handle(broker: Arc<Broker>, ctx: RequestContext, req: ProduceRequest) -> Option<ProduceResponse> {
        let version = ctx.api_version();
        let acks = req.acks;
        let timeout = std::time::Duration::from_millis(req.timeout_ms.clamp(0, 300_000) as u64);
        let mut responses = Vec::with_capacity(req.topic_data.len());
        for topic_data in req.topic_data {
            let name = topic_data.name.0.to_string();
            let mut partition_responses = Vec::with_capacity(topic_data.partition_data.len());
            for pd in topic_data.partition_data {
                let r = PartitionProduceResponse::default()
                    .with_index(pd.index)
                    .with_base_offset(-1)
                    .with_log_append_time_ms(-1)
                    .with_log_start_offset(-1);
                let fail = |r: PartitionProduceResponse, code: ResponseError, msg: String| {
                    // INVALID_RECORD exists from v8; older clients know it as CORRUPT_MESSAGE.
                    let code = if code == ResponseError::InvalidRecord && version < 8 {
                        ResponseError::CorruptMessage
                    } else {
                        code
                    };
                    r.with_error_code(code.code()).with_error_message(Some(str_bytes(msg)))
                };
                let partition = broker.leader_partition(&name, pd.index);
                let r = if !matches!(acks, -1..=1) {
                    fail(
                        r,
                        ResponseError::InvalidRequiredAcks,
                        format!("acks must be -1, 0 or 1, not {acks}"),
                    )
                } else if let Ok(p) = partition {
                    let min_isr = p.min_insync_replicas();
                    let isr = p.replica_state().isr.len() as i32;
                    match pd.records {
                        _ if acks == -1 && isr < min_isr => fail(
                            r,
                            ResponseError::NotEnoughReplicas,
                            format!("The size of the current ISR {isr} is insufficient to satisfy the min.isr requirement of {min_isr}"),
                        ),
                        None => fail(r, ResponseError::InvalidRecord, "records are null".into()),
                        Some(records) => match p.append(&broker, records).await {
                            Ok(info) => {
                                let replicated = if acks == -1 {
                                    p.wait_for_replication(info.last_offset + 1, timeout).await
                                } else {
                                    Ok(())
                                };
                                match replicated {
                                    Ok(()) => r
                                        .with_base_offset(info.base_offset)
                                        .with_log_append_time_ms(info.log_append_time)
                                        .with_log_start_offset(p.log_start_offset()),
                                    Err(code) => fail(r, code, format!("{code:?} while waiting for the in-sync replicas")),
                                }
                            }
                            Err(e) => {
                                tracing::debug!(topic = %name, partition = pd.index, "produce refused: {e}");
                                fail(r, append_error_code(&e), e.to_string())
                            }
                        },
                    }
                } else {
                    let code = partition.err().unwrap_or(ResponseError::UnknownTopicOrPartition);
                    let msg = match code {
                        ResponseError::NotLeaderOrFollower => "This broker is not the leader of this partition.",
                        _ => "This server does not host this topic-partition.",
                    };
                    fail(r, code, msg.into())
                };
                partition_responses.push(r);
            }
            responses.push(
                TopicProduceResponse::default()
                    .with_name(topic_data.name)
                    .with_partition_responses(partition_responses),
            );
        }
        if acks == 0 {
            return None;
        }
        Some(ProduceResponse::default().with_responses(responses))
    }
}
