//! The broker's HTTP endpoint (`http.listener`, port 9644 by default, as
//! Redpanda's admin port): what a pod's probes, Prometheus and an operator read.
//!
//! - `/healthz`: the process answers and its runtime is not stuck.
//! - `/readyz`: logs opened (recovered after a crash), registered with the
//!   metadata quorum, unfenced, so caught up with the metadata log.
//! - `/metrics`: Prometheus metrics (see `metrics.rs`), broker state gauges set here.
//! - `/v1/status`: JSON for people and the operator: quorum role and leader,
//!   partitions led and followed, under-replicated ones, start-up progress.
//!
//! It reads the broker and never changes it.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;

use crate::clock::now_ms;
use crate::cluster::{Broker, Partition, StartupProgress};
use crate::controller::image::NO_LEADER;
use crate::controller::QuorumStatus;
use crate::metrics::{LagLabels, PartitionLabels};

/// How stale the runtime's heartbeat tick may be before `/healthz` fails.
const STUCK_AFTER: Duration = Duration::from_secs(10);

#[derive(Clone)]
struct Endpoint {
    broker: Arc<Broker>,
    /// When a task on the runtime last ran (ms): a stuck runtime stops it.
    tick: Arc<AtomicI64>,
}

/// Serves the endpoint on `listener` until the task is dropped.
pub async fn serve(broker: Arc<Broker>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    let tick = Arc::new(AtomicI64::new(now_ms()));
    let ticker = Arc::clone(&tick);
    tokio::spawn(async move {
        loop {
            ticker.store(now_ms(), Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/status", get(status))
        .fallback(not_found)
        .with_state(Endpoint { broker, tick });
    axum::serve(listener, app).await
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        "not found: try /healthz, /readyz, /metrics or /v1/status\n",
    )
        .into_response()
}

async fn healthz(State(e): State<Endpoint>) -> Response {
    let stale = now_ms() - e.tick.load(Ordering::Relaxed);
    if stale > STUCK_AFTER.as_millis() as i64 {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("runtime stuck: its heartbeat task last ran {stale} ms ago\n"),
        )
            .into_response();
    }
    (StatusCode::OK, "ok\n").into_response()
}

async fn readyz(State(e): State<Endpoint>) -> Response {
    if e.broker.is_ready() {
        return (StatusCode::OK, "ready\n").into_response();
    }
    let p = e.broker.startup_progress();
    let why = if !p.done {
        format!(
            "starting: {} of {} log segments opened ({} recovered)\n",
            p.segments_opened, p.segments_total, p.recovered_segments
        )
    } else {
        "not registered and unfenced with the metadata quorum\n".to_string()
    };
    (StatusCode::SERVICE_UNAVAILABLE, why).into_response()
}

async fn metrics(State(e): State<Endpoint>) -> Response {
    let broker = Arc::clone(&e.broker);
    // Walking every partition takes each log's lock briefly: off the runtime.
    let text = match tokio::task::spawn_blocking(move || {
        refresh_gauges(&broker);
        broker.metrics.encode()
    })
    .await
    {
        Ok(text) => text,
        Err(err) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("{err}\n")).into_response(),
    };
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// The partitions this broker hosts, and which of them it leads.
struct Roles {
    hosted: Vec<Arc<Partition>>,
    led: usize,
    /// Led here with an ISR smaller than the replica set, as `topic-partition`.
    under_replicated: Vec<String>,
}

impl Roles {
    fn of(broker: &Broker) -> Roles {
        let hosted: Vec<Arc<Partition>> = broker.topics().iter().flat_map(|t| t.all_partitions()).collect();
        let (mut led, mut under_replicated) = (0, Vec::new());
        for p in &hosted {
            let st = p.replica_state();
            if st.leader == broker.node_id {
                led += 1;
                if st.isr.len() < st.replicas.len() {
                    under_replicated.push(format!("{}-{}", p.topic, p.index));
                }
            }
        }
        Roles {
            hosted,
            led,
            under_replicated,
        }
    }
}

/// Sets the state gauges from what the broker hosts now.
fn refresh_gauges(broker: &Broker) {
    let me = broker.node_id;
    let s = &broker.metrics.state;
    let roles = Roles::of(broker);
    s.log_size.clear();
    s.last_stable_offset_lag.clear();
    for p in roles.hosted.iter().filter(|p| p.is_leader(me)) {
        s.last_stable_offset_lag
            .get_or_create(&PartitionLabels {
                topic: p.topic.clone(),
                partition: p.index,
            })
            .set((p.high_watermark() - p.last_stable_offset()).max(0));
    }
    let txns = broker.txns.list();
    s.transactional_ids.set(txns.len() as i64);
    s.open_transactions.set(
        txns.iter()
            .filter(|m| !m.state.is_idle() && m.state != crate::txn::TxnState::Dead)
            .count() as i64,
    );
    s.txn_partition_load_time_max.set(broker.txns.load_time_max_ms() as i64);
    let (unknown_destination, append_retries) = broker.txns.marker_queues();
    s.txn_markers_unknown_destination.set(unknown_destination);
    s.txn_log_append_retries.set(append_retries);
    for p in &roles.hosted {
        let (size, _) = p.size_and_lag(me);
        s.log_size
            .get_or_create(&PartitionLabels {
                topic: p.topic.clone(),
                partition: p.index,
            })
            .set(size);
    }
    s.leader_count.set(roles.led as i64);
    s.partition_count.set(roles.hosted.len() as i64);
    s.under_replicated_partitions.set(roles.under_replicated.len() as i64);
    let active = broker.controller.active_controller() == Some(me);
    s.active_controller.set(i64::from(active));
    let quorum = broker.controller.quorum_status();
    s.metadata_log_end_offset.set(quorum.last_log_index as i64);
    s.metadata_current_epoch.set(quorum.term as i64);
    let offline = if active {
        broker.controller.with_image(|img| {
            let live = img.live_brokers();
            img.topics
                .values()
                .flat_map(|t| &t.partitions)
                .filter(|p| p.leader == NO_LEADER || !live.contains(&p.leader))
                .count() as i64
        })
    } else {
        0
    };
    s.offline_partitions.set(offline);
    let groups = broker.groups.list();
    s.groups.set(groups.len() as i64);
    s.consumer_lag.clear();
    for (group, _, _) in &groups {
        for ((topic, partition), committed) in broker.groups.committed(group) {
            let Some(p) = broker.topic(&topic).and_then(|t| t.partition(partition)) else {
                continue;
            };
            if !p.is_leader(me) {
                continue;
            }
            s.consumer_lag
                .get_or_create(&LagLabels {
                    consumergroup: group.clone(),
                    topic,
                    partition,
                })
                .set((p.high_watermark() - committed.offset).max(0));
        }
    }
}

#[derive(Serialize)]
struct Status {
    node_id: i32,
    cluster_id: String,
    ready: bool,
    /// Whether this broker's metadata is known to be current (it serves as leader only then).
    metadata_current: bool,
    quorum: QuorumStatus,
    partitions_led: usize,
    partitions_followed: usize,
    under_replicated: Vec<String>,
    startup: Startup,
}

#[derive(Serialize)]
struct Startup {
    done: bool,
    segments_opened: usize,
    segments_total: usize,
    recovered_segments: usize,
}

impl From<StartupProgress> for Startup {
    fn from(p: StartupProgress) -> Startup {
        Startup {
            done: p.done,
            segments_opened: p.segments_opened,
            segments_total: p.segments_total,
            recovered_segments: p.recovered_segments,
        }
    }
}

async fn status(State(e): State<Endpoint>) -> Response {
    let b = &e.broker;
    let roles = Roles::of(b);
    let status = Status {
        node_id: b.node_id,
        cluster_id: b.cluster_id.clone(),
        ready: b.is_ready(),
        metadata_current: b.metadata_is_current(),
        quorum: b.controller.quorum_status(),
        partitions_led: roles.led,
        partitions_followed: roles.hosted.len() - roles.led,
        under_replicated: roles.under_replicated,
        startup: b.startup_progress().into(),
    };
    match serde_json::to_string_pretty(&status) {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json + "\n").into_response(),
        Err(err) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{err}\n")).into_response(),
    }
}
