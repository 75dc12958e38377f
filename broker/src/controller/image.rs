//! The cluster metadata image and the commands that change it: a pure state
//! machine. The Raft log is a sequence of [`Command`]s; every broker applies the
//! committed ones in order with [`MetadataImage::apply`] and so holds the same
//! image. No I/O and no clock here: time-based decisions (fencing) are made by
//! the active controller, which then proposes a command.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use skein_model::placement;

use crate::security::acl::{AclBinding, Acls};
use crate::security::scram::{Mechanism, ScramCredential};

/// A leader id meaning "no leader" (Kafka's -1).
pub const NO_LEADER: i32 = -1;
/// Producer ids are handed to brokers in blocks of this many.
pub const PRODUCER_ID_BLOCK: i64 = 1000;

/// A broker as registered with the controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub id: i32,
    /// The inter-broker listener's advertised address: where peers replicate from.
    pub host: String,
    pub port: u16,
    /// Every client listener's advertised address, by listener name (empty in
    /// registrations written before Skein had named listeners).
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    /// Bumped at every registration, so a restarted broker is told apart from its old self.
    pub epoch: i64,
    pub fenced: bool,
    /// Set by a controlled shutdown: the broker leads nothing and is not chosen as leader.
    pub shutting_down: bool,
}

/// A client listener's advertised address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub listener: String,
    pub host: String,
    pub port: u16,
}

impl BrokerRegistration {
    /// The address to give a client connected to `listener`: that listener's
    /// endpoint, else the inter-broker one.
    pub fn address_for(&self, listener: &str) -> (&str, u16) {
        match self.endpoints.iter().find(|e| e.listener == listener) {
            Some(e) => (&e.host, e.port),
            None => (&self.host, self.port),
        }
    }
}

/// One partition's replicas, ISR and leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionImage {
    /// Preferred leader first. During a reassignment: the union of old and new replicas.
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
    /// Bumped at every change, so a stale AlterPartition is refused.
    pub partition_epoch: i32,
    /// Replicas being added by a reassignment in progress.
    pub adding: Vec<i32>,
    /// Replicas being removed by a reassignment in progress.
    pub removing: Vec<i32>,
    /// The replicas, in order, before the reassignment in progress (restored on cancel).
    #[serde(default)]
    pub original: Vec<i32>,
}

impl PartitionImage {
    fn new(replicas: Vec<i32>) -> PartitionImage {
        PartitionImage {
            leader: replicas.first().copied().unwrap_or(NO_LEADER),
            isr: replicas.clone(),
            replicas,
            leader_epoch: 0,
            partition_epoch: 0,
            adding: Vec::new(),
            removing: Vec::new(),
            original: Vec::new(),
        }
    }

    fn reassigning(&self) -> bool {
        !self.adding.is_empty() || !self.removing.is_empty()
    }

    /// The replicas before any reassignment in progress.
    fn original_replicas(&self) -> Vec<i32> {
        if self.reassigning() {
            self.original.clone()
        } else {
            self.replicas.clone()
        }
    }

    /// The replicas a reassignment in progress is moving to.
    pub fn target_replicas(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.removing.contains(r))
            .collect()
    }

    fn bump_leader(&mut self, leader: i32) {
        self.leader = leader;
        self.leader_epoch += 1;
        self.partition_epoch += 1;
    }
}

/// A topic: its id, configs and partitions (index = position).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    pub id: Uuid,
    pub configs: BTreeMap<String, String>,
    pub partitions: Vec<PartitionImage>,
}

/// The whole cluster's metadata, identical on every broker that applied the same log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    pub brokers: BTreeMap<i32, BrokerRegistration>,
    /// Shared, copied on write: a clone of the image shares every topic, and
    /// applying a command copies only the topics it changes, so a reader that
    /// kept the last image it saw finds what changed by pointer
    /// (`Arc::ptr_eq`; Kafka's `MetadataDelta` over immutable `TopicImage`s).
    pub topics: BTreeMap<String, Arc<TopicImage>>,
    pub next_broker_epoch: i64,
    pub next_producer_id: i64,
    /// Dynamic broker configs: by broker id as a string, "" for the cluster default.
    #[serde(default)]
    pub broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// Dynamic group configs (KIP-848's resource type GROUP), by group id.
    #[serde(default)]
    pub group_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// SCRAM credentials (KIP-554), by user and mechanism: salts and keys, never passwords.
    #[serde(default)]
    pub scram: BTreeMap<String, BTreeMap<Mechanism, ScramCredential>>,
    /// ACL bindings (CreateAcls, DeleteAcls), indexed for the authorizer.
    #[serde(default)]
    pub acls: Acls,
    /// Client quotas (AlterClientQuotas), by entity.
    #[serde(default, with = "crate::quota::config::as_list")]
    pub client_quotas: crate::quota::ClientQuotaConfigs,
    /// Finalized feature levels set by UpdateFeatures, by name; a feature
    /// not here is at its default (`features.rs`).
    #[serde(default)]
    pub features: BTreeMap<String, i16>,
    /// Counts feature changes: ApiVersions' FinalizedFeaturesEpoch.
    #[serde(default)]
    pub features_epoch: i64,
}

/// A change to the image, as written in the metadata log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    RegisterBroker {
        id: i32,
        host: String,
        port: u16,
        rack: Option<String>,
        #[serde(default)]
        endpoints: Vec<Endpoint>,
    },
    /// The controller saw no heartbeat within `broker.session.timeout.ms`.
    FenceBroker {
        id: i32,
        epoch: i64,
    },
    /// A fenced broker heartbeats again and has caught up with the metadata log.
    UnfenceBroker {
        id: i32,
        epoch: i64,
    },
    /// SIGTERM: move leadership away before the broker stops.
    ControlledShutdown {
        id: i32,
        epoch: i64,
    },
    CreateTopic {
        name: String,
        id: Uuid,
        configs: BTreeMap<String, String>,
        /// Replicas per partition, already placed.
        assignments: Vec<Vec<i32>>,
    },
    DeleteTopic {
        name: String,
    },
    /// New partitions appended to a topic, already placed.
    CreatePartitions {
        name: String,
        assignments: Vec<Vec<i32>>,
    },
    SetTopicConfigs {
        name: String,
        configs: BTreeMap<String, String>,
    },
    /// A partition leader's ISR change (Kafka's AlterPartition).
    AlterPartition {
        topic: String,
        partition: i32,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<i32>,
    },
    /// Move leadership to the preferred replica where it is in the ISR.
    ElectPreferredLeaders {
        partitions: Option<Vec<(String, i32)>>,
    },
    /// Unclean election (`unclean.leader.election.enable`, or ElectLeaders of
    /// type 1): a leaderless partition whose ISR has no live member takes its
    /// first live replica as leader and sole ISR member. Records that replica
    /// lacks are lost; the active controller decides when that is allowed.
    ElectUnclean {
        partitions: Vec<(String, i32)>,
    },
    /// Start (Some) or cancel (None) moving a partition to `target` replicas.
    Reassign {
        topic: String,
        partition: i32,
        target: Option<Vec<i32>>,
    },
    AllocateProducerIds {
        broker: i32,
    },
    /// Replaces the dynamic configs of one broker ("<id>") or of all ("").
    SetBrokerConfigs {
        resource: String,
        configs: BTreeMap<String, String>,
    },
    /// Replaces the dynamic configs of one group.
    SetGroupConfigs {
        group: String,
        configs: BTreeMap<String, String>,
    },
    /// UnregisterBroker: forgets a stopped broker that holds no replicas.
    UnregisterBroker {
        id: i32,
    },
    /// AlterUserScramCredentials' upsertion (or `--add-scram` at start-up,
    /// `only_if_absent`, so a restart does not undo a later change).
    UpsertScramCredential {
        user: String,
        mechanism: Mechanism,
        credential: ScramCredential,
        #[serde(default)]
        only_if_absent: bool,
    },
    /// AlterUserScramCredentials' deletion.
    DeleteScramCredential {
        user: String,
        mechanism: Mechanism,
    },
    /// CreateAcls: bindings already validated; one that exists is kept once.
    CreateAcls {
        bindings: Vec<AclBinding>,
    },
    /// DeleteAcls: the bindings its filters matched on the proposing broker.
    DeleteAcls {
        bindings: Vec<AclBinding>,
    },
    /// AlterClientQuotas: per entity, each key set (Some) or removed (None),
    /// already validated; applied all together.
    AlterClientQuotas {
        changes: Vec<crate::quota::QuotaChange>,
    },
    /// UpdateFeatures: a finalized feature's new level, already validated
    /// against the level it had (checked again against the range here).
    SetFeatureLevel {
        name: String,
        level: i16,
    },
}

/// What applying a command returned to its proposer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    Ok,
    /// A registration's new broker epoch.
    BrokerEpoch(i64),
    /// The first id of a producer-id block.
    ProducerIds(i64),
    /// Refused: a Kafka error code and message.
    Error {
        code: i16,
        message: String,
    },
}

use kafka_protocol::error::ResponseError as E;

fn refuse(code: E, message: impl Into<String>) -> Reply {
    Reply::Error {
        code: code.code(),
        message: message.into(),
    }
}

impl MetadataImage {
    /// Live broker ids: registered and not fenced.
    pub fn live_brokers(&self) -> Vec<i32> {
        self.brokers.values().filter(|b| !b.fenced).map(|b| b.id).collect()
    }

    /// Brokers that may take new replicas: live and not shutting down.
    pub fn placeable_brokers(&self) -> Vec<i32> {
        self.brokers
            .values()
            .filter(|b| !b.fenced && !b.shutting_down)
            .map(|b| b.id)
            .collect()
    }

    /// Whether `id` may lead or join an ISR: live and not shutting down.
    pub fn can_lead(&self, id: i32) -> bool {
        self.brokers.get(&id).is_some_and(|b| !b.fenced && !b.shutting_down)
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionImage> {
        self.topics
            .get(topic)
            .and_then(|t| usize::try_from(partition).ok().and_then(|i| t.partitions.get(i)))
    }

    /// One partition to change: its topic is copied first if it is shared.
    fn partition_mut(&mut self, topic: &str, partition: i32) -> Option<&mut PartitionImage> {
        let i = usize::try_from(partition).ok()?;
        let t = self.topics.get_mut(topic).filter(|t| i < t.partitions.len())?;
        Arc::make_mut(t).partitions.get_mut(i)
    }

    /// Applies `f` to every partition `touches` holds for, copying only the
    /// topics that have one: a command that may change any partition (a
    /// broker fenced, an election) leaves the others shared.
    fn update_partitions(&mut self, touches: impl Fn(&PartitionImage) -> bool, mut f: impl FnMut(&mut PartitionImage)) {
        for t in self.topics.values_mut() {
            if t.partitions.iter().any(&touches) {
                for p in Arc::make_mut(t).partitions.iter_mut() {
                    if touches(p) {
                        f(p);
                    }
                }
            }
        }
    }

    /// Removes a broker's registration, so Metadata and DescribeCluster stop
    /// listing it: only a stopped one (fenced, or after its controlled shutdown;
    /// a running broker would register again) and only one that holds no
    /// replica, so no partition is left pointing at a broker that is gone.
    fn unregister(&mut self, id: i32) -> Reply {
        let Some(b) = self.brokers.get(&id) else {
            return refuse(E::BrokerIdNotRegistered, format!("broker {id} is not registered"));
        };
        if !b.fenced && !b.shutting_down {
            return refuse(
                E::InvalidRequest,
                format!("broker {id} is running (registered and unfenced); stop it before unregistering it"),
            );
        }
        let held: Vec<String> = self
            .topics
            .iter()
            .flat_map(|(name, t)| {
                t.partitions
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| p.replicas.contains(&id) || p.adding.contains(&id))
                    .map(move |(i, _)| format!("{name}-{i}"))
            })
            .collect();
        if !held.is_empty() {
            let shown: Vec<&str> = held.iter().take(5).map(String::as_str).collect();
            return refuse(
                E::InvalidRequest,
                format!(
                    "broker {id} still holds replicas of {} partition(s) ({}{}); reassign them to other brokers first",
                    held.len(),
                    shown.join(", "),
                    if held.len() > shown.len() { ", ..." } else { "" }
                ),
            );
        }
        self.brokers.remove(&id);
        Reply::Ok
    }

    /// Applies one committed command. Deterministic: every broker gets the same image.
    pub fn apply(&mut self, cmd: Command) -> Reply {
        match cmd {
            Command::RegisterBroker {
                id,
                host,
                port,
                rack,
                endpoints,
            } => {
                self.next_broker_epoch += 1;
                let epoch = self.next_broker_epoch;
                // A (re)registered broker starts fenced; its first heartbeat after
                // catching up with the log unfences it.
                let fenced = true;
                self.brokers.insert(
                    id,
                    BrokerRegistration {
                        id,
                        host,
                        port,
                        endpoints,
                        rack,
                        epoch,
                        fenced,
                        shutting_down: false,
                    },
                );
                self.remove_from_isrs(id);
                Reply::BrokerEpoch(epoch)
            }
            Command::FenceBroker { id, epoch } => match self.brokers.get_mut(&id) {
                Some(b) if b.epoch == epoch => {
                    b.fenced = true;
                    self.remove_from_isrs(id);
                    Reply::Ok
                }
                _ => refuse(E::StaleBrokerEpoch, format!("broker {id} epoch {epoch} is not current")),
            },
            Command::UnfenceBroker { id, epoch } => match self.brokers.get_mut(&id) {
                Some(b) if b.epoch == epoch => {
                    b.fenced = false;
                    b.shutting_down = false;
                    self.elect_where_leaderless();
                    Reply::Ok
                }
                _ => refuse(E::StaleBrokerEpoch, format!("broker {id} epoch {epoch} is not current")),
            },
            Command::ControlledShutdown { id, epoch } => match self.brokers.get_mut(&id) {
                Some(b) if b.epoch == epoch => {
                    b.shutting_down = true;
                    self.move_leadership_from(id);
                    Reply::Ok
                }
                _ => refuse(E::StaleBrokerEpoch, format!("broker {id} epoch {epoch} is not current")),
            },
            Command::CreateTopic {
                name,
                id,
                configs,
                assignments,
            } => {
                // The same topic id is the same proposal committed again: a
                // proposer that timed out waiting for its entry retries it, and
                // its caller must hear that its topic was created, not that it exists.
                match self.topics.get(&name) {
                    Some(t) if t.id == id && !id.is_nil() => return Reply::Ok,
                    Some(_) => return refuse(E::TopicAlreadyExists, format!("Topic '{name}' already exists.")),
                    None => {}
                }
                let partitions = assignments.into_iter().map(PartitionImage::new).collect();
                self.topics.insert(
                    name,
                    Arc::new(TopicImage {
                        id,
                        configs,
                        partitions,
                    }),
                );
                self.elect_where_leaderless();
                Reply::Ok
            }
            Command::DeleteTopic { name } => match self.topics.remove(&name) {
                Some(_) => Reply::Ok,
                None => refuse(
                    E::UnknownTopicOrPartition,
                    format!("The topic '{name}' does not exist."),
                ),
            },
            Command::CreatePartitions { name, assignments } => match self.topics.get_mut(&name) {
                Some(t) => {
                    Arc::make_mut(t)
                        .partitions
                        .extend(assignments.into_iter().map(PartitionImage::new));
                    self.elect_where_leaderless();
                    Reply::Ok
                }
                None => refuse(
                    E::UnknownTopicOrPartition,
                    format!("The topic '{name}' does not exist."),
                ),
            },
            Command::SetTopicConfigs { name, configs } => match self.topics.get_mut(&name) {
                Some(t) => {
                    Arc::make_mut(t).configs = configs;
                    Reply::Ok
                }
                None => refuse(
                    E::UnknownTopicOrPartition,
                    format!("The topic '{name}' does not exist."),
                ),
            },
            Command::AlterPartition {
                topic,
                partition,
                leader,
                leader_epoch,
                partition_epoch,
                isr,
            } => self.alter_partition(&topic, partition, leader, leader_epoch, partition_epoch, isr),
            Command::ElectPreferredLeaders { partitions } => {
                let wanted: Vec<(String, i32)> = match partitions {
                    Some(p) => p,
                    None => self
                        .topics
                        .iter()
                        .flat_map(|(n, t)| (0..t.partitions.len() as i32).map(move |i| (n.clone(), i)))
                        .collect(),
                };
                for (topic, p) in wanted {
                    self.elect_preferred(&topic, p);
                }
                Reply::Ok
            }
            Command::ElectUnclean { partitions } => {
                let leadable = self.placeable_brokers();
                for (topic, index) in partitions {
                    let Some(p) = self.partition(&topic, index) else {
                        continue;
                    };
                    if p.leader != NO_LEADER || p.isr.iter().any(|r| leadable.contains(r)) {
                        continue; // a clean election is possible (or done): nothing to lose
                    }
                    let Some(next) = p.replicas.iter().copied().find(|r| leadable.contains(r)) else {
                        continue;
                    };
                    if let Some(p) = self.partition_mut(&topic, index) {
                        p.isr = vec![next];
                        p.bump_leader(next);
                    }
                }
                Reply::Ok
            }
            Command::Reassign {
                topic,
                partition,
                target,
            } => self.reassign(&topic, partition, target),
            Command::SetBrokerConfigs { resource, configs } => {
                if configs.is_empty() {
                    self.broker_configs.remove(&resource);
                } else {
                    self.broker_configs.insert(resource, configs);
                }
                Reply::Ok
            }
            Command::UnregisterBroker { id } => self.unregister(id),
            Command::SetGroupConfigs { group, configs } => {
                if configs.is_empty() {
                    self.group_configs.remove(&group);
                } else {
                    self.group_configs.insert(group, configs);
                }
                Reply::Ok
            }
            Command::UpsertScramCredential {
                user,
                mechanism,
                credential,
                only_if_absent,
            } => {
                let creds = self.scram.entry(user).or_default();
                if !(only_if_absent && creds.contains_key(&mechanism)) {
                    creds.insert(mechanism, credential);
                }
                Reply::Ok
            }
            Command::DeleteScramCredential { user, mechanism } => {
                let Some(creds) = self.scram.get_mut(&user) else {
                    return refuse(
                        E::ResourceNotFound,
                        "Attempt to delete a user credential that does not exist",
                    );
                };
                if creds.remove(&mechanism).is_none() {
                    return refuse(
                        E::ResourceNotFound,
                        "Attempt to delete a user credential that does not exist",
                    );
                }
                if creds.is_empty() {
                    self.scram.remove(&user);
                }
                Reply::Ok
            }
            Command::CreateAcls { bindings } => {
                if let Some(why) = bindings.iter().find_map(AclBinding::invalid) {
                    return refuse(E::InvalidRequest, why);
                }
                self.acls = Acls(Arc::new(self.acls.0.changed(&bindings, &[])));
                Reply::Ok
            }
            Command::DeleteAcls { bindings } => {
                self.acls = Acls(Arc::new(self.acls.0.changed(&[], &bindings)));
                Reply::Ok
            }
            Command::AlterClientQuotas { changes } => {
                let invalid = changes
                    .iter()
                    .flat_map(|(_, ops)| ops)
                    .find_map(|(t, v)| v.and_then(|v| crate::quota::config::invalid_value(*t, v.0)));
                if let Some(why) = invalid {
                    return refuse(E::InvalidRequest, why);
                }
                for (entity, ops) in changes {
                    let values = self.client_quotas.entry(entity.clone()).or_default();
                    for (t, v) in ops {
                        match v {
                            Some(v) => values.insert(t, v),
                            None => values.remove(&t),
                        };
                    }
                    if values.is_empty() {
                        self.client_quotas.remove(&entity);
                    }
                }
                Reply::Ok
            }
            Command::SetFeatureLevel { name, level } => {
                let supported = super::features::feature(&name).is_some_and(|f| (f.min..=f.max).contains(&level));
                if !supported {
                    return refuse(
                        E::InvalidUpdateVersion,
                        format!("feature {name} cannot be at level {level}"),
                    );
                }
                self.features.insert(name, level);
                self.features_epoch += 1;
                Reply::Ok
            }
            Command::AllocateProducerIds { broker: _ } => {
                let start = self.next_producer_id;
                self.next_producer_id += PRODUCER_ID_BLOCK;
                Reply::ProducerIds(start)
            }
        }
    }

    /// A fenced or re-registered broker leaves every ISR; partitions it led get a
    /// new leader from the remaining ISR. If it was the last ISR member the
    /// partition stays leaderless with that ISR: no unclean election.
    fn remove_from_isrs(&mut self, id: i32) {
        let leadable: Vec<i32> = self
            .brokers
            .values()
            .filter(|b| !b.fenced && !b.shutting_down)
            .map(|b| b.id)
            .collect();
        self.update_partitions(
            |p| p.isr.contains(&id) || p.leader == id,
            |p| {
                if !p.isr.contains(&id) {
                    if p.leader == id {
                        p.bump_leader(NO_LEADER);
                    }
                    return;
                }
                if p.isr.len() > 1 {
                    p.isr.retain(|&r| r != id);
                    p.partition_epoch += 1;
                }
                if p.leader == id {
                    let next = p
                        .replicas
                        .iter()
                        .copied()
                        .find(|r| *r != id && p.isr.contains(r) && leadable.contains(r))
                        .unwrap_or(NO_LEADER);
                    p.bump_leader(next);
                }
            },
        );
    }

    /// Controlled shutdown: hand every partition `id` leads to another ISR member,
    /// and take `id` out of the ISRs so acks=all stops waiting for it.
    fn move_leadership_from(&mut self, id: i32) {
        let leadable: Vec<i32> = self.placeable_brokers();
        self.update_partitions(
            |p| p.leader == id || (p.isr.contains(&id) && p.isr.len() > 1),
            |p| {
                if p.leader == id {
                    if let Some(next) = p
                        .replicas
                        .iter()
                        .copied()
                        .find(|r| *r != id && p.isr.contains(r) && leadable.contains(r))
                    {
                        p.isr.retain(|&r| r != id);
                        p.bump_leader(next);
                    }
                } else if p.isr.contains(&id) && p.isr.len() > 1 {
                    p.isr.retain(|&r| r != id);
                    p.partition_epoch += 1;
                }
            },
        );
    }

    /// Gives a leader to every leaderless partition that has a live ISR member.
    fn elect_where_leaderless(&mut self) {
        let leadable: Vec<i32> = self.placeable_brokers();
        let candidate = |p: &PartitionImage| {
            p.replicas
                .iter()
                .copied()
                .find(|r| p.isr.contains(r) && leadable.contains(r))
        };
        self.update_partitions(
            |p| p.leader == NO_LEADER && candidate(p).is_some(),
            |p| {
                if let Some(next) = candidate(p) {
                    p.bump_leader(next);
                }
            },
        );
    }

    /// Moves leadership to the preferred replica if it is live and in the ISR.
    fn elect_preferred(&mut self, topic: &str, partition: i32) -> bool {
        let Some(preferred) = self
            .partition(topic, partition)
            .and_then(|p| p.target_replicas().first().copied())
        else {
            return false;
        };
        let ok = self.can_lead(preferred);
        let Some(p) = self.partition(topic, partition) else {
            return false;
        };
        if p.leader == preferred || !ok || !p.isr.contains(&preferred) {
            return false;
        }
        match self.partition_mut(topic, partition) {
            Some(p) => {
                p.bump_leader(preferred);
                true
            }
            None => false,
        }
    }

    /// The refusal a command would get if applied now, for commands a broker
    /// retries on its own (AlterPartition), so the active controller can answer
    /// without a log entry. None: propose it. A refusal from an image that
    /// trails a just-committed entry is harmless: the proposer retries.
    pub fn precheck(&self, cmd: &Command) -> Option<Reply> {
        match cmd {
            Command::AlterPartition {
                topic,
                partition,
                leader,
                leader_epoch,
                partition_epoch,
                isr,
            } => self
                .check_alter_partition(topic, *partition, *leader, *leader_epoch, *partition_epoch, isr)
                .err(),
            _ => None,
        }
    }

    fn check_alter_partition(
        &self,
        topic: &str,
        partition: i32,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: &[i32],
    ) -> Result<(), Reply> {
        let Some(p) = self.partition(topic, partition) else {
            return Err(refuse(
                E::UnknownTopicOrPartition,
                format!("{topic}-{partition} does not exist"),
            ));
        };
        if p.leader != leader || p.leader_epoch != leader_epoch {
            return Err(refuse(
                E::FencedLeaderEpoch,
                format!("{topic}-{partition}: leader {leader} epoch {leader_epoch} is not current"),
            ));
        }
        if p.partition_epoch != partition_epoch {
            return Err(refuse(
                E::InvalidUpdateVersion,
                format!("{topic}-{partition}: partition epoch {partition_epoch} is not current"),
            ));
        }
        if !isr.contains(&leader) || isr.iter().any(|r| !p.replicas.contains(r)) {
            return Err(refuse(
                E::InvalidRequest,
                format!("{topic}-{partition}: invalid ISR {isr:?}"),
            ));
        }
        // A fenced broker, or one in controlled shutdown (KIP-841), may leave
        // the ISR but not join it: a stopping broker still fetches until it exits.
        let eligible = self.placeable_brokers();
        if isr.iter().any(|r| !p.isr.contains(r) && !eligible.contains(r)) {
            return Err(refuse(
                E::IneligibleReplica,
                format!("{topic}-{partition}: ISR {isr:?} names a fenced or shutting-down broker"),
            ));
        }
        Ok(())
    }

    fn alter_partition(
        &mut self,
        topic: &str,
        partition: i32,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<i32>,
    ) -> Reply {
        if let Err(refusal) = self.check_alter_partition(topic, partition, leader, leader_epoch, partition_epoch, &isr)
        {
            return refusal;
        }
        let Some(p) = self.partition_mut(topic, partition) else {
            return refuse(
                E::UnknownTopicOrPartition,
                format!("{topic}-{partition} does not exist"),
            );
        };
        p.isr = isr;
        p.partition_epoch += 1;
        self.maybe_complete_reassignment(topic, partition);
        Reply::Ok
    }

    fn reassign(&mut self, topic: &str, partition: i32, target: Option<Vec<i32>>) -> Reply {
        let brokers: Vec<i32> = self.brokers.keys().copied().collect();
        let Some(p) = self.partition_mut(topic, partition) else {
            return refuse(
                E::UnknownTopicOrPartition,
                format!("{topic}-{partition} does not exist"),
            );
        };
        match target {
            None => {
                if !p.reassigning() {
                    return refuse(
                        E::NoReassignmentInProgress,
                        format!("no reassignment of {topic}-{partition} is in progress"),
                    );
                }
                // Cancel: back to the original replicas, in their order.
                let original = p.original_replicas();
                p.isr.retain(|r| original.contains(r));
                p.replicas = original;
                p.adding.clear();
                p.removing.clear();
                p.original.clear();
                p.partition_epoch += 1;
                if !p.isr.contains(&p.leader) {
                    let next = p
                        .replicas
                        .iter()
                        .copied()
                        .find(|r| p.isr.contains(r))
                        .unwrap_or(NO_LEADER);
                    p.bump_leader(next);
                }
                Reply::Ok
            }
            Some(target) => {
                let mut distinct = target.clone();
                distinct.sort_unstable();
                distinct.dedup();
                if target.is_empty() || distinct.len() != target.len() || target.iter().any(|b| !brokers.contains(b)) {
                    return refuse(
                        E::InvalidReplicaAssignment,
                        format!("invalid target replicas {target:?} (registered brokers: {brokers:?})"),
                    );
                }
                // A new reassignment replaces one in progress, starting from the original set.
                let original = p.original_replicas();
                p.adding = target.iter().copied().filter(|r| !original.contains(r)).collect();
                p.removing = original.iter().copied().filter(|r| !target.contains(r)).collect();
                let mut replicas = target.clone();
                replicas.extend(original.iter().copied().filter(|r| !target.contains(r)));
                p.replicas = replicas;
                p.original = original;
                p.isr.retain(|r| p.replicas.contains(r));
                p.partition_epoch += 1;
                self.maybe_complete_reassignment(topic, partition);
                Reply::Ok
            }
        }
    }

    /// Once every added replica is in the ISR, drop the removed ones; the leader
    /// moves to the new preferred replica if it was being removed.
    fn maybe_complete_reassignment(&mut self, topic: &str, partition: i32) {
        let leadable = self.placeable_brokers();
        match self.partition(topic, partition) {
            Some(p) if p.reassigning() && p.adding.iter().all(|r| p.isr.contains(r)) => {}
            _ => return,
        }
        let Some(p) = self.partition_mut(topic, partition) else {
            return;
        };
        let target = p.target_replicas();
        p.replicas = target.clone();
        p.isr.retain(|r| target.contains(r));
        p.adding.clear();
        p.removing.clear();
        p.original.clear();
        p.partition_epoch += 1;
        if !target.contains(&p.leader) {
            let next = target
                .iter()
                .copied()
                .find(|r| p.isr.contains(r) && leadable.contains(r))
                .unwrap_or(NO_LEADER);
            p.bump_leader(next);
        }
    }

    /// A dynamic broker config of broker `id`: its own value, else the cluster default.
    /// Broker `id`'s config now: `base` (its static config) with the
    /// cluster's dynamic defaults, then its own overrides, laid over it.
    pub fn effective_config(&self, base: &crate::config::BrokerConfig, id: i32) -> crate::config::BrokerConfig {
        base.overlaid(&[self.broker_configs.get(""), self.broker_configs.get(&id.to_string())])
    }

    pub fn broker_config(&self, id: i32, key: &str) -> Option<&String> {
        self.broker_configs
            .get(&id.to_string())
            .and_then(|c| c.get(key))
            .or_else(|| self.broker_configs.get("").and_then(|c| c.get(key)))
    }

    /// Leaderless partitions with no live ISR member but a live replica: the
    /// ones an unclean election would give a leader.
    pub fn unclean_election_candidates(&self) -> Vec<(String, i32)> {
        let mut out = Vec::new();
        for (name, t) in &self.topics {
            for (i, p) in t.partitions.iter().enumerate() {
                if p.leader == NO_LEADER
                    && !p.isr.iter().any(|&r| self.can_lead(r))
                    && p.replicas.iter().any(|&r| self.can_lead(r))
                {
                    out.push((name.clone(), i as i32));
                }
            }
        }
        out
    }

    /// Whether some partition could move leadership back to its preferred replica.
    pub fn has_preferred_leader_imbalance(&self) -> bool {
        self.topics.values().flat_map(|t| &t.partitions).any(|p| {
            p.target_replicas()
                .first()
                .is_some_and(|&pref| p.leader != pref && p.isr.contains(&pref) && self.can_lead(pref))
        })
    }

    /// Places `count` new partitions starting at `first` over the brokers that
    /// may take replicas: the classic rule, spread over their `broker.rack`s.
    pub fn place(&self, first: i32, count: i32, rf: i16) -> Result<Vec<Vec<i32>>, placement::PlacementError> {
        let brokers: Vec<placement::RackedBroker> = self
            .placeable_brokers()
            .into_iter()
            .map(|id| placement::RackedBroker {
                id,
                rack: self.brokers.get(&id).and_then(|b| b.rack.clone()),
            })
            .collect();
        placement::assign_replicas_rack_aware(&brokers, first, count, rf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Registers (or re-registers) broker `id` and unfences it, as its first heartbeat would.
    fn join(img: &mut MetadataImage, id: i32) {
        let Reply::BrokerEpoch(epoch) = img.apply(Command::RegisterBroker {
            id,
            host: "localhost".into(),
            port: 9092 + id as u16,
            rack: None,
            endpoints: Vec::new(),
        }) else {
            panic!("registration refused")
        };
        assert_eq!(img.apply(Command::UnfenceBroker { id, epoch }), Reply::Ok);
    }

    fn cluster(n: i32) -> MetadataImage {
        let mut img = MetadataImage::default();
        for id in 0..n {
            join(&mut img, id);
        }
        img
    }

    fn create(img: &mut MetadataImage, name: &str, partitions: i32, rf: i16) {
        let assignments = img.place(0, partitions, rf).unwrap();
        assert_eq!(
            img.apply(Command::CreateTopic {
                name: name.into(),
                id: Uuid::nil(),
                configs: BTreeMap::new(),
                assignments
            }),
            Reply::Ok
        );
    }

    fn epoch(img: &MetadataImage, id: i32) -> i64 {
        img.brokers[&id].epoch
    }

    /// The topics `after` holds copies of rather than `before`'s own.
    fn copied(before: &MetadataImage, after: &MetadataImage) -> Vec<String> {
        after
            .topics
            .iter()
            .filter(|(n, t)| !before.topics.get(*n).is_some_and(|b| Arc::ptr_eq(b, t)))
            .map(|(n, _)| n.clone())
            .collect()
    }

    #[test]
    fn a_command_copies_only_the_topics_it_changes() {
        let mut img = cluster(3);
        for (name, assignments) in [
            ("a", vec![vec![0, 1], vec![1, 0]]),
            ("b", vec![vec![2]]),
            ("c", vec![vec![1, 2]]),
        ] {
            img.apply(Command::CreateTopic {
                name: name.into(),
                id: Uuid::new_v4(),
                configs: BTreeMap::new(),
                assignments,
            });
        }
        let before = img.clone();
        // Broker 0 fenced: only `a` holds it.
        img.apply(Command::FenceBroker {
            id: 0,
            epoch: epoch(&img, 0),
        });
        assert_eq!(copied(&before, &img), vec!["a".to_string()]);
        assert_eq!(img.partition("a", 0).unwrap().leader, 1);
        assert_eq!(
            before.partition("a", 0).unwrap().leader,
            0,
            "the earlier image is untouched"
        );
        // Every leader already preferred (`b`, `c`) or not electable (`a`): nothing copied.
        let before = img.clone();
        img.apply(Command::ElectPreferredLeaders { partitions: None });
        assert!(copied(&before, &img).is_empty());
        // One partition's ISR: its topic alone.
        let p = img.partition("c", 0).unwrap().clone();
        img.apply(Command::AlterPartition {
            topic: "c".into(),
            partition: 0,
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr: vec![1],
        });
        assert_eq!(copied(&before, &img), vec!["c".to_string()]);
        // A new topic is new; a deleted one is gone; the rest stay shared.
        let before = img.clone();
        img.apply(Command::DeleteTopic { name: "b".into() });
        create(&mut img, "d", 1, 1);
        assert_eq!(copied(&before, &img), vec!["d".to_string()]);
        assert!(!img.topics.contains_key("b"));
    }

    #[test]
    fn a_create_committed_twice_is_the_same_create_but_another_one_is_refused() {
        let mut img = cluster(3);
        let cmd = |id: u128| Command::CreateTopic {
            name: "t".into(),
            id: Uuid::from_u128(id),
            configs: BTreeMap::new(),
            assignments: vec![vec![0, 1, 2]],
        };
        assert_eq!(img.apply(cmd(7)), Reply::Ok);
        // A proposer's retry of its own entry after a timeout: created, once.
        assert_eq!(img.apply(cmd(7)), Reply::Ok);
        assert_eq!(img.topics.len(), 1);
        assert!(matches!(img.apply(cmd(8)),
            Reply::Error { code, .. } if code == E::TopicAlreadyExists.code()));
    }

    #[test]
    fn only_a_stopped_broker_without_replicas_is_unregistered() {
        let mut img = cluster(4);
        create(&mut img, "t", 1, 3); // on brokers 0, 1 and 2
        let refused = |r: Reply| match r {
            Reply::Error { code, message } => (code, message),
            other => panic!("not refused: {other:?}"),
        };
        let (code, msg) = refused(img.apply(Command::UnregisterBroker { id: 9 }));
        assert_eq!(code, E::BrokerIdNotRegistered.code(), "{msg}");
        let (code, msg) = refused(img.apply(Command::UnregisterBroker { id: 3 }));
        assert_eq!(code, E::InvalidRequest.code());
        assert!(msg.contains("is running"), "{msg}");
        let e = epoch(&img, 1);
        img.apply(Command::FenceBroker { id: 1, epoch: e });
        let (_, msg) = refused(img.apply(Command::UnregisterBroker { id: 1 }));
        assert!(msg.contains("still holds replicas of 1 partition(s) (t-0)"), "{msg}");
        let e = epoch(&img, 3);
        img.apply(Command::FenceBroker { id: 3, epoch: e });
        assert_eq!(img.apply(Command::UnregisterBroker { id: 3 }), Reply::Ok);
        assert!(!img.brokers.contains_key(&3));
    }

    #[test]
    fn new_topics_lead_on_the_preferred_replica() {
        let mut img = cluster(3);
        create(&mut img, "t", 6, 3);
        for (i, p) in img.topics["t"].partitions.iter().enumerate() {
            assert_eq!(p.leader, i as i32 % 3);
            assert_eq!(p.isr, p.replicas);
        }
    }

    #[test]
    fn fencing_the_leader_elects_another_isr_member_and_bumps_the_epoch() {
        let mut img = cluster(3);
        create(&mut img, "t", 3, 3);
        let e = epoch(&img, 0);
        assert_eq!(img.apply(Command::FenceBroker { id: 0, epoch: e }), Reply::Ok);
        let p = img.partition("t", 0).unwrap();
        assert_eq!(p.leader, 1);
        assert_eq!(p.leader_epoch, 1);
        assert_eq!(p.isr, vec![1, 2]);
        // Broker 0 followed partition 1: it leaves that ISR too, the leader stays.
        let p1 = img.partition("t", 1).unwrap();
        assert_eq!((p1.leader, p1.leader_epoch, p1.isr.clone()), (1, 0, vec![1, 2]));
    }

    #[test]
    fn no_unclean_election_when_the_last_isr_member_dies() {
        let mut img = cluster(2);
        create(&mut img, "t", 1, 2);
        let e1 = epoch(&img, 1);
        img.apply(Command::FenceBroker { id: 1, epoch: e1 });
        assert_eq!(img.partition("t", 0).unwrap().isr, vec![0]);
        let e0 = epoch(&img, 0);
        img.apply(Command::FenceBroker { id: 0, epoch: e0 });
        let p = img.partition("t", 0).unwrap();
        assert_eq!(p.leader, NO_LEADER);
        assert_eq!(p.isr, vec![0], "the last ISR member stays in the ISR");
        // Broker 1 comes back: it is not in the ISR, so it must not lead.
        join(&mut img, 1);
        assert_eq!(img.partition("t", 0).unwrap().leader, NO_LEADER);
        // Broker 0 comes back: it leads again.
        join(&mut img, 0);
        assert_eq!(img.partition("t", 0).unwrap().leader, 0);
    }

    #[test]
    fn an_unclean_election_takes_a_live_replica_outside_the_isr() {
        let mut img = cluster(3);
        create(&mut img, "t", 1, 3);
        create(&mut img, "u", 1, 3);
        for id in [1, 2] {
            let e = epoch(&img, id);
            img.apply(Command::FenceBroker { id, epoch: e });
        }
        let e0 = epoch(&img, 0);
        img.apply(Command::FenceBroker { id: 0, epoch: e0 });
        assert!(img.unclean_election_candidates().is_empty(), "no live replica at all");
        join(&mut img, 2);
        assert_eq!(
            img.unclean_election_candidates(),
            vec![("t".to_string(), 0), ("u".to_string(), 0)]
        );
        let before = img.partition("t", 0).unwrap().clone();
        img.apply(Command::ElectUnclean {
            partitions: vec![("t".into(), 0)],
        });
        let p = img.partition("t", 0).unwrap();
        assert_eq!((p.leader, p.isr.clone()), (2, vec![2]));
        assert!(
            p.leader_epoch > before.leader_epoch,
            "a new epoch fences the old leader's tail"
        );
        assert_eq!(
            img.partition("u", 0).unwrap().leader,
            NO_LEADER,
            "only the partitions named"
        );
        // Once the ISR member is back, an unclean election is not needed and does nothing.
        join(&mut img, 0);
        let u = img.partition("u", 0).unwrap().clone();
        assert_eq!(u.leader, 0);
        img.apply(Command::ElectUnclean {
            partitions: vec![("u".into(), 0)],
        });
        assert_eq!(img.partition("u", 0).unwrap(), &u);
    }

    #[test]
    fn a_stale_alter_partition_is_refused() {
        let mut img = cluster(3);
        create(&mut img, "t", 1, 3);
        let shrink = |pe| Command::AlterPartition {
            topic: "t".into(),
            partition: 0,
            leader: 0,
            leader_epoch: 0,
            partition_epoch: pe,
            isr: vec![0, 1],
        };
        assert_eq!(img.apply(shrink(0)), Reply::Ok);
        assert!(matches!(img.apply(shrink(0)), Reply::Error { code, .. } if code == E::InvalidUpdateVersion.code()));
        let wrong_leader = Command::AlterPartition {
            topic: "t".into(),
            partition: 0,
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 1,
            isr: vec![1],
        };
        assert!(matches!(img.apply(wrong_leader), Reply::Error { code, .. } if code == E::FencedLeaderEpoch.code()));
    }

    #[test]
    fn a_fenced_broker_cannot_join_the_isr() {
        let mut img = cluster(3);
        create(&mut img, "t", 1, 3);
        let e2 = epoch(&img, 2);
        img.apply(Command::FenceBroker { id: 2, epoch: e2 });
        let pe = img.partition("t", 0).unwrap().partition_epoch;
        let r = img.apply(Command::AlterPartition {
            topic: "t".into(),
            partition: 0,
            leader: 0,
            leader_epoch: 0,
            partition_epoch: pe,
            isr: vec![0, 1, 2],
        });
        assert!(matches!(r, Reply::Error { code, .. } if code == E::IneligibleReplica.code()));
    }

    #[test]
    fn controlled_shutdown_moves_leadership_first() {
        let mut img = cluster(3);
        create(&mut img, "t", 3, 3);
        let e = epoch(&img, 1);
        img.apply(Command::ControlledShutdown { id: 1, epoch: e });
        for p in &img.topics["t"].partitions {
            assert_ne!(p.leader, 1);
            assert!(!p.isr.contains(&1));
        }
        assert!(!img.placeable_brokers().contains(&1));
        // Still fetching until it exits, it must not be taken back into an ISR.
        let p = img.partition("t", 0).unwrap().clone();
        let mut isr = p.isr.clone();
        isr.push(1);
        let r = img.apply(Command::AlterPartition {
            topic: "t".into(),
            partition: 0,
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr,
        });
        assert!(matches!(r, Reply::Error { code, .. } if code == E::IneligibleReplica.code()));
        assert!(!img.partition("t", 0).unwrap().isr.contains(&1));
    }

    #[test]
    fn preferred_leader_election_restores_replica_zero() {
        let mut img = cluster(3);
        create(&mut img, "t", 1, 3);
        let e = epoch(&img, 0);
        img.apply(Command::FenceBroker { id: 0, epoch: e });
        join(&mut img, 0);
        let p = img.partition("t", 0).unwrap().clone();
        assert_eq!(p.leader, 1);
        // Not in the ISR yet: no election.
        img.apply(Command::ElectPreferredLeaders { partitions: None });
        assert_eq!(img.partition("t", 0).unwrap().leader, 1);
        img.apply(Command::AlterPartition {
            topic: "t".into(),
            partition: 0,
            leader: 1,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr: vec![1, 2, 0],
        });
        img.apply(Command::ElectPreferredLeaders { partitions: None });
        assert_eq!(img.partition("t", 0).unwrap().leader, 0);
    }

    #[test]
    fn reassignment_completes_when_new_replicas_join_the_isr() {
        let mut img = cluster(4);
        create(&mut img, "t", 1, 3);
        assert_eq!(
            img.apply(Command::Reassign {
                topic: "t".into(),
                partition: 0,
                target: Some(vec![1, 2, 3])
            }),
            Reply::Ok
        );
        let p = img.partition("t", 0).unwrap().clone();
        assert_eq!(p.replicas, vec![1, 2, 3, 0]);
        assert_eq!((p.adding.clone(), p.removing.clone()), (vec![3], vec![0]));
        assert_eq!(p.leader, 0, "the old leader serves until the move completes");
        img.apply(Command::AlterPartition {
            topic: "t".into(),
            partition: 0,
            leader: 0,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            isr: vec![0, 1, 2, 3],
        });
        let p = img.partition("t", 0).unwrap();
        assert_eq!(p.replicas, vec![1, 2, 3]);
        assert_eq!(p.isr, vec![1, 2, 3]);
        assert_eq!(p.leader, 1);
        assert!(p.adding.is_empty() && p.removing.is_empty());
    }

    #[test]
    fn cancelling_a_reassignment_restores_the_original_replicas() {
        let mut img = cluster(4);
        create(&mut img, "t", 1, 3);
        img.apply(Command::Reassign {
            topic: "t".into(),
            partition: 0,
            target: Some(vec![1, 2, 3]),
        });
        assert_eq!(
            img.apply(Command::Reassign {
                topic: "t".into(),
                partition: 0,
                target: None
            }),
            Reply::Ok
        );
        let p = img.partition("t", 0).unwrap();
        assert_eq!(p.replicas, vec![0, 1, 2]);
        assert_eq!(p.leader, 0);
        assert!(matches!(
            img.apply(Command::Reassign { topic: "t".into(), partition: 0, target: None }),
            Reply::Error { code, .. } if code == E::NoReassignmentInProgress.code()
        ));
    }

    #[test]
    fn producer_id_blocks_never_overlap() {
        let mut img = cluster(1);
        let a = img.apply(Command::AllocateProducerIds { broker: 0 });
        let b = img.apply(Command::AllocateProducerIds { broker: 0 });
        assert_eq!((a, b), (Reply::ProducerIds(0), Reply::ProducerIds(PRODUCER_ID_BLOCK)));
    }

    #[test]
    fn acls_are_created_deleted_and_kept_in_snapshots() {
        use crate::security::acl::{AclBinding, AuthorizerConfig, Operation, PatternType, Permission, ResourceType};
        let b = |name: &str, op: Operation| AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: name.into(),
            pattern_type: PatternType::Literal,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: op,
            permission: Permission::Allow,
        };
        let mut img = cluster(1);
        let before = Arc::clone(&img.acls.0);
        let created = img.apply(Command::CreateAcls {
            bindings: vec![
                b("t", Operation::Read),
                b("t", Operation::Read),
                b("u", Operation::Write),
            ],
        });
        assert_eq!(created, Reply::Ok);
        assert_eq!(img.acls.0.len(), 2, "a binding given twice is kept once");
        assert!(before.is_empty(), "the old index is not changed in place");
        let cfg = AuthorizerConfig::default();
        assert!(img
            .acls
            .0
            .authorize(&cfg, "User:alice", "h", Operation::Read, ResourceType::Topic, "t"));
        // The snapshot's form brings back the same bindings and decisions.
        let back: MetadataImage = serde_json::from_slice(&serde_json::to_vec(&img).unwrap()).unwrap();
        assert_eq!(back, img);
        assert!(back
            .acls
            .0
            .authorize(&cfg, "User:alice", "h", Operation::Write, ResourceType::Topic, "u"));
        // An invalid binding is refused whole, and changes nothing.
        let mut bad = b("x", Operation::Read);
        bad.principal = "alice".into();
        assert!(matches!(
            img.apply(Command::CreateAcls { bindings: vec![bad] }),
            Reply::Error { .. }
        ));
        assert_eq!(img.acls.0.len(), 2);
        img.apply(Command::DeleteAcls {
            bindings: vec![b("t", Operation::Read)],
        });
        assert!(!img
            .acls
            .0
            .authorize(&cfg, "User:alice", "h", Operation::Read, ResourceType::Topic, "t"));
        assert_eq!(img.acls.0.len(), 1);
    }

    #[test]
    fn client_quotas_are_set_removed_refused_and_kept_in_snapshots() {
        use crate::quota::config::EntityName;
        use crate::quota::{QuotaEntity, QuotaType, QuotaValue};
        let alice = QuotaEntity {
            user: Some(EntityName::Named("alice".into())),
            client_id: Some(EntityName::Default),
        };
        let mut img = cluster(1);
        let set = img.apply(Command::AlterClientQuotas {
            changes: vec![(
                alice.clone(),
                vec![
                    (QuotaType::Produce, Some(QuotaValue(1024.0))),
                    (QuotaType::Request, Some(QuotaValue(25.5))),
                ],
            )],
        });
        assert_eq!(set, Reply::Ok);
        // Snapshots are JSON: the entities must survive as list items, not map keys.
        let back: MetadataImage = serde_json::from_slice(&serde_json::to_vec(&img).unwrap()).unwrap();
        assert_eq!(back.client_quotas, img.client_quotas);
        let refused = img.apply(Command::AlterClientQuotas {
            changes: vec![(alice.clone(), vec![(QuotaType::Fetch, Some(QuotaValue(-1.0)))])],
        });
        assert!(matches!(refused, Reply::Error { .. }));
        assert_eq!(img.client_quotas[&alice].len(), 2, "a refused change changes nothing");
        img.apply(Command::AlterClientQuotas {
            changes: vec![(
                alice.clone(),
                vec![(QuotaType::Produce, None), (QuotaType::Request, None)],
            )],
        });
        assert!(
            img.client_quotas.is_empty(),
            "an entity with no quota left is forgotten"
        );
    }
}
