//! A CA's Secrets as values: the CAs held (key and certificate per
//! generation), the trust bundle, the leaves, and the times the plan needs.
//! Reading and writing Secret data is pure; carrying out a plan's steps
//! draws keys (`issue`).

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::issue::{self, CertError, Issued, Usage};
use super::plan::{Ca, Policy, State, Step};

/// Annotation on the key Secret: when the bundle last changed.
pub const BUNDLE_CHANGED: &str = "skein.dev/bundle-changed";
/// Annotation on the key Secret: when a leaf of an older CA was last replaced or removed.
pub const OLD_LEAVES_CHANGED: &str = "skein.dev/old-leaves-changed";
/// On a KafkaCluster, a new value replaces both CAs (their keys) once; the key
/// Secret records the value handled.
pub const FORCE_RENEW: &str = "skein.dev/force-renew";

/// One CA and its leaves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Material {
    /// The CA's name in certificates (`demo-cluster-ca`).
    pub name: String,
    /// CAs held, by generation (the bundle).
    pub cas: BTreeMap<u32, Issued>,
    pub bundle_changed: Option<Timestamp>,
    pub old_leaves_changed: Option<Timestamp>,
    /// Leaves by name.
    pub leaves: BTreeMap<String, Issued>,
    /// The last `skein.dev/force-renew` value acted on.
    pub force_renew_handled: Option<String>,
    /// With `generate: false`: the CA the user brings.
    pub provided: Option<Provided>,
}

/// A CA the user brings (`generate: false`), as its Secret holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provided {
    Ca(Issued),
    /// Missing or unusable: why (for status and Events; never the key).
    Unusable(String),
}

impl Provided {
    /// From the user's Secret: `ca.crt` and `ca.key` (Strimzi's), or
    /// `tls.crt` and `tls.key` (cert-manager's); None when the Secret is absent.
    pub fn read(secret: &str, data: Option<&BTreeMap<String, String>>) -> Provided {
        let Some(data) = data else {
            return Provided::Unusable(format!("Secret {secret} not found"));
        };
        let pair = |c: &str, k: &str| Some((data.get(c)?.clone(), data.get(k)?.clone()));
        let Some((cert_pem, key_pem)) = pair("ca.crt", "ca.key").or_else(|| pair("tls.crt", "tls.key")) else {
            return Provided::Unusable(format!(
                "Secret {secret} has neither ca.crt and ca.key nor tls.crt and tls.key"
            ));
        };
        let ca = Issued { cert_pem, key_pem };
        match issue::check_ca(&ca) {
            Ok(()) => Provided::Ca(ca),
            Err(e) => Provided::Unusable(format!("Secret {secret}: {e}")),
        }
    }
}

impl Material {
    /// From the key Secret's data and annotations and the leaves Secret's data.
    pub fn read(
        name: &str,
        keys: &BTreeMap<String, String>,
        annotations: &BTreeMap<String, String>,
        leaves: &BTreeMap<String, String>,
    ) -> Material {
        let mut cas = BTreeMap::new();
        for (k, cert) in keys {
            let Some(g) = k.strip_prefix("ca-v").and_then(|r| r.strip_suffix(".crt")) else {
                continue;
            };
            let (Ok(g), Some(key)) = (g.parse::<u32>(), keys.get(&format!("ca-v{g}.key"))) else {
                continue;
            };
            cas.insert(
                g,
                Issued {
                    cert_pem: cert.clone(),
                    key_pem: key.clone(),
                },
            );
        }
        let time = |k: &str| annotations.get(k).and_then(|t| t.parse().ok());
        let mut out = BTreeMap::new();
        for (k, cert) in leaves {
            let Some(leaf) = k.strip_suffix(".crt") else { continue };
            if let Some(key) = leaves.get(&format!("{leaf}.key")) {
                out.insert(
                    leaf.to_string(),
                    Issued {
                        cert_pem: cert.clone(),
                        key_pem: key.clone(),
                    },
                );
            }
        }
        Material {
            name: name.to_string(),
            cas,
            bundle_changed: time(BUNDLE_CHANGED),
            old_leaves_changed: time(OLD_LEAVES_CHANGED),
            leaves: out,
            force_renew_handled: annotations.get(FORCE_RENEW).cloned(),
            provided: None,
        }
    }

    /// The generation of the held CA that signed `cert_pem`, newest first (0: none).
    pub fn generation_of(&self, cert_pem: &str) -> u32 {
        self.cas
            .iter()
            .rev()
            .find(|(_, ca)| issue::signed_by(cert_pem, &ca.cert_pem))
            .map_or(0, |(g, _)| *g)
    }

    /// What the plan sees. `wanted` gives each leaf's usage; unreadable
    /// certificates count as missing (so they are issued again).
    pub fn state(&self, wanted: &BTreeMap<String, Usage>, force_renew: bool) -> State {
        let cas = self
            .cas
            .iter()
            .filter_map(|(g, ca)| {
                Some(Ca {
                    generation: *g,
                    not_after: issue::read(&ca.cert_pem).ok()?.not_after,
                })
            })
            .collect();
        let leaves = self
            .leaves
            .iter()
            .filter_map(|(name, l)| {
                let read = issue::read(&l.cert_pem).ok()?;
                let names = match wanted.get(name) {
                    Some(Usage::Broker { dns_names }) => dns_names.clone(),
                    _ => Vec::new(),
                };
                Some((name.clone(), read.leaf(self.generation_of(&l.cert_pem), &names)))
            })
            .collect();
        let provided_changed = match &self.provided {
            Some(Provided::Ca(p)) => Some(self.cas.values().next_back().map(|c| &c.cert_pem) != Some(&p.cert_pem)),
            _ => None,
        };
        State {
            cas,
            provided_changed,
            bundle_changed: self.bundle_changed,
            leaves,
            old_leaves_changed: self.old_leaves_changed,
            wanted: wanted.keys().cloned().collect(),
            force_renew,
        }
    }

    /// Carries out `steps` at `now`: new CAs and leaves (random keys), removals.
    pub fn apply(
        &mut self,
        steps: &[Step],
        wanted: &BTreeMap<String, Usage>,
        common_names: &dyn Fn(&str) -> String,
        policy: &Policy,
        now: Timestamp,
    ) -> Result<(), CertError> {
        let newest = |m: &Material| m.cas.keys().next_back().copied();
        for step in steps {
            match step {
                Step::CreateCa | Step::AddCa { .. } => {
                    let g = newest(self).map_or(1, |g| g + 1);
                    let ca = match &self.provided {
                        Some(Provided::Ca(p)) => p.clone(),
                        Some(Provided::Unusable(why)) => return Err(CertError::Read(why.clone())),
                        None => issue::new_ca(&self.name, g, now, policy.ca_validity)?,
                    };
                    self.cas.insert(g, ca);
                    self.bundle_changed = Some(now);
                }
                Step::DropCa { generation } => {
                    self.cas.remove(generation);
                    self.bundle_changed = Some(now);
                }
                Step::Issue { leaf, generation } => {
                    let Some(ca) = self.cas.get(generation) else {
                        return Err(CertError::Read(format!(
                            "no CA of generation {generation} to sign {leaf}"
                        )));
                    };
                    let usage = wanted.get(leaf).cloned().unwrap_or(Usage::Client);
                    let issued = issue::issue(ca, &common_names(leaf), &usage, now, policy.leaf_validity)?;
                    let newest = newest(self);
                    if let Some(old) = self.leaves.insert(leaf.clone(), issued) {
                        if Some(self.generation_of(&old.cert_pem)) != newest {
                            self.old_leaves_changed = Some(now);
                        }
                    }
                }
                Step::Revoke { leaf } => {
                    let newest = newest(self);
                    if let Some(old) = self.leaves.remove(leaf) {
                        if Some(self.generation_of(&old.cert_pem)) != newest {
                            self.old_leaves_changed = Some(now);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The trust bundle: every CA held, newest first.
    pub fn bundle(&self) -> String {
        self.cas.values().rev().map(|c| c.cert_pem.as_str()).collect()
    }

    /// The key Secret's data: `ca-vN.crt`/`.key` per CA, `ca.crt`/`ca.key` the newest.
    pub fn key_data(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (g, ca) in &self.cas {
            out.insert(format!("ca-v{g}.crt"), ca.cert_pem.clone());
            out.insert(format!("ca-v{g}.key"), ca.key_pem.clone());
        }
        if let Some(ca) = self.cas.values().next_back() {
            out.insert("ca.crt".into(), ca.cert_pem.clone());
            out.insert("ca.key".into(), ca.key_pem.clone());
        }
        out
    }

    /// The key Secret's annotations.
    pub fn annotations(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        if let Some(t) = self.bundle_changed {
            out.insert(BUNDLE_CHANGED.into(), t.to_string());
        }
        if let Some(t) = self.old_leaves_changed {
            out.insert(OLD_LEAVES_CHANGED.into(), t.to_string());
        }
        if let Some(v) = &self.force_renew_handled {
            out.insert(FORCE_RENEW.into(), v.clone());
        }
        out
    }

    /// The leaves Secret's data: `<leaf>.crt`, `<leaf>.key` and `<leaf>.pem` (key then chain).
    pub fn leaves_data(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (name, l) in &self.leaves {
            out.insert(format!("{name}.crt"), l.cert_pem.clone());
            out.insert(format!("{name}.key"), l.key_pem.clone());
            out.insert(format!("{name}.pem"), format!("{}{}", l.key_pem, l.cert_pem));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use jiff::SignedDuration;

    use super::*;
    use crate::certificates::plan::decide;

    fn policy() -> Policy {
        let days = |d: i64| SignedDuration::from_hours(24 * d);
        Policy {
            ca_validity: days(365),
            ca_renewal: days(30),
            leaf_validity: days(365),
            leaf_renewal: days(30),
            propagation: SignedDuration::from_mins(3),
        }
    }

    #[test]
    fn a_ca_the_user_brings_signs_the_leaves_and_its_replacement_moves_them() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let wanted: BTreeMap<String, Usage> = [("operator".to_string(), Usage::Client)].into();
        // Made outside the operator (cert-manager's key names), any subject.
        let company = |n| issue::new_ca("Example Corp", n, now, SignedDuration::from_hours(24 * 400)).unwrap();
        let secret = |ca: &Issued| -> BTreeMap<String, String> {
            [
                ("tls.crt".to_string(), ca.cert_pem.clone()),
                ("tls.key".to_string(), ca.key_pem.clone()),
            ]
            .into()
        };
        let (v1, v2) = (company(1), company(2));
        let mut m = Material {
            name: "demo-cluster-ca".into(),
            provided: Some(Provided::read("corp-ca", Some(&secret(&v1)))),
            ..Default::default()
        };
        let d = decide(&m.state(&wanted, false), &policy(), now);
        m.apply(&d.steps, &wanted, &|l| format!("demo-{l}"), &policy(), now)
            .unwrap();
        assert_eq!(m.cas[&1], v1);
        assert_eq!(m.generation_of(&m.leaves["operator"].cert_pem), 1);
        // A new CA in the user's Secret: both in the bundle, leaves move after propagation.
        m.provided = Some(Provided::read("corp-ca", Some(&secret(&v2))));
        let later = now + SignedDuration::from_mins(1);
        let d = decide(&m.state(&wanted, false), &policy(), later);
        assert_eq!(d.steps, vec![Step::AddCa { generation: 2 }]);
        m.apply(&d.steps, &wanted, &|l| format!("demo-{l}"), &policy(), later)
            .unwrap();
        assert_eq!(m.cas[&2], v2);
        let moved = later + SignedDuration::from_mins(4);
        let d = decide(&m.state(&wanted, false), &policy(), moved);
        m.apply(&d.steps, &wanted, &|l| format!("demo-{l}"), &policy(), moved)
            .unwrap();
        assert_eq!(m.generation_of(&m.leaves["operator"].cert_pem), 2);
        // A missing or unusable Secret is named, and nothing is signed.
        assert_eq!(
            Provided::read("corp-ca", None),
            Provided::Unusable("Secret corp-ca not found".into())
        );
        let half: BTreeMap<String, String> = [("ca.crt".to_string(), v1.cert_pem.clone())].into();
        assert!(matches!(Provided::read("corp-ca", Some(&half)), Provided::Unusable(m) if m.contains("neither")));
        let mut none = Material {
            provided: Some(Provided::Unusable("Secret corp-ca not found".into())),
            ..Default::default()
        };
        assert!(none
            .apply(&[Step::CreateCa], &wanted, &|l| l.to_string(), &policy(), now)
            .is_err());
        assert!(none.cas.is_empty());
    }

    #[test]
    fn secrets_written_then_read_give_back_the_same_material_and_plan() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let wanted: BTreeMap<String, Usage> = [
            (
                "demo-0".to_string(),
                Usage::Broker {
                    dns_names: vec!["demo-0.demo-brokers".into()],
                },
            ),
            ("operator".to_string(), Usage::Client),
        ]
        .into();
        let mut m = Material {
            name: "demo-cluster-ca".into(),
            ..Default::default()
        };
        let d = decide(&m.state(&wanted, false), &policy(), now);
        m.apply(&d.steps, &wanted, &|l| format!("demo-{l}"), &policy(), now)
            .unwrap();
        assert_eq!(m.cas.len(), 1);
        assert_eq!(m.leaves.len(), 2);
        let back = Material::read("demo-cluster-ca", &m.key_data(), &m.annotations(), &m.leaves_data());
        assert_eq!(back, m);
        // Nothing more to do a minute later.
        let later = now + SignedDuration::from_mins(1);
        assert!(decide(&back.state(&wanted, false), &policy(), later).steps.is_empty());
        // A forced renewal adds a second CA to the bundle; the leaves stay until it has spread.
        let d = decide(&back.state(&wanted, true), &policy(), later);
        let mut m = back;
        m.apply(&d.steps, &wanted, &|l| format!("demo-{l}"), &policy(), later)
            .unwrap();
        assert_eq!(m.cas.keys().copied().collect::<Vec<_>>(), [1, 2]);
        assert_eq!(m.bundle().matches("BEGIN CERTIFICATE").count(), 2);
        assert!(m.leaves_data()["demo-0.pem"].contains("PRIVATE KEY"));
    }
}
