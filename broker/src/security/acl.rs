//! Kafka's ACLs and the StandardAuthorizer's decision, pure: bindings as the
//! CreateAcls/DescribeAcls/DeleteAcls APIs carry them (Kafka's codes for
//! resource types, pattern types, operations and permissions), filters, and
//! `authorize` with Kafka's rules: super users first, a matching DENY beats any
//! ALLOW, READ/WRITE/DELETE/ALTER imply DESCRIBE and ALTER_CONFIGS implies
//! DESCRIBE_CONFIGS, LITERAL, `*` and PREFIXED patterns, principal `User:*`
//! and host `*` wildcards, and `allow.everyone.if.no.acl.found` when no
//! binding names the resource at all.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

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

impl PatternType {
    pub fn from_code(code: i8) -> Option<PatternType> {
        match code {
            3 => Some(PatternType::Literal),
            4 => Some(PatternType::Prefixed),
            _ => None,
        }
    }
}

impl Permission {
    pub fn from_code(code: i8) -> Option<Permission> {
        match code {
            2 => Some(Permission::Deny),
            3 => Some(Permission::Allow),
            _ => None,
        }
    }
}

/// Kafka's code for "any" in a filter (resource type, pattern, operation, permission).
pub const ANY: i8 = 1;
/// Kafka's PatternType MATCH: the patterns that cover the filter's name.
pub const MATCH: i8 = 2;

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
        if self.resource_type == ResourceType::Cluster && self.resource_name != CLUSTER_NAME {
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

impl AclBinding {
    /// A binding from CreateAcls' fields: specific codes only (no ANY or MATCH).
    pub fn from_wire(
        resource_type: i8,
        resource_name: &str,
        pattern_type: i8,
        principal: &str,
        host: &str,
        operation: i8,
        permission: i8,
    ) -> Result<AclBinding, String> {
        let binding = AclBinding {
            resource_type: ResourceType::from_code(resource_type)
                .ok_or_else(|| format!("Invalid resource type {resource_type}"))?,
            resource_name: resource_name.to_string(),
            pattern_type: PatternType::from_code(pattern_type)
                .ok_or_else(|| format!("Invalid pattern type {pattern_type}: LITERAL (3) or PREFIXED (4)"))?,
            principal: principal.to_string(),
            host: host.to_string(),
            operation: Operation::from_code(operation)
                .filter(|_| operation != ANY)
                .ok_or_else(|| format!("Invalid operation {operation}"))?,
            permission: Permission::from_code(permission)
                .ok_or_else(|| format!("Invalid permission type {permission}: DENY (2) or ALLOW (3)"))?,
        };
        match binding.invalid() {
            Some(why) => Err(why.to_string()),
            None => Ok(binding),
        }
    }
}

impl AclFilter {
    /// A filter from DescribeAcls' and DeleteAcls' fields (ANY is 1, MATCH 2).
    pub fn from_wire(
        resource_type: i8,
        resource_name: Option<&str>,
        pattern_type: i8,
        principal: Option<&str>,
        host: Option<&str>,
        operation: i8,
        permission: i8,
    ) -> Result<AclFilter, String> {
        let resource_type = match resource_type {
            ANY => None,
            code => Some(ResourceType::from_code(code).ok_or_else(|| format!("Invalid resource type {code}"))?),
        };
        let pattern_type = match pattern_type {
            ANY => None,
            MATCH => Some(Err(())),
            code => Some(Ok(
                PatternType::from_code(code).ok_or_else(|| format!("Invalid pattern type {code}"))?
            )),
        };
        let operation = match operation {
            ANY => None,
            code => Some(Operation::from_code(code).ok_or_else(|| format!("Invalid operation {code}"))?),
        };
        let permission = match permission {
            ANY => None,
            code => Some(Permission::from_code(code).ok_or_else(|| format!("Invalid permission type {code}"))?),
        };
        Ok(AclFilter {
            resource_type,
            resource_name: resource_name.map(str::to_string),
            pattern_type,
            principal: principal.map(str::to_string),
            host: host.map(str::to_string),
            operation,
            permission,
        })
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

/// The class names `authorizer.class.name` accepts: Kafka's KRaft authorizer,
/// and its ZooKeeper-era one (configurations carried over name it); both get
/// the StandardAuthorizer's semantics over ACLs in the metadata log.
pub const AUTHORIZER_CLASS_NAMES: &[&str] = &[
    "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "kafka.security.authorizer.AclAuthorizer",
];

/// The operations each resource type supports (Kafka's
/// `AclEntry.supportedOperations`): what KIP-430's authorized operations list.
pub fn supported_operations(t: ResourceType) -> &'static [Operation] {
    use Operation::*;
    match t {
        ResourceType::Topic => &[
            Read,
            Write,
            Create,
            Describe,
            Delete,
            Alter,
            DescribeConfigs,
            AlterConfigs,
        ],
        ResourceType::Group => &[Read, Describe, Delete, DescribeConfigs, AlterConfigs],
        ResourceType::Cluster => &[
            Create,
            ClusterAction,
            DescribeConfigs,
            AlterConfigs,
            IdempotentWrite,
            Alter,
            Describe,
        ],
        ResourceType::TransactionalId => &[Describe, Write],
        ResourceType::DelegationToken => &[Describe],
        ResourceType::User => &[CreateTokens, DescribeTokens],
    }
}

/// Kafka's bit field of operation codes (`Utils.to32BitField`).
pub fn operations_bits(ops: impl IntoIterator<Item = Operation>) -> i32 {
    ops.into_iter().fold(0, |bits, op| bits | (1 << op.code()))
}

/// The bindings, indexed for the decision: literal names (and `*`) by exact
/// lookup, prefixes by looking up only the prefix lengths some binding has, so
/// a check costs a few hash lookups however many thousand bindings there are.
#[derive(Debug, Clone, Default)]
pub struct AclIndex {
    bindings: BTreeSet<AclBinding>,
    literal: HashMap<ResourceType, HashMap<String, Vec<AclBinding>>>,
    prefixed: HashMap<ResourceType, HashMap<String, Vec<AclBinding>>>,
    prefix_lens: HashMap<ResourceType, BTreeSet<usize>>,
}

impl PartialEq for AclIndex {
    fn eq(&self, other: &Self) -> bool {
        self.bindings == other.bindings
    }
}
impl Eq for AclIndex {}

impl AclIndex {
    pub fn new<'a>(bindings: impl IntoIterator<Item = &'a AclBinding>) -> AclIndex {
        let mut index = AclIndex::default();
        for b in bindings {
            index.bindings.insert(b.clone());
        }
        index.reindex();
        index
    }

    fn reindex(&mut self) {
        self.literal.clear();
        self.prefixed.clear();
        self.prefix_lens.clear();
        for b in &self.bindings {
            let by_name = match b.pattern_type {
                PatternType::Literal => self.literal.entry(b.resource_type).or_default(),
                PatternType::Prefixed => {
                    self.prefix_lens
                        .entry(b.resource_type)
                        .or_default()
                        .insert(b.resource_name.len());
                    self.prefixed.entry(b.resource_type).or_default()
                }
            };
            by_name.entry(b.resource_name.clone()).or_default().push(b.clone());
        }
    }

    /// Every binding, in order.
    pub fn bindings(&self) -> impl Iterator<Item = &AclBinding> {
        self.bindings.iter()
    }

    pub fn len(&self) -> usize {
        self.bindings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }

    /// A copy with `add` added and `remove` removed.
    pub fn changed(&self, add: &[AclBinding], remove: &[AclBinding]) -> AclIndex {
        let mut next = AclIndex {
            bindings: self.bindings.clone(),
            ..Default::default()
        };
        for b in remove {
            next.bindings.remove(b);
        }
        next.bindings.extend(add.iter().cloned());
        next.reindex();
        next
    }

    /// The bindings whose pattern covers the resource.
    fn covering<'a>(&'a self, t: ResourceType, name: &'a str) -> impl Iterator<Item = &'a AclBinding> + 'a {
        let literal = self.literal.get(&t);
        let exact = literal.and_then(|m| m.get(name)).into_iter().flatten();
        let wildcard = literal
            .filter(|_| name != "*")
            .and_then(|m| m.get("*"))
            .into_iter()
            .flatten();
        let prefixed = self.prefixed.get(&t);
        let by_prefix = self
            .prefix_lens
            .get(&t)
            .into_iter()
            .flatten()
            .take_while(move |&&len| len <= name.len())
            .filter(move |&&len| name.is_char_boundary(len))
            .filter_map(move |&len| prefixed.and_then(|m| m.get(&name[..len])))
            .flatten();
        exact.chain(wildcard).chain(by_prefix)
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
        for b in self.covering(resource_type, name) {
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

    /// Whether the principal may perform the operation on some resource of
    /// the type (Kafka's `authorizeByResourceType`, KIP-679: an idempotent
    /// producer needs WRITE on any topic): an ALLOW for it that no DENY of the
    /// same or a covering pattern takes back.
    pub fn authorize_any(
        &self,
        config: &AuthorizerConfig,
        principal: &str,
        host: &str,
        operation: Operation,
        resource_type: ResourceType,
    ) -> bool {
        if config.super_users.iter().any(|s| s == principal) {
            return true;
        }
        let of_type: Vec<&AclBinding> = self
            .bindings
            .iter()
            .filter(|b| b.resource_type == resource_type && b.applies_to(principal, host))
            .collect();
        let denied = |name: &str, pattern: PatternType| {
            of_type.iter().any(|d| {
                d.permission == Permission::Deny
                    && d.operation.denies(operation)
                    && match d.pattern_type {
                        PatternType::Literal => {
                            d.resource_name == "*" || (d.resource_name == name && pattern == PatternType::Literal)
                        }
                        PatternType::Prefixed => name.starts_with(&d.resource_name),
                    }
            })
        };
        let any_allowed = of_type.iter().any(|a| {
            a.permission == Permission::Allow
                && a.operation.allows(operation)
                && !denied(&a.resource_name, a.pattern_type)
        });
        any_allowed
            || (config.allow_everyone_if_no_acl_found
                && !self.bindings.iter().any(|b| b.resource_type == resource_type))
    }
}

/// The ACLs as the metadata image holds them: shared, copied on write, and
/// written to snapshots as the list of bindings (the index is rebuilt on load).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acls(pub Arc<AclIndex>);

impl Serialize for Acls {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.bindings())
    }
}

impl<'de> Deserialize<'de> for Acls {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Acls, D::Error> {
        let bindings = Vec::<AclBinding>::deserialize(d)?;
        Ok(Acls(Arc::new(AclIndex::new(&bindings))))
    }
}

/// One request's view of authorization: the ACLs as they stood when it
/// arrived, and who sent it from where. `open()` when no authorizer is
/// configured: everything is allowed, and authorized operations are every
/// operation the resource type supports (as Kafka without an authorizer).
#[derive(Debug, Clone)]
pub struct Authz {
    acls: Option<(Arc<AclIndex>, Arc<AuthorizerConfig>)>,
    principal: String,
    host: String,
}

impl Authz {
    pub fn open() -> Authz {
        Authz {
            acls: None,
            principal: String::new(),
            host: String::new(),
        }
    }

    pub fn new(acls: Arc<AclIndex>, config: Arc<AuthorizerConfig>, principal: String, host: String) -> Authz {
        Authz {
            acls: Some((acls, config)),
            principal,
            host,
        }
    }

    /// Whether an authorizer is configured (the ACL APIs answer SECURITY_DISABLED without one).
    pub fn enabled(&self) -> bool {
        self.acls.is_some()
    }

    pub fn allows(&self, operation: Operation, t: ResourceType, name: &str) -> bool {
        match &self.acls {
            None => true,
            Some((index, config)) => index.authorize(config, &self.principal, &self.host, operation, t, name),
        }
    }

    /// `operation` on the cluster resource (`kafka-cluster`).
    pub fn allows_cluster(&self, operation: Operation) -> bool {
        self.allows(operation, ResourceType::Cluster, CLUSTER_NAME)
    }

    pub fn allows_any(&self, operation: Operation, t: ResourceType) -> bool {
        match &self.acls {
            None => true,
            Some((index, config)) => index.authorize_any(config, &self.principal, &self.host, operation, t),
        }
    }

    /// KIP-430's authorized operations of a resource, as Kafka's bit field.
    pub fn operations(&self, t: ResourceType, name: &str) -> i32 {
        operations_bits(
            supported_operations(t)
                .iter()
                .copied()
                .filter(|&op| self.allows(op, t, name)),
        )
    }
}

/// The one name of the CLUSTER resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";

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

    #[test]
    fn the_index_finds_literal_wildcard_and_prefixed_bindings_among_thousands() {
        let mut acls: Vec<AclBinding> = (0..5000)
            .map(|i| {
                acl(
                    R::Topic,
                    &format!("t{i}"),
                    P::Literal,
                    &format!("User:u{i}"),
                    O::Write,
                    Allow,
                )
            })
            .collect();
        acls.push(acl(R::Topic, "app-", P::Prefixed, "User:app", O::Read, Allow));
        acls.push(acl(R::Topic, "app-secret", P::Prefixed, "User:app", O::Read, Deny));
        acls.push(acl(R::Topic, "*", P::Literal, "User:ops", O::Describe, Allow));
        let cfg = AuthorizerConfig::default();
        let idx = AclIndex::new(&acls);
        let ok = |who: &str, op, name: &str| idx.authorize(&cfg, who, "h", op, R::Topic, name);
        assert!(ok("User:u4999", O::Write, "t4999"));
        assert!(!ok("User:u4999", O::Write, "t4998"));
        assert!(ok("User:app", O::Read, "app-orders"));
        assert!(!ok("User:app", O::Read, "app-secret-keys")); // the longer prefix denies
        assert!(!ok("User:app", O::Read, "ap"));
        assert!(ok("User:ops", O::Describe, "t17"));
        assert!(ok("User:ops", O::Describe, "anything"));
        // Multi-byte names: prefixes are only looked up at character boundaries.
        assert!(!ok("User:app", O::Read, "appä")); // byte 4 is inside ä
                                                   // The index answers exactly as a scan of every binding would.
        let scan = |who: &str, op: Operation, name: &str| {
            let covering: Vec<&AclBinding> = acls.iter().filter(|b| b.covers(R::Topic, name)).collect();
            if covering
                .iter()
                .any(|b| b.applies_to(who, "h") && b.permission == Deny && b.operation.denies(op))
            {
                return false;
            }
            covering
                .iter()
                .any(|b| b.applies_to(who, "h") && b.permission == Allow && b.operation.allows(op))
        };
        for (who, op, name) in [
            ("User:u1", O::Write, "t1"),
            ("User:app", O::Read, "app-secret"),
            ("User:app", O::Describe, "app-x"),
            ("User:ops", O::Write, "t1"),
            ("User:u2", O::Describe, "t2"),
        ] {
            assert_eq!(ok(who, op, name), scan(who, op, name), "{who} {op:?} {name}");
        }
    }

    #[test]
    fn any_resource_of_a_type_as_kip_679_asks_for_idempotent_producers() {
        let cfg = AuthorizerConfig::default();
        let idx = AclIndex::new(&[
            acl(R::Topic, "orders", P::Literal, "User:alice", O::Write, Allow),
            acl(R::Topic, "logs-", P::Prefixed, "User:bob", O::Write, Allow),
            acl(R::Topic, "logs-", P::Prefixed, "User:bob", O::Write, Deny),
            acl(R::Topic, "x", P::Literal, "User:carol", O::All, Allow),
            acl(R::Topic, "*", P::Literal, "User:carol", O::Write, Deny),
        ]);
        assert!(idx.authorize_any(&cfg, "User:alice", "h", O::Write, R::Topic));
        assert!(!idx.authorize_any(&cfg, "User:alice", "h", O::Write, R::Group));
        assert!(!idx.authorize_any(&cfg, "User:bob", "h", O::Write, R::Topic)); // denied by the same prefix
        assert!(!idx.authorize_any(&cfg, "User:carol", "h", O::Write, R::Topic)); // denied everywhere
        assert!(!idx.authorize_any(&cfg, "User:dave", "h", O::Write, R::Topic));
    }

    #[test]
    fn authorized_operations_are_the_supported_ones_allowed() {
        let authz = Authz::new(
            Arc::new(AclIndex::new(&[acl(
                R::Topic,
                "t",
                P::Literal,
                "User:a",
                O::Write,
                Allow,
            )])),
            Arc::new(AuthorizerConfig::default()),
            "User:a".into(),
            "h".into(),
        );
        assert_eq!(authz.operations(R::Topic, "t"), (1 << 4) | (1 << 8)); // WRITE and the DESCRIBE it implies
        assert_eq!(authz.operations(R::Topic, "other"), 0);
        let open = Authz::open();
        assert!(!open.enabled());
        assert_eq!(
            open.operations(R::Group, "g"),
            (1 << 3) | (1 << 6) | (1 << 8) | (1 << 10) | (1 << 11)
        );
    }

    #[test]
    fn the_acls_of_an_image_serialize_as_their_bindings_and_index_again_on_load() {
        let a = Acls(Arc::new(AclIndex::new(&[
            acl(R::Topic, "t", P::Literal, "User:a", O::Read, Allow),
            acl(R::Group, "g-", P::Prefixed, "User:*", O::Read, Allow),
        ])));
        let json = serde_json::to_string(&a).unwrap();
        let back: Acls = serde_json::from_str(&json).unwrap();
        assert_eq!(a, back);
        let cfg = AuthorizerConfig::default();
        assert!(back.0.authorize(&cfg, "User:b", "h", O::Read, R::Group, "g-1"));
    }

    #[test]
    fn wire_codes_parse_into_bindings_and_filters_or_say_why_not() {
        assert!(AclBinding::from_wire(2, "t", 3, "User:a", "*", 3, 3).is_ok());
        assert!(AclBinding::from_wire(1, "t", 3, "User:a", "*", 3, 3).is_err()); // ANY resource type
        assert!(AclBinding::from_wire(2, "t", 2, "User:a", "*", 3, 3).is_err()); // MATCH
        assert!(AclBinding::from_wire(2, "t", 3, "User:a", "*", 1, 3).is_err()); // ANY operation
        assert!(AclBinding::from_wire(2, "t", 3, "User:a", "*", 3, 1).is_err()); // ANY permission
        assert!(AclBinding::from_wire(99, "t", 3, "User:a", "*", 3, 3).is_err());
        let f = AclFilter::from_wire(1, None, 1, None, None, 1, 1).unwrap();
        assert_eq!(f, AclFilter::default());
        assert!(
            AclFilter::from_wire(2, Some("t"), 2, None, None, 3, 3)
                .unwrap()
                .pattern_type
                == Some(Err(()))
        );
        assert!(AclFilter::from_wire(0, None, 1, None, None, 1, 1).is_err()); // UNKNOWN
    }
}
