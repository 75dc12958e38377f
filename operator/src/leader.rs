//! Lease-based leader election (coordination.k8s.io/v1), so two operator
//! replicas can run and only one reconciles.
//!
//! Hand-written: kube-rs has no leader election of its own, and the crates that
//! add one lag behind kube's releases. The rules are client-go's: a holder renews
//! its Lease every `renew`; a Lease not renewed for `duration` may be taken; a
//! leader that cannot renew within `duration` exits, and its restart rejoins as
//! a candidate, so two replicas never reconcile at once.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::Client;

/// One candidate for a named Lease.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
    renew: Duration,
}

impl Elector {
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str) -> Elector {
        Elector {
            api: Api::namespaced(client, namespace),
            name: name.into(),
            identity: identity.into(),
            duration: Duration::from_secs(15),
            renew: Duration::from_secs(5),
        }
    }

    /// Waits until this candidate holds the Lease.
    pub async fn acquire(&self) {
        loop {
            match self.try_hold().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => tracing::warn!(lease = %self.name, "leader election: {e}"),
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    /// Renews the Lease forever; returns when it could not be renewed in time.
    pub async fn keep(&self) {
        let mut last = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.renew).await;
            match self.try_hold().await {
                Ok(true) => last = tokio::time::Instant::now(),
                Ok(false) => {
                    tracing::error!(lease = %self.name, "leadership taken by another replica");
                    return;
                }
                Err(e) => tracing::warn!(lease = %self.name, "cannot renew the lease: {e}"),
            }
            if last.elapsed() >= self.duration {
                tracing::error!(lease = %self.name, "lease not renewed for {:?}", self.duration);
                return;
            }
        }
    }

    /// Takes or renews the Lease if free, expired or ours; Ok(false) if another holds it.
    async fn try_hold(&self) -> Result<bool, kube::Error> {
        let now = MicroTime(jiff::Timestamp::now());
        let ours = LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration.as_secs() as i32),
            renew_time: Some(now.clone()),
            ..Default::default()
        };
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    acquire_time: Some(now),
                    lease_transitions: Some(0),
                    ..ours
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let expired = spec.renew_time.as_ref().is_none_or(|t| {
            let ttl = jiff::SignedDuration::from_secs(spec.lease_duration_seconds.unwrap_or(15) as i64);
            t.0.checked_add(ttl).map(|end| end < now.0).unwrap_or(true)
        });
        if holder != self.identity && !holder.is_empty() && !expired {
            return Ok(false);
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(holder != self.identity);
        lease.spec = Some(LeaseSpec {
            acquire_time: if holder == self.identity {
                spec.acquire_time
            } else {
                Some(now)
            },
            lease_transitions: Some(transitions),
            ..ours
        });
        // replace carries the resourceVersion we read: a concurrent writer makes it fail.
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }
}
