//! IncrementalAlterConfigs (key 44): SET, DELETE, APPEND, SUBTRACT on topic configs;
//! SET and DELETE on broker and group configs.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use kafka_protocol::protocol::VersionRange;

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_GROUP, RESOURCE_TOPIC};
use super::{config_resource_denied, str_bytes};
use crate::cluster::AdminError;
use crate::config::{topic_config_def, ConfigType};
use crate::protocol::handler::{Handler, Operation, RequestContext};

pub struct IncrementalAlterConfigs;

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

impl Handler for IncrementalAlterConfigs {
    type Request = IncrementalAlterConfigsRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 1 };

    async fn handle(
        ctx: RequestContext,
        req: IncrementalAlterConfigsRequest,
    ) -> Option<IncrementalAlterConfigsResponse> {
        let mut responses = Vec::with_capacity(req.resources.len());
        let authz = ctx.authz();
        for res in req.resources {
            let name = res.resource_name.to_string();
            let denied = config_resource_denied(&authz, Operation::AlterConfigs, res.resource_type, &name);
            let outcome = match res.resource_type {
                _ if denied.is_some() => {
                    let (code, message) = denied.unwrap_or((ResponseError::UnknownServerError, String::new()));
                    Err(AdminError::new(code, message))
                }
                RESOURCE_TOPIC => match ctx.replicas().topic(&name) {
                    None => Err(AdminError::new(
                        ResponseError::UnknownTopicOrPartition,
                        format!("The topic '{name}' does not exist."),
                    )),
                    Some(topic) => match apply(topic.overrides(), &ctx, ops(&res)) {
                        Ok(overrides) => {
                            ctx.metadata()
                                .set_topic_configs(&name, overrides, req.validate_only)
                                .await
                        }
                        Err(e) => Err(e),
                    },
                },
                RESOURCE_BROKER => match set_or_delete(ctx.metadata().broker_overrides(&name), ops(&res), |k, v| {
                    Ok(crate::config::validate_dynamic_broker_config(k, v)?)
                }) {
                    Ok(configs) => {
                        ctx.metadata()
                            .set_broker_configs(&name, configs, req.validate_only)
                            .await
                    }
                    Err(e) => Err(e),
                },
                RESOURCE_GROUP => match set_or_delete(ctx.metadata().group_overrides(&name), ops(&res), |k, v| {
                    Ok(crate::config::validate_group_config(ctx.config(), k, v)?)
                }) {
                    Ok(configs) => {
                        ctx.metadata()
                            .set_group_configs(&name, configs, req.validate_only)
                            .await
                    }
                    Err(e) => Err(e),
                },
                other => Err(AdminError::new(
                    ResponseError::InvalidRequest,
                    format!("Unsupported resource type {other}"),
                )),
            };
            let mut r = AlterConfigsResourceResponse::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name);
            if let Err(e) = outcome {
                r = r
                    .with_error_code(e.code.code())
                    .with_error_message(Some(str_bytes(e.message)));
            }
            responses.push(r);
        }
        Some(IncrementalAlterConfigsResponse::default().with_responses(responses))
    }
}

/// A resource's operations as (key, operation, value).
fn ops(res: &AlterConfigsResource) -> impl Iterator<Item = (String, i8, Option<String>)> + '_ {
    res.configs.iter().map(|c| {
        (
            c.name.to_string(),
            c.config_operation,
            c.value.as_ref().map(|v| v.to_string()),
        )
    })
}

/// Applies SET and DELETE to a broker's or a group's dynamic configs, each SET
/// value checked by `validate`.
fn set_or_delete(
    mut configs: std::collections::BTreeMap<String, String>,
    ops: impl Iterator<Item = (String, i8, Option<String>)>,
    validate: impl Fn(&str, &str) -> Result<(), AdminError>,
) -> Result<std::collections::BTreeMap<String, String>, AdminError> {
    for (key, op, value) in ops {
        match (op, value) {
            (SET, Some(v)) => {
                validate(&key, &v)?;
                configs.insert(key, v);
            }
            (DELETE, _) => {
                configs.remove(&key);
            }
            _ => {
                return Err(AdminError::new(
                    ResponseError::InvalidConfig,
                    format!("Only SET and DELETE apply to the config {key}"),
                ))
            }
        }
    }
    Ok(configs)
}

/// Applies the operations to a topic's current overrides.
fn apply(
    mut overrides: std::collections::BTreeMap<String, String>,
    ctx: &RequestContext,
    ops: impl Iterator<Item = (String, i8, Option<String>)>,
) -> Result<std::collections::BTreeMap<String, String>, AdminError> {
    let invalid = |m: String| AdminError::new(ResponseError::InvalidConfig, m);
    for (key, op, value) in ops {
        let def = topic_config_def(&key).ok_or_else(|| invalid(format!("Unknown topic config name: {key}")))?;
        match op {
            SET => {
                let v = value.ok_or_else(|| invalid(format!("Null value not supported for {key}")))?;
                overrides.insert(key, v);
            }
            DELETE => {
                overrides.remove(&key);
            }
            APPEND | SUBTRACT => {
                if def.kind != ConfigType::List {
                    return Err(invalid(format!(
                        "Config value append/subtract is not allowed for config key {key}"
                    )));
                }
                let current = overrides
                    .get(&key)
                    .cloned()
                    .or_else(|| ctx.config().topic_default(&key))
                    .unwrap_or_default();
                let mut items: Vec<String> = current
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                for v in value
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                {
                    if op == APPEND && !items.iter().any(|i| i == v) {
                        items.push(v.to_string());
                    } else if op == SUBTRACT {
                        items.retain(|i| i != v);
                    }
                }
                overrides.insert(key, items.join(","));
            }
            other => {
                return Err(AdminError::new(
                    ResponseError::InvalidRequest,
                    format!("Unknown config operation {other}"),
                ))
            }
        }
    }
    Ok(overrides)
}
