//! ApiVersions (key 18): the versions of every API, built from the dispatch table.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::VersionRange;

use crate::protocol::{encode_response, Handler, ProtocolError, RequestContext, API_TABLE};

pub struct ApiVersions;

impl Handler for ApiVersions {
    type Request = ApiVersionsRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 3 };

    fn exempt_from_request_quota(_: &ApiVersionsRequest) -> bool {
        true
    }

    async fn handle(_ctx: RequestContext, _: ApiVersionsRequest) -> Option<ApiVersionsResponse> {
        Some(response(ResponseError::try_from_code(0)))
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
