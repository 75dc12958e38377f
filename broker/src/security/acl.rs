//! Kafka's ACLs and the StandardAuthorizer's decision, pure: bindings as the
//! CreateAcls/DescribeAcls/DeleteAcls APIs carry them (Kafka's codes for
//! resource types, pattern types, operations and permissions), filters, and
//! `authorize` with Kafka's rules: super users first, a matching DENY beats any
//! ALLOW, READ/WRITE/DELETE/ALTER imply DESCRIBE and ALTER_CONFIGS implies
//! DESCRIBE_CONFIGS, LITERAL, `*` and PREFIXED patterns, principal `User:*`
//! and host `*` wildcards, and `allow.everyone.if.no.acl.found` when no
//! binding names the resource at all.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Kafka's ResourceType codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ResourceType {
    Topic,
    Group,
    Cluster,
    TransactionalId,
    DelegationToken,
    User,
}

impl ResourceType {
    pub fn code(self) -> i8 {
        match self {
            ResourceType::Topic => 2,
            ResourceType::Group => 3,
            ResourceType::Cluster => 4,
            ResourceType::TransactionalId => 5,
            ResourceType::DelegationToken => 6,
            ResourceType::User => 7,
        }
    }

    pub fn from_code(code: i8) -> Option<ResourceType> {
        Some(match code {
            2 => ResourceType::Topic,
            3 => ResourceType::Group,
            4 => ResourceType::Cluster,
            5 => ResourceType::TransactionalId,
            6 => ResourceType::DelegationToken,
            7 => ResourceType::User,
            _ => return None,
        })
    }
}

/// Kafka's PatternType codes for a binding (MATCH and ANY only filter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PatternType {
    Literal,
    Prefixed,
}

impl PatternType {
    pub fn code(self) -> i8 {
        match self {
            PatternType::Literal => 3,
            PatternType::Prefixed => 4,
        }
    }
}

/// Kafka's AclOperation codes (ANY only filters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Operation {
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
    CreateTokens,
    DescribeTokens,
}

impl Operation {
    pub fn code(self) -> i8 {
        match self {
            Operation::All => 2,
            Operation::Read => 3,
            Operation::Write => 4,
            Operation::Create => 5,
            Operation::Delete => 6,
            Operation::Alter => 7,
            Operation::Describe => 8,
            Operation::ClusterAction => 9,
            Operation::DescribeConfigs => 10,
            Operation::AlterConfigs => 11,
            Operation::IdempotentWrite => 12,
            Operation::CreateTokens => 13,
            Operation::DescribeTokens => 14,
        }
    }

    pub fn from_code(code: i8) -> Option<Operation> {
        Some(match code {
            2 => Operation::All,
            3 => Operation::Read,
            4 => Operation::Write,
            5 => Operation::Create,
            6 => Operation::Delete,
            7 => Operation::Alter,
            8 => Operation::Describe,
            9 => Operation::ClusterAction,
            10 => Operation::DescribeConfigs,
            11 => Operation::AlterConfigs,
            12 => Operation::IdempotentWrite,
            13 => Operation::CreateTokens,
            14 => Operation::DescribeTokens,
            _ => return None,
        })
    }

    /// Whether an ALLOW of `self` allows `wanted` (Kafka's implied operations).
    fn allows(self, wanted: Operation) -> bool {
        self == wanted
            || self == Operation::All
            || (wanted == Operation::Describe
                && matches!(
                    self,
                    Operation::Read | Operation::Write | Operation::Delete | Operation::Alter
                ))
            || (wanted == Operation::DescribeConfigs && self == Operation::AlterConfigs)
    }

    /// Whether a DENY of `self` denies `wanted` (no implication: only itself and ALL).
    fn denies(self, wanted: Operation) -> bool {
        self == wanted || self == Operation::All
    }
}

/// Kafka's AclPermissionType codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Permission {
    Deny,
    Allow,
}

impl Permission {
    pub fn code(self) -> i8 {
        match self {
            Permission::Deny => 2,
            Permission::Allow => 3,
        }
    }
}

/// One ACL: who may (or may not) do what to which resources, from where.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    /// `User:alice`, or `User:*` for everyone.
    pub principal: String,
    /// An IP address, or `*`.
    pub host: String,
    pub operation: Operation,
    pub permission: Permission,
}

impl AclBinding {
    /// Whether the binding's pattern covers a resource of that type and name.
    fn covers(&self, resource_type: ResourceType, name: &str) -> bool {
        self.resource_type == resource_type
            && match self.pattern_type {
                PatternType::Literal => self.resource_name == name || self.resource_name == "*",
                PatternType::Prefixed => name.starts_with(&self.resource_name),
            }
    }

    /// Whether the binding applies to this principal from this host.
    fn applies_to(&self, principal: &str, host: &str) -> bool {
        (self.principal == principal || self.principal == "User:*") && (self.host == host || self.host == "*")
    }

    /// Why a binding cannot be created (Kafka's InvalidRequest cases), if it cannot.
    pub fn invalid(&self) -> Option<&'static str> {
        if self.resource_name.is_empty() {
            return Some("Resource name must not be empty");
        }
        if self.resource_type == ResourceType::Cluster && self.resource_name != "kafka-cluster" {
            return Some("The only valid name for the CLUSTER resource is kafka-cluster");
        }
        if self.pattern_type == PatternType::Prefixed && self.resource_name == "*" {
            return Some("A PREFIXED pattern cannot be the wildcard *");
        }
        match self.principal.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => None,
            _ => Some("Principal must be of the form TYPE:NAME, e.g. User:alice"),
        }
    }
}

/// A filter as DescribeAcls and DeleteAcls take it: each field `None` for ANY.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: Option<ResourceType>,
    pub resource_name: Option<String>,
    /// `None`: ANY; `Some(Err(()))`: MATCH (the patterns that would cover the name).
    pub pattern_type: Option<Result<PatternType, ()>>,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<Operation>,
    pub permission: Option<Permission>,
}

impl AclFilter {
    pub fn matches(&self, b: &AclBinding) -> bool {
        let name_ok = match (&self.pattern_type, &self.resource_name) {
            (Some(Err(())), Some(name)) => b.covers(b.resource_type, name),
            (_, Some(name)) => &b.resource_name == name,
            (_, None) => true,
        };
        self.resource_type.is_none_or(|t| t == b.resource_type)
            && name_ok
            && self.pattern_type.is_none_or(|p| p.is_err() || p == Ok(b.pattern_type))
            && self.principal.as_ref().is_none_or(|p| p == &b.principal)
            && self.host.as_ref().is_none_or(|h| h == &b.host)
            && self.operation.is_none_or(|o| o == b.operation)
            && self.permission.is_none_or(|p| p == b.permission)
    }
}

/// What decides without bindings: `super.users` and `allow.everyone.if.no.acl.found`.
#[derive(Debug, Clone, Default)]
pub struct AuthorizerConfig {
    pub super_users: Vec<String>,
    pub allow_everyone_if_no_acl_found: bool,
}

/// The bindings, indexed by resource type for the decision.
#[derive(Debug, Clone, Default)]
pub struct AclIndex {
    by_type: BTreeMap<ResourceType, Vec<AclBinding>>,
}

impl AclIndex {
    pub fn new<'a>(bindings: impl IntoIterator<Item = &'a AclBinding>) -> AclIndex {
        let mut by_type: BTreeMap<ResourceType, Vec<AclBinding>> = BTreeMap::new();
        for b in bindings {
            by_type.entry(b.resource_type).or_default().push(b.clone());
        }
        AclIndex { by_type }
    }

    /// The StandardAuthorizer's decision for one operation on one resource.
    pub fn authorize(
        &self,
        config: &AuthorizerConfig,
        principal: &str,
        host: &str,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        if config.super_users.iter().any(|s| s == principal) {
            return true;
        }
        let mut any_for_resource = false;
        let mut allowed = false;
        for b in self.by_type.get(&resource_type).into_iter().flatten() {
            if !b.covers(resource_type, name) {
                continue;
            }
            any_for_resource = true;
            if !b.applies_to(principal, host) {
                continue;
            }
            match b.permission {
                Permission::Deny if b.operation.denies(operation) => return false,
                Permission::Allow if b.operation.allows(operation) => allowed = true,
                _ => {}
            }
        }
        allowed || (!any_for_resource && config.allow_everyone_if_no_acl_found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(t: ResourceType, name: &str, p: PatternType, who: &str, op: Operation, perm: Permission) -> AclBinding {
        AclBinding {
            resource_type: t,
            resource_name: name.into(),
            pattern_type: p,
            principal: who.into(),
            host: "*".into(),
            operation: op,
            permission: perm,
        }
    }

    use Operation as O;
    use PatternType as P;
    use Permission::{Allow, Deny};
    use ResourceType as R;

    fn decide(
        acls: &[AclBinding],
        cfg: &AuthorizerConfig,
        who: &str,
        op: Operation,
        t: ResourceType,
        name: &str,
    ) -> bool {
        AclIndex::new(acls).authorize(cfg, who, "10.0.0.1", op, t, name)
    }

    #[test]
    fn kafka_s_rules_row_by_row() {
        let cfg = AuthorizerConfig::default();
        let acls = [
            acl(R::Topic, "orders", P::Literal, "User:alice", O::Read, Allow),
            acl(R::Topic, "logs-", P::Prefixed, "User:bob", O::Write, Allow),
            acl(R::Topic, "*", P::Literal, "User:carol", O::All, Allow),
            acl(R::Topic, "secret", P::Literal, "User:carol", O::Read, Deny),
            acl(R::Group, "g", P::Literal, "User:*", O::Read, Allow),
            acl(R::Topic, "cfg", P::Literal, "User:dave", O::AlterConfigs, Allow),
        ];
        let cases = [
            ("User:alice", O::Read, R::Topic, "orders", true),
            ("User:alice", O::Describe, R::Topic, "orders", true), // READ implies DESCRIBE
            ("User:alice", O::Write, R::Topic, "orders", false),
            ("User:alice", O::Read, R::Topic, "orders2", false), // LITERAL is exact
            ("User:bob", O::Write, R::Topic, "logs-app", true),  // PREFIXED
            ("User:bob", O::Write, R::Topic, "log", false),
            ("User:carol", O::Delete, R::Topic, "anything", true), // * and ALL
            ("User:carol", O::Read, R::Topic, "secret", false),    // DENY beats ALLOW
            ("User:carol", O::Describe, R::Topic, "secret", true), // a DENY of READ is not a DENY of DESCRIBE
            ("User:anyone", O::Read, R::Group, "g", true),         // User:*
            ("User:anyone", O::Read, R::Topic, "orders", false),
            ("User:dave", O::DescribeConfigs, R::Topic, "cfg", true), // ALTER_CONFIGS implies DESCRIBE_CONFIGS
            ("User:dave", O::Describe, R::Topic, "cfg", false),
            ("User:alice", O::Read, R::Topic, "no-acls-here", false), // deny by default
        ];
        for (who, op, t, name, want) in cases {
            assert_eq!(decide(&acls, &cfg, who, op, t, name), want, "{who} {op:?} {t:?} {name}");
        }
    }

    #[test]
    fn super_users_and_allow_if_no_acl_found() {
        let acls = [acl(R::Topic, "t", P::Literal, "User:alice", O::Read, Deny)];
        let cfg = AuthorizerConfig {
            super_users: vec!["User:admin".into()],
            allow_everyone_if_no_acl_found: true,
        };
        assert!(decide(&acls, &cfg, "User:admin", O::Read, R::Topic, "t"));
        // No binding names "other": everyone may.
        assert!(decide(&acls, &cfg, "User:bob", O::Write, R::Topic, "other"));
        // A binding names "t" (for alice only): bob has none, so no.
        assert!(!decide(&acls, &cfg, "User:bob", O::Read, R::Topic, "t"));
    }

    #[test]
    fn hosts_narrow_a_binding() {
        let mut b = acl(R::Topic, "t", P::Literal, "User:alice", O::Read, Allow);
        b.host = "10.0.0.1".into();
        let idx = AclIndex::new([&b]);
        let cfg = AuthorizerConfig::default();
        assert!(idx.authorize(&cfg, "User:alice", "10.0.0.1", O::Read, R::Topic, "t"));
        assert!(!idx.authorize(&cfg, "User:alice", "10.0.0.2", O::Read, R::Topic, "t"));
    }

    #[test]
    fn filters_match_as_describe_and_delete_acls_do() {
        let a = acl(R::Topic, "logs-", P::Prefixed, "User:bob", O::Write, Allow);
        let any = AclFilter::default();
        assert!(any.matches(&a));
        let matching = AclFilter {
            resource_type: Some(R::Topic),
            resource_name: Some("logs-app".into()),
            pattern_type: Some(Err(())),
            ..Default::default()
        };
        assert!(matching.matches(&a));
        let literal = AclFilter {
            resource_name: Some("logs-app".into()),
            pattern_type: Some(Ok(P::Literal)),
            ..Default::default()
        };
        assert!(!literal.matches(&a));
        assert!(!AclFilter {
            principal: Some("User:alice".into()),
            ..Default::default()
        }
        .matches(&a));
    }

    #[test]
    fn invalid_bindings_are_named() {
        assert!(acl(R::Cluster, "other", P::Literal, "User:a", O::Alter, Allow)
            .invalid()
            .is_some());
        assert!(acl(R::Topic, "*", P::Prefixed, "User:a", O::Read, Allow)
            .invalid()
            .is_some());
        assert!(acl(R::Topic, "t", P::Literal, "alice", O::Read, Allow)
            .invalid()
            .is_some());
        assert!(acl(R::Topic, "t", P::Literal, "User:a", O::Read, Allow)
            .invalid()
            .is_none());
    }
}
