//! How this broker reaches its peers (replica fetches, forwarded requests):
//! the inter-broker listener's security protocol, with TLS from that
//! listener's stores and SASL with `sasl.mechanism.inter.broker.protocol` and
//! the `username`/`password` of the listener's JAAS config for that mechanism,
//! as Kafka's brokers log in to each other.

use skein_client::security::{jaas_login, Protocol, MECHANISMS};
use skein_client::{ClientSecurity, SaslLogin};

use super::tls::TlsSettings;
use crate::config::BrokerConfig;

/// The inter-broker client's settings, or what is missing (never a password).
pub fn client_security(config: &BrokerConfig) -> Result<ClientSecurity, String> {
    let listener = config.inter_broker_listener_name();
    let protocol = config
        .security_protocol_map()
        .get(&listener)
        .and_then(|p| Protocol::from_name(p))
        .unwrap_or(Protocol::Plaintext);
    let tls = if protocol.uses_tls() {
        let settings = TlsSettings::from_config(config, &listener).map_err(|e| e.to_string())?;
        Some(settings.client_config().map_err(|e| e.to_string())?)
    } else {
        None
    };
    let sasl = if protocol.uses_sasl() {
        let mechanism = config
            .get("sasl.mechanism.inter.broker.protocol")
            .unwrap_or_default()
            .trim()
            .to_ascii_uppercase();
        if !MECHANISMS.contains(&mechanism.as_str()) {
            return Err(format!(
                "sasl.mechanism.inter.broker.protocol: {mechanism} is not served; the inter-broker listener {listener} is {} and needs PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
                if protocol == Protocol::SaslSsl { "SASL_SSL" } else { "SASL_PLAINTEXT" }
            ));
        }
        let key = format!("{}.sasl.jaas.config", mechanism.to_ascii_lowercase());
        let jaas = config
            .listener_value(&listener, &key)
            .or_else(|| config.listener_value(&listener, "sasl.jaas.config"))
            .ok_or_else(|| {
                format!(
                    "listener.name.{}.{key}: the broker's own login to its peers (username and password) is not set",
                    listener.to_ascii_lowercase()
                )
            })?;
        let (username, password) = jaas_login(&jaas).map_err(|_| {
            format!(
                "listener.name.{}.{key} needs username=\"...\" password=\"...\": the broker's own login to its peers",
                listener.to_ascii_lowercase()
            )
        })?;
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
