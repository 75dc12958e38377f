//! Pre-vote (Raft thesis §9.6, Kafka's KIP-996): a voter that has lost touch
//! with the leader first asks the others whether they would vote for it, and
//! starts a real election (a new term) only when a majority would.
//!
//! openraft 0.9 has no pre-vote: its election timer bumps the term of a voter
//! that is merely cut off, and when the cut heals that higher term deposes a
//! healthy leader. So openraft's own timer is off (`enable_elect = false`) and
//! this layer decides when to call `trigger().elect()`. The rules are pure
//! functions here; the timer loop and the RPC live in `Controller`.

use std::time::Duration;

use openraft::LogId;
use serde::{Deserialize, Serialize};

/// "Would you vote for me?", sent before a real election. Changes nothing on the receiver.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreVoteRequest {
    pub candidate: u64,
    pub last_log_id: Option<LogId<u64>>,
}

/// The answer to a pre-vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreVoteResponse {
    pub granted: bool,
}

/// Whether to grant a pre-vote: this node does not lead, has not heard from a
/// leader for at least `lease` (openraft refuses real votes within the same
/// lease), and the candidate's log is at least as up to date as its own.
pub fn grant(
    i_lead: bool,
    since_leader_contact: Duration,
    lease: Duration,
    candidate_last: Option<LogId<u64>>,
    my_last: Option<LogId<u64>>,
) -> bool {
    !i_lead && since_leader_contact >= lease && candidate_last >= my_last
}

/// Whether `granted` answers (the candidate's own included) of `voters` are a majority.
pub fn won(granted: usize, voters: usize) -> bool {
    granted > voters / 2
}

/// The wait before this voter stands: random in [lease, lease + spread), so
/// that voters that lost the leader together do not split the vote forever.
pub fn election_wait(lease: Duration, spread: Duration, random: u64) -> Duration {
    let spread_ms = spread.as_millis().max(1) as u64;
    lease + Duration::from_millis(random % spread_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::CommittedLeaderId;

    fn log(term: u64, index: u64) -> Option<LogId<u64>> {
        Some(LogId::new(CommittedLeaderId::new(term, 0), index))
    }

    const LEASE: Duration = Duration::from_millis(600);

    #[test]
    fn a_voter_that_hears_from_its_leader_refuses_a_pre_vote() {
        assert!(!grant(false, Duration::from_millis(100), LEASE, log(3, 10), log(3, 10)));
        assert!(
            !grant(true, Duration::from_secs(60), LEASE, log(9, 99), log(3, 10)),
            "the leader itself"
        );
        assert!(grant(false, LEASE, LEASE, log(3, 10), log(3, 10)));
    }

    #[test]
    fn a_candidate_with_an_older_log_gets_no_pre_vote() {
        assert!(!grant(false, LEASE, LEASE, log(3, 9), log(3, 10)));
        assert!(
            !grant(false, LEASE, LEASE, log(2, 50), log(3, 10)),
            "an older term outranks a longer log"
        );
        assert!(!grant(false, LEASE, LEASE, None, log(1, 1)));
        assert!(grant(false, LEASE, LEASE, log(4, 1), log(3, 10)));
        assert!(grant(false, LEASE, LEASE, None, None), "a new quorum");
    }

    #[test]
    fn a_majority_counts_the_candidate_itself() {
        assert!(won(1, 1));
        assert!(!won(1, 3), "a voter cut off from both others");
        assert!(won(2, 3));
        assert!(!won(2, 4));
        assert!(won(3, 5));
    }

    #[test]
    fn election_waits_spread_over_the_window() {
        let spread = Duration::from_millis(300);
        let waits: Vec<Duration> = (0..1000u64).map(|r| election_wait(LEASE, spread, r * 7919)).collect();
        assert!(waits.iter().all(|w| *w >= LEASE && *w < LEASE + spread));
        assert!(waits.iter().any(|w| *w < LEASE + Duration::from_millis(50)));
        assert!(waits.iter().any(|w| *w > LEASE + Duration::from_millis(250)));
        assert_eq!(election_wait(LEASE, Duration::ZERO, 12345), LEASE);
    }
}
