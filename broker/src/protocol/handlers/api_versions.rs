//! ApiVersions (key 18): the versions of every API, built from the dispatch
//! table, and from v3 the features this broker supports and the levels the
//! cluster finalized (KIP-584), which is where clients read `transaction.version`.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::{ApiVersion, FinalizedFeatureKey, SupportedFeatureKey};
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::VersionRange;

use super::str_bytes;
use crate::controller::features::FEATURES;
use crate::protocol::{encode_response, Handler, ProtocolError, RequestContext, API_TABLE};

pub struct ApiVersions;

impl Handler for ApiVersions {
    type Request = ApiVersionsRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 3 };

    fn exempt_from_request_quota(_: &ApiVersionsRequest) -> bool {
        true
    }

    async fn handle(ctx: RequestContext, _: ApiVersionsRequest) -> Option<ApiVersionsResponse> {
        let resp = response(ResponseError::try_from_code(0));
        if ctx.api_version() < 3 {
            return Some(resp);
        }
        let (epoch, finalized) = ctx.metadata().with_image(|img| {
            let levels: Vec<FinalizedFeatureKey> = FEATURES
                .iter()
                .map(|f| (f.name, img.feature_level(f.name)))
                // Kafka lists a feature at level 0 as not finalized.
                .filter(|(_, level)| *level > 0)
                .map(|(name, level)| {
                    FinalizedFeatureKey::default()
                        .with_name(str_bytes(name))
                        .with_min_version_level(level)
                        .with_max_version_level(level)
                })
                .collect();
            (img.features_epoch, levels)
        });
        let supported = FEATURES
            .iter()
            .map(|f| {
                SupportedFeatureKey::default()
                    .with_name(str_bytes(f.name))
                    .with_min_version(f.min)
                    .with_max_version(f.max)
            })
            .collect();
        Some(
            resp.with_supported_features(supported)
                .with_finalized_features_epoch(epoch)
                .with_finalized_features(finalized),
        )
    }
}

fn response(error: Option<ResponseError>) -> ApiVersionsResponse {
    let api_keys = API_TABLE
        .iter()
        .map(|e| {
            ApiVersion::default()
                .with_api_key(e.key as i16)
                .with_min_version(e.advertised.min)
                .with_max_version(e.advertised.max)
        })
        .collect();
    ApiVersionsResponse::default()
        .with_error_code(error.map_or(0, |e| e.code()))
        .with_api_keys(api_keys)
}

/// KIP-511: a client that asks with a version we do not know gets UNSUPPORTED_VERSION
/// and our key list, encoded as v0 so that it can read them and retry with one we do.
pub fn unsupported_version_response(correlation_id: i32) -> Result<Bytes, ProtocolError> {
    encode_response(correlation_id, 0, &response(Some(ResponseError::UnsupportedVersion)))
}
