//! Admin operations: topics, partitions, configs and producer-id blocks, each
//! validated here and proposed to the controller, then awaited until this
//! broker's image shows it. Protocol handlers call these; nothing here touches
//! a local replica directly.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::*;
use crate::config;
use crate::controller::image::{Command, MetadataImage, Reply};

impl Broker {
    /// Validates a new topic (name, counts, assignment, configs) without creating it.
    pub fn validate_new_topic(&self, t: &NewTopic) -> Result<(), AdminError> {
        skein_model::topic_name::validate(&t.name)?;
        if self.controller.with_image(|img| img.topics.contains_key(&t.name)) {
            return Err(AdminError::new(
                ResponseError::TopicAlreadyExists,
                format!("Topic '{}' already exists.", t.name),
            ));
        }
        let brokers = self
            .controller
            .with_image(|img| img.brokers.keys().copied().collect::<Vec<_>>());
        if !t.assignments.is_empty() {
            for (p, replicas) in t.assignments.iter().enumerate() {
                let mut seen = replicas.clone();
                seen.sort_unstable();
                seen.dedup();
                if replicas.is_empty() || seen.len() != replicas.len() || replicas.iter().any(|b| !brokers.contains(b))
                {
                    return Err(AdminError::new(
                        ResponseError::InvalidReplicaAssignment,
                        format!("Invalid replica assignment for partition {p}: {replicas:?} (brokers: {brokers:?})"),
                    ));
                }
            }
        } else {
            if t.partitions <= 0 {
                return Err(AdminError::new(
                    ResponseError::InvalidPartitions,
                    "Number of partitions must be larger than 0.",
                ));
            }
            if t.replication_factor <= 0 {
                return Err(AdminError::new(
                    ResponseError::InvalidReplicationFactor,
                    "Replication factor must be larger than 0.",
                ));
            }
            let live = self.controller.with_image(MetadataImage::placeable_brokers).len();
            if t.replication_factor as usize > live {
                return Err(AdminError::new(
                    ResponseError::InvalidReplicationFactor,
                    format!(
                        "Unable to replicate the partition {} time(s): The target replication factor of {} cannot be reached because only {} broker(s) are registered.",
                        t.replication_factor, t.replication_factor, live
                    ),
                ));
            }
        }
        for (k, v) in &t.configs {
            config::validate_topic_config(k, Some(v))?;
        }
        Ok(())
    }

    /// Creates a topic (validated first) through the controller, and waits until
    /// this broker has applied it.
    pub async fn create_topic(self: &Arc<Self>, t: NewTopic) -> Result<Arc<Topic>, AdminError> {
        self.validate_new_topic(&t)?;
        let assignments = if t.assignments.is_empty() {
            self.controller
                .with_image(|img| img.place(0, t.partitions, t.replication_factor))
                .map_err(|e| AdminError::new(ResponseError::InvalidReplicationFactor, e.to_string()))?
        } else {
            t.assignments.clone()
        };
        let partitions = assignments.len();
        let cmd = Command::CreateTopic {
            name: t.name.clone(),
            id: Uuid::new_v4(),
            configs: t.configs.clone(),
            assignments,
        };
        refused(self.controller.propose(cmd).await?)?;
        self.await_image(|img| img.topics.contains_key(&t.name)).await;
        tracing::info!(topic = %t.name, partitions, "created topic");
        self.topic(&t.name).ok_or_else(|| not_found(&t.name))
    }

    /// The "controller" Metadata and DescribeCluster name: this broker, as in
    /// KRaft, where it is a live broker rather than the quorum's leader. Every
    /// broker forwards controller requests (CreateTopics, ElectLeaders, ...) to
    /// the active controller, and naming the broker the client is already
    /// talking to means a client never waits on a controller that just died:
    /// librdkafka caches the controller id until its next metadata refresh.
    pub fn controller_id_for_clients(&self) -> i32 {
        self.node_id
    }

    /// Creates a topic with the broker's defaults, for auto-creation.
    pub async fn auto_create_topic(self: &Arc<Self>, name: &str) -> Result<Arc<Topic>, AdminError> {
        let live = self
            .controller
            .with_image(MetadataImage::placeable_brokers)
            .len()
            .max(1);
        let t = NewTopic {
            name: name.to_string(),
            partitions: self.config.num_partitions(),
            replication_factor: self.config.default_replication_factor().min(live as i16),
            assignments: Vec::new(),
            configs: BTreeMap::new(),
        };
        match self.create_topic(t).await {
            Err(e) if e.code == ResponseError::TopicAlreadyExists => {
                self.wait_for_topic(name).await;
                self.topic(name).ok_or(e)
            }
            other => other,
        }
    }

    /// UnregisterBroker: forgets a stopped broker that holds no replicas.
    pub async fn unregister_broker(self: &Arc<Self>, id: i32) -> Result<(), AdminError> {
        refused(self.controller.propose(Command::UnregisterBroker { id }).await?)?;
        tracing::info!(broker = id, "unregistered broker");
        Ok(())
    }

    /// Deletes a topic through the controller; every replica's data is removed when the brokers apply it.
    pub async fn delete_topic(self: &Arc<Self>, name: &str) -> Result<(), AdminError> {
        if !self.config.delete_topic_enable() {
            return Err(AdminError::new(
                ResponseError::TopicDeletionDisabled,
                "Topic deletion is disabled.",
            ));
        }
        refused(
            self.controller
                .propose(Command::DeleteTopic { name: name.to_string() })
                .await?,
        )?;
        self.await_image(|img| !img.topics.contains_key(name)).await;
        tracing::info!(topic = name, "deleted topic");
        Ok(())
    }

    /// Raises a topic's partition count; new partitions are placed by the classic rule.
    pub async fn create_partitions(
        self: &Arc<Self>,
        name: &str,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let (current, rf) = self
            .controller
            .with_image(|img| {
                img.topics.get(name).map(|t| {
                    (
                        t.partitions.len() as i32,
                        t.partitions.first().map_or(1, |p| p.target_replicas().len() as i16),
                    )
                })
            })
            .ok_or_else(|| not_found(name))?;
        if count < current {
            return Err(AdminError::new(
                ResponseError::InvalidPartitions,
                format!("Topic currently has {current} partitions, which is higher than the requested {count}."),
            ));
        }
        if count == current {
            return Err(AdminError::new(
                ResponseError::InvalidPartitions,
                format!("Topic already has {current} partitions."),
            ));
        }
        let assignments = match assignments {
            Some(a) => {
                let brokers = self
                    .controller
                    .with_image(|img| img.brokers.keys().copied().collect::<Vec<_>>());
                if a.len() as i32 != count - current {
                    return Err(AdminError::new(
                        ResponseError::InvalidReplicaAssignment,
                        format!(
                            "Increasing the number of partitions by {} but {} assignments provided.",
                            count - current,
                            a.len()
                        ),
                    ));
                }
                if a.iter().any(|r| r.is_empty() || r.iter().any(|b| !brokers.contains(b))) {
                    return Err(AdminError::new(
                        ResponseError::InvalidReplicaAssignment,
                        format!("Unknown broker in assignment {a:?}"),
                    ));
                }
                a
            }
            None => self
                .controller
                .with_image(|img| img.place(current, count - current, rf))
                .map_err(|e| AdminError::new(ResponseError::InvalidReplicationFactor, e.to_string()))?,
        };
        if validate_only {
            return Ok(());
        }
        refused(
            self.controller
                .propose(Command::CreatePartitions {
                    name: name.to_string(),
                    assignments,
                })
                .await?,
        )?;
        self.await_image(|img| img.topics.get(name).is_some_and(|t| t.partitions.len() as i32 >= count))
            .await;
        tracing::info!(topic = name, from = current, to = count, "added partitions");
        Ok(())
    }

    /// Replaces a topic's config overrides (validated first) through the controller.
    pub async fn set_topic_configs(
        self: &Arc<Self>,
        name: &str,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        if !self.controller.with_image(|img| img.topics.contains_key(name)) {
            return Err(not_found(name));
        }
        for (k, v) in &overrides {
            config::validate_topic_config(k, Some(v))?;
        }
        if validate_only {
            return Ok(());
        }
        let cmd = Command::SetTopicConfigs {
            name: name.to_string(),
            configs: overrides.clone(),
        };
        refused(self.controller.propose(cmd).await?)?;
        self.await_image(|img| img.topics.get(name).is_some_and(|t| t.configs == overrides))
            .await;
        Ok(())
    }

    /// A dynamic broker config (throttle rates): the metadata image's value for this
    /// broker, else the cluster-wide one, else the static config.
    pub fn dynamic_u64(&self, key: &str) -> u64 {
        self.controller
            .with_image(|img| {
                img.broker_config(self.node_id, key)
                    .and_then(|v| v.trim().parse::<u64>().ok())
            })
            .unwrap_or_else(|| self.config.static_u64(key))
    }

    /// The dynamic configs of broker resource `resource` ("" for all brokers).
    pub fn broker_overrides(&self, resource: &str) -> BTreeMap<String, String> {
        self.controller
            .with_image(|img| img.broker_configs.get(resource).cloned())
            .unwrap_or_default()
    }

    /// Replaces the dynamic configs of a broker resource through the controller.
    pub async fn set_broker_configs(
        self: &Arc<Self>,
        resource: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        if !resource.is_empty() && resource.parse::<i32>().is_err() {
            return Err(AdminError::new(
                ResponseError::InvalidRequest,
                format!("Invalid broker id '{resource}'"),
            ));
        }
        for (k, v) in &configs {
            config::validate_dynamic_broker_config(k, v)?;
        }
        let mine = resource.is_empty() || resource == self.node_id.to_string();
        if mine && configs.keys().any(|k| config::is_dynamic_listener_tls_key(k)) {
            self.check_tls_overrides(resource, &configs)?;
        }
        if validate_only {
            return Ok(());
        }
        let cmd = Command::SetBrokerConfigs {
            resource: resource.to_string(),
            configs: configs.clone(),
        };
        self.propose_configs(cmd, |img| img.broker_configs.get(resource), &configs)
            .await
    }

    /// Whether this broker's TLS listeners (the quorum's included) would have
    /// usable stores with `configs` as the dynamic configs of `resource`
    /// (this broker's id, or "" for the cluster's defaults): a path that
    /// cannot be read, a key that does not fit its certificate or a store
    /// that is not PEM is refused here, as Kafka refuses it, rather than
    /// accepted and then ignored by the reload.
    fn check_tls_overrides(&self, resource: &str, configs: &BTreeMap<String, String>) -> Result<(), AdminError> {
        let effective = self.controller.with_image(|img| {
            let own = img.broker_configs.get(&self.node_id.to_string());
            if resource.is_empty() {
                self.config.overlaid(&[Some(configs), own])
            } else {
                self.config.overlaid(&[img.broker_configs.get(""), Some(configs)])
            }
        });
        let map = effective.security_protocol_map();
        let controller = effective.controller_listener_name();
        let tls = effective
            .listeners()
            .into_iter()
            .map(|l| l.name)
            .chain(std::iter::once(controller))
            .filter(|name| matches!(map.get(name).map(String::as_str), Some("SSL" | "SASL_SSL")));
        for name in tls {
            crate::security::tls::TlsSettings::from_config(&effective, &name)
                .and_then(|s| s.check())
                .map_err(|e| AdminError::new(ResponseError::InvalidConfig, e.to_string()))?;
        }
        Ok(())
    }

    /// The dynamic configs of a group (empty for a group with none, or no such group).
    pub fn group_overrides(&self, group: &str) -> BTreeMap<String, String> {
        self.controller
            .with_image(|img| img.group_configs.get(group).cloned())
            .unwrap_or_default()
    }

    /// UpdateFeatures: each (feature, level, upgrade type) is checked against
    /// the level the cluster has; then all are applied, or none if one is refused.
    pub async fn update_features(
        self: &Arc<Self>,
        updates: &[(String, i16, i8)],
        validate_only: bool,
    ) -> Result<(), AdminError> {
        use crate::controller::features;
        let current: Vec<i16> = self
            .controller
            .with_image(|img| updates.iter().map(|(name, _, _)| img.feature_level(name)).collect());
        for ((name, level, upgrade_type), cur) in updates.iter().zip(current) {
            features::check_update(name, cur, *level, *upgrade_type)
                .map_err(|(code, why)| AdminError::new(code, why))?;
        }
        if validate_only {
            return Ok(());
        }
        for (name, level, _) in updates {
            refused(
                self.controller
                    .propose(Command::SetFeatureLevel {
                        name: name.clone(),
                        level: *level,
                    })
                    .await?,
            )?;
        }
        self.controller
            .wait_for(Duration::from_secs(10), |img| {
                updates.iter().all(|(name, level, _)| img.feature_level(name) == *level)
            })
            .await;
        Ok(())
    }

    /// Replaces the dynamic configs of a group through the controller.
    pub async fn set_group_configs(
        self: &Arc<Self>,
        group: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        if group.is_empty() {
            return Err(AdminError::new(
                ResponseError::InvalidRequest,
                "Group name must not be empty",
            ));
        }
        for (k, v) in &configs {
            config::validate_group_config(&self.config, k, v)?;
        }
        if validate_only {
            return Ok(());
        }
        let cmd = Command::SetGroupConfigs {
            group: group.to_string(),
            configs: configs.clone(),
        };
        self.propose_configs(cmd, |img| img.group_configs.get(group), &configs)
            .await
    }

    /// Proposes a replacement of one resource's dynamic configs, then waits
    /// until this broker's image holds `configs` where `current` looks.
    async fn propose_configs(
        &self,
        cmd: Command,
        current: impl Fn(&MetadataImage) -> Option<&BTreeMap<String, String>>,
        configs: &BTreeMap<String, String>,
    ) -> Result<(), AdminError> {
        refused(self.controller.propose(cmd).await?)?;
        self.controller
            .wait_for(Duration::from_secs(10), |img| {
                current(img).map_or(configs.is_empty(), |c| c == configs)
            })
            .await;
        Ok(())
    }

    /// Hands out a producer id from a block the controller allocated to this broker,
    /// so two brokers never hand out the same id.
    pub async fn allocate_producer_id(&self) -> Result<i64, AdminError> {
        let new_block = || async {
            let reply = self
                .controller
                .propose(Command::AllocateProducerIds { broker: self.node_id })
                .await?;
            match refused(reply)? {
                Reply::ProducerIds(start) => Ok(start),
                _ => Err(AdminError::new(
                    ResponseError::UnknownServerError,
                    "no producer-id block",
                )),
            }
        };
        self.producer_ids
            .allocate(crate::controller::image::PRODUCER_ID_BLOCK, new_block)
            .await
    }
}
