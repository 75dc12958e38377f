//! The KafkaUser reconciler: a user's credentials, ACLs and quotas on its
//! cluster, and the Secret applications mount, beside the resource.
//!
//! Reads the resource, its cluster, the namespace's labels, the Secrets and
//! what the cluster holds for the user; `plan` (pure) says what differs; this
//! file carries it out and writes status. It never touches another user's
//! principal, and never writes a password or key anywhere but the user's Secret
//! (SCRAM credentials leave as salted hashes, KIP-554).

pub mod plan;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use futures::FutureExt;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kafka_protocol::ResponseError;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{finalizer, Event as Finalizer};
use kube::{Resource, ResourceExt};
use serde_json::json;
use skein_client::{acl_codes, AclEntry, AclFilterSpec, Admin, QuotaEntity};

use crate::certificates::issue::{self, Usage};
use crate::certificates::material::Material;
use crate::cluster::build::{Names, FIELD_MANAGER};
use crate::cluster::listeners::SecretNames;
use crate::context::Context;
use crate::crd::{condition, set_condition, AuthenticationType, KafkaCluster, KafkaUser, KafkaUserStatus};
use crate::error::Error;

/// Finalizer that removes the user's credentials, ACLs and quotas from the cluster.
pub const FINALIZER: &str = "skein.dev/user";
/// The label on a user's Secret naming its KafkaUser.
pub const USER_LABEL: &str = "skein.dev/kafka-user";
/// Iterations of the SCRAM credentials the operator stores (Kafka's minimum is 4096).
const SCRAM_ITERATIONS: i32 = 8192;

/// Reconciles one KafkaUser.
pub async fn reconcile(ku: Arc<KafkaUser>, ctx: Arc<Context>) -> Result<Action, Error> {
    let timer = ctx.metrics.start("KafkaUser");
    let key = format!("KafkaUser/{}/{}", ku.namespace().unwrap_or_default(), ku.name_any());
    let api: Api<KafkaUser> = Api::namespaced(ctx.client.clone(), &ku.namespace().unwrap_or_default());
    let result = finalizer(&api, FINALIZER, ku, |event| async {
        match event {
            // Boxed: a concrete Send future, which rustc cannot prove for the generic one.
            Finalizer::Apply(ku) => apply(&ku, &ctx).boxed().await,
            Finalizer::Cleanup(ku) => cleanup(&ku, &ctx).boxed().await,
        }
    })
    .await
    .map_err(Error::from);
    timer.finish();
    if result.is_ok() {
        ctx.succeeded(&key);
    }
    result
}

/// What the controller does after a failed reconcile: count it, back off.
pub fn error_policy(ku: Arc<KafkaUser>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failure("KafkaUser", error.reason());
    tracing::warn!(user = %ku.name_any(), namespace = %ku.namespace().unwrap_or_default(), reason = error.reason(), "reconcile failed: {error}");
    let key = format!("KafkaUser/{}/{}", ku.namespace().unwrap_or_default(), ku.name_any());
    Action::requeue(ctx.backoff(&key))
}

/// Where the user stands before anything is changed.
struct Found {
    kc: KafkaCluster,
    cluster_namespace: String,
    username: String,
}

/// Why a user cannot be reconciled now: the Ready condition's reason and message.
struct NotReady {
    reason: &'static str,
    message: String,
    requeue: Option<Duration>,
}

impl NotReady {
    fn new(reason: &'static str, message: impl Into<String>, requeue: Option<Duration>) -> Self {
        NotReady {
            reason,
            message: message.into(),
            requeue,
        }
    }
}

/// The cluster, the namespace's permission and the cluster's readiness.
async fn find(ku: &KafkaUser, ctx: &Context) -> Result<Result<Found, NotReady>, Error> {
    let ns = ku.namespace().unwrap_or_default();
    let errors = plan::validate(&ku.spec);
    if !errors.is_empty() {
        return Ok(Err(NotReady::new("InvalidSpec", errors.join("; "), None)));
    }
    let cluster_namespace = ku.spec.cluster_namespace.clone().unwrap_or_else(|| ns.clone());
    let clusters: Api<KafkaCluster> = Api::namespaced(ctx.client.clone(), &cluster_namespace);
    let Some(kc) = clusters
        .get_opt(&ku.spec.cluster)
        .await?
        .filter(|kc| kc.metadata.deletion_timestamp.is_none())
    else {
        let msg = format!("no KafkaCluster {cluster_namespace}/{}", ku.spec.cluster);
        return Ok(Err(NotReady::new(
            "ClusterNotFound",
            msg,
            Some(Duration::from_secs(30)),
        )));
    };
    let labels = if ns == cluster_namespace {
        BTreeMap::new()
    } else {
        let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
        namespaces.get(&ns).await?.metadata.labels.unwrap_or_default()
    };
    match plan::namespace_allowed(&kc, &cluster_namespace, &ns, &labels) {
        Ok(true) => {}
        Ok(false) => {
            let msg = format!(
                "KafkaCluster {cluster_namespace}/{}: spec.userNamespaces does not select namespace {ns}",
                ku.spec.cluster
            );
            return Ok(Err(NotReady::new("NamespaceNotAllowed", msg, Some(ctx.drift_interval))));
        }
        Err(e) => return Ok(Err(NotReady::new("NamespaceNotAllowed", e, Some(ctx.drift_interval)))),
    }
    if let Some(msg) = plan::unsupported_authentication(&kc, &ku.spec) {
        return Ok(Err(NotReady::new(
            "AuthenticationNotEnabled",
            msg,
            Some(ctx.drift_interval),
        )));
    }
    let wants_acls = ku.spec.authorization.as_ref().is_some_and(|a| !a.acls.is_empty());
    if wants_acls && !plan::has_authorizer(&kc) {
        let msg = format!(
            "KafkaCluster {} has no authorizer (spec.authorization): ACLs would not be enforced",
            ku.spec.cluster
        );
        return Ok(Err(NotReady::new(
            "AuthorizationNotEnabled",
            msg,
            Some(ctx.drift_interval),
        )));
    }
    let up = kc.status.as_ref().is_some_and(|s| {
        s.bootstrap_servers.is_some()
            && matches!(s.phase.as_deref(), Some("Ready" | "Degraded" | "Scaling" | "Rolling"))
    });
    if !up {
        let msg = format!("KafkaCluster {} is not ready", ku.spec.cluster);
        return Ok(Err(NotReady::new("ClusterNotReady", msg, Some(Duration::from_secs(5)))));
    }
    let username = plan::username(&ns, &ku.name_any(), &cluster_namespace);
    Ok(Ok(Found {
        kc,
        cluster_namespace,
        username,
    }))
}

async fn apply(ku: &KafkaUser, ctx: &Context) -> Result<Action, Error> {
    let ns = ku.namespace().unwrap_or_default();
    let api: Api<KafkaUser> = Api::namespaced(ctx.client.clone(), &ns);
    let g = ku.metadata.generation;
    let mut st = ku.status.clone().unwrap_or_default();
    st.observed_generation = g;
    let found = match find(ku, ctx).await? {
        Ok(f) => f,
        Err(n) => {
            if !condition::is_reason(&st.conditions, "Ready", n.reason) {
                ctx.event(ku, true, n.reason, n.message.clone()).await;
            }
            set_condition(&mut st.conditions, condition("Ready", false, n.reason, n.message, g));
            write_status(&api, ku, &st).await?;
            return Ok(n.requeue.map_or_else(Action::await_change, Action::requeue));
        }
    };
    let synced = st.observed_generation == ku.status.as_ref().and_then(|s| s.observed_generation)
        && condition::is_true(&st.conditions, "Ready");
    let admin = crate::cluster::admin_for(ctx, &found.kc).await?;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let existing = secrets.get_opt(&ku.name_any()).await?;
    if let Some(s) = &existing {
        if !owned_by(s, ku) {
            let msg = format!("Secret {ns}/{} exists and is not this user's", ku.name_any());
            set_condition(
                &mut st.conditions,
                condition("Ready", false, "SecretConflict", msg.clone(), g),
            );
            if !synced {
                ctx.event(ku, true, "SecretConflict", msg).await;
            }
            write_status(&api, ku, &st).await?;
            return Ok(Action::requeue(ctx.drift_interval));
        }
    }
    let mut drift = Vec::new();
    let old = existing.as_ref().map(secret_data).unwrap_or_default();
    let data = match credentials(ku, ctx, &found, &admin, &old, &mut drift).await {
        Ok(d) => d,
        Err(Ok(n)) => {
            if !condition::is_reason(&st.conditions, "Ready", n.reason) {
                ctx.event(ku, true, n.reason, n.message.clone()).await;
            }
            set_condition(&mut st.conditions, condition("Ready", false, n.reason, n.message, g));
            write_status(&api, ku, &st).await?;
            return Ok(n.requeue.map_or_else(Action::await_change, Action::requeue));
        }
        Err(Err(e)) => return Err(e),
    };
    match data {
        Some(data) if data != old => apply_secret(ctx, ku, &found, data).await?,
        Some(_) => {}
        None => {
            if existing.is_some() {
                secrets.delete(&ku.name_any(), &DeleteParams::default()).await?;
            }
        }
    }
    let tls = ku
        .spec
        .authentication
        .as_ref()
        .is_some_and(|a| a.type_ == AuthenticationType::Tls);
    let principal = plan::principal(&found.username, tls);
    if plan::has_authorizer(&found.kc) {
        let want = plan::acls(&ku.spec, &principal);
        let mut have = Vec::new();
        for p in plan::principals(&found.username) {
            have.extend(admin.describe_acls(&principal_filter(&p)).await?);
        }
        let diff = plan::acl_diff(&want, &have);
        if !diff.create.is_empty() {
            admin.create_acls(&diff.create).await?;
        }
        for gone in &diff.delete {
            admin.delete_acls(&exact(gone)?).await?;
        }
        if !diff.is_empty() {
            drift.push(format!("ACLs (+{} -{})", diff.create.len(), diff.delete.len()));
        }
    }
    let want = plan::quotas(ku.spec.quotas.as_ref());
    let none = BTreeMap::new();
    for name in [found.username.clone(), format!("CN={}", found.username)] {
        let entity = QuotaEntity {
            user: Some(Some(name.clone())),
            client_id: None,
        };
        let have = admin
            .describe_client_quotas(&entity)
            .await?
            .into_iter()
            .find(|e| e.entity == entity)
            .map(|e| e.values)
            .unwrap_or_default();
        let mine = name == principal.trim_start_matches("User:");
        let ops = plan::quota_ops(if mine { &want } else { &none }, &have);
        if !ops.is_empty() {
            admin.alter_client_quotas(&entity, &ops, false).await?;
            drift.push("quotas".into());
        }
    }
    if synced && !drift.is_empty() {
        let msg = format!("reverted changes made outside the operator: {}", drift.join(", "));
        ctx.event(ku, true, "DriftReverted", msg.clone()).await;
        set_condition(
            &mut st.conditions,
            condition("DriftReverted", true, "ChangedOutside", msg, g),
        );
    }
    st.username = Some(if tls {
        format!("CN={}", found.username)
    } else {
        found.username.clone()
    });
    st.secret = ku.spec.authentication.as_ref().map(|_| ku.name_any());
    if !condition::is_true(&st.conditions, "Ready") {
        ctx.event(ku, false, "UserReady", format!("{principal} is ready")).await;
    }
    set_condition(&mut st.conditions, condition("Ready", true, "UserReady", "", g));
    write_status(&api, ku, &st).await?;
    Ok(Action::requeue(ctx.drift_interval))
}

/// The user's credentials on the cluster, and the Secret data that goes with
/// them (None: the user has no Secret). A missing credential is drift.
async fn credentials(
    ku: &KafkaUser,
    ctx: &Context,
    found: &Found,
    admin: &Admin,
    old: &BTreeMap<String, Vec<u8>>,
    drift: &mut Vec<String>,
) -> Result<Option<BTreeMap<String, Vec<u8>>>, Result<NotReady, Error>> {
    let user = &found.username;
    let held = admin
        .describe_scram_credentials(Some(std::slice::from_ref(user)))
        .await
        .map_err(|e| Err(e.into()))?;
    let mechanism = ku.spec.authentication.as_ref().and_then(|a| a.type_.sasl_mechanism());
    // Credentials of a mechanism the user no longer has.
    for c in held.iter().filter(|c| Some(c.mechanism.as_str()) != mechanism) {
        admin
            .delete_scram_credential(user, &c.mechanism)
            .await
            .map_err(|e| Err(e.into()))?;
    }
    let Some(auth) = &ku.spec.authentication else {
        return Ok(None);
    };
    if let Some(mechanism) = mechanism {
        let password = match &auth.password {
            Some(source) => {
                let r = &source.value_from.secret_key_ref;
                let ns = ku.namespace().unwrap_or_default();
                let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
                let value = secrets
                    .get_opt(&r.name)
                    .await
                    .map_err(|e| Err(e.into()))?
                    .and_then(|s| secret_data(&s).remove(&r.key))
                    .and_then(|v| String::from_utf8(v).ok())
                    .filter(|v| !v.is_empty());
                match value {
                    Some(v) => v,
                    None => {
                        let msg = format!("Secret {ns}/{} has no key {:?}", r.name, r.key);
                        return Err(Ok(NotReady::new(
                            "PasswordSecretNotFound",
                            msg,
                            Some(ctx.drift_interval),
                        )));
                    }
                }
            }
            None => old
                .get("password")
                .and_then(|p| String::from_utf8(p.clone()).ok())
                .filter(|p| !p.is_empty())
                .unwrap_or_else(issue::password),
        };
        let has = held.iter().any(|c| c.mechanism == mechanism);
        let changed = old.get("password").map(Vec::as_slice) != Some(password.as_bytes());
        if !has || changed {
            if !has && !changed {
                drift.push("SCRAM credential".into());
            }
            admin
                .upsert_scram_credential(user, mechanism, &password, SCRAM_ITERATIONS)
                .await
                .map_err(|e| Err(e.into()))?;
        }
        let jaas = plan::jaas_config(user, &password);
        return Ok(Some(BTreeMap::from([
            ("password".to_string(), password.into_bytes()),
            ("sasl.jaas.config".to_string(), jaas.into_bytes()),
        ])));
    }
    // A certificate from the clients CA.
    let names = Names::new(&found.kc, &ctx.settings.cluster_domain);
    let s = SecretNames::new(&names);
    let (keys, annotations) = crate::cluster::facts::secret_text(ctx, &found.cluster_namespace, &s.clients_ca)
        .await
        .map_err(Err)?;
    let ca = Material::read(&s.clients_ca, &keys, &annotations, &BTreeMap::new());
    let now = Timestamp::now();
    let generations: Vec<u32> = ca.cas.keys().copied().collect();
    let Some(generation) = plan::signing_generation(&generations, ca.bundle_changed, ctx.secret_propagation, now)
    else {
        let msg = format!("the clients CA of {} is not issued yet", names.name);
        return Err(Ok(NotReady::new(
            "ClientsCaNotReady",
            msg,
            Some(Duration::from_secs(5)),
        )));
    };
    let policy = &found.kc.spec.certificates.clients_ca;
    let renewal = SignedDuration::from_hours(24 * i64::from(policy.renewal_days));
    let current = old
        .get("user.crt")
        .and_then(|c| std::str::from_utf8(c).ok())
        .and_then(|c| Some((ca.generation_of(c), issue::read(c).ok()?)))
        .map(|(issuer, r)| plan::UserCertificate {
            issuer,
            not_after: r.not_after,
            subject_matches: r.subject == *user,
        });
    let ca_cert = ca.cas.get(&generation).map(|c| c.cert_pem.clone()).unwrap_or_default();
    if !plan::certificate_due(current.as_ref(), generation, now, renewal) {
        let mut data = old.clone();
        data.insert("ca.crt".into(), ca_cert.into_bytes());
        return Ok(Some(data));
    }
    let Some(signer) = ca.cas.get(&generation) else {
        return Ok(Some(old.clone()));
    };
    let validity = SignedDuration::from_hours(24 * i64::from(policy.validity_days));
    let issued = issue::issue(signer, user, &Usage::Client, now, validity).map_err(|e| Err(e.into()))?;
    let p12_password = issue::password();
    let p12 = issue::keystore(&issued, signer, user, &p12_password).map_err(|e| Err(e.into()))?;
    tracing::info!(user = %user, ca_generation = generation, "issued a client certificate");
    Ok(Some(BTreeMap::from([
        ("ca.crt".to_string(), ca_cert.into_bytes()),
        ("user.crt".to_string(), issued.cert_pem.clone().into_bytes()),
        ("user.key".to_string(), issued.key_pem.clone().into_bytes()),
        ("user.p12".to_string(), p12),
        ("user.password".to_string(), p12_password.into_bytes()),
    ])))
}

fn secret_data(s: &Secret) -> BTreeMap<String, Vec<u8>> {
    s.data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect()
}

/// Whether a Secret is this KafkaUser's (so it may be written or deleted).
fn owned_by(s: &Secret, ku: &KafkaUser) -> bool {
    s.owner_references()
        .iter()
        .any(|o| Some(&o.uid) == ku.metadata.uid.as_ref())
}

/// Server-side apply of the user's Secret, owned by the KafkaUser.
async fn apply_secret(
    ctx: &Context,
    ku: &KafkaUser,
    found: &Found,
    data: BTreeMap<String, Vec<u8>>,
) -> Result<(), Error> {
    let ns = ku.namespace().unwrap_or_default();
    let encoded: BTreeMap<String, String> = data
        .into_iter()
        .map(|(k, v)| (k, base64::engine::general_purpose::STANDARD.encode(v)))
        .collect();
    let mut owner = ku.controller_owner_ref(&());
    if let Some(o) = owner.as_mut() {
        o.block_owner_deletion = Some(true);
    }
    let secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": ku.name_any(),
            "namespace": ns,
            "labels": {
                "app.kubernetes.io/managed-by": "skein-operator",
                "app.kubernetes.io/instance": found.kc.name_any(),
                USER_LABEL: ku.name_any(),
            },
            "ownerReferences": owner.map(|o| vec![o]).unwrap_or_default(),
        },
        "type": "Opaque",
        "data": encoded,
    });
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    api.patch(
        &ku.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&secret),
    )
    .await?;
    tracing::info!(user = %found.username, secret = %ku.name_any(), namespace = %ns, "user Secret written");
    Ok(())
}

fn principal_filter(principal: &str) -> AclFilterSpec {
    AclFilterSpec {
        principal: Some(principal.to_string()),
        ..Default::default()
    }
}

/// A filter that matches exactly one binding.
fn exact(a: &AclEntry) -> Result<AclFilterSpec, Error> {
    use acl_codes::{code, OPERATIONS, PATTERN_TYPES, PERMISSIONS, RESOURCE_TYPES};
    let bad = || Error::Kafka(skein_client::Error::Protocol(format!("unknown ACL binding {a:?}")));
    Ok(AclFilterSpec {
        resource_type: Some(code(RESOURCE_TYPES, &a.resource_type).ok_or_else(bad)?),
        resource_name: Some(a.resource_name.clone()),
        pattern_type: Some(code(PATTERN_TYPES, &a.pattern_type).ok_or_else(bad)?),
        principal: Some(a.principal.clone()),
        host: Some(a.host.clone()),
        operation: Some(code(OPERATIONS, &a.operation).ok_or_else(bad)?),
        permission: Some(code(PERMISSIONS, &a.permission).ok_or_else(bad)?),
    })
}

/// A deleted resource: its credentials, ACLs and quotas leave the cluster
/// (its Secret is garbage-collected with it). A cluster that is gone holds nothing.
async fn cleanup(ku: &KafkaUser, ctx: &Context) -> Result<Action, Error> {
    let ns = ku.namespace().unwrap_or_default();
    let cluster_namespace = ku.spec.cluster_namespace.clone().unwrap_or_else(|| ns.clone());
    let clusters: Api<KafkaCluster> = Api::namespaced(ctx.client.clone(), &cluster_namespace);
    let Some(kc) = clusters
        .get_opt(&ku.spec.cluster)
        .await?
        .filter(|kc| kc.metadata.deletion_timestamp.is_none())
    else {
        tracing::info!(user = %ku.name_any(), "cluster gone; releasing the KafkaUser");
        return Ok(Action::await_change());
    };
    if kc.status.as_ref().and_then(|s| s.bootstrap_servers.as_ref()).is_none() {
        return Err(Error::ClusterNotReady(ku.spec.cluster.clone()));
    }
    let admin = crate::cluster::admin_for(ctx, &kc).await?;
    let user = plan::username(&ns, &ku.name_any(), &cluster_namespace);
    for c in admin
        .describe_scram_credentials(Some(std::slice::from_ref(&user)))
        .await?
    {
        admin.delete_scram_credential(&user, &c.mechanism).await?;
    }
    if plan::has_authorizer(&kc) {
        for p in plan::principals(&user) {
            match admin.delete_acls(&principal_filter(&p)).await {
                Ok(_) => {}
                Err(skein_client::Error::Kafka {
                    code: ResponseError::SecurityDisabled,
                    ..
                }) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    for name in [user.clone(), format!("CN={user}")] {
        let entity = QuotaEntity {
            user: Some(Some(name)),
            client_id: None,
        };
        for e in admin.describe_client_quotas(&entity).await? {
            if e.entity == entity {
                let ops: Vec<(String, Option<f64>)> = e.values.keys().map(|k| (k.clone(), None)).collect();
                admin.alter_client_quotas(&entity, &ops, false).await?;
            }
        }
    }
    tracing::info!(user = %user, "credentials, ACLs and quotas removed (KafkaUser deleted)");
    Ok(Action::await_change())
}

async fn write_status(api: &Api<KafkaUser>, ku: &KafkaUser, st: &KafkaUserStatus) -> Result<(), Error> {
    let patch = json!({ "apiVersion": KafkaUser::api_version(&()), "kind": KafkaUser::kind(&()), "status": st });
    api.patch_status(
        &ku.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}
