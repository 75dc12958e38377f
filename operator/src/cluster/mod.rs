//! The KafkaCluster reconciler: dereference, validate, build, apply, then status.
//!
//! Only `reconcile`'s first step (reading the resource, its pods and the brokers)
//! and last (server-side apply of the objects and of status) talk to the API
//! server; `validate`, `build` and `status` are pure. It never deletes a broker's
//! volume unless the spec's storage policy says so.

pub mod build;
pub mod roll;
pub mod scale;
pub mod status;
pub mod validate;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Service};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{finalizer, Event as Finalizer};
use kube::{Resource, ResourceExt};
use serde_json::json;
use skein_client::{AlterOp, ConfigResource};

use crate::context::Context;
use crate::crd::{KafkaCluster, KafkaClusterStatus, VolumePolicy};
use crate::error::Error;
use build::{Names, FIELD_MANAGER};

/// Annotation that pauses reconciliation of one cluster (`"true"`).
pub const PAUSE_ANNOTATION: &str = "skein.dev/paused";
/// Annotation that cancels the reassignments of a scale in progress and holds it (`"true"`).
pub const CANCEL_SCALING_ANNOTATION: &str = "skein.dev/cancel-scaling";
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

async fn apply(cached: &KafkaCluster, ctx: &Context) -> Result<Action, Error> {
    let ns = cached.namespace().unwrap_or_default();
    let name = cached.name_any();
    let api: Api<KafkaCluster> = Api::namespaced(ctx.client.clone(), &ns);
    // The object as the API server has it now: the controller's cache can trail
    // this reconciler's own last status write, and scaling progress, roll state
    // and phase transitions build on that write.
    let Some(fresh) = api.get_opt(&name).await? else {
        return Ok(Action::await_change());
    };
    let kc = &fresh;
    if kc.annotations().get(PAUSE_ANNOTATION).map(String::as_str) == Some("true") {
        write_status(&api, &name, &status::paused_status(kc)).await?;
        return Ok(Action::await_change());
    }

    let names = Names::new(kc, &ctx.settings.cluster_domain);
    let statefulsets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &ns);
    let sts = statefulsets.get_opt(&names.name).await?;
    if sts.as_ref().is_some_and(|s| s.metadata.deletion_timestamp.is_some()) {
        // Being replaced (orphan cascade, for a new volume size): wait for it to go.
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let volume_size = sts.as_ref().and_then(claim_template_size);

    // Validate: a refused spec changes nothing that runs.
    let recorded = kc.status.as_ref().and_then(|s| s.controllers);
    let mut errors = validate::validate(kc, recorded);
    let grow_volumes = match validate::storage_change(&kc.spec.storage.size, volume_size.as_deref()) {
        Ok(grow) => grow,
        Err(e) => {
            errors.push(e);
            false
        }
    };
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

    if grow_volumes
        && !kc
            .status
            .as_ref()
            .and_then(|s| s.scaling.as_ref())
            .is_some_and(scale::active)
    {
        return grow_storage(ctx, kc, &names, &statefulsets).await;
    }

    // Observe: the StatefulSet's size now, the pods, the claims, the brokers.
    let observed_pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let current = match sts.as_ref().and_then(|s| s.spec.as_ref().and_then(|s| s.replicas)) {
        Some(n) => Some(n),
        // A StatefulSet replaced for a new volume size left its pods running.
        None => observed_pods
            .list(&ListParams::default().labels(&names.selector_string()))
            .await?
            .iter()
            .filter_map(|p| p.name_any().rsplit_once('-').and_then(|(_, o)| o.parse::<i32>().ok()))
            .max()
            .map(|o| o + 1),
    };
    // The revision pods roll onto, once the StatefulSet controller has seen the template.
    let update_revision = sts.as_ref().and_then(|s| {
        let st = s.status.as_ref()?;
        (st.observed_generation == s.metadata.generation)
            .then(|| st.update_revision.clone())
            .flatten()
    });
    let previous = kc.status.as_ref().and_then(|s| s.scaling.clone());
    let scaling = current.is_some_and(|n| n != kc.spec.replicas) || previous.as_ref().is_some_and(scale::active);
    let observed = observe(ctx, &names, scaling).await?;
    let claims = claim_ordinals(ctx, &names).await?;

    // Decide the next scaling step (pure), then act.
    let pods: Vec<(i32, bool)> = observed.pods.iter().map(|p| (p.0, p.2)).collect();
    let decision = scale::decide(&scale::Input {
        target: kc.spec.replicas,
        generation: kc.metadata.generation.unwrap_or(0),
        statefulset: current,
        pods: &pods,
        brokers: observed.view.as_ref(),
        claims: &claims,
        delete_claims: kc.spec.storage.when_scaled == VolumePolicy::Delete,
        max_moves_in_flight: kc.spec.rebalance.max_moves_in_flight.max(1) as usize,
        throttle: kc.spec.rebalance.throttle_bytes_per_second.max(1),
        cancel: kc.annotations().get(CANCEL_SCALING_ANNOTATION).map(String::as_str) == Some("true"),
        previous: previous.as_ref(),
        now: jiff::Timestamp::now(),
        stall_after: ctx.stall_after,
    });
    let st = |decision: &scale::Decision| {
        status::next_status(
            kc,
            &observed,
            decision.statefulset_replicas,
            decision.status.clone(),
            names.bootstrap_servers(),
            build::cluster_id(kc),
            names.selector_string(),
        )
    };
    if decision.statefulset_replicas > current.unwrap_or(kc.spec.replicas) {
        // Recorded before the StatefulSet grows: a restart then knows the new
        // brokers are a scale-up whose partitions must move.
        write_status(&api, &name, &st(&decision)).await?;
    }
    if let Some(sc) = &decision.status {
        ctx.metrics.scaling(&ns, &name, sc);
    }
    if let Some((warning, reason, note)) = &decision.event {
        tracing::info!(cluster = %name, namespace = %ns, reason, "{note}");
        ctx.event(kc, *warning, reason, note.clone()).await;
    }
    execute(ctx, &names, &decision).await?;
    let scaling_active = decision.status.as_ref().is_some_and(scale::active);
    if let Some(view) = &observed.view {
        apply_dynamic_configs(ctx, kc, &names, view, scaling_active).await?;
    }

    // A rolling restart, when no scale is under way.
    let roll = if scaling_active {
        kc.status.as_ref().and_then(|s| s.roll.clone())
    } else {
        roll_step(
            ctx,
            kc,
            &names,
            &observed,
            update_revision.as_deref(),
            decision.statefulset_replicas,
        )
        .await?
    };

    // Build, then apply every object under one field manager.
    let mut desired = build::build(kc, &ctx.settings);
    if let Some(spec) = desired.statefulset.spec.as_mut() {
        spec.replicas = Some(decision.statefulset_replicas);
    }
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    let mut keep: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for obj in desired.objects() {
        let api = dynamic_api(ctx, &ns, &obj);
        let obj_name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
        api.patch(&obj_name, &pp, &Patch::Apply(&obj)).await?;
        keep.entry(kind_of(&obj)).or_default().push(obj_name);
    }
    delete_unneeded(ctx, kc, &keep).await?;

    let mut st = st(&decision);
    status::with_roll(&mut st, roll, kc.metadata.generation);
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
    let settled = st.phase.as_deref() == Some("Ready")
        && !st.scaling.as_ref().is_some_and(scale::active)
        && st.roll.as_ref().is_none_or(|r| r.phase == roll::COMPLETED);
    write_status(&api, &name, &st).await?;
    Ok(Action::requeue(Duration::from_secs(if settled { 60 } else { 5 })))
}

/// Carries out one scaling decision's steps against the brokers and the API server.
async fn execute(ctx: &Context, names: &Names, decision: &scale::Decision) -> Result<(), Error> {
    if decision.steps.is_empty() {
        return Ok(());
    }
    let admin = ctx.admin(&names.bootstrap_servers()).await;
    let plan_id = decision.status.as_ref().map(|s| s.plan_id.clone()).unwrap_or_default();
    let cluster = &names.name;
    let throttle_keys = [
        "leader.replication.throttled.rate",
        "follower.replication.throttled.rate",
    ];
    for step in &decision.steps {
        match step {
            scale::Step::Reassign(moves) => {
                for (t, p, target) in moves {
                    tracing::info!(%cluster, plan = %plan_id, topic = %t, partition = p, ?target, "reassigning partition");
                }
                let changes: Vec<(String, i32, Option<Vec<i32>>)> =
                    moves.iter().map(|(t, p, r)| (t.clone(), *p, Some(r.clone()))).collect();
                for ((t, p), r) in admin.alter_partition_reassignments(&changes).await? {
                    if let Err(e) = r {
                        tracing::warn!(%cluster, topic = %t, partition = p, "reassignment refused: {e}");
                    }
                }
            }
            scale::Step::Cancel(keys) => {
                tracing::info!(%cluster, plan = %plan_id, moves = keys.len(), "cancelling reassignments");
                let changes: Vec<(String, i32, Option<Vec<i32>>)> =
                    keys.iter().map(|(t, p)| (t.clone(), *p, None)).collect();
                admin.alter_partition_reassignments(&changes).await?;
            }
            scale::Step::SetThrottle(rate) => {
                let ops: Vec<AlterOp> = throttle_keys
                    .iter()
                    .map(|k| AlterOp::Set(k.to_string(), rate.to_string()))
                    .collect();
                admin
                    .incremental_alter_configs(&ConfigResource::Broker(None), &ops, false)
                    .await?;
            }
            scale::Step::ClearThrottle => {
                let ops: Vec<AlterOp> = throttle_keys.iter().map(|k| AlterOp::Delete(k.to_string())).collect();
                admin
                    .incremental_alter_configs(&ConfigResource::Broker(None), &ops, false)
                    .await?;
            }
            scale::Step::ElectPreferredLeaders => {
                for ((t, p), r) in admin.elect_leaders(true, None).await? {
                    if let Err(e) = r {
                        tracing::debug!(%cluster, topic = %t, partition = p, "preferred leader not elected: {e}");
                    }
                }
            }
            scale::Step::Unregister(ids) => {
                for id in ids {
                    tracing::info!(%cluster, plan = %plan_id, broker = id, "unregistering broker");
                    admin.unregister_broker(*id).await?;
                }
            }
            scale::Step::DeleteClaims(ordinals) => {
                let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &names.namespace);
                for o in ordinals {
                    let claim = format!("data-{}", names.pod(*o));
                    tracing::info!(%cluster, %claim, "deleting volume (storage.whenScaled: Delete)");
                    match pvcs.delete(&claim, &DeleteParams::default()).await {
                        Ok(_) => {}
                        Err(kube::Error::Api(e)) if e.code == 404 => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
    }
    Ok(())
}

/// Sets the brokers' dynamic keys of `spec.config` as cluster-wide dynamic
/// defaults, and removes the ones the spec no longer has (the replication
/// throttle is the scale's while one is under way).
async fn apply_dynamic_configs(
    ctx: &Context,
    kc: &KafkaCluster,
    names: &Names,
    view: &scale::BrokerView,
    scaling: bool,
) -> Result<(), Error> {
    if view.registered.is_empty() {
        return Ok(());
    }
    let admin = ctx.admin(&names.bootstrap_servers()).await;
    let current: BTreeMap<String, String> = admin
        .describe_configs(&ConfigResource::Broker(None))
        .await?
        .into_iter()
        .filter_map(|c| c.value.map(|v| (c.name, v)))
        .collect();
    let throttle = |k: &str| k.ends_with(".replication.throttled.rate");
    let mut ops = Vec::new();
    for key in skein_broker::config::DYNAMIC_BROKER_CONFIGS {
        if scaling && throttle(key) {
            continue;
        }
        match (kc.spec.config.get(*key), current.get(*key)) {
            (Some(want), have) if have != Some(want) => ops.push(AlterOp::Set(key.to_string(), want.clone())),
            (None, Some(_)) => ops.push(AlterOp::Delete(key.to_string())),
            _ => {}
        }
    }
    if !ops.is_empty() {
        tracing::info!(cluster = %names.name, ?ops, "applying dynamic broker configs (no restart)");
        admin
            .incremental_alter_configs(&ConfigResource::Broker(None), &ops, false)
            .await?;
    }
    Ok(())
}

/// Decides and carries out the next step of a rolling restart.
async fn roll_step(
    ctx: &Context,
    kc: &KafkaCluster,
    names: &Names,
    observed: &status::Observed,
    update_revision: Option<&str>,
    replicas: i32,
) -> Result<Option<crate::crd::RollStatus>, Error> {
    let previous = kc.status.as_ref().and_then(|s| s.roll.clone());
    let outdated =
        update_revision.is_some_and(|r| observed.revisions.values().any(|p| p.revision.as_deref() != Some(r)));
    let rolling = previous.as_ref().is_some_and(|p| p.phase != roll::COMPLETED);
    if !outdated && !rolling {
        return Ok(previous);
    }
    let admin = ctx.admin(&names.bootstrap_servers()).await;
    let mut min_isr = BTreeMap::new();
    let mut quorum_leader = None;
    if let Some(view) = &observed.view {
        for t in view.assignments.keys() {
            let configs = admin.describe_configs(&ConfigResource::Topic(t.clone())).await?;
            let min = configs
                .iter()
                .find(|c| c.name == "min.insync.replicas")
                .and_then(|c| c.value.as_deref()?.parse().ok())
                .unwrap_or(1);
            min_isr.insert(t.clone(), min);
        }
        quorum_leader = admin.describe_quorum().await.ok().map(|q| q.leader_id);
    }
    let pods: Vec<roll::PodState> = observed.revisions.values().cloned().collect();
    let decision = roll::decide(&roll::Input {
        pods: &pods,
        update_revision,
        replicas,
        brokers: observed.view.as_ref(),
        min_isr: &min_isr,
        quorum_leader,
        allow_unavailable: &kc.spec.rolling_update.allow_unavailable_topics,
        previous: previous.as_ref(),
    });
    if let Some((warning, reason, note)) = &decision.event {
        tracing::info!(cluster = %names.name, reason, "{note}");
        ctx.event(kc, *warning, reason, note.clone()).await;
    }
    if let Some(k) = decision.delete_pod {
        let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &names.namespace);
        tracing::info!(cluster = %names.name, broker = k, "restarting broker (rolling update)");
        pod_api.delete(&names.pod(k), &DeleteParams::default()).await?;
    }
    if decision.elect_preferred {
        admin.elect_leaders(true, None).await?;
    }
    Ok(decision.status)
}

/// The volume size of the StatefulSet's claim template.
fn claim_template_size(sts: &StatefulSet) -> Option<String> {
    sts.spec
        .as_ref()?
        .volume_claim_templates
        .as_ref()?
        .first()?
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")
        .map(|q| q.0.clone())
}

/// A larger `storage.size`: grows every claim smaller than it (the storage
/// class must allow expansion; claims grown outside the operator are left as
/// they are), then deletes the StatefulSet with orphan cascade so the next
/// reconcile recreates it with the new claim template, its pods running on.
async fn grow_storage(
    ctx: &Context,
    kc: &KafkaCluster,
    names: &Names,
    statefulsets: &Api<StatefulSet>,
) -> Result<Action, Error> {
    let size = &kc.spec.storage.size;
    let want = validate::parse_quantity(size).unwrap_or(0);
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &names.namespace);
    for pvc in pvcs
        .list(&ListParams::default().labels(&names.selector_string()))
        .await?
    {
        let have = pvc
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref()?.requests.as_ref()?.get("storage").cloned())
            .and_then(|q| validate::parse_quantity(&q.0).ok())
            .unwrap_or(0);
        if have >= want {
            continue;
        }
        let patch = json!({"spec": {"resources": {"requests": {"storage": size}}}});
        tracing::info!(cluster = %names.name, claim = %pvc.name_any(), %size, "growing volume");
        if let Err(e) = pvcs
            .patch(&pvc.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            ctx.event(
                kc,
                true,
                "VolumeExpansionFailed",
                format!("claim {} cannot grow to {size}: {e}", pvc.name_any()),
            )
            .await;
            return Err(e.into());
        }
    }
    ctx.event(
        kc,
        false,
        "VolumesGrown",
        format!("volumes grown to {size}; recreating the StatefulSet (its pods keep running)"),
    )
    .await;
    statefulsets.delete(&names.name, &DeleteParams::orphan()).await?;
    Ok(Action::requeue(Duration::from_secs(1)))
}

/// Ordinals of this cluster's volume claims (`data-NAME-ORDINAL`).
async fn claim_ordinals(ctx: &Context, names: &Names) -> Result<Vec<i32>, Error> {
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let prefix = format!("data-{}-", names.name);
    let mut out: Vec<i32> = pvcs
        .list(&ListParams::default().labels(&names.selector_string()))
        .await?
        .iter()
        .filter(|c| c.metadata.deletion_timestamp.is_none())
        .filter_map(|c| c.name_any().strip_prefix(&prefix).and_then(|o| o.parse().ok()))
        .collect();
    out.sort_unstable();
    Ok(out)
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

/// The pods and, when any broker is ready, what the brokers report; with
/// `scaling`, also reassignments in flight and the bytes each broker holds.
async fn observe(ctx: &Context, names: &Names, scaling: bool) -> Result<status::Observed, Error> {
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
        observed.revisions.insert(
            ordinal,
            roll::PodState {
                ordinal,
                ready,
                terminating: pod.metadata.deletion_timestamp.is_some(),
                revision: pod.labels().get("controller-revision-hash").cloned(),
            },
        );
        observed.pods.push((ordinal, pod_name, ready));
    }
    observed.pods.sort();
    if observed.pods.iter().any(|p| p.2) {
        let admin = ctx.admin(&names.bootstrap_servers()).await;
        match tokio::time::timeout(Duration::from_secs(10), brokers(&admin, scaling)).await {
            Ok(Ok(view)) => {
                observed.registered = Some(view.registered.keys().copied().collect());
                let mut counts: BTreeMap<i32, (i32, i32)> = BTreeMap::new();
                for (key, leader) in &view.leaders {
                    counts.entry(*leader).or_default().0 += 1;
                    let replicas = view.assignments.get(&key.0).and_then(|ps| ps.get(key.1 as usize));
                    let isr = view.isr.get(key);
                    if let (Some(r), Some(isr)) = (replicas, isr) {
                        if isr.len() < r.len() {
                            for b in r {
                                counts.entry(*b).or_default().1 += 1;
                            }
                        }
                    }
                }
                observed.partitions = Some(counts);
                observed.view = Some(view);
            }
            Ok(Err(e)) => tracing::info!(cluster = %names.name, "brokers not answering yet: {e}"),
            Err(_) => tracing::info!(cluster = %names.name, "brokers did not answer within 10 s"),
        }
    }
    Ok(observed)
}

/// What the brokers report for status and scaling.
async fn brokers(admin: &skein_client::Admin, scaling: bool) -> Result<scale::BrokerView, skein_client::Error> {
    let cluster = admin.describe_cluster().await?;
    let topics = admin.describe_topics(None).await?;
    let mut view = scale::BrokerView {
        registered: cluster.brokers.iter().map(|b| (b.id, b.fenced)).collect(),
        ..Default::default()
    };
    for t in &topics {
        let mut replicas = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let key = (t.name.clone(), p.partition);
            view.isr.insert(key.clone(), p.isr.clone());
            view.leaders.insert(key, p.leader);
            replicas.push(p.replicas.clone());
        }
        view.assignments.insert(t.name.clone(), replicas);
    }
    if scaling {
        for r in admin.list_partition_reassignments().await? {
            let target = r.replicas.iter().copied().filter(|b| !r.removing.contains(b)).collect();
            view.ongoing.insert(
                (r.topic, r.partition),
                scale::InFlight {
                    target,
                    adding: r.adding,
                },
            );
        }
        for b in cluster.brokers.iter().filter(|b| !b.fenced) {
            for ((t, p), size) in admin.describe_log_dirs(b.id).await? {
                let size = size.max(0) as u64;
                let s = view.sizes.entry((t.clone(), p)).or_insert(0);
                *s = (*s).max(size);
                view.held.insert((b.id, t, p), size);
            }
        }
    }
    Ok(view)
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
