//! CreatePartitions (key 37): raise a topic's partition count.

use std::collections::HashMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::VersionRange;

use super::{str_bytes, too_many_partitions, MAX_PARTITIONS_PER_REQUEST};
use crate::protocol::handler::{Handler, Operation, RequestContext, ResourceType};

pub struct CreatePartitions;

impl Handler for CreatePartitions {
    type Request = CreatePartitionsRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 3 };

    async fn handle(ctx: RequestContext, req: CreatePartitionsRequest) -> Option<CreatePartitionsResponse> {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for t in &req.topics {
            *counts.entry(t.name.0.to_string()).or_default() += 1;
        }
        let total: i64 = req
            .topics
            .iter()
            .filter_map(|t| {
                let current = ctx.replicas().topic(t.name.0.as_str())?.partition_count();
                Some((i64::from(t.count) - current as i64).max(0))
            })
            .sum();
        let authz = ctx.authz();
        let mut results = Vec::with_capacity(req.topics.len());
        for t in req.topics {
            let name = t.name.0.to_string();
            let outcome = if !authz.allows(Operation::Alter, ResourceType::Topic, &name) {
                Err((
                    ResponseError::TopicAuthorizationFailed,
                    "Authorization failed.".to_string(),
                ))
            } else if total > MAX_PARTITIONS_PER_REQUEST {
                let e = too_many_partitions(total);
                Err((e.code, e.message))
            } else if counts[&name] > 1 {
                Err((
                    ResponseError::InvalidRequest,
                    format!("Duplicate topic in request: {name}"),
                ))
            } else {
                let assignments = t.assignments.map(|a| {
                    a.into_iter()
                        .map(|x| x.broker_ids.into_iter().map(|b| b.0).collect())
                        .collect()
                });
                ctx.metadata()
                    .create_partitions(&name, t.count, assignments, req.validate_only)
                    .await
                    .map_err(|e| (e.code, e.message))
            };
            let mut r = CreatePartitionsTopicResult::default().with_name(t.name);
            if let Err((code, message)) = outcome {
                r = r
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(message)));
            }
            results.push(r);
        }
        Some(CreatePartitionsResponse::default().with_results(results))
    }
}
