//! Replica placement: the classic rule, as one pure function.
//!
//! Over the sorted list of live broker ids `b[0..n)`, partition `i`'s replica `j`
//! goes on `b[(i + j) mod n]`. Replica 0 is the preferred leader, so leaders land
//! on `b[i mod n]` and spread evenly. New partitions of an existing topic are
//! placed by their own index, so adding partitions never moves existing ones.
//!
//! With racks ([`assign_replicas_rack_aware`]), Kafka's rack-aware way: the
//! brokers are first ordered alternating by rack (the first broker of each
//! rack, then the second of each, ...), leaders go round that list as above,
//! and each further replica is the next broker in the list whose rack holds
//! none of the partition's replicas yet, until every rack holds one; after
//! that, simply the next broker not yet used. So when there are at least RF
//! racks no partition has two replicas in one rack, and with no racks (or one)
//! the result is the classic rule exactly. Brokers without `broker.rack`
//! count as one more rack, as in KRaft's placer.

/// Why replicas cannot be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("replication factor must be larger than 0")]
    NonPositiveReplicationFactor,
    #[error("replication factor {rf} is larger than the {brokers} available brokers")]
    NotEnoughBrokers { rf: i16, brokers: usize },
}

/// A live broker and its `broker.rack`, if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RackedBroker {
    pub id: i32,
    pub rack: Option<String>,
}

/// Brokers without racks (the classic rule's input).
pub fn unracked(ids: &[i32]) -> Vec<RackedBroker> {
    ids.iter().map(|&id| RackedBroker { id, rack: None }).collect()
}

/// The brokers ordered alternating by rack: racks by name, brokers by id
/// within a rack, then the first of each rack, the second of each, ...
/// Brokers without a rack count as one rack of their own (as KRaft's replica
/// placer does), so without racks this is the ids sorted.
pub fn rack_alternating_order(brokers: &[RackedBroker]) -> Vec<i32> {
    let mut by_rack: std::collections::BTreeMap<Option<&str>, Vec<i32>> = std::collections::BTreeMap::new();
    for b in brokers {
        by_rack.entry(b.rack.as_deref()).or_default().push(b.id);
    }
    for ids in by_rack.values_mut() {
        ids.sort_unstable();
        ids.dedup();
    }
    let deepest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    (0..deepest)
        .flat_map(|k| by_rack.values().filter_map(move |ids| ids.get(k).copied()))
        .collect()
}

/// [`assign_replicas`] aware of racks: replicas (preferred leader first) of
/// partitions `first..first + count`, spread over racks (see the module's
/// comment).
pub fn assign_replicas_rack_aware(
    brokers: &[RackedBroker],
    first: i32,
    count: i32,
    rf: i16,
) -> Result<Vec<Vec<i32>>, PlacementError> {
    if rf <= 0 {
        return Err(PlacementError::NonPositiveReplicationFactor);
    }
    let order = rack_alternating_order(brokers);
    let n = order.len();
    if rf as usize > n {
        return Err(PlacementError::NotEnoughBrokers { rf, brokers: n });
    }
    let rack_of: std::collections::BTreeMap<i32, Option<&str>> =
        brokers.iter().map(|b| (b.id, b.rack.as_deref())).collect();
    let racks: std::collections::BTreeSet<Option<&str>> = rack_of.values().copied().collect();
    Ok((first..first + count.max(0))
        .map(|i| {
            let start = i as usize % n;
            let mut replicas = vec![order[start]];
            let mut used = std::collections::BTreeSet::from([rack_of[&order[start]]]);
            for k in 1..n {
                if replicas.len() == rf as usize {
                    break;
                }
                let b = order[(start + k) % n];
                if used.len() < racks.len() && used.contains(&rack_of[&b]) {
                    continue;
                }
                replicas.push(b);
                used.insert(rack_of[&b]);
            }
            // Every rack holds one now: the rest go to the next unused brokers.
            for k in 1..n {
                if replicas.len() == rf as usize {
                    break;
                }
                let b = order[(start + k) % n];
                if !replicas.contains(&b) {
                    replicas.push(b);
                }
            }
            replicas
        })
        .collect())
}

/// Replicas (preferred leader first) of partitions `first..first + count`.
pub fn assign_replicas(brokers: &[i32], first: i32, count: i32, rf: i16) -> Result<Vec<Vec<i32>>, PlacementError> {
    if rf <= 0 {
        return Err(PlacementError::NonPositiveReplicationFactor);
    }
    let mut sorted = brokers.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let n = sorted.len();
    if rf as usize > n {
        return Err(PlacementError::NotEnoughBrokers { rf, brokers: n });
    }
    Ok((first..first + count.max(0))
        .map(|i| (0..rf as usize).map(|j| sorted[(i as usize + j) % n]).collect())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_classic_rule_on_three_brokers() {
        let a = assign_replicas(&[2, 0, 1], 0, 4, 3).unwrap();
        assert_eq!(a, vec![vec![0, 1, 2], vec![1, 2, 0], vec![2, 0, 1], vec![0, 1, 2]]);
        assert_eq!(
            assign_replicas(&[0, 1], 0, 1, 3),
            Err(PlacementError::NotEnoughBrokers { rf: 3, brokers: 2 })
        );
        assert_eq!(
            assign_replicas(&[0], 0, 1, 0),
            Err(PlacementError::NonPositiveReplicationFactor)
        );
    }

    fn racked(brokers: &[(i32, &str)]) -> Vec<RackedBroker> {
        brokers
            .iter()
            .map(|(id, rack)| RackedBroker {
                id: *id,
                rack: (!rack.is_empty()).then(|| rack.to_string()),
            })
            .collect()
    }

    #[test]
    fn brokers_alternate_by_rack_and_replicas_land_in_distinct_racks() {
        let b = racked(&[(0, "a"), (1, "a"), (2, "b"), (3, "b"), (4, "c"), (5, "c")]);
        assert_eq!(rack_alternating_order(&b), vec![0, 2, 4, 1, 3, 5]);
        let a = assign_replicas_rack_aware(&b, 0, 3, 3).unwrap();
        assert_eq!(a, vec![vec![0, 2, 4], vec![2, 4, 1], vec![4, 1, 3]]);
        // Unbalanced racks: four brokers in "a", one in "b"; RF 2 still spans both.
        let b = racked(&[(0, "a"), (1, "a"), (2, "a"), (3, "a"), (4, "b")]);
        for r in assign_replicas_rack_aware(&b, 0, 10, 2).unwrap() {
            assert!(r.contains(&4), "{r:?} misses rack b");
        }
        // A broker without a rack is a rack of its own.
        let b = racked(&[(0, "a"), (1, "a"), (2, "")]);
        assert_eq!(rack_alternating_order(&b), vec![2, 0, 1]);
        for r in assign_replicas_rack_aware(&b, 0, 6, 2).unwrap() {
            assert!(r.contains(&2), "{r:?} is all in rack a");
        }
    }

    /// What every placement keeps: a partition's replicas are RF distinct live
    /// brokers, each broker leads floor(P/n) or ceil(P/n) partitions, and
    /// adding partitions leaves the existing ones where they are.
    fn classic_properties(
        place: impl Fn(i32, i32) -> Vec<Vec<i32>>,
        brokers: &[i32],
        partitions: i32,
        extra: i32,
        rf: i16,
    ) -> Result<(), TestCaseError> {
        let n = brokers.len() as i32;
        let a = place(0, partitions);
        for r in &a {
            let mut s = r.clone();
            s.sort_unstable();
            s.dedup();
            prop_assert_eq!(s.len(), rf as usize);
            prop_assert!(r.iter().all(|b| brokers.contains(b)));
        }
        for b in brokers {
            let led = a.iter().filter(|r| r[0] == *b).count() as i32;
            prop_assert!(led == partitions / n || led == (partitions + n - 1) / n);
        }
        let more = place(partitions, extra);
        let all = place(0, partitions + extra);
        prop_assert_eq!(&all[..partitions as usize], &a[..]);
        prop_assert_eq!(&all[partitions as usize..], &more[..]);
        Ok(())
    }

    proptest! {
        #[test]
        fn rack_aware_placement_properties(
            brokers in proptest::collection::btree_map(0i32..50, 0usize..6, 1..10),
            partitions in 1i32..64,
            extra in 0i32..16,
            rf_seed in 1i16..8,
            with_racks in any::<bool>(),
        ) {
            // Rack 5 stands for a broker without broker.rack.
            let names = ["a", "b", "c", "d", "e"];
            let list: Vec<RackedBroker> = brokers
                .iter()
                .map(|(id, r)| RackedBroker {
                    id: *id,
                    rack: names.get(*r).filter(|_| with_racks).map(|n| n.to_string()),
                })
                .collect();
            let ids: Vec<i32> = brokers.keys().copied().collect();
            let n = ids.len();
            let rf = rf_seed.min(n as i16);
            let a = assign_replicas_rack_aware(&list, 0, partitions, rf).unwrap();
            if !with_racks {
                // No racks: exactly the classic rule.
                prop_assert_eq!(&a, &assign_replicas(&ids, 0, partitions, rf).unwrap());
            }
            let racks: std::collections::BTreeSet<_> = list.iter().map(|b| b.rack.clone()).collect();
            for r in &a {
                // As many racks as the partition can span: all distinct when racks >= RF.
                let spanned: std::collections::BTreeSet<_> =
                    r.iter().map(|b| list.iter().find(|x| x.id == *b).unwrap().rack.clone()).collect();
                prop_assert_eq!(spanned.len(), racks.len().min(rf as usize), "{:?}", r);
            }
            classic_properties(|first, count| assign_replicas_rack_aware(&list, first, count, rf).unwrap(), &ids, partitions, extra, rf)?;
        }

        #[test]
        fn placement_properties(
            brokers in proptest::collection::btree_set(0i32..50, 1..8),
            partitions in 1i32..64,
            extra in 0i32..16,
            rf_seed in 1i16..8,
        ) {
            let brokers: Vec<i32> = brokers.into_iter().collect();
            let n = brokers.len();
            let rf = rf_seed.min(n as i16);
            classic_properties(|first, count| assign_replicas(&brokers, first, count, rf).unwrap(), &brokers, partitions, extra, rf)?;
        }
    }
}
