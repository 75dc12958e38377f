//! The Topic reconciler: one Kafka topic per resource, through the cluster's admin API.
//!
//! Reads the resource, its cluster and the topic; plans with `plan` (pure); carries
//! out CreateTopics, CreatePartitions and IncrementalAlterConfigs; writes status.
//! It never deletes a topic it does not own (an older resource naming the same
//! topic owns it) or one whose resource says `deletionPolicy: Retain`.

pub mod plan;

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use kafka_protocol::ResponseError;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{finalizer, Event as Finalizer};
use kube::{Resource, ResourceExt};
use serde_json::json;
use skein_client::{Admin, ConfigResource, NewTopic};

use crate::cluster::build::FIELD_MANAGER;
use crate::context::Context;
use crate::crd::{condition, set_condition, DeletionPolicy, KafkaCluster, Topic, TopicStatus};
use crate::error::Error;
use plan::{Current, Step};
use skein_model::placement::RackedBroker;

/// Finalizer that deletes the Kafka topic per `deletionPolicy`.
pub const FINALIZER: &str = "skein.dev/topic";

/// Reconciles one Topic.
pub async fn reconcile(kt: Arc<Topic>, ctx: Arc<Context>) -> Result<Action, Error> {
    let timer = ctx.metrics.start("Topic");
    let key = format!("Topic/{}/{}", kt.namespace().unwrap_or_default(), kt.name_any());
    let api: Api<Topic> = Api::namespaced(ctx.client.clone(), &kt.namespace().unwrap_or_default());
    let result = finalizer(&api, FINALIZER, kt, |event| async {
        match event {
            // Boxed: a concrete Send future, which rustc cannot prove for the generic one.
            Finalizer::Apply(kt) => apply(&kt, &ctx).boxed().await,
            Finalizer::Cleanup(kt) => cleanup(&kt, &ctx).boxed().await,
        }
    })
    .await
    .map_err(Error::from);
    timer.finish();
    if result.is_ok() {
        ctx.succeeded(&key);
    }
    result
}

/// What the controller does after a failed reconcile: count it, back off.
pub fn error_policy(kt: Arc<Topic>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failure("Topic", error.reason());
    tracing::warn!(topic = %kt.name_any(), namespace = %kt.namespace().unwrap_or_default(), reason = error.reason(), "reconcile failed: {error}");
    let key = format!("Topic/{}/{}", kt.namespace().unwrap_or_default(), kt.name_any());
    Action::requeue(ctx.backoff(&key))
}

/// The resource's cluster, if it exists and is not being deleted.
async fn cluster_of(kt: &Topic, ctx: &Context) -> Result<Option<KafkaCluster>, Error> {
    let api: Api<KafkaCluster> = Api::namespaced(ctx.client.clone(), &kt.namespace().unwrap_or_default());
    Ok(api
        .get_opt(&kt.spec.cluster)
        .await?
        .filter(|kc| kc.metadata.deletion_timestamp.is_none()))
}

/// The name of the Topic resource that owns `kt`'s Kafka topic.
async fn owner_of(kt: &Topic, ctx: &Context) -> Result<String, Error> {
    let api: Api<Topic> = Api::namespaced(ctx.client.clone(), &kt.namespace().unwrap_or_default());
    let name = kt.topic_name();
    let claimants: Vec<(String, String)> = api
        .list(&Default::default())
        .await?
        .into_iter()
        .filter(|t| t.spec.cluster == kt.spec.cluster && t.topic_name() == name)
        .filter(|t| t.metadata.deletion_timestamp.is_none() || t.uid() == kt.uid())
        .map(|t| {
            let created = t
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|c| c.0.to_string())
                .unwrap_or_default();
            (created, t.name_any())
        })
        .collect();
    Ok(plan::owner(&claimants).unwrap_or_default().to_string())
}

/// The topic as the cluster reports it, or None when it does not exist.
async fn current(admin: &Admin, name: &str) -> Result<Option<Current>, Error> {
    let info = match admin.describe_topics(Some(&[name.to_string()])).await {
        Ok(mut v) if !v.is_empty() => v.remove(0),
        Ok(_) => return Ok(None),
        Err(skein_client::Error::Kafka {
            code: ResponseError::UnknownTopicOrPartition,
            ..
        }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let configs = admin
        .describe_configs(&ConfigResource::Topic(name.to_string()))
        .await?
        .into_iter()
        .filter(|e| e.source == 1)
        .filter_map(|e| Some((e.name, e.value?)))
        .collect();
    Ok(Some(Current {
        id: info.id,
        partitions: info.partitions.len() as i32,
        replication_factor: info.partitions.first().map(|p| p.replicas.len() as i16).unwrap_or(0),
        configs,
    }))
}

async fn apply(kt: &Topic, ctx: &Context) -> Result<Action, Error> {
    let ns = kt.namespace().unwrap_or_default();
    let api: Api<Topic> = Api::namespaced(ctx.client.clone(), &ns);
    let name = kt.topic_name();
    let g = kt.metadata.generation;
    let mut st = kt.status.clone().unwrap_or_default();
    st.observed_generation = g;
    let not_ready = |st: &mut TopicStatus, reason: &str, msg: String| {
        set_condition(&mut st.conditions, condition("Ready", false, reason, msg, g));
    };

    let errors = plan::validate(&name, &kt.spec);
    let recorded = st.topic_name.clone();
    if !errors.is_empty() || recorded.as_ref().is_some_and(|r| *r != name) {
        let msg = match recorded.filter(|r| *r != name) {
            Some(r) => format!("topicName is immutable: this resource manages {r:?}"),
            None => errors.join("; "),
        };
        if !condition::is_reason(&st.conditions, "Ready", "InvalidSpec") {
            ctx.event(kt, true, "InvalidSpec", msg.clone()).await;
        }
        not_ready(&mut st, "InvalidSpec", msg);
        write_status(&api, kt, &st).await?;
        return Ok(Action::await_change());
    }
    let Some(kc) = cluster_of(kt, ctx).await? else {
        not_ready(
            &mut st,
            "ClusterNotFound",
            format!("no KafkaCluster {ns}/{}", kt.spec.cluster),
        );
        write_status(&api, kt, &st).await?;
        return Ok(Action::requeue(Duration::from_secs(10)));
    };
    let bootstrap = kc.status.as_ref().and_then(|s| s.bootstrap_servers.clone());
    let cluster_up = matches!(
        kc.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Ready" | "Degraded" | "Scaling" | "Rolling")
    );
    if bootstrap.is_none() || !cluster_up {
        not_ready(
            &mut st,
            "ClusterNotReady",
            format!("KafkaCluster {} is not ready", kt.spec.cluster),
        );
        write_status(&api, kt, &st).await?;
        return Ok(Action::requeue(Duration::from_secs(5)));
    };
    let owner = owner_of(kt, ctx).await?;
    if owner != kt.name_any() {
        let msg = format!("topic {name:?} is managed by Topic {owner}; this resource changes nothing");
        if !condition::is_reason(&st.conditions, "Ready", "DuplicateTopic") {
            ctx.event(kt, true, "DuplicateTopic", msg.clone()).await;
        }
        not_ready(&mut st, "DuplicateTopic", msg);
        write_status(&api, kt, &st).await?;
        return Ok(Action::requeue(ctx.drift_interval));
    }

    let admin = crate::cluster::admin_for(ctx, &kc).await?;
    let before = current(&admin, &name).await?;
    let synced = kt
        .status
        .as_ref()
        .is_some_and(|s| s.observed_generation == g && s.topic_id.is_some())
        && condition::is_true(&st.conditions, "Ready");
    let plan = plan::plan(&kt.spec, before.as_ref(), synced);
    for step in &plan.steps {
        match step {
            Step::Create => {
                let t = NewTopic {
                    name: name.clone(),
                    partitions: Some(kt.spec.partitions),
                    replication_factor: Some(kt.spec.replication_factor),
                    assignments: vec![],
                    configs: kt.spec.config.clone(),
                };
                match admin.create_topic(&t, false).await {
                    Ok(()) => ctx.event(kt, false, "Created", format!("topic {name} created")).await,
                    // Created between our look and now (another operator replica, a client): adopt it.
                    Err(skein_client::Error::Kafka {
                        code: ResponseError::TopicAlreadyExists,
                        ..
                    }) => {}
                    Err(e) => return fail(&api, kt, st, "CreateFailed", e).await,
                }
            }
            Step::AddPartitions(n) => {
                if let Err(e) = admin.create_partitions(&name, *n, false).await {
                    return fail(&api, kt, st, "CreatePartitionsFailed", e).await;
                }
                ctx.event(
                    kt,
                    false,
                    "PartitionsAdded",
                    format!("topic {name} now has {n} partitions"),
                )
                .await;
            }
            Step::AlterConfigs(ops) => {
                if let Err(e) = admin
                    .incremental_alter_configs(&ConfigResource::Topic(name.clone()), ops, false)
                    .await
                {
                    return fail(&api, kt, st, "AlterConfigsFailed", e).await;
                }
            }
        }
    }
    if before.is_some() && st.topic_id.is_none() {
        ctx.event(
            kt,
            false,
            "Adopted",
            format!("topic {name} already existed; it is now managed here"),
        )
        .await;
    }
    if !plan.drift.is_empty() {
        let msg = format!(
            "reverted configs changed outside the operator: {}",
            plan.drift.join(", ")
        );
        ctx.event(kt, true, "DriftReverted", msg.clone()).await;
        set_condition(
            &mut st.conditions,
            condition("DriftReverted", true, "ConfigsChanged", msg, g),
        );
    }
    let after = if plan.steps.is_empty() {
        before
    } else {
        current(&admin, &name).await?
    };
    st.topic_name = Some(name.clone());
    if let Some(cur) = &after {
        st.topic_id = Some(cur.id.clone());
        st.partitions = Some(cur.partitions);
        st.replication_factor = Some(cur.replication_factor);
    }
    match (&plan.blocked, after.is_some()) {
        (Some((reason, msg)), _) => {
            if !condition::is_reason(&st.conditions, "Ready", reason) {
                ctx.event(kt, true, reason, msg.clone()).await;
            }
            not_ready(&mut st, reason, msg.clone());
        }
        (None, true) => set_condition(&mut st.conditions, condition("Ready", true, "TopicReady", "", g)),
        (None, false) => not_ready(&mut st, "Creating", format!("topic {name} not visible yet")),
    }
    // A replication factor change: partition reassignments by the classic rule.
    let was_pending = condition::is_true(&st.conditions, "ReplicationFactorPending");
    let pending = if after.is_some() && (plan.rf_pending.is_some() || was_pending) {
        replicate(&admin, kt, &kc, &name).await?
    } else {
        None
    };
    set_condition(
        &mut st.conditions,
        match &pending {
            Some((reason, msg)) => condition("ReplicationFactorPending", true, reason, msg.clone(), g),
            None => condition("ReplicationFactorPending", false, "AsSpecified", "", g),
        },
    );
    if was_pending && pending.is_none() {
        ctx.event(
            kt,
            false,
            "ReplicationFactorChanged",
            format!("every partition has {} replicas", kt.spec.replication_factor),
        )
        .await;
    }
    write_status(&api, kt, &st).await?;
    Ok(Action::requeue(if pending.is_some() {
        Duration::from_secs(3)
    } else if after.is_some() {
        ctx.drift_interval
    } else {
        Duration::from_secs(2)
    }))
}

/// One round of a replication factor change: starts the moves the cluster's
/// in-flight limit allows; returns the condition's (reason, message) while the
/// change is under way, None once every partition is on its target.
async fn replicate(
    admin: &skein_client::Admin,
    kt: &Topic,
    kc: &KafkaCluster,
    name: &str,
) -> Result<Option<(&'static str, String)>, Error> {
    let rf = kt.spec.replication_factor;
    let info = admin.describe_topics(Some(&[name.to_string()])).await?;
    let replicas: Vec<Vec<i32>> = info
        .first()
        .map(|t| t.partitions.iter().map(|p| p.replicas.clone()).collect())
        .unwrap_or_default();
    let in_flight: std::collections::BTreeSet<i32> = admin
        .list_partition_reassignments()
        .await?
        .into_iter()
        .filter(|r| r.topic == name)
        .map(|r| r.partition)
        .collect();
    let brokers: Vec<RackedBroker> = admin
        .describe_cluster()
        .await?
        .brokers
        .iter()
        .filter(|b| !b.fenced)
        .map(|b| RackedBroker {
            id: b.id,
            rack: b.rack.clone(),
        })
        .collect();
    let limit = kc.spec.rebalance.max_moves_in_flight.max(1) as usize;
    let moves = match plan::rf_moves(&replicas, &in_flight, &brokers, rf, limit) {
        Ok(m) => m,
        Err(e) => return Ok(Some(("ReplicationFactorRefused", e))),
    };
    if moves.left == 0 {
        return Ok(None);
    }
    if !moves.start.is_empty() {
        let changes: Vec<(String, i32, Option<Vec<i32>>)> = moves
            .start
            .iter()
            .map(|(p, r)| (name.to_string(), *p, Some(r.clone())))
            .collect();
        for (p, target) in &moves.start {
            tracing::info!(topic = %name, partition = p, ?target, "reassigning partition for replication factor {rf}");
        }
        for ((t, p), r) in admin.alter_partition_reassignments(&changes).await? {
            if let Err(e) = r {
                tracing::warn!(topic = %t, partition = p, "reassignment refused: {e}");
            }
        }
    }
    Ok(Some((
        "Reassigning",
        format!(
            "replication factor -> {rf}: {} of {} partitions still moving",
            moves.left,
            replicas.len()
        ),
    )))
}

/// A Kafka error that the spec can cause: reported on the resource, retried later.
async fn fail(
    api: &Api<Topic>,
    kt: &Topic,
    mut st: TopicStatus,
    reason: &str,
    e: skein_client::Error,
) -> Result<Action, Error> {
    set_condition(
        &mut st.conditions,
        condition("Ready", false, reason, e.to_string(), kt.metadata.generation),
    );
    write_status(api, kt, &st).await?;
    Err(e.into())
}

/// A deleted resource: delete the topic per `deletionPolicy`, unless another resource owns it or the cluster is gone.
async fn cleanup(kt: &Topic, ctx: &Context) -> Result<Action, Error> {
    let name = kt.topic_name();
    if kt.spec.deletion_policy == DeletionPolicy::Retain {
        return Ok(Action::await_change());
    }
    let Some(kc) = cluster_of(kt, ctx).await? else {
        tracing::info!(topic = %name, "cluster gone; releasing the Topic resource");
        return Ok(Action::await_change());
    };
    if owner_of(kt, ctx).await? != kt.name_any() || kt.status.as_ref().and_then(|s| s.topic_id.as_ref()).is_none() {
        // Not the manager of this topic (or never created it): the topic stays.
        return Ok(Action::await_change());
    }
    if kc.status.as_ref().and_then(|s| s.bootstrap_servers.as_ref()).is_none() {
        return Err(Error::ClusterNotReady(kt.spec.cluster.clone()));
    }
    let admin = crate::cluster::admin_for(ctx, &kc).await?;
    match admin.delete_topic(&name).await {
        Ok(()) => {}
        Err(skein_client::Error::Kafka {
            code: ResponseError::UnknownTopicOrPartition,
            ..
        }) => {}
        Err(e) => return Err(e.into()),
    }
    tracing::info!(topic = %name, "topic deleted (deletionPolicy: Delete)");
    Ok(Action::await_change())
}

async fn write_status(api: &Api<Topic>, kt: &Topic, st: &TopicStatus) -> Result<(), Error> {
    let patch = json!({ "apiVersion": Topic::api_version(&()), "kind": Topic::kind(&()), "status": st });
    api.patch_status(
        &kt.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}
