//! The metadata quorum's voters follow `spec.controllers` (KIP-853): pure.
//!
//! The voters wanted are ordinals `0..controllers`. From the quorum as its
//! leader describes it (voters and observers, each with its log directory
//! id), `model::voters` plans single changes that keep a majority of voters
//! able to vote at every step; one change is made per reconcile, and the next
//! reconcile sees its result. A node whose disk was lost comes back as an
//! observer with a new directory id under a voter's id: that voter cannot
//! vote, so it is removed and the node added again under its new directory.
//!
//! A change that would leave no majority is refused: the condition says why,
//! an Event names it once, and nothing is changed.

use std::collections::{BTreeMap, BTreeSet};

use skein_client::QuorumInfo;
use skein_model::voters::{plan_voter_changes, Voter, VoterChange};

use super::events::{Event, Reason};
use crate::crd::{condition, Condition};

/// How far behind the leader's log an observer may be and still count as
/// able to vote (it has caught up).
pub const CAUGHT_UP_ENTRIES: i64 = 64;

/// One voter change for `execute` to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoterStep {
    Add { id: i32, directory_id: uuid::Uuid },
    Remove { id: i32, directory_id: uuid::Uuid },
}

impl VoterStep {
    pub fn describe(&self) -> String {
        match self {
            VoterStep::Add { id, directory_id } => format!("adding broker {id} (directory {directory_id}) as a voter"),
            VoterStep::Remove { id, directory_id } => {
                format!("removing voter {id} (directory {directory_id})")
            }
        }
    }
}

/// What this reconcile does about the voters.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub step: Option<VoterStep>,
    pub event: Option<Event>,
    /// The `Voters` condition: True once the voters are the ones wanted.
    pub condition: Condition,
    /// The voters now, for `status.voters`.
    pub voters: Vec<i32>,
}

fn voter(id: i32, d: uuid::Uuid) -> Voter {
    Voter {
        id,
        directory_id: d.as_u128(),
    }
}

/// The next voter change toward `controllers` voters. `ready` are the broker
/// pods that are Ready; `previous` the condition as recorded (an Event is
/// published when its message changes).
pub fn decide(
    controllers: i32,
    quorum: &QuorumInfo,
    ready: &BTreeSet<i32>,
    previous: Option<&Condition>,
    generation: Option<i64>,
) -> Decision {
    let leader_end = quorum
        .voters
        .iter()
        .find(|m| m.id == quorum.leader_id)
        .map_or(quorum.high_watermark, |m| m.log_end_offset);
    let caught_up = |end: i64| end >= 0 && end + CAUGHT_UP_ENTRIES >= leader_end;
    // An observer under a voter's id with another directory: that voter's disk is gone.
    let replaced: BTreeMap<i32, uuid::Uuid> = quorum
        .observers
        .iter()
        .filter(|o| {
            quorum
                .voters
                .iter()
                .any(|v| v.id == o.id && v.directory_id != o.directory_id)
        })
        .map(|o| (o.id, o.directory_id))
        .collect();
    let current: BTreeSet<Voter> = quorum.voters.iter().map(|m| voter(m.id, m.directory_id)).collect();
    let mut able = BTreeSet::new();
    for m in &quorum.voters {
        if ready.contains(&m.id) && caught_up(m.log_end_offset) && !replaced.contains_key(&m.id) {
            able.insert(voter(m.id, m.directory_id));
        }
        // Replication to the id reaches the new disk: it is as far as the voter entry says.
        if let Some(d) = replaced.get(&m.id) {
            if ready.contains(&m.id) && caught_up(m.log_end_offset) {
                able.insert(voter(m.id, *d));
            }
        }
    }
    for o in quorum.observers.iter().filter(|o| !replaced.contains_key(&o.id)) {
        if ready.contains(&o.id) && caught_up(o.log_end_offset) {
            able.insert(voter(o.id, o.directory_id));
        }
    }
    // Each wanted id as the voter it should be: the running directory.
    let target: BTreeSet<Voter> = (0..controllers)
        .filter_map(|id| {
            if let Some(d) = replaced.get(&id) {
                return Some(voter(id, *d));
            }
            quorum
                .voters
                .iter()
                .chain(&quorum.observers)
                .find(|m| m.id == id)
                .map(|m| voter(id, m.directory_id))
        })
        .collect();
    let voters: Vec<i32> = quorum.voters.iter().map(|m| m.id).collect();
    let missing: Vec<i32> = (0..controllers)
        .filter(|id| !target.iter().any(|v| v.id == *id))
        .collect();
    let (step, reason, message, done) = if !missing.is_empty() {
        (
            None,
            "Waiting",
            format!("brokers {missing:?} do not follow the metadata log yet"),
            false,
        )
    } else if current == target {
        (None, "Ready", format!("voters {voters:?}"), true)
    } else {
        match plan_voter_changes(&current, &target, &able) {
            Ok(plan) => match plan.first() {
                Some(change) => {
                    let step = match *change {
                        VoterChange::Add(v) => VoterStep::Add {
                            id: v.id,
                            directory_id: uuid::Uuid::from_u128(v.directory_id),
                        },
                        VoterChange::Remove(v) => VoterStep::Remove {
                            id: v.id,
                            directory_id: uuid::Uuid::from_u128(v.directory_id),
                        },
                    };
                    let msg = format!(
                        "voters {voters:?} -> {:?}: {} (step 1 of {})",
                        target.iter().map(|v| v.id).collect::<Vec<_>>(),
                        step.describe(),
                        plan.len()
                    );
                    (Some(step), "Changing", msg, false)
                }
                None => (None, "Ready", format!("voters {voters:?}"), true),
            },
            Err(e) => (None, "Refused", format!("voters {voters:?} stay: {e}"), false),
        }
    };
    let condition = condition("Voters", done, reason, message.clone(), generation);
    let changed = previous.is_none_or(|p| p.message != message || p.reason != reason);
    let event = match reason {
        "Changing" if changed => Some(Event::new(Reason::VoterChange, message)),
        "Refused" if changed => Some(Event::new(Reason::VoterChangeRefused, message)),
        "Ready" if previous.is_some_and(|p| p.reason == "Changing") => Some(Event::new(Reason::VotersReady, message)),
        _ => None,
    };
    Decision {
        step,
        event,
        condition,
        voters,
    }
}

#[cfg(test)]
mod tests {
    use skein_client::QuorumMember;

    use super::*;

    fn d(n: u128) -> uuid::Uuid {
        uuid::Uuid::from_u128(n)
    }

    fn m(id: i32, dir: u128, end: i64) -> QuorumMember {
        QuorumMember {
            id,
            directory_id: d(dir),
            log_end_offset: end,
        }
    }

    fn q(voters: Vec<QuorumMember>, observers: Vec<QuorumMember>) -> QuorumInfo {
        QuorumInfo {
            leader_id: voters[0].id,
            leader_epoch: 1,
            high_watermark: 100,
            voters,
            observers,
            endpoints: Default::default(),
        }
    }

    fn all_ready(n: i32) -> BTreeSet<i32> {
        (0..n).collect()
    }

    #[test]
    fn one_to_three_adds_one_caught_up_observer_at_a_time() {
        let quorum = q(vec![m(0, 10, 100)], vec![m(1, 11, 100), m(2, 12, 100)]);
        let dec = decide(3, &quorum, &all_ready(3), None, Some(2));
        assert_eq!(
            dec.step,
            Some(VoterStep::Add {
                id: 1,
                directory_id: d(11)
            })
        );
        assert_eq!(dec.condition.reason, "Changing");
        assert_eq!(dec.condition.status, "False");
        assert!(dec.event.is_some());
    }

    #[test]
    fn an_observer_far_behind_or_not_ready_is_not_added() {
        let quorum = q(vec![m(0, 10, 100), m(1, 11, 100)], vec![m(2, 12, 3)]);
        let dec = decide(3, &quorum, &all_ready(3), None, None);
        assert_eq!(dec.step, None);
        assert_eq!(dec.condition.reason, "Refused");
        let quorum = q(vec![m(0, 10, 100), m(1, 11, 100)], vec![m(2, 12, 100)]);
        let dec = decide(3, &quorum, &[0, 1].into(), None, None);
        assert_eq!(dec.step, None, "{dec:?}");
    }

    #[test]
    fn five_to_three_removes_the_highest_ordinals() {
        let voters = (0..5).map(|i| m(i, 10 + i as u128, 100)).collect();
        let dec = decide(3, &q(voters, vec![]), &all_ready(5), None, None);
        assert!(matches!(dec.step, Some(VoterStep::Remove { id: 3 | 4, .. })), "{dec:?}");
    }

    #[test]
    fn a_voter_whose_disk_was_lost_is_removed_then_added_under_its_new_directory() {
        let quorum = q(vec![m(0, 10, 100), m(1, 11, 100), m(2, 12, 100)], vec![m(2, 99, -1)]);
        let dec = decide(3, &quorum, &all_ready(3), None, None);
        assert_eq!(
            dec.step,
            Some(VoterStep::Remove {
                id: 2,
                directory_id: d(12)
            })
        );
        // After the removal the node is an observer under its new directory.
        let quorum = q(vec![m(0, 10, 100), m(1, 11, 100)], vec![m(2, 99, 100)]);
        let dec = decide(3, &quorum, &all_ready(3), None, None);
        assert_eq!(
            dec.step,
            Some(VoterStep::Add {
                id: 2,
                directory_id: d(99)
            }),
            "{dec:?}"
        );
    }

    #[test]
    fn no_change_without_a_majority_and_the_refusal_says_why() {
        let quorum = q(vec![m(0, 10, 100), m(1, 11, 100), m(2, 12, 100)], vec![]);
        let dec = decide(1, &quorum, &[0].into(), None, None);
        assert_eq!(dec.step, None);
        assert_eq!(dec.condition.reason, "Refused");
        assert!(dec.condition.message.contains("majority"), "{}", dec.condition.message);
        assert!(dec.event.is_some());
        // The same refusal again: no second Event.
        let again = decide(1, &quorum, &[0].into(), Some(&dec.condition), None);
        assert!(again.event.is_none());
    }

    #[test]
    fn voters_as_wanted_are_ready() {
        let quorum = q(vec![m(0, 10, 100), m(1, 11, 100), m(2, 12, 100)], vec![m(3, 13, 100)]);
        let dec = decide(3, &quorum, &all_ready(4), None, Some(4));
        assert_eq!(dec.step, None);
        assert_eq!(dec.condition.status, "True");
        assert_eq!(dec.condition.observed_generation, Some(4));
        assert_eq!(dec.voters, vec![0, 1, 2]);
    }
}
