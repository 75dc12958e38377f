//! Client quotas (KIP-13 byte rates, KIP-124 request percentage, KIP-55 user
//! and client-id entities, KIP-546 their admin APIs): what a user or client id
//! may use per second on this broker, and how long a client over it must
//! pause. The quotas themselves live in the metadata image (AlterClientQuotas
//! writes them); this part keeps each throttled group's measured rate.
//!
//! As in Kafka, quotas are per broker, a response carries the throttle time,
//! and the connection reads nothing more from the client until it has passed
//! (KIP-219). Produce counts request bytes, Fetch response bytes, every other
//! request (but ApiVersions, SASL and followers' fetches) the time its handler
//! ran. With no quota set anywhere a request pays one emptiness check.
//! Called by the dispatcher (`protocol/mod.rs`) and the Produce and Fetch
//! handlers; it never blocks and never touches the network.

pub mod config;
pub mod rate;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

pub use config::{AppliedQuota, ClientQuotaConfigs, QuotaEntity, QuotaType, QuotaValue};
use rate::{throttle_time_ms, Rate, Windows};

use crate::metrics::Metrics;

/// One entity's quota changes: each type set (Some) or removed (None).
pub type QuotaChange = (QuotaEntity, Vec<(QuotaType, Option<QuotaValue>)>);

/// The quotas that apply to one request's user and client id.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClientQuotas {
    produce: Option<AppliedQuota>,
    fetch: Option<AppliedQuota>,
    request: Option<AppliedQuota>,
}

impl ClientQuotas {
    /// `None` when no quota applies to this user and client id.
    pub fn resolve(configs: &ClientQuotaConfigs, user: &str, client_id: &str) -> Option<ClientQuotas> {
        if configs.is_empty() {
            return None;
        }
        let q = ClientQuotas {
            produce: config::resolve(configs, QuotaType::Produce, user, client_id),
            fetch: config::resolve(configs, QuotaType::Fetch, user, client_id),
            request: config::resolve(configs, QuotaType::Request, user, client_id),
        };
        (q != ClientQuotas::default()).then_some(q)
    }

    pub fn get(&self, t: QuotaType) -> Option<&AppliedQuota> {
        match t {
            QuotaType::Produce => self.produce.as_ref(),
            QuotaType::Fetch => self.fetch.as_ref(),
            QuotaType::Request => self.request.as_ref(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SensorKey {
    quota_type: QuotaType,
    user: String,
    client_id: String,
}

/// Sensors idle this long are dropped with their metrics (Kafka: one hour).
const SENSOR_EXPIRY_MS: u64 = 3_600_000;

#[derive(Default)]
struct Sensor {
    rate: Rate,
    last_used_ms: u64,
}

/// The measured rates of every throttled group on this broker.
pub struct QuotaManager {
    windows: Windows,
    started: Instant,
    sensors: Mutex<HashMap<SensorKey, Sensor>>,
    last_expiry_ms: Mutex<u64>,
}

impl QuotaManager {
    pub fn new(windows: Windows) -> QuotaManager {
        QuotaManager {
            windows,
            started: Instant::now(),
            sensors: Mutex::new(HashMap::new()),
            last_expiry_ms: Mutex::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Records `value` against the quota and returns how long the client must
    /// pause (0 within its quota). The request quota's pause is bounded by one
    /// window, as Kafka's `ClientRequestQuotaManager` bounds it; the byte
    /// rates' is not.
    pub fn record(&self, t: QuotaType, q: &AppliedQuota, value: f64, metrics: &Metrics) -> u64 {
        let now = self.now_ms();
        self.expire(now, metrics);
        let key = SensorKey {
            quota_type: t,
            user: q.user.clone(),
            client_id: q.client_id.clone(),
        };
        let mut sensors = self.sensors.lock().unwrap_or_else(|e| e.into_inner());
        let sensor = sensors.entry(key).or_default();
        sensor.last_used_ms = now;
        sensor.rate.record(self.windows, value, now);
        let rate = sensor.rate.measure(self.windows, now);
        let mut throttle = throttle_time_ms(rate, q.bound, sensor.rate.window_size_ms(self.windows, now));
        if t == QuotaType::Request {
            throttle = throttle.min(self.windows.window_ms);
        }
        drop(sensors);
        metrics.quota_recorded(t.name(), &q.user, &q.client_id, rate, throttle);
        throttle
    }

    /// Takes back a recorded value (a Fetch answered empty because throttled).
    pub fn unrecord(&self, t: QuotaType, q: &AppliedQuota, value: f64) {
        let now = self.now_ms();
        let key = SensorKey {
            quota_type: t,
            user: q.user.clone(),
            client_id: q.client_id.clone(),
        };
        if let Some(sensor) = self.sensors.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&key) {
            sensor.rate.record(self.windows, -value, now);
        }
    }

    /// The most a quota lets through in one full window: a fetch asks for no
    /// more (Kafka's `getMaxValueInQuotaWindow`), so one response cannot earn
    /// its client a throttle longer than the window.
    pub fn max_value_in_window(&self, q: &AppliedQuota) -> f64 {
        q.bound * f64::from(self.windows.samples.max(2) - 1) * self.windows.window_ms as f64 / 1000.0
    }

    fn expire(&self, now: u64, metrics: &Metrics) {
        {
            let mut last = self.last_expiry_ms.lock().unwrap_or_else(|e| e.into_inner());
            if now < *last + 60_000 {
                return;
            }
            *last = now;
        }
        let mut sensors = self.sensors.lock().unwrap_or_else(|e| e.into_inner());
        sensors.retain(|k, s| {
            let keep = now.saturating_sub(s.last_used_ms) < SENSOR_EXPIRY_MS;
            if !keep {
                metrics.quota_forget(k.quota_type.name(), &k.user, &k.client_id);
            }
            keep
        });
    }
}

impl std::fmt::Debug for QuotaManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuotaManager")
            .field("windows", &self.windows)
            .finish_non_exhaustive()
    }
}

impl Default for QuotaManager {
    fn default() -> Self {
        QuotaManager::new(Windows::DEFAULT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use config::EntityName;

    #[test]
    fn a_client_over_its_byte_rate_is_told_to_pause_and_others_are_not() {
        let mut configs = ClientQuotaConfigs::new();
        configs
            .entry(QuotaEntity {
                user: None,
                client_id: Some(EntityName::Named("slow".into())),
            })
            .or_default()
            .insert(QuotaType::Produce, QuotaValue(1000.0));
        assert_eq!(ClientQuotas::resolve(&configs, "ANONYMOUS", "fast"), None);
        let q = ClientQuotas::resolve(&configs, "ANONYMOUS", "slow").unwrap();
        assert!(q.get(QuotaType::Fetch).is_none());
        let applied = q.get(QuotaType::Produce).unwrap();
        let (m, metrics) = (QuotaManager::default(), Metrics::new());
        // 10 s of quota at once: 20,000 bytes over a 10 s window is 2x the bound.
        assert_eq!(m.record(QuotaType::Produce, applied, 10_000.0, &metrics), 0);
        let pause = m.record(QuotaType::Produce, applied, 10_000.0, &metrics);
        assert!((9_000..=10_000).contains(&pause), "{pause}");
        assert!(metrics.encode().contains("client_id=\"slow\""));
        assert_eq!(m.max_value_in_window(applied), 10_000.0);
    }

    #[test]
    fn back_to_back_requests_add_up() {
        let applied = AppliedQuota {
            bound: 524_288.0,
            user: String::new(),
            client_id: "slow".into(),
        };
        let w = Windows {
            samples: 4,
            window_ms: 1000,
        };
        let (m, metrics) = (QuotaManager::new(w), Metrics::new());
        assert_eq!(m.record(QuotaType::Produce, &applied, 992_709.0, &metrics), 0);
        let second = m.record(QuotaType::Produce, &applied, 992_709.0, &metrics);
        // 1.99 MB over the first three windows is 661 KB/s: 787 ms to get back to 512 KiB/s.
        assert_eq!(second, 787);
    }

    #[test]
    fn the_request_quota_pause_is_bounded_by_one_window() {
        let applied = AppliedQuota {
            bound: 1.0,
            user: "u".into(),
            client_id: String::new(),
        };
        let (m, metrics) = (QuotaManager::default(), Metrics::new());
        assert_eq!(m.record(QuotaType::Request, &applied, 1_000.0, &metrics), 1_000);
    }
}
