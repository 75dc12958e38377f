//! What the console shows of one cluster, as JSON: pure. `collect` fills a
//! [`Facts`] from the admin client; [`snapshot`] turns it into the pages'
//! model, with the placement rule's target beside each partition's replicas
//! and each group's lag per partition.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use skein_client::{ClusterInfo, GroupDescription, GroupListing, OngoingReassignment, QuorumInfo, TopicInfo};
use skein_model::placement::{assign_replicas_rack_aware, RackedBroker};

/// Everything read from a cluster for one snapshot.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub cluster: Option<ClusterInfo>,
    pub topics: Vec<TopicInfo>,
    /// Each topic's configs that are not defaults.
    pub topic_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Each replica's size: (topic, partition) -> broker -> bytes.
    pub replica_sizes: BTreeMap<(String, i32), BTreeMap<i32, u64>>,
    pub groups: Vec<(GroupListing, Option<GroupDescription>)>,
    /// Each group's committed offsets.
    pub committed: BTreeMap<String, BTreeMap<(String, i32), i64>>,
    /// Log end offsets of the partitions groups have committed.
    pub end_offsets: BTreeMap<(String, i32), i64>,
    pub reassignments: Vec<OngoingReassignment>,
    pub quorum: Option<QuorumInfo>,
    pub transactions: Vec<TransactionRow>,
    /// What could not be read, by part ("groups: ...").
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Snapshot {
    pub cluster_id: String,
    pub controller: i32,
    /// When it was taken, ms since the epoch.
    pub taken_ms: u64,
    pub brokers: Vec<BrokerRow>,
    pub topics: Vec<TopicRow>,
    pub placement: Vec<PlacementTopic>,
    pub groups: Vec<GroupRow>,
    pub reassignments: Vec<MoveRow>,
    pub quorum: Option<QuorumView>,
    pub transactions: Vec<TransactionRow>,
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BrokerRow {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
    pub fenced: bool,
    pub controller: bool,
    pub partitions_led: usize,
    pub replicas: usize,
    pub under_replicated: usize,
    pub offline: usize,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TopicRow {
    pub name: String,
    pub internal: bool,
    pub partitions: usize,
    pub replication_factor: usize,
    pub under_replicated: usize,
    pub offline: usize,
    /// The largest replica of each partition, summed.
    pub bytes: u64,
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PlacementTopic {
    pub topic: String,
    pub partitions: Vec<PlacementRow>,
}

/// One partition across the brokers.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PlacementRow {
    pub partition: i32,
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Where the placement rule puts it over today's live brokers.
    pub target: Vec<i32>,
    /// Replicas being added and removed by a move in progress.
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
    /// Each replica's size.
    pub sizes: BTreeMap<i32, u64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GroupRow {
    pub group_id: String,
    pub state: String,
    pub protocol_type: String,
    pub coordinator: i32,
    pub members: Vec<MemberRow>,
    pub lag: Vec<LagRow>,
    pub total_lag: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MemberRow {
    pub member_id: String,
    pub client_id: String,
    pub host: String,
    pub assignment: Vec<(String, Vec<i32>)>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LagRow {
    pub topic: String,
    pub partition: i32,
    pub committed: i64,
    pub end: i64,
    pub lag: i64,
}

/// A partition being moved, with its bytes copied and left.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MoveRow {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct QuorumView {
    pub leader: i32,
    pub epoch: i32,
    pub high_watermark: i64,
    pub members: Vec<QuorumRow>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct QuorumRow {
    pub id: i32,
    pub role: &'static str,
    pub directory_id: String,
    pub log_end_offset: i64,
    pub lag: Option<i64>,
    pub endpoint: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TransactionRow {
    pub transactional_id: String,
    pub state: String,
    pub producer_id: i64,
    pub coordinator: i32,
    /// How long its transaction has been open, ms (Ongoing only).
    pub open_ms: Option<i64>,
    pub timeout_ms: Option<i32>,
    /// Open longer than its timeout: the coordinator should have aborted it.
    pub hanging: bool,
}

/// The placement rule's replicas for each partition of a topic of `rf`
/// replicas over `brokers` (live ones, with their racks).
pub fn targets(brokers: &[RackedBroker], partitions: usize, rf: usize) -> Vec<Vec<i32>> {
    assign_replicas_rack_aware(brokers, 0, partitions as i32, rf as i16).unwrap_or_default()
}

/// The pages' model of the facts, at `now_ms`.
pub fn snapshot(f: &Facts, now_ms: u64) -> Snapshot {
    let (cluster_id, controller, brokers) = match &f.cluster {
        Some(c) => (c.cluster_id.clone(), c.controller_id, c.brokers.clone()),
        None => (String::new(), -1, Vec::new()),
    };
    let live: Vec<RackedBroker> = brokers
        .iter()
        .filter(|b| !b.fenced)
        .map(|b| RackedBroker {
            id: b.id,
            rack: b.rack.clone(),
        })
        .collect();
    let moving: BTreeMap<(String, i32), &OngoingReassignment> = f
        .reassignments
        .iter()
        .map(|r| ((r.topic.clone(), r.partition), r))
        .collect();
    let size_of = |t: &str, p: i32| f.replica_sizes.get(&(t.to_string(), p));
    let mut placement = Vec::new();
    let mut topics = Vec::new();
    for t in &f.topics {
        let rf = t.partitions.iter().map(|p| p.replicas.len()).max().unwrap_or(0);
        // A partition being moved counts the replicas it keeps, not the extra ones.
        let rf = t
            .partitions
            .iter()
            .find(|p| !moving.contains_key(&(t.name.clone(), p.partition)))
            .map_or(rf, |p| p.replicas.len());
        let target = targets(&live, t.partitions.len(), rf);
        let rows: Vec<PlacementRow> = t
            .partitions
            .iter()
            .map(|p| {
                let m = moving.get(&(t.name.clone(), p.partition));
                PlacementRow {
                    partition: p.partition,
                    leader: p.leader,
                    replicas: p.replicas.clone(),
                    isr: p.isr.clone(),
                    target: target.get(p.partition as usize).cloned().unwrap_or_default(),
                    adding: m.map(|m| m.adding.clone()).unwrap_or_default(),
                    removing: m.map(|m| m.removing.clone()).unwrap_or_default(),
                    sizes: size_of(&t.name, p.partition).cloned().unwrap_or_default(),
                }
            })
            .collect();
        topics.push(TopicRow {
            name: t.name.clone(),
            internal: t.internal,
            partitions: t.partitions.len(),
            replication_factor: rf,
            under_replicated: t.partitions.iter().filter(|p| p.under_replicated()).count(),
            offline: t.partitions.iter().filter(|p| p.leader < 0).count(),
            bytes: t
                .partitions
                .iter()
                .filter_map(|p| size_of(&t.name, p.partition).and_then(|s| s.values().max().copied()))
                .sum(),
            configs: f.topic_configs.get(&t.name).cloned().unwrap_or_default(),
        });
        placement.push(PlacementTopic {
            topic: t.name.clone(),
            partitions: rows,
        });
    }
    let all_partitions = || f.topics.iter().flat_map(|t| t.partitions.iter().map(move |p| (t, p)));
    let broker_rows = brokers
        .iter()
        .map(|b| BrokerRow {
            id: b.id,
            host: b.host.clone(),
            port: b.port,
            rack: b.rack.clone(),
            fenced: b.fenced,
            controller: b.id == controller,
            partitions_led: all_partitions().filter(|(_, p)| p.leader == b.id).count(),
            replicas: all_partitions().filter(|(_, p)| p.replicas.contains(&b.id)).count(),
            under_replicated: all_partitions()
                .filter(|(_, p)| p.replicas.contains(&b.id) && p.under_replicated())
                .count(),
            offline: all_partitions()
                .filter(|(_, p)| p.replicas.contains(&b.id) && p.leader < 0)
                .count(),
            bytes: f.replica_sizes.values().filter_map(|s| s.get(&b.id)).sum(),
        })
        .collect();
    let groups = f
        .groups
        .iter()
        .map(|(g, d)| {
            let lag: Vec<LagRow> = f
                .committed
                .get(&g.group_id)
                .into_iter()
                .flatten()
                .map(|((topic, partition), &committed)| {
                    let end = f.end_offsets.get(&(topic.clone(), *partition)).copied().unwrap_or(-1);
                    LagRow {
                        topic: topic.clone(),
                        partition: *partition,
                        committed,
                        end,
                        lag: if end >= 0 && committed >= 0 {
                            (end - committed).max(0)
                        } else {
                            0
                        },
                    }
                })
                .collect();
            GroupRow {
                group_id: g.group_id.clone(),
                state: d.as_ref().map_or_else(|| g.state.clone(), |d| d.state.clone()),
                protocol_type: g.protocol_type.clone(),
                coordinator: g.coordinator,
                members: d
                    .iter()
                    .flat_map(|d| d.members.iter())
                    .map(|m| MemberRow {
                        member_id: m.member_id.clone(),
                        client_id: m.client_id.clone(),
                        host: m.client_host.clone(),
                        assignment: m.assignment.clone(),
                    })
                    .collect(),
                total_lag: lag.iter().map(|l| l.lag).sum(),
                lag,
            }
        })
        .collect();
    let reassignments = f
        .reassignments
        .iter()
        .map(|r| {
            let sizes = size_of(&r.topic, r.partition);
            let source = r
                .replicas
                .iter()
                .filter(|b| !r.adding.contains(b))
                .filter_map(|b| sizes.and_then(|s| s.get(b)))
                .max()
                .copied()
                .unwrap_or(0);
            let done = r
                .adding
                .iter()
                .map(|b| sizes.and_then(|s| s.get(b)).copied().unwrap_or(0).min(source))
                .sum();
            MoveRow {
                topic: r.topic.clone(),
                partition: r.partition,
                replicas: r.replicas.clone(),
                adding: r.adding.clone(),
                removing: r.removing.clone(),
                bytes_done: done,
                bytes_total: source * r.adding.len() as u64,
            }
        })
        .collect();
    let quorum = f.quorum.as_ref().map(|q| {
        let row = |m: &skein_client::QuorumMember, role: &'static str| QuorumRow {
            id: m.id,
            role: if role == "voter" && m.id == q.leader_id {
                "leader"
            } else {
                role
            },
            directory_id: m.directory_id.to_string(),
            log_end_offset: m.log_end_offset,
            lag: q.lag(m.id),
            endpoint: q.endpoints.get(&m.id).cloned(),
        };
        QuorumView {
            leader: q.leader_id,
            epoch: q.leader_epoch,
            high_watermark: q.high_watermark,
            members: q
                .voters
                .iter()
                .map(|m| row(m, "voter"))
                .chain(q.observers.iter().map(|m| row(m, "observer")))
                .collect(),
        }
    });
    Snapshot {
        cluster_id,
        controller,
        taken_ms: now_ms,
        brokers: broker_rows,
        topics,
        placement,
        groups,
        reassignments,
        quorum,
        transactions: f.transactions.clone(),
        errors: f.errors.clone(),
    }
}

/// The brokers a snapshot's placement map has columns for: every broker,
/// and any id a replica or target names.
pub fn placement_columns(s: &Snapshot) -> BTreeSet<i32> {
    s.brokers
        .iter()
        .map(|b| b.id)
        .chain(
            s.placement
                .iter()
                .flat_map(|t| t.partitions.iter().flat_map(|p| p.replicas.iter().chain(&p.target)))
                .copied(),
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use skein_client::{BrokerInfo, PartitionInfo};

    use super::*;

    fn broker(id: i32) -> BrokerInfo {
        BrokerInfo {
            id,
            host: "h".into(),
            port: 9092,
            rack: None,
            fenced: false,
        }
    }

    fn partition(p: i32, replicas: Vec<i32>, isr: Vec<i32>) -> PartitionInfo {
        PartitionInfo {
            partition: p,
            leader: replicas[0],
            leader_epoch: 0,
            replicas,
            isr,
            offline: vec![],
        }
    }

    fn facts() -> Facts {
        Facts {
            cluster: Some(ClusterInfo {
                cluster_id: "c".into(),
                controller_id: 0,
                brokers: (0..4).map(broker).collect(),
            }),
            topics: vec![TopicInfo {
                name: "t".into(),
                id: String::new(),
                internal: false,
                partitions: vec![
                    partition(0, vec![0, 1], vec![0, 1]),
                    partition(1, vec![1, 2], vec![1]),
                    partition(2, vec![2, 0, 3], vec![2, 0, 3]),
                ],
            }],
            reassignments: vec![OngoingReassignment {
                topic: "t".into(),
                partition: 2,
                replicas: vec![2, 0, 3],
                adding: vec![3],
                removing: vec![0],
            }],
            replica_sizes: BTreeMap::from([(("t".into(), 2), BTreeMap::from([(2, 1000), (0, 1000), (3, 250)]))]),
            ..Default::default()
        }
    }

    #[test]
    fn placement_shows_the_rule_s_target_beside_the_replicas_and_the_move() {
        let s = snapshot(&facts(), 1);
        let rows = &s.placement[0].partitions;
        // rf 2 over brokers 0..4: partition i on (i, i+1).
        assert_eq!(rows[0].target, vec![0, 1]);
        assert_eq!(rows[1].target, vec![1, 2]);
        assert_eq!(rows[2].target, vec![2, 3]);
        assert_eq!((rows[2].adding.clone(), rows[2].removing.clone()), (vec![3], vec![0]));
        assert_eq!(s.topics[0].replication_factor, 2);
        assert_eq!(s.topics[0].under_replicated, 1);
        assert_eq!(s.reassignments[0].bytes_done, 250);
        assert_eq!(s.reassignments[0].bytes_total, 1000);
        assert_eq!(placement_columns(&s), (0..4).collect());
    }

    #[test]
    fn brokers_count_what_they_lead_and_host() {
        let s = snapshot(&facts(), 1);
        let b1 = s.brokers.iter().find(|b| b.id == 1).unwrap();
        assert_eq!((b1.partitions_led, b1.replicas, b1.under_replicated), (1, 2, 1));
        assert!(s.brokers[0].controller);
    }

    #[test]
    fn lag_is_the_log_end_past_the_committed_offset() {
        let mut f = facts();
        f.groups = vec![(
            GroupListing {
                group_id: "g".into(),
                protocol_type: "consumer".into(),
                state: "Stable".into(),
                coordinator: 0,
            },
            None,
        )];
        f.committed = BTreeMap::from([(
            "g".to_string(),
            BTreeMap::from([(("t".to_string(), 0), 40), (("t".to_string(), 1), 10)]),
        )]);
        f.end_offsets = BTreeMap::from([(("t".to_string(), 0), 100), (("t".to_string(), 1), 10)]);
        let s = snapshot(&f, 1);
        assert_eq!(s.groups[0].total_lag, 60);
        assert_eq!(s.groups[0].lag.iter().map(|l| l.lag).collect::<Vec<_>>(), vec![60, 0]);
    }
}
