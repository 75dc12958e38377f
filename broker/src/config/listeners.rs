//! Named listeners as Kafka has them: `listeners`, `advertised.listeners`,
//! `listener.security.protocol.map`, `controller.listener.names` and
//! `inter.broker.listener.name`, plus `process.roles`.
//!
//! A broker may listen for clients under several names (an INTERNAL listener its
//! peers and in-cluster clients use, an EXTERNAL one published outside); each
//! client is told the addresses of the listener it connected to.

use std::collections::BTreeMap;

use super::{BrokerConfig, ConfigError};

/// Kafka's default `listener.security.protocol.map`, plus the CONTROLLER listener
/// that Kafka's KRaft mode also treats as PLAINTEXT when the map does not name it.
pub const DEFAULT_PROTOCOL_MAP: &str =
    "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL";

/// A listener: its name, the address to bind (or, advertised, the one to tell clients).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub host: String,
    pub port: u16,
}

fn invalid(key: &str, value: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Parses one `NAME://host:port` (an empty host binds every interface; IPv6 in brackets).
pub fn parse_listener(key: &str, s: &str) -> Result<Listener, ConfigError> {
    let (name, address) = s
        .split_once("://")
        .ok_or_else(|| invalid(key, s, "expected NAME://host:port"))?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(invalid(key, s, "a listener name is letters, digits, '_' or '-'"));
    }
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| invalid(key, s, "missing :port"))?;
    let port: u16 = port.parse().map_err(|_| invalid(key, s, "port must be 0-65535"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
    Ok(Listener {
        name: name.to_ascii_uppercase(),
        host,
        port,
    })
}

fn parse_list(key: &str, raw: &str) -> Result<Vec<Listener>, ConfigError> {
    let mut out: Vec<Listener> = Vec::new();
    for l in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let l = parse_listener(key, l)?;
        if out.iter().any(|o| o.name == l.name) {
            return Err(invalid(key, raw, format!("listener name {} appears twice", l.name)));
        }
        out.push(l);
    }
    Ok(out)
}

impl BrokerConfig {
    fn listener_list(&self, key: &str) -> Vec<Listener> {
        // Validated at load; a value that fails here cannot have been accepted.
        parse_list(key, &self.get(key).unwrap_or_default()).unwrap_or_default()
    }

    /// `listener.security.protocol.map`: listener name to security protocol.
    pub fn security_protocol_map(&self) -> BTreeMap<String, String> {
        let raw = self.get("listener.security.protocol.map").unwrap_or_default();
        let mut map: BTreeMap<String, String> = raw
            .split(',')
            .filter_map(|e| e.split_once(':'))
            .map(|(n, p)| (n.trim().to_ascii_uppercase(), p.trim().to_ascii_uppercase()))
            .collect();
        // As in Kafka's KRaft mode, an unmapped controller listener is PLAINTEXT.
        map.entry(self.controller_listener_name())
            .or_insert_with(|| "PLAINTEXT".into());
        map
    }

    /// The first of `controller.listener.names`: the metadata quorum's listener.
    pub fn controller_listener_name(&self) -> String {
        let names = self.get("controller.listener.names").unwrap_or_default();
        names.split(',').next().unwrap_or("").trim().to_ascii_uppercase()
    }

    /// The client listeners: every listener but the controller's, in the order given.
    pub fn listeners(&self) -> Vec<Listener> {
        let controller = self.controller_listener_name();
        self.listener_list("listeners")
            .into_iter()
            .filter(|l| l.name != controller)
            .collect()
    }

    /// The metadata quorum's listener, if this broker has one.
    pub fn controller_listener(&self) -> Option<Listener> {
        let name = self.controller_listener_name();
        self.listener_list("listeners").into_iter().find(|l| l.name == name)
    }

    /// Where the other quorum members reach this node's controller listener:
    /// its `advertised.listeners` entry, else the listener with an unspecified
    /// host taken from the advertised inter-broker listener (a broker outside
    /// the voters gives this address to the active controller, which must be
    /// able to replicate the metadata log to it, so a wildcard will not do).
    pub fn advertised_controller_address(&self) -> Option<String> {
        let listener = self.controller_listener()?;
        let advertised = self
            .listener_list("advertised.listeners")
            .into_iter()
            .find(|a| a.name == listener.name);
        let (host, port) = match advertised {
            Some(a) if !(a.host.is_empty() || a.host == "0.0.0.0" || a.host == "::") => (a.host, a.port),
            _ if listener.host.is_empty() || listener.host == "0.0.0.0" || listener.host == "::" => {
                (self.advertised_listener().host, listener.port)
            }
            _ => (listener.host, listener.port),
        };
        Some(format!("{host}:{port}"))
    }

    /// `inter.broker.listener.name`: the listener peers replicate over. Defaults,
    /// as in Kafka, to the one named PLAINTEXT, else to the first client listener.
    pub fn inter_broker_listener_name(&self) -> String {
        if let Some(name) = self.values.get("inter.broker.listener.name") {
            return name.trim().to_ascii_uppercase();
        }
        let listeners = self.listeners();
        listeners
            .iter()
            .find(|l| l.name == "PLAINTEXT")
            .or(listeners.first())
            .map(|l| l.name.clone())
            .unwrap_or_default()
    }

    /// What clients of each client listener are told: its `advertised.listeners`
    /// entry, else the listener itself, with an unspecified host as localhost.
    pub fn advertised_listeners(&self) -> Vec<Listener> {
        let advertised = self.listener_list("advertised.listeners");
        self.listeners()
            .into_iter()
            .map(|l| {
                let mut a = advertised.iter().find(|a| a.name == l.name).cloned().unwrap_or(l);
                if a.host.is_empty() || a.host == "0.0.0.0" || a.host == "::" {
                    a.host = "localhost".into();
                }
                a
            })
            .collect()
    }

    /// The inter-broker listener as advertised: where peers reach this broker.
    pub fn advertised_listener(&self) -> Listener {
        let name = self.inter_broker_listener_name();
        let all = self.advertised_listeners();
        all.iter()
            .find(|l| l.name == name)
            .or(all.first())
            .cloned()
            .unwrap_or(Listener {
                name,
                host: "localhost".into(),
                port: 9092,
            })
    }

    /// Checks the listener settings together; called once at load.
    pub(super) fn check_listeners(&self) -> Result<(), ConfigError> {
        let listeners_raw = self.get("listeners").unwrap_or_default();
        let all = parse_list("listeners", &listeners_raw)?;
        let advertised = parse_list(
            "advertised.listeners",
            &self.get("advertised.listeners").unwrap_or_default(),
        )?;
        let map_raw = self.get("listener.security.protocol.map").unwrap_or_default();
        for entry in map_raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry
                .split_once(':')
                .is_none_or(|(n, p)| n.trim().is_empty() || p.trim().is_empty())
            {
                return Err(invalid(
                    "listener.security.protocol.map",
                    &map_raw,
                    "expected NAME:PROTOCOL entries",
                ));
            }
        }
        let map = self.security_protocol_map();
        for l in &all {
            match map.get(&l.name).map(String::as_str) {
                Some("PLAINTEXT" | "SSL" | "SASL_PLAINTEXT" | "SASL_SSL") => {}
                Some(protocol) => {
                    return Err(invalid(
                        "listeners",
                        &listeners_raw,
                        format!(
                            "listener {} uses {protocol}, which is not a security protocol (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL)",
                            l.name
                        ),
                    ))
                }
                None => {
                    return Err(invalid(
                        "listeners",
                        &listeners_raw,
                        format!("listener {} has no entry in listener.security.protocol.map", l.name),
                    ))
                }
            }
        }
        let controller = self.controller_listener_name();
        let clients = self.listeners();
        if clients.is_empty() {
            return Err(invalid(
                "listeners",
                &listeners_raw,
                "at least one client listener is required",
            ));
        }
        // Kafka 4.0's own server.properties advertises its CONTROLLER listener
        // (for KIP-853); clients are never told it, so it is accepted and unused.
        for a in advertised.iter().filter(|a| a.name != controller) {
            if !clients.iter().any(|l| l.name == a.name) {
                return Err(invalid(
                    "advertised.listeners",
                    &self.get("advertised.listeners").unwrap_or_default(),
                    format!("{} is not one of listeners", a.name),
                ));
            }
        }
        let inter = self.inter_broker_listener_name();
        if !clients.iter().any(|l| l.name == inter) {
            return Err(invalid(
                "inter.broker.listener.name",
                &inter,
                "must name one of the client listeners in listeners",
            ));
        }
        Ok(())
    }

    /// Checks `process.roles` against the quorum: Skein runs brokers, each
    /// optionally a voter of the metadata quorum. Unset: decided by the voters list.
    pub(super) fn check_process_roles(&self) -> Result<(), ConfigError> {
        let Some(raw) = self.values.get("process.roles") else {
            return Ok(());
        };
        let mut roles: Vec<String> = raw
            .split(',')
            .map(|r| r.trim().to_ascii_lowercase())
            .filter(|r| !r.is_empty())
            .collect();
        roles.sort();
        roles.dedup();
        let voters = self.voters()?;
        let is_voter = voters.is_empty() || voters.iter().any(|v| v.id == self.node_id());
        // A node that finds the quorum through bootstrap servers may be made a voter later.
        let may_vote = is_voter || !self.quorum_bootstrap_servers()?.is_empty();
        let bad = |reason: &str| invalid("process.roles", raw, reason);
        match roles.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
            ["broker", "controller"] if !may_vote => Err(bad(
                "a node with the controller role must be one of controller.quorum.voters, \
                 or find the quorum through controller.quorum.bootstrap.servers",
            )),
            ["broker", "controller"] => Ok(()),
            ["broker"] if is_voter && !voters.is_empty() => Err(bad(
                "this node.id is one of controller.quorum.voters; a voter needs process.roles=broker,controller",
            )),
            ["broker"] if voters.is_empty() => Err(bad(
                "a broker-only node needs controller.quorum.voters naming the quorum it joins",
            )),
            ["broker"] => Ok(()),
            ["controller"] => Err(bad(
                "Skein has no controller-only nodes: every node is a broker, and the voters of controller.quorum.voters are also controllers (process.roles=broker,controller)",
            )),
            _ => Err(bad("expected broker or broker,controller")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::load;

    #[test]
    fn several_named_listeners_each_advertise_their_own_address() {
        let c = load(&[
            "listeners=INTERNAL://:9092,EXTERNAL://:9094,CONTROLLER://:9093",
            "listener.security.protocol.map=INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "advertised.listeners=INTERNAL://skein-0.skein:9092,EXTERNAL://localhost:31094",
            "inter.broker.listener.name=INTERNAL",
        ])
        .unwrap();
        let names: Vec<_> = c.listeners().into_iter().map(|l| l.name).collect();
        assert_eq!(names, ["INTERNAL", "EXTERNAL"]);
        assert_eq!(c.controller_listener().unwrap().port, 9093);
        let a = c.advertised_listeners();
        assert_eq!((a[0].host.as_str(), a[0].port), ("skein-0.skein", 9092));
        assert_eq!((a[1].host.as_str(), a[1].port), ("localhost", 31094));
        assert_eq!(c.advertised_listener().name, "INTERNAL");
        // The controller listener's wildcard host is the advertised inter-broker host:
        // a learner gives this address to the active controller.
        assert_eq!(c.advertised_controller_address().as_deref(), Some("skein-0.skein:9093"));
        let local = load(&[]).unwrap();
        assert_eq!(local.advertised_controller_address().as_deref(), Some("localhost:9093"));
    }

    #[test]
    fn listener_mistakes_are_startup_errors() {
        let err = |sets: &[&str]| load(sets).unwrap_err().to_string();
        assert!(err(&["listeners=INTERNAL://:9092,CONTROLLER://:9093"])
            .contains("no entry in listener.security.protocol.map"));
        assert!(err(&[
            "listeners=X://:9092,PLAINTEXT://:9094,CONTROLLER://:9093",
            "listener.security.protocol.map=X:TLS,PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
        ])
        .contains("not a security protocol"));
        assert!(load(&["listeners=SASL_SSL://:9092,PLAINTEXT://:9094,CONTROLLER://:9093"]).is_ok());
        assert!(load(&["listeners=SSL://:9092,PLAINTEXT://:9094,CONTROLLER://:9093"]).is_ok());
        // Brokers may replicate over any protocol (security::inter_broker checks its settings).
        assert!(load(&[
            "listeners=SSL://:9092,CONTROLLER://:9093",
            "controller.quorum.voters=0@a:9093",
            "inter.broker.listener.name=SSL",
        ])
        .is_ok());
        assert!(err(&["listeners=PLAINTEXT://:9092,PLAINTEXT://:9094"]).contains("appears twice"));
        assert!(err(&["advertised.listeners=OTHER://x:1"]).contains("not one of listeners"));
        assert!(err(&["inter.broker.listener.name=CONTROLLER"]).contains("must name one of the client listeners"));
        assert!(err(&["listeners=CONTROLLER://:9093"]).contains("at least one client listener"));
        assert!(err(&["listener.security.protocol.map=PLAINTEXT"]).contains("NAME:PROTOCOL"));
    }

    #[test]
    fn process_roles_are_checked_against_the_voters() {
        let voters = "controller.quorum.voters=0@a:9093,1@b:9093,2@c:9093";
        assert!(load(&["process.roles=broker,controller", voters, "node.id=1"]).is_ok());
        assert!(load(&["process.roles=controller,broker"]).is_ok());
        assert!(load(&["process.roles=broker", voters, "node.id=3"]).is_ok());
        let err = |sets: &[&str]| load(sets).unwrap_err().to_string();
        assert!(err(&["process.roles=controller"]).contains("no controller-only nodes"));
        assert!(err(&["process.roles=broker", voters, "node.id=0"]).contains("a voter needs"));
        assert!(err(&["process.roles=broker"]).contains("needs controller.quorum.voters"));
        assert!(err(&["process.roles=broker,controller", voters, "node.id=5"]).contains("must be one of"));
        assert!(err(&["process.roles=observer"]).contains("expected broker"));
    }
}
