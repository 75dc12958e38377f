//! skeinctl: everyday administration of a Skein (or any Kafka) cluster without a
//! JVM: topics, the cluster, consumer groups with lag, and partition
//! reassignment by the `(i+j) mod n` rule.
//!
//! Output is a table for people, or JSON (`--output json`) for scripts. Exit
//! codes: 0 success; 1 the cluster refused the operation (the Kafka error
//! code is in the message); 2 a usage error; 3 the cluster could not be
//! reached, or the operation timed out.

mod output;
mod quorum;
mod reassign;
mod security;
mod txn;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;
use skein_client::{Admin, AdminOptions, AlterOp, ClientSecurity, ConfigResource, Error, NewTopic};

use output::{Output, Table};

#[derive(Parser)]
#[command(name = "skeinctl", version, about = "Administer a Skein or Kafka cluster")]
struct Cli {
    /// Brokers to bootstrap from (host:port, comma-separated).
    #[arg(
        short = 'b',
        long,
        env = "SKEIN_BOOTSTRAP_SERVER",
        default_value = "localhost:9092",
        global = true
    )]
    bootstrap_server: String,
    /// table for people, json for scripts.
    #[arg(short, long, value_enum, default_value_t = Format::Table, global = true)]
    output: Format,
    /// Seconds an operation may take, retries included.
    #[arg(long, default_value_t = 60, global = true)]
    timeout: u64,
    /// Kafka client properties for a secured listener, as Kafka's tools take
    /// them: security.protocol, ssl.truststore.location (PEM),
    /// ssl.keystore.location (PEM, for mutual TLS), sasl.mechanism and
    /// sasl.jaas.config.
    #[arg(long, value_name = "FILE", env = "SKEIN_COMMAND_CONFIG", global = true)]
    command_config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Create, list, describe, configure, grow and delete topics.
    #[command(subcommand)]
    Topic(TopicCommand),
    /// The brokers, the controller and under-replicated partitions.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Consumer groups and their lag.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Move partitions to the (i+j) mod n placement over a broker set.
    #[command(subcommand)]
    Reassign(reassign::ReassignCommand),
    /// ACL bindings (with an authorizer on the brokers).
    #[command(subcommand)]
    Acl(security::AclCommand),
    /// SCRAM users.
    #[command(subcommand)]
    User(security::UserCommand),
    /// Client quotas: byte rates and request percentage per user and client id.
    #[command(subcommand)]
    Quota(security::QuotaCommand),
    /// Transactions: list, describe, find hanging ones, abort one.
    #[command(subcommand)]
    Txn(txn::TxnCommand),
    /// Serve the web console (read-only) for this cluster until stopped:
    /// brokers, topics, the placement map, groups and lag, moves, the quorum
    /// and transactions, at http://HOST:PORT/.
    Console {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
    },
}

#[derive(Subcommand)]
enum TopicCommand {
    /// Create a topic.
    Create {
        name: String,
        /// Partitions (the broker's num.partitions if not given).
        #[arg(short, long)]
        partitions: Option<i32>,
        /// Replicas of each partition (the broker's default.replication.factor if not given).
        #[arg(short, long)]
        replication_factor: Option<i16>,
        /// A topic config, key=value (repeatable).
        #[arg(short, long = "config", value_parser = key_value)]
        configs: Vec<(String, String)>,
        /// Check the request without creating the topic.
        #[arg(long)]
        validate_only: bool,
    },
    /// List topics.
    List {
        /// Include internal topics (__consumer_offsets).
        #[arg(long)]
        internal: bool,
    },
    /// Partitions, leaders, replicas and in-sync replicas of topics, and their configs.
    Describe { names: Vec<String> },
    /// Set or delete topic configs.
    AlterConfig {
        name: String,
        /// key=value to set (repeatable).
        #[arg(long = "set", value_parser = key_value)]
        set: Vec<(String, String)>,
        /// key to delete, back to the default (repeatable).
        #[arg(long = "delete")]
        delete: Vec<String>,
    },
    /// Raise a topic's partition count to COUNT.
    AddPartitions {
        name: String,
        #[arg(long)]
        count: i32,
    },
    /// Delete a topic.
    Delete { name: String },
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Cluster id, controller, brokers and under-replicated partitions.
    Describe,
    /// The metadata quorum: its leader, voters and observers with their log
    /// directories and how far each has replicated the metadata log.
    Quorum,
    /// Make a broker that follows the metadata log a voter (KIP-853), once it
    /// has caught up. One voter change at a time.
    AddVoter {
        id: i32,
        /// The node's log directory id (default: the one it runs with now).
        #[arg(long)]
        directory_id: Option<String>,
    },
    /// Stop a voter voting; it goes on following the metadata log while it runs.
    RemoveVoter {
        id: i32,
        /// Only if the voter has this directory id (default: any).
        #[arg(long)]
        directory_id: Option<String>,
    },
}

#[derive(Subcommand)]
enum GroupCommand {
    /// List consumer groups.
    List,
    /// A group's state, members and per-partition lag.
    Describe { group: String },
}

fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected key=value, got `{s}`")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("SKEINCTL_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let security = match cli.command_config.as_deref().map(command_config) {
        None => ClientSecurity::plaintext(),
        Some(Ok(s)) => s,
        Some(Err(e)) => {
            eprintln!("error: --command-config: {e}");
            return ExitCode::from(2);
        }
    };
    let admin = Admin::new(
        &cli.bootstrap_server,
        AdminOptions {
            client_id: "skeinctl".into(),
            request_timeout: Duration::from_secs(cli.timeout.clamp(1, 30)),
            timeout: Duration::from_secs(cli.timeout.max(1)),
            security,
        },
    );
    let out = Output::new(matches!(cli.output, Format::Json));
    let result = match cli.command {
        Command::Console { listen } => runtime.block_on(console(admin, &cli.bootstrap_server, &listen)),
        command => runtime.block_on(run(&admin, &out, command)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(exit_code(&e))
        }
    }
}

/// `skeinctl console`: the console's routes over this command line's admin client.
async fn console(admin: Admin, bootstrap: &str, listen: &str) -> Result<(), CliError> {
    let source = skein_console::SingleCluster {
        name: bootstrap.to_string(),
        bootstrap: bootstrap.to_string(),
        admin: std::sync::Arc::new(admin),
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| CliError::Usage(format!("--listen {listen}: {e}")))?;
    let address = listener
        .local_addr()
        .map_err(|e| CliError::Usage(format!("--listen {listen}: {e}")))?;
    eprintln!("console for {bootstrap} at http://{address}/ (read-only; Ctrl-C stops it)");
    axum::serve(listener, skein_console::router(std::sync::Arc::new(source)))
        .await
        .map_err(|e| CliError::Usage(format!("console: {e}")))
}

/// A Java properties file as Kafka's tools read `--command-config`: `key=value`
/// (or `key: value`) lines, `#` and `!` comments, a trailing `\` continues a
/// line. Errors name the file and the property, never a value.
fn command_config(path: &std::path::Path) -> Result<ClientSecurity, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut props = std::collections::BTreeMap::new();
    let mut pending = String::new();
    for line in text.lines() {
        let line = line.trim_start();
        if pending.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with('!')) {
            continue;
        }
        if let Some(cont) = line.strip_suffix('\\') {
            pending.push_str(cont);
            continue;
        }
        pending.push_str(line);
        let entry = std::mem::take(&mut pending);
        let split = entry.find(['=', ':']).unwrap_or(entry.len());
        let (key, value) = entry.split_at(split);
        let value = value.get(1..).unwrap_or_default();
        props.insert(key.trim().to_string(), value.trim().to_string());
    }
    ClientSecurity::from_properties(&props).map_err(|e| format!("{}: {e}", path.display()))
}

/// What went wrong, by exit code.
#[derive(Debug)]
pub(crate) enum CliError {
    /// A request the command line cannot express (exit 2, as clap's own errors).
    Usage(String),
    Admin(Error),
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        CliError::Admin(e)
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Usage(m) => f.write_str(m),
            CliError::Admin(e) => e.fmt(f),
        }
    }
}

/// 1 when the cluster refused, 2 for usage, 3 when it could not be reached in time.
fn exit_code(e: &CliError) -> u8 {
    match e {
        CliError::Usage(_) => 2,
        CliError::Admin(Error::Unreachable(_) | Error::Timeout(_) | Error::Io(_)) => 3,
        CliError::Admin(_) => 1,
    }
}

async fn run(admin: &Admin, out: &Output, command: Command) -> Result<(), CliError> {
    match command {
        Command::Topic(c) => topic(admin, out, c).await,
        Command::Cluster(ClusterCommand::Describe) => cluster_describe(admin, out).await,
        Command::Cluster(ClusterCommand::Quorum) => quorum::describe(admin, out).await,
        Command::Cluster(ClusterCommand::AddVoter { id, directory_id }) => {
            quorum::add_voter(admin, out, id, directory_id.as_deref()).await
        }
        Command::Cluster(ClusterCommand::RemoveVoter { id, directory_id }) => {
            quorum::remove_voter(admin, out, id, directory_id.as_deref()).await
        }
        Command::Group(GroupCommand::List) => group_list(admin, out).await,
        Command::Group(GroupCommand::Describe { group }) => group_describe(admin, out, &group).await,
        Command::Reassign(c) => reassign::run(admin, out, c).await,
        Command::Acl(c) => security::acl(admin, out, c).await,
        Command::User(c) => security::user(admin, out, c).await,
        Command::Quota(c) => security::quota(admin, out, c).await,
        Command::Txn(c) => txn::run(admin, out, c).await,
        // main serves it: it needs the admin client for as long as it runs.
        Command::Console { .. } => Err(CliError::Usage("console is served by main".into())),
    }
}

async fn topic(admin: &Admin, out: &Output, command: TopicCommand) -> Result<(), CliError> {
    match command {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
            validate_only,
        } => {
            let t = NewTopic {
                name: name.clone(),
                partitions,
                replication_factor,
                assignments: Vec::new(),
                configs: configs.into_iter().collect(),
            };
            admin.create_topic(&t, validate_only).await?;
            let verb = if validate_only { "would be created" } else { "created" };
            out.done(
                &format!("topic {name} {verb}"),
                json!({ "topic": name, "validate_only": validate_only }),
            );
        }
        TopicCommand::List { internal } => {
            let topics = admin.describe_topics(None).await?;
            let topics: Vec<_> = topics.into_iter().filter(|t| internal || !t.internal).collect();
            let mut table = Table::new(&["TOPIC", "PARTITIONS", "REPLICAS"]);
            for t in &topics {
                let rf = t.partitions.first().map_or(0, |p| p.replicas.len());
                table.row(vec![t.name.clone(), t.partitions.len().to_string(), rf.to_string()]);
            }
            out.print(
                table,
                json!(topics
                    .iter()
                    .map(|t| json!({
                        "name": t.name,
                        "partitions": t.partitions.len(),
                        "replication_factor": t.partitions.first().map_or(0, |p| p.replicas.len()),
                        "internal": t.internal,
                    }))
                    .collect::<Vec<_>>()),
            );
        }
        TopicCommand::Describe { names } => {
            let filter = (!names.is_empty()).then_some(names.as_slice());
            let topics = admin.describe_topics(filter).await?;
            let mut table = Table::new(&["TOPIC", "PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR", "OFFLINE"]);
            let mut docs = Vec::new();
            for t in &topics {
                for p in &t.partitions {
                    table.row(vec![
                        t.name.clone(),
                        p.partition.to_string(),
                        p.leader.to_string(),
                        p.leader_epoch.to_string(),
                        output::ids(&p.replicas),
                        output::ids(&p.isr),
                        output::ids(&p.offline),
                    ]);
                }
                let configs = admin.describe_configs(&ConfigResource::Topic(t.name.clone())).await?;
                docs.push(json!({
                    "name": t.name,
                    "id": t.id,
                    "internal": t.internal,
                    "partitions": t.partitions.iter().map(|p| json!({
                        "partition": p.partition,
                        "leader": p.leader,
                        "leader_epoch": p.leader_epoch,
                        "replicas": p.replicas,
                        "isr": p.isr,
                        "offline": p.offline,
                    })).collect::<Vec<_>>(),
                    "configs": configs.iter().map(|c| (c.name.clone(), json!({
                        "value": c.value, "source": c.source_name(),
                    }))).collect::<serde_json::Map<_, _>>(),
                }));
                if !out.json() {
                    let overrides: Vec<String> = configs
                        .iter()
                        .filter(|c| c.source == 1)
                        .map(|c| format!("{}={}", c.name, c.value.as_deref().unwrap_or("")))
                        .collect();
                    if !overrides.is_empty() {
                        table.note(format!("{}: {}", t.name, overrides.join(", ")));
                    }
                }
            }
            out.print(table, json!(docs));
        }
        TopicCommand::AlterConfig { name, set, delete } => {
            let ops: Vec<AlterOp> = set
                .iter()
                .map(|(k, v)| AlterOp::Set(k.clone(), v.clone()))
                .chain(delete.iter().map(|k| AlterOp::Delete(k.clone())))
                .collect();
            if ops.is_empty() {
                return Err(CliError::Usage(
                    "nothing to change: give --set key=value or --delete key".into(),
                ));
            }
            admin
                .incremental_alter_configs(&ConfigResource::Topic(name.clone()), &ops, false)
                .await?;
            out.done(
                &format!("topic {name} configs updated"),
                json!({ "topic": name, "set": set.iter().cloned().collect::<BTreeMap<_, _>>(), "deleted": delete }),
            );
        }
        TopicCommand::AddPartitions { name, count } => {
            admin.create_partitions(&name, count, false).await?;
            out.done(
                &format!("topic {name} has {count} partitions"),
                json!({ "topic": name, "partitions": count }),
            );
        }
        TopicCommand::Delete { name } => {
            admin.delete_topic(&name).await?;
            out.done(&format!("topic {name} deleted"), json!({ "topic": name }));
        }
    }
    Ok(())
}

async fn cluster_describe(admin: &Admin, out: &Output) -> Result<(), CliError> {
    let cluster = admin.describe_cluster().await?;
    let topics = admin.describe_topics(None).await?;
    let under: Vec<(String, i32, Vec<i32>, Vec<i32>)> = topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .filter(|p| p.under_replicated())
                .map(|p| (t.name.clone(), p.partition, p.replicas.clone(), p.isr.clone()))
        })
        .collect();
    let mut table = Table::new(&["BROKER", "HOST", "PORT", "RACK", "STATUS"]);
    for b in &cluster.brokers {
        let mut status = if b.fenced { "fenced" } else { "live" }.to_string();
        if b.id == cluster.controller_id {
            status.push_str(", controller");
        }
        table.row(vec![
            b.id.to_string(),
            b.host.clone(),
            b.port.to_string(),
            b.rack.clone().unwrap_or_else(|| "-".into()),
            status,
        ]);
    }
    table.note(format!("cluster id: {}", cluster.cluster_id));
    table.note(format!("under-replicated partitions: {}", under.len()));
    for (t, p, replicas, isr) in &under {
        table.note(format!(
            "  {t}-{p}: replicas {} isr {}",
            output::ids(replicas),
            output::ids(isr)
        ));
    }
    out.print(
        table,
        json!({
            "cluster_id": cluster.cluster_id,
            "controller_id": cluster.controller_id,
            "brokers": cluster.brokers.iter().map(|b| json!({
                "id": b.id, "host": b.host, "port": b.port, "rack": b.rack, "fenced": b.fenced,
            })).collect::<Vec<_>>(),
            "under_replicated_partitions": under.iter().map(|(t, p, r, i)| json!({
                "topic": t, "partition": p, "replicas": r, "isr": i,
            })).collect::<Vec<_>>(),
        }),
    );
    Ok(())
}

async fn group_list(admin: &Admin, out: &Output) -> Result<(), CliError> {
    let groups = admin.list_groups().await?;
    let mut table = Table::new(&["GROUP", "STATE", "PROTOCOL TYPE", "COORDINATOR"]);
    for g in &groups {
        table.row(vec![
            g.group_id.clone(),
            g.state.clone(),
            g.protocol_type.clone(),
            g.coordinator.to_string(),
        ]);
    }
    out.print(
        table,
        json!(groups
            .iter()
            .map(|g| json!({
                "group": g.group_id, "state": g.state, "protocol_type": g.protocol_type, "coordinator": g.coordinator,
            }))
            .collect::<Vec<_>>()),
    );
    Ok(())
}

async fn group_describe(admin: &Admin, out: &Output, group: &str) -> Result<(), CliError> {
    let desc = admin.describe_group(group).await?;
    let committed = admin.committed_offsets(group).await?;
    let partitions: Vec<(String, i32)> = committed.keys().cloned().collect();
    let ends = if partitions.is_empty() {
        BTreeMap::new()
    } else {
        admin.end_offsets(&partitions).await?
    };
    let mut table = Table::new(&["TOPIC", "PARTITION", "COMMITTED", "END", "LAG"]);
    let mut rows = Vec::new();
    let mut total = 0i64;
    for ((t, p), c) in &committed {
        let end = ends.get(&(t.clone(), *p)).copied();
        let lag = end.map(|e| (e - c).max(0));
        total += lag.unwrap_or(0);
        table.row(vec![
            t.clone(),
            p.to_string(),
            c.to_string(),
            end.map_or("-".into(), |e| e.to_string()),
            lag.map_or("-".into(), |l| l.to_string()),
        ]);
        rows.push(json!({ "topic": t, "partition": p, "committed": c, "end": end, "lag": lag }));
    }
    table.note(format!(
        "group {} is {} ({} members, coordinator {}); total lag {total}",
        desc.group_id,
        desc.state,
        desc.members.len(),
        desc.coordinator
    ));
    for m in &desc.members {
        table.note(format!(
            "  member {} ({} at {})",
            m.member_id, m.client_id, m.client_host
        ));
    }
    out.print(
        table,
        json!({
            "group": desc.group_id,
            "state": desc.state,
            "protocol_type": desc.protocol_type,
            "coordinator": desc.coordinator,
            "members": desc.members.iter().map(|m| json!({
                "member_id": m.member_id, "client_id": m.client_id, "client_host": m.client_host,
            })).collect::<Vec<_>>(),
            "partitions": rows,
            "total_lag": total,
        }),
    );
    Ok(())
}
