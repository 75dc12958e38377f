//! The console's HTTP side: the static pages (embedded in the binary, no
//! request leaves for another host) and the JSON they poll. Read-only: every
//! route is a GET, and the admin client behind it only describes and lists.
//!
//! - `GET /api/clusters`: the clusters this console shows (the operator's
//!   KafkaClusters with their conditions and recent Events; skeinctl's one).
//! - `GET /api/snapshot?cluster=ID`: one cluster now (`view::Snapshot`), with
//!   each group's lag over the last polls and the moves' rate and estimate.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use skein_client::Admin;

use crate::view::{self, Snapshot};

const INDEX: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const APP_CSS: &str = include_str!("../assets/app.css");

/// Samples of history kept per cluster (at the pages' 2 s poll, 4 minutes).
const HISTORY: usize = 120;

/// A cluster as the console lists it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClusterEntry {
    /// What `/api/snapshot?cluster=` takes.
    pub id: String,
    pub name: String,
    pub namespace: Option<String>,
    pub bootstrap: Option<String>,
    /// The operator's view: phase, conditions and recent Events (JSON as the
    /// API server has them); absent for a console without an operator.
    pub phase: Option<String>,
    pub conditions: serde_json::Value,
    pub events: serde_json::Value,
}

/// Where the console finds clusters and how it reaches them.
pub trait Source: Send + Sync + 'static {
    fn clusters(&self) -> impl Future<Output = Vec<ClusterEntry>> + Send;
    /// An admin client for the cluster `id` (connected with the cluster's own credentials).
    fn admin(&self, id: &str) -> impl Future<Output = Option<Arc<Admin>>> + Send;
}

/// What the pages draw over time.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct History {
    /// (ms, total lag) per group.
    pub lag: BTreeMap<String, VecDeque<(u64, i64)>>,
    /// (ms, lag) per group and partition, keyed `group/topic/partition`.
    pub partition_lag: BTreeMap<String, VecDeque<(u64, i64)>>,
    /// (ms, bytes copied) of the moves in progress.
    pub moved: VecDeque<(u64, u64)>,
}

#[derive(Debug, Clone, Serialize)]
struct SnapshotResponse {
    #[serde(flatten)]
    snapshot: Snapshot,
    history: History,
    /// Bytes per second the moves copy, over the recent polls.
    move_rate: Option<f64>,
    /// Seconds until the moves in progress are done at that rate.
    move_eta_seconds: Option<f64>,
}

struct Console<S> {
    source: Arc<S>,
    history: Mutex<BTreeMap<String, History>>,
}

/// The console's routes.
pub fn router<S: Source>(source: Arc<S>) -> Router {
    let state = Arc::new(Console {
        source,
        history: Mutex::new(BTreeMap::new()),
    });
    Router::new()
        .route("/", get(|| async { asset("text/html; charset=utf-8", INDEX) }))
        .route(
            "/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route("/app.css", get(|| async { asset("text/css; charset=utf-8", APP_CSS) }))
        .route("/api/clusters", get(clusters::<S>))
        .route("/api/snapshot", get(snapshot::<S>))
        .with_state(state)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // The pages load nothing from elsewhere, and say so.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'",
            ),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn clusters<S: Source>(State(c): State<Arc<Console<S>>>) -> Json<Vec<ClusterEntry>> {
    Json(c.source.clusters().await)
}

#[derive(Deserialize)]
struct ClusterQuery {
    cluster: String,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

async fn snapshot<S: Source>(State(c): State<Arc<Console<S>>>, Query(q): Query<ClusterQuery>) -> Response {
    let Some(admin) = c.source.admin(&q.cluster).await else {
        return (StatusCode::NOT_FOUND, format!("no cluster {}", q.cluster)).into_response();
    };
    let now = now_ms();
    let facts = crate::collect::collect(&admin, now).await;
    let snapshot = view::snapshot(&facts, now);
    let mut all = c.history.lock().unwrap_or_else(|e| e.into_inner());
    let history = all.entry(q.cluster.clone()).or_default();
    record(history, &snapshot);
    let (move_rate, move_eta_seconds) = move_estimate(history, &snapshot);
    Json(SnapshotResponse {
        snapshot,
        history: history.clone(),
        move_rate,
        move_eta_seconds,
    })
    .into_response()
}

/// Adds a snapshot's lag and bytes moved to the history.
pub fn record(h: &mut History, s: &Snapshot) {
    fn push(series: &mut VecDeque<(u64, i64)>, sample: (u64, i64)) {
        series.push_back(sample);
        while series.len() > HISTORY {
            series.pop_front();
        }
    }
    h.lag.retain(|g, _| s.groups.iter().any(|x| &x.group_id == g));
    let keys: Vec<String> = s
        .groups
        .iter()
        .flat_map(|g| g.lag.iter().map(|l| partition_key(&g.group_id, &l.topic, l.partition)))
        .collect();
    h.partition_lag.retain(|k, _| keys.contains(k));
    for g in &s.groups {
        push(h.lag.entry(g.group_id.clone()).or_default(), (s.taken_ms, g.total_lag));
        for l in &g.lag {
            let key = partition_key(&g.group_id, &l.topic, l.partition);
            push(h.partition_lag.entry(key).or_default(), (s.taken_ms, l.lag));
        }
    }
    if s.reassignments.is_empty() {
        h.moved.clear();
    } else {
        h.moved
            .push_back((s.taken_ms, s.reassignments.iter().map(|m| m.bytes_done).sum()));
        while h.moved.len() > HISTORY {
            h.moved.pop_front();
        }
    }
}

/// The key of a partition's lag series: `group/topic/partition` (a topic
/// name has no `/`).
pub fn partition_key(group: &str, topic: &str, partition: i32) -> String {
    format!("{group}/{topic}/{partition}")
}

/// The moves' copy rate over the recorded polls and the time left at it.
pub fn move_estimate(h: &History, s: &Snapshot) -> (Option<f64>, Option<f64>) {
    let (Some(first), Some(last)) = (h.moved.front(), h.moved.back()) else {
        return (None, None);
    };
    let seconds = (last.0.saturating_sub(first.0)) as f64 / 1000.0;
    if seconds <= 0.0 || last.1 < first.1 {
        return (None, None);
    }
    let rate = (last.1 - first.1) as f64 / seconds;
    let left: u64 = s
        .reassignments
        .iter()
        .map(|m| m.bytes_total.saturating_sub(m.bytes_done))
        .sum();
    let eta = (rate > 0.0).then(|| left as f64 / rate);
    (Some(rate), eta)
}

/// A console of one cluster, reached with one admin client (skeinctl's).
pub struct SingleCluster {
    pub name: String,
    pub bootstrap: String,
    pub admin: Arc<Admin>,
}

impl Source for SingleCluster {
    async fn clusters(&self) -> Vec<ClusterEntry> {
        vec![ClusterEntry {
            id: "local".into(),
            name: self.name.clone(),
            namespace: None,
            bootstrap: Some(self.bootstrap.clone()),
            phase: None,
            conditions: serde_json::Value::Array(Vec::new()),
            events: serde_json::Value::Array(Vec::new()),
        }]
    }

    async fn admin(&self, id: &str) -> Option<Arc<Admin>> {
        (id == "local").then(|| Arc::clone(&self.admin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::MoveRow;

    fn snap(ms: u64, done: u64, total: u64) -> Snapshot {
        let mut s = view::snapshot(&Default::default(), ms);
        s.reassignments = vec![MoveRow {
            topic: "t".into(),
            partition: 0,
            replicas: vec![0, 1],
            adding: vec![1],
            removing: vec![],
            bytes_done: done,
            bytes_total: total,
        }];
        s
    }

    #[test]
    fn the_estimate_is_the_bytes_left_at_the_rate_seen() {
        let mut h = History::default();
        record(&mut h, &snap(0, 0, 10_000));
        assert_eq!(move_estimate(&h, &snap(0, 0, 10_000)), (None, None));
        let s = snap(2_000, 2_000, 10_000);
        record(&mut h, &s);
        assert_eq!(move_estimate(&h, &s), (Some(1000.0), Some(8.0)));
        // Done: the history of moves is cleared.
        record(&mut h, &view::snapshot(&Default::default(), 3_000));
        assert!(h.moved.is_empty());
    }
}
