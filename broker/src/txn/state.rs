//! One transactional id's transaction, as Kafka's coordinator keeps it
//! (`TransactionMetadata`): its producer id and epoch, its state, the
//! partitions it wrote to, its timeout and timestamps. Pure: every transition
//! takes `now` and returns the next metadata (to persist to
//! `__transaction_state` before it takes effect) or Kafka's error; nothing
//! here does I/O, reads a clock or draws an id (a new producer id is passed in).
//!
//! States and their allowed predecessors are Kafka's:
//!
//! | state             | from                                  |
//! |-------------------|---------------------------------------|
//! | Empty             | Empty, CompleteCommit, CompleteAbort   |
//! | Ongoing           | Ongoing, Empty, CompleteCommit, CompleteAbort |
//! | PrepareCommit     | Ongoing                               |
//! | PrepareAbort      | Ongoing, PrepareEpochFence            |
//! | CompleteCommit    | PrepareCommit                         |
//! | CompleteAbort     | PrepareAbort                          |
//! | Dead              | Empty, CompleteCommit, CompleteAbort   |
//! | PrepareEpochFence | Ongoing                               |
//!
//! The client-facing rules (which error for which request in which state)
//! follow Kafka's `TransactionCoordinator` for transaction version 1 (the
//! protocol librdkafka speaks).

use std::collections::BTreeSet;

use kafka_protocol::ResponseError;

/// A transaction's state; the byte is the one `__transaction_state` stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnState {
    pub const ALL: [TxnState; 8] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::Dead,
        TxnState::PrepareEpochFence,
    ];

    /// The state's id in Kafka's record schema.
    pub fn id(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    pub fn from_id(id: i8) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.id() == id)
    }

    /// Kafka's name (DescribeTransactions, ListTransactions' state filter).
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// Whether a transaction may move from `prev` to this state.
    pub fn may_follow(self, prev: TxnState) -> bool {
        use TxnState::*;
        match self {
            Empty => matches!(prev, Empty | CompleteCommit | CompleteAbort),
            Ongoing => matches!(prev, Ongoing | Empty | CompleteCommit | CompleteAbort),
            PrepareCommit => prev == Ongoing,
            PrepareAbort => matches!(prev, Ongoing | PrepareEpochFence),
            CompleteCommit => prev == PrepareCommit,
            CompleteAbort => prev == PrepareAbort,
            Dead => matches!(prev, Empty | CompleteCommit | CompleteAbort),
            PrepareEpochFence => prev == Ongoing,
        }
    }

    /// No transaction is open: a new one may start, the id may expire.
    pub fn is_idle(self) -> bool {
        matches!(
            self,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        )
    }
}

/// A topic partition in a transaction.
pub type TopicPartition = (String, i32);

/// The largest epoch; at it, the next bump takes a new producer id (KIP-360).
pub const MAX_EPOCH: i16 = i16::MAX - 1;
/// No producer id or epoch (a new transactional id, a first InitProducerId).
pub const NO_PRODUCER_ID: i64 = -1;
pub const NO_EPOCH: i16 = -1;

/// One transactional id's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    /// The producer id before the last one (KIP-360: a producer retrying its
    /// InitProducerId after an id change is recognised).
    pub last_producer_id: i64,
    pub producer_epoch: i16,
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TopicPartition>,
    /// When the open transaction began (ms), -1 when none is open.
    pub start_ms: i64,
    pub last_update_ms: i64,
}

/// Why a request is refused: Kafka's code and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnError {
    pub code: ResponseError,
    pub message: String,
}

fn refuse(code: ResponseError, message: impl Into<String>) -> TxnError {
    TxnError {
        code,
        message: message.into(),
    }
}

/// What InitProducerId leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitOutcome {
    /// Persist this and answer with its producer id and epoch.
    Ready(TxnMetadata),
    /// An open transaction of the previous producer: persist this fence (the
    /// epoch bumped, PrepareEpochFence), then abort it with that epoch; the
    /// client is answered CONCURRENT_TRANSACTIONS and retries.
    FenceThenAbort(TxnMetadata),
}

impl TxnMetadata {
    /// A transactional id's first InitProducerId: `producer_id` from the
    /// producer-id manager, epoch 0, Empty.
    pub fn new(transactional_id: &str, producer_id: i64, timeout_ms: i32, now_ms: i64) -> TxnMetadata {
        TxnMetadata {
            transactional_id: transactional_id.to_string(),
            producer_id,
            last_producer_id: NO_PRODUCER_ID,
            producer_epoch: 0,
            last_producer_epoch: NO_EPOCH,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            last_update_ms: now_ms,
        }
    }

    fn to(&self, state: TxnState, now_ms: i64) -> TxnMetadata {
        debug_assert!(state.may_follow(self.state), "{:?} -> {state:?}", self.state);
        TxnMetadata {
            state,
            last_update_ms: now_ms,
            ..self.clone()
        }
    }

    /// InitProducerId for an existing id. `expected` is the request's producer
    /// id and epoch (KIP-360; `(-1, -1)` from a new producer); `fresh_id` a new
    /// producer id, used when the epoch is exhausted.
    pub fn init_producer_id(
        &self,
        timeout_ms: i32,
        expected: (i64, i16),
        fresh_id: impl FnOnce() -> i64,
        now_ms: i64,
    ) -> Result<InitOutcome, TxnError> {
        if expected.0 != NO_PRODUCER_ID {
            // KIP-360: a producer re-initialising names its current id and epoch,
            // or the ones before a bump whose answer it lost.
            let current = expected == (self.producer_id, self.producer_epoch);
            let retried = expected.0 == self.last_producer_id && expected.1 == self.last_producer_epoch;
            if !current && !retried {
                return Err(refuse(
                    ResponseError::ProducerFenced,
                    format!(
                        "producer {} epoch {} is not the current one of {} (producer {} epoch {})",
                        expected.0, expected.1, self.transactional_id, self.producer_id, self.producer_epoch
                    ),
                ));
            }
            if retried && self.state.is_idle() {
                // The bump already happened: answer it again.
                return Ok(InitOutcome::Ready(self.clone()));
            }
        }
        match self.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => Err(refuse(
                ResponseError::ConcurrentTransactions,
                format!("{} is completing a transaction", self.transactional_id),
            )),
            TxnState::Dead => Err(refuse(
                ResponseError::ConcurrentTransactions,
                format!("{} is being removed", self.transactional_id),
            )),
            TxnState::Ongoing => {
                let mut fenced = self.to(TxnState::PrepareEpochFence, now_ms);
                fenced.producer_epoch = self.producer_epoch.saturating_add(1).min(MAX_EPOCH);
                Ok(InitOutcome::FenceThenAbort(fenced))
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                let mut next = self.to(TxnState::Empty, now_ms);
                next.timeout_ms = timeout_ms;
                next.partitions.clear();
                next.start_ms = -1;
                next.last_producer_id = self.producer_id;
                next.last_producer_epoch = self.producer_epoch;
                if self.producer_epoch >= MAX_EPOCH {
                    next.producer_id = fresh_id();
                    next.producer_epoch = 0;
                } else {
                    next.producer_epoch = self.producer_epoch + 1;
                }
                Ok(InitOutcome::Ready(next))
            }
        }
    }

    /// Checks a transactional request's producer id and epoch, and that no
    /// state change is in flight.
    fn check_producer(&self, producer_id: i64, epoch: i16) -> Result<(), TxnError> {
        if producer_id != self.producer_id {
            return Err(refuse(
                ResponseError::InvalidProducerIdMapping,
                format!("producer {producer_id} is not {}'s", self.transactional_id),
            ));
        }
        if epoch != self.producer_epoch {
            return Err(refuse(
                ResponseError::ProducerFenced,
                format!(
                    "epoch {epoch} of {} is fenced by epoch {}",
                    self.transactional_id, self.producer_epoch
                ),
            ));
        }
        Ok(())
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn's `__consumer_offsets`
    /// partition): the transaction is Ongoing with these partitions too.
    /// Ok(None): nothing to change (all already in, and Ongoing).
    pub fn add_partitions(
        &self,
        producer_id: i64,
        epoch: i16,
        partitions: &[TopicPartition],
        now_ms: i64,
    ) -> Result<Option<TxnMetadata>, TxnError> {
        self.check_producer(producer_id, epoch)?;
        match self.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
                return Err(refuse(
                    ResponseError::ConcurrentTransactions,
                    format!("{} is completing a transaction", self.transactional_id),
                ))
            }
            TxnState::Dead => {
                return Err(refuse(
                    ResponseError::InvalidTxnState,
                    format!("{} is being removed", self.transactional_id),
                ))
            }
            TxnState::Ongoing if partitions.iter().all(|p| self.partitions.contains(p)) => return Ok(None),
            _ => {}
        }
        let mut next = self.to(TxnState::Ongoing, now_ms);
        if self.state != TxnState::Ongoing {
            next.partitions.clear();
            next.start_ms = now_ms;
        }
        next.partitions.extend(partitions.iter().cloned());
        Ok(Some(next))
    }

    /// EndTxn: Ongoing to PrepareCommit or PrepareAbort. Ok(None): a retry of
    /// an EndTxn already completed the same way (answered without change).
    pub fn end(
        &self,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        now_ms: i64,
    ) -> Result<Option<TxnMetadata>, TxnError> {
        self.check_producer(producer_id, epoch)?;
        let wrong = |what: &str| {
            refuse(
                ResponseError::InvalidTxnState,
                format!(
                    "{} cannot {} a transaction that is {what}",
                    self.transactional_id,
                    if commit { "commit" } else { "abort" }
                ),
            )
        };
        match (self.state, commit) {
            (TxnState::Ongoing, true) => Ok(Some(self.to(TxnState::PrepareCommit, now_ms))),
            (TxnState::Ongoing, false) => Ok(Some(self.to(TxnState::PrepareAbort, now_ms))),
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(None),
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => Err(refuse(
                ResponseError::ConcurrentTransactions,
                format!("{} is completing this transaction", self.transactional_id),
            )),
            (TxnState::CompleteCommit | TxnState::PrepareCommit, false) => Err(wrong("committing or committed")),
            (TxnState::CompleteAbort | TxnState::PrepareAbort, true) => Err(wrong("aborting or aborted")),
            (TxnState::Empty, _) => Err(wrong("not open")),
            (TxnState::Dead, _) => Err(wrong("removed")),
            (TxnState::PrepareEpochFence, _) => Err(refuse(
                ResponseError::ProducerFenced,
                format!("{} has a newer producer", self.transactional_id),
            )),
        }
    }

    /// The coordinator aborts: a transaction past its timeout, or the open one
    /// of a fenced producer. From Ongoing the epoch is bumped first (the old
    /// producer can no longer write or end it); from PrepareEpochFence it was.
    pub fn abort_by_coordinator(&self, now_ms: i64) -> Option<TxnMetadata> {
        match self.state {
            TxnState::Ongoing => {
                let mut next = self.to(TxnState::PrepareAbort, now_ms);
                next.producer_epoch = self.producer_epoch.saturating_add(1).min(MAX_EPOCH);
                Some(next)
            }
            TxnState::PrepareEpochFence => Some(self.to(TxnState::PrepareAbort, now_ms)),
            _ => None,
        }
    }

    /// Every marker of a PrepareCommit or PrepareAbort is written: complete.
    pub fn complete(&self, now_ms: i64) -> Option<TxnMetadata> {
        let state = match self.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            TxnState::PrepareAbort => TxnState::CompleteAbort,
            _ => return None,
        };
        let mut next = self.to(state, now_ms);
        next.partitions.clear();
        Some(next)
    }

    /// An open transaction older than its timeout (the reaper aborts it).
    pub fn timed_out(&self, now_ms: i64) -> bool {
        self.state == TxnState::Ongoing && self.start_ms >= 0 && now_ms > self.start_ms + i64::from(self.timeout_ms)
    }

    /// An idle id unused for `expiration_ms` (`transactional.id.expiration.ms`):
    /// Dead, then a tombstone.
    pub fn expire(&self, expiration_ms: i64, now_ms: i64) -> Option<TxnMetadata> {
        (self.state.is_idle() && now_ms > self.last_update_ms + expiration_ms).then(|| self.to(TxnState::Dead, now_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(t: &str, p: i32) -> TopicPartition {
        (t.to_string(), p)
    }

    fn ready(o: Result<InitOutcome, TxnError>) -> TxnMetadata {
        match o.unwrap() {
            InitOutcome::Ready(m) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn state_ids_are_kafka_s_and_round_trip() {
        let ids: Vec<i8> = TxnState::ALL.iter().map(|s| s.id()).collect();
        assert_eq!(ids, [0, 1, 2, 3, 4, 5, 6, 7]);
        for s in TxnState::ALL {
            assert_eq!(TxnState::from_id(s.id()), Some(s));
        }
        assert_eq!(TxnState::from_id(8), None);
    }

    #[test]
    fn a_transaction_commits_and_the_next_starts_clean() {
        let m = TxnMetadata::new("t", 7, 60_000, 0);
        let m = m.add_partitions(7, 0, &[tp("a", 0), tp("a", 1)], 10).unwrap().unwrap();
        assert_eq!((m.state, m.start_ms, m.partitions.len()), (TxnState::Ongoing, 10, 2));
        // The same partitions again: nothing to persist.
        assert_eq!(m.add_partitions(7, 0, &[tp("a", 0)], 11).unwrap(), None);
        let m = m.add_partitions(7, 0, &[tp("b", 0)], 12).unwrap().unwrap();
        assert_eq!((m.start_ms, m.partitions.len()), (10, 3));
        let m = m.end(7, 0, true, 20).unwrap().unwrap();
        assert_eq!(m.state, TxnState::PrepareCommit);
        // A retried commit while markers are written: wait.
        assert_eq!(
            m.end(7, 0, true, 21).unwrap_err().code,
            ResponseError::ConcurrentTransactions
        );
        assert_eq!(m.end(7, 0, false, 21).unwrap_err().code, ResponseError::InvalidTxnState);
        let m = m.complete(30).unwrap();
        assert_eq!((m.state, m.partitions.len()), (TxnState::CompleteCommit, 0));
        assert_eq!(
            m.end(7, 0, true, 31).unwrap(),
            None,
            "a retried commit after completion succeeds"
        );
        let m = m.add_partitions(7, 0, &[tp("c", 0)], 40).unwrap().unwrap();
        assert_eq!((m.start_ms, m.partitions.len()), (40, 1));
    }

    #[test]
    fn a_new_producer_bumps_the_epoch_and_fences_the_old_one_aborting_its_transaction() {
        let m = TxnMetadata::new("t", 7, 60_000, 0);
        let open = m.add_partitions(7, 0, &[tp("a", 0)], 1).unwrap().unwrap();
        let fence = match open.init_producer_id(60_000, (-1, -1), || unreachable!(), 2).unwrap() {
            InitOutcome::FenceThenAbort(f) => f,
            other => panic!("{other:?}"),
        };
        assert_eq!((fence.state, fence.producer_epoch), (TxnState::PrepareEpochFence, 1));
        // The old producer is fenced now, whatever it sends.
        assert_eq!(
            fence.end(7, 0, true, 3).unwrap_err().code,
            ResponseError::ProducerFenced
        );
        assert_eq!(
            fence.add_partitions(7, 0, &[tp("b", 0)], 3).unwrap_err().code,
            ResponseError::ProducerFenced
        );
        // The new producer's retry waits until the abort completes.
        let again = fence.init_producer_id(60_000, (-1, -1), || unreachable!(), 3);
        assert_eq!(again.unwrap_err().code, ResponseError::ConcurrentTransactions);
        let aborting = fence.abort_by_coordinator(4).unwrap();
        assert_eq!((aborting.state, aborting.producer_epoch), (TxnState::PrepareAbort, 1));
        let done = aborting.complete(5).unwrap();
        let next = ready(done.init_producer_id(60_000, (-1, -1), || unreachable!(), 6));
        assert_eq!(
            (next.state, next.producer_id, next.producer_epoch),
            (TxnState::Empty, 7, 2)
        );
        assert_eq!((next.last_producer_id, next.last_producer_epoch), (7, 1));
    }

    #[test]
    fn kip_360_reinitialisation_names_the_current_producer_or_is_fenced() {
        let m = ready(TxnMetadata::new("t", 7, 1000, 0).init_producer_id(1000, (-1, -1), || 0, 1));
        assert_eq!(m.producer_epoch, 1);
        let bumped = ready(m.init_producer_id(1000, (7, 1), || 0, 2));
        assert_eq!(bumped.producer_epoch, 2);
        // The answer was lost and the producer retries with what it had: the same answer.
        assert_eq!(ready(bumped.init_producer_id(1000, (7, 1), || 0, 3)), bumped);
        let err = bumped.init_producer_id(1000, (7, 0), || 0, 3).unwrap_err();
        assert_eq!(err.code, ResponseError::ProducerFenced);
        let err = bumped.init_producer_id(1000, (8, 2), || 0, 3).unwrap_err();
        assert_eq!(err.code, ResponseError::ProducerFenced);
    }

    #[test]
    fn an_exhausted_epoch_takes_a_new_producer_id() {
        let mut m = TxnMetadata::new("t", 7, 1000, 0);
        m.producer_epoch = MAX_EPOCH;
        let next = ready(m.init_producer_id(1000, (-1, -1), || 99, 1));
        assert_eq!((next.producer_id, next.producer_epoch), (99, 0));
        assert_eq!((next.last_producer_id, next.last_producer_epoch), (7, MAX_EPOCH));
    }

    #[test]
    fn each_request_in_each_wrong_state_gets_kafka_s_error() {
        let base = TxnMetadata::new("t", 7, 1000, 0);
        let at = |state| TxnMetadata { state, ..base.clone() };
        use ResponseError::*;
        use TxnState::*;
        let cases = [
            (
                "commit with nothing open",
                at(Empty).end(7, 0, true, 1).unwrap_err().code,
                InvalidTxnState,
            ),
            (
                "abort with nothing open",
                at(Empty).end(7, 0, false, 1).unwrap_err().code,
                InvalidTxnState,
            ),
            (
                "commit after an abort",
                at(CompleteAbort).end(7, 0, true, 1).unwrap_err().code,
                InvalidTxnState,
            ),
            (
                "abort after a commit",
                at(CompleteCommit).end(7, 0, false, 1).unwrap_err().code,
                InvalidTxnState,
            ),
            (
                "another producer id",
                at(Ongoing).end(8, 0, true, 1).unwrap_err().code,
                InvalidProducerIdMapping,
            ),
            (
                "an old epoch",
                at(Ongoing).end(7, -1, true, 1).unwrap_err().code,
                ProducerFenced,
            ),
            (
                "add while committing",
                at(PrepareCommit)
                    .add_partitions(7, 0, &[tp("a", 0)], 1)
                    .unwrap_err()
                    .code,
                ConcurrentTransactions,
            ),
            (
                "add to a removed id",
                at(Dead).add_partitions(7, 0, &[tp("a", 0)], 1).unwrap_err().code,
                InvalidTxnState,
            ),
            (
                "init while aborting",
                at(PrepareAbort)
                    .init_producer_id(1000, (-1, -1), || 0, 1)
                    .unwrap_err()
                    .code,
                ConcurrentTransactions,
            ),
        ];
        for (name, got, want) in cases {
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn the_reaper_aborts_a_timed_out_transaction_with_a_bumped_epoch() {
        let m = TxnMetadata::new("t", 7, 1000, 0);
        let open = m.add_partitions(7, 0, &[tp("a", 0)], 100).unwrap().unwrap();
        assert!(!open.timed_out(1100));
        assert!(open.timed_out(1101));
        let aborting = open.abort_by_coordinator(1101).unwrap();
        assert_eq!((aborting.state, aborting.producer_epoch), (TxnState::PrepareAbort, 1));
        // The producer that timed out is fenced from its late commit.
        assert_eq!(
            aborting.end(7, 0, true, 1102).unwrap_err().code,
            ResponseError::ProducerFenced
        );
        assert_eq!(m.abort_by_coordinator(1), None, "nothing open, nothing to abort");
    }

    #[test]
    fn an_idle_id_expires_after_transactional_id_expiration_ms() {
        let m = TxnMetadata::new("t", 7, 1000, 0);
        assert_eq!(m.expire(604_800_000, 604_800_000), None);
        assert_eq!(m.expire(604_800_000, 604_800_001).unwrap().state, TxnState::Dead);
        let open = m.add_partitions(7, 0, &[tp("a", 0)], 1).unwrap().unwrap();
        assert_eq!(open.expire(10, 1_000_000), None, "an open transaction never expires");
    }

    #[test]
    fn every_transition_the_functions_make_is_one_kafka_allows() {
        // Drive every function from every state; each result follows its predecessor.
        for s in TxnState::ALL {
            let m = TxnMetadata {
                state: s,
                partitions: [tp("a", 0)].into(),
                start_ms: 0,
                ..TxnMetadata::new("t", 7, 1000, 0)
            };
            let mut next: Vec<TxnMetadata> = Vec::new();
            if let Ok(InitOutcome::Ready(n) | InitOutcome::FenceThenAbort(n)) =
                m.init_producer_id(1000, (-1, -1), || 8, 1)
            {
                next.push(n);
            }
            next.extend(m.add_partitions(7, 0, &[tp("b", 0)], 1).ok().flatten());
            next.extend(m.end(7, 0, true, 1).ok().flatten());
            next.extend(m.end(7, 0, false, 1).ok().flatten());
            next.extend(m.abort_by_coordinator(1));
            next.extend(m.complete(1));
            next.extend(m.expire(0, 10));
            for n in next {
                assert!(n.state.may_follow(s), "{s:?} -> {:?}", n.state);
            }
        }
    }

    /// One step of the model: what a client or the coordinator does.
    #[derive(Debug, Clone, Copy)]
    enum Step {
        /// A new producer for the id (InitProducerId without a producer id).
        Init,
        /// The current producer adds a partition.
        Add,
        /// The producer fenced by the last epoch bump tries to add a partition.
        ZombieAdd,
        /// The current producer ends its transaction.
        End(bool),
        /// The fenced producer tries to end its transaction.
        ZombieEnd(bool),
        /// The coordinator's timeout reaper.
        Reap,
        /// The markers are written.
        Complete,
    }

    const STEPS: [Step; 9] = [
        Step::Init,
        Step::Add,
        Step::ZombieAdd,
        Step::End(true),
        Step::End(false),
        Step::ZombieEnd(true),
        Step::ZombieEnd(false),
        Step::Reap,
        Step::Complete,
    ];

    /// What the exploration carries along a path: the metadata, the current and
    /// the fenced producer (id, epoch), the transaction being prepared (its
    /// number and outcome), and every completed transaction's outcome.
    #[derive(Clone)]
    struct World {
        m: TxnMetadata,
        current: (i64, i16),
        zombie: Option<(i64, i16)>,
        txn: u32,
        preparing: Option<bool>,
        outcomes: Vec<(u32, bool)>,
    }

    fn explore(w: &World, depth: usize, steps: &mut u64) {
        *steps += 1;
        if depth == 0 {
            return;
        }
        for step in STEPS {
            let mut n = w.clone();
            let (pid, epoch) = w.current;
            match step {
                Step::Init => match w.m.init_producer_id(1000, (-1, -1), || pid + 1, 1) {
                    Ok(InitOutcome::Ready(m)) => {
                        n.zombie = Some(w.current);
                        n.current = (m.producer_id, m.producer_epoch);
                        n.m = m;
                    }
                    Ok(InitOutcome::FenceThenAbort(fenced)) => {
                        // The coordinator aborts the fenced producer's transaction.
                        let abort = fenced.abort_by_coordinator(1).expect("a fence aborts");
                        n.zombie = Some(w.current);
                        n.preparing = Some(false);
                        n.m = abort;
                    }
                    Err(_) => continue,
                },
                Step::Add => match w.m.add_partitions(pid, epoch, &[tp("a", 0)], 1) {
                    Ok(Some(m)) => {
                        if w.m.state != TxnState::Ongoing {
                            n.txn += 1;
                        }
                        n.m = m;
                    }
                    Ok(None) | Err(_) => continue,
                },
                Step::ZombieAdd | Step::ZombieEnd(_) => {
                    let Some((zpid, zepoch)) = w.zombie else { continue };
                    let r = match step {
                        Step::ZombieAdd => w.m.add_partitions(zpid, zepoch, &[tp("a", 0)], 1).map(|_| ()),
                        Step::ZombieEnd(c) => w.m.end(zpid, zepoch, c, 1).map(|_| ()),
                        _ => unreachable!(),
                    };
                    // A fenced producer never adds to, nor ends, a transaction
                    // (unless it is the current one again: never here).
                    assert!(
                        r.is_err() || (zpid, zepoch) == w.current,
                        "a fenced producer was accepted: {step:?} in {:?}",
                        w.m.state
                    );
                    continue;
                }
                Step::End(commit) => match w.m.end(pid, epoch, commit, 1) {
                    Ok(Some(m)) => {
                        n.preparing = Some(commit);
                        n.m = m;
                    }
                    Ok(None) | Err(_) => continue,
                },
                Step::Reap => {
                    let Some(m) = w.m.abort_by_coordinator(1) else { continue };
                    if w.m.state == TxnState::Ongoing {
                        // The epoch was bumped: the producer is fenced.
                        n.zombie = Some(w.current);
                        n.current = (m.producer_id, m.producer_epoch);
                    }
                    n.preparing = Some(false);
                    n.m = m;
                }
                Step::Complete => {
                    let Some(m) = w.m.complete(1) else { continue };
                    let outcome = n.preparing.take().expect("a prepared transaction");
                    assert_eq!(
                        m.state == TxnState::CompleteCommit,
                        outcome,
                        "transaction {} prepared as {outcome} completed as {:?}",
                        w.txn,
                        m.state
                    );
                    // Never both committed and aborted.
                    assert!(
                        !w.outcomes.iter().any(|(t, o)| *t == w.txn && *o != outcome),
                        "transaction {} both committed and aborted",
                        w.txn
                    );
                    n.outcomes.push((w.txn, outcome));
                    n.m = m;
                }
            }
            assert!(n.m.state.may_follow(w.m.state), "{:?} -> {:?}", w.m.state, n.m.state);
            explore(&n, depth - 1, steps);
        }
    }

    #[test]
    fn model_check_no_transaction_is_both_committed_and_aborted_and_a_fenced_producer_never_completes_one() {
        // Every interleaving of a producer, its successor and the coordinator,
        // eighteen steps deep, from a fresh transactional id (the refused
        // steps are checked and pruned).
        let w = World {
            m: TxnMetadata::new("t", 7, 1000, 0),
            current: (7, 0),
            zombie: None,
            txn: 0,
            preparing: None,
            outcomes: Vec::new(),
        };
        let mut steps = 0;
        explore(&w, 18, &mut steps);
        assert!(steps > 100_000, "the exploration took only {steps} steps");
    }
}
