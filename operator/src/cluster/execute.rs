//! Execute: carries out a plan's writes in order, and nothing else. The only
//! part of the KafkaCluster reconcile that writes to the API server or the brokers.

use std::collections::BTreeMap;

use base64::Engine;
use k8s_openapi::api::apps::v1::StatefulSet;

use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::json;
use skein_client::{AlterOp, ConfigResource};

use super::build::{Names, FIELD_MANAGER};
use super::decide::{CertificateWrite, Plan, Requeue, Write};
use super::events::{Event, Reason};
use super::facts::OwnedKind;
use super::scale::Step;
use crate::certificates::plan::Step as CertStep;
use crate::context::Context;
use crate::crd::{KafkaCluster, KafkaClusterStatus};
use crate::error::Error;

const THROTTLE_KEYS: [&str; 2] = [
    "leader.replication.throttled.rate",
    "follower.replication.throttled.rate",
];

/// Makes `plan`'s writes about `kc`, in order; the first failure stops the rest.
pub async fn execute(ctx: &Context, kc: &KafkaCluster, plan: Plan) -> Result<Action, Error> {
    let ns = kc.namespace().unwrap_or_default();
    let name = kc.name_any();
    let names = Names::new(kc, &ctx.settings.cluster_domain);
    if let Some(sc) = &plan.scaling {
        ctx.metrics.scaling(&ns, &name, sc);
    }
    for write in plan.writes {
        match write {
            Write::Status(st) => write_status(&Api::namespaced(ctx.client.clone(), &ns), &name, &st).await?,
            Write::Event(ev) => publish(ctx, kc, ev).await,
            Write::GrowClaim { claim, size } => {
                let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
                let patch = json!({"spec": {"resources": {"requests": {"storage": size}}}});
                tracing::info!(cluster = %name, %claim, %size, "growing volume");
                if let Err(e) = pvcs.patch(&claim, &PatchParams::default(), &Patch::Merge(&patch)).await {
                    let note = format!("claim {claim} cannot grow to {size}: {e}");
                    publish(ctx, kc, Event::new(Reason::VolumeExpansionFailed, note)).await;
                    return Err(e.into());
                }
            }
            Write::ReplaceStatefulSet => {
                let statefulsets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &ns);
                statefulsets.delete(&name, &DeleteParams::orphan()).await?;
            }
            Write::Scale(step) => scale_step(ctx, kc, &names, &plan.plan_id, step).await?,
            Write::AlterBrokerConfigs(ops) => {
                tracing::info!(cluster = %name, ?ops, "applying dynamic broker configs (no restart)");
                let admin = super::admin_for(ctx, kc).await?;
                admin
                    .incremental_alter_configs(&ConfigResource::Broker(None), &ops, false)
                    .await?;
            }
            Write::RestartBroker(k) => {
                let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
                tracing::info!(cluster = %name, broker = k, "restarting broker (rolling update)");
                pods.delete(&names.pod(k), &DeleteParams::default()).await?;
            }
            Write::Apply(obj) => {
                let api = dynamic_api(ctx, &ns, &obj);
                let obj_name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
                api.patch(
                    &obj_name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&obj),
                )
                .await?;
            }
            Write::Certificates(w) => certificates(ctx, kc, &ns, *w).await?,
            Write::Voter(step) => {
                tracing::info!(cluster = %name, "{}", step.describe());
                let admin = super::admin_for(ctx, kc).await?;
                match step {
                    super::quorum::VoterStep::Add { id, directory_id } => {
                        admin.add_raft_voter(id, directory_id).await?
                    }
                    super::quorum::VoterStep::Remove { id, directory_id } => {
                        admin.remove_raft_voter(id, directory_id).await?
                    }
                }
            }
            Write::Delete { kind, name: object } => {
                tracing::info!(cluster = %name, kind = kind.as_str(), %object, "deleting an object the spec no longer needs");
                match kind {
                    OwnedKind::Service => {
                        let api: Api<Service> = Api::namespaced(ctx.client.clone(), &ns);
                        api.delete(&object, &DeleteParams::default()).await?;
                    }
                    OwnedKind::ConfigMap => {
                        let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
                        api.delete(&object, &DeleteParams::default()).await?;
                    }
                    OwnedKind::NetworkPolicy => {
                        let api: Api<k8s_openapi::api::networking::v1::NetworkPolicy> =
                            Api::namespaced(ctx.client.clone(), &ns);
                        api.delete(&object, &DeleteParams::default()).await?;
                    }
                }
            }
        }
    }
    Ok(match plan.requeue {
        Requeue::OnChange => Action::await_change(),
        Requeue::After(d) => Action::requeue(d),
    })
}

/// Publishes an Event about `kc` (logged too); a failure to publish is never fatal.
pub async fn publish(ctx: &Context, kc: &KafkaCluster, ev: Event) {
    tracing::info!(cluster = %kc.name_any(), namespace = %kc.namespace().unwrap_or_default(), reason = ev.reason.as_str(), "{}", ev.note);
    ctx.event(kc, ev.reason.warning(), ev.reason.as_str(), ev.note).await;
}

/// One scaling step against the brokers or the volume claims.
async fn scale_step(ctx: &Context, kc: &KafkaCluster, names: &Names, plan_id: &str, step: Step) -> Result<(), Error> {
    let cluster = &names.name;
    let admin = super::admin_for(ctx, kc).await?;
    match step {
        Step::Reassign(moves) => {
            for (t, p, target) in &moves {
                tracing::info!(%cluster, plan = %plan_id, topic = %t, partition = p, ?target, "reassigning partition");
            }
            let changes: Vec<(String, i32, Option<Vec<i32>>)> =
                moves.into_iter().map(|(t, p, r)| (t, p, Some(r))).collect();
            for ((t, p), r) in admin.alter_partition_reassignments(&changes).await? {
                if let Err(e) = r {
                    tracing::warn!(%cluster, topic = %t, partition = p, "reassignment refused: {e}");
                }
            }
        }
        Step::Cancel(keys) => {
            tracing::info!(%cluster, plan = %plan_id, moves = keys.len(), "cancelling reassignments");
            let changes: Vec<(String, i32, Option<Vec<i32>>)> = keys.into_iter().map(|(t, p)| (t, p, None)).collect();
            admin.alter_partition_reassignments(&changes).await?;
        }
        Step::SetThrottle(rate) => {
            let ops: Vec<AlterOp> = THROTTLE_KEYS
                .iter()
                .map(|k| AlterOp::Set(k.to_string(), rate.to_string()))
                .collect();
            admin
                .incremental_alter_configs(&ConfigResource::Broker(None), &ops, false)
                .await?;
        }
        Step::ClearThrottle => {
            let ops: Vec<AlterOp> = THROTTLE_KEYS.iter().map(|k| AlterOp::Delete(k.to_string())).collect();
            admin
                .incremental_alter_configs(&ConfigResource::Broker(None), &ops, false)
                .await?;
        }
        Step::ElectPreferredLeaders => {
            for ((t, p), r) in admin.elect_leaders(true, None).await? {
                if let Err(e) = r {
                    tracing::debug!(%cluster, topic = %t, partition = p, "preferred leader not elected: {e}");
                }
            }
        }
        Step::Unregister(ids) => {
            for id in ids {
                tracing::info!(%cluster, plan = %plan_id, broker = id, "unregistering broker");
                admin.unregister_broker(id).await?;
            }
        }
        Step::DeleteClaims(ordinals) => {
            let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &names.namespace);
            for o in ordinals {
                let claim = format!("data-{}", names.pod(o));
                tracing::info!(%cluster, %claim, "deleting volume (storage.whenScaled: Delete)");
                match pvcs.delete(&claim, &DeleteParams::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Ok(())
}

/// Takes a CA's steps (new keys and certificates are drawn here), then writes
/// its Secrets: the leaves and the trust bundle before the keys, so a failure
/// part way leaves the keys' record (and the plan's times) as they were.
async fn certificates(ctx: &Context, kc: &KafkaCluster, ns: &str, w: CertificateWrite) -> Result<(), Error> {
    let mut m = w.material;
    let names = &w.common_names;
    let cn = |leaf: &str| names.get(leaf).cloned().unwrap_or_else(|| leaf.to_string());
    m.apply(&w.steps, &w.wanted, &cn, &w.policy, jiff::Timestamp::now())?;
    m.force_renew_handled = w.force_renew;
    tracing::info!(cluster = %kc.name_any(), ca = %m.name, steps = ?w.steps.iter().map(step_name).collect::<Vec<_>>(), "certificates");
    let bytes = |data: BTreeMap<String, String>| -> BTreeMap<String, Vec<u8>> {
        data.into_iter().map(|(k, v)| (k, v.into_bytes())).collect()
    };
    if let Some(leaves) = &w.leaves_secret {
        apply_secret(ctx, kc, ns, leaves, bytes(m.leaves_data()), Default::default()).await?;
    }
    // Strimzi's keys: the bundle as PEM, and as PKCS#12 with its password for Java clients.
    let password = crate::certificates::issue::password();
    let cas: Vec<_> = m.cas.values().rev().collect();
    let p12 = crate::certificates::issue::truststore(&cas, &password)?;
    let bundle = BTreeMap::from([
        ("ca.crt".to_string(), m.bundle().into_bytes()),
        ("ca.p12".to_string(), p12),
        ("ca.password".to_string(), password.into_bytes()),
    ]);
    apply_secret(ctx, kc, ns, &w.cert_secret, bundle, Default::default()).await?;
    apply_secret(ctx, kc, ns, &w.key_secret, bytes(m.key_data()), m.annotations()).await
}

/// A certificate step without its keys, for the log.
fn step_name(step: &CertStep) -> String {
    match step {
        CertStep::CreateCa => "create CA".into(),
        CertStep::AddCa { generation } => format!("add CA v{generation}"),
        CertStep::Issue { leaf, generation } => format!("issue {leaf} from v{generation}"),
        CertStep::Revoke { leaf } => format!("remove {leaf}"),
        CertStep::DropCa { generation } => format!("drop CA v{generation}"),
    }
}

/// Server-side apply of a Secret owned by the cluster (its data is never logged).
/// As `data`, not `stringData`: the API server folds `stringData` into `data`
/// outside the apply's field ownership, so a key dropped from a later apply
/// (an old CA's) would stay in the Secret for ever.
async fn apply_secret(
    ctx: &Context,
    kc: &KafkaCluster,
    ns: &str,
    name: &str,
    data: BTreeMap<String, Vec<u8>>,
    annotations: BTreeMap<String, String>,
) -> Result<(), Error> {
    let names = Names::new(kc, &ctx.settings.cluster_domain);
    let mut owner = kc.controller_owner_ref(&());
    if let Some(o) = owner.as_mut() {
        o.block_owner_deletion = Some(true);
    }
    let secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": names.labels(),
            "annotations": annotations,
            "ownerReferences": owner.map(|o| vec![o]).unwrap_or_default(),
        },
        "type": "Opaque",
        "data": data
            .into_iter()
            .map(|(k, v)| (k, base64::engine::general_purpose::STANDARD.encode(v)))
            .collect::<BTreeMap<String, String>>(),
    });
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    api.patch(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&secret))
        .await?;
    Ok(())
}

fn dynamic_api(ctx: &Context, ns: &str, obj: &serde_json::Value) -> Api<DynamicObject> {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let kind = obj["kind"].as_str().unwrap_or_default();
    let gvk = GroupVersionKind::gvk(group, version, kind);
    if kind == "ClusterRoleBinding" {
        return Api::all_with(ctx.client.clone(), &ApiResource::from_gvk(&gvk));
    }
    Api::namespaced_with(ctx.client.clone(), ns, &ApiResource::from_gvk(&gvk))
}

/// Server-side apply of a KafkaCluster's status.
pub async fn write_status(api: &Api<KafkaCluster>, name: &str, st: &KafkaClusterStatus) -> Result<(), Error> {
    let patch = json!({
        "apiVersion": KafkaCluster::api_version(&()),
        "kind": KafkaCluster::kind(&()),
        "status": st,
    });
    api.patch_status(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
        .await?;
    Ok(())
}

/// The shell against a scripted API server (`tower_test::mock`, as kube-rs's
/// controller-rs does): the writes reach the server in the plan's order, and
/// the first failure stops the rest.
#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use http::{Request, Response, StatusCode};
    use kube::client::Body;
    use tower_test::mock;

    use super::*;
    use crate::cluster::build::Settings;
    use crate::cluster::decide::tests::{facts, plan_of, secured_facts};
    use crate::telemetry::Metrics;

    type Handle = mock::Handle<Request<Body>, Response<Body>>;

    fn context() -> (Context, Handle) {
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let ctx = Context::new(
            kube::Client::new(service, "default"),
            Settings::default(),
            Arc::new(Metrics::default()),
            Duration::from_secs(60),
            jiff::SignedDuration::from_secs(600),
            "test".into(),
        );
        (ctx, handle)
    }

    /// One request as the server saw it.
    #[derive(Debug)]
    struct Seen {
        call: String,
        body: serde_json::Value,
    }

    /// Plays the API server until the client hangs up: answers every request
    /// by echoing its object (a KafkaCluster for status writes), except that
    /// calls containing `fail` get a 500.
    async fn serve(mut handle: Handle, kc: KafkaCluster, fail: Option<&'static str>) -> Vec<Seen> {
        let mut seen = Vec::new();
        while let Some((request, respond)) = handle.next_request().await {
            let call = format!("{} {}", request.method(), request.uri().path());
            let bytes = request.into_body().collect_bytes().await.unwrap();
            let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            let failing = fail.is_some_and(|f| call.contains(f));
            let reply = if failing {
                let status = serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "message": "scripted failure", "reason": "InternalError", "code": 500});
                Response::builder()
                    .status(StatusCode::INTERNAL_SERVER_ERROR)
                    .body(status)
            } else if call.contains("/kafkaclusters/") {
                Response::builder().body(serde_json::to_value(&kc).unwrap())
            } else if call.starts_with("DELETE") {
                Response::builder().body(serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}))
            } else {
                Response::builder().body(body.clone())
            };
            let reply = reply.unwrap().map(|v| Body::from(serde_json::to_vec(&v).unwrap()));
            seen.push(Seen { call, body });
            respond.send_response(reply);
        }
        seen
    }

    /// Runs `plan` against the scripted server; the calls it made, in order.
    async fn run(plan: Plan, fail: Option<&'static str>) -> (Result<Action, Error>, Vec<Seen>) {
        let kc = facts(3, 3).cluster;
        let (ctx, handle) = context();
        let server = tokio::spawn(serve(handle, kc.clone(), fail));
        let result = execute(&ctx, &kc, plan).await;
        drop(ctx);
        (result, server.await.unwrap())
    }

    #[tokio::test]
    async fn status_reaches_the_server_before_the_statefulset_grows() {
        let (result, seen) = run(plan_of(&facts(3, 4)), None).await;
        result.unwrap();
        let status = seen
            .iter()
            .position(|s| s.call.ends_with("/kafkaclusters/demo/status"))
            .unwrap();
        let grow = seen
            .iter()
            .position(|s| s.call.ends_with("/statefulsets/demo") && s.body["spec"]["replicas"] == 4)
            .unwrap();
        assert!(status < grow, "{seen:#?}");
        assert_eq!(seen[status].body["status"]["scaling"]["to"], 4);
        assert!(seen.last().unwrap().call.ends_with("/kafkaclusters/demo/status"));
    }

    #[tokio::test]
    async fn a_failed_write_stops_the_rest_and_status_is_not_written() {
        let (result, seen) = run(plan_of(&facts(3, 3)), Some("/statefulsets/")).await;
        assert!(matches!(result, Err(Error::Kube(_))), "{result:?}");
        assert!(seen.last().unwrap().call.ends_with("/statefulsets/demo"), "{seen:#?}");
        assert!(!seen.iter().any(|s| s.call.ends_with("/status")));
    }

    #[tokio::test]
    async fn a_secured_cluster_s_secrets_are_written_before_its_pods_can_start() {
        let (result, seen) = run(plan_of(&secured_facts(3, 3)), None).await;
        result.unwrap();
        let secrets: Vec<&str> = seen
            .iter()
            .filter(|s| s.call.contains("/secrets/"))
            .map(|s| s.call.rsplit('/').next().unwrap())
            .collect();
        assert_eq!(
            secrets,
            [
                "demo-brokers",
                "demo-cluster-ca-cert",
                "demo-cluster-ca",
                "demo-clients-ca-cert",
                "demo-clients-ca"
            ]
        );
        let last_secret = seen.iter().rposition(|s| s.call.contains("/secrets/")).unwrap();
        let sts = seen.iter().position(|s| s.call.contains("/statefulsets/")).unwrap();
        assert!(last_secret < sts);
        let body = |name: &str| {
            &seen
                .iter()
                .find(|s| s.call.ends_with(&format!("/secrets/{name}")))
                .unwrap()
                .body
        };
        // As `data`: keys the next apply leaves out are removed (an old CA's).
        let text = |name: &str, key: &str| {
            let b64 = body(name)["data"][key].as_str().unwrap_or_default().to_string();
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).unwrap()).unwrap()
        };
        assert!(text("demo-brokers", "demo-2.pem").contains("BEGIN CERTIFICATE"));
        assert!(text("demo-brokers", "operator.key").contains("PRIVATE KEY"));
        assert!(body("demo-brokers").get("stringData").is_none());
        assert!(!text("demo-cluster-ca-cert", "ca.password").is_empty());
        assert!(body("demo-cluster-ca-cert")["data"]["ca.p12"].is_string());
        let bundle = text("demo-cluster-ca-cert", "ca.crt");
        let bundle = bundle.as_str();
        assert_eq!(bundle.matches("BEGIN CERTIFICATE").count(), 1);
        assert!(!bundle.contains("PRIVATE KEY"), "the bundle holds no key");
        assert!(body("demo-cluster-ca")["metadata"]["annotations"]["skein.dev/bundle-changed"].is_string());
    }

    #[tokio::test]
    async fn a_claim_that_cannot_grow_is_reported_and_the_statefulset_is_kept() {
        let mut f = facts(3, 3);
        f.cluster.spec.storage.size = "30Gi".into();
        let (result, seen) = run(plan_of(&f), Some("/persistentvolumeclaims/data-demo-0")).await;
        assert!(result.is_err());
        let calls: Vec<&str> = seen.iter().map(|s| s.call.as_str()).collect();
        assert_eq!(
            calls[0],
            "PATCH /api/v1/namespaces/kafka/persistentvolumeclaims/data-demo-0"
        );
        assert!(calls[1].contains("/events"), "{calls:?}");
        assert!(seen[1].body.to_string().contains("VolumeExpansionFailed"));
        assert!(!calls.iter().any(|c| c.starts_with("DELETE")), "{calls:?}");
    }
}
