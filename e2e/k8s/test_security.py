"""A secured KafkaCluster on the real API server: one TLS + SCRAM-SHA-512
listener. The operator issues the cluster and clients CAs and the brokers' and
its own certificates into Secrets (Strimzi's key names); the brokers mount them,
replicate and run the quorum over mutual TLS; the operator manages the cluster
over mutual TLS; a client with a certificate from the cluster CA works, one
without is refused."""

import base64
import os
import tempfile
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

NAME = "sec"


def secured_cluster(ns):
    return {
        "apiVersion": "skein.dev/v1alpha1", "kind": "KafkaCluster",
        "metadata": {"name": NAME, "namespace": ns},
        "spec": {"replicas": 3, "controllers": 3,
                 "config": {"default.replication.factor": "3", "offsets.topic.replication.factor": "3",
                            "min.insync.replicas": "2", "broker.session.timeout.ms": "4000"},
                 "storage": {"size": "1Gi"},
                 "listeners": [{"name": "tls", "port": 9094, "tls": True,
                                "authentication": {"type": "scram-sha-512"}}]},
    }


def secret(k8s, ns, name):
    s = k8s.kube.get(f"/api/v1/namespaces/{ns}/secrets/{name}")
    return {k: base64.b64decode(v).decode() for k, v in (s.get("data") or {}).items()}


@pytest.fixture(scope="module")
def secured(k8s):
    """A secured KafkaCluster of three brokers, Ready; shared by this module's tests."""
    ns = k8s.namespace()
    start = time.time()
    k8s.apply(secured_cluster(ns))
    kc = k8s.wait_condition("kafkaclusters", ns, NAME, "Ready", timeout=300)
    print(f"secured KafkaCluster of 3 Ready {time.time() - start:.1f} s after apply")
    return ns, kc


def test_a_secured_cluster_runs_on_certificates_the_operator_issues(k8s, secured):
    ns, kc = secured
    cas = {c["name"]: c for c in kc["status"]["certificateAuthorities"]}
    assert cas["cluster"]["phase"] == "Ready" and cas["cluster"]["generations"] == [1], cas
    assert cas["clients"]["generations"] == [1], cas
    assert kc["status"]["bootstrapServers"].endswith(":9094")

    # The Secrets, with the keys applications and brokers mount.
    bundle = secret(k8s, ns, f"{NAME}-cluster-ca-cert")["ca.crt"]
    assert bundle.count("BEGIN CERTIFICATE") == 1 and "PRIVATE KEY" not in bundle
    certs = secret(k8s, ns, f"{NAME}-brokers")
    for leaf in [f"{NAME}-0", f"{NAME}-1", f"{NAME}-2", "operator"]:
        assert {f"{leaf}.crt", f"{leaf}.key", f"{leaf}.pem"} <= set(certs), sorted(certs)
    assert "ca.key" in secret(k8s, ns, f"{NAME}-cluster-ca")
    # No key in the operator's log, status or Events.
    assert "PRIVATE KEY" not in k8s.operator_logs(tail=10**8)
    assert "PRIVATE KEY" not in str(kc["status"])
    assert all("PRIVATE KEY" not in str(e) for e in k8s.events(ns, NAME))

    # The operator's certificate is a super user's: produce and consume over
    # mutual TLS on the replication listener, every replica in sync.
    d = tempfile.mkdtemp(prefix="skein-sec-")
    for name, text in [("ca.crt", bundle), ("me.crt", certs["operator.crt"]), ("me.key", certs["operator.key"])]:
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
    host = f"{NAME}-0.{NAME}-brokers.{ns}.svc.cluster.local"
    tls = {"security.protocol": "SSL", "ssl.ca.location": f"{d}/ca.crt"}
    mtls = {"bootstrap.servers": f"{host}:9091", **tls,
            "ssl.certificate.location": f"{d}/me.crt", "ssl.key.location": f"{d}/me.key"}
    a = AdminClient(mtls)
    for f in a.create_topics([NewTopic("secure", 3, 3)]).values():
        f.result(30)
    p = Producer({**mtls, "acks": "all", "enable.idempotence": True, "message.timeout.ms": 60000})
    failed = []
    for i in range(100):
        p.produce("secure", value=f"v{i}", on_delivery=lambda err, msg: err and failed.append(err))
    assert p.flush(60) == 0 and not failed, failed
    c = Consumer({**mtls, "group.id": "g", "auto.offset.reset": "earliest"})
    c.subscribe(["secure"])
    got, deadline = 0, time.time() + 60
    while got < 100 and time.time() < deadline:
        m = c.poll(1)
        if m is not None and not m.error():
            got += 1
    c.close()
    assert got == 100
    meta = a.list_topics("secure", timeout=10).topics["secure"]
    assert all(len(p.isrs) == 3 for p in meta.partitions.values())

    # Refused: the replication listener without a client certificate, and the
    # TLS listener without SCRAM credentials.
    for conf in ({"bootstrap.servers": f"{host}:9091", **tls},
                 {"bootstrap.servers": f"{host}:9094", **tls, "security.protocol": "SASL_SSL",
                  "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "nobody", "sasl.password": "wrong"}):
        try:
            AdminClient(conf).list_topics(timeout=8)
        except KafkaException:
            continue
        raise AssertionError(f"{conf['bootstrap.servers']} answered a client it should refuse")

