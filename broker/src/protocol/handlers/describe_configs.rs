//! DescribeConfigs (key 32): every topic, broker and group config with value, default and source.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::VersionRange;

use super::{config_resource_denied, str_bytes};
use crate::config::{
    is_kafka_only_broker_key, listener_scoped, topic_synonym, ConfigType, BROKER_CONFIGS, DYNAMIC_BROKER_CONFIGS,
    DYNAMIC_LISTENER_TLS_CONFIGS, GROUP_CONFIGS, TOPIC_CONFIGS,
};
use crate::protocol::handler::{Handler, Operation, RequestContext};

pub struct DescribeConfigs;

/// Kafka's resource types.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
pub const RESOURCE_GROUP: i8 = 32;

/// Kafka's config sources.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const DYNAMIC_BROKER_CONFIG: i8 = 2;
const DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;
const DYNAMIC_GROUP_CONFIG: i8 = 8;

impl Handler for DescribeConfigs {
    type Request = DescribeConfigsRequest;
    const VERSIONS: VersionRange = VersionRange { min: 1, max: 4 };

    async fn handle(ctx: RequestContext, req: DescribeConfigsRequest) -> Option<DescribeConfigsResponse> {
        let authz = ctx.authz();
        let mut results = Vec::with_capacity(req.resources.len());
        for res in req.resources {
            let name = res.resource_name.to_string();
            let r = DescribeConfigsResult::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let denied = config_resource_denied(&authz, Operation::DescribeConfigs, res.resource_type, &name);
            let configs = match res.resource_type {
                _ if denied.is_some() => Err(denied.unwrap_or((ResponseError::UnknownServerError, String::new()))),
                RESOURCE_TOPIC => match ctx.replicas().topic(&name) {
                    Some(t) => Ok(describe_topic_configs(
                        &ctx,
                        &t.overrides(),
                        req.include_synonyms,
                        req.include_documentation,
                    )),
                    None => Err((
                        ResponseError::UnknownTopicOrPartition,
                        format!("Topic '{name}' does not exist."),
                    )),
                },
                RESOURCE_BROKER if name.is_empty() => Ok(describe_cluster_defaults(&ctx, req.include_documentation)),
                RESOURCE_BROKER if name == ctx.node_id().to_string() => Ok(describe_broker_configs(
                    &ctx,
                    req.include_synonyms,
                    req.include_documentation,
                )),
                RESOURCE_BROKER => Err((
                    ResponseError::InvalidRequest,
                    format!("Unexpected broker id, expected {} but received {name}", ctx.node_id()),
                )),
                RESOURCE_GROUP if name.is_empty() => Err((
                    ResponseError::InvalidRequest,
                    "Group name must not be empty".to_string(),
                )),
                // As in Kafka, a group that does not exist (yet) has the defaults.
                RESOURCE_GROUP => Ok(describe_group_configs(
                    &ctx,
                    &name,
                    req.include_synonyms,
                    req.include_documentation,
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
    ctx: &RequestContext,
    overrides: &BTreeMap<String, String>,
    include_synonyms: bool,
    include_docs: bool,
) -> Vec<DescribeConfigsResourceResult> {
    TOPIC_CONFIGS
        .iter()
        .map(|def| {
            let broker_key = topic_synonym(def.name);
            let broker_set = broker_key.is_some_and(|k| ctx.config().is_set(k));
            let (value, source) = match overrides.get(def.name) {
                Some(v) => (Some(v.clone()), DYNAMIC_TOPIC_CONFIG),
                None if broker_set => (ctx.config().topic_default(def.name), STATIC_BROKER_CONFIG),
                None => (
                    ctx.config().topic_default(def.name).or(def.default.map(str::to_string)),
                    DEFAULT_CONFIG,
                ),
            };
            let mut synonyms = Vec::new();
            if include_synonyms {
                if let Some(v) = overrides.get(def.name) {
                    synonyms.push(synonym(def.name, Some(v.clone()), DYNAMIC_TOPIC_CONFIG));
                }
                if let (Some(k), true) = (broker_key, broker_set) {
                    synonyms.push(synonym(k, ctx.config().get(k), STATIC_BROKER_CONFIG));
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
            entry(def.name, value, source, def.kind, include_docs.then_some(def.doc)).with_synonyms(synonyms)
        })
        .collect()
}

/// This broker's configs. A value comes from, in order: a dynamic config of
/// this broker, the dynamic cluster default, the static config, the default.
fn describe_broker_configs(
    ctx: &RequestContext,
    include_synonyms: bool,
    include_docs: bool,
) -> Vec<DescribeConfigsResourceResult> {
    let id = ctx.node_id().to_string();
    let (own, cluster) = ctx.metadata().with_image(|img| {
        let get = |r: &str| img.broker_configs.get(r).cloned().unwrap_or_default();
        (get(&id), get(""))
    });
    ctx.config()
        .describe()
        .into_iter()
        .map(|(def, value, set)| {
            let mut layers: Vec<(Option<String>, i8)> = Vec::new();
            if let Some(v) = own.get(def.name) {
                layers.push((Some(v.clone()), DYNAMIC_BROKER_CONFIG));
            }
            if let Some(v) = cluster.get(def.name) {
                layers.push((Some(v.clone()), DYNAMIC_DEFAULT_BROKER_CONFIG));
            }
            if set {
                layers.push((value.clone(), STATIC_BROKER_CONFIG));
            }
            layers.push((def.default.map(str::to_string), DEFAULT_CONFIG));
            let (value, source) = layers[0].clone();
            let synonyms = if include_synonyms {
                layers.into_iter().map(|(v, src)| synonym(def.name, v, src)).collect()
            } else {
                Vec::new()
            };
            entry(def.name, value, source, def.kind, include_docs.then_some(def.doc))
                .with_read_only(
                    !DYNAMIC_BROKER_CONFIGS.contains(&def.name) && !DYNAMIC_LISTENER_TLS_CONFIGS.contains(&def.name),
                )
                .with_synonyms(synonyms)
        })
        .chain(listener_tls(&own, DYNAMIC_BROKER_CONFIG, include_docs))
        .chain(
            listener_tls(&cluster, DYNAMIC_DEFAULT_BROKER_CONFIG, include_docs)
                .filter(|c| !own.contains_key(c.name.as_str())),
        )
        .chain(kafka_only(&own, DYNAMIC_BROKER_CONFIG, include_docs))
        .chain(
            kafka_only(&cluster, DYNAMIC_DEFAULT_BROKER_CONFIG, include_docs)
                .filter(|c| !own.contains_key(c.name.as_str())),
        )
        .collect()
}

/// The listener-prefixed TLS stores among a resource's dynamic configs
/// (`listener.name.<l>.ssl.keystore.location`, ...), described as their base key.
fn listener_tls<'a>(
    configs: &'a BTreeMap<String, String>,
    source: i8,
    include_docs: bool,
) -> impl Iterator<Item = DescribeConfigsResourceResult> + 'a {
    configs.iter().filter_map(move |(k, v)| {
        let (_, base) = listener_scoped(k)?;
        let def = BROKER_CONFIGS
            .iter()
            .find(|d| d.name == base && DYNAMIC_LISTENER_TLS_CONFIGS.contains(&d.name))?;
        Some(entry(
            k.clone(),
            Some(v.clone()),
            source,
            def.kind,
            include_docs.then_some(def.doc),
        ))
    })
}

const NOT_ACTED_ON: &str = "A Kafka broker setting that Skein accepts and stores but does not act on.";

/// The Kafka keys Skein does not act on among a resource's dynamic configs.
fn kafka_only<'a>(
    configs: &'a BTreeMap<String, String>,
    source: i8,
    include_docs: bool,
) -> impl Iterator<Item = DescribeConfigsResourceResult> + 'a {
    configs
        .iter()
        .filter(|(k, _)| is_kafka_only_broker_key(k))
        .map(move |(k, v)| {
            entry(
                k.clone(),
                Some(v.clone()),
                source,
                ConfigType::String,
                include_docs.then_some(NOT_ACTED_ON),
            )
        })
}

/// The dynamic cluster-wide defaults (broker resource ""), as Kafka lists them.
fn describe_cluster_defaults(ctx: &RequestContext, include_docs: bool) -> Vec<DescribeConfigsResourceResult> {
    let defaults = ctx
        .metadata()
        .with_image(|img| img.broker_configs.get("").cloned().unwrap_or_default());
    defaults
        .iter()
        .filter_map(|(k, v)| {
            let def = BROKER_CONFIGS.iter().find(|d| d.name == k)?;
            Some(entry(
                def.name,
                Some(v.clone()),
                DYNAMIC_DEFAULT_BROKER_CONFIG,
                def.kind,
                include_docs.then_some(def.doc),
            ))
        })
        .chain(listener_tls(&defaults, DYNAMIC_DEFAULT_BROKER_CONFIG, include_docs))
        .chain(kafka_only(&defaults, DYNAMIC_DEFAULT_BROKER_CONFIG, include_docs))
        .collect()
}

/// A group's configs: its overrides over the broker's `group.consumer.*` defaults.
fn describe_group_configs(
    ctx: &RequestContext,
    group: &str,
    include_synonyms: bool,
    include_docs: bool,
) -> Vec<DescribeConfigsResourceResult> {
    let overrides = ctx.metadata().group_overrides(group);
    GROUP_CONFIGS
        .iter()
        .map(|def| {
            let own = overrides.get(def.name);
            let broker_value = ctx.config().get(def.default_key);
            let broker_source = if ctx.config().is_set(def.default_key) {
                STATIC_BROKER_CONFIG
            } else {
                DEFAULT_CONFIG
            };
            let (value, source) = match own {
                Some(v) => (Some(v.clone()), DYNAMIC_GROUP_CONFIG),
                None => (broker_value.clone(), DEFAULT_CONFIG),
            };
            let synonyms = if include_synonyms {
                own.map(|v| synonym(def.name, Some(v.clone()), DYNAMIC_GROUP_CONFIG))
                    .into_iter()
                    .chain([synonym(def.default_key, broker_value, broker_source)])
                    .collect()
            } else {
                Vec::new()
            };
            entry(def.name, value, source, def.kind, include_docs.then_some(def.doc)).with_synonyms(synonyms)
        })
        .collect()
}

/// One writable config of a DescribeConfigs answer, without synonyms.
fn entry(
    name: impl Into<String>,
    value: Option<String>,
    source: i8,
    kind: ConfigType,
    doc: Option<&'static str>,
) -> DescribeConfigsResourceResult {
    let name = name.into();
    // Secrets are described, never shown (Kafka's PASSWORD type).
    let sensitive = kind == ConfigType::Password || crate::config::is_sensitive(&name);
    let value = if sensitive { None } else { value };
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(name))
        .with_value(value.map(str_bytes))
        .with_is_sensitive(sensitive)
        .with_read_only(false)
        .with_config_source(source)
        .with_config_type(kind.code())
        .with_documentation(doc.map(str_bytes))
}

fn synonym(name: &str, value: Option<String>, source: i8) -> DescribeConfigsSynonym {
    let value = value.filter(|_| !crate::config::is_sensitive(name));
    DescribeConfigsSynonym::default()
        .with_name(str_bytes(name))
        .with_value(value.map(str_bytes))
        .with_source(source)
}
