//! Broker and topic configuration, under Kafka's own property names and defaults.
//!
//! Every property the broker understands is one row of [`BROKER_CONFIGS`] or of
//! skein-model's [`TOPIC_CONFIGS`]: its name, type, default and documentation. The tables feed
//! start-up parsing (`--config`, `--set`), DescribeConfigs, and config
//! validation in CreateTopics and AlterConfigs, so the three can never disagree.

mod environment;
pub use environment::Host;
mod group;
mod kafka_keys;
mod listeners;
mod providers;

pub use group::{group_config_value, validate_group_config, GROUP_CONFIGS};
pub use listeners::{parse_listener, Listener};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use skein_model::config::{choice, def, find, ConfigType as T, HIDDEN, LONG_MAX};
pub use skein_model::config::{validate, ConfigDef, ConfigError, ConfigType};
pub use skein_model::topic_config::{topic_config_def, topic_synonym, validate_topic_config, TOPIC_CONFIGS};

/// Broker properties that IncrementalAlterConfigs may change at run time (kept in the metadata log).
pub static DYNAMIC_BROKER_CONFIGS: &[&str] = &[
    "leader.replication.throttled.rate",
    "follower.replication.throttled.rate",
    "unclean.leader.election.enable",
];

/// A listener's TLS stores, which AlterConfigs may change on a running broker
/// (Kafka's reconfigurable SSL configs), listener-prefixed
/// (`listener.name.<l>.ssl.keystore.location`) or for every TLS listener.
/// Each broker checks the new stores make a usable config before it accepts
/// them, then serves them to new connections.
pub static DYNAMIC_LISTENER_TLS_CONFIGS: &[&str] = &[
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.keystore.key",
    "ssl.keystore.certificate.chain",
    "ssl.key.password",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.truststore.certificates",
];

/// Whether `key` is one of a listener's reconfigurable TLS stores, prefixed or not.
pub fn is_dynamic_listener_tls_key(key: &str) -> bool {
    DYNAMIC_LISTENER_TLS_CONFIGS.contains(&listener_scoped(key).map_or(key, |(_, base)| base))
}

/// Broker properties (`server.properties`, `--set`).
pub static BROKER_CONFIGS: &[ConfigDef] = &[
    def("node.id", T::Int, Some("0"), Some(0), "The node ID of this broker."),
    def(
        "broker.id",
        T::Int,
        None,
        Some(-1),
        "Alias of node.id kept for older tooling.",
    ),
    def(
        "broker.rack",
        T::String,
        None,
        None,
        "Rack of the broker (a zone, for example). New partitions' replicas are spread over racks (a partition of replication factor RF spans RF racks when there are that many); brokers without a rack count as one rack. Listed in Metadata and DescribeCluster.",
    ),
    def(
        "listeners",
        T::List,
        Some("PLAINTEXT://:9092,CONTROLLER://:9093"),
        None,
        "Comma-separated NAME://host:port listeners the broker binds to: the one named by controller.listener.names serves the metadata quorum, every other one serves clients. An empty host binds every interface.",
    ),
    def(
        "advertised.listeners",
        T::List,
        None,
        None,
        "Per client listener, the NAME://host:port its clients are told in Metadata. A listener not named here advertises its own address, with an empty host as localhost.",
    ),
    def(
        "listener.security.protocol.map",
        T::List,
        Some(listeners::DEFAULT_PROTOCOL_MAP),
        None,
        "Listener name to security protocol, NAME:PROTOCOL. Skein serves PLAINTEXT listeners only so far.",
    ),
    // TLS, as Kafka 2.7+ takes PEM stores (KIP-651); each may be set for one
    // listener as `listener.name.<listener, lower case>.<key>`.
    choice(
        "ssl.keystore.type",
        T::String,
        "PEM",
        &["PEM"],
        "The key store's format. Skein reads PEM (KIP-651): ssl.keystore.location names a PEM file holding the private key and the certificate chain, or ssl.keystore.key and ssl.keystore.certificate.chain hold them inline.",
    ),
    def(
        "ssl.keystore.location",
        T::String,
        None,
        None,
        "A PEM file with the listener's private key (PKCS#8, encrypted with ssl.key.password or not) and its certificate chain. Reloaded when the file changes.",
    ),
    def(
        "ssl.keystore.key",
        T::Password,
        None,
        None,
        "The listener's private key in PEM (PKCS#8), inline, in place of ssl.keystore.location.",
    ),
    def(
        "ssl.keystore.certificate.chain",
        T::Password,
        None,
        None,
        "The listener's certificate chain in PEM, inline, with ssl.keystore.key.",
    ),
    def(
        "ssl.key.password",
        T::Password,
        None,
        None,
        "The password of an encrypted PKCS#8 private key.",
    ),
    choice(
        "ssl.truststore.type",
        T::String,
        "PEM",
        &["PEM"],
        "The trust store's format: PEM certificates (KIP-651).",
    ),
    def(
        "ssl.truststore.location",
        T::String,
        None,
        None,
        "A PEM file of the certificate authorities client certificates are checked against. Reloaded when the file changes.",
    ),
    def(
        "ssl.truststore.certificates",
        T::Password,
        None,
        None,
        "The trusted certificate authorities in PEM, inline, in place of ssl.truststore.location.",
    ),
    choice(
        "ssl.client.auth",
        T::String,
        "none",
        &["none", "requested", "required"],
        "Whether clients of an SSL or SASL_SSL listener present certificates: required (mutual TLS; the principal is the certificate's subject), requested (checked when presented), none.",
    ),
    ConfigDef {
        name: "ssl.enabled.protocols",
        kind: T::List,
        default: Some("TLSv1.2,TLSv1.3"),
        min: None,
        one_of: &["TLSv1.2", "TLSv1.3"],
        doc: "The TLS versions a listener accepts. TLSv1 and TLSv1.1 are not offered.",
    },
    def(
        "ssl.principal.mapping.rules",
        T::String,
        Some("DEFAULT"),
        None,
        "Rules that map a client certificate's distinguished name (RFC 2253) to a principal name, as Kafka's: RULE:pattern/replacement/[LU], ..., DEFAULT.",
    ),
    // SASL, on SASL_PLAINTEXT and SASL_SSL listeners; each may be set for one
    // listener as `listener.name.<listener, lower case>.<key>`.
    ConfigDef {
        name: "sasl.enabled.mechanisms",
        kind: T::List,
        default: Some("SCRAM-SHA-256,SCRAM-SHA-512,PLAIN"),
        min: None,
        one_of: &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"],
        doc: "The SASL mechanisms a SASL listener offers. SCRAM users are kept in the metadata log (AlterUserScramCredentials, or --add-scram at start-up); PLAIN users come from the listener's JAAS config. Kafka's default, GSSAPI, is not served.",
    },
    def(
        "sasl.jaas.config",
        T::Password,
        None,
        None,
        "PLAIN's users, as Kafka's PlainLoginModule takes them: `org.apache.kafka.common.security.plain.PlainLoginModule required user_alice=\"alice-secret\";`. Usually set per listener and mechanism: listener.name.<l>.plain.sasl.jaas.config.",
    ),
    def(
        "sasl.mechanism.inter.broker.protocol",
        T::String,
        Some("GSSAPI"),
        None,
        "The SASL mechanism brokers log in to each other with when the inter-broker listener is SASL_PLAINTEXT or SASL_SSL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512; Kafka's default, GSSAPI, is not served). The broker's own username and password come from that listener's JAAS config for the mechanism.",
    ),
    def(
        "connections.max.reauth.ms",
        T::Long,
        Some("0"),
        Some(0),
        "Longest a SASL session lasts before the client must re-authenticate (KIP-368); a connection that goes past it without re-authenticating is closed. 0: sessions do not expire.",
    ),
    def(
        "quota.window.num",
        T::Int,
        Some("11"),
        Some(2),
        "The number of samples a client quota's rate is measured over.",
    ),
    def(
        "quota.window.size.seconds",
        T::Int,
        Some("1"),
        Some(1),
        "The time span of each sample of a client quota's rate.",
    ),
    def(
        "sasl.server.max.receive.size",
        T::Int,
        Some("524288"),
        Some(1),
        "Largest request frame read from a client that has not authenticated yet.",
    ),
    def(
        "connection.failed.authentication.delay.ms",
        T::Int,
        Some("100"),
        Some(0),
        "How long the broker waits before answering a failed authentication (and closing the connection): slows password guessing.",
    ),
    // Authorization: Kafka's StandardAuthorizer over ACLs in the metadata log.
    ConfigDef {
        name: "authorizer.class.name",
        kind: T::String,
        default: Some(""),
        min: None,
        one_of: &[
            "",
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "kafka.security.authorizer.AclAuthorizer",
        ],
        doc: "Turns authorization on: every request is checked against the ACLs (CreateAcls, DescribeAcls, DeleteAcls) stored in the metadata log, with Kafka's StandardAuthorizer semantics. Empty: no authorizer, everything is allowed and the ACL APIs answer SECURITY_DISABLED.",
    },
    // KIP-392: consumers fetch from the replica in their own rack.
    ConfigDef {
        name: "replica.selector.class",
        kind: T::String,
        default: Some(""),
        min: None,
        one_of: &[
            "",
            "org.apache.kafka.common.replica.LeaderSelector",
            "org.apache.kafka.common.replica.RackAwareReplicaSelector",
        ],
        doc: "Which replica a consumer reads from (KIP-392). RackAwareReplicaSelector: a consumer that sends its client.rack is pointed at an in-sync replica in that rack (its broker.rack), and followers answer consumers' fetches up to their high watermark (set it on every broker). Empty or LeaderSelector: every consumer reads from the leader.",
    },
    def(
        "super.users",
        T::String,
        Some(""),
        None,
        "Principals allowed every operation whatever the ACLs say, separated by semicolons: User:admin;User:CN=broker-0.",
    ),
    def(
        "allow.everyone.if.no.acl.found",
        T::Boolean,
        Some("false"),
        None,
        "With an authorizer, whether a resource that no ACL names is open to everyone (Kafka's default, false, denies it).",
    ),
    def(
        "inter.broker.listener.name",
        T::String,
        None,
        None,
        "The client listener brokers reach each other on (replication). Defaults to PLAINTEXT, else the first client listener.",
    ),
    def(
        "process.roles",
        T::List,
        None,
        None,
        "broker,controller for a voter of controller.quorum.voters, broker for a node outside them (it follows the metadata log as a learner). Unset: decided by controller.quorum.voters.",
    ),
    def(
        "http.listener",
        T::String,
        Some("0.0.0.0:9644"),
        None,
        "host:port of the HTTP endpoint (/healthz, /readyz, /metrics, /v1/status); empty turns it off. Port 0 picks a free port (logged at start-up).",
    ),
    def(
        "controller.quorum.voters",
        T::List,
        Some(""),
        None,
        "The metadata quorum's initial voters as id@host:port (their CONTROLLER listeners): they start a new cluster's quorum. \
         Afterwards the voters are what the metadata log records (AddRaftVoter, RemoveRaftVoter). Empty: this broker alone, \
         unless controller.quorum.bootstrap.servers names others.",
    ),
    def(
        "controller.quorum.bootstrap.servers",
        T::List,
        Some(""),
        None,
        "host:port of CONTROLLER listeners where a node that is not an initial voter finds the metadata quorum (KIP-853). \
         It follows the metadata log as an observer and votes once added (AddRaftVoter).",
    ),
    def(
        "controller.listener.names",
        T::List,
        Some("CONTROLLER"),
        None,
        "The listener name the metadata quorum's gRPC uses.",
    ),
    def(
        "controller.quorum.election.timeout.ms",
        T::Int,
        Some("1000"),
        Some(10),
        "How long a voter waits without hearing from a leader before it calls an election.",
    ),
    def(
        // Kafka counts bytes (metadata.log.max.record.bytes.between.snapshots);
        // the Raft library Skein uses counts entries, so this is Skein's own name.
        "metadata.log.max.entries.between.snapshots",
        T::Long,
        Some("5000"),
        Some(1),
        "Metadata log entries applied between two snapshots; entries a snapshot covers are then deleted, keeping up to 1000 for followers that lag a little.",
    ),
    def(
        "broker.heartbeat.interval.ms",
        T::Int,
        Some("2000"),
        Some(1),
        "How often a broker heartbeats to the active controller.",
    ),
    def(
        "broker.session.timeout.ms",
        T::Int,
        Some("9000"),
        Some(1),
        "A broker that has not heartbeaten for this long is fenced: it leaves every ISR and leads nothing.",
    ),
    def(
        "controlled.shutdown.enable",
        T::Boolean,
        Some("true"),
        None,
        "On SIGTERM, ask the controller to move leadership away before stopping.",
    ),
    def(
        "replica.lag.time.max.ms",
        T::Long,
        Some("30000"),
        Some(1),
        "A follower that has not caught up with the leader for this long leaves the ISR.",
    ),
    def(
        "num.recovery.threads.per.data.dir",
        T::Int,
        Some("2"),
        Some(1),
        "Logs opened (and recovered after an unclean stop) side by side at start-up; Kafka 4.0's default.",
    ),
    def(
        "replica.fetch.wait.max.ms",
        T::Int,
        Some("500"),
        Some(0),
        "Longest wait of a follower's fetch when the leader has no new data.",
    ),
    def(
        "replica.fetch.max.bytes",
        T::Int,
        Some("1048576"),
        Some(0),
        "Bytes a follower asks for per partition in one fetch (at least one batch is always returned).",
    ),
    def(
        "replica.fetch.response.max.bytes",
        T::Int,
        Some("10485760"),
        Some(0),
        "Bytes a follower asks for across all partitions in one fetch (at least one batch is always returned).",
    ),
    def(
        "replica.fetch.backoff.ms",
        T::Int,
        Some("1000"),
        Some(0),
        "Pause after a follower's fetch fails.",
    ),
    def(
        "auto.leader.rebalance.enable",
        T::Boolean,
        Some("true"),
        None,
        "Move leadership back to preferred replicas in the background.",
    ),
    def(
        "leader.imbalance.check.interval.seconds",
        T::Long,
        Some("300"),
        Some(1),
        "How often the controller checks for partitions not led by their preferred replica.",
    ),
    def(
        "leader.replication.throttled.rate",
        T::Long,
        Some(LONG_MAX),
        Some(0),
        "Bytes per second a leader sends to followers of partitions being reassigned.",
    ),
    def(
        "follower.replication.throttled.rate",
        T::Long,
        Some(LONG_MAX),
        Some(0),
        "Bytes per second a follower fetches for partitions being reassigned.",
    ),
    def(
        "cluster.id",
        T::String,
        Some("skein-cluster"),
        None,
        "The cluster ID reported in Metadata and DescribeCluster.",
    ),
    def(
        "log.dirs",
        T::List,
        Some("./data"),
        None,
        "Directory holding the partition logs. Only the first entry is used.",
    ),
    def(
        "log.dir",
        T::String,
        None,
        None,
        "Single log directory, used when log.dirs is unset.",
    ),
    def(
        "num.partitions",
        T::Int,
        Some("1"),
        Some(1),
        "Default partition count of auto-created topics.",
    ),
    def(
        "default.replication.factor",
        T::Short,
        Some("1"),
        Some(1),
        "Default replication factor of auto-created topics.",
    ),
    def(
        "auto.create.topics.enable",
        T::Boolean,
        Some("true"),
        None,
        "Create a topic when a client asks for metadata of an unknown one.",
    ),
    def(
        "delete.topic.enable",
        T::Boolean,
        Some("true"),
        None,
        "Allow DeleteTopics.",
    ),
    def(
        "log.segment.bytes",
        T::Int,
        Some("1073741824"),
        Some(14),
        "Largest size of a segment file before a new one is rolled.",
    ),
    def(
        "log.roll.ms",
        T::Long,
        None,
        Some(1),
        "Longest age of a segment before a new one is rolled (overrides log.roll.hours).",
    ),
    def(
        "log.roll.hours",
        T::Int,
        Some("168"),
        Some(1),
        "Longest age of a segment before a new one is rolled, in hours.",
    ),
    def(
        "log.index.interval.bytes",
        T::Int,
        Some("4096"),
        Some(0),
        "Bytes of log between two entries of the offset and time indexes.",
    ),
    def(
        "log.retention.ms",
        T::Long,
        None,
        Some(-1),
        "How long to keep a segment (alias: retention.ms). -1 keeps forever.",
    ),
    def(
        "log.retention.minutes",
        T::Int,
        None,
        Some(-1),
        "How long to keep a segment, in minutes.",
    ),
    def(
        "log.retention.hours",
        T::Int,
        Some("168"),
        Some(-1),
        "How long to keep a segment, in hours.",
    ),
    def(
        "log.retention.bytes",
        T::Long,
        Some("-1"),
        Some(-1),
        "Largest size of a partition log before old segments are deleted (alias: retention.bytes).",
    ),
    def(
        "log.retention.check.interval.ms",
        T::Long,
        Some("300000"),
        Some(1),
        "How often the retention check runs.",
    ),
    def(
        "log.cleanup.policy",
        T::List,
        Some("delete"),
        None,
        "Default cleanup policy of topics.",
    ),
    def(
        "log.message.timestamp.type",
        T::String,
        Some("CreateTime"),
        None,
        "Default message.timestamp.type of topics: CreateTime or LogAppendTime.",
    ),
    def(
        "message.max.bytes",
        T::Int,
        Some("1048588"),
        Some(0),
        "Largest record batch the broker accepts.",
    ),
    def(
        "queued.max.request.bytes",
        T::Long,
        Some("536870912"),
        Some(-1),
        "Bytes of requests read but not yet answered, across all connections; a connection whose next request does not fit waits before reading it. -1: no limit (Kafka's default; Skein bounds memory by default).",
    ),
    def(
        "max.connections",
        T::Int,
        Some("2147483647"),
        Some(0),
        "Connections the broker keeps open across all listeners; further ones are closed as they arrive.",
    ),
    def(
        "max.connections.per.ip",
        T::Int,
        Some("2147483647"),
        Some(0),
        "Connections from one IP address; further ones are closed as they arrive.",
    ),
    def(
        "connections.max.idle.ms",
        T::Long,
        Some("600000"),
        Some(1),
        "A connection that sends nothing for this long while no request of it is in progress is closed; so is one stalled inside a request frame.",
    ),
    def(
        "socket.request.max.bytes",
        T::Int,
        Some("104857600"),
        Some(1),
        "Largest request frame; larger frames close the connection.",
    ),
    def(
        "log.flush.interval.messages",
        T::Long,
        Some(LONG_MAX),
        Some(1),
        "Messages appended to a partition before its log is fsynced; 1 makes every acknowledged batch durable.",
    ),
    def(
        "log.flush.interval.ms",
        T::Long,
        None,
        Some(0),
        "Longest time a message stays unflushed; unset leaves flushing to the OS page cache.",
    ),
    def(
        "log.flush.scheduler.interval.ms",
        T::Long,
        Some(LONG_MAX),
        Some(0),
        "How often the flusher checks log.flush.interval.ms.",
    ),
    def(
        "min.insync.replicas",
        T::Int,
        Some("1"),
        Some(1),
        "Least in-sync replicas for an acks=all produce.",
    ),
    def(
        "producer.id.expiration.ms",
        T::Int,
        Some("86400000"),
        Some(1),
        "Idle time after which a producer's state is dropped.",
    ),
    def(
        "unclean.leader.election.enable",
        T::Boolean,
        Some("false"),
        None,
        "Allow an out-of-sync replica to become leader.",
    ),
    def(
        "log.cleaner.enable",
        T::Boolean,
        Some("true"),
        None,
        "Run the log cleaner for topics with cleanup.policy=compact.",
    ),
    def(
        "log.cleaner.backoff.ms",
        T::Long,
        Some("15000"),
        Some(0),
        "How long the cleaner sleeps between passes.",
    ),
    def(
        "log.cleaner.min.cleanable.ratio",
        T::Double,
        Some("0.5"),
        None,
        "Default min.cleanable.dirty.ratio of topics.",
    ),
    def(
        "log.cleaner.delete.retention.ms",
        T::Long,
        Some("86400000"),
        Some(0),
        "Default delete.retention.ms of topics: how long tombstones stay readable.",
    ),
    def(
        "group.initial.rebalance.delay.ms",
        T::Int,
        Some("3000"),
        Some(0),
        "How long the coordinator waits for more members before the first rebalance of an empty group.",
    ),
    def(
        "group.min.session.timeout.ms",
        T::Int,
        Some("6000"),
        Some(0),
        "Smallest session timeout a consumer may ask for.",
    ),
    def(
        "group.max.session.timeout.ms",
        T::Int,
        Some("1800000"),
        Some(0),
        "Largest session timeout a consumer may ask for.",
    ),
    def(
        "group.consumer.session.timeout.ms",
        T::Int,
        Some("45000"),
        Some(1),
        "Session timeout of members of consumer-protocol (KIP-848) groups.",
    ),
    def(
        "group.consumer.heartbeat.interval.ms",
        T::Int,
        Some("5000"),
        Some(1),
        "Heartbeat interval the coordinator gives consumer-protocol (KIP-848) members.",
    ),
    def(
        "group.consumer.min.session.timeout.ms",
        T::Int,
        Some("45000"),
        Some(1),
        "Smallest session timeout a consumer-protocol group may be given (consumer.session.timeout.ms).",
    ),
    def(
        "group.consumer.max.session.timeout.ms",
        T::Int,
        Some("60000"),
        Some(1),
        "Largest session timeout a consumer-protocol group may be given (consumer.session.timeout.ms).",
    ),
    def(
        "group.consumer.min.heartbeat.interval.ms",
        T::Int,
        Some("5000"),
        Some(1),
        "Smallest heartbeat interval a consumer-protocol group may be given (consumer.heartbeat.interval.ms).",
    ),
    def(
        "group.consumer.max.heartbeat.interval.ms",
        T::Int,
        Some("15000"),
        Some(1),
        "Largest heartbeat interval a consumer-protocol group may be given (consumer.heartbeat.interval.ms).",
    ),
    def(
        "offsets.topic.replication.factor",
        T::Short,
        Some("3"),
        Some(1),
        "Replicas of each __consumer_offsets partition (fewer if fewer brokers are live when it is created).",
    ),
    def(
        "offsets.topic.num.partitions",
        T::Int,
        Some("50"),
        Some(1),
        "Partitions of __consumer_offsets (fixed once the topic exists).",
    ),
    def(
        "transaction.state.log.replication.factor",
        T::Short,
        Some("3"),
        Some(1),
        "Replicas of each __transaction_state partition (fewer if fewer brokers are live when it is created).",
    ),
    def(
        "transaction.state.log.min.isr",
        T::Int,
        Some("2"),
        Some(1),
        "min.insync.replicas of __transaction_state (at most its replication factor).",
    ),
    def(
        "transaction.state.log.num.partitions",
        T::Int,
        Some("50"),
        Some(1),
        "Partitions of __transaction_state (fixed once the topic exists).",
    ),
    def(
        "transaction.state.log.segment.bytes",
        T::Int,
        Some("104857600"),
        Some(1),
        "segment.bytes of __transaction_state.",
    ),
    def(
        "transaction.max.timeout.ms",
        T::Int,
        Some("900000"),
        Some(1),
        "The largest transaction timeout a producer may ask for (INVALID_TRANSACTION_TIMEOUT above it).",
    ),
    def(
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        T::Int,
        Some("10000"),
        Some(1),
        "How often transactions past their timeout are looked for and aborted.",
    ),
    def(
        "transactional.id.expiration.ms",
        T::Int,
        Some("604800000"),
        Some(1),
        "How long a transactional id with no transaction is kept before it expires.",
    ),
    def(
        "transaction.remove.expired.transaction.cleanup.interval.ms",
        T::Int,
        Some("3600000"),
        Some(1),
        "How often expired transactional ids are removed.",
    ),
    def(
        "offsets.retention.minutes",
        T::Int,
        Some("10080"),
        Some(1),
        "How long committed offsets of a group without members are kept.",
    ),
    def(
        "offsets.retention.check.interval.ms",
        T::Long,
        Some("600000"),
        Some(1),
        "How often expired committed offsets are removed.",
    ),
    def(
        "offset.metadata.max.bytes",
        T::Int,
        Some("4096"),
        Some(0),
        "Largest metadata string of an offset commit.",
    ),
    def(
        "compression.type",
        T::String,
        Some("producer"),
        None,
        "Compression of stored batches; only `producer` (keep what the producer sent) is supported.",
    ),
];

/// Names accepted on the command line and in server.properties as aliases of a
/// broker property (the topic-level spelling of a broker default).
pub static BROKER_ALIASES: &[(&str, &str)] = &[
    ("retention.ms", "log.retention.ms"),
    ("retention.bytes", "log.retention.bytes"),
    ("segment.bytes", "log.segment.bytes"),
    ("segment.ms", "log.roll.ms"),
];

/// Whether `key` is a broker config Skein knows: its own, an alias, or a Kafka one it does not act on.
fn is_known_broker_key(key: &str) -> bool {
    find(BROKER_CONFIGS, key).is_some()
        || providers::is_provider_key(key)
        || BROKER_ALIASES.iter().any(|(a, _)| *a == key)
        || is_kafka_only_broker_key(key)
}

/// A listener-scoped key, `listener.name.<listener>.<key>`, as (listener, key).
pub fn listener_scoped(key: &str) -> Option<(&str, &str)> {
    let (listener, base) = key.strip_prefix("listener.name.")?.split_once('.')?;
    (!listener.is_empty() && !base.is_empty()).then_some((listener, base))
}

/// Keys Kafka lets a listener set for itself: its TLS and SASL settings.
fn listener_scopable(base: &str) -> bool {
    base.starts_with("ssl.") || base.starts_with("sasl.") || base.ends_with(".sasl.jaas.config")
}

/// Whether a key's value is a secret (Kafka's PASSWORD type): never logged,
/// echoed in an error, or shown by DescribeConfigs.
pub fn is_sensitive(key: &str) -> bool {
    let base = listener_scoped(key).map_or(key, |(_, base)| base);
    find(BROKER_CONFIGS, base).is_some_and(|d| d.kind == T::Password)
        || base.ends_with(".password")
        || base.ends_with("sasl.jaas.config")
        || matches!(
            base,
            "delegation.token.secret.key" | "password.encoder.secret" | "password.encoder.old.secret"
        )
}

/// Whether `key` is a Kafka broker config that Skein accepts and does not act on.
pub fn is_kafka_only_broker_key(key: &str) -> bool {
    kafka_keys::KAFKA_ONLY_BROKER_KEYS.contains(&key)
}

/// Checks a dynamic broker config change: the key must be dynamic and the value
/// valid, or a Kafka key Skein does not act on (kept as given, as Kafka would).
pub fn validate_dynamic_broker_config(key: &str, value: &str) -> Result<(), ConfigError> {
    if is_kafka_only_broker_key(key) {
        return Ok(());
    }
    let base = listener_scoped(key).map_or(key, |(_, base)| base);
    if DYNAMIC_LISTENER_TLS_CONFIGS.contains(&base) {
        let def = find(BROKER_CONFIGS, base).ok_or_else(|| ConfigError::Unknown(key.to_string()))?;
        return validate(def, value).map_err(|e| match e {
            ConfigError::Invalid { value, reason, .. } => ConfigError::Invalid {
                key: key.to_string(),
                value,
                reason,
            },
            e => e,
        });
    }
    let known = match listener_scoped(key) {
        Some((_, base)) if listener_scopable(base) => find(BROKER_CONFIGS, base),
        _ => find(BROKER_CONFIGS, key),
    };
    let def = known.ok_or_else(|| ConfigError::Unknown(key.to_string()))?;
    if !DYNAMIC_BROKER_CONFIGS.contains(&key) {
        return Err(ConfigError::Invalid {
            key: key.to_string(),
            value: if is_sensitive(key) {
                HIDDEN.into()
            } else {
                value.to_string()
            },
            reason: "cannot be updated dynamically; set it in server.properties or with --set".into(),
        });
    }
    validate(def, value)
}

/// A voter of the metadata quorum (`controller.quorum.voters`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voter {
    pub id: i32,
    /// host:port of its CONTROLLER listener.
    pub address: String,
}

/// The broker's configuration: the explicitly set properties, validated, plus typed accessors.
#[derive(Clone)]
pub struct BrokerConfig {
    values: BTreeMap<String, String>,
}

impl std::fmt::Debug for BrokerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(
                self.values
                    .iter()
                    .map(|(k, v)| (k, if is_sensitive(k) { HIDDEN } else { v.as_str() })),
            )
            .finish()
    }
}

impl BrokerConfig {
    /// Builds a config from `server.properties` text (if any), `SKEIN_*` environment
    /// variables and `--set` overrides, in that order of precedence (last wins).
    pub fn load(file: Option<&Path>, sets: &[String]) -> Result<Self, ConfigError> {
        Self::load_from(file, std::env::vars(), sets, &environment::Host::current())
    }

    /// [`BrokerConfig::load`] with the environment and host given: `${HOSTNAME}` and
    /// `${ORDINAL}` in any value are replaced from `host`.
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        sets: &[String],
        host: &environment::Host,
    ) -> Result<Self, ConfigError> {
        let mut values = BTreeMap::new();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Io {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            for (i, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                    continue;
                }
                let (k, v) = line.split_once('=').ok_or_else(|| ConfigError::Malformed {
                    path: path.display().to_string(),
                    line: i + 1,
                    text: line.to_string(),
                })?;
                values.insert(k.trim().to_string(), v.trim().to_string());
            }
        }
        let env: BTreeMap<String, String> = env.into_iter().collect();
        for (var, v) in &env {
            let (var, v) = (var.clone(), v);
            if let Some(key) = environment::property_of(&var) {
                if !is_known_broker_key(&key) {
                    return Err(ConfigError::UnknownEnv { var, key });
                }
                values.insert(key, v.trim().to_string());
            }
        }
        for s in sets {
            let (k, v) = s.split_once('=').ok_or_else(|| ConfigError::Malformed {
                path: "--set".into(),
                line: 0,
                text: s.clone(),
            })?;
            values.insert(k.trim().to_string(), v.trim().to_string());
        }
        for (k, v) in values.iter_mut() {
            *v = host.substitute(k, v)?;
        }
        providers::resolve(&mut values, &env)?;
        Self::from_map(values)
    }

    /// Validates every key and value.
    pub fn from_map(raw: BTreeMap<String, String>) -> Result<Self, ConfigError> {
        if let Some(v) = raw.get("http.listener").filter(|v| !v.trim().is_empty()) {
            let ok = v
                .trim()
                .rsplit_once(':')
                .is_some_and(|(_, port)| port.parse::<u16>().is_ok());
            if !ok {
                return Err(ConfigError::Invalid {
                    key: "http.listener".into(),
                    value: v.clone(),
                    reason: "expected host:port (an empty host binds every interface), or empty to turn it off".into(),
                });
            }
        }
        let mut values = BTreeMap::new();
        for (k, v) in raw {
            let key = BROKER_ALIASES
                .iter()
                .find(|(alias, _)| *alias == k)
                .map(|(_, canonical)| canonical.to_string())
                .unwrap_or(k);
            // `listener.name.<listener>.<key>`: the key, for one listener.
            let base = match listener_scoped(&key) {
                Some((_, base)) if listener_scopable(base) => base.to_string(),
                Some(_) => return Err(ConfigError::Unknown(key)),
                None => key.clone(),
            };
            // `<mechanism>.sasl.jaas.config` is the JAAS config of one mechanism.
            let base = if base.ends_with(".sasl.jaas.config") {
                "sasl.jaas.config".to_string()
            } else {
                base
            };
            if is_kafka_only_broker_key(&base) {
                let shown = if is_sensitive(&key) { HIDDEN } else { v.as_str() };
                tracing::warn!("{key}={shown}: a Kafka broker config that Skein accepts and does not act on");
                continue;
            }
            let def = find(BROKER_CONFIGS, &base).ok_or_else(|| ConfigError::Unknown(key.clone()))?;
            validate(def, &v).map_err(|e| match e {
                ConfigError::Invalid { value, reason, .. } => ConfigError::Invalid {
                    key: key.clone(),
                    value,
                    reason,
                },
                e => e,
            })?;
            values.insert(key, v);
        }
        let cfg = BrokerConfig { values };
        cfg.check_listeners()?;
        cfg.voters()?;
        let bootstrap = cfg.quorum_bootstrap_servers()?;
        let in_cluster = !cfg.voters()?.is_empty() || !bootstrap.is_empty();
        if in_cluster && cfg.controller_listener().is_none() {
            return Err(ConfigError::Invalid {
                key: "listeners".into(),
                value: cfg.get("listeners").unwrap_or_default(),
                reason: "a broker in a cluster (controller.quorum.voters or controller.quorum.bootstrap.servers set) \
                         needs a CONTROLLER listener"
                    .into(),
            });
        }
        if let Some(queued) = cfg.queued_max_request_bytes() {
            if queued < cfg.socket_request_max_bytes() {
                return Err(ConfigError::Invalid {
                    key: "queued.max.request.bytes".into(),
                    value: queued.to_string(),
                    reason: "must be -1 or at least socket.request.max.bytes, or a largest request could never be read"
                        .into(),
                });
            }
        }
        group::check_broker_bounds(&cfg)?;
        cfg.check_process_roles()?;
        Ok(cfg)
    }

    /// The value of a property: set explicitly, else its default.
    pub fn get(&self, key: &str) -> Option<String> {
        self.values
            .get(key)
            .cloned()
            .or_else(|| find(BROKER_CONFIGS, key).and_then(|d| d.default.map(str::to_string)))
    }

    /// A key as set for one listener (`listener.name.<listener>.<key>`), else as set for all.
    pub fn listener_value(&self, listener: &str, key: &str) -> Option<String> {
        self.values
            .get(&format!("listener.name.{}.{key}", listener.to_ascii_lowercase()))
            .cloned()
            .or_else(|| self.get(key))
    }

    /// This config with `layers` of dynamic overrides laid over it in order
    /// (the cluster's defaults, then this broker's): what a reconfigurable
    /// setting is now. The overrides were validated when they were set.
    pub fn overlaid(&self, layers: &[Option<&BTreeMap<String, String>>]) -> BrokerConfig {
        let mut values = self.values.clone();
        for layer in layers.iter().flatten() {
            values.extend(layer.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        BrokerConfig { values }
    }

    /// Whether the property was set explicitly (DescribeConfigs' STATIC_BROKER_CONFIG).
    pub fn is_set(&self, key: &str) -> bool {
        self.values.contains_key(key)
    }

    fn num(&self, key: &str) -> i64 {
        // Values were validated at load, and every numeric key used here has a default.
        self.get(key).and_then(|v| v.trim().parse().ok()).unwrap_or_default()
    }

    fn flag(&self, key: &str) -> bool {
        self.get(key).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }

    pub fn node_id(&self) -> i32 {
        match self.values.get("broker.id") {
            Some(v) if !self.is_set("node.id") => v.parse().unwrap_or(0),
            _ => self.num("node.id") as i32,
        }
    }
    pub fn cluster_id(&self) -> String {
        self.get("cluster.id").unwrap_or_default()
    }
    pub fn log_dir(&self) -> PathBuf {
        let dirs = match (self.values.get("log.dirs"), self.values.get("log.dir")) {
            (None, Some(dir)) => dir.clone(),
            _ => self.get("log.dirs").unwrap_or_default(),
        };
        PathBuf::from(dirs.split(',').next().unwrap_or("./data").trim())
    }
    /// `controller.quorum.bootstrap.servers`, as host:port.
    pub fn quorum_bootstrap_servers(&self) -> Result<Vec<String>, ConfigError> {
        let raw = self.get("controller.quorum.bootstrap.servers").unwrap_or_default();
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| match s.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(s.to_string()),
                _ => Err(ConfigError::Invalid {
                    key: "controller.quorum.bootstrap.servers".into(),
                    value: raw.clone(),
                    reason: format!("{s}: expected host:port"),
                }),
            })
            .collect()
    }
    /// `controller.quorum.voters`, parsed. Empty means this broker alone.
    pub fn voters(&self) -> Result<Vec<Voter>, ConfigError> {
        let raw = self.get("controller.quorum.voters").unwrap_or_default();
        let bad = |reason: &str| ConfigError::Invalid {
            key: "controller.quorum.voters".into(),
            value: raw.clone(),
            reason: reason.into(),
        };
        let mut voters = Vec::new();
        for v in raw.split(',').map(str::trim).filter(|v| !v.is_empty()) {
            let (id, address) = v.split_once('@').ok_or_else(|| bad("expected id@host:port"))?;
            let id: i32 = id.parse().map_err(|_| bad("voter id must be an integer"))?;
            let (_, port) = address.rsplit_once(':').ok_or_else(|| bad("missing :port"))?;
            port.parse::<u16>().map_err(|_| bad("port must be 0-65535"))?;
            if voters.iter().any(|x: &Voter| x.id == id) {
                return Err(bad("voter ids must be distinct"));
            }
            voters.push(Voter {
                id,
                address: address.to_string(),
            });
        }
        Ok(voters)
    }
    pub fn election_timeout_ms(&self) -> u64 {
        self.num("controller.quorum.election.timeout.ms") as u64
    }
    pub fn metadata_entries_between_snapshots(&self) -> u64 {
        self.num("metadata.log.max.entries.between.snapshots").max(1) as u64
    }
    pub fn broker_heartbeat_interval_ms(&self) -> u64 {
        self.num("broker.heartbeat.interval.ms") as u64
    }
    pub fn broker_session_timeout_ms(&self) -> u64 {
        self.num("broker.session.timeout.ms") as u64
    }
    pub fn controlled_shutdown_enable(&self) -> bool {
        self.flag("controlled.shutdown.enable")
    }
    pub fn replica_lag_time_max_ms(&self) -> i64 {
        self.num("replica.lag.time.max.ms")
    }
    pub fn replica_fetch_wait_max_ms(&self) -> i32 {
        self.num("replica.fetch.wait.max.ms") as i32
    }
    pub fn num_recovery_threads(&self) -> usize {
        self.num("num.recovery.threads.per.data.dir").clamp(1, 64) as usize
    }
    pub fn replica_fetch_max_bytes(&self) -> i32 {
        self.num("replica.fetch.max.bytes") as i32
    }
    pub fn replica_fetch_response_max_bytes(&self) -> usize {
        self.num("replica.fetch.response.max.bytes") as usize
    }
    pub fn replica_fetch_backoff_ms(&self) -> u64 {
        self.num("replica.fetch.backoff.ms") as u64
    }
    pub fn unclean_leader_election_enable(&self) -> bool {
        self.flag("unclean.leader.election.enable")
    }
    pub fn auto_leader_rebalance_enable(&self) -> bool {
        self.flag("auto.leader.rebalance.enable")
    }
    /// A numeric property as configured at start (dynamic overrides live in the metadata image).
    pub fn static_u64(&self, key: &str) -> u64 {
        self.num(key).max(0) as u64
    }
    pub fn leader_imbalance_check_interval_ms(&self) -> u64 {
        (self.num("leader.imbalance.check.interval.seconds") as u64).saturating_mul(1000)
    }
    /// `http.listener` as (host, port), or None when turned off.
    pub fn http_listener(&self) -> Option<(String, u16)> {
        let v = self.get("http.listener").unwrap_or_default();
        let (host, port) = v.trim().rsplit_once(':')?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = if host.is_empty() { "0.0.0.0" } else { host };
        Some((host.to_string(), port.parse().ok()?))
    }
    pub fn num_partitions(&self) -> i32 {
        self.num("num.partitions") as i32
    }
    pub fn default_replication_factor(&self) -> i16 {
        self.num("default.replication.factor") as i16
    }
    pub fn auto_create_topics(&self) -> bool {
        self.flag("auto.create.topics.enable")
    }
    pub fn delete_topic_enable(&self) -> bool {
        self.flag("delete.topic.enable")
    }
    /// `queued.max.request.bytes`; None for no limit.
    pub fn queued_max_request_bytes(&self) -> Option<usize> {
        usize::try_from(self.num("queued.max.request.bytes")).ok()
    }
    pub fn max_connections(&self) -> usize {
        self.num("max.connections") as usize
    }
    pub fn max_connections_per_ip(&self) -> usize {
        self.num("max.connections.per.ip") as usize
    }
    /// Whether the leader points consumers at a replica in their rack (KIP-392).
    pub fn rack_aware_fetching(&self) -> bool {
        self.get("replica.selector.class").unwrap_or_default().trim()
            == "org.apache.kafka.common.replica.RackAwareReplicaSelector"
    }

    /// The authorizer's settings, or None when `authorizer.class.name` is empty.
    pub fn authorizer(&self) -> Option<crate::security::acl::AuthorizerConfig> {
        let class = self.get("authorizer.class.name").unwrap_or_default();
        if class.trim().is_empty() {
            return None;
        }
        let super_users = self
            .get("super.users")
            .unwrap_or_default()
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        Some(crate::security::acl::AuthorizerConfig {
            super_users,
            allow_everyone_if_no_acl_found: self.flag("allow.everyone.if.no.acl.found"),
        })
    }

    pub fn connections_max_reauth_ms(&self) -> i64 {
        self.num("connections.max.reauth.ms")
    }

    /// How client quotas' rates are sampled (`quota.window.num`, `quota.window.size.seconds`).
    pub fn quota_windows(&self) -> crate::quota::rate::Windows {
        crate::quota::rate::Windows {
            samples: self.num("quota.window.num") as u32,
            window_ms: self.num("quota.window.size.seconds") as u64 * 1000,
        }
    }

    pub fn sasl_server_max_receive_size(&self) -> usize {
        self.num("sasl.server.max.receive.size") as usize
    }

    pub fn connection_failed_authentication_delay_ms(&self) -> u64 {
        self.num("connection.failed.authentication.delay.ms") as u64
    }

    pub fn connections_max_idle_ms(&self) -> u64 {
        self.num("connections.max.idle.ms") as u64
    }
    pub fn socket_request_max_bytes(&self) -> usize {
        self.num("socket.request.max.bytes") as usize
    }
    pub fn cleaner_enabled(&self) -> bool {
        self.flag("log.cleaner.enable")
    }
    pub fn cleaner_backoff_ms(&self) -> u64 {
        self.num("log.cleaner.backoff.ms") as u64
    }
    pub fn retention_check_interval_ms(&self) -> u64 {
        self.num("log.retention.check.interval.ms") as u64
    }
    pub fn flush_scheduler_interval_ms(&self) -> u64 {
        self.num("log.flush.scheduler.interval.ms") as u64
    }
    /// (smallest, largest) session timeout a classic group member may ask for.
    pub fn group_session_timeout_bounds_ms(&self) -> (i32, i32) {
        (
            self.num("group.min.session.timeout.ms") as i32,
            self.num("group.max.session.timeout.ms") as i32,
        )
    }
    pub fn group_initial_rebalance_delay_ms(&self) -> i64 {
        self.num("group.initial.rebalance.delay.ms")
    }
    /// (session timeout, heartbeat interval) of KIP-848 consumer groups.
    pub fn consumer_group_timeouts(&self) -> (i64, i32) {
        (
            self.num("group.consumer.session.timeout.ms"),
            self.num("group.consumer.heartbeat.interval.ms") as i32,
        )
    }
    pub fn offsets_topic_replication_factor(&self) -> i16 {
        self.num("offsets.topic.replication.factor") as i16
    }
    pub fn transaction_state_replication_factor(&self) -> i16 {
        self.num("transaction.state.log.replication.factor") as i16
    }
    pub fn transaction_state_min_isr(&self) -> i32 {
        self.num("transaction.state.log.min.isr") as i32
    }
    pub fn transaction_state_partitions(&self) -> i32 {
        self.num("transaction.state.log.num.partitions") as i32
    }
    pub fn transaction_state_segment_bytes(&self) -> i64 {
        self.num("transaction.state.log.segment.bytes")
    }
    pub fn transaction_max_timeout_ms(&self) -> i32 {
        self.num("transaction.max.timeout.ms") as i32
    }
    pub fn transaction_abort_interval_ms(&self) -> i64 {
        self.num("transaction.abort.timed.out.transaction.cleanup.interval.ms")
    }
    pub fn transactional_id_expiration_ms(&self) -> i64 {
        self.num("transactional.id.expiration.ms")
    }
    pub fn transaction_remove_interval_ms(&self) -> i64 {
        self.num("transaction.remove.expired.transaction.cleanup.interval.ms")
    }
    pub fn offsets_topic_partitions(&self) -> i32 {
        self.num("offsets.topic.num.partitions") as i32
    }
    pub fn offsets_retention_ms(&self) -> i64 {
        self.num("offsets.retention.minutes") * 60_000
    }
    pub fn offsets_retention_check_interval_ms(&self) -> u64 {
        self.num("offsets.retention.check.interval.ms") as u64
    }
    pub fn offset_metadata_max_bytes(&self) -> usize {
        self.num("offset.metadata.max.bytes") as usize
    }
    pub fn producer_id_expiration_ms(&self) -> i64 {
        self.num("producer.id.expiration.ms")
    }

    /// The broker-level default of a topic property, following Kafka's precedence
    /// (log.retention.ms over .minutes over .hours; log.roll.ms over .hours).
    pub fn topic_default(&self, topic_key: &str) -> Option<String> {
        match topic_key {
            "retention.ms" => {
                if let Some(ms) = self.values.get("log.retention.ms") {
                    return Some(ms.clone());
                }
                if let Some(m) = self.values.get("log.retention.minutes") {
                    let m: i64 = m.parse().ok()?;
                    return Some(if m < 0 { "-1".into() } else { (m * 60_000).to_string() });
                }
                let h = self.num("log.retention.hours");
                Some(if h < 0 {
                    "-1".into()
                } else {
                    (h * 3_600_000).to_string()
                })
            }
            "segment.ms" => {
                if let Some(ms) = self.values.get("log.roll.ms") {
                    return Some(ms.clone());
                }
                Some((self.num("log.roll.hours") * 3_600_000).to_string())
            }
            "flush.ms" => Some(self.get("log.flush.interval.ms").unwrap_or_else(|| LONG_MAX.into())),
            key => match topic_synonym(key) {
                Some(broker_key) => self.get(broker_key),
                None => find(TOPIC_CONFIGS, key).and_then(|d| d.default.map(str::to_string)),
            },
        }
    }

    /// Every broker property with its effective value, for DescribeConfigs.
    pub fn describe(&self) -> Vec<(&'static ConfigDef, Option<String>, bool)> {
        BROKER_CONFIGS
            .iter()
            .map(|d| (d, self.get(d.name), self.is_set(d.name)))
            .collect()
    }
}

/// The effective configuration of one topic: its overrides over the broker defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub segment_bytes: u64,
    pub segment_ms: i64,
    pub index_interval_bytes: u64,
    pub retention_ms: i64,
    pub retention_bytes: i64,
    pub max_message_bytes: usize,
    pub log_append_time: bool,
    pub flush_messages: i64,
    pub flush_ms: i64,
    pub min_insync_replicas: i32,
    pub compact: bool,
    pub delete: bool,
    pub delete_retention_ms: i64,
    pub min_cleanable_dirty_ratio: f64,
}

impl LogConfig {
    /// Resolves a topic's config from its overrides and the broker's defaults.
    pub fn resolve(broker: &BrokerConfig, overrides: &BTreeMap<String, String>) -> LogConfig {
        let get = |k: &str| -> String {
            overrides
                .get(k)
                .cloned()
                .or_else(|| broker.topic_default(k))
                .unwrap_or_default()
        };
        let num = |k: &str, dflt: i64| -> i64 { get(k).trim().parse().unwrap_or(dflt) };
        let policy = get("cleanup.policy");
        LogConfig {
            segment_bytes: num("segment.bytes", 1 << 30).max(14) as u64,
            segment_ms: num("segment.ms", 604_800_000),
            index_interval_bytes: num("index.interval.bytes", 4096).max(0) as u64,
            retention_ms: num("retention.ms", 604_800_000),
            retention_bytes: num("retention.bytes", -1),
            max_message_bytes: num("max.message.bytes", 1_048_588).max(0) as usize,
            log_append_time: get("message.timestamp.type") == "LogAppendTime",
            flush_messages: num("flush.messages", i64::MAX),
            flush_ms: num("flush.ms", i64::MAX),
            min_insync_replicas: num("min.insync.replicas", 1) as i32,
            delete_retention_ms: num("delete.retention.ms", 86_400_000),
            min_cleanable_dirty_ratio: get("min.cleanable.dirty.ratio").trim().parse().unwrap_or(0.5),
            compact: policy.split(',').any(|p| p.trim() == "compact"),
            delete: policy.split(',').any(|p| p.trim() == "delete"),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig::resolve(
            &BrokerConfig {
                values: BTreeMap::new(),
            },
            &BTreeMap::new(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loads `--set` values alone: the tests' own environment must not leak in.
    pub(super) fn load(sets: &[&str]) -> Result<BrokerConfig, ConfigError> {
        BrokerConfig::load_from(
            None,
            std::iter::empty(),
            &sets.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            &environment::Host {
                name: "test-host".into(),
            },
        )
    }

    #[test]
    fn defaults_match_kafka() {
        let c = load(&[]).unwrap();
        assert_eq!(
            c.listeners(),
            vec![Listener {
                name: "PLAINTEXT".into(),
                host: "".into(),
                port: 9092
            }]
        );
        assert_eq!(c.controller_listener().map(|l| l.port), Some(9093));
        assert!(c.voters().unwrap().is_empty());
        assert_eq!(c.advertised_listener().host, "localhost");
        assert_eq!(c.log_dir(), PathBuf::from("./data"));
        assert_eq!(c.socket_request_max_bytes(), 100 * 1024 * 1024);
        let lc = LogConfig::resolve(&c, &BTreeMap::new());
        assert_eq!(lc.segment_bytes, 1 << 30);
        assert_eq!(lc.retention_ms, 7 * 24 * 3_600_000);
        assert_eq!(lc.max_message_bytes, 1_048_588);
        assert_eq!(lc.flush_messages, i64::MAX);
    }

    /// The settings of Apache Kafka 4.0's `config/server.properties` (KRaft, combined mode).
    const KAFKA_4_SERVER_PROPERTIES: &str = "
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=localhost:9093
listeners=PLAINTEXT://:9092,CONTROLLER://:9093
inter.broker.listener.name=PLAINTEXT
advertised.listeners=PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL
num.network.threads=3
num.io.threads=8
socket.send.buffer.bytes=102400
socket.receive.buffer.bytes=102400
socket.request.max.bytes=104857600
log.dirs=/tmp/kraft-combined-logs
num.partitions=1
num.recovery.threads.per.data.dir=1
offsets.topic.replication.factor=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
log.retention.hours=168
log.segment.bytes=1073741824
log.retention.check.interval.ms=300000
";

    fn load_env(
        file: Option<&str>,
        env: &[(&str, &str)],
        sets: &[&str],
        host: &str,
    ) -> Result<BrokerConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.properties");
        if let Some(text) = file {
            std::fs::write(&path, text).unwrap();
        }
        BrokerConfig::load_from(
            file.map(|_| path.as_path()),
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
            &sets.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            &environment::Host { name: host.into() },
        )
    }

    #[test]
    fn a_rack_and_an_advertised_address_come_from_files_an_init_container_wrote() {
        let init = tempfile::tempdir().unwrap();
        std::fs::write(init.path().join("rack"), "zone-a\n").unwrap();
        std::fs::write(init.path().join("external.address"), "127.0.0.2:31001").unwrap();
        let d = init.path().display().to_string();
        let file = format!(
            "config.providers=dir\nconfig.providers.dir.class=org.apache.kafka.common.config.provider.DirectoryConfigProvider\n\
             broker.rack=${{dir:{d}:rack}}\n\
             listeners=PLAIN://:9092,EXTERNAL://:9094,CONTROLLER://:9093\n\
             listener.security.protocol.map=PLAIN:PLAINTEXT,EXTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
             inter.broker.listener.name=PLAIN\n\
             advertised.listeners=PLAIN://${{HOSTNAME}}.b:9092,EXTERNAL://${{dir:{d}:${{HOSTNAME}}.address}}\n"
        );
        // The file name itself holds ${HOSTNAME}: the host is substituted first.
        std::fs::rename(
            init.path().join("external.address"),
            init.path().join("kc-broker-1.address"),
        )
        .unwrap();
        let c = load_env(Some(&file), &[], &[], "kc-broker-1").unwrap();
        assert_eq!(c.get("broker.rack").as_deref(), Some("zone-a"));
        assert_eq!(
            c.get("advertised.listeners").as_deref(),
            Some("PLAIN://kc-broker-1.b:9092,EXTERNAL://127.0.0.2:31001")
        );
        assert_eq!(c.get("config.providers"), None);
        // Declared through the environment, as a container image does.
        let c = load_env(
            None,
            &[
                ("SKEIN_CONFIG_PROVIDERS", "env"),
                (
                    "SKEIN_CONFIG_PROVIDERS_ENV_CLASS",
                    "org.apache.kafka.common.config.provider.EnvVarConfigProvider",
                ),
                ("SKEIN_BROKER_RACK", "${env:ZONE}"),
                ("ZONE", "z3"),
            ],
            &[],
            "laptop",
        )
        .unwrap();
        assert_eq!(c.get("broker.rack").as_deref(), Some("z3"));
        // The init container has not written its file: start-up stops, naming it.
        std::fs::remove_file(init.path().join("rack")).unwrap();
        let err = load_env(Some(&file), &[], &[], "kc-broker-1").unwrap_err().to_string();
        assert!(err.contains("rack") && err.contains("cannot read"), "{err}");
    }

    #[test]
    fn kafka_4_server_properties_start_skein_unchanged() {
        let c = load_env(Some(KAFKA_4_SERVER_PROPERTIES), &[], &[], "laptop").unwrap();
        assert_eq!(c.node_id(), 1);
        assert_eq!(c.log_dir(), PathBuf::from("/tmp/kraft-combined-logs"));
        assert_eq!(c.advertised_listener().port, 9092);
        assert_eq!(c.controller_listener().unwrap().port, 9093);
        assert!(c.voters().unwrap().is_empty());
        assert_eq!(c.quorum_bootstrap_servers().unwrap(), ["localhost:9093"]);
        // Several: a node that finds an existing quorum through them (KIP-853).
        let several = KAFKA_4_SERVER_PROPERTIES.replace("servers=localhost:9093", "servers=a:9093,b:9093");
        let c = load_env(Some(&several), &[], &[], "laptop").unwrap();
        assert_eq!(c.quorum_bootstrap_servers().unwrap(), ["a:9093", "b:9093"]);
        let bad = KAFKA_4_SERVER_PROPERTIES.replace("servers=localhost:9093", "servers=a:9093,b");
        let err = load_env(Some(&bad), &[], &[], "laptop").unwrap_err().to_string();
        assert!(
            err.contains("controller.quorum.bootstrap.servers") && err.contains("host:port"),
            "{err}"
        );
    }

    #[test]
    fn environment_overrides_the_file_and_set_overrides_the_environment() {
        let file = "num.partitions=2\nlog.dirs=/from/file\n";
        let env = [
            ("SKEIN_NUM_PARTITIONS", "3"),
            ("SKEIN_LOG_DIRS", "/from/env"),
            ("PATH", "/bin"),
        ];
        let c = load_env(Some(file), &env, &["num.partitions=4"], "laptop").unwrap();
        assert_eq!(c.num_partitions(), 4);
        assert_eq!(c.log_dir(), PathBuf::from("/from/env"));
        let err = load_env(None, &[("SKEIN_NUM_PARTITONS", "3")], &[], "laptop").unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable SKEIN_NUM_PARTITONS names unknown config `num.partitons`"
        );
        assert!(matches!(
            load_env(None, &[("SKEIN_NUM_PARTITIONS", "many")], &[], "laptop"),
            Err(ConfigError::Invalid { .. })
        ));
        assert!(load_env(None, &[("SKEIN_BROKER_BIN", "/x")], &[], "laptop").is_ok());
    }

    #[test]
    fn node_id_and_advertised_address_come_from_the_pod_name() {
        let env = [
            ("SKEIN_NODE_ID", "${ORDINAL}"),
            (
                "SKEIN_ADVERTISED_LISTENERS",
                "PLAINTEXT://${HOSTNAME}.kc-brokers.ns.svc:9092",
            ),
        ];
        let c = load_env(None, &env, &[], "kc-broker-4").unwrap();
        assert_eq!(c.node_id(), 4);
        assert_eq!(c.advertised_listener().host, "kc-broker-4.kc-brokers.ns.svc");
        let err = load_env(None, &env, &[], "workstation").unwrap_err().to_string();
        assert!(err.contains("needs a host name ending in -N"), "{err}");
    }

    #[test]
    fn unknown_key_is_a_startup_error() {
        assert_eq!(
            load(&["log.segmnt.bytes=5"]).unwrap_err(),
            ConfigError::Unknown("log.segmnt.bytes".into())
        );
    }

    #[test]
    fn malformed_values_are_rejected() {
        assert!(matches!(
            load(&["num.partitions=zero"]),
            Err(ConfigError::Invalid { .. })
        ));
        assert!(matches!(load(&["num.partitions=0"]), Err(ConfigError::Invalid { .. })));
        assert!(matches!(
            load(&["auto.create.topics.enable=maybe"]),
            Err(ConfigError::Invalid { .. })
        ));
        assert!(matches!(load(&["listeners=9092"]), Err(ConfigError::Invalid { .. })));
        assert!(matches!(load(&["novalue"]), Err(ConfigError::Malformed { .. })));
    }

    #[test]
    fn listener_scoped_tls_keys_are_read_for_their_listener_and_secrets_never_echoed() {
        let c = load(&[
            "listeners=SSL://:9092,CONTROLLER://:9093",
            "ssl.client.auth=requested",
            "listener.name.ssl.ssl.client.auth=required",
            "listener.name.ssl.ssl.keystore.location=/k.pem",
        ])
        .unwrap();
        assert_eq!(c.listener_value("SSL", "ssl.client.auth").as_deref(), Some("required"));
        assert_eq!(
            c.listener_value("OTHER", "ssl.client.auth").as_deref(),
            Some("requested")
        );
        assert_eq!(
            c.listener_value("SSL", "ssl.keystore.location").as_deref(),
            Some("/k.pem")
        );
        assert_eq!(
            c.listener_value("SSL", "ssl.principal.mapping.rules").as_deref(),
            Some("DEFAULT")
        );
        // A scoped key is checked like the key itself, and names itself in the error.
        let e = load(&["listener.name.ssl.ssl.client.auth=sometimes"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("listener.name.ssl.ssl.client.auth") && e.contains("none, requested, required"),
            "{e}"
        );
        assert!(matches!(
            load(&["listener.name.ssl.num.partitions=3"]),
            Err(ConfigError::Unknown(_))
        ));
        assert!(load(&["ssl.keystore.type=JKS"])
            .unwrap_err()
            .to_string()
            .contains("PEM"));
        // Secrets: hidden in errors and in Debug.
        assert!(is_sensitive("ssl.key.password") && is_sensitive("listener.name.ssl.ssl.keystore.key"));
        assert!(is_sensitive("listener.name.sasl_ssl.plain.sasl.jaas.config") && !is_sensitive("ssl.client.auth"));
        let e = validate_dynamic_broker_config("listener.name.sasl_ssl.plain.sasl.jaas.config", "hunter2")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
        let e = validate_dynamic_broker_config("sasl.jaas.config", "hunter2")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2") && e.contains(HIDDEN), "{e}");
        let c = load(&["ssl.key.password=hunter2", "ssl.keystore.key=-----BEGIN"]).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("BEGIN"), "{shown}");
    }

    #[test]
    fn a_listeners_tls_stores_are_dynamic_and_its_other_tls_keys_are_not() {
        for key in ["listener.name.ssl.ssl.keystore.location", "ssl.truststore.certificates"] {
            assert!(is_dynamic_listener_tls_key(key), "{key}");
            validate_dynamic_broker_config(key, "/etc/kafka/x.pem").unwrap();
        }
        let e = validate_dynamic_broker_config("listener.name.ssl.ssl.keystore.type", "JKS").unwrap_err();
        assert!(e.to_string().contains("listener.name.ssl.ssl.keystore.type"), "{e}");
        let e = validate_dynamic_broker_config("listener.name.ssl.ssl.client.auth", "required").unwrap_err();
        assert!(e.to_string().contains("dynamically"), "{e}");
        let e = validate_dynamic_broker_config("listener.name.ssl.ssl.key.password", "bad\u{0}").err();
        assert!(e.is_none_or(|e| !e.to_string().contains("bad")));
        assert!(matches!(
            validate_dynamic_broker_config("listener.name.ssl.num.partitions", "3"),
            Err(ConfigError::Unknown(_))
        ));
        let base = load(&["ssl.keystore.location=/a.pem"]).unwrap();
        let own: BTreeMap<String, String> = [("ssl.keystore.location".to_string(), "/b.pem".to_string())].into();
        let cluster: BTreeMap<String, String> = [("ssl.keystore.location".to_string(), "/c.pem".to_string())].into();
        let now = base.overlaid(&[Some(&cluster), Some(&own)]);
        assert_eq!(now.get("ssl.keystore.location").as_deref(), Some("/b.pem"));
        assert_eq!(
            base.overlaid(&[Some(&cluster), None])
                .get("ssl.keystore.location")
                .as_deref(),
            Some("/c.pem")
        );
    }

    #[test]
    fn every_broker_key_can_be_set() {
        for d in BROKER_CONFIGS {
            let v = match d.kind {
                T::Boolean => "true".to_string(),
                // The request budget must hold the largest request.
                T::Long if d.name == "queued.max.request.bytes" => "-1".into(),
                // Consumer-group defaults must lie within their bounds.
                T::Int if d.name.starts_with("group.consumer.") => d.default.unwrap_or("1").to_string(),
                T::Int | T::Short | T::Long => d.min.unwrap_or(1).max(1).to_string(),
                T::Double => "0.5".into(),
                T::Password => "secret".into(),
                T::String | T::List => match d.name {
                    "listeners" | "advertised.listeners" => "PLAINTEXT://127.0.0.1:9999".into(),
                    "inter.broker.listener.name" => "PLAINTEXT".into(),
                    "process.roles" => "broker,controller".into(),
                    "log.message.timestamp.type" => "LogAppendTime".into(),
                    "log.cleanup.policy" => "delete".into(),
                    _ => d.default.unwrap_or("x").to_string(),
                },
            };
            let c = load(&[&format!("{}={v}", d.name)]).unwrap_or_else(|e| panic!("{}: {e}", d.name));
            assert_eq!(c.get(d.name).as_deref(), Some(v.as_str()));
        }
    }

    #[test]
    fn topic_overrides_win_over_broker_defaults_and_aliases_work() {
        let c = load(&[
            "retention.ms=1000",
            "log.segment.bytes=2048",
            "log.message.timestamp.type=LogAppendTime",
        ])
        .unwrap();
        let mut o = BTreeMap::new();
        let lc = LogConfig::resolve(&c, &o);
        assert_eq!(
            (lc.retention_ms, lc.segment_bytes, lc.log_append_time),
            (1000, 2048, true)
        );
        o.insert("segment.bytes".to_string(), "4096".to_string());
        assert_eq!(LogConfig::resolve(&c, &o).segment_bytes, 4096);
    }

    #[test]
    fn topic_config_validation() {
        assert!(validate_topic_config("retention.ms", Some("100")).is_ok());
        assert!(validate_topic_config("cleanup.policy", Some("compact,delete")).is_ok());
        assert!(validate_topic_config("cleanup.policy", Some("shred")).is_err());
        assert!(validate_topic_config("retention.ms", Some("soon")).is_err());
        assert!(validate_topic_config("no.such.key", Some("1")).is_err());
    }
}
