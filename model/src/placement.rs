//! Replica placement: the classic rule, as one pure function.
//!
//! Over the sorted list of live broker ids `b[0..n)`, partition `i`'s replica `j`
//! goes on `b[(i + j) mod n]`. Replica 0 is the preferred leader, so leaders land
//! on `b[i mod n]` and spread evenly. New partitions of an existing topic are
//! placed by their own index, so adding partitions never moves existing ones.

/// Why replicas cannot be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("replication factor must be larger than 0")]
    NonPositiveReplicationFactor,
    #[error("replication factor {rf} is larger than the {brokers} available brokers")]
    NotEnoughBrokers { rf: i16, brokers: usize },
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

    proptest! {
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
            let a = assign_replicas(&brokers, 0, partitions, rf).unwrap();
            // Replicas of a partition are distinct live brokers.
            for r in &a {
                let mut s = r.clone();
                s.sort_unstable();
                s.dedup();
                prop_assert_eq!(s.len(), rf as usize);
                prop_assert!(r.iter().all(|b| brokers.contains(b)));
            }
            // Each broker leads floor(P/n) or ceil(P/n) partitions.
            for b in &brokers {
                let led = a.iter().filter(|r| r[0] == *b).count() as i32;
                let p = partitions;
                prop_assert!(led == p / n as i32 || led == (p + n as i32 - 1) / n as i32);
            }
            // Adding partitions keeps the existing ones where they are.
            let more = assign_replicas(&brokers, partitions, extra, rf).unwrap();
            let all = assign_replicas(&brokers, 0, partitions + extra, rf).unwrap();
            prop_assert_eq!(&all[..partitions as usize], &a[..]);
            prop_assert_eq!(&all[partitions as usize..], &more[..]);
        }
    }
}
