//! The broker as its transaction coordinator sees it (txn::TxnHost): producer
//! ids, and transaction markers written through each partition's leader,
//! here or on another broker (WriteTxnMarkers over the inter-broker listener).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
use kafka_protocol::messages::{ProducerId, TopicName, WriteTxnMarkersRequest};
use kafka_protocol::protocol::StrBytes;
use skein_client::Connection;

use super::Broker;
use crate::error::AdminError;
use crate::log::batch::ControlType;
use crate::txn::state::TopicPartition;
use crate::txn::{Marker, TransactionCoordinator, TxnHost};

/// One connection per broker markers are sent to, opened on first use.
pub(super) type MarkerConnections = std::sync::Mutex<HashMap<i32, Arc<tokio::sync::Mutex<Option<Connection>>>>>;

const MARKER_TIMEOUT: Duration = Duration::from_secs(10);

impl TxnHost for Broker {
    fn txn_coordinator(&self) -> &TransactionCoordinator {
        &self.txns
    }

    async fn new_producer_id(self: &Arc<Self>) -> Result<i64, AdminError> {
        self.allocate_producer_id().await
    }

    async fn write_markers(
        self: &Arc<Self>,
        marker: Marker,
        partitions: Vec<TopicPartition>,
    ) -> Vec<(TopicPartition, ResponseError)> {
        // Group the partitions by their leader in the image.
        let mut by_leader: BTreeMap<i32, Vec<TopicPartition>> = BTreeMap::new();
        let mut failed = Vec::new();
        self.controller.with_image(|img| {
            for tp in partitions {
                match img.partition(&tp.0, tp.1) {
                    // A deleted topic needs no marker.
                    None => {}
                    Some(p) if p.leader < 0 => failed.push((tp, ResponseError::LeaderNotAvailable)),
                    Some(p) => by_leader.entry(p.leader).or_default().push(tp),
                }
            }
        });
        let sends = by_leader.into_iter().map(|(leader, tps)| {
            let me = Arc::clone(self);
            async move {
                if leader == me.node_id {
                    let mut out = Vec::new();
                    for tp in tps {
                        if let Err(e) = me.write_marker_here(&tp.0, tp.1, marker).await {
                            out.push((tp, e));
                        }
                    }
                    out
                } else {
                    me.send_markers(leader, marker, tps).await
                }
            }
        });
        for f in futures_util::future::join_all(sends).await {
            failed.extend(f);
        }
        failed
    }
}

impl Broker {
    /// Writes a marker to a partition led here and waits for every in-sync
    /// replica (WriteTxnMarkers is acks=all); an `__consumer_offsets`
    /// partition's marker completes the producer's pending offset commits.
    pub async fn write_marker_here(
        self: &Arc<Self>,
        topic: &str,
        index: i32,
        marker: Marker,
    ) -> Result<(), ResponseError> {
        if self.topic(topic).is_none() && self.controller.with_image(|img| !img.topics.contains_key(topic)) {
            return Ok(());
        }
        let p = self.leader_partition(topic, index)?;
        let control = if marker.commit {
            ControlType::Commit
        } else {
            ControlType::Abort
        };
        let batch = crate::log::batch::encode_marker(
            marker.producer_id,
            marker.producer_epoch,
            control,
            marker.coordinator_epoch,
            crate::clock::now_ms(),
        )
        .map_err(|_| ResponseError::UnknownServerError)?;
        let info = p
            .append(self, batch)
            .await
            .map_err(|e| crate::protocol::handlers::append_error_code(&e))?;
        if topic == crate::group::OFFSETS_TOPIC {
            self.groups.complete_txn(index, marker.producer_id, marker.commit);
        }
        p.wait_for_replication(info.last_offset + 1, MARKER_TIMEOUT).await
    }

    /// WriteTxnMarkers to another broker; the partitions it did not write.
    async fn send_markers(
        self: &Arc<Self>,
        leader: i32,
        marker: Marker,
        tps: Vec<TopicPartition>,
    ) -> Vec<(TopicPartition, ResponseError)> {
        let all_failed = |tps: Vec<TopicPartition>, e: ResponseError| tps.into_iter().map(|tp| (tp, e)).collect();
        let slot = Arc::clone(
            self.marker_connections
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(leader)
                .or_default(),
        );
        let mut conn = slot.lock().await;
        if conn.is_none() {
            let Some(address) = crate::replication::ReplicaHost::broker_address(self.as_ref(), leader) else {
                return all_failed(tps, ResponseError::BrokerNotAvailable);
            };
            let client_id = format!("skein-txn-markers-{}-{leader}", self.node_id);
            match Connection::connect_with(
                &address,
                client_id,
                Duration::from_secs(2),
                1 << 20,
                &self.inter_broker_security(),
            )
            .await
            {
                Ok(c) => *conn = Some(c),
                Err(e) => {
                    tracing::debug!(leader, "cannot reach broker {leader} for transaction markers: {e}");
                    return all_failed(tps, ResponseError::BrokerNotAvailable);
                }
            }
        }
        let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in &tps {
            topics.entry(t.as_str()).or_default().push(*p);
        }
        let req = WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(marker.producer_id))
            .with_producer_epoch(marker.producer_epoch)
            .with_transaction_result(marker.commit)
            .with_coordinator_epoch(marker.coordinator_epoch)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        WritableTxnMarkerTopic::default()
                            .with_name(TopicName(StrBytes::from_string(t.to_string())))
                            .with_partition_indexes(ps)
                    })
                    .collect(),
            )]);
        let c = conn.as_mut().expect("connected above");
        let resp = match c.call(1, &req, MARKER_TIMEOUT + Duration::from_secs(2)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(leader, "transaction markers to broker {leader} failed: {e}");
                *conn = None;
                return all_failed(tps, ResponseError::NetworkException);
            }
        };
        let mut failed = Vec::new();
        let mut answered = std::collections::BTreeSet::new();
        for m in resp.markers {
            for t in m.topics {
                for p in t.partitions {
                    let tp = (t.name.0.to_string(), p.partition_index);
                    answered.insert(tp.clone());
                    match ResponseError::try_from_code(p.error_code) {
                        None => {}
                        // Deleted meanwhile: nothing to mark.
                        Some(ResponseError::UnknownTopicOrPartition) => {}
                        Some(e) => failed.push((tp, e)),
                    }
                }
            }
        }
        failed.extend(
            tps.into_iter()
                .filter(|tp| !answered.contains(tp))
                .map(|tp| (tp, ResponseError::UnknownServerError)),
        );
        failed
    }
}
