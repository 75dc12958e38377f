//! CreatePartitions (key 37): raise a topic's partition count.

use std::collections::HashMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::VersionRange;

use super::str_bytes;
use crate::cluster::Broker;
use crate::protocol::{Handler, RequestContext};

pub struct CreatePartitions;

impl Handler for CreatePartitions {
    type Request = CreatePartitionsRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 3 };

    async fn handle(
        broker: Arc<Broker>,
        _: RequestContext,
        req: CreatePartitionsRequest,
    ) -> Option<CreatePartitionsResponse> {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for t in &req.topics {
            *counts.entry(t.name.0.to_string()).or_default() += 1;
        }
        let mut results = Vec::with_capacity(req.topics.len());
        for t in req.topics {
            let name = t.name.0.to_string();
            let outcome = if counts[&name] > 1 {
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
                broker
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
