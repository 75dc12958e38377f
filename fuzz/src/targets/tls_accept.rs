//! Bytes from a client as a TLS listener reads them: records into the
//! listener's rustls server session (built by the broker's own TLS settings,
//! client certificates requested), the handshake as far as the bytes take it,
//! and, if a client certificate was accepted, its principal.

use std::sync::{Arc, OnceLock};

use skein_broker::config::BrokerConfig;
use skein_broker::security::tls::{TlsListener, TlsSettings};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../broker/tests/fixtures/tls");

fn listener() -> &'static TlsListener {
    static L: OnceLock<TlsListener> = OnceLock::new();
    L.get_or_init(|| {
        let config = BrokerConfig::from_map(
            [
                ("listeners", "SSL://127.0.0.1:9093".to_string()),
                ("ssl.keystore.location", format!("{FIXTURES}/server.pem")),
                ("ssl.truststore.location", format!("{FIXTURES}/ca.pem")),
                ("ssl.client.auth", "requested".into()),
                (
                    "ssl.principal.mapping.rules",
                    "RULE:^CN=([^,]*),.*$/$1/L,DEFAULT".into(),
                ),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        )
        .expect("config");
        TlsListener::new(TlsSettings::from_config(&config, "SSL").expect("settings")).expect("listener")
    })
}

/// One input.
pub fn run(data: &[u8]) {
    let l = listener();
    let mut conn = rustls::ServerConnection::new(Arc::clone(&l.server_config())).expect("session");
    let mut rd = data;
    let mut sink = Vec::new();
    while !rd.is_empty() {
        match conn.read_tls(&mut rd) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if conn.process_new_packets().is_err() {
            break;
        }
        sink.clear();
        while conn.wants_write() {
            if conn.write_tls(&mut sink).is_err() {
                break;
            }
        }
    }
    if let Some(chain) = conn.peer_certificates() {
        let _ = l.principal_name(chain);
    }
}
