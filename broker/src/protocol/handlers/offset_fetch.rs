//! OffsetFetch (key 9): committed offsets of one group (v1-7) or several (v8+).

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse};
use kafka_protocol::protocol::VersionRange;

use super::{str_bytes, topic_name};
use crate::group::GroupOffsets;
use crate::protocol::handler::{Authz, Handler, Operation, RequestContext, ResourceType};

pub struct OffsetFetch;

/// One partition's answer: (partition, offset, leader epoch, metadata, error code).
type Row = (i32, i64, i32, String, i16);

/// The offsets asked for (`None`: every committed one), by topic. Topics the
/// principal may not DESCRIBE are left out of "every one" and answered
/// TOPIC_AUTHORIZATION_FAILED when named.
fn lookup(
    committed: &GroupOffsets,
    wanted: Option<Vec<(String, Vec<i32>)>>,
    authz: &Authz,
) -> BTreeMap<String, Vec<Row>> {
    let describable = |t: &str| authz.allows(Operation::Describe, ResourceType::Topic, t);
    let mut out: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    match wanted {
        None => {
            for ((t, p), c) in committed {
                if !describable(t) {
                    continue;
                }
                out.entry(t.clone())
                    .or_default()
                    .push((*p, c.offset, c.leader_epoch, c.metadata.clone(), 0));
            }
        }
        Some(topics) => {
            for (t, parts) in topics {
                let allowed = describable(&t);
                let rows = out.entry(t.clone()).or_default();
                for p in parts {
                    rows.push(match committed.get(&(t.clone(), p)) {
                        _ if !allowed => (p, -1, -1, String::new(), ResponseError::TopicAuthorizationFailed.code()),
                        Some(c) => (p, c.offset, c.leader_epoch, c.metadata.clone(), 0),
                        None => (p, -1, -1, String::new(), 0),
                    });
                }
            }
        }
    }
    out
}

/// With `require_stable`, a partition whose offset an open transaction has
/// committed answers UNSTABLE_OFFSET_COMMIT (the consumer retries).
fn stable(
    ctx: &RequestContext,
    group: &str,
    require_stable: bool,
    mut rows: BTreeMap<String, Vec<Row>>,
) -> BTreeMap<String, Vec<Row>> {
    if require_stable {
        let coordinator = ctx.groups().coordinator();
        for (t, parts) in &mut rows {
            for (p, o, _, _, code) in parts.iter_mut() {
                if *code == 0 && coordinator.has_pending_txn_offset(group, t, *p) {
                    *o = -1;
                    *code = ResponseError::UnstableOffsetCommit.code();
                }
            }
        }
    }
    rows
}

impl Handler for OffsetFetch {
    type Request = OffsetFetchRequest;
    const VERSIONS: VersionRange = VersionRange { min: 1, max: 9 };

    async fn handle(ctx: RequestContext, req: OffsetFetchRequest) -> Option<OffsetFetchResponse> {
        let v = ctx.api_version();
        // KIP-447: a read_committed consumer asks for no offset a transaction may still abort.
        let require_stable = v >= 7 && req.require_stable;
        let epoch = |e: i32| if v >= 5 { e } else { -1 };
        let authz = ctx.authz();
        let group_allowed = |g: &str| authz.allows(Operation::Describe, ResourceType::Group, g);
        if v >= 8 {
            let groups = req
                .groups
                .into_iter()
                .map(|g| {
                    if !group_allowed(&g.group_id.0) {
                        return OffsetFetchResponseGroup::default()
                            .with_group_id(g.group_id)
                            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
                    }
                    if let Err(e) = ctx
                        .groups()
                        .coordinator()
                        .check_coordinator(ctx.groups().host(), &g.group_id.0)
                    {
                        return OffsetFetchResponseGroup::default()
                            .with_group_id(g.group_id)
                            .with_error_code(e.code());
                    }
                    let committed = ctx.groups().coordinator().committed(&g.group_id.0);
                    let wanted = g.topics.map(|ts| {
                        ts.into_iter()
                            .map(|t| (t.name.0.to_string(), t.partition_indexes))
                            .collect()
                    });
                    let rows = lookup(&committed, wanted, &authz);
                    let topics = stable(&ctx, &g.group_id.0, require_stable, rows)
                        .into_iter()
                        .map(|(t, rows)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(topic_name(t))
                                .with_partitions(
                                    rows.into_iter()
                                        .map(|(p, o, e, m, code)| {
                                            OffsetFetchResponsePartitions::default()
                                                .with_error_code(code)
                                                .with_partition_index(p)
                                                .with_committed_offset(o)
                                                .with_committed_leader_epoch(e)
                                                .with_metadata(Some(str_bytes(m)))
                                        })
                                        .collect(),
                                )
                        })
                        .collect();
                    OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id)
                        .with_topics(topics)
                })
                .collect();
            return Some(OffsetFetchResponse::default().with_groups(groups));
        }
        if !group_allowed(&req.group_id.0) {
            let denied = ResponseError::GroupAuthorizationFailed.code();
            // v1 has no top-level error code: each named partition carries it.
            let topics = req
                .topics
                .unwrap_or_default()
                .into_iter()
                .map(|t| {
                    OffsetFetchResponseTopic::default().with_name(t.name).with_partitions(
                        t.partition_indexes
                            .into_iter()
                            .map(|p| {
                                OffsetFetchResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(-1)
                                    .with_error_code(denied)
                            })
                            .collect(),
                    )
                })
                .collect();
            return Some(
                OffsetFetchResponse::default()
                    .with_error_code(denied)
                    .with_topics(topics),
            );
        }
        // v1 has no error code to answer NOT_COORDINATOR with.
        if v >= 2 {
            if let Err(e) = ctx
                .groups()
                .coordinator()
                .check_coordinator(ctx.groups().host(), &req.group_id.0)
            {
                return Some(OffsetFetchResponse::default().with_error_code(e.code()));
            }
        }
        let committed = ctx.groups().coordinator().committed(&req.group_id.0);
        let wanted = req.topics.map(|ts| {
            ts.into_iter()
                .map(|t| (t.name.0.to_string(), t.partition_indexes))
                .collect()
        });
        let rows = lookup(&committed, wanted, &authz);
        let topics = stable(&ctx, &req.group_id.0, require_stable, rows)
            .into_iter()
            .map(|(t, rows)| {
                OffsetFetchResponseTopic::default()
                    .with_name(topic_name(t))
                    .with_partitions(
                        rows.into_iter()
                            .map(|(p, o, e, m, code)| {
                                OffsetFetchResponsePartition::default()
                                    .with_error_code(code)
                                    .with_partition_index(p)
                                    .with_committed_offset(o)
                                    .with_committed_leader_epoch(epoch(e))
                                    .with_metadata(Some(str_bytes(m)))
                            })
                            .collect(),
                    )
            })
            .collect();
        Some(OffsetFetchResponse::default().with_topics(topics))
    }
}
