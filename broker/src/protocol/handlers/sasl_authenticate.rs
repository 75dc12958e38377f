//! SaslAuthenticate (key 36): one token of the SASL exchange a SaslHandshake
//! v1 began. A failure is SASL_AUTHENTICATION_FAILED with Kafka's message,
//! sent after `connection.failed.authentication.delay.ms`; then the
//! connection closes. Success sets the session's principal and, with
//! `connections.max.reauth.ms`, its lifetime (KIP-368).

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslAuthenticateResponse};
use kafka_protocol::protocol::VersionRange;

use super::str_bytes;
use crate::cluster::now_ms;
use crate::cluster::parts::Metadata;
use crate::config::BrokerConfig;
use crate::protocol::handler::{Handler, RequestContext, Session};
use crate::security::sasl::{SaslError, Step};

pub struct SaslAuthenticate;

impl Handler for SaslAuthenticate {
    type Request = SaslAuthenticateRequest;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 2 };

    fn exempt_from_request_quota(_: &SaslAuthenticateRequest) -> bool {
        true
    }

    async fn handle(ctx: RequestContext, req: SaslAuthenticateRequest) -> Option<SaslAuthenticateResponse> {
        let resp = SaslAuthenticateResponse::default();
        if !ctx.session.exchanging() {
            ctx.session.close_after_response();
            return Some(
                resp.with_error_code(ResponseError::IllegalSaslState.code())
                    .with_error_message(Some(str_bytes("SaslAuthenticate without a SaslHandshake"))),
            );
        }
        match step(&ctx.metadata(), ctx.config(), &ctx.session, &req.auth_bytes).await {
            Ok((bytes, lifetime_ms)) => Some(
                resp.with_auth_bytes(Bytes::from(bytes))
                    .with_session_lifetime_ms(lifetime_ms),
            ),
            Err(e) => Some(
                resp.with_error_code(ResponseError::SaslAuthenticationFailed.code())
                    .with_error_message(Some(str_bytes(e.to_string()))),
            ),
        }
    }
}

/// One token of the session's exchange: the bytes to send back and the
/// session's lifetime (0: unlimited). A failure is logged without secrets,
/// waits `connection.failed.authentication.delay.ms`, and closes the
/// connection after the answer (SaslHandshake v0's bare tokens too).
pub async fn step(
    metadata: &Metadata<'_>,
    config: &BrokerConfig,
    session: &Session,
    token: &[u8],
) -> Result<(Vec<u8>, i64), SaslError> {
    let lifetime_ms = config.connections_max_reauth_ms();
    let scram = |user: &str, mechanism| metadata.with_image(|img| img.scram.get(user)?.get(&mechanism).cloned());
    match session.step(token, scram, now_ms(), lifetime_ms) {
        Ok(Step::Continue(bytes)) => Ok((bytes, 0)),
        Ok(Step::Done { response, .. }) => {
            tracing::debug!(peer = %session.peer, principal = %session.principal(), "authenticated");
            Ok((response, lifetime_ms))
        }
        Err(e) => {
            tracing::info!(peer = %session.peer, listener = %session.listener, "failed authentication: {e}");
            session.close_after_response();
            tokio::time::sleep(Duration::from_millis(
                config.connection_failed_authentication_delay_ms(),
            ))
            .await;
            Err(e)
        }
    }
}
