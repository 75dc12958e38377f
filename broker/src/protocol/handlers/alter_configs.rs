//! AlterConfigs (key 33): replace a topic's config overrides.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use kafka_protocol::protocol::VersionRange;

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::{config_resource_denied, str_bytes};
use crate::cluster::AdminError;
use crate::protocol::handler::{Handler, Operation, RequestContext};

pub struct AlterConfigs;

impl Handler for AlterConfigs {
    type Request = AlterConfigsRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 2 };

    async fn handle(ctx: RequestContext, req: AlterConfigsRequest) -> Option<AlterConfigsResponse> {
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
                RESOURCE_TOPIC | RESOURCE_BROKER => {
                    let mut overrides = BTreeMap::new();
                    let mut null = None;
                    for c in res.configs {
                        match c.value {
                            Some(v) => {
                                overrides.insert(c.name.to_string(), v.to_string());
                            }
                            None => null = Some(c.name.to_string()),
                        }
                    }
                    match null {
                        Some(k) => Err(AdminError::new(
                            ResponseError::InvalidConfig,
                            format!("Null value not supported for config '{k}'"),
                        )),
                        None if res.resource_type == RESOURCE_TOPIC => {
                            ctx.metadata()
                                .set_topic_configs(&name, overrides, req.validate_only)
                                .await
                        }
                        // AlterConfigs replaces a broker's whole set of dynamic configs.
                        None => {
                            ctx.metadata()
                                .set_broker_configs(&name, overrides, req.validate_only)
                                .await
                        }
                    }
                }
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
        Some(AlterConfigsResponse::default().with_responses(responses))
    }
}
