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

/// One connection per broker the coordinator sends markers (or a leader
/// verification requests) to, opened on first use.
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
            .map_err(|e| crate::error::append_error_code(&e))?;
        if topic == crate::group::OFFSETS_TOPIC {
            self.groups.complete_txn(index, marker.producer_id, marker.commit);
        }
        p.wait_for_replication(info.last_offset + 1, MARKER_TIMEOUT).await
    }

    /// KIP-890 part 1: asks the transaction coordinator of `transactional_id`
    /// (here, or another broker with AddPartitionsToTxn v4 `verify_only`)
    /// whether the partition is in the producer's open transaction. With
    /// `add` (part 2), has it added instead (v4 without `verify_only`: a
    /// transaction of version 2).
    pub async fn verify_txn_partition(
        self: &Arc<Self>,
        transactional_id: &str,
        producer: (i64, i16),
        tp: TopicPartition,
        add: bool,
    ) -> Result<(), ResponseError> {
        let index = self.txns.partition_for(transactional_id);
        let leader = self
            .controller
            .with_image(|img| {
                img.partition(crate::txn::TRANSACTION_STATE_TOPIC, index)
                    .map(|p| p.leader)
            })
            .unwrap_or(-1);
        if leader < 0 {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        if leader == self.node_id {
            let r = if add {
                self.txns
                    .add_partitions(
                        self,
                        transactional_id,
                        producer.0,
                        producer.1,
                        std::slice::from_ref(&tp),
                        crate::txn::TV_2,
                    )
                    .await
            } else {
                self.txns
                    .verify_partition(self, transactional_id, producer.0, producer.1, &tp)
                    .await
            };
            return r.map_err(|e| e.code);
        }
        use kafka_protocol::messages::add_partitions_to_txn_request::{
            AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
        };
        let req = kafka_protocol::messages::AddPartitionsToTxnRequest::default().with_transactions(vec![
            AddPartitionsToTxnTransaction::default()
                .with_transactional_id(kafka_protocol::messages::TransactionalId(StrBytes::from_string(
                    transactional_id.to_string(),
                )))
                .with_producer_id(ProducerId(producer.0))
                .with_producer_epoch(producer.1)
                .with_verify_only(!add)
                .with_topics(vec![AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(StrBytes::from_string(tp.0.clone())))
                    .with_partitions(vec![tp.1])]),
        ]);
        let resp = self.call_peer(leader, 4, &req).await?;
        if let Some(e) = ResponseError::try_from_code(resp.error_code) {
            return Err(e);
        }
        let code = resp
            .results_by_transaction
            .iter()
            .flat_map(|t| &t.topic_results)
            .flat_map(|t| &t.results_by_partition)
            .map(|p| p.partition_error_code)
            .find(|c| *c != 0)
            .unwrap_or(0);
        match ResponseError::try_from_code(code) {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    /// One request to another broker over its inter-broker listener, on a
    /// connection kept per broker (reopened after a failure).
    async fn call_peer<R: kafka_protocol::protocol::Request>(
        self: &Arc<Self>,
        peer: i32,
        version: i16,
        req: &R,
    ) -> Result<R::Response, ResponseError> {
        let slot = Arc::clone(
            self.marker_connections
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(peer)
                .or_default(),
        );
        let mut conn = slot.lock().await;
        if conn.is_none() {
            let Some(address) = crate::replication::ReplicaHost::broker_address(self.as_ref(), peer) else {
                return Err(ResponseError::BrokerNotAvailable);
            };
            let client_id = format!("skein-txn-{}-{peer}", self.node_id);
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
                    tracing::debug!(peer, "cannot reach broker {peer}: {e}");
                    return Err(ResponseError::BrokerNotAvailable);
                }
            }
        }
        let c = conn.as_mut().expect("connected above");
        match c.call(version, req, MARKER_TIMEOUT + Duration::from_secs(2)).await {
            Ok(r) => Ok(r),
            Err(e) => {
                tracing::debug!(peer, "a request to broker {peer} failed: {e}");
                *conn = None;
                Err(ResponseError::NetworkException)
            }
        }
    }

    /// WriteTxnMarkers to another broker; the partitions it did not write.
    async fn send_markers(
        self: &Arc<Self>,
        leader: i32,
        marker: Marker,
        tps: Vec<TopicPartition>,
    ) -> Vec<(TopicPartition, ResponseError)> {
        let all_failed = |tps: Vec<TopicPartition>, e: ResponseError| tps.into_iter().map(|tp| (tp, e)).collect();
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
        let resp = match self.call_peer(leader, 1, &req).await {
            Ok(r) => r,
            Err(e) => return all_failed(tps, e),
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
