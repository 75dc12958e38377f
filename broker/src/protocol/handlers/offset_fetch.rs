//! OffsetFetch (key 9): committed offsets of one group (v1-7) or several (v8+).

use std::collections::BTreeMap;

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse};
use kafka_protocol::protocol::VersionRange;

use super::{str_bytes, topic_name};
use crate::group::GroupOffsets;
use crate::protocol::handler::{Handler, RequestContext};

pub struct OffsetFetch;

/// One partition's answer: (partition, offset, leader epoch, metadata).
type Row = (i32, i64, i32, String);

/// The offsets asked for (`None`: every committed one), by topic.
fn lookup(committed: &GroupOffsets, wanted: Option<Vec<(String, Vec<i32>)>>) -> BTreeMap<String, Vec<Row>> {
    let mut out: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    match wanted {
        None => {
            for ((t, p), c) in committed {
                out.entry(t.clone())
                    .or_default()
                    .push((*p, c.offset, c.leader_epoch, c.metadata.clone()));
            }
        }
        Some(topics) => {
            for (t, parts) in topics {
                let rows = out.entry(t.clone()).or_default();
                for p in parts {
                    rows.push(match committed.get(&(t.clone(), p)) {
                        Some(c) => (p, c.offset, c.leader_epoch, c.metadata.clone()),
                        None => (p, -1, -1, String::new()),
                    });
                }
            }
        }
    }
    out
}

impl Handler for OffsetFetch {
    type Request = OffsetFetchRequest;
    const VERSIONS: VersionRange = VersionRange { min: 1, max: 9 };

    async fn handle(ctx: RequestContext, req: OffsetFetchRequest) -> Option<OffsetFetchResponse> {
        let v = ctx.api_version();
        let epoch = |e: i32| if v >= 5 { e } else { -1 };
        if v >= 8 {
            let groups = req
                .groups
                .into_iter()
                .map(|g| {
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
                    let topics = lookup(&committed, wanted)
                        .into_iter()
                        .map(|(t, rows)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(topic_name(t))
                                .with_partitions(
                                    rows.into_iter()
                                        .map(|(p, o, e, m)| {
                                            OffsetFetchResponsePartitions::default()
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
        let topics = lookup(&committed, wanted)
            .into_iter()
            .map(|(t, rows)| {
                OffsetFetchResponseTopic::default()
                    .with_name(topic_name(t))
                    .with_partitions(
                        rows.into_iter()
                            .map(|(p, o, e, m)| {
                                OffsetFetchResponsePartition::default()
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
