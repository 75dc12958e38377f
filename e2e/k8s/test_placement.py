"""Racks and external access on the real API server: the agent plays three
nodes in three zones (topology.kubernetes.io/zone), each with its own address.
A KafkaCluster with `rack.topologyKey` spreads its brokers over the zones and
each broker's `broker.rack` is its node's zone (read by the broker-init
container with the pod's own ServiceAccount); replicas of a topic land in
distinct zones; a consumer with `client.rack` reads from its zone's replica.
A `nodeport` listener: a Service per broker, each broker advertising its
node's address and its node port, and a client outside the pod network
produces and consumes through them; a `loadbalancer` listener likewise
through the load balancers' addresses."""

import json
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

NAME = "racks"
ZONE = "topology.kubernetes.io/zone"


def cluster(ns):
    return {
        "apiVersion": "skein.dev/v1alpha1", "kind": "KafkaCluster",
        "metadata": {"name": NAME, "namespace": ns},
        "spec": {"replicas": 4, "controllers": 1,
                 "config": {"offsets.topic.replication.factor": "2", "broker.session.timeout.ms": "4000"},
                 "storage": {"size": "1Gi"},
                 "rack": {"topologyKey": ZONE},
                 "listeners": [{"name": "plain", "port": 9092},
                               {"name": "ext", "port": 9094, "type": "nodeport"},
                               {"name": "lb", "port": 9095, "type": "loadbalancer"}]},
    }


@pytest.fixture(scope="module")
def racked(k8s):
    ns = k8s.namespace()
    start = time.time()
    k8s.apply(cluster(ns))
    kc = k8s.wait_condition("kafkaclusters", ns, NAME, "Ready", timeout=300)
    print(f"KafkaCluster of 4 over 3 zones Ready {time.time() - start:.1f} s after apply")
    return ns, kc


def pods_by_ordinal(k8s, ns):
    pods = k8s.kube.get(f"/api/v1/namespaces/{ns}/pods?labelSelector=app.kubernetes.io/instance={NAME}")["items"]
    return {int(p["metadata"]["name"].rsplit("-", 1)[1]): p for p in pods}


def zones_of_brokers(k8s, ns):
    nodes = {n["metadata"]["name"]: n for n in k8s.kube.get("/api/v1/nodes")["items"]}
    return {i: nodes[p["spec"]["nodeName"]]["metadata"]["labels"][ZONE] for i, p in pods_by_ordinal(k8s, ns).items()}


def internal(ns):
    return f"{NAME}-bootstrap.{ns}.svc.cluster.local:9092"


def test_brokers_spread_over_zones_and_take_their_node_s_zone_as_broker_rack(k8s, racked):
    ns, _ = racked
    zones = zones_of_brokers(k8s, ns)
    assert sorted(zones) == [0, 1, 2, 3]
    assert set(zones.values()) == {"zone-a", "zone-b", "zone-c"}, zones  # spread: every zone used
    pods = pods_by_ordinal(k8s, ns)
    # Only the init container holds an API token; the broker container has none.
    broker = pods[0]["spec"]["containers"][0]
    assert not any(m["mountPath"].startswith("/var/run/secrets") for m in broker.get("volumeMounts") or [])
    assert pods[0]["spec"]["initContainers"][0]["name"] == "init"

    a = AdminClient({"bootstrap.servers": internal(ns)})
    racks = {n.id: n.rack for n in a.describe_cluster(request_timeout=10).result(30).nodes}
    assert racks == zones, (racks, zones)


def test_replicas_land_in_distinct_zones_and_a_consumer_reads_from_its_zone(k8s, racked):
    ns, _ = racked
    zones = zones_of_brokers(k8s, ns)
    a = AdminClient({"bootstrap.servers": internal(ns)})
    for f in a.create_topics([NewTopic("spread", 12, 2)]).values():
        f.result(30)
    time.sleep(1)
    parts = a.list_topics("spread", timeout=10).topics["spread"].partitions
    assert len(parts) == 12
    for p in parts.values():
        assert len({zones[b] for b in p.replicas}) == 2, (p.id, p.replicas, zones)

    # KIP-392: the operator set the rack-aware replica selector.
    leader, follower = parts[0].leader, next(b for b in parts[0].replicas if b != parts[0].leader)
    p = Producer({"bootstrap.servers": internal(ns), "acks": "all"})
    for i in range(50):
        p.produce("spread", value=f"r{i}", partition=0)
    assert p.flush(30) == 0

    def fetched_from(rack):
        stats = []
        c = Consumer({"bootstrap.servers": internal(ns), "group.id": f"g-{rack}", "client.rack": rack,
                      "statistics.interval.ms": 200, "stats_cb": lambda s: stats.append(json.loads(s))})
        c.assign([TopicPartition("spread", 0, 0)])
        got, deadline = 0, time.time() + 30
        while got < 50 and time.time() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got += 1
        c.poll(0.5)
        c.close()
        assert got == 50
        return stats[-1]["topics"]["spread"]["partitions"]["0"]["broker"]

    assert fetched_from(zones[follower]) == follower
    assert fetched_from(zones[leader]) == leader


def roundtrip(bootstrap, topic):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "message.timeout.ms": 30000})
    for i in range(20):
        p.produce(topic, value=f"v{i}")
    assert p.flush(40) == 0
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"rt-{topic}", "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got, deadline = [], time.time() + 40
    while len(got) < 20 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append(m.value().decode())
    c.close()
    assert sorted(got) == sorted(f"v{i}" for i in range(20))


def test_a_nodeport_listener_advertises_each_broker_s_node_address_and_node_port(k8s, racked):
    ns, _ = racked
    nodes = {n["metadata"]["name"]: n for n in k8s.kube.get("/api/v1/nodes")["items"]}
    pods = pods_by_ordinal(k8s, ns)
    expected = {}
    for i, pod in pods.items():
        svc = k8s.kube.get(f"/api/v1/namespaces/{ns}/services/{NAME}-{i}-ext")
        assert svc["spec"]["type"] == "NodePort"
        assert svc["spec"]["selector"]["statefulset.kubernetes.io/pod-name"] == f"{NAME}-{i}"
        node = nodes[pod["spec"]["nodeName"]]
        ip = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
        expected[i] = f"{ip}:{svc['spec']['ports'][0]['nodePort']}"
    bootstrap = k8s.kube.get(f"/api/v1/namespaces/{ns}/services/{NAME}-ext-bootstrap")
    assert bootstrap["spec"]["type"] == "NodePort"
    # A client outside the pod network: the node's address and the bootstrap node port.
    outside = f"127.0.0.2:{bootstrap['spec']['ports'][0]['nodePort']}"
    # The status lists it, over the brokers' nodes.
    listeners = {l["name"]: l for l in k8s.get("kafkaclusters", ns, NAME)["status"]["listeners"]}
    port = bootstrap["spec"]["ports"][0]["nodePort"]
    assert listeners["ext"]["bootstrapServers"] == ",".join(f"127.0.0.{n}:{port}" for n in (1, 2, 3)), listeners
    assert listeners["plain"]["bootstrapServers"] == internal(ns)
    a = AdminClient({"bootstrap.servers": outside})
    md = a.list_topics(timeout=20)
    assert {b.id: f"{b.host}:{b.port}" for b in md.brokers.values()} == expected
    assert len({e.split(":")[0] for e in expected.values()}) == 3  # the brokers' three nodes
    a.create_topics([NewTopic("outside", 4, 2)])["outside"].result(30)
    roundtrip(outside, "outside")


def test_a_loadbalancer_listener_advertises_each_broker_s_load_balancer(k8s, racked):
    ns, _ = racked
    expected = {}
    for i in range(4):
        svc = k8s.kube.get(f"/api/v1/namespaces/{ns}/services/{NAME}-{i}-lb")
        assert svc["spec"]["type"] == "LoadBalancer"
        expected[i] = f"{svc['status']['loadBalancer']['ingress'][0]['ip']}:9095"
    bootstrap = k8s.kube.get(f"/api/v1/namespaces/{ns}/services/{NAME}-lb-bootstrap")
    outside = f"{bootstrap['status']['loadBalancer']['ingress'][0]['ip']}:9095"
    listeners = {l["name"]: l for l in k8s.get("kafkaclusters", ns, NAME)["status"]["listeners"]}
    assert listeners["lb"] == {"name": "lb", "type": "loadbalancer", "bootstrapServers": outside}, listeners
    a = AdminClient({"bootstrap.servers": outside})
    md = a.list_topics(timeout=20)
    assert {b.id: f"{b.host}:{b.port}" for b in md.brokers.values()} == expected
    a.create_topics([NewTopic("balanced", 2, 2)])["balanced"].result(30)
    roundtrip(outside, "balanced")
