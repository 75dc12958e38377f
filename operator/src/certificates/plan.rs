//! When to create, replace and drop a CA, and when to issue each leaf
//! certificate: a state machine over what the Secrets hold, driven by a clock
//! passed in.
//!
//! A CA is never renewed in place: it is replaced by a new key beside it. The
//! trust bundle then holds both (old and new), and:
//! 1. leaves keep coming from the old CA until the bundle with the new one has
//!    had time to reach every pod that mounts it (`propagation`);
//! 2. then every leaf is re-issued by the new CA;
//! 3. the old CA leaves the bundle only when every leaf is the new CA's and
//!    those leaves have had time to reach the brokers.
//!
//! So at every moment any leaf a broker may serve is signed by a CA in any
//! bundle a client may hold (the property test below checks this against a
//! world where every Secret change reaches each pod at any time within
//! `propagation`), and no step needs a restart: brokers reload both files.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};

/// One CA: its generation (1, 2, ...) and validity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ca {
    pub generation: u32,
    pub not_after: Timestamp,
}

/// A leaf certificate as issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leaf {
    /// The generation of the CA that signed it.
    pub issuer: u32,
    pub not_after: Timestamp,
    /// Its names are the ones it should carry now (a broker's DNS names change
    /// with the listeners; a user's subject with its name).
    pub names_match: bool,
}

/// How long things are valid, and how early they are replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub ca_validity: SignedDuration,
    /// A CA is replaced this long before it expires.
    pub ca_renewal: SignedDuration,
    pub leaf_validity: SignedDuration,
    /// A leaf is re-issued this long before it expires.
    pub leaf_renewal: SignedDuration,
    /// The longest a Secret change takes to reach every pod that mounts it
    /// (the kubelet's sync period and cache, then the broker's file reload).
    pub propagation: SignedDuration,
}

/// What the Secrets hold now.
#[derive(Debug, Clone, Default)]
pub struct State {
    /// The CAs in the trust bundle, oldest first (two only during a replacement);
    /// the operator holds each one's key.
    pub cas: Vec<Ca>,
    /// When the bundle last changed.
    pub bundle_changed: Option<Timestamp>,
    /// The leaves issued, by name.
    pub leaves: BTreeMap<String, Leaf>,
    /// When a leaf signed by an older CA than the newest was last replaced or
    /// removed: brokers may serve it until this has propagated.
    pub old_leaves_changed: Option<Timestamp>,
    /// The leaves that should exist (brokers, or users).
    pub wanted: Vec<String>,
    /// A replacement asked for (`skein.dev/force-renew`).
    pub force_renew: bool,
    /// A CA the user brings (`generate: false`): whether it is not the newest
    /// held yet. Such a CA is replaced when the user puts a new one in its
    /// Secret, never by the clock or `force_renew`. None: the operator's own.
    pub provided_changed: Option<bool>,
}

/// One change to the Secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The first CA (generation 1), and a bundle of it.
    CreateCa,
    /// A new CA key beside the current one, added to the bundle.
    AddCa { generation: u32 },
    /// Issues (or re-issues) a leaf from the CA of `generation`.
    Issue { leaf: String, generation: u32 },
    /// Removes a leaf no longer wanted.
    Revoke { leaf: String },
    /// Removes the CA of `generation` (and its key) from the bundle.
    DropCa { generation: u32 },
}

/// Where a CA stands, for status and Events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Nothing exists yet.
    Creating,
    /// One CA, every leaf current.
    Ready,
    /// A new CA is in the bundle; waiting for it to reach every pod.
    Distributing,
    /// Leaves are moving to the new CA.
    Reissuing,
    /// Every leaf is the new CA's; waiting for them to reach the brokers before the old CA goes.
    Settling,
}

/// The steps to take now, and when to look again at the latest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub steps: Vec<Step>,
    pub phase: Phase,
    /// The next moment something falls due (a renewal, or the end of a propagation wait).
    pub next_check: Option<Timestamp>,
}

/// Decides the next changes.
pub fn decide(state: &State, policy: &Policy, now: Timestamp) -> Decision {
    let mut steps = Vec::new();
    let mut due: Vec<Timestamp> = Vec::new();
    let settled = |changed: Option<Timestamp>, due: &mut Vec<Timestamp>| match changed {
        Some(t) if t + policy.propagation > now => {
            due.push(t + policy.propagation);
            false
        }
        _ => true,
    };
    let (oldest, newest) = match (state.cas.first(), state.cas.last()) {
        (Some(o), Some(n)) => (*o, *n),
        _ => {
            steps.push(Step::CreateCa);
            // Nothing trusts anything yet: the first leaves come at once.
            for w in &state.wanted {
                steps.push(Step::Issue {
                    leaf: w.clone(),
                    generation: 1,
                });
            }
            return Decision {
                steps,
                phase: Phase::Creating,
                next_check: Some(now + policy.propagation).filter(|t| *t > now),
            };
        }
    };
    let bundle_settled = settled(state.bundle_changed, &mut due);
    let replacing = state.cas.len() > 1;
    // Until the new CA has reached every pod, leaves come from the old one.
    let signer = if replacing && !bundle_settled { oldest } else { newest };

    let renew_at = newest.not_after - policy.ca_renewal;
    let replace = match state.provided_changed {
        Some(changed) => changed,
        None => state.force_renew || now >= renew_at,
    };
    if !replacing && replace {
        steps.push(Step::AddCa {
            generation: newest.generation + 1,
        });
        due.push(now + policy.propagation);
    } else if !replacing && state.provided_changed.is_none() {
        due.push(renew_at);
    }

    let trusted = |g: u32| state.cas.iter().any(|c| c.generation == g);
    for name in &state.wanted {
        let reissue = match state.leaves.get(name) {
            None => true,
            Some(l) => {
                let renew_at = l.not_after - policy.leaf_renewal;
                due.push(renew_at);
                !l.names_match || now >= renew_at || !trusted(l.issuer) || l.issuer != signer.generation
            }
        };
        if reissue {
            steps.push(Step::Issue {
                leaf: name.clone(),
                generation: signer.generation,
            });
        }
    }
    for name in state.leaves.keys().filter(|n| !state.wanted.contains(n)) {
        steps.push(Step::Revoke { leaf: name.clone() });
    }

    // Leaves still signed by an older CA (re-issued this round or not).
    let migrated = state.leaves.values().all(|l| l.issuer == newest.generation);
    // Certificates this plan does not track (KafkaUsers', re-issued by their
    // own reconciler once the new CA is trusted) move when the bundle settles:
    // the old CA stays a full propagation after that, too.
    let moved = state
        .old_leaves_changed
        .max(state.bundle_changed.map(|t| t + policy.propagation));
    let leaves_settled = migrated && settled(moved, &mut due);
    let phase = if !replacing {
        Phase::Ready
    } else if !bundle_settled {
        Phase::Distributing
    } else if !migrated {
        Phase::Reissuing
    } else if !leaves_settled {
        Phase::Settling
    } else {
        steps.push(Step::DropCa {
            generation: oldest.generation,
        });
        Phase::Settling
    };
    Decision {
        steps,
        phase,
        next_check: due.into_iter().filter(|t| *t > now).min(),
    }
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Creating => "Creating",
            Phase::Ready => "Ready",
            Phase::Distributing => "Distributing",
            Phase::Reissuing => "Reissuing",
            Phase::Settling => "Settling",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn minutes(m: i64) -> SignedDuration {
        SignedDuration::from_mins(m)
    }

    fn policy() -> Policy {
        Policy {
            ca_validity: minutes(24 * 60),
            ca_renewal: minutes(6 * 60),
            leaf_validity: minutes(8 * 60),
            leaf_renewal: minutes(2 * 60),
            propagation: minutes(3),
        }
    }

    /// A world where every change to the Secrets reaches each pod at any time
    /// within `propagation`: what a broker may serve, what a client may trust.
    #[derive(Debug, Default)]
    struct World {
        state: State,
        /// Every bundle published: (when, CA generations and their expiry).
        bundles: Vec<(Timestamp, Vec<Ca>)>,
        /// Every leaf published, by name: (when, the leaf, or None when revoked).
        leaves: BTreeMap<String, Vec<(Timestamp, Option<Leaf>)>>,
        next_generation: u32,
    }

    impl World {
        fn apply(&mut self, d: &Decision, p: &Policy, now: Timestamp) {
            let mut bundle_changed = false;
            for step in &d.steps {
                match step {
                    Step::CreateCa | Step::AddCa { .. } => {
                        self.next_generation += 1;
                        if let Step::AddCa { generation } = step {
                            assert_eq!(*generation, self.next_generation);
                        }
                        self.state.cas.push(Ca {
                            generation: self.next_generation,
                            not_after: now + p.ca_validity,
                        });
                        bundle_changed = true;
                    }
                    Step::DropCa { generation } => {
                        self.state.cas.retain(|c| c.generation != *generation);
                        bundle_changed = true;
                    }
                    Step::Issue { leaf, generation } => {
                        let ca = self
                            .state
                            .cas
                            .iter()
                            .find(|c| c.generation == *generation)
                            .expect("signer held");
                        // A leaf never outlives its CA.
                        let l = Leaf {
                            issuer: *generation,
                            not_after: (now + p.leaf_validity).min(ca.not_after),
                            names_match: true,
                        };
                        let newest = self.state.cas.last().map(|c| c.generation);
                        if let Some(old) = self.state.leaves.insert(leaf.clone(), l) {
                            if Some(old.issuer) != newest {
                                self.state.old_leaves_changed = Some(now);
                            }
                        }
                        self.leaves.entry(leaf.clone()).or_default().push((now, Some(l)));
                    }
                    Step::Revoke { leaf } => {
                        let newest = self.state.cas.last().map(|c| c.generation);
                        if let Some(old) = self.state.leaves.remove(leaf) {
                            if Some(old.issuer) != newest {
                                self.state.old_leaves_changed = Some(now);
                            }
                        }
                        self.leaves.entry(leaf.clone()).or_default().push((now, None));
                    }
                }
            }
            if bundle_changed {
                self.state.bundle_changed = Some(now);
                self.bundles.push((now, self.state.cas.clone()));
            }
        }

        /// The versions an observer may hold at `now`: every one published
        /// within `propagation`, and the one before them.
        fn visible<T: Clone>(history: &[(Timestamp, T)], now: Timestamp, p: &Policy) -> Vec<T> {
            let cutoff = now - p.propagation;
            let settled = history.iter().rposition(|(t, _)| *t <= cutoff);
            let from = settled.unwrap_or(0);
            history[from..]
                .iter()
                .filter(|(t, _)| *t <= now)
                .map(|(_, v)| v.clone())
                .collect()
        }

        /// Every leaf a broker may serve is signed by a CA in every bundle a
        /// client may hold, and neither has expired.
        fn check(&self, now: Timestamp, p: &Policy) -> Result<(), String> {
            let bundles = Self::visible(&self.bundles, now, p);
            for (name, history) in &self.leaves {
                for leaf in Self::visible(history, now, p).into_iter().flatten() {
                    if leaf.not_after <= now {
                        return Err(format!("{name} serves an expired certificate at {now}"));
                    }
                    for b in &bundles {
                        match b.iter().find(|c| c.generation == leaf.issuer) {
                            None => {
                                return Err(format!(
                                    "at {now}, {name}'s certificate (CA {}) is not in a bundle a client holds: {b:?}",
                                    leaf.issuer
                                ))
                            }
                            Some(ca) if ca.not_after <= now => {
                                return Err(format!("at {now}, {name}'s CA {} has expired", ca.generation))
                            }
                            Some(_) => {}
                        }
                    }
                }
            }
            Ok(())
        }
    }

    fn run(p: Policy, ticks: &[(i64, bool, u8)]) -> Result<World, String> {
        let mut w = World::default();
        let mut now = Timestamp::UNIX_EPOCH;
        for (step, force, brokers) in ticks {
            // Time passes; at every minute of it nothing may break.
            for _ in 0..*step {
                now += minutes(1);
                w.check(now, &p)?;
            }
            w.state.wanted = (0..*brokers).map(|b| format!("broker-{b}")).collect();
            w.state.force_renew = *force;
            let d = decide(&w.state, &p, now);
            if let Some(next) = d.next_check {
                if next <= now {
                    return Err(format!("next check {next} is not after now {now}"));
                }
            }
            w.apply(&d, &p, now);
            w.check(now, &p)?;
        }
        Ok(w)
    }

    #[test]
    fn a_ca_the_user_brings_is_replaced_when_its_secret_changes_never_by_the_clock() {
        let p = policy();
        let ca = Ca {
            generation: 1,
            not_after: Timestamp::UNIX_EPOCH + minutes(100),
        };
        let leaf = Leaf {
            issuer: 1,
            not_after: Timestamp::UNIX_EPOCH + minutes(100),
            names_match: true,
        };
        let state = State {
            cas: vec![ca],
            leaves: [("b0".to_string(), leaf)].into(),
            wanted: vec!["b0".into()],
            force_renew: true,
            provided_changed: Some(false),
            ..Default::default()
        };
        // Past its renewal point and asked to renew: the user's CA is the user's to replace.
        let d = decide(&state, &p, Timestamp::UNIX_EPOCH + minutes(95));
        assert!(
            !d.steps.iter().any(|s| matches!(s, Step::AddCa { .. })),
            "{:?}",
            d.steps
        );
        assert_eq!(d.phase, Phase::Ready);
        // The user put a new CA in the Secret: it joins the bundle as generation 2.
        let changed = State {
            provided_changed: Some(true),
            ..state
        };
        let d = decide(&changed, &p, Timestamp::UNIX_EPOCH + minutes(10));
        assert_eq!(d.steps[0], Step::AddCa { generation: 2 });
        assert_eq!(d.steps.iter().filter(|s| matches!(s, Step::AddCa { .. })).count(), 1);
    }

    #[test]
    fn a_new_cluster_gets_a_ca_and_every_leaf_at_once() {
        let d = decide(
            &State {
                wanted: vec!["b0".into(), "b1".into()],
                ..Default::default()
            },
            &policy(),
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(d.steps.len(), 3);
        assert_eq!(d.steps[0], Step::CreateCa);
        assert_eq!(d.phase, Phase::Creating);
    }

    #[test]
    fn a_forced_renewal_walks_through_every_phase_then_drops_the_old_ca() {
        let p = policy();
        let mut w = World::default();
        let mut now = Timestamp::UNIX_EPOCH;
        w.state.wanted = vec!["b0".into(), "b1".into()];
        let mut phases = Vec::new();
        for i in 0..20 {
            w.state.force_renew = i == 2;
            let d = decide(&w.state, &p, now);
            phases.push(d.phase);
            w.apply(&d, &p, now);
            w.check(now, &p).unwrap();
            now += minutes(1);
        }
        phases.dedup();
        assert_eq!(
            phases,
            [
                Phase::Creating,
                Phase::Ready,
                Phase::Distributing,
                Phase::Reissuing,
                Phase::Settling,
                Phase::Ready
            ]
        );
        assert_eq!(w.state.cas.iter().map(|c| c.generation).collect::<Vec<_>>(), [2]);
        assert!(w.state.leaves.values().all(|l| l.issuer == 2));
    }

    #[test]
    fn a_ca_without_tracked_leaves_keeps_its_old_key_a_propagation_after_the_bundle_settles() {
        // The clients CA: its leaves are KafkaUsers', re-issued by the user
        // reconciler once the bundle has settled; applications then need a
        // propagation period to take them before the old CA goes.
        let p = policy();
        let mut w = World::default();
        let start = Timestamp::UNIX_EPOCH;
        let mut dropped_at = None;
        for m in 0..20 {
            let now = start + minutes(m);
            w.state.force_renew = m == 1;
            let d = decide(&w.state, &p, now);
            if d.steps.iter().any(|s| matches!(s, Step::DropCa { .. })) {
                dropped_at.get_or_insert(m);
            }
            w.apply(&d, &p, now);
        }
        // The new key joins at minute 1, settles at 4; the old one goes at 7.
        assert_eq!(dropped_at, Some(7));
    }

    #[test]
    fn the_old_ca_stays_while_a_new_broker_still_has_its_leaf() {
        let p = policy();
        let ca = |g| Ca {
            generation: g,
            not_after: Timestamp::UNIX_EPOCH + minutes(10_000),
        };
        let leaf = |g| Leaf {
            issuer: g,
            not_after: Timestamp::UNIX_EPOCH + minutes(5_000),
            names_match: true,
        };
        let state = State {
            cas: vec![ca(1), ca(2)],
            bundle_changed: Some(Timestamp::UNIX_EPOCH),
            leaves: [("b0".to_string(), leaf(2)), ("b1".to_string(), leaf(1))].into(),
            old_leaves_changed: Some(Timestamp::UNIX_EPOCH),
            wanted: vec!["b0".into(), "b1".into()],
            force_renew: false,
            provided_changed: None,
        };
        let d = decide(&state, &p, Timestamp::UNIX_EPOCH + minutes(60));
        assert_eq!(
            d.steps,
            [Step::Issue {
                leaf: "b1".into(),
                generation: 2
            }]
        );
    }

    #[test]
    fn a_quiet_year_renews_every_ca_before_it_expires() {
        let p = policy();
        // 8 ticks a day for 40 days, brokers 3.
        let ticks = vec![(180, false, 3u8); 8 * 40];
        let w = run(p, &ticks).unwrap();
        assert!(w.next_generation > 30, "CAs replaced: {}", w.next_generation);
        assert!(w.state.cas.len() <= 2);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn no_moment_where_a_served_leaf_is_not_trusted_by_a_bundle_a_client_holds(
            ca_validity in 60i64..600,
            ca_renewal_pct in 20i64..50,
            leaf_validity in 30i64..300,
            leaf_renewal_pct in 20i64..50,
            propagation in 0i64..6,
            ticks in proptest::collection::vec((1i64..4, proptest::bool::weighted(0.03), 1u8..6), 1..400),
        ) {
            let p = Policy {
                ca_validity: minutes(ca_validity),
                ca_renewal: minutes(ca_validity * ca_renewal_pct / 100),
                leaf_validity: minutes(leaf_validity),
                leaf_renewal: minutes(leaf_validity * leaf_renewal_pct / 100),
                propagation: minutes(propagation),
            };
            // What validation requires: renewals leave room for two propagations
            // and a reconcile interval (3 minutes here) on each side.
            prop_assume!(p.ca_renewal > minutes(3 * propagation + 8));
            prop_assume!(p.leaf_renewal > minutes(propagation + 4));
            if let Err(e) = run(p, &ticks) {
                prop_assert!(false, "{}", e);
            }
        }
    }
}
