//! DescribeLogDirs (key 35): the replicas in this broker's log directory, with
//! their size and how far each lags the committed end. During a reassignment an
//! admin compares a moving replica's size with the leader's to see the bytes
//! still to copy.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse};
use kafka_protocol::protocol::VersionRange;

use super::{str_bytes, topic_name};
use crate::protocol::handler::{Handler, Operation, RequestContext};

pub struct DescribeLogDirs;

impl Handler for DescribeLogDirs {
    type Request = DescribeLogDirsRequest;
    const VERSIONS: VersionRange = VersionRange { min: 1, max: 4 };

    async fn handle(ctx: RequestContext, req: DescribeLogDirsRequest) -> Option<DescribeLogDirsResponse> {
        if !ctx.authz().allows_cluster(Operation::Describe) {
            return Some(
                DescribeLogDirsResponse::default().with_error_code(ResponseError::ClusterAuthorizationFailed.code()),
            );
        }
        let wanted: Option<Vec<(String, Vec<i32>)>> = req
            .topics
            .map(|ts| ts.into_iter().map(|t| (t.topic.0.to_string(), t.partitions)).collect());
        let mut topics = Vec::new();
        for t in ctx.replicas().topics() {
            let only = match &wanted {
                None => None,
                Some(w) => match w.iter().find(|(n, _)| *n == t.name) {
                    Some((_, ps)) => Some(ps.clone()),
                    None => continue,
                },
            };
            let partitions: Vec<DescribeLogDirsPartition> = t
                .all_partitions()
                .iter()
                .filter(|p| !p.is_deleted() && only.as_ref().is_none_or(|o| o.contains(&p.index)))
                .map(|p| {
                    let (size, lag) = p.size_and_lag(ctx.node_id());
                    DescribeLogDirsPartition::default()
                        .with_partition_index(p.index)
                        .with_partition_size(size)
                        .with_offset_lag(lag)
                })
                .collect();
            if !partitions.is_empty() {
                topics.push(
                    DescribeLogDirsTopic::default()
                        .with_name(topic_name(t.name.clone()))
                        .with_partitions(partitions),
                );
            }
        }
        let mut result = DescribeLogDirsResult::default()
            .with_log_dir(str_bytes(ctx.config().log_dir().display().to_string()))
            .with_topics(topics);
        if ctx.api_version() >= 4 {
            result = result.with_total_bytes(-1).with_usable_bytes(-1);
        }
        Some(DescribeLogDirsResponse::default().with_results(vec![result]))
    }
}
