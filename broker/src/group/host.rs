//! What the group coordinator needs of the broker it runs in beyond any
//! coordinator's host (`crate::coordinator`): `cluster::Broker` implements
//! [`GroupHost`]. The coordinator never names it, so the arrow points one
//! way: cluster → group.

use std::collections::BTreeMap;

use super::consumer::TopicsView;
use super::GroupCoordinator;
use crate::coordinator::CoordinatorHost;

/// The broker as the group coordinator sees it.
pub trait GroupHost: CoordinatorHost {
    /// This broker's coordinator.
    fn coordinator(&self) -> &GroupCoordinator;
    /// Every topic's id and partition count, for the KIP-848 assignors.
    fn topics_view(&self) -> TopicsView;
    /// Whether the partition exists in the cluster (hosted here or not).
    fn has_partition(&self, topic: &str, partition: i32) -> bool;
    /// A group's own configs (resource type GROUP).
    fn group_configs(&self, group: &str) -> BTreeMap<String, String>;
}
