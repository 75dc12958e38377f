//! DescribeConfigs (key 32): every topic and broker config with value, default and source.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::VersionRange;

use super::str_bytes;
use crate::cluster::Broker;
use crate::config::{topic_synonym, BROKER_CONFIGS, TOPIC_CONFIGS};
use crate::protocol::{Handler, RequestContext};

pub struct DescribeConfigs;

/// Kafka's resource types.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

/// Kafka's config sources.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;

impl Handler for DescribeConfigs {
    type Request = DescribeConfigsRequest;
    const VERSIONS: VersionRange = VersionRange { min: 1, max: 4 };

    async fn handle(
        broker: Arc<Broker>,
        _: RequestContext,
        req: DescribeConfigsRequest,
    ) -> Option<DescribeConfigsResponse> {
        let mut results = Vec::with_capacity(req.resources.len());
        for res in req.resources {
            let name = res.resource_name.to_string();
            let r = DescribeConfigsResult::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let configs = match res.resource_type {
                RESOURCE_TOPIC => match broker.topic(&name) {
                    Some(t) => Ok(describe_topic_configs(
                        &broker,
                        &t.overrides(),
                        req.include_synonyms,
                        req.include_documentation,
                    )),
                    None => Err((
                        ResponseError::UnknownTopicOrPartition,
                        format!("Topic '{name}' does not exist."),
                    )),
                },
                RESOURCE_BROKER if name.is_empty() || name == broker.node_id.to_string() => Ok(
                    describe_broker_configs(&broker, req.include_synonyms, req.include_documentation),
                ),
                RESOURCE_BROKER => Err((
                    ResponseError::InvalidRequest,
                    format!("Unexpected broker id, expected {} but received {name}", broker.node_id),
                )),
                other => Err((
                    ResponseError::InvalidRequest,
                    format!("Unsupported resource type {other}"),
                )),
            };
            results.push(match configs {
                Ok(mut configs) => {
                    if let Some(keys) = &res.configuration_keys {
                        configs.retain(|c| keys.iter().any(|k| k.as_str() == c.name.as_str()));
                    }
                    r.with_configs(configs)
                }
                Err((code, message)) => r
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(message))),
            });
        }
        Some(DescribeConfigsResponse::default().with_results(results))
    }
}

/// A topic's effective configs: its overrides over the broker's settings over Kafka's defaults.
pub fn describe_topic_configs(
    broker: &Broker,
    overrides: &BTreeMap<String, String>,
    include_synonyms: bool,
    include_docs: bool,
) -> Vec<DescribeConfigsResourceResult> {
    TOPIC_CONFIGS
        .iter()
        .map(|def| {
            let broker_key = topic_synonym(def.name);
            let broker_set = broker_key.is_some_and(|k| broker.config.is_set(k));
            let (value, source) = match overrides.get(def.name) {
                Some(v) => (Some(v.clone()), DYNAMIC_TOPIC_CONFIG),
                None if broker_set => (broker.config.topic_default(def.name), STATIC_BROKER_CONFIG),
                None => (
                    broker
                        .config
                        .topic_default(def.name)
                        .or(def.default.map(str::to_string)),
                    DEFAULT_CONFIG,
                ),
            };
            let mut synonyms = Vec::new();
            if include_synonyms {
                if let Some(v) = overrides.get(def.name) {
                    synonyms.push(synonym(def.name, Some(v.clone()), DYNAMIC_TOPIC_CONFIG));
                }
                if let (Some(k), true) = (broker_key, broker_set) {
                    synonyms.push(synonym(k, broker.config.get(k), STATIC_BROKER_CONFIG));
                }
                if let Some(k) = broker_key {
                    let d = BROKER_CONFIGS
                        .iter()
                        .find(|d| d.name == k)
                        .and_then(|d| d.default)
                        .or(def.default);
                    synonyms.push(synonym(k, d.map(str::to_string), DEFAULT_CONFIG));
                }
            }
            DescribeConfigsResourceResult::default()
                .with_name(str_bytes(def.name))
                .with_value(value.map(str_bytes))
                .with_read_only(false)
                .with_config_source(source)
                .with_synonyms(synonyms)
                .with_config_type(def.kind.code())
                .with_documentation(include_docs.then(|| str_bytes(def.doc)))
        })
        .collect()
}

fn describe_broker_configs(
    broker: &Broker,
    include_synonyms: bool,
    include_docs: bool,
) -> Vec<DescribeConfigsResourceResult> {
    broker
        .config
        .describe()
        .into_iter()
        .map(|(def, value, set)| {
            let source = if set { STATIC_BROKER_CONFIG } else { DEFAULT_CONFIG };
            let mut synonyms = Vec::new();
            if include_synonyms {
                if set {
                    synonyms.push(synonym(def.name, value.clone(), STATIC_BROKER_CONFIG));
                }
                synonyms.push(synonym(def.name, def.default.map(str::to_string), DEFAULT_CONFIG));
            }
            DescribeConfigsResourceResult::default()
                .with_name(str_bytes(def.name))
                .with_value(value.map(str_bytes))
                .with_read_only(true)
                .with_config_source(source)
                .with_synonyms(synonyms)
                .with_config_type(def.kind.code())
                .with_documentation(include_docs.then(|| str_bytes(def.doc)))
        })
        .collect()
}

fn synonym(name: &str, value: Option<String>, source: i8) -> DescribeConfigsSynonym {
    DescribeConfigsSynonym::default()
        .with_name(str_bytes(name))
        .with_value(value.map(str_bytes))
        .with_source(source)
}
