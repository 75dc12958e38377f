//! Committed offsets of groups without members expire after offsets.retention.minutes,
//! and the expiry survives a restart (it is written as tombstones).

use std::collections::BTreeMap;
use std::sync::Arc;

use skein_broker::cluster::{now_ms, Broker, NewTopic};
use skein_broker::config::BrokerConfig;
use skein_broker::controller::Controller;
use skein_broker::group::CommittedOffset;

/// A single-node broker in this process, started as `main` starts it.
async fn open(dir: &std::path::Path) -> Arc<Broker> {
    let mut m = BTreeMap::new();
    m.insert("log.dirs".to_string(), dir.display().to_string());
    m.insert("listeners".to_string(), "PLAINTEXT://127.0.0.1:0".to_string());
    m.insert("offsets.topic.num.partitions".to_string(), "3".to_string());
    let config = BrokerConfig::from_map(m).unwrap();
    let controller = Controller::start(&config).await.unwrap();
    let broker = Broker::open(config, controller).unwrap();
    broker.start().await.unwrap();
    broker
}

#[test]
fn old_offsets_of_empty_groups_expire_and_stay_expired_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let broker = rt.block_on(open(dir.path()));
    rt.block_on(async {
        let t = NewTopic {
            name: "t".into(),
            partitions: 2,
            replication_factor: 1,
            assignments: vec![],
            configs: BTreeMap::new(),
        };
        broker.create_topic(t).await.unwrap();
        let now = now_ms();
        let old = CommittedOffset {
            offset: 1,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: now - 120_000,
        };
        let fresh = CommittedOffset {
            commit_timestamp: now,
            offset: 2,
            ..old.clone()
        };
        broker
            .groups
            .commit(&broker, "g", vec![("t".into(), 0, old), ("t".into(), 1, fresh)])
            .await
            .unwrap();
        assert_eq!(broker.groups.expire_offsets(&broker, now, 60_000).await, 1);
    });
    let remaining: Vec<(String, i32)> = broker.groups.committed("g").into_keys().collect();
    assert_eq!(remaining, vec![("t".to_string(), 1)]);
    broker.shutdown().unwrap();
    rt.block_on(broker.controller.raft.shutdown()).unwrap();
    drop(broker);
    let broker = rt.block_on(open(dir.path()));
    let remaining: Vec<(String, i32)> = broker.groups.committed("g").into_keys().collect();
    assert_eq!(remaining, vec![("t".to_string(), 1)], "the tombstone was replayed");
}
