//! Replication throttles (`leader.replication.throttled.rate`,
//! `follower.replication.throttled.rate`): a token bucket over bytes, applied to
//! the replicas a reassignment is adding so that moving a partition cannot
//! starve producers and consumers. Pure: the caller passes the time.

/// A bucket refilled at `rate` bytes per second, holding at most one second's worth.
/// A read may overdraw it; the debt is repaid before the next read, so the
/// average stays at the rate even when one batch is larger than the bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct Throttle {
    tokens: f64,
    last_ms: i64,
}

impl Throttle {
    pub fn new(now_ms: i64) -> Throttle {
        Throttle {
            tokens: 0.0,
            last_ms: now_ms,
        }
    }

    fn refill(&mut self, rate: u64, now_ms: i64) {
        let elapsed = (now_ms - self.last_ms).max(0) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * rate as f64).min(rate as f64);
        self.last_ms = now_ms;
    }

    /// Takes up to `want` bytes of what the bucket holds now, or None when it
    /// is empty. Concurrent readers (one fetcher per leader) each size their
    /// read by what they took, so together they cannot overdraw it more than
    /// the batches a fetch must return whole; `refund` gives the reservation
    /// back once the bytes actually read are charged.
    pub fn reserve(&mut self, rate: u64, now_ms: i64, want: u64) -> Option<u64> {
        if rate == u64::MAX || rate >= i64::MAX as u64 {
            return Some(want);
        }
        self.refill(rate, now_ms);
        if self.tokens < 1.0 {
            return None;
        }
        let granted = (self.tokens as u64).min(want).max(1);
        self.tokens -= granted as f64;
        Some(granted)
    }

    /// Returns a reservation (the bytes read are charged separately).
    pub fn refund(&mut self, reserved: u64) {
        self.tokens += reserved as f64;
    }

    /// Charges `bytes` that were read.
    pub fn charge(&mut self, bytes: usize) {
        self.tokens -= bytes as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_average_rate_holds_even_with_reads_larger_than_the_bucket() {
        let rate = 1000u64;
        let mut t = Throttle::new(0);
        let mut moved = 0usize;
        let mut now = 0;
        while now <= 10_000 {
            if let Some(r) = t.reserve(rate, now, 1500) {
                t.charge(1500);
                t.refund(r);
                moved += 1500;
            }
            now += 10;
        }
        // 10 s at 1000 B/s, plus at most one read of overdraft.
        assert!(moved <= 10_000 + 1500, "moved {moved}");
        assert!(moved >= 8_500, "moved {moved}");
    }

    #[test]
    fn reservations_share_the_bucket_between_concurrent_readers() {
        let mut t = Throttle::new(0);
        // One second's worth: the first reader takes it all, the second none.
        assert_eq!(t.reserve(1000, 1000, 5000), Some(1000));
        assert_eq!(t.reserve(1000, 1000, 5000), None);
        // The first read 600 of its 1000: charged, reservation refunded.
        t.charge(600);
        t.refund(1000);
        assert_eq!(t.reserve(1000, 1000, 5000), Some(400));
    }

    #[test]
    fn an_unset_rate_never_throttles() {
        let mut t = Throttle::new(0);
        assert_eq!(t.reserve(i64::MAX as u64, 0, 7), Some(7));
        t.charge(1 << 30);
        assert_eq!(t.reserve(i64::MAX as u64, 0, 7), Some(7));
    }
}
