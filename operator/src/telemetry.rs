//! The operator's `/metrics`, `/healthz` and `/readyz`, and its structured logs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClusterLabels {
    namespace: String,
    cluster: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertificateLabels {
    namespace: String,
    cluster: String,
    /// `cluster-ca`, `clients-ca` (the newest key), or a leaf (`demo-0`, `operator`).
    certificate: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    kind: &'static str,
    reason: &'static str,
}

/// Reconcile counters and gauges, exported at `/metrics`.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<KindLabel, Counter>,
    failures: Family<FailureLabels, Counter>,
    duration: Family<KindLabel, Histogram>,
    /// KafkaClusters being managed.
    pub clusters: Gauge,
    /// Topic resources being managed.
    pub topics: Gauge,
    /// KafkaUser resources being managed.
    pub users: Gauge,
    /// 1 while this replica holds the leader Lease.
    pub leader: Gauge,
    scaling_bytes_left: Family<ClusterLabels, Gauge>,
    scaling_partitions_left: Family<ClusterLabels, Gauge>,
    scaling_stalled: Family<ClusterLabels, Gauge>,
    certificate_expiry: Family<CertificateLabels, Gauge>,
    /// The certificate labels set per cluster, to drop those that go.
    known_certificates:
        std::sync::Mutex<std::collections::BTreeMap<(String, String), std::collections::BTreeSet<String>>>,
    ready: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("skein_operator");
        let reconciles = Family::<KindLabel, Counter>::default();
        let failures = Family::<FailureLabels, Counter>::default();
        let duration = Family::<KindLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
        });
        let clusters = Gauge::default();
        let topics = Gauge::default();
        let users = Gauge::default();
        let leader = Gauge::default();
        registry.register("reconciliations", "Reconciles run, by kind", reconciles.clone());
        registry.register(
            "reconcile_failures",
            "Reconciles that failed, by kind and reason",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile took",
            duration.clone(),
        );
        registry.register("managed_clusters", "KafkaCluster resources managed", clusters.clone());
        registry.register("managed_topics", "Topic resources managed", topics.clone());
        registry.register("managed_users", "KafkaUser resources managed", users.clone());
        registry.register("leader", "1 while this replica holds the leader Lease", leader.clone());
        let scaling_bytes_left = Family::<ClusterLabels, Gauge>::default();
        let scaling_partitions_left = Family::<ClusterLabels, Gauge>::default();
        let scaling_stalled = Family::<ClusterLabels, Gauge>::default();
        let certificate_expiry = Family::<CertificateLabels, Gauge>::default();
        registry.register(
            "certificate_expiry_seconds",
            "Seconds until a CA or a certificate the operator issued expires",
            certificate_expiry.clone(),
        );
        registry.register(
            "scaling_bytes_left",
            "Bytes the partition moves of a scale still copy",
            scaling_bytes_left.clone(),
        );
        registry.register(
            "scaling_partitions_left",
            "Partition moves of a scale not done yet",
            scaling_partitions_left.clone(),
        );
        registry.register(
            "scaling_stalled",
            "1 while a scale's moves in flight make no progress",
            scaling_stalled.clone(),
        );
        Metrics {
            registry,
            reconciles,
            failures,
            duration,
            clusters,
            topics,
            users,
            leader,
            scaling_bytes_left,
            scaling_partitions_left,
            scaling_stalled,
            certificate_expiry,
            known_certificates: Default::default(),
            ready: AtomicBool::new(false),
        }
    }
}

/// Times one reconcile; `finish` records it.
pub struct ReconcileTimer {
    metrics: Arc<Metrics>,
    kind: &'static str,
    start: Instant,
}

impl Metrics {
    pub fn start(self: &Arc<Self>, kind: &'static str) -> ReconcileTimer {
        self.reconciles.get_or_create(&KindLabel { kind }).inc();
        ReconcileTimer {
            metrics: self.clone(),
            kind,
            start: Instant::now(),
        }
    }

    pub fn failure(&self, kind: &'static str, reason: &'static str) {
        self.failures.get_or_create(&FailureLabels { kind, reason }).inc();
    }

    /// Publishes a cluster's scaling progress.
    pub fn scaling(&self, namespace: &str, cluster: &str, st: &crate::crd::ScalingStatus) {
        let l = ClusterLabels {
            namespace: namespace.into(),
            cluster: cluster.into(),
        };
        self.scaling_bytes_left
            .get_or_create(&l)
            .set((st.bytes_total - st.bytes_done).max(0));
        self.scaling_partitions_left
            .get_or_create(&l)
            .set((st.partitions_total - st.partitions_done).max(0));
        self.scaling_stalled.get_or_create(&l).set(i64::from(st.stalled));
    }

    /// A cluster's certificates: (name, seconds to expiry); names no longer
    /// given are dropped.
    pub fn certificates(&self, namespace: &str, cluster: &str, expiries: &[(String, i64)]) {
        let label = |certificate: &str| CertificateLabels {
            namespace: namespace.into(),
            cluster: cluster.into(),
            certificate: certificate.into(),
        };
        let mut known = self.known_certificates.lock().unwrap_or_else(|e| e.into_inner());
        let key = (namespace.to_string(), cluster.to_string());
        let now: std::collections::BTreeSet<String> = expiries.iter().map(|(n, _)| n.clone()).collect();
        for gone in known.get(&key).into_iter().flatten().filter(|n| !now.contains(*n)) {
            self.certificate_expiry.remove(&label(gone));
        }
        for (name, seconds) in expiries {
            self.certificate_expiry.get_or_create(&label(name)).set(*seconds);
        }
        known.insert(key, now);
    }

    /// Marks the process ready (watches started).
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Relaxed);
    }

    fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String");
        out
    }
}

impl ReconcileTimer {
    pub fn finish(self) {
        self.metrics
            .duration
            .get_or_create(&KindLabel { kind: self.kind })
            .observe(self.start.elapsed().as_secs_f64());
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `addr` until the process
/// ends, and `console` (the web console's pages and JSON) beside them.
pub async fn serve(addr: std::net::SocketAddr, metrics: Arc<Metrics>, console: Router) -> std::io::Result<()> {
    let app = Router::new()
        .route(
            "/metrics",
            get(|State(m): State<Arc<Metrics>>| async move { m.encode() }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(m): State<Arc<Metrics>>| async move {
                if m.ready.load(Ordering::Relaxed) {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "starting")
                }
            }),
        )
        .with_state(metrics)
        .merge(console);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await
}

/// Logs as JSON lines (`--log-format json`) or text, filtered by `RUST_LOG`-style `level`.
pub fn init_logging(level: &str, json: bool) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(level).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
