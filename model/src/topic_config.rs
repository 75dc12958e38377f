//! Topic rules: Kafka's topic-config keys with their defaults and validation.

use crate::config::{choice, def, find, validate, ConfigDef, ConfigError, ConfigType as T, LONG_MAX};

const CLEANUP: &[&str] = &["delete", "compact"];
const TS_TYPES: &[&str] = &["CreateTime", "LogAppendTime"];
const COMPRESSION: &[&str] = &["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"];

/// Topic properties (CreateTopics configs, AlterConfigs). Defaults come from the
/// broker property named in [`topic_synonym`].
pub static TOPIC_CONFIGS: &[ConfigDef] = &[
    choice(
        "cleanup.policy",
        T::List,
        "delete",
        CLEANUP,
        "delete, compact, or both.",
    ),
    choice(
        "compression.type",
        T::String,
        "producer",
        COMPRESSION,
        "Compression of stored batches.",
    ),
    def(
        "delete.retention.ms",
        T::Long,
        Some("86400000"),
        Some(0),
        "How long tombstones are kept in compacted topics.",
    ),
    def(
        "file.delete.delay.ms",
        T::Long,
        Some("60000"),
        Some(0),
        "Delay before a deleted segment's files are removed.",
    ),
    def(
        "flush.messages",
        T::Long,
        Some(LONG_MAX),
        Some(1),
        "Messages appended before an fsync.",
    ),
    def(
        "flush.ms",
        T::Long,
        Some(LONG_MAX),
        Some(0),
        "Longest time a message stays unflushed.",
    ),
    def(
        "index.interval.bytes",
        T::Int,
        Some("4096"),
        Some(0),
        "Bytes of log between two index entries.",
    ),
    def(
        "max.message.bytes",
        T::Int,
        Some("1048588"),
        Some(0),
        "Largest record batch accepted.",
    ),
    choice(
        "message.timestamp.type",
        T::String,
        "CreateTime",
        TS_TYPES,
        "CreateTime keeps the producer's timestamps; LogAppendTime stamps the broker's clock.",
    ),
    def(
        "min.cleanable.dirty.ratio",
        T::Double,
        Some("0.5"),
        None,
        "Dirty ratio at which the cleaner compacts a log.",
    ),
    def(
        "min.compaction.lag.ms",
        T::Long,
        Some("0"),
        Some(0),
        "Least age of a record before it may be compacted.",
    ),
    def(
        "min.insync.replicas",
        T::Int,
        Some("1"),
        Some(1),
        "Least in-sync replicas for an acks=all produce.",
    ),
    def(
        "preallocate",
        T::Boolean,
        Some("false"),
        None,
        "Preallocate segment files (accepted, not used).",
    ),
    def(
        "retention.bytes",
        T::Long,
        Some("-1"),
        Some(-1),
        "Largest size of a partition log before old segments are deleted.",
    ),
    def(
        "retention.ms",
        T::Long,
        Some("604800000"),
        Some(-1),
        "How long to keep a segment; -1 keeps forever.",
    ),
    def(
        "segment.bytes",
        T::Int,
        Some("1073741824"),
        Some(14),
        "Largest size of a segment file.",
    ),
    def(
        "segment.index.bytes",
        T::Int,
        Some("10485760"),
        Some(4),
        "Largest size of an index file (accepted, indexes grow as needed).",
    ),
    def(
        "segment.ms",
        T::Long,
        Some("604800000"),
        Some(1),
        "Longest age of a segment before a roll.",
    ),
    def(
        "unclean.leader.election.enable",
        T::Boolean,
        Some("false"),
        None,
        "Allow an out-of-sync replica to become leader.",
    ),
];

/// The broker property whose value is a topic property's default.
pub fn topic_synonym(topic_key: &str) -> Option<&'static str> {
    Some(match topic_key {
        "cleanup.policy" => "log.cleanup.policy",
        "delete.retention.ms" => "log.cleaner.delete.retention.ms",
        "min.cleanable.dirty.ratio" => "log.cleaner.min.cleanable.ratio",
        "compression.type" => "compression.type",
        "flush.messages" => "log.flush.interval.messages",
        "flush.ms" => "log.flush.interval.ms",
        "index.interval.bytes" => "log.index.interval.bytes",
        "max.message.bytes" => "message.max.bytes",
        "message.timestamp.type" => "log.message.timestamp.type",
        "min.insync.replicas" => "min.insync.replicas",
        "retention.bytes" => "log.retention.bytes",
        "retention.ms" => "log.retention.ms",
        "segment.bytes" => "log.segment.bytes",
        "segment.ms" => "log.roll.ms",
        "unclean.leader.election.enable" => "unclean.leader.election.enable",
        _ => return None,
    })
}

/// Validates one topic-level override.
pub fn validate_topic_config(key: &str, value: Option<&str>) -> Result<(), ConfigError> {
    let def = find(TOPIC_CONFIGS, key).ok_or_else(|| ConfigError::Unknown(key.to_string()))?;
    match value {
        Some(v) => validate(def, v),
        None => Err(ConfigError::Invalid {
            key: key.to_string(),
            value: "null".into(),
            reason: "a value is required".into(),
        }),
    }
}

/// Looks up a topic property definition.
pub fn topic_config_def(key: &str) -> Option<&'static ConfigDef> {
    find(TOPIC_CONFIGS, key)
}
