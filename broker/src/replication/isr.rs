//! The leader's bookkeeping of its followers: pure rules for the high
//! watermark, ISR shrinking and ISR expansion (Kafka's `Partition` and
//! `Replica` logic), driven with explicit offsets and times.

use std::collections::BTreeMap;

/// What the leader knows about one follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerProgress {
    /// The follower's log end offset: the offset of its last fetch. -1 until it fetches.
    pub log_end_offset: i64,
    /// When the follower was last fully caught up with the leader (ms).
    pub last_caught_up_ms: i64,
    /// The leader's log end offset when the follower last fetched, and when.
    pub leader_end_at_last_fetch: i64,
    pub last_fetch_ms: i64,
    /// The follower's log start offset, as its fetches report it. -1 until it fetches.
    pub log_start_offset: i64,
}

impl FollowerProgress {
    /// A follower the leader has not heard from yet; it counts as caught up as of `now`
    /// so that a new leader gives every ISR member a full `replica.lag.time.max.ms`.
    pub fn new(now_ms: i64) -> FollowerProgress {
        FollowerProgress {
            log_end_offset: -1,
            last_caught_up_ms: now_ms,
            leader_end_at_last_fetch: -1,
            last_fetch_ms: now_ms,
            log_start_offset: -1,
        }
    }

    /// Records a fetch at `fetch_offset` while the leader's log ends at `leader_end`.
    /// A follower that reached the leader's end, or the end as of its previous
    /// fetch, was caught up then (Kafka's `updateFetchState`).
    pub fn fetched(&mut self, fetch_offset: i64, leader_end: i64, now_ms: i64) {
        if fetch_offset >= leader_end {
            self.last_caught_up_ms = now_ms;
        } else if self.leader_end_at_last_fetch >= 0 && fetch_offset >= self.leader_end_at_last_fetch {
            self.last_caught_up_ms = self.last_caught_up_ms.max(self.last_fetch_ms);
        }
        self.log_end_offset = fetch_offset;
        self.leader_end_at_last_fetch = leader_end;
        self.last_fetch_ms = now_ms;
    }
}

/// The high watermark: the smallest log end offset over the ISR, the leader's
/// included. None while an ISR follower has not fetched since this leader took
/// over, so the high watermark never passes data a member may lack.
pub fn high_watermark(
    leader: i32,
    leader_end: i64,
    isr: &[i32],
    followers: &BTreeMap<i32, FollowerProgress>,
) -> Option<i64> {
    let mut hw = leader_end;
    for r in isr.iter().filter(|&&r| r != leader) {
        let leo = followers.get(r).map_or(-1, |f| f.log_end_offset);
        if leo < 0 {
            return None;
        }
        hw = hw.min(leo);
    }
    Some(hw)
}

/// The low watermark (DeleteRecords): the smallest log start offset over the
/// ISR, the leader's included; -1 while an ISR follower has not reported one.
/// A replica outside the ISR cannot become leader, so records below this are
/// gone for good.
pub fn low_watermark(leader: i32, leader_start: i64, isr: &[i32], followers: &BTreeMap<i32, FollowerProgress>) -> i64 {
    isr.iter()
        .filter(|&&r| r != leader)
        .map(|r| followers.get(r).map_or(-1, |f| f.log_start_offset))
        .fold(leader_start, i64::min)
}

/// ISR members that have not caught up within `lag_max_ms`: the leader asks the controller to drop them.
pub fn lagging_replicas(
    leader: i32,
    isr: &[i32],
    followers: &BTreeMap<i32, FollowerProgress>,
    now_ms: i64,
    lag_max_ms: i64,
) -> Vec<i32> {
    isr.iter()
        .copied()
        .filter(|&r| r != leader)
        .filter(|r| {
            followers
                .get(r)
                .is_none_or(|f| now_ms - f.last_caught_up_ms > lag_max_ms)
        })
        .collect()
}

/// Whether `replica`, which has just fetched, may join the ISR (Kafka's
/// `isFollowerInSync`): outside it, caught up to the high watermark and into
/// the leader's current epoch, and caught up with the leader within
/// `lag_max_ms`. Only the replica that is fetching is judged: what the leader
/// knows of the others may be arbitrarily old (on an idle partition a replica
/// cut off long ago still looks caught up), and proposing them floods the
/// controller with changes it must refuse.
pub fn may_join(
    replica: i32,
    isr: &[i32],
    followers: &BTreeMap<i32, FollowerProgress>,
    high_watermark: i64,
    epoch_start: i64,
    now_ms: i64,
    lag_max_ms: i64,
) -> bool {
    !isr.contains(&replica)
        && followers.get(&replica).is_some_and(|f| {
            f.log_end_offset >= high_watermark
                && f.log_end_offset >= epoch_start
                && now_ms - f.last_fetch_ms <= lag_max_ms
                && now_ms - f.last_caught_up_ms <= lag_max_ms
        })
}

/// How long a leader waits before proposing another ISR change after the
/// controller refused `refusals` in a row: 500 ms, doubling to 30 s. A refusal
/// (a fenced replica, a stale partition epoch) is not cured by asking again at
/// once, and each proposal is a metadata log entry.
pub fn isr_retry_backoff_ms(refusals: u32) -> i64 {
    (500i64 << refusals.saturating_sub(1).min(6)).min(30_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(leo: i64, caught_up: i64) -> FollowerProgress {
        FollowerProgress {
            log_end_offset: leo,
            last_caught_up_ms: caught_up,
            leader_end_at_last_fetch: leo,
            last_fetch_ms: caught_up,
            log_start_offset: 0,
        }
    }

    #[test]
    fn the_low_watermark_is_the_smallest_start_over_the_isr() {
        let mut f = BTreeMap::from([(1, progress(80, 0)), (2, progress(95, 0)), (3, progress(10, 0))]);
        f.get_mut(&1).unwrap().log_start_offset = 40;
        f.get_mut(&2).unwrap().log_start_offset = 60;
        assert_eq!(
            low_watermark(0, 60, &[0, 1, 2], &f),
            40,
            "follower 1 has not dropped 40..60 yet"
        );
        assert_eq!(
            low_watermark(0, 60, &[0, 2], &f),
            60,
            "replica 1 outside the ISR does not hold it back"
        );
        assert_eq!(low_watermark(0, 60, &[0], &f), 60, "a lone leader");
        f.remove(&2);
        assert_eq!(
            low_watermark(0, 60, &[0, 2], &f),
            -1,
            "an ISR member that has not fetched yet"
        );
    }

    #[test]
    fn the_high_watermark_is_the_smallest_end_over_the_isr() {
        let f = BTreeMap::from([(1, progress(80, 0)), (2, progress(95, 0)), (3, progress(10, 0))]);
        assert_eq!(high_watermark(0, 100, &[0, 1, 2], &f), Some(80));
        assert_eq!(
            high_watermark(0, 100, &[0, 2], &f),
            Some(95),
            "replica 3 is outside the ISR"
        );
        assert_eq!(
            high_watermark(0, 100, &[0], &f),
            Some(100),
            "a lone leader commits at once"
        );
    }

    #[test]
    fn an_isr_member_that_never_fetched_holds_the_high_watermark() {
        let f = BTreeMap::from([(1, FollowerProgress::new(0))]);
        assert_eq!(high_watermark(0, 100, &[0, 1], &f), None);
        assert_eq!(high_watermark(0, 100, &[0, 1], &BTreeMap::new()), None);
    }

    #[test]
    fn a_follower_is_caught_up_when_it_reaches_the_end_it_was_last_shown() {
        let mut f = FollowerProgress::new(0);
        f.fetched(50, 100, 1_000); // behind
        assert_eq!(f.last_caught_up_ms, 0);
        f.fetched(100, 130, 2_000); // reached the end as of its previous fetch
        assert_eq!(f.last_caught_up_ms, 1_000);
        f.fetched(130, 130, 3_000); // at the end
        assert_eq!(f.last_caught_up_ms, 3_000);
    }

    #[test]
    fn followers_that_lag_past_the_limit_leave_the_isr() {
        let f = BTreeMap::from([(1, progress(100, 9_000)), (2, progress(40, 1_000))]);
        assert_eq!(lagging_replicas(0, &[0, 1, 2], &f, 12_000, 10_000), vec![2]);
        assert_eq!(lagging_replicas(0, &[0, 1, 2, 3], &f, 12_000, 10_000), vec![2, 3]);
    }

    #[test]
    fn a_replica_joins_once_it_reaches_the_high_watermark_in_this_epoch() {
        let f = BTreeMap::from([(1, progress(100, 0)), (2, progress(99, 0)), (3, progress(100, 0))]);
        assert!(may_join(1, &[0], &f, 100, 0, 0, 10_000));
        assert!(!may_join(2, &[0], &f, 100, 0, 0, 10_000), "short of the high watermark");
        assert!(!may_join(3, &[0], &f, 100, 101, 0, 10_000), "not into this epoch");
        assert!(!may_join(1, &[0, 1], &f, 100, 0, 0, 10_000), "already a member");
        assert!(!may_join(4, &[0], &f, 100, 0, 0, 10_000), "never fetched");
    }

    #[test]
    fn a_replica_last_seen_long_ago_does_not_join_however_caught_up_it_looked() {
        // Replica 2 was cut off at 1 s with the log end it had then; the
        // partition is idle, so its old offset still equals the high watermark.
        let f = BTreeMap::from([(1, progress(100, 60_000)), (2, progress(100, 1_000))]);
        assert!(may_join(1, &[0], &f, 100, 0, 60_000, 10_000));
        assert!(!may_join(2, &[0], &f, 100, 0, 60_000, 10_000));
    }

    #[test]
    fn refused_isr_changes_back_off_to_thirty_seconds() {
        let waits: Vec<i64> = (1..=10).map(isr_retry_backoff_ms).collect();
        assert_eq!(&waits[..4], &[500, 1_000, 2_000, 4_000]);
        assert!(waits.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(isr_retry_backoff_ms(u32::MAX), 30_000);
    }
}
