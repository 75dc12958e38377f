//! `skeinctl reassign`: plan the moves to the `(i+j) mod n` placement over a
//! broker set (skein-model's plan, the same the operator applies), execute
//! them, watch their progress in bytes, or cancel them.

use std::collections::{BTreeMap, BTreeSet};

use clap::Subcommand;
use serde_json::json;
use skein_client::Admin;
use skein_model::placement::RackedBroker;
use skein_model::plan::{plan, Assignments};

use crate::output::{ids, Output, Table};
use crate::CliError;

#[derive(Subcommand)]
pub enum ReassignCommand {
    /// Print the moves that put every partition on the (i+j) mod n placement
    /// over BROKERS, and the bytes each copies; --execute starts them.
    Plan {
        /// The target broker ids, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        brokers: Vec<i32>,
        /// Only these topics (comma-separated); all topics if not given.
        #[arg(long, value_delimiter = ',')]
        topics: Vec<String>,
        /// Start the reassignments.
        #[arg(long)]
        execute: bool,
    },
    /// Reassignments in progress, with the bytes copied so far.
    Status,
    /// Cancel every reassignment in progress: partitions keep their replica lists from before it.
    Cancel,
}

pub async fn run(admin: &Admin, out: &Output, command: ReassignCommand) -> Result<(), CliError> {
    match command {
        ReassignCommand::Plan {
            brokers,
            topics,
            execute,
        } => plan_command(admin, out, brokers, topics, execute).await,
        ReassignCommand::Status => status(admin, out).await,
        ReassignCommand::Cancel => cancel(admin, out).await,
    }
}

async fn plan_command(
    admin: &Admin,
    out: &Output,
    brokers: Vec<i32>,
    topics: Vec<String>,
    execute: bool,
) -> Result<(), CliError> {
    let cluster = admin.describe_cluster().await?;
    let live: BTreeSet<i32> = cluster.brokers.iter().filter(|b| !b.fenced).map(|b| b.id).collect();
    if let Some(b) = brokers.iter().find(|b| !live.contains(b)) {
        return Err(CliError::Usage(format!(
            "broker {b} is not a live broker of the cluster (live: {})",
            ids(&live.iter().copied().collect::<Vec<_>>())
        )));
    }
    let filter = (!topics.is_empty()).then_some(topics.as_slice());
    let current: Assignments = admin
        .describe_topics(filter)
        .await?
        .into_iter()
        .map(|t| (t.name, t.partitions.into_iter().map(|p| p.replicas).collect()))
        .collect();
    let sizes = admin.partition_sizes().await?;
    let racked: Vec<RackedBroker> = brokers
        .iter()
        .map(|&id| RackedBroker {
            id,
            rack: cluster.brokers.iter().find(|b| b.id == id).and_then(|b| b.rack.clone()),
        })
        .collect();
    let plan = plan(&current, &racked, &sizes).map_err(|e| CliError::Usage(e.to_string()))?;
    let mut table = Table::new(&["TOPIC", "PARTITION", "CURRENT", "TARGET", "ADDING", "REMOVING", "BYTES"]);
    for m in &plan.moves {
        table.row(vec![
            m.topic.clone(),
            m.partition.to_string(),
            ids(&m.current),
            ids(&m.target),
            ids(&m.adding),
            ids(&m.removing),
            m.bytes.map_or("-".into(), |b| b.to_string()),
        ]);
    }
    let total = plan.total_bytes();
    let partitions: usize = current.values().map(Vec::len).sum();
    table.note(format!(
        "{} of {partitions} partitions move; {} bytes to copy",
        plan.moves.len(),
        total.map_or("unknown".into(), |b| b.to_string())
    ));
    let mut started = 0;
    if execute && !plan.is_empty() {
        let changes: Vec<(String, i32, Option<Vec<i32>>)> = plan
            .moves
            .iter()
            .map(|m| (m.topic.clone(), m.partition, Some(m.target.clone())))
            .collect();
        let results = admin.alter_partition_reassignments(&changes).await?;
        let failed: Vec<String> = results
            .iter()
            .filter_map(|((t, p), r)| r.as_ref().err().map(|e| format!("{t}-{p}: {e}")))
            .collect();
        started = results.len() - failed.len();
        if !failed.is_empty() {
            return Err(CliError::Admin(skein_client::Error::Protocol(format!(
                "{started} reassignments started, {} refused: {}",
                failed.len(),
                failed.join("; ")
            ))));
        }
        table.note(format!(
            "started {started} reassignments; follow them with `skeinctl reassign status`"
        ));
    }
    out.print(
        table,
        json!({
            "brokers": brokers,
            "moves": plan.moves.iter().map(|m| json!({
                "topic": m.topic, "partition": m.partition, "current": m.current, "target": m.target,
                "adding": m.adding, "removing": m.removing, "bytes": m.bytes,
            })).collect::<Vec<_>>(),
            "partitions": partitions,
            "total_bytes": total,
            "executed": execute,
            "started": started,
        }),
    );
    Ok(())
}

async fn status(admin: &Admin, out: &Output) -> Result<(), CliError> {
    let ongoing = admin.list_partition_reassignments().await?;
    let sizes = admin.partition_sizes().await?;
    let mut on_broker: BTreeMap<i32, BTreeMap<(String, i32), i64>> = BTreeMap::new();
    for b in ongoing.iter().flat_map(|r| r.adding.iter()).collect::<BTreeSet<_>>() {
        on_broker.insert(*b, admin.describe_log_dirs(*b).await.unwrap_or_default());
    }
    let mut table = Table::new(&[
        "TOPIC",
        "PARTITION",
        "REPLICAS",
        "ADDING",
        "REMOVING",
        "COPIED",
        "TOTAL",
    ]);
    let mut docs = Vec::new();
    let (mut all_copied, mut all_total) = (0u64, 0u64);
    for r in &ongoing {
        let tp = (r.topic.clone(), r.partition);
        let size = sizes.get(&tp).copied().unwrap_or(0);
        let total = size * r.adding.len() as u64;
        let copied: u64 = r
            .adding
            .iter()
            .map(|b| {
                on_broker
                    .get(b)
                    .and_then(|s| s.get(&tp))
                    .copied()
                    .unwrap_or(0)
                    .clamp(0, size as i64) as u64
            })
            .sum();
        all_copied += copied;
        all_total += total;
        table.row(vec![
            r.topic.clone(),
            r.partition.to_string(),
            ids(&r.replicas),
            ids(&r.adding),
            ids(&r.removing),
            copied.to_string(),
            total.to_string(),
        ]);
        docs.push(json!({
            "topic": r.topic, "partition": r.partition, "replicas": r.replicas,
            "adding": r.adding, "removing": r.removing, "copied_bytes": copied, "total_bytes": total,
        }));
    }
    table.note(format!(
        "{} reassignments in progress; {all_copied} of {all_total} bytes copied",
        ongoing.len()
    ));
    out.print(
        table,
        json!({ "reassignments": docs, "copied_bytes": all_copied, "total_bytes": all_total }),
    );
    Ok(())
}

async fn cancel(admin: &Admin, out: &Output) -> Result<(), CliError> {
    let ongoing = admin.list_partition_reassignments().await?;
    let changes: Vec<(String, i32, Option<Vec<i32>>)> =
        ongoing.iter().map(|r| (r.topic.clone(), r.partition, None)).collect();
    let results = if changes.is_empty() {
        Vec::new()
    } else {
        admin.alter_partition_reassignments(&changes).await?
    };
    let failed: Vec<String> = results
        .iter()
        .filter_map(|((t, p), r)| r.as_ref().err().map(|e| format!("{t}-{p}: {e}")))
        .collect();
    if !failed.is_empty() {
        return Err(CliError::Admin(skein_client::Error::Protocol(format!(
            "could not cancel: {}",
            failed.join("; ")
        ))));
    }
    out.done(
        &format!("cancelled {} reassignments", results.len()),
        json!({ "cancelled": results.len() }),
    );
    Ok(())
}
