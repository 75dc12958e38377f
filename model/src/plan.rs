//! Reassignment plans: from the current replica lists and a target broker set to
//! the moves that make every partition follow the classic placement over that set.
//!
//! Each partition keeps its replication factor; its target replica list is
//! [`assign_replicas_rack_aware`] over the target brokers at its own index
//! (without racks, exactly the classic [`assign_replicas`]), so the plan
//! applied to its input is exactly the placement a topic created on the target
//! set would have. A partition whose replica list is already its target is
//! left out: a plan never moves what does not change.

use std::collections::BTreeMap;

#[cfg(doc)]
use crate::placement::assign_replicas;
use crate::placement::{assign_replicas_rack_aware, PlacementError, RackedBroker};

/// Replica lists (preferred leader first) of every partition, by topic.
pub type Assignments = BTreeMap<String, Vec<Vec<i32>>>;

/// Why no plan can be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("the target broker set is empty")]
    NoBrokers,
    #[error("topic {topic} partition {partition} has no replicas")]
    NoReplicas { topic: String, partition: i32 },
    #[error("topic {topic}: {source}")]
    Placement {
        topic: String,
        #[source]
        source: PlacementError,
    },
}

/// One partition whose replica list changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMove {
    pub topic: String,
    pub partition: i32,
    pub current: Vec<i32>,
    pub target: Vec<i32>,
    /// Brokers that gain a replica (and must copy the partition's data).
    pub adding: Vec<i32>,
    /// Brokers that lose their replica once the new ones are in sync.
    pub removing: Vec<i32>,
    /// Bytes the move copies: the partition's size once per added replica
    /// (None when the size was not given).
    pub bytes: Option<u64>,
}

/// The moves that take a cluster to the classic placement over a broker set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReassignmentPlan {
    pub moves: Vec<PartitionMove>,
}

impl ReassignmentPlan {
    /// Bytes all moves copy, when every moved partition's size was given.
    pub fn total_bytes(&self) -> Option<u64> {
        self.moves.iter().map(|m| m.bytes).sum()
    }

    /// The assignments after every move completes.
    pub fn apply(&self, current: &Assignments) -> Assignments {
        let mut next = current.clone();
        for m in &self.moves {
            if let Some(r) = next
                .get_mut(&m.topic)
                .and_then(|t| usize::try_from(m.partition).ok().and_then(|p| t.get_mut(p)))
            {
                *r = m.target.clone();
            }
        }
        next
    }

    pub fn is_empty(&self) -> bool {
        self.moves.is_empty()
    }
}

/// Plans the moves from `current` to the classic placement over `brokers`,
/// spread over their racks. `sizes` gives partitions' sizes in bytes, by
/// (topic, partition), where known.
pub fn plan(
    current: &Assignments,
    brokers: &[RackedBroker],
    sizes: &BTreeMap<(String, i32), u64>,
) -> Result<ReassignmentPlan, PlanError> {
    if brokers.is_empty() {
        return Err(PlanError::NoBrokers);
    }
    let mut moves = Vec::new();
    for (topic, partitions) in current {
        for (index, replicas) in partitions.iter().enumerate() {
            let partition = index as i32;
            let rf = i16::try_from(replicas.len()).unwrap_or(i16::MAX);
            if rf == 0 {
                return Err(PlanError::NoReplicas {
                    topic: topic.clone(),
                    partition,
                });
            }
            let target = assign_replicas_rack_aware(brokers, partition, 1, rf)
                .map_err(|source| PlanError::Placement {
                    topic: topic.clone(),
                    source,
                })?
                .remove(0);
            if &target == replicas {
                continue;
            }
            let adding: Vec<i32> = target.iter().copied().filter(|b| !replicas.contains(b)).collect();
            let removing: Vec<i32> = replicas.iter().copied().filter(|b| !target.contains(b)).collect();
            let bytes = sizes
                .get(&(topic.clone(), partition))
                .map(|size| size.saturating_mul(adding.len() as u64));
            moves.push(PartitionMove {
                topic: topic.clone(),
                partition,
                current: replicas.clone(),
                target,
                adding,
                removing,
                bytes,
            });
        }
    }
    Ok(ReassignmentPlan { moves })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::{assign_replicas, unracked};
    use proptest::prelude::*;

    fn placed(brokers: &[i32], topics: &[(&str, i32, i16)]) -> Assignments {
        topics
            .iter()
            .map(|(t, p, rf)| (t.to_string(), assign_replicas(brokers, 0, *p, *rf).unwrap()))
            .collect()
    }

    #[test]
    fn growing_three_brokers_to_four_moves_what_the_rule_moves_and_counts_bytes() {
        let current = placed(&[0, 1, 2], &[("orders", 4, 2)]);
        let sizes: BTreeMap<(String, i32), u64> = (0..4).map(|p| (("orders".to_string(), p), 100)).collect();
        let plan = plan(&current, &unracked(&[0, 1, 2, 3]), &sizes).unwrap();
        // Partitions 0 and 1 stay on [0, 1] and [1, 2]; 2 and 3 gain broker 3.
        let moved: Vec<(i32, Vec<i32>, Vec<i32>)> = plan
            .moves
            .iter()
            .map(|m| (m.partition, m.current.clone(), m.target.clone()))
            .collect();
        assert_eq!(moved, vec![(2, vec![2, 0], vec![2, 3]), (3, vec![0, 1], vec![3, 0])]);
        assert_eq!(plan.moves[1].adding, vec![3]);
        assert_eq!(plan.moves[1].removing, vec![1]);
        assert_eq!(plan.total_bytes(), Some(200));
    }

    #[test]
    fn draining_a_broker_moves_every_replica_off_it() {
        let current = placed(&[0, 1, 2], &[("t", 6, 2)]);
        let plan = plan(&current, &unracked(&[0, 1]), &BTreeMap::new()).unwrap();
        let after = plan.apply(&current);
        assert!(after["t"].iter().all(|r| !r.contains(&2)));
        assert_eq!(plan.total_bytes(), None);
    }

    #[test]
    fn a_plan_that_cannot_keep_the_replication_factor_is_refused() {
        let current = placed(&[0, 1, 2], &[("t", 1, 3)]);
        assert!(matches!(
            plan(&current, &unracked(&[0, 1]), &BTreeMap::new()),
            Err(PlanError::Placement { .. })
        ));
        assert_eq!(
            plan(&current, &unracked(&[]), &BTreeMap::new()),
            Err(PlanError::NoBrokers)
        );
        let empty: Assignments = [("e".to_string(), vec![vec![]])].into();
        assert!(matches!(
            plan(&empty, &unracked(&[0]), &BTreeMap::new()),
            Err(PlanError::NoReplicas { .. })
        ));
    }

    proptest! {
        #[test]
        fn a_plan_applied_yields_the_classic_placement_and_moves_only_what_changes(
            from in proptest::collection::btree_set(0i32..12, 1..6),
            to in proptest::collection::btree_set(0i32..12, 1..6),
            topics in proptest::collection::vec((1i32..20, 1i16..4), 1..4),
        ) {
            let from: Vec<i32> = from.into_iter().collect();
            let to: Vec<i32> = to.into_iter().collect();
            let max_rf = from.len().min(to.len()) as i16;
            let current: Assignments = topics
                .iter()
                .enumerate()
                .map(|(i, (p, rf))| (format!("t{i}"), assign_replicas(&from, 0, *p, (*rf).min(max_rf)).unwrap()))
                .collect();
            let sizes: BTreeMap<(String, i32), u64> = current
                .iter()
                .flat_map(|(t, ps)| (0..ps.len() as i32).map(move |p| ((t.clone(), p), 10 + p as u64)))
                .collect();
            let plan = plan(&current, &unracked(&to), &sizes).unwrap();
            let after = plan.apply(&current);
            for (t, ps) in &after {
                let rf = ps[0].len() as i16;
                prop_assert_eq!(ps, &assign_replicas(&to, 0, ps.len() as i32, rf).unwrap(), "topic {}", t);
            }
            for m in &plan.moves {
                prop_assert_ne!(&m.current, &m.target);
                prop_assert_eq!(&current[&m.topic][m.partition as usize], &m.current);
                prop_assert_eq!(m.bytes, Some((10 + m.partition as u64) * m.adding.len() as u64));
            }
            let moved = plan.moves.len();
            let changed = current
                .iter()
                .map(|(t, ps)| ps.iter().zip(&after[t]).filter(|(a, b)| a != b).count())
                .sum::<usize>();
            prop_assert_eq!(moved, changed);
            // Planning again from the result has nothing left to do.
            prop_assert!(super::plan(&after, &unracked(&to), &sizes).unwrap().is_empty());
        }

        #[test]
        fn with_racks_a_plan_applied_spreads_every_partition_over_them(
            to in proptest::collection::btree_map(0i32..12, 0u8..3, 2..8),
            topics in proptest::collection::vec((1i32..20, 1i16..4), 1..4),
        ) {
            let brokers: Vec<RackedBroker> = to
                .iter()
                .map(|(id, r)| RackedBroker { id: *id, rack: Some(format!("zone-{r}")) })
                .collect();
            let ids: Vec<i32> = to.keys().copied().collect();
            let racks = to.values().collect::<std::collections::BTreeSet<_>>().len();
            // Placed first without racks (a cluster before racks were set).
            let current: Assignments = topics
                .iter()
                .enumerate()
                .map(|(i, (p, rf))| (format!("t{i}"), assign_replicas(&ids, 0, *p, (*rf).min(ids.len() as i16)).unwrap()))
                .collect();
            let after = plan(&current, &brokers, &BTreeMap::new()).unwrap().apply(&current);
            for ps in after.values() {
                for r in ps {
                    let spanned = r.iter().map(|b| to[b]).collect::<std::collections::BTreeSet<_>>().len();
                    prop_assert_eq!(spanned, racks.min(r.len()), "{:?}", r);
                }
            }
            prop_assert!(plan(&after, &brokers, &BTreeMap::new()).unwrap().is_empty());
        }
    }
}
