//! The web console on the operator's HTTP port: every KafkaCluster it watches,
//! each with its status conditions and recent Events, read through the same
//! admin client (and credentials) the reconciler uses. Read-only.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Event;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use skein_console::{ClusterEntry, Source};

use crate::context::Context;
use crate::crd::KafkaCluster;

/// Events shown per cluster, newest first.
const EVENTS: usize = 30;

pub struct OperatorConsole {
    pub ctx: Arc<Context>,
    /// The namespaces watched; None for all.
    pub namespaces: Vec<Option<String>>,
}

impl OperatorConsole {
    async fn list(&self) -> Vec<KafkaCluster> {
        let mut out = Vec::new();
        for ns in &self.namespaces {
            let api: Api<KafkaCluster> = match ns {
                Some(ns) => Api::namespaced(self.ctx.client.clone(), ns),
                None => Api::all(self.ctx.client.clone()),
            };
            match api.list(&ListParams::default()).await {
                Ok(l) => out.extend(l.items),
                Err(e) => tracing::warn!("console: cannot list KafkaClusters: {e}"),
            }
        }
        out.sort_by_key(|kc| (kc.namespace(), kc.name_any()));
        out
    }

    async fn events(&self, kc: &KafkaCluster) -> serde_json::Value {
        let ns = kc.namespace().unwrap_or_default();
        let api: Api<Event> = Api::namespaced(self.ctx.client.clone(), &ns);
        let fields = format!("involvedObject.kind=KafkaCluster,involvedObject.name={}", kc.name_any());
        let mut events = match api.list(&ListParams::default().fields(&fields)).await {
            Ok(l) => l.items,
            Err(e) => {
                tracing::warn!("console: cannot list Events: {e}");
                Vec::new()
            }
        };
        let when = |e: &Event| {
            e.last_timestamp
                .as_ref()
                .map(|t| t.0)
                .or_else(|| e.event_time.as_ref().map(|t| t.0))
        };
        events.sort_by_key(|e| std::cmp::Reverse(when(e)));
        serde_json::Value::Array(
            events
                .into_iter()
                .take(EVENTS)
                .map(|e| {
                    serde_json::json!({
                        "type": e.type_, "reason": e.reason, "message": e.message,
                        "count": e.count, "lastTimestamp": e.last_timestamp,
                    })
                })
                .collect(),
        )
    }
}

fn id(kc: &KafkaCluster) -> String {
    format!("{}/{}", kc.namespace().unwrap_or_default(), kc.name_any())
}

impl Source for OperatorConsole {
    async fn clusters(&self) -> Vec<ClusterEntry> {
        let mut out = Vec::new();
        for kc in self.list().await {
            let status = kc.status.clone().unwrap_or_default();
            out.push(ClusterEntry {
                id: id(&kc),
                name: kc.name_any(),
                namespace: kc.namespace(),
                bootstrap: status.bootstrap_servers.clone(),
                phase: status.phase.clone(),
                conditions: serde_json::to_value(&status.conditions).unwrap_or_default(),
                events: self.events(&kc).await,
            });
        }
        out
    }

    async fn admin(&self, wanted: &str) -> Option<Arc<skein_client::Admin>> {
        let kc = self.list().await.into_iter().find(|kc| id(kc) == wanted)?;
        match crate::cluster::admin_for(&self.ctx, &kc).await {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::warn!(cluster = wanted, "console: cannot reach the cluster: {e}");
                None
            }
        }
    }
}
