//! SASL on SASL_PLAINTEXT and SASL_SSL listeners: each listener's enabled
//! mechanisms and PLAIN users (from its JAAS config, as Kafka's
//! `PlainLoginModule` takes them), and one connection's exchange. Pure: the
//! SCRAM credentials come from the caller (the metadata image).

use std::collections::BTreeMap;

use subtle::ConstantTimeEq;

use super::scram::{Mechanism, ScramCredential, ScramError, ScramServer};
use crate::config::BrokerConfig;

/// The mechanisms Skein serves.
pub const MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// One SASL listener's settings.
#[derive(Clone, Default)]
pub struct SaslSettings {
    /// `sasl.enabled.mechanisms`, in the order given.
    pub mechanisms: Vec<String>,
    /// PLAIN's users and passwords (`user_<name>="<password>"`).
    plain_users: BTreeMap<String, String>,
}

impl std::fmt::Debug for SaslSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslSettings")
            .field("mechanisms", &self.mechanisms)
            .field("plain_users", &self.plain_users.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SaslSettings {
    /// The settings of `listener`: `listener.name.<l>.sasl.enabled.mechanisms`
    /// over `sasl.enabled.mechanisms`; PLAIN users from
    /// `listener.name.<l>.plain.sasl.jaas.config`, else `sasl.jaas.config`.
    pub fn from_config(config: &BrokerConfig, listener: &str) -> Result<SaslSettings, String> {
        let mechanisms: Vec<String> = config
            .listener_value(listener, "sasl.enabled.mechanisms")
            .unwrap_or_default()
            .split(',')
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty())
            .collect();
        if mechanisms.is_empty() {
            return Err(format!(
                "listener {listener}: sasl.enabled.mechanisms names no mechanism"
            ));
        }
        let jaas = config
            .listener_value(listener, "plain.sasl.jaas.config")
            .or_else(|| config.listener_value(listener, "sasl.jaas.config"));
        let plain_users = match jaas {
            Some(j) => plain_users(&j).map_err(|e| format!("listener {listener}: the PLAIN JAAS config {e}"))?,
            None => BTreeMap::new(),
        };
        Ok(SaslSettings {
            mechanisms,
            plain_users,
        })
    }

    pub fn enabled(&self, mechanism: &str) -> bool {
        self.mechanisms.iter().any(|m| m == mechanism)
    }
}

/// The SASL listeners of a config (SASL_PLAINTEXT and SASL_SSL), by listener name.
pub fn listeners(config: &BrokerConfig) -> Result<Vec<(String, std::sync::Arc<SaslSettings>)>, String> {
    let map = config.security_protocol_map();
    let mut out = Vec::new();
    for l in config.listeners() {
        if matches!(
            map.get(&l.name).map(String::as_str),
            Some("SASL_PLAINTEXT" | "SASL_SSL")
        ) {
            out.push((
                l.name.clone(),
                std::sync::Arc::new(SaslSettings::from_config(config, &l.name)?),
            ));
        }
    }
    Ok(out)
}

/// The `user_<name>="<password>"` options of a JAAS config line
/// (`org.apache.kafka.common.security.plain.PlainLoginModule required ... ;`).
/// Errors never include a value.
pub fn plain_users(jaas: &str) -> Result<BTreeMap<String, String>, String> {
    let mut users = BTreeMap::new();
    let mut rest = jaas.trim();
    // The login module's class and its flag come first.
    let mut words = 0;
    while words < 2 {
        let end = rest.find(char::is_whitespace).ok_or("has no options")?;
        rest = rest[end..].trim_start();
        words += 1;
    }
    loop {
        rest = rest.trim_start();
        if rest.is_empty() || rest == ";" {
            break;
        }
        let eq = rest.find('=').ok_or("has an option without a value")?;
        let key = rest[..eq].trim().to_string();
        rest = rest[eq + 1..].trim_start();
        let value = if let Some(quoted) = rest.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => value.push(c),
                }
            }
            let end = end.ok_or("has an unterminated quoted value")?;
            rest = &quoted[end..];
            value
        } else {
            let end = rest.find(|c: char| c.is_whitespace() || c == ';').unwrap_or(rest.len());
            let v = rest[..end].to_string();
            rest = &rest[end..];
            v
        };
        if let Some(user) = key.strip_prefix("user_") {
            if !user.is_empty() {
                users.insert(user.to_string(), value);
            }
        }
    }
    Ok(users)
}

/// Why an authentication failed: Kafka's message for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    #[error("Authentication failed: Invalid username or password")]
    InvalidPlain,
    #[error("{0}")]
    Scram(#[from] ScramError),
    #[error("Unexpected SASL token: no exchange is under way")]
    Over,
    #[error("Cannot change principals during re-authentication")]
    PrincipalChanged,
}

/// What a step of an exchange gives.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send these bytes and wait for the client's next token.
    Continue(Vec<u8>),
    /// Authenticated as `user`; send these bytes (possibly empty).
    Done { response: Vec<u8>, user: String },
}

/// One connection's exchange in one mechanism.
pub enum Exchange {
    Plain,
    Scram(Box<ScramServer>),
    Over,
}

impl Exchange {
    /// An exchange in `mechanism` (one of [`MECHANISMS`]).
    pub fn new(mechanism: &str) -> Option<Exchange> {
        match mechanism {
            "PLAIN" => Some(Exchange::Plain),
            m => Mechanism::from_name(m).map(|m| Exchange::Scram(Box::new(ScramServer::new(m)))),
        }
    }

    /// The client's next token. `scram` finds a user's credential for this mechanism.
    pub fn step(
        &mut self,
        settings: &SaslSettings,
        token: &[u8],
        scram: impl FnOnce(&str, Mechanism) -> Option<ScramCredential>,
    ) -> Result<Step, SaslError> {
        match std::mem::replace(self, Exchange::Over) {
            Exchange::Plain => {
                let user = plain(settings, token)?;
                Ok(Step::Done {
                    response: Vec::new(),
                    user,
                })
            }
            Exchange::Scram(mut server) => match *server {
                ScramServer::Start { mechanism } => {
                    let first = server.first(token, |u| scram(u, mechanism))?;
                    *self = Exchange::Scram(server);
                    Ok(Step::Continue(first))
                }
                _ => {
                    let (response, user) = server.last(token)?;
                    Ok(Step::Done { response, user })
                }
            },
            Exchange::Over => Err(SaslError::Over),
        }
    }
}

/// PLAIN (RFC 4616): `authzid NUL authcid NUL passwd`; the authzid empty or the user.
fn plain(settings: &SaslSettings, token: &[u8]) -> Result<String, SaslError> {
    let mut parts = token.split(|b| *b == 0);
    let (Some(authzid), Some(user), Some(password), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::InvalidPlain);
    };
    let user = std::str::from_utf8(user).map_err(|_| SaslError::InvalidPlain)?;
    if user.is_empty() || (!authzid.is_empty() && authzid != user.as_bytes()) {
        return Err(SaslError::InvalidPlain);
    }
    match settings.plain_users.get(user) {
        Some(expected) if bool::from(expected.as_bytes().ct_eq(password)) => Ok(user.to_string()),
        _ => Err(SaslError::InvalidPlain),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> SaslSettings {
        SaslSettings {
            mechanisms: vec!["PLAIN".into()],
            plain_users: plain_users(
                r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret" user_admin="admin-secret" user_alice="a \"quoted\" pw" user_bob=bare;"#,
            )
            .unwrap(),
        }
    }

    #[test]
    fn jaas_users_are_read_as_kafka_writes_them() {
        let s = settings();
        assert_eq!(s.plain_users["admin"], "admin-secret");
        assert_eq!(s.plain_users["alice"], "a \"quoted\" pw");
        assert_eq!(s.plain_users["bob"], "bare");
        assert_eq!(s.plain_users.len(), 3);
        for bad in ["x", "Module required user_a=\"unterminated", "Module required novalue"] {
            let e = plain_users(bad).unwrap_err();
            assert!(!e.contains("unterminated\""), "{e}");
        }
    }

    #[test]
    fn plain_checks_user_password_and_authzid() {
        let s = settings();
        let step = |t: &[u8]| Exchange::new("PLAIN").unwrap().step(&s, t, |_, _| None);
        assert_eq!(
            step(b"\0admin\0admin-secret").unwrap(),
            Step::Done {
                response: vec![],
                user: "admin".into()
            }
        );
        assert!(step(b"admin\0admin\0admin-secret").is_ok());
        for bad in [
            &b"\0admin\0wrong"[..],
            b"\0nobody\0x",
            b"bob\0admin\0admin-secret",
            b"\0admin",
            b"\0admin\0admin-secret\0",
            b"",
            b"\0\0",
        ] {
            assert_eq!(step(bad), Err(SaslError::InvalidPlain), "{:?}", bad);
        }
    }

    #[test]
    fn a_finished_exchange_takes_no_more_tokens() {
        let s = settings();
        let mut e = Exchange::new("PLAIN").unwrap();
        e.step(&s, b"\0admin\0admin-secret", |_, _| None).unwrap();
        assert_eq!(e.step(&s, b"\0admin\0admin-secret", |_, _| None), Err(SaslError::Over));
        assert!(Exchange::new("GSSAPI").is_none());
    }
}
