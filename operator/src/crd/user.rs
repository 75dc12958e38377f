//! `KafkaUser` (ku): a principal of a KafkaCluster, its credentials, ACLs and quotas.
//!
//! The spec follows Strimzi's KafkaUser (`authentication`, `authorization.acls`
//! with `resource`/`operations`/`host`/`type`, `quotas`), so resources migrate
//! with the apiVersion changed.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::cluster::conditions_schema;
use super::Condition;

/// A Kafka user, declared: the operator keeps its credentials, ACLs and quotas
/// on the cluster and its Secret beside the resource.
// printcolumn(...) repeats `type_ = "..."`, which clippy takes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "skein.dev",
    version = "v1alpha1",
    kind = "KafkaUser",
    namespaced,
    shortname = "ku",
    status = "KafkaUserStatus",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.cluster"),
    printcolumn(name = "Authentication", type_ = "string", json_path = ".spec.authentication.type"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct KafkaUserSpec {
    /// The KafkaCluster this user belongs to.
    #[x_kube(validation = Rule::new("self == oldSelf").message("cluster is immutable"))]
    pub cluster: String,
    /// The cluster's namespace when it is not this one; the cluster's
    /// `spec.userNamespaces` must select this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("clusterNamespace is immutable"))]
    pub cluster_namespace: Option<String>,
    /// How the user proves who it is (none: the user only holds ACLs and quotas,
    /// for a principal authenticated some other way).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<UserAuthentication>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<UserAuthorization>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quotas: Option<UserQuotas>,
}

/// The user's credentials.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UserAuthentication {
    #[serde(rename = "type")]
    pub type_: super::AuthenticationType,
    /// SCRAM only: the password from a Secret the user keeps (changing it
    /// rotates the credential). Absent: the operator generates one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<PasswordSource>,
}

/// Where a SCRAM password comes from.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PasswordSource {
    pub value_from: PasswordValueFrom,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PasswordValueFrom {
    pub secret_key_ref: SecretKeyRef,
}

/// A key of a Secret in the KafkaUser's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SecretKeyRef {
    pub name: String,
    pub key: String,
}

/// What the user may do: Kafka's ACLs (`type: simple`, Strimzi's name).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct UserAuthorization {
    #[serde(rename = "type", default)]
    pub type_: AuthorizationType,
    #[serde(default)]
    pub acls: Vec<AclRule>,
}

/// Kafka's ACL authorizer (StandardAuthorizer).
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum AuthorizationType {
    #[default]
    Simple,
}

/// One rule: operations on a resource, allowed or denied, from a host.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AclRule {
    pub resource: AclResource,
    #[schemars(length(min = 1))]
    pub operations: Vec<AclOperation>,
    /// The client address the rule applies to (`*`: any).
    #[serde(default = "any_host")]
    pub host: String,
    #[serde(rename = "type", default)]
    pub type_: AclRuleType,
}

fn any_host() -> String {
    "*".into()
}

/// What a rule names: a topic, group or transactional id (by name or prefix), or the cluster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AclResource {
    #[serde(rename = "type")]
    pub type_: AclResourceType,
    /// The name or prefix; absent for `cluster` (and `*` for every one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default)]
    pub pattern_type: AclPatternType,
}

#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum AclResourceType {
    Topic,
    Group,
    Cluster,
    TransactionalId,
}

impl AclResourceType {
    /// Kafka's name (`Topic`, `TransactionalId`).
    pub fn kafka_name(self) -> &'static str {
        match self {
            AclResourceType::Topic => "Topic",
            AclResourceType::Group => "Group",
            AclResourceType::Cluster => "Cluster",
            AclResourceType::TransactionalId => "TransactionalId",
        }
    }
}

#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum AclPatternType {
    #[default]
    Literal,
    Prefix,
}

impl AclPatternType {
    /// Kafka's name (`Literal`, `Prefixed`).
    pub fn kafka_name(self) -> &'static str {
        match self {
            AclPatternType::Literal => "Literal",
            AclPatternType::Prefix => "Prefixed",
        }
    }
}

/// Kafka's ACL operations, by their names.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum AclOperation {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
}

impl AclOperation {
    /// Kafka's name, as the ACL APIs and `kafka-acls.sh` spell it.
    pub fn kafka_name(self) -> &'static str {
        match self {
            AclOperation::All => "All",
            AclOperation::Read => "Read",
            AclOperation::Write => "Write",
            AclOperation::Create => "Create",
            AclOperation::Delete => "Delete",
            AclOperation::Alter => "Alter",
            AclOperation::Describe => "Describe",
            AclOperation::ClusterAction => "ClusterAction",
            AclOperation::DescribeConfigs => "DescribeConfigs",
            AclOperation::AlterConfigs => "AlterConfigs",
            AclOperation::IdempotentWrite => "IdempotentWrite",
        }
    }
}

#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum AclRuleType {
    #[default]
    Allow,
    Deny,
}

/// Kafka's client quotas for this user.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct UserQuotas {
    /// `producer_byte_rate`, bytes per second per broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub producer_byte_rate: Option<i64>,
    /// `consumer_byte_rate`, bytes per second per broker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub consumer_byte_rate: Option<i64>,
    /// `request_percentage`, of one request handler thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub request_percentage: Option<i32>,
}

/// What the operator last did for the user.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct KafkaUserStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
    /// The user name in Kafka (`app`, or `team-a/app` from another namespace);
    /// the principal is `User:<username>`, `User:CN=<username>` with TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The Secret holding the credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}
