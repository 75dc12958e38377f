"""The operator on a real Kubernetes API server (see conftest.py): helm install,
a KafkaCluster of three brokers that real clients use, Topic resources, refused
specs, a broker pod deleted, and deletion with each volume policy."""

import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

NS_CLUSTER = "demo"


def cluster(ns, name, replicas=3, controllers=3, config=None, when_deleted="Retain", **spec):
    return {
        "apiVersion": "skein.dev/v1alpha1", "kind": "KafkaCluster",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": replicas, "controllers": controllers,
                 "config": config if config is not None else {
                     "default.replication.factor": str(min(3, replicas)),
                     "offsets.topic.replication.factor": str(min(3, replicas)),
                     "min.insync.replicas": "2" if replicas >= 3 else "1",
                     "broker.session.timeout.ms": "4000", "replica.lag.time.max.ms": "4000"},
                 "storage": {"size": "1Gi", "whenDeleted": when_deleted}, **spec},
    }


def topic(ns, name, partitions, rf=3, config=None, cluster_name=NS_CLUSTER, **spec):
    return {
        "apiVersion": "skein.dev/v1alpha1", "kind": "Topic",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"cluster": cluster_name, "partitions": partitions, "replicationFactor": rf,
                 **({"config": config} if config else {}), **spec},
    }


@pytest.fixture(scope="module")
def demo(k8s):
    """A KafkaCluster of three brokers, Ready; shared by the tests of this module."""
    ns = k8s.namespace()
    start = time.time()
    k8s.apply(cluster(ns, NS_CLUSTER))
    kc = k8s.wait_condition("kafkaclusters", ns, NS_CLUSTER, "Ready", timeout=240)
    print(f"KafkaCluster of 3 Ready {time.time() - start:.1f} s after apply")
    return ns, kc


def admin(kc):
    return AdminClient({"bootstrap.servers": kc["status"]["bootstrapServers"]})


def produce(kc, topic_name, prefix, n):
    p = Producer({"bootstrap.servers": kc["status"]["bootstrapServers"], "acks": "all",
                  "enable.idempotence": True, "message.timeout.ms": 60000})
    failed = []
    for i in range(n):
        p.produce(topic_name, key=f"{prefix}-{i}", value=f"{prefix}-{i}",
                  on_delivery=lambda err, msg: err and failed.append(err))
        p.poll(0)
    assert p.flush(90) == 0
    assert failed == [], failed[:3]


def consume_all(kc, topic_name, expected):
    c = Consumer({"bootstrap.servers": kc["status"]["bootstrapServers"], "group.id": f"g-{uuid.uuid4().hex[:6]}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic_name])
    seen = []
    deadline = time.time() + 90
    while len(seen) < expected and time.time() < deadline:
        m = c.poll(1.0)
        if m is not None and not m.error():
            seen.append(m.value().decode())
    c.close()
    return seen


def placement_ok(md_topic, brokers):
    """Partition i's replica j on broker (i + j) mod n over the sorted broker ids."""
    n = len(brokers)
    for pid, p in md_topic.partitions.items():
        want = [brokers[(pid + j) % n] for j in range(len(p.replicas))]
        if list(p.replicas) != want:
            return f"partition {pid}: replicas {list(p.replicas)}, rule says {want}"
    return None


def test_helm_install_and_a_cluster_of_three_serves_real_clients(k8s, demo):
    ns, kc = demo
    assert "kubectl apply -f examples/kafkacluster.yaml" in k8s.install_output
    st = kc["status"]
    assert st["bootstrapServers"] == f"{NS_CLUSTER}-bootstrap.{ns}.svc.cluster.local:9092"
    assert st["readyReplicas"] == 3 and st["phase"] == "Ready" and len(st["clusterId"]) == 22
    assert [b["id"] for b in st["brokers"]] == [0, 1, 2]
    table = k8s.kubectl("get", "kc", "-n", ns)
    for column in ("DESIRED", "READY", "BOOTSTRAP", "STATUS", "AGE"):
        assert column in table, table
    assert "Ready" in table.splitlines()[1]
    sts = k8s.kube.get(f"/apis/apps/v1/namespaces/{ns}/statefulsets/{NS_CLUSTER}")
    assert sts["spec"]["updateStrategy"]["type"] == "OnDelete"
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    # The scale subresource reads the spec and the status.
    scale = k8s.kube.get(f"/apis/skein.dev/v1alpha1/namespaces/{ns}/kafkaclusters/{NS_CLUSTER}/scale")
    assert scale["spec"]["replicas"] == 3 and scale["status"]["replicas"] == 3
    assert "app.kubernetes.io/instance=demo" in scale["status"]["selector"]

    a = admin(kc)
    a.create_topics([NewTopic("clients", 3, 3)])["clients"].result(30)
    produce(kc, "clients", "r", 2000)
    got = consume_all(kc, "clients", 2000)
    assert sorted(got) == sorted(f"r-{i}" for i in range(2000))


def test_a_topic_is_created_grown_placed_by_the_rule_and_kept_as_declared(k8s, demo):
    ns, kc = demo
    k8s.apply(topic(ns, "orders", 3, config={"retention.ms": "3600000"}))
    kt = k8s.wait_condition("topics", ns, "orders", "Ready")
    assert kt["status"]["partitions"] == 3 and kt["status"]["replicationFactor"] == 3
    assert kt["status"]["topicId"]
    a = admin(kc)
    md = a.list_topics("orders", timeout=10)
    assert placement_ok(md.topics["orders"], [0, 1, 2]) is None

    # Growing adds partitions, placed by the same rule.
    k8s.apply(topic(ns, "orders", 6, config={"retention.ms": "3600000"}))
    kt = k8s.kube.wait("6 partitions", lambda: (k8s.get("topics", ns, "orders")["status"].get("partitions") == 6))
    md = k8s.kube.wait("metadata of 6 partitions",
                       lambda: (lambda m: m if len(m.topics["orders"].partitions) == 6 else None)(
                           a.list_topics("orders", timeout=10)))
    assert placement_ok(md.topics["orders"], [0, 1, 2]) is None

    # Shrinking is refused: this API server has no CEL, so the reconciler says so.
    k8s.apply(topic(ns, "orders", 4, config={"retention.ms": "3600000"}))
    kt = k8s.wait_condition("topics", ns, "orders", "Ready", "False", "PartitionDecreaseRefused")
    assert len(a.list_topics("orders", timeout=10).topics["orders"].partitions) == 6
    k8s.apply(topic(ns, "orders", 6, config={"retention.ms": "3600000"}))
    k8s.wait_condition("topics", ns, "orders", "Ready")

    # A config changed behind the operator's back is reverted, with an Event and a condition.
    res = ConfigResource("topic", "orders", set_config={"retention.ms": "5"})
    a.alter_configs([res])[res].result(10)

    def retention():
        r = ConfigResource("topic", "orders")
        return a.describe_configs([r])[r].result(10)["retention.ms"].value
    k8s.kube.wait("retention.ms reverted", lambda: retention() == "3600000", timeout=30)
    # The status is written just after the revert.
    k8s.kube.wait("DriftReverted condition",
                  lambda: (k8s.condition(k8s.get("topics", ns, "orders"), "DriftReverted") or {}).get("status") == "True")
    assert any(e["reason"] == "DriftReverted" for e in k8s.events(ns, "orders"))

    # A key removed from the spec goes back to its default.
    k8s.apply(topic(ns, "orders", 6))
    k8s.kube.wait("retention.ms back to the default", lambda: retention() == "604800000", timeout=30)


def test_topics_are_adopted_deduplicated_and_deleted_as_their_policy_says(k8s, demo):
    ns, kc = demo
    a = admin(kc)
    # Adoption: a topic made by a client, with records, is managed and kept.
    a.create_topics([NewTopic("legacy", 2, 3)])["legacy"].result(30)
    produce(kc, "legacy", "l", 100)
    k8s.apply(topic(ns, "legacy", 2))
    kt = k8s.wait_condition("topics", ns, "legacy", "Ready")
    assert any(e["reason"] == "Adopted" for e in k8s.events(ns, "legacy"))
    assert len(consume_all(kc, "legacy", 100)) == 100

    # A second resource naming the same topic: the older wins; deleting the newer keeps the topic.
    k8s.apply(topic(ns, "legacy-again", 2, topicName="legacy"))
    k8s.wait_condition("topics", ns, "legacy-again", "Ready", "False", "DuplicateTopic")
    k8s.kube.delete(f"/apis/skein.dev/v1alpha1/namespaces/{ns}/topics/legacy-again")
    k8s.kube.wait("legacy-again gone", lambda: k8s.get("topics", ns, "legacy-again") is None)
    assert "legacy" in a.list_topics(timeout=10).topics

    # Retain keeps the topic; Delete deletes it.
    k8s.apply(topic(ns, "kept", 1, deletionPolicy="Retain"))
    k8s.apply(topic(ns, "dropped", 1))
    k8s.wait_condition("topics", ns, "kept", "Ready")
    k8s.wait_condition("topics", ns, "dropped", "Ready")
    for name in ("kept", "dropped"):
        k8s.kube.delete(f"/apis/skein.dev/v1alpha1/namespaces/{ns}/topics/{name}")
        k8s.kube.wait(f"{name} gone", lambda: k8s.get("topics", ns, name) is None)
    k8s.kube.wait("dropped deleted from Kafka", lambda: "dropped" not in a.list_topics(timeout=10).topics)
    assert "kept" in a.list_topics(timeout=10).topics

    # A replication factor change is carried out by reassignment onto the classic placement; no data is lost.
    k8s.apply(topic(ns, "legacy", 2, rf=2))
    k8s.kube.wait("the replication factor change done",
                  lambda: k8s.condition(k8s.get("topics", ns, "legacy"), "ReplicationFactorPending") is not None
                  and k8s.condition(k8s.get("topics", ns, "legacy"), "ReplicationFactorPending")["status"] == "False"
                  and k8s.get("topics", ns, "legacy")["status"].get("replicationFactor") == 2, timeout=120)
    md = a.list_topics(timeout=10)
    assert placement_ok(md.topics["legacy"], [0, 1, 2]) is None, placement_ok(md.topics["legacy"], [0, 1, 2])
    assert all(len(p.replicas) == 2 for p in md.topics["legacy"].partitions.values())
    assert any(e["reason"] == "ReplicationFactorChanged" for e in k8s.events(ns, "legacy"))
    assert len(consume_all(kc, "legacy", 100)) == 100
    # Beyond the brokers there are: refused with a condition.
    k8s.apply(topic(ns, "legacy", 2, rf=4))
    k8s.wait_condition("topics", ns, "legacy", "ReplicationFactorPending", "True", "ReplicationFactorRefused")
    k8s.apply(topic(ns, "legacy", 2, rf=2))
    k8s.wait_condition("topics", ns, "legacy", "ReplicationFactorPending", "False", "AsSpecified")


def test_an_invalid_spec_sets_a_condition_and_changes_nothing(k8s):
    ns = k8s.namespace()
    k8s.apply(cluster(ns, "bad-key", replicas=1, controllers=1, config={"no.such.key": "1"}))
    kc = k8s.wait_condition("kafkaclusters", ns, "bad-key", "Ready", "False", "InvalidSpec")
    assert "no.such.key" in k8s.condition(kc, "Ready")["message"]
    k8s.apply(cluster(ns, "too-few", replicas=1, controllers=3))
    kc = k8s.wait_condition("kafkaclusters", ns, "too-few", "Ready", "False", "InvalidSpec")
    assert "fewer than controllers" in k8s.condition(kc, "Ready")["message"]
    assert any(e["reason"] == "InvalidSpec" for e in k8s.events(ns, "too-few"))
    assert k8s.kube.get(f"/apis/apps/v1/namespaces/{ns}/statefulsets")["items"] == []
    assert k8s.kube.get(f"/api/v1/namespaces/{ns}/configmaps")["items"] == [] or all(
        not c["metadata"]["name"].startswith(("bad-key", "too-few"))
        for c in k8s.kube.get(f"/api/v1/namespaces/{ns}/configmaps")["items"])


def test_a_deleted_broker_pod_comes_back_on_its_data_and_nothing_is_lost(k8s, demo):
    ns, kc = demo
    a = admin(kc)
    a.create_topics([NewTopic("durable", 3, 3)])["durable"].result(30)
    produce(kc, "durable", "before", 1000)
    pod = k8s.kube.get(f"/api/v1/namespaces/{ns}/pods/{NS_CLUSTER}-1")
    k8s.kube.delete(f"/api/v1/namespaces/{ns}/pods/{NS_CLUSTER}-1")
    k8s.wait_condition("kafkaclusters", ns, NS_CLUSTER, "Degraded", timeout=60)
    produce(kc, "durable", "during", 1000)
    kc = k8s.wait_condition("kafkaclusters", ns, NS_CLUSTER, "Ready", timeout=180)
    new = k8s.kube.get(f"/api/v1/namespaces/{ns}/pods/{NS_CLUSTER}-1")
    assert new["metadata"]["uid"] != pod["metadata"]["uid"]
    assert any(e["reason"] == "Degraded" for e in k8s.events(ns, NS_CLUSTER))
    got = consume_all(kc, "durable", 2000)
    assert sorted(got) == sorted([f"before-{i}" for i in range(1000)] + [f"during-{i}" for i in range(1000)])


def test_deleting_a_cluster_removes_its_objects_and_volumes_follow_the_policy(k8s):
    ns = k8s.namespace()
    k8s.apply(cluster(ns, "gone", replicas=1, controllers=1, when_deleted="Delete"))
    k8s.apply(cluster(ns, "kept", replicas=1, controllers=1, when_deleted="Retain"))
    for name in ("gone", "kept"):
        k8s.wait_condition("kafkaclusters", ns, name, "Ready", timeout=180)
    claims = lambda: {c["metadata"]["name"] for c in k8s.kube.get(f"/api/v1/namespaces/{ns}/persistentvolumeclaims")["items"]}
    assert claims() == {"data-gone-0", "data-kept-0"}
    for name in ("gone", "kept"):
        k8s.kube.delete(f"/apis/skein.dev/v1alpha1/namespaces/{ns}/kafkaclusters/{name}")
    k8s.kube.wait("both clusters gone", lambda: not k8s.kube.get(f"/apis/skein.dev/v1alpha1/namespaces/{ns}/kafkaclusters")["items"])
    k8s.kube.wait("their objects garbage-collected",
                  lambda: not k8s.kube.get(f"/apis/apps/v1/namespaces/{ns}/statefulsets")["items"]
                  and not [s for s in k8s.kube.get(f"/api/v1/namespaces/{ns}/services")["items"]]
                  and not k8s.kube.get(f"/api/v1/namespaces/{ns}/pods")["items"], timeout=90)
    k8s.kube.wait("the Delete cluster's claim deleted", lambda: claims() == {"data-kept-0"}, timeout=60)


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.mark.skipif("E2E_KUBECONFIG" in __import__("os").environ, reason="processes of the local tier")
def test_two_operators_elect_one_leader_and_the_standby_takes_over(k8s, demo):
    ns, kc = demo
    first = k8s.operator
    text = k8s.operator_metrics(first)
    assert metric(text, "skein_operator_leader") == 1
    assert metric(text, "skein_operator_managed_clusters") >= 1
    assert 'skein_operator_reconciliations_total{kind="KafkaCluster"}' in text
    second = k8s.start_operator("e2e-operator-2")
    k8s.kube.wait("the second operator up", lambda: metric(k8s.operator_metrics(second), "skein_operator_leader") == 0)
    lease = k8s.kube.get("/apis/coordination.k8s.io/v1/namespaces/skein-system/leases/skein-operator")
    assert lease["spec"]["holderIdentity"] == "e2e-operator"
    first.kill()
    first.wait()
    k8s.kube.wait("the standby leading", lambda: metric(k8s.operator_metrics(second), "skein_operator_leader") == 1,
                  timeout=40)
    k8s.operator = second
    # The new leader reconciles: a Topic made now becomes Ready.
    k8s.apply(topic(ns, "after-failover", 1))
    k8s.wait_condition("topics", ns, "after-failover", "Ready")
