//! What every reconcile shares: the API client, build settings, the event
//! recorder, metrics, and one Kafka admin client per cluster.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource};
use skein_client::{Admin, AdminOptions, ClientSecurity};
use tokio::sync::Mutex;

use crate::cluster::build::Settings;
use crate::telemetry::Metrics;

/// Shared state of the reconcilers.
pub struct Context {
    pub client: Client,
    pub settings: Settings,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// How often a Ready topic is compared with the cluster (drift check).
    pub drift_interval: Duration,
    /// How long moves in flight may go without progress before a scale is reported stalled.
    pub stall_after: jiff::SignedDuration,
    /// How long a Secret change takes to reach every pod and be reloaded: a
    /// CA's replacement waits this long between its steps.
    pub secret_propagation: jiff::SignedDuration,
    admins: Mutex<HashMap<String, Arc<Admin>>>,
    /// Consecutive failed reconciles per object, for the retry backoff.
    failures: std::sync::Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(
        client: Client,
        settings: Settings,
        metrics: Arc<Metrics>,
        drift_interval: Duration,
        stall_after: jiff::SignedDuration,
        instance: String,
    ) -> Self {
        let reporter = Reporter {
            controller: "skein-operator".into(),
            instance: Some(instance),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            settings,
            metrics,
            drift_interval,
            stall_after,
            secret_propagation: jiff::SignedDuration::from_secs(180),
            admins: Mutex::new(HashMap::new()),
            failures: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The admin client of the cluster bootstrapping from `bootstrap` (one per address, reused).
    pub async fn admin(&self, bootstrap: &str) -> Arc<Admin> {
        let mut admins = self.admins.lock().await;
        admins
            .entry(bootstrap.to_string())
            .or_insert_with(|| {
                Arc::new(Admin::new(
                    bootstrap,
                    AdminOptions {
                        client_id: "skein-operator".into(),
                        request_timeout: Duration::from_secs(10),
                        timeout: Duration::from_secs(15),
                        ..Default::default()
                    },
                ))
            })
            .clone()
    }

    /// The admin client of a secured cluster: `security` (TLS with the
    /// operator's certificate), one per address and identity (`fingerprint`
    /// changes when the certificate or the trust bundle does).
    pub async fn admin_with(&self, bootstrap: &str, security: ClientSecurity, fingerprint: &str) -> Arc<Admin> {
        let mut admins = self.admins.lock().await;
        let key = format!("{bootstrap}#{fingerprint}");
        // Clients of an older identity of this cluster are dropped.
        admins.retain(|k, _| k == &key || !k.starts_with(&format!("{bootstrap}#")));
        admins
            .entry(key)
            .or_insert_with(|| {
                Arc::new(Admin::new(
                    bootstrap,
                    AdminOptions {
                        client_id: "skein-operator".into(),
                        request_timeout: Duration::from_secs(10),
                        timeout: Duration::from_secs(15),
                        security,
                    },
                ))
            })
            .clone()
    }

    /// The delay before retrying `key` after one more failure: 2 s doubling to 5 minutes.
    pub fn backoff(&self, key: &str) -> Duration {
        let mut f = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = f.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        backoff_after(*n)
    }

    /// Clears `key`'s failures after a reconcile that succeeded.
    pub fn succeeded(&self, key: &str) {
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }

    /// Forgets a cluster's admin clients (the cluster is gone).
    pub async fn forget_admin(&self, bootstrap: &str) {
        self.admins
            .lock()
            .await
            .retain(|k, _| k != bootstrap && !k.starts_with(&format!("{bootstrap}#")));
    }

    /// Publishes an Event about `obj`; a failure to publish is logged, never fatal.
    ///
    /// kube's Recorder folds an Event into an earlier one's series when their
    /// type, reason and action match, keeping the first note: the action
    /// carries a digest of the note, so only Events that say the same thing
    /// are counted as repeats (as the core/v1 aggregator, which keys on the
    /// message), and each step of a change keeps its own note.
    pub async fn event<K: Resource<DynamicType = ()>>(&self, obj: &K, warning: bool, reason: &str, note: String) {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        note.hash(&mut h);
        let ev = Event {
            type_: if warning { EventType::Warning } else { EventType::Normal },
            reason: reason.into(),
            action: format!("Reconcile-{:08x}", h.finish() as u32),
            note: Some(note),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &obj.object_ref(&())).await {
            tracing::warn!(object = %obj.meta().name.clone().unwrap_or_default(), "cannot publish event {reason}: {e}");
        }
    }
}

/// The retry delay after `failures` consecutive failures (1 or more): 2 s doubling, at most 5 minutes.
fn backoff_after(failures: u32) -> Duration {
    Duration::from_secs(2u64.saturating_mul(1 << failures.saturating_sub(1).min(8)).min(300))
}

#[cfg(test)]
mod tests {
    use super::backoff_after;
    use std::time::Duration;

    #[test]
    fn retries_back_off_from_two_seconds_to_five_minutes() {
        let delays: Vec<u64> = (1..=10).map(|n| backoff_after(n).as_secs()).collect();
        assert_eq!(delays, vec![2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(backoff_after(u32::MAX), Duration::from_secs(300));
    }
}
