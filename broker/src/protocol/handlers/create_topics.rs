//! CreateTopics (key 19): partitions, replication factor, explicit assignments, configs, validate_only.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::VersionRange;

use super::describe_configs::describe_topic_configs;
use super::{str_bytes, too_many_partitions, MAX_PARTITIONS_PER_REQUEST};
use crate::cluster::{AdminError, NewTopic};
use crate::protocol::handler::{Handler, Operation, RequestContext, ResourceType};

pub struct CreateTopics;

impl Handler for CreateTopics {
    type Request = CreateTopicsRequest;
    const VERSIONS: VersionRange = VersionRange { min: 2, max: 7 };

    async fn handle(ctx: RequestContext, req: CreateTopicsRequest) -> Option<CreateTopicsResponse> {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for t in &req.topics {
            *counts.entry(t.name.0.to_string()).or_default() += 1;
        }
        let total: i64 = req
            .topics
            .iter()
            .map(|t| match (t.assignments.len(), t.num_partitions) {
                (0, -1) => i64::from(ctx.config().num_partitions()),
                (0, n) => i64::from(n.max(0)),
                (n, _) => n as i64,
            })
            .sum();
        // CREATE on the cluster, or on each topic; the configs in the answer
        // need DESCRIBE_CONFIGS on the topic.
        let authz = ctx.authz();
        let create_any = authz.allows_cluster(Operation::Create);
        let mut results = Vec::with_capacity(req.topics.len());
        for t in req.topics {
            let name = t.name.0.to_string();
            let mut r = CreatableTopicResult::default()
                .with_name(t.name.clone())
                .with_num_partitions(-1)
                .with_replication_factor(-1);
            let outcome = if !create_any && !authz.allows(Operation::Create, ResourceType::Topic, &name) {
                Err(AdminError::new(
                    ResponseError::TopicAuthorizationFailed,
                    "Authorization failed.",
                ))
            } else if total > MAX_PARTITIONS_PER_REQUEST {
                Err(too_many_partitions(total))
            } else if counts[&name] > 1 {
                Err(AdminError::new(
                    ResponseError::InvalidRequest,
                    format!("Create topics request from client contains duplicate topic name '{name}'."),
                ))
            } else {
                to_new_topic(&ctx, t).and_then(|nt| Ok((nt.clone(), ctx.metadata().validate_new_topic(&nt)?)))
            };
            let outcome = match outcome {
                Ok((nt, ())) if req.validate_only => Ok(nt),
                Ok((nt, ())) => ctx.metadata().create_topic(nt.clone()).await.map(|topic| {
                    r.topic_id = topic.id;
                    nt
                }),
                Err(e) => Err(e),
            };
            match outcome {
                Ok(nt) => {
                    let partitions = if nt.assignments.is_empty() {
                        nt.partitions
                    } else {
                        nt.assignments.len() as i32
                    };
                    let rf = nt.assignments.first().map_or(nt.replication_factor, |a| a.len() as i16);
                    let configs = describe_topic_configs(&ctx, &nt.configs, false, false)
                        .into_iter()
                        .map(|c| {
                            CreatableTopicConfigs::default()
                                .with_name(c.name)
                                .with_value(c.value)
                                .with_read_only(c.read_only)
                                .with_config_source(c.config_source)
                                .with_is_sensitive(false)
                        })
                        .collect();
                    r = r.with_num_partitions(partitions).with_replication_factor(rf);
                    r = if authz.allows(Operation::DescribeConfigs, ResourceType::Topic, &name) {
                        r.with_configs(Some(configs))
                    } else {
                        r.with_topic_config_error_code(ResponseError::TopicAuthorizationFailed.code())
                    };
                }
                Err(e) => {
                    r = r
                        .with_error_code(e.code.code())
                        .with_error_message(Some(str_bytes(e.message)));
                }
            }
            results.push(r);
        }
        Some(CreateTopicsResponse::default().with_topics(results))
    }
}

fn to_new_topic(
    ctx: &RequestContext,
    t: kafka_protocol::messages::create_topics_request::CreatableTopic,
) -> Result<NewTopic, AdminError> {
    let mut configs = BTreeMap::new();
    for c in t.configs {
        let Some(v) = c.value else {
            return Err(AdminError::new(
                ResponseError::InvalidConfig,
                format!("Null value not supported for topic config '{}'", c.name.as_str()),
            ));
        };
        configs.insert(c.name.to_string(), v.to_string());
    }
    let mut assignments: Vec<(i32, Vec<i32>)> = t
        .assignments
        .into_iter()
        .map(|a| (a.partition_index, a.broker_ids.into_iter().map(|b| b.0).collect()))
        .collect();
    if !assignments.is_empty() {
        if t.num_partitions != -1 || t.replication_factor != -1 {
            return Err(AdminError::new(
                ResponseError::InvalidRequest,
                "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.",
            ));
        }
        assignments.sort_by_key(|(p, _)| *p);
        if assignments.iter().enumerate().any(|(i, (p, _))| *p != i as i32) {
            return Err(AdminError::new(
                ResponseError::InvalidReplicaAssignment,
                "Partitions should be a consecutive 0-based integer sequence",
            ));
        }
    }
    Ok(NewTopic {
        name: t.name.0.to_string(),
        partitions: if t.num_partitions == -1 {
            ctx.config().num_partitions()
        } else {
            t.num_partitions
        },
        replication_factor: if t.replication_factor == -1 {
            ctx.config().default_replication_factor()
        } else {
            t.replication_factor
        },
        assignments: assignments.into_iter().map(|(_, a)| a).collect(),
        configs,
    })
}
