//! A connection's session: what every request on one connection shares — the
//! listener it came in on, that listener's security protocol, the client's
//! address and, once it has authenticated, its principal. The connection loop
//! (`server.rs`) makes one per accepted connection; handlers read it through
//! their request context. TLS transports and SASL state join it with the
//! security work; until then every listener is PLAINTEXT and every client
//! `User:ANONYMOUS`, as in Kafka without authentication.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

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
    principal: RwLock<KafkaPrincipal>,
}

impl Session {
    pub fn new(peer: SocketAddr, listener: Arc<str>, security_protocol: SecurityProtocol) -> Arc<Session> {
        Arc::new(Session {
            peer,
            listener,
            security_protocol,
            principal: RwLock::new(KafkaPrincipal::anonymous()),
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
        );
        assert_eq!(s.principal().to_string(), "User:ANONYMOUS");
    }
}
