//! Reads a cluster for one snapshot with the admin client: read-only calls
//! (Describe*, List*, OffsetFetch, ListOffsets). A part that fails (not
//! authorized, a broker down) is named in `errors`; the rest is still shown.

use std::collections::{BTreeMap, BTreeSet};

use skein_client::{Admin, ConfigResource};

use crate::view::{Facts, TransactionRow};

/// At most this many groups are described per snapshot (the rest are listed).
const MAX_GROUPS: usize = 200;

pub async fn collect(admin: &Admin, now_ms: u64) -> Facts {
    let mut f = Facts::default();
    match admin.describe_cluster().await {
        Ok(c) => f.cluster = Some(c),
        Err(e) => {
            f.errors.push(format!("cluster: {e}"));
            return f;
        }
    }
    match admin.describe_topics(None).await {
        Ok(t) => f.topics = t,
        Err(e) => f.errors.push(format!("topics: {e}")),
    }
    f.topics.sort_by(|a, b| a.name.cmp(&b.name));
    for t in f.topics.iter().filter(|t| !t.internal) {
        match admin.describe_configs(&ConfigResource::Topic(t.name.clone())).await {
            Ok(configs) => {
                let set: BTreeMap<String, String> = configs
                    .into_iter()
                    .filter(|c| c.source_name() == "DYNAMIC_TOPIC_CONFIG")
                    .filter_map(|c| Some((c.name, c.value?)))
                    .collect();
                f.topic_configs.insert(t.name.clone(), set);
            }
            Err(e) => f.errors.push(format!("configs of {}: {e}", t.name)),
        }
    }
    let live: Vec<i32> = f
        .cluster
        .iter()
        .flat_map(|c| c.brokers.iter().filter(|b| !b.fenced).map(|b| b.id))
        .collect();
    for b in live {
        match admin.describe_log_dirs(b).await {
            Ok(sizes) => {
                for (tp, size) in sizes {
                    f.replica_sizes.entry(tp).or_default().insert(b, size.max(0) as u64);
                }
            }
            Err(e) => f.errors.push(format!("log dirs of broker {b}: {e}")),
        }
    }
    match admin.list_partition_reassignments().await {
        Ok(r) => f.reassignments = r,
        Err(e) => f.errors.push(format!("reassignments: {e}")),
    }
    match admin.describe_quorum().await {
        Ok(q) => f.quorum = Some(q),
        Err(e) => f.errors.push(format!("quorum: {e}")),
    }
    groups(admin, &mut f).await;
    transactions(admin, &mut f, now_ms).await;
    f
}

async fn groups(admin: &Admin, f: &mut Facts) {
    let mut listed = match admin.list_groups().await {
        Ok(g) => g,
        Err(e) => {
            f.errors.push(format!("groups: {e}"));
            return;
        }
    };
    listed.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    let mut partitions = BTreeSet::new();
    for (i, g) in listed.into_iter().enumerate() {
        let described = if i < MAX_GROUPS {
            admin.describe_group(&g.group_id).await.ok()
        } else {
            None
        };
        if i < MAX_GROUPS {
            match admin.committed_offsets(&g.group_id).await {
                Ok(c) => {
                    partitions.extend(c.keys().cloned());
                    f.committed.insert(g.group_id.clone(), c);
                }
                Err(e) => f.errors.push(format!("offsets of group {}: {e}", g.group_id)),
            }
        }
        f.groups.push((g, described));
    }
    if partitions.is_empty() {
        return;
    }
    let partitions: Vec<(String, i32)> = partitions.into_iter().collect();
    match admin.end_offsets(&partitions).await {
        Ok(e) => f.end_offsets = e,
        Err(e) => f.errors.push(format!("end offsets: {e}")),
    }
}

async fn transactions(admin: &Admin, f: &mut Facts, now_ms: u64) {
    let listed = match admin.list_transactions().await {
        Ok(t) => t,
        Err(e) => {
            f.errors.push(format!("transactions: {e}"));
            return;
        }
    };
    for t in listed {
        let (open_ms, timeout_ms) = if t.state == "Ongoing" {
            match admin.describe_transaction(&t.transactional_id).await {
                Ok(d) if d.start_time_ms >= 0 => (Some(now_ms as i64 - d.start_time_ms), Some(d.timeout_ms)),
                _ => (None, None),
            }
        } else {
            (None, None)
        };
        f.transactions.push(TransactionRow {
            hanging: matches!((open_ms, timeout_ms), (Some(o), Some(t)) if o > t as i64),
            transactional_id: t.transactional_id,
            state: t.state,
            producer_id: t.producer_id,
            coordinator: t.coordinator,
            open_ms,
            timeout_ms,
        });
    }
    f.transactions
        .sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
}
