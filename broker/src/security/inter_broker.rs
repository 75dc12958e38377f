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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn config(sets: &[(&str, &str)]) -> BrokerConfig {
        let mut m: BTreeMap<String, String> = BTreeMap::new();
        m.insert("listeners".into(), "SASL_PLAINTEXT://:9092,CONTROLLER://:9093".into());
        m.insert("controller.quorum.voters".into(), "0@localhost:9093".into());
        for (k, v) in sets {
            m.insert(k.to_string(), v.to_string());
        }
        BrokerConfig::from_map(m).unwrap()
    }

    #[test]
    fn a_sasl_inter_broker_listener_needs_a_served_mechanism_and_the_broker_s_own_login() {
        let e = client_security(&config(&[])).unwrap_err();
        assert!(e.contains("sasl.mechanism.inter.broker.protocol: GSSAPI"), "{e}");
        let e = client_security(&config(&[("sasl.mechanism.inter.broker.protocol", "PLAIN")])).unwrap_err();
        assert!(e.contains("listener.name.sasl_plaintext.plain.sasl.jaas.config"), "{e}");
        let jaas = "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"broker\" password=\"s3cret\" user_broker=\"s3cret\";";
        let s = client_security(&config(&[
            ("sasl.mechanism.inter.broker.protocol", "PLAIN"),
            ("listener.name.sasl_plaintext.plain.sasl.jaas.config", jaas),
        ]))
        .unwrap();
        assert_eq!(s.protocol, Protocol::SaslPlaintext);
        let login = s.sasl.unwrap();
        assert_eq!((login.username.as_str(), login.password.as_str()), ("broker", "s3cret"));
        let no_login = "org.apache.kafka.common.security.plain.PlainLoginModule required user_broker=\"s3cret\";";
        let e = client_security(&config(&[
            ("sasl.mechanism.inter.broker.protocol", "PLAIN"),
            ("listener.name.sasl_plaintext.plain.sasl.jaas.config", no_login),
        ]))
        .unwrap_err();
        assert!(e.contains("username") && !e.contains("s3cret"), "{e}");
    }
}
