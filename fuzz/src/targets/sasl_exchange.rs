//! Tokens as a SASL listener reads them from a client that has not
//! authenticated: the first byte picks the mechanism (PLAIN, SCRAM-SHA-256,
//! SCRAM-SHA-512), the rest is split into tokens at 0xff and fed to the
//! session's exchange, against a PLAIN user and a SCRAM credential.

use std::sync::{Arc, OnceLock};

use skein_broker::config::BrokerConfig;
use skein_broker::protocol::{SecurityProtocol, Session};
use skein_broker::security::sasl::{SaslSettings, Step};
use skein_broker::security::scram::{Mechanism, ScramCredential};

fn fixtures() -> &'static (Arc<SaslSettings>, ScramCredential) {
    static F: OnceLock<(Arc<SaslSettings>, ScramCredential)> = OnceLock::new();
    F.get_or_init(|| {
        let config = BrokerConfig::from_map(
            [
                ("listeners", "SASL_PLAINTEXT://127.0.0.1:9092"),
                (
                    "sasl.jaas.config",
                    r#"org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="alice-secret";"#,
                ),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        )
        .expect("config");
        let settings = SaslSettings::from_config(&config, "SASL_PLAINTEXT").expect("settings");
        (
            Arc::new(settings),
            ScramCredential::from_password(Mechanism::Sha256, "alice-secret", 4096),
        )
    })
}

/// One input.
pub fn run(data: &[u8]) {
    let Some((pick, rest)) = data.split_first() else {
        return;
    };
    let (settings, credential) = fixtures();
    let mechanism = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"][*pick as usize % 3];
    let session = Session::new(
        "127.0.0.1:1".parse().unwrap(),
        "SASL_PLAINTEXT".into(),
        SecurityProtocol::SaslPlaintext,
        Some(Arc::clone(settings)),
    );
    if session.begin_exchange(mechanism, pick & 0x80 != 0).is_err() {
        return;
    }
    for token in rest.split(|b| *b == 0xff) {
        let lookup = |user: &str, m: Mechanism| {
            (user == "alice")
                .then(|| credential.clone())
                .filter(|_| m == Mechanism::Sha256)
        };
        match session.step(token, lookup, 0, 1000) {
            Ok(Step::Continue(_)) => {}
            Ok(Step::Done { .. }) => {
                assert!(!session.requires_authentication());
                break;
            }
            Err(_) => {
                assert!(!session.exchanging());
                break;
            }
        }
    }
}
