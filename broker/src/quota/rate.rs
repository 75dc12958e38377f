//! A rate over sampled windows and the throttle time that brings it back
//! under a bound: Kafka's `Rate` over a `SampledStat` and its
//! `QuotaUtils.throttleTime`, so a client sees the throttle times Kafka
//! would give it. Time is passed in (milliseconds); nothing here reads a clock.

use std::collections::VecDeque;

/// `quota.window.num` samples of `quota.window.size.seconds` each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Windows {
    pub samples: u32,
    pub window_ms: u64,
}

impl Windows {
    /// Kafka's defaults: 11 windows of one second.
    pub const DEFAULT: Windows = Windows {
        samples: 11,
        window_ms: 1000,
    };
}

#[derive(Clone, Copy, Debug)]
struct Sample {
    start_ms: u64,
    total: f64,
}

/// A sum over the last `samples` windows, divided by the time they span.
#[derive(Clone, Debug, Default)]
pub struct Rate {
    samples: VecDeque<Sample>,
}

impl Rate {
    /// Adds `value` (negative to take back a recorded one) at `now_ms`.
    pub fn record(&mut self, w: Windows, value: f64, now_ms: u64) {
        self.purge(w, now_ms);
        let fresh = match self.samples.back() {
            None => true,
            Some(s) => now_ms >= s.start_ms + w.window_ms,
        };
        if fresh {
            self.samples.push_back(Sample {
                start_ms: now_ms,
                total: 0.0,
            });
            while self.samples.len() > w.samples.max(1) as usize {
                self.samples.pop_front();
            }
        }
        if let Some(s) = self.samples.back_mut() {
            s.total += value;
        }
    }

    /// Per second, over the samples not yet expired.
    pub fn measure(&mut self, w: Windows, now_ms: u64) -> f64 {
        self.purge(w, now_ms);
        let total: f64 = self.samples.iter().map(|s| s.total).sum();
        total / (self.window_size_ms(w, now_ms) as f64 / 1000.0)
    }

    /// The time the rate is measured over: from the oldest sample to now,
    /// and never less than all but one window (so the first second of a
    /// new client is not a burst measured over a few milliseconds).
    pub fn window_size_ms(&self, w: Windows, now_ms: u64) -> u64 {
        let oldest = self.samples.front().map_or(now_ms, |s| s.start_ms);
        let mut elapsed = now_ms.saturating_sub(oldest);
        let full = elapsed / w.window_ms.max(1);
        let min_full = u64::from(w.samples.max(1) - 1);
        if full < min_full {
            elapsed += (min_full - full) * w.window_ms;
        }
        elapsed.max(1)
    }

    /// Whether every sample has expired (the sensor may be dropped).
    pub fn idle(&mut self, w: Windows, now_ms: u64) -> bool {
        self.purge(w, now_ms);
        self.samples.is_empty()
    }

    fn purge(&mut self, w: Windows, now_ms: u64) {
        let expire = u64::from(w.samples) * w.window_ms;
        while self
            .samples
            .front()
            .is_some_and(|s| now_ms.saturating_sub(s.start_ms) >= expire)
        {
            self.samples.pop_front();
        }
    }
}

/// How long a client over `bound` must pause for its rate over the window
/// to fall back to the bound (`QuotaUtils.throttleTime`); 0 within it.
pub fn throttle_time_ms(rate: f64, bound: f64, window_size_ms: u64) -> u64 {
    if rate <= bound || bound <= 0.0 {
        return 0;
    }
    ((rate - bound) / bound * window_size_ms as f64).round() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Windows = Windows {
        samples: 11,
        window_ms: 1000,
    };

    #[test]
    fn throttle_time_is_kafkas() {
        // QuotaUtilsTest: observed 100 against 50 over 3 one-second samples is 2 s.
        assert_eq!(throttle_time_ms(100.0, 50.0, 2000), 2000);
        assert_eq!(throttle_time_ms(18.2, 18.2, 2000), 0);
        assert_eq!(throttle_time_ms(10.0, 20.4, 2000), 0);
    }

    #[test]
    fn a_new_rate_is_measured_over_all_but_one_window() {
        let mut r = Rate::default();
        r.record(W, 10_000.0, 5_000);
        assert_eq!(r.window_size_ms(W, 5_000), 10_000);
        assert_eq!(r.measure(W, 5_000), 1_000.0);
    }

    #[test]
    fn a_steady_rate_measures_itself_and_old_samples_expire() {
        let mut r = Rate::default();
        // 1,000 bytes every 100 ms for 30 s: 10,000 bytes per second.
        for t in (0..30_000).step_by(100) {
            r.record(W, 1_000.0, t);
        }
        let rate = r.measure(W, 30_000);
        assert!((rate - 10_000.0).abs() / 10_000.0 < 0.1, "{rate}");
        assert!(!r.idle(W, 30_000));
        assert!(r.idle(W, 30_000 + 11_000), "every sample is older than 11 windows");
        assert_eq!(r.measure(W, 50_000), 0.0);
    }

    #[test]
    fn throttling_by_the_throttle_time_holds_the_bound() {
        // A client that sends 100 KB as fast as it may, pausing as told,
        // against a 200 KB/s bound. A new client may first send all but one
        // window's worth at once (Kafka's too); after that it averages the bound.
        // Measured from 20 s on.
        let bound = 200_000.0;
        let (mut r, mut now, mut sent) = (Rate::default(), 0u64, 0.0);
        let mut sent_at_20s = None;
        while now < 80_000 {
            r.record(W, 100_000.0, now);
            sent += 100_000.0;
            let rate = r.measure(W, now);
            now += 10 + throttle_time_ms(rate, bound, r.window_size_ms(W, now));
            if now >= 20_000 && sent_at_20s.is_none() {
                sent_at_20s = Some((sent, now));
            }
        }
        let (before, from) = sent_at_20s.unwrap();
        let steady = (sent - before) / ((now - from) as f64 / 1000.0);
        assert!((steady - bound).abs() / bound < 0.05, "{steady}");
    }

    #[test]
    fn an_unrecorded_value_is_taken_back() {
        let mut r = Rate::default();
        r.record(W, 500.0, 0);
        r.record(W, -500.0, 10);
        assert_eq!(r.measure(W, 10), 0.0);
    }
}
