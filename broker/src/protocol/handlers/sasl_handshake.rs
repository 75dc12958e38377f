//! SaslHandshake (key 17): picks the mechanism of a SASL exchange. v0 is
//! followed by bare tokens, v1 by SaslAuthenticate requests.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SaslHandshakeRequest, SaslHandshakeResponse};
use kafka_protocol::protocol::VersionRange;

use super::str_bytes;
use crate::protocol::handler::{Handler, RequestContext};
use crate::protocol::session::HandshakeRefusal;

pub struct SaslHandshake;

impl Handler for SaslHandshake {
    type Request = SaslHandshakeRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 1 };

    fn exempt_from_request_quota(_: &SaslHandshakeRequest) -> bool {
        true
    }

    async fn handle(ctx: RequestContext, req: SaslHandshakeRequest) -> Option<SaslHandshakeResponse> {
        let session = &ctx.session;
        let mechanisms = session.sasl.as_ref().map(|s| s.mechanisms.clone()).unwrap_or_default();
        let error = match session.begin_exchange(req.mechanism.as_str(), ctx.api_version() == 0) {
            Ok(()) => None,
            Err(refusal) => {
                tracing::info!(peer = %session.peer, mechanism = %req.mechanism.as_str(), "SASL handshake refused: {refusal:?}");
                // As Kafka: the answer is sent, then the connection closes.
                session.close_after_response();
                Some(match refusal {
                    HandshakeRefusal::IllegalState => ResponseError::IllegalSaslState,
                    HandshakeRefusal::UnsupportedMechanism => ResponseError::UnsupportedSaslMechanism,
                })
            }
        };
        Some(
            SaslHandshakeResponse::default()
                .with_error_code(error.map_or(0, |e| e.code()))
                .with_mechanisms(mechanisms.into_iter().map(str_bytes).collect()),
        )
    }
}
