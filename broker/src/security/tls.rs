//! TLS for the SSL and SASL_SSL listeners, with rustls: the key and trust
//! stores as Kafka 2.7+ takes PEM (KIP-651), per listener
//! (`listener.name.<l>.ssl.*` over `ssl.*`), `ssl.client.auth`,
//! `ssl.enabled.protocols`; the principal of a client certificate; and a
//! reload of the stores when their files change, so a rotated certificate
//! needs no restart (new connections get the new one, open ones keep theirs).

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use super::principal::{subject_dn, PrincipalError, PrincipalMapper};
use crate::config::BrokerConfig;

/// How often the store files are read again to see whether they changed.
pub const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// A TLS setting that cannot be used. Never holds a key, a password or a
/// store's contents: only key names, paths and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("listener {listener}: {reason}")]
pub struct TlsError {
    pub listener: String,
    pub reason: String,
}

/// `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Requested,
    Required,
}

/// Where PEM text comes from: a file (read again on reload) or a config value.
#[derive(Debug, Clone)]
enum Source {
    File(PathBuf),
    Inline(String),
}

impl Source {
    fn read(&self, what: &str) -> Result<Vec<u8>, String> {
        match self {
            Source::File(p) => std::fs::read(p).map_err(|e| format!("cannot read {what} {}: {e}", p.display())),
            Source::Inline(s) => Ok(s.clone().into_bytes()),
        }
    }
}

/// One listener's TLS settings, from the config.
#[derive(Clone)]
pub struct TlsSettings {
    listener: String,
    /// The private key and certificate chain: one file, or two inline values.
    key: Source,
    chain: Source,
    key_password: Option<String>,
    trust: Option<Source>,
    pub client_auth: ClientAuth,
    versions: Vec<&'static rustls::SupportedProtocolVersion>,
    pub mapper: PrincipalMapper,
    /// The application protocols offered in the handshake (ALPN): none on
    /// Kafka listeners, `h2` on the quorum's gRPC.
    pub alpn: Vec<Vec<u8>>,
    /// The values these settings were made from: a change of one (through
    /// AlterConfigs) makes new settings.
    keys: Vec<Option<String>>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("listener", &self.listener)
            .field("client_auth", &self.client_auth)
            .finish_non_exhaustive()
    }
}

/// Every key [`TlsSettings::from_config`] reads.
const TLS_KEYS: &[&str] = &[
    "ssl.keystore.location",
    "ssl.keystore.key",
    "ssl.keystore.certificate.chain",
    "ssl.key.password",
    "ssl.truststore.location",
    "ssl.truststore.certificates",
    "ssl.client.auth",
    "ssl.enabled.protocols",
    "ssl.principal.mapping.rules",
];

impl TlsSettings {
    /// Reads the stores and makes a server config of them: whether these
    /// settings are usable, as a listener would find at its next reload.
    pub fn check(&self) -> Result<(), TlsError> {
        self.server_config(&self.read()?).map(|_| ())
    }

    /// The settings of `listener` (its `listener.name.<l>.ssl.*` keys over `ssl.*`).
    pub fn from_config(config: &BrokerConfig, listener: &str) -> Result<TlsSettings, TlsError> {
        let err = |reason: String| TlsError {
            listener: listener.to_string(),
            reason,
        };
        let get = |key: &str| config.listener_value(listener, key).filter(|v| !v.trim().is_empty());
        let (key, chain) = match (
            get("ssl.keystore.location"),
            get("ssl.keystore.key"),
            get("ssl.keystore.certificate.chain"),
        ) {
            (Some(path), None, None) => (Source::File(path.clone().into()), Source::File(path.into())),
            (None, Some(key), Some(chain)) => (Source::Inline(key), Source::Inline(chain)),
            (Some(_), _, _) => {
                return Err(err(
                    "set either ssl.keystore.location or ssl.keystore.key with ssl.keystore.certificate.chain, not both"
                        .into(),
                ))
            }
            (None, Some(_), None) | (None, None, Some(_)) => {
                return Err(err(
                    "ssl.keystore.key and ssl.keystore.certificate.chain must be set together".into(),
                ))
            }
            (None, None, None) => {
                return Err(err(
                    "a TLS listener needs a key and certificate: ssl.keystore.location, or ssl.keystore.key with ssl.keystore.certificate.chain".into(),
                ))
            }
        };
        let trust = match (get("ssl.truststore.location"), get("ssl.truststore.certificates")) {
            (Some(_), Some(_)) => {
                return Err(err(
                    "set either ssl.truststore.location or ssl.truststore.certificates, not both".into(),
                ))
            }
            (Some(path), None) => Some(Source::File(path.into())),
            (None, Some(pem)) => Some(Source::Inline(pem)),
            (None, None) => None,
        };
        let client_auth = match get("ssl.client.auth").as_deref().map(str::trim) {
            Some("required") => ClientAuth::Required,
            Some("requested") => ClientAuth::Requested,
            _ => ClientAuth::None,
        };
        if client_auth != ClientAuth::None && trust.is_none() {
            return Err(err(format!(
                "ssl.client.auth={} needs a trust store to check client certificates against (ssl.truststore.location or ssl.truststore.certificates)",
                get("ssl.client.auth").unwrap_or_default()
            )));
        }
        let mut versions = Vec::new();
        for v in get("ssl.enabled.protocols")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
        {
            match v {
                "TLSv1.3" => versions.push(&rustls::version::TLS13),
                "TLSv1.2" => versions.push(&rustls::version::TLS12),
                "" => {}
                other => {
                    return Err(err(format!(
                        "ssl.enabled.protocols: {other} is not offered (TLSv1.2, TLSv1.3)"
                    )))
                }
            }
        }
        if versions.is_empty() {
            return Err(err("ssl.enabled.protocols names no protocol".into()));
        }
        let rules = get("ssl.principal.mapping.rules").unwrap_or_else(|| "DEFAULT".into());
        let mapper = PrincipalMapper::parse(&rules).map_err(|e| err(format!("ssl.principal.mapping.rules: {e}")))?;
        Ok(TlsSettings {
            listener: listener.to_string(),
            key,
            chain,
            key_password: get("ssl.key.password"),
            trust,
            client_auth,
            versions,
            mapper,
            alpn: Vec::new(),
            keys: TLS_KEYS.iter().map(|k| get(k)).collect(),
        })
    }

    /// Reads the stores; the bytes decide whether a reload is due.
    fn read(&self) -> Result<Stores, TlsError> {
        let err = |reason: String| TlsError {
            listener: self.listener.clone(),
            reason,
        };
        Ok(Stores {
            key: self.key.read("ssl.keystore").map_err(err)?,
            chain: self.chain.read("ssl.keystore").map_err(err)?,
            trust: self
                .trust
                .as_ref()
                .map(|t| t.read("ssl.truststore"))
                .transpose()
                .map_err(err)?,
        })
    }

    /// A rustls server config from the stores' contents.
    fn server_config(&self, stores: &Stores) -> Result<Arc<ServerConfig>, TlsError> {
        let err = |reason: String| TlsError {
            listener: self.listener.clone(),
            reason,
        };
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&stores.chain)
            .collect::<Result<_, _>>()
            .map_err(|e| err(format!("the key store's certificate chain is not PEM: {e}")))?;
        if chain.is_empty() {
            return Err(err("the key store holds no certificate".into()));
        }
        let key = private_key(&stores.key, self.key_password.as_deref()).map_err(err)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&self.versions)
            .map_err(|e| err(format!("ssl.enabled.protocols: {e}")))?;
        let builder = match (&stores.trust, self.client_auth) {
            (Some(trust), ClientAuth::Requested | ClientAuth::Required) => {
                let mut roots = RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(trust) {
                    let cert = cert.map_err(|e| err(format!("the trust store is not PEM: {e}")))?;
                    roots
                        .add(cert)
                        .map_err(|e| err(format!("the trust store holds an unusable certificate: {e}")))?;
                }
                if roots.is_empty() {
                    return Err(err("the trust store holds no certificate".into()));
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier = if self.client_auth == ClientAuth::Requested {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                builder.with_client_cert_verifier(
                    verifier
                        .build()
                        .map_err(|e| err(format!("cannot check client certificates: {e}")))?,
                )
            }
            _ => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .map_err(|e| err(format!("the key does not fit the certificate chain: {e}")))?;
        config.alpn_protocols = self.alpn.clone();
        Ok(Arc::new(config))
    }
}

impl TlsSettings {
    /// A rustls client config for connecting to peers on this listener (the
    /// inter-broker one): it trusts the listener's trust store and presents
    /// the listener's own certificate, so a peer that requires client
    /// certificates (mTLS) authenticates this broker by it.
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let err = |reason: String| TlsError {
            listener: self.listener.clone(),
            reason,
        };
        let stores = self.read()?;
        let trust = stores.trust.as_ref().ok_or_else(|| {
            err("brokers connect to each other on this listener: its trust store (ssl.truststore.location or ssl.truststore.certificates) must hold the CA of the brokers' certificates".into())
        })?;
        let key = private_key(&stores.key, self.key_password.as_deref()).map_err(err)?;
        skein_client::security::tls_config(trust, Some((key, stores.chain.clone()))).map_err(err)
    }
}

impl TlsSettings {
    /// The stores as PEM for the metadata quorum's gRPC (tonic takes PEM):
    /// the certificate chain, the private key (decrypted with
    /// `ssl.key.password` if it is encrypted) and the trust store, which the
    /// quorum needs to check its peers (mutual TLS).
    pub fn pem_stores(&self) -> Result<PemStores, TlsError> {
        let err = |reason: String| TlsError {
            listener: self.listener.clone(),
            reason,
        };
        let stores = self.read()?;
        let trust = stores.trust.clone().ok_or_else(|| {
            err("the metadata quorum authenticates its voters by certificate: set the CONTROLLER listener's ssl.truststore.location (or ssl.truststore.certificates)".into())
        })?;
        let key = match private_key(&stores.key, self.key_password.as_deref()).map_err(err)? {
            PrivateKeyDer::Pkcs8(der) => pem("PRIVATE KEY", der.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(der) => pem("RSA PRIVATE KEY", der.secret_pkcs1_der()),
            PrivateKeyDer::Sec1(der) => pem("EC PRIVATE KEY", der.secret_sec1_der()),
            _ => return Err(err("the private key is of an unknown kind".into())),
        };
        Ok(PemStores {
            chain: stores.chain,
            key,
            trust,
        })
    }
}

/// A listener's stores as PEM: its certificate chain, its (decrypted) key, its trust store.
pub struct PemStores {
    pub chain: Vec<u8>,
    pub key: Vec<u8>,
    pub trust: Vec<u8>,
}

/// DER as a PEM block.
fn pem(label: &str, der: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out.into_bytes()
}

/// The bytes of a listener's stores, as last read.
#[derive(PartialEq, Eq)]
struct Stores {
    key: Vec<u8>,
    chain: Vec<u8>,
    trust: Option<Vec<u8>>,
}

/// The private key in `pem`: PKCS#8 (encrypted with `password`, or plain),
/// PKCS#1 or SEC1. Errors name what is wrong, never the key or the password.
fn private_key(pem: &[u8], password: Option<&str>) -> Result<PrivateKeyDer<'static>, String> {
    const BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
    const END: &str = "-----END ENCRYPTED PRIVATE KEY-----";
    let text = String::from_utf8_lossy(pem);
    if let Some(start) = text.find(BEGIN) {
        let end = text[start..]
            .find(END)
            .map(|e| start + e + END.len())
            .ok_or("the encrypted private key's PEM block is not terminated")?;
        let password = password.ok_or("the private key is encrypted and ssl.key.password is not set")?;
        let (_, der) = pkcs8::der::pem::decode_vec(text[start..end].as_bytes())
            .map_err(|e| format!("the encrypted private key is not PEM: {e}"))?;
        let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice())
            .map_err(|e| format!("the encrypted private key cannot be parsed: {e}"))?;
        let plain = info
            .decrypt(password)
            .map_err(|_| "the private key cannot be decrypted with ssl.key.password".to_string())?;
        return Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            plain.as_bytes().to_vec(),
        )));
    }
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => "the key store holds no private key".to_string(),
        e => format!("the private key is not PEM: {e}"),
    })
}

/// Where a listener's settings come from now: the static config with the
/// metadata image's dynamic overrides laid over it (AlterConfigs of its
/// `ssl.*` stores). Called at every reload check.
pub type SettingsSource = Arc<dyn Fn() -> Result<TlsSettings, TlsError> + Send + Sync>;

/// The longest a connecting peer has to finish its TLS handshake (client
/// listeners also stop at `connections.max.idle.ms`, if shorter).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS listener's current server config, swapped when its stores change
/// (their files, or their settings through AlterConfigs).
pub struct TlsListener {
    name: String,
    current: RwLock<Current>,
}

struct Current {
    settings: TlsSettings,
    config: Arc<ServerConfig>,
    stores: Stores,
}

impl TlsListener {
    /// Reads and checks the listener's stores: an error here stops start-up.
    pub fn new(settings: TlsSettings) -> Result<TlsListener, TlsError> {
        let stores = settings.read()?;
        let config = settings.server_config(&stores)?;
        Ok(TlsListener {
            name: settings.listener.clone(),
            current: RwLock::new(Current {
                settings,
                config,
                stores,
            }),
        })
    }

    fn current(&self) -> std::sync::RwLockReadGuard<'_, Current> {
        self.current.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The settings in use.
    pub fn settings(&self) -> TlsSettings {
        self.current().settings.clone()
    }

    /// The config new connections are accepted with.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.current().config)
    }

    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.server_config())
    }

    /// The server side of a handshake on a new connection, bounded by
    /// `timeout` (at most [`HANDSHAKE_TIMEOUT`] on every listener). A refusal is logged as Kafka logs it, with the peer and the
    /// listener (the client and quorum listeners share this), and is None.
    pub async fn accept(
        &self,
        stream: tokio::net::TcpStream,
        peer: std::net::SocketAddr,
        listener: &str,
        timeout: Duration,
    ) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
        match tokio::time::timeout(timeout, self.acceptor().accept(stream)).await {
            Ok(Ok(s)) => Some(s),
            Ok(Err(e)) => {
                tracing::info!(%peer, %listener, "failed authentication (TLS handshake failed): {e}");
                None
            }
            Err(_) => {
                tracing::info!(%peer, %listener, "failed authentication (TLS handshake did not finish in time)");
                None
            }
        }
    }

    /// Reads the stores again (with the settings `source` gives, if any) and,
    /// if they changed and make a usable config, serves it to new
    /// connections. `Ok(true)` when it was swapped; an unusable change keeps
    /// the current config and is an error.
    pub fn reload_if_changed(&self, source: Option<&SettingsSource>) -> Result<bool, TlsError> {
        let settings = match source {
            Some(source) => source()?,
            None => self.settings(),
        };
        let stores = settings.read()?;
        {
            let current = self.current();
            if current.stores == stores && current.settings.keys == settings.keys {
                return Ok(false);
            }
        }
        let config = settings.server_config(&stores)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Current {
            settings,
            config,
            stores,
        };
        Ok(true)
    }

    /// Checks the stores every [`RELOAD_CHECK_INTERVAL`] until the task is dropped.
    pub async fn watch(self: Arc<Self>) {
        self.watch_with(None, || {}).await
    }

    /// As [`TlsListener::watch`], with the settings from `source` (when
    /// AlterConfigs can change them), calling `changed` after each swap.
    pub async fn watch_with(self: Arc<Self>, source: Option<SettingsSource>, changed: impl Fn()) {
        let mut last_error = None;
        loop {
            tokio::time::sleep(RELOAD_CHECK_INTERVAL).await;
            let this = Arc::clone(&self);
            let source = source.clone();
            let outcome = tokio::task::spawn_blocking(move || this.reload_if_changed(source.as_ref())).await;
            match outcome {
                Ok(Ok(true)) => {
                    tracing::info!(listener = %self.name, "TLS key or trust store changed: new connections use the new one");
                    changed();
                    last_error = None;
                }
                Ok(Ok(false)) => last_error = None,
                Ok(Err(e)) => {
                    // Said once per distinct problem, not every interval.
                    if last_error.as_ref() != Some(&e) {
                        tracing::warn!("{e}; new connections keep the previous TLS configuration");
                        last_error = Some(e);
                    }
                }
                Err(_) => {}
            }
        }
    }

    /// The principal name of a verified client certificate chain.
    pub fn principal_name(&self, peer_chain: &[CertificateDer<'_>]) -> Result<Option<String>, PrincipalError> {
        let Some(leaf) = peer_chain.first() else {
            return Ok(None);
        };
        let dn = subject_dn(leaf)?;
        self.current().settings.mapper.name(&dn).map(Some)
    }
}

/// The TLS listeners of a config (SSL and SASL_SSL), by listener name.
pub fn listeners(config: &BrokerConfig) -> Result<Vec<(String, Arc<TlsListener>)>, TlsError> {
    let map = config.security_protocol_map();
    let mut out = Vec::new();
    for l in config.listeners() {
        if matches!(map.get(&l.name).map(String::as_str), Some("SSL" | "SASL_SSL")) {
            let settings = TlsSettings::from_config(config, &l.name)?;
            out.push((l.name.clone(), Arc::new(TlsListener::new(settings)?)));
        }
    }
    Ok(out)
}
