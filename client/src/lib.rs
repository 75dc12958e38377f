//! Skein's Kafka client, on the `kafka-protocol` crate's codecs.
//!
//! [`Connection`] is one framed connection to a broker: the follower's replica
//! fetcher and the admin client share it. [`Admin`] is an admin client in the
//! manner of Kafka's `AdminClient`: it bootstraps through any broker,
//! negotiates versions with ApiVersions, routes each request to the broker
//! that must answer it (controller, partition leader, group coordinator, or a
//! named broker), and retries retriable errors until a deadline.
//!
//! [`ClientSecurity`] is how both reach a secured listener: TLS with rustls
//! and SASL PLAIN or SCRAM, from Kafka's client properties.
//!
//! Why not librdkafka: its admin API has no AlterPartitionReassignments or
//! ListPartitionReassignments, which the operator and `skeinctl reassign` need,
//! and a C dependency would make every crate that moves partitions build
//! librdkafka. This client does no produce or consume; it must never be on a
//! broker's hot path except through [`Connection`].

mod admin;
mod connection;
mod error;
pub mod scram;
pub mod security;

pub use admin::{
    acl_codes, AclEntry, AclFilterSpec, Admin, AdminOptions, AlterOp, BrokerInfo, ClientQuotaEntry, ClusterInfo,
    ConfigEntry, ConfigResource, GroupDescription, GroupListing, GroupMember, NewTopic, OngoingReassignment,
    PartitionInfo, ProducerInfo, QuorumInfo, QuorumMember, QuotaEntity, ScramCredentialInfo, TopicInfo,
    TransactionDescription, TransactionListing,
};
pub use connection::Connection;
pub use error::Error;
pub use security::{ClientSecurity, Protocol, SaslLogin};
