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
//! | PrepareAbort      | Ongoing, PrepareEpochFence; and with transaction version 2 Empty, CompleteCommit, CompleteAbort |
//! | CompleteCommit    | PrepareCommit                         |
//! | CompleteAbort     | PrepareAbort                          |
//! | Dead              | Empty, CompleteCommit, CompleteAbort   |
//! | PrepareEpochFence | Ongoing                               |
//!
//! The client-facing rules (which error for which request in which state)
//! follow Kafka's `TransactionCoordinator`, for both protocols it speaks:
//!
//! - **transaction version 1** (`EndTxn` v0–4, the protocol librdkafka and
//!   every client before Java 4.0 speak): one epoch for every transaction of
//!   a producer session; `end`.
//! - **transaction version 2** (KIP-890 part 2: `EndTxn` v5, partitions added
//!   by the leaders a `Produce` v12 reaches): every commit or abort bumps the
//!   epoch, and the markers carry the bumped one, so a write or an `EndTxn`
//!   of a finished transaction is fenced by its epoch alone; `end_v2`. An
//!   epoch exhausted at the end of a transaction takes a new producer id.
//!   Which version a transaction follows is recorded in it
//!   (`client_version`, Kafka's `ClientTransactionVersion`).

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
            // From an idle state only with transaction version 2 (an abort
            // with nothing open bumps the epoch).
            PrepareAbort => matches!(
                prev,
                Ongoing | PrepareEpochFence | Empty | CompleteCommit | CompleteAbort
            ),
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
/// Kafka's `ClientTransactionVersion`: the protocol a transaction follows.
pub const TV_1: i16 = 0;
pub const TV_2: i16 = 2;
/// No producer id or epoch (a new transactional id, a first InitProducerId).
pub const NO_PRODUCER_ID: i64 = -1;
pub const NO_EPOCH: i16 = -1;

/// One transactional id's transaction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
    /// Transaction version 2: the producer id that takes over when the
    /// transaction being prepared completes (its epoch was exhausted), else -1.
    pub next_producer_id: i64,
    /// The protocol the current transaction follows (`TV_1` or `TV_2`).
    pub client_version: i16,
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
            next_producer_id: NO_PRODUCER_ID,
            client_version: TV_1,
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
                fenced.last_producer_epoch = NO_EPOCH;
                Ok(InitOutcome::FenceThenAbort(fenced))
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                let mut next = self.to(TxnState::Empty, now_ms);
                next.timeout_ms = timeout_ms;
                next.partitions.clear();
                next.start_ms = -1;
                next.last_producer_id = self.producer_id;
                // Only a producer re-initialising itself (KIP-360) may retry
                // this bump with the epoch it had: a new producer's bump
                // leaves no epoch a fenced one could present (Kafka's -1).
                next.last_producer_epoch = if expected.0 == NO_PRODUCER_ID {
                    NO_EPOCH
                } else {
                    self.producer_epoch
                };
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
        self.add_partitions_as(producer_id, epoch, partitions, TV_1, now_ms)
    }

    /// `add_partitions` by a client of `client_version`: a transaction that
    /// starts here follows that protocol to its end.
    pub fn add_partitions_as(
        &self,
        producer_id: i64,
        epoch: i16,
        partitions: &[TopicPartition],
        client_version: i16,
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
            next.client_version = client_version;
        }
        next.partitions.extend(partitions.iter().cloned());
        Ok(Some(next))
    }

    /// INVALID_TXN_STATE for an EndTxn that cannot end a transaction that is `what`.
    fn wrong_state(&self, commit: bool, what: &str) -> TxnError {
        refuse(
            ResponseError::InvalidTxnState,
            format!(
                "{} cannot {} a transaction that is {what}",
                self.transactional_id,
                if commit { "commit" } else { "abort" }
            ),
        )
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
        let wrong = |what: &str| self.wrong_state(commit, what);
        // The end records the protocol it followed (no bump: version 1), as
        // Kafka's transition does, so no later EndTxn v5 takes it for its own bump.
        let prepare = |state| {
            let mut next = self.to(state, now_ms);
            next.client_version = TV_1;
            Ok(Some(next))
        };
        match (self.state, commit) {
            (TxnState::Ongoing, true) => prepare(TxnState::PrepareCommit),
            (TxnState::Ongoing, false) => prepare(TxnState::PrepareAbort),
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

    /// EndTxn v5 (transaction version 2): Ongoing to PrepareCommit or
    /// PrepareAbort with the epoch bumped, or an abort with nothing open
    /// (which bumps the epoch too). Ok(None): a retry of an EndTxn that
    /// completed the same way, answered with `producer()`. Which epoch is a
    /// retry and which is fenced is Kafka's table:
    ///
    /// | state           | same epoch        | epoch one below (a retry) |
    /// |-----------------|-------------------|---------------------------|
    /// | Ongoing         | prepare           | fenced                    |
    /// | Prepare*        | fenced            | CONCURRENT_TRANSACTIONS (same outcome) |
    /// | Empty           | abort: prepare    | fenced                    |
    /// | CompleteCommit  | abort: prepare    | commit: done              |
    /// | CompleteAbort   | abort: prepare    | abort: done               |
    ///
    /// and every other outcome is INVALID_TXN_STATE. `fresh_id` is called
    /// when the epoch is exhausted: the producer id that takes over.
    pub fn end_v2(
        &self,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        fresh_id: impl FnOnce() -> i64,
        now_ms: i64,
    ) -> Result<Option<TxnMetadata>, TxnError> {
        use TxnState::*;
        // The retry of an EndTxn whose bump took a new producer id.
        let retry_on_overflow = self.last_producer_id == producer_id
            && epoch == MAX_EPOCH
            && self.producer_epoch == 0
            && self.producer_id != producer_id;
        // A bump is this producer's own only if the transaction that made it
        // followed version 2: after a version-1 transaction (another client
        // of the same id, which bumps nothing at its end) the epoch one below
        // is a fenced producer's, not a retry.
        let retry_on_bump = self.client_version == TV_2 && i32::from(self.producer_epoch) == i32::from(epoch) + 1;
        if self.producer_id != producer_id && !retry_on_overflow {
            return Err(refuse(
                ResponseError::InvalidProducerIdMapping,
                format!("producer {producer_id} is not {}'s", self.transactional_id),
            ));
        }
        let valid_epoch = match self.state {
            Ongoing | Empty | Dead | PrepareEpochFence => epoch == self.producer_epoch,
            PrepareCommit | PrepareAbort => retry_on_bump,
            CompleteCommit | CompleteAbort => retry_on_bump || retry_on_overflow || epoch == self.producer_epoch,
        };
        if !valid_epoch {
            return Err(refuse(
                ResponseError::ProducerFenced,
                format!(
                    "epoch {epoch} of {} is fenced by epoch {}",
                    self.transactional_id, self.producer_epoch
                ),
            ));
        }
        let retry = retry_on_bump || retry_on_overflow;
        let wrong = |what: &str| self.wrong_state(commit, what);
        let prepare = |state: TxnState, nothing_open: bool| {
            let mut next = self.to(state, now_ms);
            next.client_version = TV_2;
            next.last_producer_epoch = self.producer_epoch;
            if self.producer_epoch >= MAX_EPOCH {
                // The markers carry the last epoch; the next transaction starts
                // a new producer id at epoch 0.
                next.producer_epoch = i16::MAX;
                next.next_producer_id = fresh_id();
            } else {
                next.producer_epoch = self.producer_epoch + 1;
            }
            if nothing_open {
                next.partitions.clear();
                next.start_ms = now_ms;
            }
            Ok(Some(next))
        };
        match (self.state, commit) {
            (Ongoing, true) => prepare(PrepareCommit, false),
            (Ongoing, false) => prepare(PrepareAbort, false),
            (CompleteCommit, true) if retry => Ok(None),
            (CompleteCommit, true) => Err(wrong("committed")),
            (CompleteCommit, false) if retry => Err(wrong("committed")),
            (CompleteAbort, false) if retry => Ok(None),
            (CompleteCommit | CompleteAbort | Empty, false) => prepare(PrepareAbort, true),
            (CompleteAbort, true) => Err(wrong("aborted")),
            (PrepareCommit, true) | (PrepareAbort, false) => Err(refuse(
                ResponseError::ConcurrentTransactions,
                format!("{} is completing this transaction", self.transactional_id),
            )),
            (PrepareCommit, false) => Err(wrong("committing")),
            (PrepareAbort, true) => Err(wrong("aborting")),
            (Empty, true) => Err(wrong("not open")),
            (Dead, _) => Err(wrong("removed")),
            (PrepareEpochFence, _) => Err(refuse(
                ResponseError::ConcurrentTransactions,
                format!(
                    "{} is aborting its previous producer's transaction",
                    self.transactional_id
                ),
            )),
        }
    }

    /// The producer id and epoch the producer continues with: after an
    /// EndTxn v5, the bumped epoch, or the new producer id at epoch 0.
    pub fn producer(&self) -> (i64, i16) {
        if self.next_producer_id != NO_PRODUCER_ID {
            (self.next_producer_id, 0)
        } else {
            (self.producer_id, self.producer_epoch)
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
                if self.client_version == TV_2 {
                    // The producer's own abort (EndTxn v5 with the epoch it
                    // had) is then a retry of this one, answered with the new epoch.
                    next.last_producer_epoch = self.producer_epoch;
                }
                Some(next)
            }
            TxnState::PrepareEpochFence => {
                let mut next = self.to(TxnState::PrepareAbort, now_ms);
                if self.client_version == TV_2 {
                    // Bumped again, as Kafka does: the fenced producer's
                    // abort (its epoch one below the fence's) must not pass
                    // for a retry of this abort and be handed the epoch.
                    next.producer_epoch = self.producer_epoch.saturating_add(1).min(MAX_EPOCH);
                    next.last_producer_epoch = self.producer_epoch;
                }
                Some(next)
            }
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
        if self.next_producer_id != NO_PRODUCER_ID {
            next.last_producer_id = self.producer_id;
            next.producer_id = self.next_producer_id;
            next.producer_epoch = 0;
            next.next_producer_id = NO_PRODUCER_ID;
        }
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
        // A new producer's bump leaves no epoch to retry with: the fenced
        // producer cannot re-initialise itself into the new one's epoch.
        assert_eq!((next.last_producer_id, next.last_producer_epoch), (7, -1));
        let err = next.init_producer_id(60_000, (7, 1), || unreachable!(), 7).unwrap_err();
        assert_eq!(err.code, ResponseError::ProducerFenced);
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
        assert_eq!((next.last_producer_id, next.last_producer_epoch), (7, -1));
    }

    fn v2_open(epoch: i16) -> TxnMetadata {
        let m = TxnMetadata {
            producer_epoch: epoch,
            ..TxnMetadata::new("t", 7, 1000, 0)
        };
        m.add_partitions_as(7, epoch, &[tp("a", 0)], TV_2, 1).unwrap().unwrap()
    }

    #[test]
    fn version_2_bumps_the_epoch_with_every_end_and_answers_retries() {
        let open = v2_open(3);
        assert_eq!(open.client_version, TV_2);
        let prepared = open.end_v2(7, 3, true, || unreachable!(), 2).unwrap().unwrap();
        assert_eq!((prepared.state, prepared.producer_epoch), (TxnState::PrepareCommit, 4));
        assert_eq!(prepared.producer(), (7, 4), "the answer carries the bumped epoch");
        // While markers are written: the retry waits, the old epoch is not fenced yet.
        let code = |r: Result<Option<TxnMetadata>, TxnError>| r.unwrap_err().code;
        assert_eq!(
            code(prepared.end_v2(7, 3, true, || 0, 3)),
            ResponseError::ConcurrentTransactions
        );
        assert_eq!(
            code(prepared.end_v2(7, 3, false, || 0, 3)),
            ResponseError::InvalidTxnState
        );
        assert_eq!(
            code(prepared.end_v2(7, 4, true, || 0, 3)),
            ResponseError::ProducerFenced
        );
        let done = prepared.complete(4).unwrap();
        assert_eq!((done.state, done.producer_epoch), (TxnState::CompleteCommit, 4));
        // The retry of the commit is answered; an abort with the old epoch is refused.
        assert_eq!(done.end_v2(7, 3, true, || 0, 5).unwrap(), None);
        assert_eq!(code(done.end_v2(7, 3, false, || 0, 5)), ResponseError::InvalidTxnState);
        // With the new epoch: a commit of nothing is refused, an abort bumps again.
        assert_eq!(code(done.end_v2(7, 4, true, || 0, 5)), ResponseError::InvalidTxnState);
        let empty_abort = done.end_v2(7, 4, false, || 0, 5).unwrap().unwrap();
        assert_eq!(
            (
                empty_abort.state,
                empty_abort.producer_epoch,
                empty_abort.partitions.len()
            ),
            (TxnState::PrepareAbort, 5, 0)
        );
        // An older epoch still is fenced; so is another producer id.
        assert_eq!(code(done.end_v2(7, 2, true, || 0, 5)), ResponseError::ProducerFenced);
        assert_eq!(
            code(done.end_v2(8, 4, true, || 0, 5)),
            ResponseError::InvalidProducerIdMapping
        );
        // The next transaction runs at the bumped epoch; the old one cannot add to it.
        let next = done.add_partitions_as(7, 4, &[tp("b", 0)], TV_2, 6).unwrap().unwrap();
        assert_eq!(
            code(next.add_partitions_as(7, 3, &[tp("c", 0)], TV_2, 7).map(|_| None)),
            ResponseError::ProducerFenced
        );
    }

    #[test]
    fn version_2_at_the_last_epoch_takes_a_new_producer_id_when_the_transaction_completes() {
        let open = v2_open(MAX_EPOCH);
        let prepared = open.end_v2(7, MAX_EPOCH, false, || 99, 2).unwrap().unwrap();
        assert_eq!((prepared.producer_id, prepared.producer_epoch), (7, i16::MAX));
        assert_eq!(prepared.producer(), (99, 0), "the client is told the new id at once");
        let done = prepared.complete(3).unwrap();
        assert_eq!(
            (
                done.producer_id,
                done.producer_epoch,
                done.last_producer_id,
                done.next_producer_id
            ),
            (99, 0, 7, NO_PRODUCER_ID)
        );
        // The EndTxn retried with the old id and epoch is answered with the new ones.
        assert_eq!(done.end_v2(7, MAX_EPOCH, false, || 0, 4).unwrap(), None);
        assert_eq!(done.producer(), (99, 0));
    }

    #[test]
    fn version_2_timeout_lets_the_producer_abort_and_go_on_but_a_fenced_one_gets_nothing() {
        // The reaper aborts with a bump: the producer's own abort is a retry.
        let reaped = v2_open(3).abort_by_coordinator(2).unwrap().complete(3).unwrap();
        assert_eq!((reaped.state, reaped.producer_epoch), (TxnState::CompleteAbort, 4));
        assert_eq!(reaped.end_v2(7, 3, false, || 0, 4).unwrap(), None);
        assert_eq!(
            reaped.end_v2(7, 3, true, || 0, 4).unwrap_err().code,
            ResponseError::InvalidTxnState
        );
        // A new producer fences an open version-2 transaction: aborted with
        // the epoch bumped twice, so the fenced one's abort is no retry.
        let InitOutcome::FenceThenAbort(fence) = v2_open(3).init_producer_id(1000, (-1, -1), || 0, 2).unwrap() else {
            panic!("an open transaction is fenced first")
        };
        let aborted = fence.abort_by_coordinator(3).unwrap().complete(4).unwrap();
        assert_eq!(aborted.producer_epoch, 5);
        assert_eq!(
            aborted.end_v2(7, 3, false, || 0, 5).unwrap_err().code,
            ResponseError::ProducerFenced
        );
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
        /// The current producer re-initialises itself (KIP-360).
        Reinit,
        /// The producer fenced by a new one re-initialises with what it had.
        ZombieReinit,
        /// The current producer adds a partition (transaction version 1 or 2).
        Add(i16),
        /// The producer fenced by the last new producer tries to add a partition.
        ZombieAdd,
        /// The current producer ends its transaction: EndTxn v0-4, or v5.
        End(bool),
        EndV2(bool),
        /// The fenced producer tries to end its transaction, with either protocol.
        ZombieEnd(bool),
        ZombieEndV2(bool),
        /// The coordinator's timeout reaper.
        Reap,
        /// The markers are written.
        Complete,
    }

    const STEPS: [Step; 15] = [
        Step::Init,
        Step::Reinit,
        Step::ZombieReinit,
        Step::Add(TV_1),
        Step::Add(TV_2),
        Step::ZombieAdd,
        Step::End(true),
        Step::End(false),
        Step::EndV2(true),
        Step::EndV2(false),
        Step::ZombieEnd(true),
        Step::ZombieEnd(false),
        Step::ZombieEndV2(true),
        Step::ZombieEndV2(false),
        Step::Reap,
    ];

    /// What the exploration carries along a path: the metadata, the current
    /// producer (id, epoch) as it knows itself, the producer fenced by the
    /// last new producer, the transaction being prepared (its number and
    /// outcome), and every completed transaction's outcome.
    #[derive(Clone)]
    struct World {
        m: TxnMetadata,
        current: (i64, i16),
        zombie: Option<(i64, i16)>,
        txn: u32,
        preparing: Option<bool>,
        outcomes: Vec<(u32, bool)>,
        /// The steps that led here (reported with a violation).
        path: Vec<Step>,
    }

    /// Every state one step from `w`, each step's properties checked on the way.
    fn successors(w: &World) -> Vec<World> {
        let mut out = Vec::new();
        for step in STEPS.into_iter().chain([Step::Complete]) {
            let mut n = w.clone();
            n.path.push(step);
            let (pid, epoch) = w.current;
            let next_id = pid + 100;
            match step {
                Step::Init | Step::Reinit => {
                    let expected = if matches!(step, Step::Init) {
                        (-1, -1)
                    } else {
                        w.current
                    };
                    match w.m.init_producer_id(1000, expected, || next_id, 1) {
                        Ok(InitOutcome::Ready(m)) => {
                            if matches!(step, Step::Init) {
                                n.zombie = Some(w.current);
                            }
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
                    }
                }
                Step::Add(version) => match w.m.add_partitions_as(pid, epoch, &[tp("a", 0)], version, 1) {
                    Ok(Some(m)) => {
                        if w.m.state != TxnState::Ongoing {
                            n.txn += 1;
                        }
                        n.m = m;
                    }
                    Ok(None) | Err(_) => continue,
                },
                Step::ZombieReinit | Step::ZombieAdd | Step::ZombieEnd(_) | Step::ZombieEndV2(_) => {
                    let Some((zpid, zepoch)) = w.zombie else { continue };
                    if (zpid, zepoch) == w.current {
                        continue;
                    }
                    let accepted = match step {
                        Step::ZombieReinit => w.m.init_producer_id(1000, (zpid, zepoch), || next_id, 1).is_ok(),
                        Step::ZombieAdd => w.m.add_partitions(zpid, zepoch, &[tp("a", 0)], 1).is_ok(),
                        Step::ZombieEnd(c) => w.m.end(zpid, zepoch, c, 1).is_ok(),
                        Step::ZombieEndV2(c) => w.m.end_v2(zpid, zepoch, c, || next_id, 1).is_ok(),
                        _ => unreachable!(),
                    };
                    // A fenced producer is never accepted: not to add, not to
                    // end (nor be answered as a retry), not to re-initialise.
                    assert!(
                        !accepted,
                        "a fenced producer {:?} was accepted: {step:?} in {:?} after {:?}",
                        w.zombie, w.m, w.path
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
                Step::EndV2(commit) => match w.m.end_v2(pid, epoch, commit, || next_id, 1) {
                    Ok(Some(m)) => {
                        // The answer: the bumped epoch (or the next producer id).
                        n.current = m.producer();
                        if m.state == TxnState::PrepareCommit || !w.m.state.is_idle() {
                            n.preparing = Some(commit);
                        } else {
                            // An abort with nothing open: a transaction of no partitions.
                            n.txn += 1;
                            n.preparing = Some(false);
                        }
                        n.m = m;
                    }
                    Ok(None) => {
                        // A retry after a bump (the reaper's): the epoch to go on with.
                        if n.current == w.m.producer() {
                            continue;
                        }
                        n.current = w.m.producer();
                    }
                    Err(_) => continue,
                },
                Step::Reap => {
                    let Some(m) = w.m.abort_by_coordinator(1) else { continue };
                    // The producer keeps its epoch; it is fenced (version 1)
                    // or finds its abort done (version 2).
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
            assert!(
                n.m.state.may_follow(w.m.state) || n.m.state == w.m.state,
                "{:?} -> {:?}",
                w.m.state,
                n.m.state
            );
            out.push(n);
        }
        out
    }

    /// What makes two paths' ends the same state for the rest of the exploration.
    type Key = (
        TxnMetadata,
        (i64, i16),
        Option<(i64, i16)>,
        u32,
        Option<bool>,
        Option<(u32, bool)>,
    );

    fn key(w: &World) -> Key {
        (
            w.m.clone(),
            w.current,
            w.zombie,
            w.txn,
            w.preparing,
            w.outcomes.last().copied(),
        )
    }

    #[test]
    fn model_check_no_transaction_is_both_committed_and_aborted_and_a_fenced_producer_never_completes_one() {
        // Every state a producer, its successor and the coordinator reach in
        // 24 steps from a fresh transactional id, breadth first, each
        // state once (the refused steps are checked and pruned).
        let w = World {
            m: TxnMetadata::new("t", 7, 1000, 0),
            current: (7, 0),
            zombie: None,
            txn: 0,
            preparing: None,
            outcomes: Vec::new(),
            path: Vec::new(),
        };
        let mut seen = std::collections::HashSet::new();
        let mut frontier = vec![w];
        for _ in 0..24 {
            let mut next = Vec::new();
            for w in &frontier {
                for n in successors(w) {
                    if seen.insert(key(&n)) {
                        next.push(n);
                    }
                }
            }
            frontier = next;
        }
        assert!(
            seen.len() > 50_000,
            "the exploration reached only {} states",
            seen.len()
        );
    }
}
