//! The KafkaCluster reconciler: dereference, validate, build, apply, then status.
//!
//! Only `reconcile`'s first step (reading the resource, its pods and the brokers)
//! and last (server-side apply of the objects and of status) talk to the API
//! server; `validate`, `build` and `status` are pure. It never deletes a broker's
//! volume unless the spec's storage policy says so.

pub mod build;
pub mod status;
pub mod validate;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Service};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{finalizer, Event as Finalizer};
use kube::{Resource, ResourceExt};
use serde_json::json;

use crate::context::Context;
use crate::crd::{KafkaCluster, KafkaClusterStatus, VolumePolicy};
use crate::error::Error;
use build::{Names, FIELD_MANAGER};

/// Annotation that pauses reconciliation of one cluster (`"true"`).
pub const PAUSE_ANNOTATION: &str = "skein.dev/paused";
/// Finalizer that lets the operator apply the volume policy when a cluster is deleted.
pub const FINALIZER: &str = "skein.dev/cluster";

/// Reconciles one KafkaCluster.
pub async fn reconcile(kc: Arc<KafkaCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let timer = ctx.metrics.start("KafkaCluster");
    let ns = kc.namespace().unwrap_or_default();
    let name = kc.name_any();
    let api: Api<KafkaCluster> = Api::namespaced(ctx.client.clone(), &ns);
    let result = finalizer(&api, FINALIZER, kc, |event| async {
        match event {
            // Boxed: a concrete Send future, which rustc cannot prove for the generic one.
            Finalizer::Apply(kc) => apply(&kc, &ctx).boxed().await,
            Finalizer::Cleanup(kc) => cleanup(&kc, &ctx).boxed().await,
        }
    })
    .await
    .map_err(Error::from);
    timer.finish();
    let key = format!("KafkaCluster/{ns}/{name}");
    match &result {
        Ok(_) => ctx.succeeded(&key),
        Err(e) => report_failure(&api, &name, e).await,
    }
    result
}

/// A failed reconcile shows on the resource: `Reconciling=True` with the error's category.
async fn report_failure(api: &Api<KafkaCluster>, name: &str, e: &Error) {
    let Ok(Some(kc)) = api.get_opt(name).await else { return };
    let mut st = kc.status.clone().unwrap_or_default();
    let g = kc.metadata.generation;
    crate::crd::set_condition(
        &mut st.conditions,
        crate::crd::condition("Reconciling", true, e.reason(), e.to_string(), g),
    );
    if let Err(e) = write_status(api, name, &st).await {
        tracing::debug!(cluster = %name, "cannot report the failure in status: {e}");
    }
}

/// What the controller does after a failed reconcile: count it, back off.
pub fn error_policy(kc: Arc<KafkaCluster>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failure("KafkaCluster", error.reason());
    tracing::warn!(cluster = %kc.name_any(), namespace = %kc.namespace().unwrap_or_default(), reason = error.reason(), "reconcile failed: {error}");
    let key = format!("KafkaCluster/{}/{}", kc.namespace().unwrap_or_default(), kc.name_any());
    Action::requeue(ctx.backoff(&key))
}

async fn apply(kc: &KafkaCluster, ctx: &Context) -> Result<Action, Error> {
    let ns = kc.namespace().unwrap_or_default();
    let name = kc.name_any();
    let api: Api<KafkaCluster> = Api::namespaced(ctx.client.clone(), &ns);
    if kc.annotations().get(PAUSE_ANNOTATION).map(String::as_str) == Some("true") {
        write_status(&api, &name, &status::paused_status(kc)).await?;
        return Ok(Action::await_change());
    }

    // Validate: a refused spec changes nothing that runs.
    let recorded = kc.status.as_ref().and_then(|s| s.controllers);
    let errors = validate::validate(kc, recorded);
    if !errors.is_empty() {
        let st = status::invalid_status(kc, &errors);
        if kc.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Invalid")
            || kc.status.as_ref().and_then(|s| s.observed_generation) != kc.metadata.generation
        {
            ctx.event(kc, true, "InvalidSpec", errors.join("; ")).await;
        }
        tracing::info!(cluster = %name, namespace = %ns, "spec refused: {}", errors.join("; "));
        write_status(&api, &name, &st).await?;
        return Ok(Action::await_change());
    }

    // Build, then apply every object under one field manager.
    let desired = build::build(kc, &ctx.settings);
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    let mut keep: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for obj in desired.objects() {
        let api = dynamic_api(ctx, &ns, &obj);
        let obj_name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
        api.patch(&obj_name, &pp, &Patch::Apply(&obj)).await?;
        keep.entry(kind_of(&obj)).or_default().push(obj_name);
    }
    delete_unneeded(ctx, kc, &keep).await?;

    // Observe, then write status.
    let names = Names::new(kc, &ctx.settings.cluster_domain);
    let observed = observe(ctx, &names).await?;
    let st = status::next_status(
        kc,
        &observed,
        names.bootstrap_servers(),
        build::cluster_id(kc),
        names.selector_string(),
    );
    let old_phase = kc.status.as_ref().and_then(|s| s.phase.clone());
    if st.phase != old_phase {
        let phase = st.phase.clone().unwrap_or_default();
        let note = st
            .conditions
            .iter()
            .find(|c| c.status == "True" && c.type_ != "Ready")
            .or_else(|| st.conditions.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.message.clone())
            .unwrap_or_default();
        ctx.event(
            kc,
            phase == "Degraded",
            &phase,
            format!("phase {} -> {phase}: {note}", old_phase.unwrap_or("-".into())),
        )
        .await;
        tracing::info!(cluster = %name, namespace = %ns, %phase, "phase changed");
    }
    let ready = st.phase.as_deref() == Some("Ready");
    write_status(&api, &name, &st).await?;
    Ok(Action::requeue(Duration::from_secs(if ready { 60 } else { 5 })))
}

/// A deleted cluster: owner references take its objects; the claims follow the policy.
async fn cleanup(kc: &KafkaCluster, ctx: &Context) -> Result<Action, Error> {
    let ns = kc.namespace().unwrap_or_default();
    let names = Names::new(kc, &ctx.settings.cluster_domain);
    ctx.forget_admin(&names.bootstrap_servers()).await;
    if kc.spec.storage.when_deleted == VolumePolicy::Delete {
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
        let lp = ListParams::default().labels(&names.selector_string());
        for pvc in pvcs.list(&lp).await? {
            tracing::info!(cluster = %names.name, claim = %pvc.name_any(), "deleting volume (storage.whenDeleted: Delete)");
            pvcs.delete(&pvc.name_any(), &DeleteParams::default()).await?;
        }
    }
    ctx.event(
        kc,
        false,
        "Deleted",
        format!("volumes: {}", kc.spec.storage.when_deleted.as_str()),
    )
    .await;
    Ok(Action::await_change())
}

/// The pods and, when any broker is ready, what the brokers report.
async fn observe(ctx: &Context, names: &Names) -> Result<status::Observed, Error> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let mut observed = status::Observed::default();
    let prefix = format!("{}-", names.name);
    for pod in pods
        .list(&ListParams::default().labels(&names.selector_string()))
        .await?
    {
        let pod_name = pod.name_any();
        let Some(ordinal) = pod_name.strip_prefix(&prefix).and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let ready = pod.metadata.deletion_timestamp.is_none()
            && pod.status.as_ref().is_some_and(|s| {
                s.phase.as_deref() == Some("Running")
                    && s.conditions
                        .iter()
                        .flatten()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
            });
        observed.pods.push((ordinal, pod_name, ready));
    }
    observed.pods.sort();
    if observed.pods.iter().any(|p| p.2) {
        let admin = ctx.admin(&names.bootstrap_servers()).await;
        let ask = async {
            let cluster = admin.describe_cluster().await?;
            let topics = admin.describe_topics(None).await?;
            Ok::<_, skein_client::Error>((cluster, topics))
        };
        match tokio::time::timeout(Duration::from_secs(5), ask).await {
            Ok(Ok((cluster, topics))) => {
                observed.registered = Some(cluster.brokers.iter().map(|b| b.id).collect());
                let mut counts: BTreeMap<i32, (i32, i32)> = BTreeMap::new();
                for p in topics.iter().flat_map(|t| t.partitions.iter()) {
                    counts.entry(p.leader).or_default().0 += 1;
                    if p.under_replicated() {
                        for r in &p.replicas {
                            counts.entry(*r).or_default().1 += 1;
                        }
                    }
                }
                observed.partitions = Some(counts);
            }
            Ok(Err(e)) => tracing::info!(cluster = %names.name, "brokers not answering yet: {e}"),
            Err(_) => tracing::info!(cluster = %names.name, "brokers did not answer within 5 s"),
        }
    }
    Ok(observed)
}

/// Deletes Services and ConfigMaps of this cluster that the spec no longer needs.
async fn delete_unneeded(ctx: &Context, kc: &KafkaCluster, keep: &BTreeMap<&str, Vec<String>>) -> Result<(), Error> {
    let ns = kc.namespace().unwrap_or_default();
    let names = Names::new(kc, &ctx.settings.cluster_domain);
    let lp = ListParams::default().labels(&format!(
        "app.kubernetes.io/instance={},app.kubernetes.io/managed-by={FIELD_MANAGER}",
        names.name
    ));
    let uid = kc.uid();
    let owned = |meta: &kube::api::ObjectMeta| {
        meta.owner_references
            .iter()
            .flatten()
            .any(|o| Some(&o.uid) == uid.as_ref())
    };
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &ns);
    for s in services.list(&lp).await? {
        if owned(&s.metadata) && !keep.get("Service").is_some_and(|k| k.contains(&s.name_any())) {
            services.delete(&s.name_any(), &DeleteParams::default()).await?;
        }
    }
    let maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    for m in maps.list(&lp).await? {
        if owned(&m.metadata) && !keep.get("ConfigMap").is_some_and(|k| k.contains(&m.name_any())) {
            maps.delete(&m.name_any(), &DeleteParams::default()).await?;
        }
    }
    Ok(())
}

fn kind_of(obj: &serde_json::Value) -> &'static str {
    match obj["kind"].as_str() {
        Some("Service") => "Service",
        Some("ConfigMap") => "ConfigMap",
        Some("StatefulSet") => "StatefulSet",
        _ => "Other",
    }
}

fn dynamic_api(ctx: &Context, ns: &str, obj: &serde_json::Value) -> Api<DynamicObject> {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, obj["kind"].as_str().unwrap_or_default());
    Api::namespaced_with(ctx.client.clone(), ns, &ApiResource::from_gvk(&gvk))
}

async fn write_status(api: &Api<KafkaCluster>, name: &str, st: &KafkaClusterStatus) -> Result<(), Error> {
    let patch = json!({
        "apiVersion": KafkaCluster::api_version(&()),
        "kind": KafkaCluster::kind(&()),
        "status": st,
    });
    api.patch_status(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
        .await?;
    Ok(())
}
