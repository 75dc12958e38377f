//! Observe: everything one reconcile of a KafkaCluster reads, read here and
//! nowhere else, into a value the pure `decide` works from.
//!
//! What it reads follows from what it has read (pure predicates of the facts so
//! far): a paused cluster or a StatefulSet being replaced needs nothing more;
//! reassignments and log-dir sizes are read only while a scale is under way,
//! topic configs and the quorum leader only when a roll is under way or due.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, ListParams};
use kube::ResourceExt;
use skein_client::ConfigResource;

use super::build::{Names, FIELD_MANAGER};
use super::listeners::SecretNames;
use super::status::Observed;
use super::{roll, scale, PAUSE_ANNOTATION};
use crate::certificates::material::Material;
use crate::context::Context;
use crate::crd::KafkaCluster;
use crate::error::Error;

/// What one reconcile knows of a cluster.
#[derive(Debug, Clone)]
pub struct Facts {
    /// The resource as the API server has it now: the controller's cache can
    /// trail this reconciler's own last status write, and scaling progress,
    /// roll state and phase transitions build on that write.
    pub cluster: KafkaCluster,
    pub names: Names,
    /// `skein.dev/paused: "true"`; nothing else is read.
    pub paused: bool,
    pub statefulset: Option<StatefulSetFacts>,
    /// The broker pods and, when one is ready, what the brokers report.
    pub observed: Observed,
    /// The cluster's volume claims.
    pub claims: Vec<Claim>,
    /// The brokers' cluster-wide dynamic configs, when the brokers answered.
    pub broker_configs: Option<BTreeMap<String, String>>,
    /// Read when a roll is under way or due.
    pub roll: Option<RollFacts>,
    /// The metadata quorum as its leader describes it, when the brokers answered.
    pub quorum: Option<skein_client::QuorumInfo>,
    /// Services and ConfigMaps this cluster owns (deleted when no longer built).
    pub owned: Vec<Owned>,
    /// A secured cluster's CAs and certificates, as its Secrets hold them.
    pub certificates: Option<CertificateFacts>,
    /// The external listeners' bootstrap Services and the brokers' nodes.
    pub external: super::init::ExternalFacts,
}

/// The cluster CA (with the brokers' and the operator's certificates) and the clients CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFacts {
    pub cluster_ca: Material,
    pub clients_ca: Material,
}

impl CertificateFacts {
    /// Seconds until each CA's newest key and each leaf expire (negative: expired).
    pub fn expiries(&self, now: jiff::Timestamp) -> Vec<(String, i64)> {
        let left = |pem: &str| {
            crate::certificates::issue::read(pem)
                .ok()
                .map(|r| r.not_after.as_second() - now.as_second())
        };
        let mut out = Vec::new();
        for (name, m) in [("cluster-ca", &self.cluster_ca), ("clients-ca", &self.clients_ca)] {
            if let Some(s) = m.cas.values().next_back().and_then(|c| left(&c.cert_pem)) {
                out.push((name.to_string(), s));
            }
            for (leaf, l) in &m.leaves {
                if let Some(s) = left(&l.cert_pem) {
                    out.push((leaf.clone(), s));
                }
            }
        }
        out
    }
}

/// The StatefulSet as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatefulSetFacts {
    pub replicas: Option<i32>,
    /// The revision pods roll onto, once the StatefulSet controller has seen the template.
    pub update_revision: Option<String>,
    /// The volume size of its claim template.
    pub claim_size: Option<String>,
    /// Being deleted (replaced for a new volume size, orphaning its pods).
    pub deleting: bool,
}

/// A volume claim of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub name: String,
    /// From `data-NAME-ORDINAL`.
    pub ordinal: Option<i32>,
    /// Requested size, bytes (0 when unreadable).
    pub bytes: u64,
    pub deleting: bool,
}

/// What a roll decision needs beyond the pods.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RollFacts {
    /// `min.insync.replicas` of each topic.
    pub min_isr: BTreeMap<String, usize>,
    pub quorum_leader: Option<i32>,
}

/// A Service or ConfigMap owned by the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owned {
    pub kind: OwnedKind,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnedKind {
    Service,
    ConfigMap,
    NetworkPolicy,
}

impl OwnedKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OwnedKind::Service => "Service",
            OwnedKind::ConfigMap => "ConfigMap",
            OwnedKind::NetworkPolicy => "NetworkPolicy",
        }
    }
}

impl Facts {
    /// Facts with nothing observed beyond the resource (tests, and the early returns).
    pub fn of(cluster: KafkaCluster, names: Names) -> Facts {
        Facts {
            paused: cluster.annotations().get(PAUSE_ANNOTATION).map(String::as_str) == Some("true"),
            cluster,
            names,
            statefulset: None,
            external: Default::default(),
            observed: Observed::default(),
            claims: Vec::new(),
            broker_configs: None,
            roll: None,
            quorum: None,
            owned: Vec::new(),
            certificates: None,
        }
    }

    /// The StatefulSet's replicas; for one replaced for a new volume size
    /// (gone, its pods left running), one past the highest pod ordinal.
    pub fn current_replicas(&self) -> Option<i32> {
        match self.statefulset.as_ref().and_then(|s| s.replicas) {
            Some(n) => Some(n),
            None => self.observed.pods.iter().map(|p| p.0).max().map(|o| o + 1),
        }
    }
}

/// Reads the facts of the KafkaCluster `name`; None when it is gone.
pub async fn observe(ctx: &Context, namespace: &str, name: &str) -> Result<Option<Facts>, Error> {
    let api: Api<KafkaCluster> = Api::namespaced(ctx.client.clone(), namespace);
    let Some(cluster) = api.get_opt(name).await? else {
        return Ok(None);
    };
    let names = Names::new(&cluster, &ctx.settings.cluster_domain);
    let mut facts = Facts::of(cluster, names);
    if facts.paused {
        return Ok(Some(facts));
    }
    let names = facts.names.clone();
    let statefulsets: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), namespace);
    facts.statefulset = statefulsets.get_opt(&names.name).await?.map(|s| statefulset_facts(&s));
    if facts.statefulset.as_ref().is_some_and(|s| s.deleting) {
        return Ok(Some(facts));
    }
    if super::listeners::secured(&facts.cluster) {
        facts.certificates = Some(certificates(ctx, &names, &facts.cluster.spec.certificates).await?);
    }
    facts.observed = pods(ctx, &names).await?;
    facts.external = external(ctx, &facts.cluster, &names, &facts.observed).await?;
    facts.claims = claims(ctx, &names).await?;
    let kc = &facts.cluster;
    let previous = kc.status.as_ref().and_then(|s| s.scaling.as_ref());
    let scaling =
        facts.current_replicas().is_some_and(|n| n != kc.spec.replicas) || previous.is_some_and(scale::active);
    if facts.observed.pods.iter().any(|p| p.2) {
        let admin = super::admin_for(ctx, &facts.cluster).await?;
        brokers(&admin, &names, scaling, &mut facts.observed).await;
    }
    if let Some(view) = facts.observed.view.as_ref().filter(|v| !v.registered.is_empty()) {
        let admin = super::admin_for(ctx, &facts.cluster).await?;
        facts.quorum = admin.describe_quorum().await.ok();
        facts.broker_configs = Some(
            admin
                .describe_configs(&ConfigResource::Broker(None))
                .await?
                .into_iter()
                .filter_map(|c| c.value.map(|v| (c.name, v)))
                .collect(),
        );
        let previous_roll = kc.status.as_ref().and_then(|s| s.roll.as_ref());
        let update_revision = facts.statefulset.as_ref().and_then(|s| s.update_revision.as_deref());
        let pods: Vec<roll::PodState> = facts.observed.revisions.values().cloned().collect();
        if roll::due(previous_roll, update_revision, &pods) {
            let mut rf = RollFacts::default();
            for t in view.assignments.keys() {
                let configs = admin.describe_configs(&ConfigResource::Topic(t.clone())).await?;
                let min = configs
                    .iter()
                    .find(|c| c.name == "min.insync.replicas")
                    .and_then(|c| c.value.as_deref()?.parse().ok())
                    .unwrap_or(1);
                rf.min_isr.insert(t.clone(), min);
            }
            rf.quorum_leader = facts.quorum.as_ref().map(|q| q.leader_id);
            facts.roll = Some(rf);
        }
    }
    facts.owned = owned(ctx, &facts.cluster, &names).await?;
    Ok(Some(facts))
}

fn statefulset_facts(s: &StatefulSet) -> StatefulSetFacts {
    StatefulSetFacts {
        replicas: s.spec.as_ref().and_then(|s| s.replicas),
        update_revision: s.status.as_ref().and_then(|st| {
            (st.observed_generation == s.metadata.generation)
                .then(|| st.update_revision.clone())
                .flatten()
        }),
        claim_size: claim_template_size(s),
        deleting: s.metadata.deletion_timestamp.is_some(),
    }
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

/// The broker pods: ordinal, name, readiness and revision.
async fn pods(ctx: &Context, names: &Names) -> Result<Observed, Error> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let mut observed = Observed::default();
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
        if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) {
            observed.nodes.insert(node);
        }
        observed.pods.push((ordinal, pod_name, ready));
    }
    observed.pods.sort();
    Ok(observed)
}

/// The cluster's volume claims with their requested sizes.
async fn claims(ctx: &Context, names: &Names) -> Result<Vec<Claim>, Error> {
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let prefix = format!("data-{}-", names.name);
    let mut out: Vec<Claim> = pvcs
        .list(&ListParams::default().labels(&names.selector_string()))
        .await?
        .iter()
        .map(|c| Claim {
            name: c.name_any(),
            ordinal: c.name_any().strip_prefix(&prefix).and_then(|o| o.parse().ok()),
            bytes: c
                .spec
                .as_ref()
                .and_then(|s| s.resources.as_ref()?.requests.as_ref()?.get("storage").cloned())
                .and_then(|q| super::validate::parse_quantity(&q.0).ok())
                .unwrap_or(0),
            deleting: c.metadata.deletion_timestamp.is_some(),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// What the brokers report into `observed`; brokers that do not answer within
/// 10 s leave it without a view (logged: normal while they start).
async fn brokers(admin: &skein_client::Admin, names: &Names, scaling: bool, observed: &mut Observed) {
    match tokio::time::timeout(Duration::from_secs(10), broker_view(admin, scaling)).await {
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

/// What the brokers report for status and scaling.
async fn broker_view(admin: &skein_client::Admin, scaling: bool) -> Result<scale::BrokerView, skein_client::Error> {
    let cluster = admin.describe_cluster().await?;
    let topics = admin.describe_topics(None).await?;
    let mut view = scale::BrokerView {
        registered: cluster.brokers.iter().map(|b| (b.id, b.fenced)).collect(),
        racks: cluster
            .brokers
            .iter()
            .filter_map(|b| Some((b.id, b.rack.clone()?)))
            .collect(),
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

/// A Secret's data as text (certificates and keys are PEM) and its annotations.
pub async fn secret_text(
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<(BTreeMap<String, String>, BTreeMap<String, String>), Error> {
    Ok(secret_text_opt(ctx, namespace, name).await?.unwrap_or_default())
}

/// A Secret's text keys and annotations; None when it does not exist.
pub async fn secret_text_opt(
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<Option<(BTreeMap<String, String>, BTreeMap<String, String>)>, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let Some(secret) = secrets.get_opt(name).await? else {
        return Ok(None);
    };
    let data = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| Some((k, String::from_utf8(v.0).ok()?)))
        .collect();
    Ok(Some((data, secret.metadata.annotations.unwrap_or_default())))
}

/// The CAs' Secrets and the certificates they signed.
/// The external listeners' bootstrap Services, and the addresses of the nodes
/// the brokers run on (for a nodeport listener's bootstrap servers).
async fn external(
    ctx: &Context,
    kc: &KafkaCluster,
    names: &Names,
    observed: &Observed,
) -> Result<super::init::ExternalFacts, Error> {
    let mut out = super::init::ExternalFacts::default();
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &names.namespace);
    let mut nodeport = false;
    for l in super::init::external(kc) {
        nodeport |= l.type_ == crate::crd::ListenerType::Nodeport;
        let Some(svc) = services
            .get_opt(&super::init::bootstrap_service(names, &l.name))
            .await?
        else {
            continue;
        };
        let node_port = svc
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_ref())
            .and_then(|p| p.first())
            .and_then(|p| p.node_port);
        let ingress = svc
            .status
            .and_then(|s| s.load_balancer)
            .and_then(|lb| lb.ingress)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| i.hostname.or(i.ip))
            .collect();
        out.bootstrap.insert(l.name.clone(), (node_port, ingress));
    }
    if nodeport {
        let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(ctx.client.clone());
        for name in &observed.nodes {
            if let Some(node) = nodes.get_opt(name).await? {
                let addresses = node.status.and_then(|s| s.addresses).unwrap_or_default();
                out.node_addresses
                    .push(addresses.into_iter().map(|a| (a.type_, a.address)).collect());
            }
        }
    }
    Ok(out)
}

/// A CA the user brings is read from its own Secret.
async fn certificates(
    ctx: &Context,
    names: &Names,
    spec: &crate::crd::CertificatesSpec,
) -> Result<CertificateFacts, Error> {
    let s = SecretNames::new(names);
    let ns = &names.namespace;
    let (keys, annotations) = secret_text(ctx, ns, &s.cluster_ca).await?;
    let (leaves, _) = secret_text(ctx, ns, &s.brokers).await?;
    let mut cluster_ca = Material::read(&s.cluster_ca, &keys, &annotations, &leaves);
    let (keys, annotations) = secret_text(ctx, ns, &s.clients_ca).await?;
    let mut clients_ca = Material::read(&s.clients_ca, &keys, &annotations, &BTreeMap::new());
    for (material, ca) in [(&mut cluster_ca, &spec.cluster_ca), (&mut clients_ca, &spec.clients_ca)] {
        if let (false, Some(secret)) = (ca.generate, &ca.secret_name) {
            let data = secret_text_opt(ctx, ns, secret).await?.map(|(data, _)| data);
            material.provided = Some(crate::certificates::material::Provided::read(secret, data.as_ref()));
        }
    }
    Ok(CertificateFacts { cluster_ca, clients_ca })
}

/// Services and ConfigMaps labelled as this cluster's and owned by it.
async fn owned(ctx: &Context, kc: &KafkaCluster, names: &Names) -> Result<Vec<Owned>, Error> {
    let lp = ListParams::default().labels(&format!(
        "app.kubernetes.io/instance={},app.kubernetes.io/managed-by={FIELD_MANAGER}",
        names.name
    ));
    let uid = kc.uid();
    let ours = |meta: &kube::api::ObjectMeta| {
        meta.owner_references
            .iter()
            .flatten()
            .any(|o| Some(&o.uid) == uid.as_ref())
    };
    let mut out = Vec::new();
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &names.namespace);
    for s in services.list(&lp).await? {
        if ours(&s.metadata) {
            out.push(Owned {
                kind: OwnedKind::Service,
                name: s.name_any(),
            });
        }
    }
    let maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &names.namespace);
    for m in maps.list(&lp).await? {
        if ours(&m.metadata) {
            out.push(Owned {
                kind: OwnedKind::ConfigMap,
                name: m.name_any(),
            });
        }
    }
    let policies: Api<NetworkPolicy> = Api::namespaced(ctx.client.clone(), &names.namespace);
    for p in policies.list(&lp).await? {
        if ours(&p.metadata) {
            out.push(Owned {
                kind: OwnedKind::NetworkPolicy,
                name: p.name_any(),
            });
        }
    }
    Ok(out)
}
