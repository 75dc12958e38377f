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

    /// Whether a read may start now at `rate` bytes/s.
    pub fn may_read(&mut self, rate: u64, now_ms: i64) -> bool {
        if rate == u64::MAX || rate >= i64::MAX as u64 {
            return true;
        }
        self.refill(rate, now_ms);
        self.tokens > 0.0
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
            if t.may_read(rate, now) {
                t.charge(1500);
                moved += 1500;
            }
            now += 10;
        }
        // 10 s at 1000 B/s, plus at most one read of overdraft.
        assert!(moved <= 10_000 + 1500, "moved {moved}");
        assert!(moved >= 8_500, "moved {moved}");
    }

    #[test]
    fn an_unset_rate_never_throttles() {
        let mut t = Throttle::new(0);
        assert!(t.may_read(i64::MAX as u64, 0));
        t.charge(1 << 30);
        assert!(t.may_read(i64::MAX as u64, 0));
    }
}
