//! UpdateFeatures (key 57): `kafka-features.sh upgrade|downgrade` sets a
//! finalized feature's level for the whole cluster (`controller/features.rs`).
//! All the updates of a request are applied, or none. Needs ALTER on the cluster.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::update_features_response::UpdatableFeatureResult;
use kafka_protocol::messages::{UpdateFeaturesRequest, UpdateFeaturesResponse};
use kafka_protocol::protocol::VersionRange;

use super::str_bytes;
use crate::controller::features::{SAFE_DOWNGRADE, UPGRADE};
use crate::protocol::handler::{Handler, Operation, RequestContext};

pub struct UpdateFeatures;

impl Handler for UpdateFeatures {
    type Request = UpdateFeaturesRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 2 };

    async fn handle(ctx: RequestContext, req: UpdateFeaturesRequest) -> Option<UpdateFeaturesResponse> {
        let version = ctx.api_version();
        let updates: Vec<(String, i16, i8)> = req
            .feature_updates
            .iter()
            .map(|u| {
                // v0 says only whether a downgrade is allowed.
                let upgrade_type = if version == 0 {
                    if u.allow_downgrade {
                        SAFE_DOWNGRADE
                    } else {
                        UPGRADE
                    }
                } else {
                    u.upgrade_type
                };
                (u.feature.to_string(), u.max_version_level, upgrade_type)
            })
            .collect();
        let outcome = if !ctx.authz().allows_cluster(Operation::Alter) {
            Err((
                ResponseError::ClusterAuthorizationFailed,
                "Cluster authorization failed.".to_string(),
            ))
        } else if updates
            .iter()
            .enumerate()
            .any(|(i, u)| updates[..i].iter().any(|v| v.0 == u.0))
        {
            Err((ResponseError::InvalidRequest, "A feature is named twice.".to_string()))
        } else {
            ctx.metadata()
                .update_features(&updates, req.validate_only)
                .await
                .map_err(|e| (e.code, e.message))
        };
        let (code, message) = match &outcome {
            Ok(()) => (0, None),
            Err((e, why)) => {
                tracing::debug!("UpdateFeatures refused: {e:?} {why}");
                (e.code(), Some(str_bytes(why.clone())))
            }
        };
        let mut resp = UpdateFeaturesResponse::default()
            .with_error_code(code)
            .with_error_message(message.clone());
        // v2 answers with the top-level error alone.
        if version < 2 {
            resp.results = updates
                .iter()
                .map(|(name, _, _)| {
                    UpdatableFeatureResult::default()
                        .with_feature(str_bytes(name.clone()))
                        .with_error_code(code)
                        .with_error_message(message.clone())
                })
                .collect();
        }
        Some(resp)
    }
}
