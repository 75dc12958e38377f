//! Voter changes of the metadata quorum (KIP-853): from the voters a cluster
//! has to the ones it should have, as a sequence of single changes (Kafka's
//! AddRaftVoter and RemoveRaftVoter each move one voter), each leaving the
//! quorum a majority of voters able to vote, so every change can commit and
//! the next one be proposed.
//!
//! A voter is a node id and the directory id of its metadata log: a node whose
//! disk was lost comes back with a new directory id and is a new voter, so
//! replacing it is an addition (the new directory) and a removal (the old).
//!
//! The order: voters that cannot vote (stopped, or lost) and are not wanted go
//! first, since each such removal raises the share of those that can; then the
//! additions, each of a voter that can vote (caught up as an observer); then
//! the removals of the rest. That order always finds a plan when the quorum
//! starts with a majority, every voter to add can vote and the voters wanted
//! have a majority that can; otherwise there is none, and the planner says
//! why instead of leaving the quorum without one.

use std::collections::BTreeSet;

/// A voter: node id and metadata-log directory id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Voter {
    pub id: i32,
    pub directory_id: u128,
}

/// One change of the voter set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoterChange {
    Add(Voter),
    Remove(Voter),
}

/// Why no sequence of changes gets there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoterPlanError {
    #[error("the target voter set is empty")]
    NoVoters,
    #[error("the quorum has no majority now ({able} of {voters} voters can vote): no change can be committed")]
    NoMajority { able: usize, voters: usize },
    #[error("voter {id} cannot vote yet (not running or not caught up): it cannot be added")]
    NotReady { id: i32 },
    #[error("node {id} would be a voter twice (two directory ids)")]
    Duplicate { id: i32 },
    #[error("only {able} of the {voters} voters wanted can vote: that quorum would have no majority")]
    TargetWithoutMajority { able: usize, voters: usize },
}

/// Whether the voters that can vote are a majority of `voters`.
pub fn has_majority(voters: &BTreeSet<Voter>, able: &BTreeSet<Voter>) -> bool {
    2 * voters.intersection(able).count() > voters.len()
}

/// The single changes from `current` to `target`, where `able` are the
/// voters (and observers) that can vote now.
pub fn plan_voter_changes(
    current: &BTreeSet<Voter>,
    target: &BTreeSet<Voter>,
    able: &BTreeSet<Voter>,
) -> Result<Vec<VoterChange>, VoterPlanError> {
    if target.is_empty() {
        return Err(VoterPlanError::NoVoters);
    }
    let mut ids = BTreeSet::new();
    if let Some(v) = target.iter().find(|v| !ids.insert(v.id)) {
        return Err(VoterPlanError::Duplicate { id: v.id });
    }
    if !has_majority(current, able) {
        return Err(VoterPlanError::NoMajority {
            able: current.intersection(able).count(),
            voters: current.len(),
        });
    }
    if let Some(v) = target.difference(current).find(|v| !able.contains(v)) {
        return Err(VoterPlanError::NotReady { id: v.id });
    }
    if !has_majority(target, able) {
        return Err(VoterPlanError::TargetWithoutMajority {
            able: target.intersection(able).count(),
            voters: target.len(),
        });
    }
    let unable_leaving = current.difference(target).filter(|v| !able.contains(v));
    let arriving = target.difference(current);
    let able_leaving = current.difference(target).filter(|v| able.contains(v));
    let changes: Vec<VoterChange> = unable_leaving
        .copied()
        .map(VoterChange::Remove)
        .chain(arriving.copied().map(VoterChange::Add))
        .chain(able_leaving.copied().map(VoterChange::Remove))
        .collect();
    // The order above keeps a majority at every step (see the module's
    // comment); checked, so a mistake here is an error, never a lost quorum.
    let mut set = current.clone();
    for change in &changes {
        apply(&mut set, *change);
        if !has_majority(&set, able) {
            return Err(VoterPlanError::NoMajority {
                able: set.intersection(able).count(),
                voters: set.len(),
            });
        }
    }
    Ok(changes)
}

/// Applies one change to a voter set.
pub fn apply(set: &mut BTreeSet<Voter>, change: VoterChange) {
    match change {
        VoterChange::Add(v) => set.insert(v),
        VoterChange::Remove(v) => set.remove(&v),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(id: i32) -> Voter {
        Voter {
            id,
            directory_id: id as u128,
        }
    }

    fn set(ids: &[i32]) -> BTreeSet<Voter> {
        ids.iter().map(|i| v(*i)).collect()
    }

    #[test]
    fn one_to_three_to_five_and_back_one_voter_at_a_time() {
        let all = set(&[1, 2, 3, 4, 5]);
        let up = plan_voter_changes(&set(&[1]), &set(&[1, 2, 3]), &all).unwrap();
        assert_eq!(up, [VoterChange::Add(v(2)), VoterChange::Add(v(3))]);
        let up = plan_voter_changes(&set(&[1, 2, 3]), &set(&[1, 2, 3, 4, 5]), &all).unwrap();
        assert_eq!(up.len(), 2);
        let down = plan_voter_changes(&set(&[1, 2, 3, 4, 5]), &set(&[1, 2, 3]), &all).unwrap();
        assert_eq!(down, [VoterChange::Remove(v(4)), VoterChange::Remove(v(5))]);
        assert_eq!(plan_voter_changes(&set(&[1, 2]), &set(&[1, 2]), &all).unwrap(), []);
    }

    #[test]
    fn a_voter_whose_disk_was_lost_is_replaced_by_its_new_directory() {
        let lost = v(3);
        let back = Voter {
            id: 3,
            directory_id: 99,
        };
        let current = set(&[1, 2, 3]);
        let target: BTreeSet<Voter> = [v(1), v(2), back].into();
        // The old directory cannot vote; the node runs again with the new one.
        let able: BTreeSet<Voter> = [v(1), v(2), back].into();
        let plan = plan_voter_changes(&current, &target, &able).unwrap();
        assert_eq!(plan, [VoterChange::Remove(lost), VoterChange::Add(back)]);
    }

    #[test]
    fn each_impossible_change_is_refused_with_its_reason() {
        let cases = [
            ("no target", plan_voter_changes(&set(&[1]), &set(&[]), &set(&[1]))),
            (
                "no majority now",
                plan_voter_changes(&set(&[1, 2, 3]), &set(&[1]), &set(&[1])),
            ),
            (
                "a voter to add is not running",
                plan_voter_changes(&set(&[1]), &set(&[1, 2]), &set(&[1])),
            ),
            (
                "a target whose voters cannot vote",
                plan_voter_changes(&set(&[1, 2, 3]), &set(&[2, 3]), &set(&[1, 2])),
            ),
            (
                "one node twice",
                plan_voter_changes(&set(&[1]), &[v(1), Voter { id: 1, directory_id: 7 }].into(), &set(&[1])),
            ),
        ];
        let reasons: Vec<&str> = cases
            .iter()
            .map(|(name, r)| match r {
                Err(VoterPlanError::NoVoters) => "no target",
                Err(VoterPlanError::NoMajority { .. }) => "no majority now",
                Err(VoterPlanError::NotReady { .. }) => "a voter to add is not running",
                Err(VoterPlanError::Duplicate { .. }) => "one node twice",
                Err(VoterPlanError::TargetWithoutMajority { .. }) => "a target whose voters cannot vote",
                Ok(_) => panic!("{name}: a plan"),
            })
            .collect();
        assert_eq!(reasons, cases.iter().map(|(n, _)| *n).collect::<Vec<_>>());
    }

    proptest! {
        #[test]
        fn a_plan_reaches_its_target_one_change_at_a_time_never_below_a_majority(
            current in proptest::collection::btree_set(0i32..9, 1..7),
            target in proptest::collection::btree_set(0i32..9, 1..7),
            down in proptest::collection::btree_set(0i32..9, 0..4),
        ) {
            let current: BTreeSet<Voter> = current.into_iter().map(v).collect();
            let target: BTreeSet<Voter> = target.into_iter().map(v).collect();
            let able: BTreeSet<Voter> = (0..9).map(v).filter(|x| !down.contains(&x.id)).collect();
            match plan_voter_changes(&current, &target, &able) {
                Ok(plan) => {
                    let mut s = current.clone();
                    for change in &plan {
                        let before = s.len();
                        apply(&mut s, *change);
                        prop_assert_eq!(s.len().abs_diff(before), 1, "one voter per change");
                        prop_assert!(has_majority(&s, &able), "below a majority after {:?}", change);
                        if let VoterChange::Add(x) = change {
                            prop_assert!(able.contains(x), "added a voter that cannot vote");
                        }
                    }
                    prop_assert_eq!(s, target);
                }
                Err(e) => {
                    // Refused only when there is no way: no majority to start
                    // from or to end with, or a voter to add that cannot vote.
                    let startable = has_majority(&current, &able);
                    let addable = target.difference(&current).all(|x| able.contains(x));
                    let endable = has_majority(&target, &able);
                    prop_assert!(!(startable && addable && endable), "refused a possible change: {}", e);
                }
            }
        }
    }
}
