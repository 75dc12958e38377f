//! `skeinctl txn`: transactions, in the manner of Kafka's `kafka-transactions.sh`:
//! list the transactional ids, describe one, find a partition's hanging
//! transactions (producers with a transaction open longer than a limit), and
//! abort one by writing an abort marker through the partition's leader.

use clap::Subcommand;
use serde_json::json;
use skein_client::Admin;

use crate::output::{Output, Table};
use crate::CliError;

#[derive(Subcommand)]
pub enum TxnCommand {
    /// Transactional ids, their producer and state, and their coordinator.
    List,
    /// A transactional id's transaction: state, producer, timeout, partitions.
    Describe { transactional_id: String },
    /// The producers a partition's leader knows, with their open transactions.
    DescribeProducers {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        partition: i32,
    },
    /// Transactions open on a partition for longer than --max-age-ms (default
    /// transaction.max.timeout.ms, 15 minutes): what `abort` is for.
    FindHanging {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        partition: i32,
        #[arg(long, default_value_t = 900_000)]
        max_age_ms: i64,
    },
    /// Aborts a producer's open transaction on one partition (an abort marker
    /// from its leader; needs CLUSTER_ACTION). Take the producer id and epoch
    /// from `describe-producers`.
    Abort {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        partition: i32,
        #[arg(long)]
        producer_id: i64,
        #[arg(long)]
        producer_epoch: i16,
        #[arg(long, default_value_t = -1)]
        coordinator_epoch: i32,
    },
}

pub async fn run(admin: &Admin, out: &Output, command: TxnCommand) -> Result<(), CliError> {
    match command {
        TxnCommand::List => {
            let all = admin.list_transactions().await?;
            let mut table = Table::new(&["TRANSACTIONAL ID", "PRODUCER ID", "STATE", "COORDINATOR"]);
            for t in &all {
                table.row(vec![
                    t.transactional_id.clone(),
                    t.producer_id.to_string(),
                    t.state.clone(),
                    t.coordinator.to_string(),
                ]);
            }
            out.print(
                table,
                json!(all
                    .iter()
                    .map(
                        |t| json!({"transactional_id": t.transactional_id, "producer_id": t.producer_id,
                        "state": t.state, "coordinator": t.coordinator})
                    )
                    .collect::<Vec<_>>()),
            );
        }
        TxnCommand::Describe { transactional_id } => {
            let t = admin.describe_transaction(&transactional_id).await?;
            let partitions: Vec<String> = t.partitions.iter().map(|(t, p)| format!("{t}-{p}")).collect();
            let mut table = Table::new(&[
                "TRANSACTIONAL ID",
                "STATE",
                "PRODUCER ID",
                "EPOCH",
                "TIMEOUT MS",
                "START MS",
                "COORDINATOR",
                "PARTITIONS",
            ]);
            table.row(vec![
                t.transactional_id.clone(),
                t.state.clone(),
                t.producer_id.to_string(),
                t.producer_epoch.to_string(),
                t.timeout_ms.to_string(),
                t.start_time_ms.to_string(),
                t.coordinator.to_string(),
                partitions.join(","),
            ]);
            out.print(
                table,
                json!({"transactional_id": t.transactional_id, "state": t.state, "producer_id": t.producer_id,
                    "producer_epoch": t.producer_epoch, "timeout_ms": t.timeout_ms, "start_time_ms": t.start_time_ms,
                    "coordinator": t.coordinator, "partitions": partitions}),
            );
        }
        TxnCommand::DescribeProducers { topic, partition } => {
            producers(admin, out, &topic, partition, None).await?;
        }
        TxnCommand::FindHanging {
            topic,
            partition,
            max_age_ms,
        } => {
            producers(admin, out, &topic, partition, Some(max_age_ms)).await?;
        }
        TxnCommand::Abort {
            topic,
            partition,
            producer_id,
            producer_epoch,
            coordinator_epoch,
        } => {
            admin
                .abort_hanging_transaction(&topic, partition, producer_id, producer_epoch, coordinator_epoch)
                .await?;
            out.done(
                &format!("aborted producer {producer_id}'s transaction on {topic}-{partition}"),
                json!({"topic": topic, "partition": partition, "producer_id": producer_id, "aborted": true}),
            );
        }
    }
    Ok(())
}

/// A partition's producers; with `hanging`, only those whose transaction has
/// been open (by their last write) for longer than that many ms.
async fn producers(
    admin: &Admin,
    out: &Output,
    topic: &str,
    partition: i32,
    hanging: Option<i64>,
) -> Result<(), CliError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let all = admin.describe_producers(topic, partition).await?;
    let shown: Vec<_> = all
        .into_iter()
        .filter(|p| match hanging {
            None => true,
            Some(age) => p.current_txn_start_offset >= 0 && now - p.last_timestamp > age,
        })
        .collect();
    let mut table = Table::new(&[
        "PRODUCER ID",
        "EPOCH",
        "LAST SEQUENCE",
        "LAST TIMESTAMP",
        "OPEN TRANSACTION AT",
    ]);
    for p in &shown {
        table.row(vec![
            p.producer_id.to_string(),
            p.producer_epoch.to_string(),
            p.last_sequence.to_string(),
            p.last_timestamp.to_string(),
            if p.current_txn_start_offset >= 0 {
                p.current_txn_start_offset.to_string()
            } else {
                "-".into()
            },
        ]);
    }
    out.print(
        table,
        json!(shown
            .iter()
            .map(
                |p| json!({"producer_id": p.producer_id, "producer_epoch": p.producer_epoch,
                "last_sequence": p.last_sequence, "last_timestamp": p.last_timestamp,
                "current_txn_start_offset": p.current_txn_start_offset})
            )
            .collect::<Vec<_>>()),
    );
    Ok(())
}
