//! The KafkaCluster reconciler, a straight line: `facts::observe` reads
//! everything, `validate` types the spec, `decide` (pure, with `scale`, `roll`,
//! `build` and `status`) returns every write in order, `execute` makes them.
//!
//! Only observe and execute talk to the API server or the brokers. It never
//! deletes a broker's volume unless the spec's storage policy says so.

pub mod build;
pub mod decide;
pub mod events;
pub mod execute;
pub mod facts;
pub mod init;
pub mod listeners;
pub mod quorum;
pub mod roll;
pub mod scale;
pub mod status;
pub mod validate;

use std::sync::Arc;

use futures::FutureExt;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Api, DeleteParams, ListParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{finalizer, Event as Finalizer};
use kube::ResourceExt;

use crate::certificates::material::Material;
use crate::context::Context;
use crate::crd::{KafkaCluster, VolumePolicy};
use crate::error::Error;
use build::Names;

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
    if let Err(e) = execute::write_status(api, name, &st).await {
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
    let Some(facts) = facts::observe(ctx, &ns, &cached.name_any()).await? else {
        return Ok(Action::await_change());
    };
    let now = jiff::Timestamp::now();
    if let Some(certs) = &facts.certificates {
        let expiries = certs.expiries(now);
        ctx.metrics.certificates(&ns, &cached.name_any(), &expiries);
    }
    let inputs = decide::Inputs {
        settings: &ctx.settings,
        now,
        stall_after: ctx.stall_after,
        propagation: ctx.secret_propagation,
    };
    let plan = decide::decide(&facts, decide::validate(&facts), &inputs);
    execute::execute(ctx, &facts.cluster, plan).await
}

/// The admin client the operator uses for `kc`: on a secured cluster, mutual
/// TLS to the REPLICATION listener with the operator's own certificate.
pub async fn admin_for(ctx: &Context, kc: &KafkaCluster) -> Result<Arc<skein_client::Admin>, Error> {
    let names = Names::new(kc, &ctx.settings.cluster_domain);
    if !listeners::secured(kc) {
        return Ok(ctx.admin(&names.operator_bootstrap()).await);
    }
    let s = listeners::SecretNames::new(&names);
    let (keys, _) = facts::secret_text(ctx, &names.namespace, &s.cluster_ca).await?;
    let (leaves, _) = facts::secret_text(ctx, &names.namespace, &s.brokers).await?;
    let m = Material::read(&s.cluster_ca, &keys, &Default::default(), &leaves);
    let Some(me) = m.leaves.get(listeners::OPERATOR_LEAF) else {
        return Err(Error::ClusterNotReady(format!(
            "{}: the operator's certificate is not issued yet",
            names.name
        )));
    };
    let bundle = m.bundle();
    let props = std::collections::BTreeMap::from([
        ("security.protocol".to_string(), "SSL".to_string()),
        ("ssl.truststore.certificates".to_string(), bundle.clone()),
        ("ssl.keystore.key".to_string(), me.key_pem.clone()),
        ("ssl.keystore.certificate.chain".to_string(), me.cert_pem.clone()),
    ]);
    let security = skein_client::ClientSecurity::from_properties(&props).map_err(Error::ClusterNotReady)?;
    let fingerprint = build::hash(&format!("{}{bundle}", me.cert_pem));
    Ok(ctx
        .admin_with(&names.operator_bootstrap(), security, &fingerprint)
        .await)
}

/// A deleted cluster: owner references take its objects; the claims follow the policy.
async fn cleanup(kc: &KafkaCluster, ctx: &Context) -> Result<Action, Error> {
    let ns = kc.namespace().unwrap_or_default();
    let names = Names::new(kc, &ctx.settings.cluster_domain);
    ctx.forget_admin(&names.operator_bootstrap()).await;
    if kc.spec.storage.when_deleted == VolumePolicy::Delete {
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
        let lp = ListParams::default().labels(&names.selector_string());
        for pvc in pvcs.list(&lp).await? {
            tracing::info!(cluster = %names.name, claim = %pvc.name_any(), "deleting volume (storage.whenDeleted: Delete)");
            pvcs.delete(&pvc.name_any(), &DeleteParams::default()).await?;
        }
    }
    // Cluster-scoped, so not collected with the cluster's other objects.
    let bindings: Api<k8s_openapi::api::rbac::v1::ClusterRoleBinding> = Api::all(ctx.client.clone());
    match bindings
        .delete(&init::cluster_role_binding(&names), &DeleteParams::default())
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    let note = format!("volumes: {}", kc.spec.storage.when_deleted.as_str());
    execute::publish(ctx, kc, events::Event::new(events::Reason::Deleted, note)).await;
    Ok(Action::await_change())
}
