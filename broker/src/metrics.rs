//! The broker's Prometheus metrics, named as the Prometheus JMX exporter names
//! Kafka's MBeans (`kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec,topic=T`
//! becomes `kafka_server_brokertopicmetrics_messagesin_total{topic="T"}`), so the
//! dashboards and alerts written for Kafka read Skein unchanged.
//!
//! Counters on the request path are plain atomics: per-topic handles are made
//! once per topic and kept by the topic; per-API counters are looked up under a
//! shared read lock. Gauges of the broker's state (partition counts, log sizes)
//! are set when scraped, by the HTTP layer. This module records; it imports no
//! other part of the broker.

use std::fmt::Write;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ApiKey;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// A Kafka API as a label value: its name in Kafka's `RequestMetrics` (`Produce`, `Fetch`...).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct Api(pub ApiKey);

impl EncodeLabelValue for Api {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        write!(encoder, "{:?}", self.0)
    }
}

/// A Kafka error code as a label value: its name in Kafka's `Errors` (`NOT_LEADER_OR_FOLLOWER`).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct ErrorCode(pub i16);

impl EncodeLabelValue for ErrorCode {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        match ResponseError::try_from_code(self.0) {
            None => encoder.write_str("NONE"),
            Some(ResponseError::Unknown(code)) => write!(encoder, "UNKNOWN_{code}"),
            Some(e) => encoder.write_str(&screaming_snake(&format!("{e:?}"))),
        }
    }
}

/// `NotLeaderOrFollower` → `NOT_LEADER_OR_FOLLOWER`.
fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    request: Api,
    version: i16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    request: Api,
    error: ErrorCode,
}

/// What a request time is recorded under: Kafka splits Fetch into consumers' and followers'.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Timed {
    Api(ApiKey),
    FetchConsumer,
    FetchFollower,
}

impl EncodeLabelValue for Timed {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        match self {
            Timed::Api(key) => write!(encoder, "{key:?}"),
            Timed::FetchConsumer => encoder.write_str("FetchConsumer"),
            Timed::FetchFollower => encoder.write_str("FetchFollower"),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestTimeLabels {
    request: Timed,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabels {
    topic: String,
}

/// A partition's labels, as Kafka's `kafka.log:type=Log,name=Size,topic=T,partition=P`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    pub topic: String,
    pub partition: i32,
}

/// A group's labels for consumer lag (the names kafka-exporter uses).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LagLabels {
    pub consumergroup: String,
    pub topic: String,
    pub partition: i32,
}

/// A throttled group's labels: the quota type (Kafka's MBean `type`:
/// Produce, Fetch, Request) and the user and client id it is shared by
/// (empty where the quota is shared across all of them).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QuotaLabels {
    quota_type: String,
    user: String,
    client_id: String,
}

/// One topic's counters, kept by the topic so the request path only adds.
#[derive(Clone, Debug, Default)]
pub struct TopicMetrics {
    pub messages_in: Counter,
    pub bytes_in: Counter,
    pub bytes_out: Counter,
}

/// Gauges of the broker's state, set when scraped.
#[derive(Debug, Default)]
pub struct StateGauges {
    pub under_replicated_partitions: Gauge,
    pub offline_partitions: Gauge,
    pub active_controller: Gauge,
    pub leader_count: Gauge,
    pub partition_count: Gauge,
    pub groups: Gauge,
    /// The metadata log's last index and this node's Raft term.
    pub metadata_log_end_offset: Gauge,
    pub metadata_current_epoch: Gauge,
    pub log_size: Family<PartitionLabels, Gauge>,
    pub consumer_lag: Family<LagLabels, Gauge>,
    /// High watermark minus last stable offset of partitions led here.
    pub last_stable_offset_lag: Family<PartitionLabels, Gauge>,
    /// The longest `__transaction_state` partition load, in ms.
    pub txn_partition_load_time_max: Gauge,
    /// Transactional ids this broker coordinates, and those with a transaction open.
    pub transactional_ids: Gauge,
    pub open_transactions: Gauge,
    /// Markers waiting for a partition that has no leader, and completions
    /// waiting for a retry of their `__transaction_state` write.
    pub txn_markers_unknown_destination: Gauge,
    pub txn_log_append_retries: Gauge,
}

fn request_time_histogram() -> Histogram {
    // 0.5 ms to about 33 s, doubling.
    Histogram::new(exponential_buckets(0.5, 2.0, 17))
}

/// Every metric the broker exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    request_time: Family<RequestTimeLabels, Histogram, fn() -> Histogram>,
    messages_in: Family<TopicLabels, Counter>,
    bytes_in: Family<TopicLabels, Counter>,
    bytes_out: Family<TopicLabels, Counter>,
    pub isr_shrinks: Counter,
    pub isr_expands: Counter,
    /// Bytes a leader sent to replicas being added by a reassignment (throttled).
    pub leader_reassignment_bytes: Counter,
    /// Bytes a follower fetched for partitions being reassigned (throttled).
    pub follower_reassignment_bytes: Counter,
    pub state: StateGauges,
    quota_throttle_time: Family<QuotaLabels, Counter>,
    quota_throttled: Family<QuotaLabels, Counter>,
    quota_rate: Family<QuotaLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let m = Metrics {
            registry: Registry::default(),
            requests: Family::default(),
            errors: Family::default(),
            request_time: Family::new_with_constructor(request_time_histogram),
            messages_in: Family::default(),
            bytes_in: Family::default(),
            bytes_out: Family::default(),
            isr_shrinks: Counter::default(),
            isr_expands: Counter::default(),
            leader_reassignment_bytes: Counter::default(),
            follower_reassignment_bytes: Counter::default(),
            state: StateGauges::default(),
            quota_throttle_time: Family::default(),
            quota_throttled: Family::default(),
            quota_rate: Family::default(),
        };
        m.register()
    }

    fn register(mut self) -> Metrics {
        let r = &mut self.registry;
        let s = &self.state;
        r.register(
            "kafka_network_requestmetrics_requests",
            "Requests received, by API and version",
            self.requests.clone(),
        );
        r.register(
            "kafka_network_requestmetrics_errors",
            "Errors in responses, by API and Kafka error code",
            self.errors.clone(),
        );
        r.register(
            "kafka_network_requestmetrics_totaltimems",
            "Time from a request's arrival to its response, in milliseconds (Produce, FetchConsumer, FetchFollower, and every other API by name)",
            self.request_time.clone(),
        );
        r.register(
            "kafka_server_brokertopicmetrics_messagesin",
            "Records appended by producers, by topic",
            self.messages_in.clone(),
        );
        r.register(
            "kafka_server_brokertopicmetrics_bytesin",
            "Record bytes appended by producers, by topic",
            self.bytes_in.clone(),
        );
        r.register(
            "kafka_server_brokertopicmetrics_bytesout",
            "Record bytes sent to consumers, by topic",
            self.bytes_out.clone(),
        );
        r.register(
            "kafka_server_replicamanager_isrshrinks",
            "ISR shrinks of partitions this broker leads",
            self.isr_shrinks.clone(),
        );
        r.register(
            "kafka_server_replicamanager_isrexpands",
            "ISR expansions of partitions this broker leads",
            self.isr_expands.clone(),
        );
        r.register(
            "kafka_server_brokertopicmetrics_reassignmentbytesout",
            "Bytes sent to replicas being added by a reassignment (leader.replication.throttled.rate)",
            self.leader_reassignment_bytes.clone(),
        );
        r.register(
            "kafka_server_brokertopicmetrics_reassignmentbytesin",
            "Bytes fetched for partitions being reassigned (follower.replication.throttled.rate)",
            self.follower_reassignment_bytes.clone(),
        );
        r.register(
            "kafka_server_replicamanager_underreplicatedpartitions",
            "Partitions this broker leads whose ISR is smaller than their replica set",
            s.under_replicated_partitions.clone(),
        );
        r.register(
            "kafka_controller_kafkacontroller_offlinepartitionscount",
            "Partitions without a live leader (reported by the active controller)",
            s.offline_partitions.clone(),
        );
        r.register(
            "kafka_controller_kafkacontroller_activecontrollercount",
            "1 on the active controller (the metadata quorum's leader), else 0",
            s.active_controller.clone(),
        );
        r.register(
            "kafka_server_raftmetrics_log_end_offset",
            "Index of the last entry in this node's metadata log (its growth is metadata changes)",
            s.metadata_log_end_offset.clone(),
        );
        r.register(
            "kafka_server_raftmetrics_current_epoch",
            "This node's term in the metadata quorum (it moves only with elections)",
            s.metadata_current_epoch.clone(),
        );
        r.register(
            "kafka_server_replicamanager_leadercount",
            "Partitions this broker leads",
            s.leader_count.clone(),
        );
        r.register(
            "kafka_server_replicamanager_partitioncount",
            "Partitions this broker hosts a replica of",
            s.partition_count.clone(),
        );
        r.register(
            "kafka_coordinator_group_groupmetadatamanager_numgroups",
            "Consumer groups this broker coordinates",
            s.groups.clone(),
        );
        r.register(
            "kafka_server_quota_throttle_time_ms",
            "Milliseconds clients were told to pause for exceeding a client quota (quota_type Produce, Fetch or Request)",
            self.quota_throttle_time.clone(),
        );
        r.register(
            "kafka_server_quota_throttled",
            "Responses that carried a throttle time for exceeding a client quota",
            self.quota_throttled.clone(),
        );
        r.register(
            "kafka_server_quota_rate",
            "A throttled group's measured rate when it last recorded: bytes per second (Produce, Fetch) or percent of a thread (Request)",
            self.quota_rate.clone(),
        );
        r.register(
            "kafka_log_log_size",
            "Bytes of a partition's log on this broker",
            s.log_size.clone(),
        );
        r.register(
            "kafka_cluster_partition_laststableoffsetlag",
            "High watermark minus last stable offset of a partition led here (an open transaction holds read_committed consumers back by this much)",
            s.last_stable_offset_lag.clone(),
        );
        r.register(
            "kafka_server_transaction_coordinator_metrics_partition_load_time_max",
            "The longest time this broker took to load a __transaction_state partition on becoming its leader, in milliseconds",
            s.txn_partition_load_time_max.clone(),
        );
        r.register(
            "kafka_coordinator_transaction_transactionstatemanager_numtransactionalids",
            "Transactional ids this broker coordinates",
            s.transactional_ids.clone(),
        );
        r.register(
            "kafka_coordinator_transaction_transactionstatemanager_numopentransactions",
            "Transactions this broker coordinates that are open or completing (not Empty or Complete*)",
            s.open_transactions.clone(),
        );
        r.register(
            "kafka_coordinator_transaction_transactionmarkerchannelmanager_unknowndestinationqueuesize",
            "Transaction markers waiting for a partition that has no leader",
            s.txn_markers_unknown_destination.clone(),
        );
        r.register(
            "kafka_coordinator_transaction_transactionmarkerchannelmanager_logappendretryqueuesize",
            "Transactions whose markers are written and whose completion waits for a retry of its __transaction_state write",
            s.txn_log_append_retries.clone(),
        );
        r.register(
            "kafka_consumergroup_lag",
            "Records between a group's committed offset and the partition's high watermark, for groups coordinated and partitions hosted here",
            s.consumer_lag.clone(),
        );
        self
    }

    /// Registers the active controller's count of refused proposals (the
    /// controller owns the counter; it is made before the metrics are).
    pub fn with_controller_counters(mut self, refused_proposals: Counter) -> Metrics {
        self.registry.register(
            "kafka_controller_kafkacontroller_proposalsrefused",
            "Metadata proposals this node refused as the active controller (before or after committing them)",
            refused_proposals,
        );
        self
    }

    /// Counts one request.
    pub fn request(&self, api: ApiKey, version: i16) {
        self.requests
            .get_or_create(&RequestLabels {
                request: Api(api),
                version,
            })
            .inc();
    }

    /// Counts one error code in a response (one per partition, as Kafka counts them).
    pub fn error(&self, api: ApiKey, code: i16) {
        if code != 0 {
            self.errors
                .get_or_create(&ErrorLabels {
                    request: Api(api),
                    error: ErrorCode(code),
                })
                .inc();
        }
    }

    /// Records a request's time under Kafka's request name (`FetchFollower`...).
    pub fn request_time(&self, request: Timed, elapsed: Duration) {
        self.request_time
            .get_or_create(&RequestTimeLabels { request })
            .observe(elapsed.as_secs_f64() * 1000.0);
    }

    /// The counters of `topic`, made on first use.
    pub fn topic(&self, topic: &str) -> TopicMetrics {
        let labels = TopicLabels {
            topic: topic.to_string(),
        };
        TopicMetrics {
            messages_in: self.messages_in.get_or_create_owned(&labels),
            bytes_in: self.bytes_in.get_or_create_owned(&labels),
            bytes_out: self.bytes_out.get_or_create_owned(&labels),
        }
    }

    /// Forgets a deleted topic's series.
    pub fn remove_topic(&self, topic: &str) {
        let labels = TopicLabels {
            topic: topic.to_string(),
        };
        self.messages_in.remove(&labels);
        self.bytes_in.remove(&labels);
        self.bytes_out.remove(&labels);
    }

    /// A quota sensor's measured rate, and the pause it asked for (if any).
    pub fn quota_recorded(&self, quota_type: &str, user: &str, client_id: &str, rate: f64, throttle_ms: u64) {
        let labels = QuotaLabels {
            quota_type: quota_type.to_string(),
            user: user.to_string(),
            client_id: client_id.to_string(),
        };
        self.quota_rate.get_or_create(&labels).set(rate);
        if throttle_ms > 0 {
            self.quota_throttle_time.get_or_create(&labels).inc_by(throttle_ms);
            self.quota_throttled.get_or_create(&labels).inc();
        }
    }

    /// Forgets an expired quota sensor's series.
    pub fn quota_forget(&self, quota_type: &str, user: &str, client_id: &str) {
        let labels = QuotaLabels {
            quota_type: quota_type.to_string(),
            user: user.to_string(),
            client_id: client_id.to_string(),
        };
        self.quota_rate.remove(&labels);
        self.quota_throttle_time.remove(&labels);
        self.quota_throttled.remove(&labels);
    }

    /// Every metric in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels_are_the_jmx_exporter_ones() {
        let m = Metrics::new();
        m.request(ApiKey::Produce, 9);
        m.request(ApiKey::Produce, 9);
        m.error(ApiKey::Produce, 6);
        m.error(ApiKey::Fetch, 0);
        m.request_time(Timed::FetchFollower, Duration::from_millis(3));
        let t = m.topic("orders");
        t.messages_in.inc_by(10);
        t.bytes_in.inc_by(1000);
        m.state
            .log_size
            .get_or_create(&PartitionLabels {
                topic: "orders".into(),
                partition: 2,
            })
            .set(4096);
        let text = m.encode();
        for line in [
            "kafka_network_requestmetrics_requests_total{request=\"Produce\",version=\"9\"} 2",
            "kafka_network_requestmetrics_errors_total{request=\"Produce\",error=\"NOT_LEADER_OR_FOLLOWER\"} 1",
            "kafka_server_brokertopicmetrics_messagesin_total{topic=\"orders\"} 10",
            "kafka_server_brokertopicmetrics_bytesin_total{topic=\"orders\"} 1000",
            "kafka_log_log_size{topic=\"orders\",partition=\"2\"} 4096",
            "kafka_network_requestmetrics_totaltimems_count{request=\"FetchFollower\"} 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        assert!(!text.contains("error=\"NONE\""), "a success is not an error");
        m.remove_topic("orders");
        assert!(!m.encode().contains("topic=\"orders\"} 10"));
    }

    #[test]
    fn every_metric_the_grafana_dashboard_reads_is_exported() {
        let m = Metrics::new();
        // A family without samples is not listed: give each one a sample.
        m.request(ApiKey::Fetch, 12);
        m.error(ApiKey::Fetch, 6);
        m.request_time(Timed::FetchConsumer, Duration::from_millis(1));
        let t = m.topic("t");
        t.messages_in.inc();
        t.bytes_in.inc();
        t.bytes_out.inc();
        m.state
            .log_size
            .get_or_create(&PartitionLabels {
                topic: "t".into(),
                partition: 0,
            })
            .set(1);
        m.state
            .consumer_lag
            .get_or_create(&LagLabels {
                consumergroup: "g".into(),
                topic: "t".into(),
                partition: 0,
            })
            .set(1);
        m.state
            .last_stable_offset_lag
            .get_or_create(&PartitionLabels {
                topic: "t".into(),
                partition: 0,
            })
            .set(1);
        let text = m.encode();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../dashboards/skein.json");
        let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut read = 0;
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"].as_str().unwrap();
                for name in expr
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .filter(|w| w.starts_with("kafka_"))
                {
                    read += 1;
                    assert!(
                        text.contains(&format!("\n{name}")),
                        "the dashboard reads {name}, which is not exported"
                    );
                }
            }
        }
        assert!(read >= 15, "{read}");
    }
}
