//! DeleteTopics (key 20): by name, or by topic id from v6.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};
use kafka_protocol::protocol::VersionRange;
use uuid::Uuid;

use super::{str_bytes, topic_name};
use crate::protocol::handler::{Handler, Operation, RequestContext, ResourceType};

pub struct DeleteTopics;

impl Handler for DeleteTopics {
    type Request = DeleteTopicsRequest;
    const VERSIONS: VersionRange = VersionRange { min: 1, max: 6 };

    async fn handle(ctx: RequestContext, req: DeleteTopicsRequest) -> Option<DeleteTopicsResponse> {
        let mut wanted: Vec<(Option<String>, Uuid)> = req
            .topic_names
            .iter()
            .map(|n| (Some(n.0.to_string()), Uuid::nil()))
            .collect();
        wanted.extend(
            req.topics
                .iter()
                .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id)),
        );
        // DELETE on the topic; a topic the principal may neither DESCRIBE nor
        // DELETE is TOPIC_AUTHORIZATION_FAILED whether or not it exists.
        let authz = ctx.authz();
        let mut responses = Vec::with_capacity(wanted.len());
        for (name, id) in wanted {
            let topic = match &name {
                Some(n) => ctx.replicas().topic(n),
                None => ctx.replicas().topic_by_id(id),
            };
            let mut r = DeletableTopicResult::default()
                .with_name(name.clone().map(topic_name))
                .with_topic_id(id);
            let checked = topic.as_ref().map(|t| t.name.clone()).or_else(|| name.clone());
            if checked.is_some_and(|n| !authz.allows(Operation::Delete, ResourceType::Topic, &n)) {
                responses.push(
                    r.with_error_code(ResponseError::TopicAuthorizationFailed.code())
                        .with_error_message(Some(str_bytes("Authorization failed."))),
                );
                continue;
            }
            match topic {
                None => {
                    let code = if name.is_none() {
                        ResponseError::UnknownTopicId
                    } else {
                        ResponseError::UnknownTopicOrPartition
                    };
                    r = r
                        .with_error_code(code.code())
                        .with_error_message(Some(str_bytes("This server does not host this topic.")));
                }
                Some(t) => {
                    r = r.with_name(Some(topic_name(t.name.clone()))).with_topic_id(t.id);
                    if let Err(e) = ctx.metadata().delete_topic(&t.name).await {
                        r = r
                            .with_error_code(e.code.code())
                            .with_error_message(Some(str_bytes(e.message)));
                    }
                }
            }
            responses.push(r);
        }
        Some(DeleteTopicsResponse::default().with_responses(responses))
    }
}
