//! The admin client against real skein-broker processes: one broker, and a
//! three-broker cluster where requests must be routed and partitions moved.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::Cluster;
use kafka_protocol::error::ResponseError;
use skein_client::{Admin, AdminOptions, AlterOp, ConfigResource, Error, NewTopic};
use skein_model::placement::assign_replicas;
use skein_model::plan::{plan, Assignments};

fn admin(bootstrap: &str) -> Admin {
    Admin::new(
        bootstrap,
        AdminOptions {
            timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            ..Default::default()
        },
    )
}

fn topic(name: &str, partitions: i32, rf: i16) -> NewTopic {
    NewTopic {
        name: name.into(),
        partitions: Some(partitions),
        replication_factor: Some(rf),
        ..Default::default()
    }
}

fn code<T: std::fmt::Debug>(r: Result<T, Error>) -> Option<ResponseError> {
    r.expect_err("expected an error").code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_and_configs_on_one_broker_with_typed_errors() {
    let c = Cluster::start(1, &[]);
    // A dead bootstrap address first: the client moves on to the next one.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let a = admin(&format!("127.0.0.1:{dead},{}", c.bootstrap()));

    let cluster = a.describe_cluster().await.unwrap();
    assert_eq!(cluster.brokers.len(), 1);
    assert_eq!(cluster.controller_id, 0);

    let mut t = topic("orders", 3, 1);
    t.configs.insert("retention.ms".into(), "3600000".into());
    a.create_topic(&t, true).await.unwrap();
    assert!(
        a.describe_topics(None)
            .await
            .unwrap()
            .iter()
            .all(|t| t.name != "orders"),
        "validate_only created it"
    );
    a.create_topic(&t, false).await.unwrap();
    assert_eq!(
        code(a.create_topic(&t, false).await),
        Some(ResponseError::TopicAlreadyExists)
    );
    assert_eq!(
        code(a.create_topic(&topic("bad/name", 1, 1), false).await),
        Some(ResponseError::InvalidTopicException)
    );

    let described = a.describe_topics(Some(&["orders".to_string()])).await.unwrap();
    assert_eq!(described[0].partitions.len(), 3);
    assert!(described[0]
        .partitions
        .iter()
        .all(|p| p.leader == 0 && p.isr == vec![0]));
    assert_eq!(
        code(a.describe_topics(Some(&["missing".to_string()])).await),
        Some(ResponseError::UnknownTopicOrPartition)
    );

    a.create_partitions("orders", 5, false).await.unwrap();
    assert_eq!(
        code(a.create_partitions("orders", 2, false).await),
        Some(ResponseError::InvalidPartitions)
    );
    let res = ConfigResource::Topic("orders".into());
    a.incremental_alter_configs(&res, &[AlterOp::Set("cleanup.policy".into(), "compact".into())], false)
        .await
        .unwrap();
    let configs = a.describe_configs(&res).await.unwrap();
    let get = |k: &str| configs.iter().find(|c| c.name == k).unwrap().clone();
    assert_eq!(get("cleanup.policy").value.as_deref(), Some("compact"));
    assert_eq!(get("retention.ms").source_name(), "DYNAMIC_TOPIC_CONFIG");
    assert_eq!(get("segment.bytes").source_name(), "DEFAULT_CONFIG");
    assert_eq!(
        code(
            a.incremental_alter_configs(&res, &[AlterOp::Set("retention.ms".into(), "soon".into())], false)
                .await
        ),
        Some(ResponseError::InvalidConfig)
    );
    let group = ConfigResource::Group("g".into());
    a.incremental_alter_configs(
        &group,
        &[AlterOp::Set("consumer.session.timeout.ms".into(), "50000".into())],
        false,
    )
    .await
    .unwrap();
    let g = a.describe_configs(&group).await.unwrap();
    assert!(g
        .iter()
        .any(|c| c.name == "consumer.session.timeout.ms" && c.value.as_deref() == Some("50000")));

    let sizes = a.describe_log_dirs(0).await.unwrap();
    assert_eq!(sizes.keys().filter(|(t, _)| t == "orders").count(), 5);

    a.delete_topic("orders").await.unwrap();
    assert_eq!(
        code(a.delete_topic("orders").await),
        Some(ResponseError::UnknownTopicOrPartition)
    );
    assert!(a.list_groups().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_cluster_is_a_timeout_not_a_hang() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let a = Admin::new(
        &format!("127.0.0.1:{dead}"),
        AdminOptions {
            timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(1),
            ..Default::default()
        },
    );
    let t0 = Instant::now();
    let e = a.describe_cluster().await.unwrap_err();
    assert!(matches!(e, Error::Timeout(_)), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(10));
}

/// DescribeQuorum sent to one broker, on a connection of its own: the leader it reports.
async fn describe_quorum_at(port: u16) -> i32 {
    use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
    use kafka_protocol::messages::{DescribeQuorumRequest, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let mut c = skein_client::Connection::connect(
        &format!("127.0.0.1:{port}"),
        "test".into(),
        Duration::from_secs(5),
        1 << 20,
    )
    .await
    .unwrap();
    let req = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
    let r = c.call(2, &req, Duration::from_secs(10)).await.unwrap();
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    r.topics[0].partitions[0].leader_id.0
}

/// Waits until no reassignment is in progress.
async fn wait_reassigned(a: &Admin) {
    let t0 = Instant::now();
    while !a.list_partition_reassignments().await.unwrap().is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(60), "reassignments did not finish");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_brokers_route_requests_and_drain_a_broker_by_the_plan() {
    let c = Cluster::start(3, &[]);
    // Bootstrap through broker 2 alone: routing must find the others.
    let a = admin(&format!("127.0.0.1:{}", c.ports[2]));
    let t0 = Instant::now();
    loop {
        let cluster = a.describe_cluster().await.unwrap();
        if cluster.brokers.iter().filter(|b| !b.fenced).count() == 3 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "three live brokers");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    a.create_topic(&topic("moved", 6, 2), false).await.unwrap();
    // The other brokers learn of the topic from the metadata log a moment later.
    let t0 = Instant::now();
    let described = loop {
        match a.describe_topics(Some(&["moved".to_string()])).await {
            Ok(t) => break t,
            Err(e) if e.code() == Some(ResponseError::UnknownTopicOrPartition) => {
                assert!(t0.elapsed() < Duration::from_secs(10), "{e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    let before: Assignments = described
        .into_iter()
        .map(|t| (t.name, t.partitions.into_iter().map(|p| p.replicas).collect()))
        .collect();
    assert_eq!(before["moved"], assign_replicas(&[0, 1, 2], 0, 6, 2).unwrap());

    // Drain broker 2: the plan over {0, 1}, executed through the admin client.
    let sizes = a.partition_sizes().await.unwrap();
    let p = plan(&before, &skein_model::placement::unracked(&[0, 1]), &sizes).unwrap();
    assert!(!p.is_empty());
    let changes: Vec<(String, i32, Option<Vec<i32>>)> = p
        .moves
        .iter()
        .map(|m| (m.topic.clone(), m.partition, Some(m.target.clone())))
        .collect();
    let results = a.alter_partition_reassignments(&changes).await.unwrap();
    assert!(results.iter().all(|(_, r)| r.is_ok()), "{results:?}");
    wait_reassigned(&a).await;
    let after = a.describe_topics(Some(&["moved".to_string()])).await.unwrap();
    let replicas: Vec<Vec<i32>> = after[0].partitions.iter().map(|p| p.replicas.clone()).collect();
    assert_eq!(replicas, assign_replicas(&[0, 1], 0, 6, 2).unwrap());
    assert_eq!(replicas, p.apply(&before)["moved"]);
    let on_2 = a.describe_log_dirs(2).await.unwrap();
    assert!(on_2.keys().all(|(t, _)| t != "moved"), "broker 2 still holds {on_2:?}");

    // Preferred leaders after the move; a reassignment of an unknown partition is refused.
    let elected = a.elect_leaders(true, None).await.unwrap();
    assert!(elected.iter().all(|(_, r)| r.is_ok()), "{elected:?}");
    let refused = a
        .alter_partition_reassignments(&[("moved".into(), 99, Some(vec![0, 1]))])
        .await
        .unwrap();
    assert_eq!(
        refused[0].1.as_ref().unwrap_err().code(),
        Some(ResponseError::UnknownTopicOrPartition)
    );

    // Broker-resource configs go to the broker named.
    let b1 = ConfigResource::Broker(Some(1));
    a.incremental_alter_configs(
        &b1,
        &[AlterOp::Set(
            "leader.replication.throttled.rate".into(),
            "1048576".into(),
        )],
        false,
    )
    .await
    .unwrap();
    let configs: BTreeMap<String, Option<String>> = a
        .describe_configs(&b1)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.name, c.value))
        .collect();
    assert_eq!(configs["leader.replication.throttled.rate"].as_deref(), Some("1048576"));

    // The metadata quorum: three voters, one leader, every voter caught up soon.
    let t0 = Instant::now();
    let quorum = loop {
        let q = a.describe_quorum().await.unwrap();
        if [0, 1, 2].iter().all(|id| q.lag(*id) == Some(0)) {
            break q;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "voters did not catch up: {q:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut voters: Vec<i32> = quorum.voters.iter().map(|m| m.id).collect();
    voters.sort();
    assert_eq!(voters, [0, 1, 2]);
    assert!((0..3).contains(&quorum.leader_id));
    assert!(quorum.high_watermark > 0 && quorum.leader_epoch >= 1);
    assert!(quorum.observers.is_empty());
    // Asked of any broker, DescribeQuorum comes from the leader: followers forward it.
    for port in &c.ports {
        let leader = describe_quorum_at(*port).await;
        assert_eq!(leader, quorum.leader_id, "broker on port {port}");
    }

    // UnregisterBroker: refused for an unknown or a running broker; broker 2,
    // drained above, is forgotten once it has stopped.
    assert_eq!(
        code(a.unregister_broker(7).await),
        Some(ResponseError::BrokerIdNotRegistered)
    );
    let running = a.unregister_broker(2).await.unwrap_err();
    assert_eq!(running.code(), Some(ResponseError::InvalidRequest));
    assert!(running.to_string().contains("is running"), "{running}");
    let mut c = c;
    c.kill(2);
    let t0 = Instant::now();
    loop {
        let cluster = a.describe_cluster().await.unwrap();
        if cluster.brokers.iter().any(|b| b.id == 2 && b.fenced) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "broker 2 not fenced: {cluster:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    a.unregister_broker(2).await.unwrap();
    let cluster = a.describe_cluster().await.unwrap();
    let ids: Vec<i32> = cluster.brokers.iter().map(|b| b.id).collect();
    assert_eq!(ids, [0, 1], "{cluster:?}");
}
