//! A connection's session: what every request on one connection shares — the
//! listener it came in on, that listener's security protocol, the client's
//! address and, once it has authenticated, its principal. The connection loop
//! (`server.rs`) makes one per accepted connection; handlers read it through
//! their request context. TLS transports and SASL state join it with the
//! security work; until then every listener is PLAINTEXT and every client
//! `User:ANONYMOUS`, as in Kafka without authentication.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::security::sasl::{Exchange, SaslError, SaslSettings, Step};
use crate::security::scram::{Mechanism, ScramCredential};

/// Kafka's security protocols (`listener.security.protocol.map` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    /// Parses Kafka's name of a protocol (case as Kafka writes it, upper).
    pub fn from_name(name: &str) -> Option<SecurityProtocol> {
        match name {
            "PLAINTEXT" => Some(SecurityProtocol::Plaintext),
            "SSL" => Some(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Some(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Some(SecurityProtocol::SaslSsl),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }
}

/// Who a client is, as Kafka's `KafkaPrincipal` writes it: `User:alice`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KafkaPrincipal {
    pub principal_type: String,
    pub name: String,
}

impl KafkaPrincipal {
    /// The principal of a connection that has not authenticated.
    pub fn anonymous() -> KafkaPrincipal {
        KafkaPrincipal::user("ANONYMOUS")
    }

    pub fn user(name: &str) -> KafkaPrincipal {
        KafkaPrincipal {
            principal_type: "User".into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for KafkaPrincipal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.principal_type, self.name)
    }
}

/// One connection's session.
#[derive(Debug)]
pub struct Session {
    /// The client's address.
    pub peer: SocketAddr,
    /// The name of the listener the client connected to: its brokers' addresses
    /// are that listener's (`advertised.listeners`).
    pub listener: Arc<str>,
    pub security_protocol: SecurityProtocol,
    /// The listener's SASL settings: Some on SASL_PLAINTEXT and SASL_SSL listeners.
    pub sasl: Option<Arc<SaslSettings>>,
    principal: RwLock<KafkaPrincipal>,
    auth: Mutex<Auth>,
    /// Set when the connection must close once the response being made is sent.
    closing: AtomicBool,
    /// Until when the connection reads nothing from the client: a client
    /// quota's throttle (KIP-219 mutes the channel after the response).
    muted_until: Mutex<Option<std::time::Instant>>,
}

/// Where a SASL session stands.
#[derive(Default)]
struct Auth {
    /// A SASL exchange has succeeded on this connection.
    authenticated: bool,
    /// When the session ends (KIP-368, ms since the epoch): the client must
    /// re-authenticate before then.
    expires_ms: Option<i64>,
    /// The exchange a SaslHandshake began, until it ends.
    exchange: Option<Exchange>,
    /// Began by SaslHandshake v0: tokens come as bare length-prefixed frames.
    raw: bool,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("authenticated", &self.authenticated)
            .field("expires_ms", &self.expires_ms)
            .field("exchanging", &self.exchange.is_some())
            .finish()
    }
}

/// Why a SaslHandshake cannot begin an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeRefusal {
    /// Not a SASL listener, or an exchange is under way, or v0 to re-authenticate.
    IllegalState,
    UnsupportedMechanism,
}

impl Session {
    pub fn new(
        peer: SocketAddr,
        listener: Arc<str>,
        security_protocol: SecurityProtocol,
        sasl: Option<Arc<SaslSettings>>,
    ) -> Arc<Session> {
        Arc::new(Session {
            peer,
            listener,
            security_protocol,
            sasl,
            principal: RwLock::new(KafkaPrincipal::anonymous()),
            auth: Mutex::new(Auth::default()),
            closing: AtomicBool::new(false),
            muted_until: Mutex::new(None),
        })
    }

    /// The authenticated principal (`User:ANONYMOUS` before authentication).
    pub fn principal(&self) -> KafkaPrincipal {
        self.principal.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records who the client proved to be (a TLS certificate, a SASL exchange).
    pub fn authenticated(&self, principal: KafkaPrincipal) {
        *self.principal.write().unwrap_or_else(|e| e.into_inner()) = principal;
    }

    fn auth(&self) -> std::sync::MutexGuard<'_, Auth> {
        self.auth.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A SASL listener's client that has not authenticated yet: it may send
    /// ApiVersions, SaslHandshake and SaslAuthenticate only.
    pub fn requires_authentication(&self) -> bool {
        self.sasl.is_some() && !self.auth().authenticated
    }

    /// The session's lifetime (KIP-368) is over at `now_ms`.
    pub fn expired(&self, now_ms: i64) -> bool {
        self.auth().expires_ms.is_some_and(|e| now_ms > e)
    }

    /// SaslHandshake: begins an exchange in `mechanism` (v0: raw tokens follow).
    pub fn begin_exchange(&self, mechanism: &str, raw: bool) -> Result<(), HandshakeRefusal> {
        let Some(settings) = &self.sasl else {
            return Err(HandshakeRefusal::IllegalState);
        };
        let mut auth = self.auth();
        if auth.exchange.is_some() || (raw && auth.authenticated) {
            return Err(HandshakeRefusal::IllegalState);
        }
        let exchange = Exchange::new(mechanism)
            .filter(|_| settings.enabled(mechanism))
            .ok_or(HandshakeRefusal::UnsupportedMechanism)?;
        auth.exchange = Some(exchange);
        auth.raw = raw;
        Ok(())
    }

    /// Whether an exchange is under way (SaslAuthenticate is expected).
    pub fn exchanging(&self) -> bool {
        self.auth().exchange.is_some()
    }

    /// The next frame is a bare SASL token (after SaslHandshake v0).
    pub fn expects_raw_token(&self) -> bool {
        let auth = self.auth();
        auth.raw && auth.exchange.is_some()
    }

    /// One token of the exchange. On success the principal is set (a
    /// re-authentication must keep it) and the session lasts `lifetime_ms`
    /// from `now_ms` (0: for ever). Any failure ends the exchange.
    pub fn step(
        &self,
        token: &[u8],
        scram: impl FnOnce(&str, Mechanism) -> Option<ScramCredential>,
        now_ms: i64,
        lifetime_ms: i64,
    ) -> Result<Step, SaslError> {
        let settings = self.sasl.as_deref().ok_or(SaslError::Over)?;
        let mut auth = self.auth();
        let mut exchange = auth.exchange.take().ok_or(SaslError::Over)?;
        let step = exchange.step(settings, token, scram)?;
        match &step {
            Step::Continue(_) => auth.exchange = Some(exchange),
            Step::Done { user, .. } => {
                let principal = KafkaPrincipal::user(user);
                if auth.authenticated && self.principal() != principal {
                    return Err(SaslError::PrincipalChanged);
                }
                self.authenticated(principal);
                auth.authenticated = true;
                auth.raw = false;
                auth.expires_ms = (lifetime_ms > 0).then(|| now_ms.saturating_add(lifetime_ms));
            }
        }
        Ok(step)
    }

    /// The connection closes once the response now being made is sent.
    pub fn close_after_response(&self) {
        self.closing.store(true, Ordering::SeqCst);
    }

    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// Reads no further request for `ms` (a quota's throttle time); a longer
    /// mute already set stays.
    pub fn mute_for_ms(&self, ms: u64) {
        if ms == 0 {
            return;
        }
        let until = std::time::Instant::now() + std::time::Duration::from_millis(ms);
        let mut muted = self.muted_until.lock().unwrap_or_else(|e| e.into_inner());
        if muted.is_none_or(|m| m < until) {
            *muted = Some(until);
        }
    }

    /// Until when the connection must not read (once: the mute is taken).
    pub fn take_mute(&self) -> Option<std::time::Instant> {
        self.muted_until.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_names_round_trip_and_unknown_names_are_refused() {
        for p in [
            SecurityProtocol::Plaintext,
            SecurityProtocol::Ssl,
            SecurityProtocol::SaslPlaintext,
            SecurityProtocol::SaslSsl,
        ] {
            assert_eq!(SecurityProtocol::from_name(p.name()), Some(p));
        }
        assert_eq!(SecurityProtocol::from_name("plaintext"), None);
        assert_eq!(SecurityProtocol::from_name("TLS"), None);
    }

    #[test]
    fn a_new_session_is_anonymous() {
        let s = Session::new(
            "127.0.0.1:1".parse().unwrap(),
            "PLAINTEXT".into(),
            SecurityProtocol::Plaintext,
            None,
        );
        assert_eq!(s.principal().to_string(), "User:ANONYMOUS");
    }
}
