//! `skeinctl acl`, `skeinctl user` and `skeinctl quota`: ACL bindings, SCRAM
//! users and client quotas, in the manner of Kafka's `kafka-acls.sh` and
//! `kafka-configs.sh --entity-type users|clients`.

use std::io::BufRead;

use clap::{Args, Subcommand};
use serde_json::json;
use skein_client::{acl_codes, AclEntry, AclFilterSpec, Admin, QuotaEntity};

use crate::output::{Output, Table};
use crate::CliError;

#[derive(Subcommand)]
pub enum AclCommand {
    /// Add a binding: PRINCIPAL may (or, with --deny, may not) OPERATION the resource.
    Create {
        #[command(flatten)]
        resource: Resource,
        /// The principal, e.g. User:alice (User:* for everyone).
        #[arg(long)]
        principal: String,
        /// Read, Write, Create, Delete, Alter, Describe, ClusterAction,
        /// DescribeConfigs, AlterConfigs, IdempotentWrite, All (repeatable).
        #[arg(long = "operation", required = true)]
        operations: Vec<String>,
        /// The client's address the binding is limited to.
        #[arg(long, default_value = "*")]
        host: String,
        /// A DENY binding (beats any ALLOW).
        #[arg(long)]
        deny: bool,
    },
    /// List bindings, all or those of a resource or principal.
    List {
        #[command(flatten)]
        resource: Resource,
        #[arg(long)]
        principal: Option<String>,
    },
    /// Remove the bindings of a resource or principal (at least one is needed).
    Delete {
        #[command(flatten)]
        resource: Resource,
        #[arg(long)]
        principal: Option<String>,
        #[arg(long = "operation")]
        operation: Option<String>,
    },
}

/// The resource of an ACL command: one of --topic, --group, --transactional-id, --cluster.
#[derive(Args)]
pub struct Resource {
    #[arg(long, group = "resource")]
    topic: Option<String>,
    #[arg(long, group = "resource")]
    group: Option<String>,
    #[arg(long, group = "resource")]
    transactional_id: Option<String>,
    /// The cluster resource (kafka-cluster).
    #[arg(long, group = "resource")]
    cluster: bool,
    /// The name is a prefix (PREFIXED) rather than a whole name (LITERAL).
    #[arg(long)]
    prefixed: bool,
}

impl Resource {
    /// (type, name), if one was given.
    fn get(&self) -> Option<(&'static str, String)> {
        if let Some(t) = &self.topic {
            Some(("Topic", t.clone()))
        } else if let Some(g) = &self.group {
            Some(("Group", g.clone()))
        } else if let Some(x) = &self.transactional_id {
            Some(("TransactionalId", x.clone()))
        } else if self.cluster {
            Some(("Cluster", "kafka-cluster".to_string()))
        } else {
            None
        }
    }

    fn pattern(&self) -> &'static str {
        if self.prefixed {
            "Prefixed"
        } else {
            "Literal"
        }
    }

    fn filter(&self) -> AclFilterSpec {
        let mut f = AclFilterSpec::default();
        if let Some((t, name)) = self.get() {
            f.resource_type = acl_codes::code(acl_codes::RESOURCE_TYPES, t);
            f.resource_name = Some(name);
            f.pattern_type = acl_codes::code(acl_codes::PATTERN_TYPES, self.pattern());
        }
        f
    }
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a SCRAM user, or change its password. The password is read
    /// from standard input (one line), or from --password.
    Create {
        name: String,
        #[arg(long, default_value = "SCRAM-SHA-512")]
        mechanism: String,
        #[arg(long, default_value_t = 4096)]
        iterations: i32,
        /// The password (visible to other users of this machine in the process list: prefer standard input).
        #[arg(long)]
        password: Option<String>,
    },
    /// List SCRAM users with their mechanisms and iterations.
    List,
    /// Delete a SCRAM user's credential for a mechanism.
    Delete {
        name: String,
        #[arg(long, default_value = "SCRAM-SHA-512")]
        mechanism: String,
    },
}

fn entries_table(entries: &[AclEntry]) -> (Table, serde_json::Value) {
    let mut table = Table::new(&[
        "PRINCIPAL",
        "HOST",
        "OPERATION",
        "PERMISSION",
        "RESOURCE",
        "NAME",
        "PATTERN",
    ]);
    for e in entries {
        table.row(vec![
            e.principal.clone(),
            e.host.clone(),
            e.operation.clone(),
            e.permission.clone(),
            e.resource_type.clone(),
            e.resource_name.clone(),
            e.pattern_type.clone(),
        ]);
    }
    let doc = json!(entries
        .iter()
        .map(|e| json!({
            "principal": e.principal, "host": e.host, "operation": e.operation, "permission": e.permission,
            "resource_type": e.resource_type, "resource_name": e.resource_name, "pattern_type": e.pattern_type,
        }))
        .collect::<Vec<_>>());
    (table, doc)
}

pub async fn acl(admin: &Admin, out: &Output, command: AclCommand) -> Result<(), CliError> {
    match command {
        AclCommand::Create {
            resource,
            principal,
            operations,
            host,
            deny,
        } => {
            let (t, name) = resource.get().ok_or_else(|| {
                CliError::Usage("name a resource: --topic, --group, --transactional-id or --cluster".into())
            })?;
            if !principal.contains(':') {
                return Err(CliError::Usage(format!(
                    "--principal {principal}: expected TYPE:NAME, e.g. User:alice"
                )));
            }
            let mut bindings = Vec::new();
            for op in &operations {
                let code = acl_codes::code(acl_codes::OPERATIONS, op)
                    .filter(|&c| c >= 2)
                    .ok_or_else(|| CliError::Usage(format!("--operation {op}: not an ACL operation")))?;
                bindings.push(AclEntry {
                    resource_type: t.into(),
                    resource_name: name.clone(),
                    pattern_type: resource.pattern().into(),
                    principal: principal.clone(),
                    host: host.clone(),
                    operation: acl_codes::name(acl_codes::OPERATIONS, code),
                    permission: if deny { "Deny" } else { "Allow" }.into(),
                });
            }
            admin.create_acls(&bindings).await?;
            let (_, doc) = entries_table(&bindings);
            out.done(
                &format!("created {} binding(s) for {principal} on {t} {name}", bindings.len()),
                doc,
            );
            Ok(())
        }
        AclCommand::List { resource, principal } => {
            let mut f = resource.filter();
            f.principal = principal;
            let mut entries = admin.describe_acls(&f).await?;
            entries.sort();
            let (table, doc) = entries_table(&entries);
            out.print(table, doc);
            Ok(())
        }
        AclCommand::Delete {
            resource,
            principal,
            operation,
        } => {
            if resource.get().is_none() && principal.is_none() {
                return Err(CliError::Usage(
                    "name what to delete: a resource (--topic, --group, --transactional-id, --cluster) and/or --principal".into(),
                ));
            }
            let mut f = resource.filter();
            f.principal = principal;
            if let Some(op) = operation {
                f.operation = Some(
                    acl_codes::code(acl_codes::OPERATIONS, &op)
                        .ok_or_else(|| CliError::Usage(format!("--operation {op}: not an ACL operation")))?,
                );
            }
            let mut deleted = admin.delete_acls(&f).await?;
            deleted.sort();
            let (_, doc) = entries_table(&deleted);
            out.done(&format!("deleted {} binding(s)", deleted.len()), doc);
            Ok(())
        }
    }
}

pub async fn user(admin: &Admin, out: &Output, command: UserCommand) -> Result<(), CliError> {
    match command {
        UserCommand::Create {
            name,
            mechanism,
            iterations,
            password,
        } => {
            let password = match password {
                Some(p) => p,
                None => {
                    let mut line = String::new();
                    std::io::stdin()
                        .lock()
                        .read_line(&mut line)
                        .map_err(|e| CliError::Usage(format!("cannot read the password from standard input: {e}")))?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            if password.is_empty() {
                return Err(CliError::Usage("the password is empty".into()));
            }
            admin
                .upsert_scram_credential(&name, &mechanism, &password, iterations)
                .await?;
            out.done(
                &format!("user {name}: {mechanism} credential set ({iterations} iterations)"),
                json!({"user": name, "mechanism": mechanism, "iterations": iterations}),
            );
            Ok(())
        }
        UserCommand::List => {
            let users = admin.describe_scram_credentials(None).await?;
            let mut table = Table::new(&["USER", "MECHANISM", "ITERATIONS"]);
            for u in &users {
                table.row(vec![u.user.clone(), u.mechanism.clone(), u.iterations.to_string()]);
            }
            out.print(
                table,
                json!(users
                    .iter()
                    .map(|u| json!({"user": u.user, "mechanism": u.mechanism, "iterations": u.iterations}))
                    .collect::<Vec<_>>()),
            );
            Ok(())
        }
        UserCommand::Delete { name, mechanism } => {
            admin.delete_scram_credential(&name, &mechanism).await?;
            out.done(
                &format!("user {name}: {mechanism} credential deleted"),
                json!({"user": name, "mechanism": mechanism}),
            );
            Ok(())
        }
    }
}

/// The entity of a quota command, as `kafka-configs.sh` names it.
#[derive(Args)]
pub struct QuotaEntityArgs {
    /// A user (the principal's name, e.g. alice; ANONYMOUS without authentication).
    #[arg(long, group = "user_entity")]
    user: Option<String>,
    /// The default for users without a quota of their own.
    #[arg(long, group = "user_entity")]
    user_defaults: bool,
    /// A client id (the client's client.id).
    #[arg(long, group = "client_entity")]
    client_id: Option<String>,
    /// The default for client ids without a quota of their own.
    #[arg(long, group = "client_entity")]
    client_defaults: bool,
}

impl QuotaEntityArgs {
    fn entity(&self) -> QuotaEntity {
        let part = |name: &Option<String>, default: bool| match (name, default) {
            (Some(n), _) => Some(Some(n.clone())),
            (None, true) => Some(None),
            (None, false) => None,
        };
        QuotaEntity {
            user: part(&self.user, self.user_defaults),
            client_id: part(&self.client_id, self.client_defaults),
        }
    }
}

#[derive(Subcommand)]
pub enum QuotaCommand {
    /// Set or remove quotas of a user, a client id, or a user's client id:
    /// producer_byte_rate and consumer_byte_rate (bytes per second, per
    /// broker), request_percentage (percent of one request thread).
    Set {
        #[command(flatten)]
        entity: QuotaEntityArgs,
        /// key=value[,key=value...], e.g. producer_byte_rate=1048576
        #[arg(long)]
        add_config: Option<String>,
        /// key[,key...] to remove
        #[arg(long)]
        delete_config: Option<String>,
    },
    /// List quotas: all, or those of the named user and/or client id.
    List {
        #[command(flatten)]
        entity: QuotaEntityArgs,
    },
}

pub async fn quota(admin: &Admin, out: &Output, command: QuotaCommand) -> Result<(), CliError> {
    match command {
        QuotaCommand::Set {
            entity,
            add_config,
            delete_config,
        } => {
            let entity = entity.entity();
            if entity.components().is_empty() {
                return Err(CliError::Usage(
                    "name the entity: --user/--user-defaults and/or --client-id/--client-defaults".into(),
                ));
            }
            let mut ops: Vec<(String, Option<f64>)> = Vec::new();
            for pair in add_config.iter().flat_map(|s| s.split(',')).filter(|p| !p.is_empty()) {
                let (key, value) = pair
                    .split_once('=')
                    .ok_or_else(|| CliError::Usage(format!("--add-config {pair}: expected key=value")))?;
                let value: f64 = value
                    .trim()
                    .parse()
                    .map_err(|_| CliError::Usage(format!("--add-config {pair}: {value} is not a number")))?;
                ops.push((key.trim().to_string(), Some(value)));
            }
            for key in delete_config
                .iter()
                .flat_map(|s| s.split(','))
                .filter(|k| !k.is_empty())
            {
                ops.push((key.trim().to_string(), None));
            }
            if ops.is_empty() {
                return Err(CliError::Usage(
                    "nothing to change: give --add-config and/or --delete-config".into(),
                ));
            }
            admin.alter_client_quotas(&entity, &ops, false).await?;
            out.done(
                &format!("quotas of {entity} updated"),
                json!({"entity": entity.to_string(), "changes": ops.iter().map(|(k, v)| json!({"key": k, "value": v})).collect::<Vec<_>>()}),
            );
            Ok(())
        }
        QuotaCommand::List { entity } => {
            let entries = admin.describe_client_quotas(&entity.entity()).await?;
            let mut table = Table::new(&["ENTITY", "QUOTA", "VALUE"]);
            let mut doc = Vec::new();
            for e in &entries {
                for (k, v) in &e.values {
                    table.row(vec![e.entity.to_string(), k.clone(), v.to_string()]);
                }
                doc.push(json!({"entity": e.entity.to_string(), "quotas": e.values}));
            }
            out.print(table, json!(doc));
            Ok(())
        }
    }
}
