//! How a client reaches a secured listener: TLS (rustls) and SASL (PLAIN,
//! SCRAM-SHA-256/512), configured with Kafka's client properties
//! (`security.protocol`, `ssl.truststore.*`, `ssl.keystore.*`,
//! `sasl.mechanism`, `sasl.jaas.config`), as `kafka-*.sh --command-config`
//! reads them. The broker builds one for its inter-broker listener; skeinctl
//! and the operator from a properties file or a Secret.

use std::collections::BTreeMap;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

/// Kafka's `security.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl Protocol {
    pub fn from_name(name: &str) -> Option<Protocol> {
        Some(match name.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Protocol::Plaintext,
            "SSL" => Protocol::Ssl,
            "SASL_PLAINTEXT" => Protocol::SaslPlaintext,
            "SASL_SSL" => Protocol::SaslSsl,
            _ => return None,
        })
    }

    pub fn uses_tls(self) -> bool {
        matches!(self, Protocol::Ssl | Protocol::SaslSsl)
    }

    pub fn uses_sasl(self) -> bool {
        matches!(self, Protocol::SaslPlaintext | Protocol::SaslSsl)
    }
}

/// A SASL login: the mechanism and the credential. Debug never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct SaslLogin {
    /// PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    pub mechanism: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for SaslLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslLogin")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The mechanisms this client speaks.
pub const MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// Everything a connection needs to reach a listener of a given protocol.
#[derive(Clone)]
pub struct ClientSecurity {
    pub protocol: Protocol,
    /// Some for SSL and SASL_SSL.
    pub tls: Option<Arc<ClientConfig>>,
    /// Some for SASL_PLAINTEXT and SASL_SSL.
    pub sasl: Option<SaslLogin>,
}

impl std::fmt::Debug for ClientSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSecurity")
            .field("protocol", &self.protocol)
            .field("sasl", &self.sasl)
            .finish_non_exhaustive()
    }
}

impl Default for ClientSecurity {
    fn default() -> Self {
        ClientSecurity::plaintext()
    }
}

impl ClientSecurity {
    pub fn plaintext() -> ClientSecurity {
        ClientSecurity {
            protocol: Protocol::Plaintext,
            tls: None,
            sasl: None,
        }
    }

    /// From Kafka client properties. Errors name the property, never a
    /// password or a key.
    pub fn from_properties(props: &BTreeMap<String, String>) -> Result<ClientSecurity, String> {
        let get = |k: &str| props.get(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let protocol = match get("security.protocol") {
            None => Protocol::Plaintext,
            Some(p) => Protocol::from_name(&p).ok_or_else(|| {
                format!("security.protocol: {p} is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL")
            })?,
        };
        let tls = if protocol.uses_tls() {
            let trust = match (get("ssl.truststore.location"), get("ssl.truststore.certificates")) {
                (Some(path), None) => Some(
                    std::fs::read(&path).map_err(|e| format!("ssl.truststore.location: cannot read {path}: {e}"))?,
                ),
                (None, Some(pem)) => Some(pem.into_bytes()),
                (None, None) => None,
                (Some(_), Some(_)) => {
                    return Err("set either ssl.truststore.location or ssl.truststore.certificates, not both".into())
                }
            };
            let trust = trust.ok_or(
                "a TLS client needs the CA that signed the brokers' certificates: ssl.truststore.location (PEM)",
            )?;
            let identity = match (
                get("ssl.keystore.location"),
                get("ssl.keystore.key"),
                get("ssl.keystore.certificate.chain"),
            ) {
                (Some(path), None, None) => {
                    let pem =
                        std::fs::read(&path).map_err(|e| format!("ssl.keystore.location: cannot read {path}: {e}"))?;
                    Some((pem.clone(), pem))
                }
                (None, Some(key), Some(chain)) => Some((key.into_bytes(), chain.into_bytes())),
                (None, None, None) => None,
                _ => {
                    return Err(
                        "set ssl.keystore.location, or ssl.keystore.key with ssl.keystore.certificate.chain".into(),
                    )
                }
            };
            let identity = match identity {
                None => None,
                Some((key, chain)) => Some((
                    PrivateKeyDer::from_pem_slice(&key)
                        .map_err(|_| "the key store holds no usable unencrypted PEM private key".to_string())?,
                    chain,
                )),
            };
            Some(tls_config(&trust, identity)?)
        } else {
            None
        };
        let sasl = if protocol.uses_sasl() {
            let mechanism = get("sasl.mechanism")
                .unwrap_or_else(|| "GSSAPI".into())
                .to_ascii_uppercase();
            if !MECHANISMS.contains(&mechanism.as_str()) {
                return Err(format!(
                    "sasl.mechanism: {mechanism} is not offered (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)"
                ));
            }
            let (username, password) =
                match (get("sasl.jaas.config"), get("sasl.username"), get("sasl.password")) {
                    (Some(jaas), _, _) => jaas_login(&jaas)?,
                    (None, Some(u), Some(p)) => (u, p),
                    _ => return Err(
                        "SASL needs sasl.jaas.config with username and password (or sasl.username and sasl.password)"
                            .into(),
                    ),
                };
            Some(SaslLogin {
                mechanism,
                username,
                password,
            })
        } else {
            None
        };
        Ok(ClientSecurity { protocol, tls, sasl })
    }
}

/// `username` and `password` of a JAAS login module line:
/// `org.apache.kafka.common.security.scram.ScramLoginModule required username="a" password="b";`
pub fn jaas_login(jaas: &str) -> Result<(String, String), String> {
    let mut username = None;
    let mut password = None;
    let mut rest = jaas;
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].split_whitespace().last().unwrap_or_default().to_string();
        let after = rest[eq + 1..].trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted
                .find('"')
                .ok_or("sasl.jaas.config: an unterminated quoted value")?;
            (quoted[..end].to_string(), &quoted[end + 1..])
        } else {
            let end = after
                .find(|c: char| c.is_whitespace() || c == ';')
                .unwrap_or(after.len());
            (after[..end].to_string(), &after[end..])
        };
        match key.as_str() {
            "username" => username = Some(value),
            "password" => password = Some(value),
            _ => {}
        }
        rest = next;
    }
    match (username, password) {
        (Some(u), Some(p)) => Ok((u, p)),
        _ => Err("sasl.jaas.config needs username=\"...\" and password=\"...\"".into()),
    }
}

/// A rustls client config that trusts `trust_pem`'s certificates and, with an
/// identity, presents its chain (mutual TLS).
pub fn tls_config(
    trust_pem: &[u8],
    identity: Option<(PrivateKeyDer<'static>, Vec<u8>)>,
) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(trust_pem) {
        let cert = cert.map_err(|e| format!("the trust store is not PEM: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("the trust store holds an unusable certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("the trust store holds no certificate".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((key, chain_pem)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&chain_pem)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("the key store's certificate chain is not PEM: {e}"))?;
            if chain.is_empty() {
                return Err("the key store holds no certificate".into());
            }
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("the key does not fit the certificate chain: {e}"))?
        }
    };
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn kafka_client_properties_make_a_login_or_say_what_is_missing() {
        let s = ClientSecurity::from_properties(&props(&[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            (
                "sasl.jaas.config",
                "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"alice\" password=\"a b;c\";",
            ),
        ]))
        .unwrap();
        assert_eq!(s.protocol, Protocol::SaslPlaintext);
        let login = s.sasl.unwrap();
        assert_eq!((login.username.as_str(), login.password.as_str()), ("alice", "a b;c"));
        assert!(!format!("{login:?}").contains("a b;c"), "Debug hides the password");

        let plain = ClientSecurity::from_properties(&BTreeMap::new()).unwrap();
        assert_eq!(plain.protocol, Protocol::Plaintext);
        for (bad, why) in [
            (vec![("security.protocol", "TLS")], "security.protocol"),
            (
                vec![("security.protocol", "SASL_PLAINTEXT"), ("sasl.mechanism", "GSSAPI")],
                "sasl.mechanism",
            ),
            (
                vec![("security.protocol", "SASL_PLAINTEXT"), ("sasl.mechanism", "PLAIN")],
                "sasl.jaas.config",
            ),
            (vec![("security.protocol", "SSL")], "ssl.truststore.location"),
            (
                vec![
                    ("security.protocol", "SSL"),
                    ("ssl.truststore.location", "/nonexistent/ca.pem"),
                ],
                "cannot read",
            ),
        ] {
            let e = ClientSecurity::from_properties(&props(&bad)).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
    }
}
