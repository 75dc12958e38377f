"""A secured KafkaCluster on the real API server: one TLS + SCRAM-SHA-512
listener. The operator issues the cluster and clients CAs and the brokers' and
its own certificates into Secrets (Strimzi's key names); the brokers mount them,
replicate and run the quorum over mutual TLS; the operator manages the cluster
over mutual TLS; a client with a certificate from the cluster CA works, one
without is refused. KafkaUsers: a SCRAM user with ACLs on one topic, a TLS user
from its Secret's files, a user from another namespace; drift reverted;
deletion revokes."""

import base64
import json
import os
import subprocess
import tempfile
import time
import uuid

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
                                "authentication": {"type": "scram-sha-512"}},
                               {"name": "mtls", "port": 9095, "tls": True,
                                "authentication": {"type": "tls"},
                                "networkPolicyPeers": [{"podSelector": {"matchLabels": {"app": "readers"}}}]}],
                 "networkPolicy": {"enabled": True},
                 "authorization": {"type": "simple"},
                 "userNamespaces": {"matchLabels": {"skein.dev/users": "sec"}}},
    }


def secret(k8s, ns, name):
    s = k8s.kube.get(f"/api/v1/namespaces/{ns}/secrets/{name}")
    return {k: base64.b64decode(v).decode(errors="replace") for k, v in (s.get("data") or {}).items()}


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
    # The same bundle as PKCS#12 for Java clients (ca.p12, ca.password), as OpenSSL reads it.
    raw = k8s.kube.get(f"/api/v1/namespaces/{ns}/secrets/{NAME}-cluster-ca-cert")["data"]
    p12 = os.path.join(tempfile.mkdtemp(prefix="skein-p12-"), "ca.p12")
    with open(p12, "wb") as f:
        f.write(base64.b64decode(raw["ca.p12"]))
    out = subprocess.run(["openssl", "pkcs12", "-in", p12, "-nokeys", "-passin",
                          f"pass:{base64.b64decode(raw['ca.password']).decode()}"], capture_output=True, text=True)
    assert out.returncode == 0 and f"{NAME}-cluster-ca v1" in out.stdout, out.stderr
    certs = secret(k8s, ns, f"{NAME}-brokers")
    for leaf in [f"{NAME}-0", f"{NAME}-1", f"{NAME}-2", "operator"]:
        assert {f"{leaf}.crt", f"{leaf}.key", f"{leaf}.pem"} <= set(certs), sorted(certs)
    assert "ca.key" in secret(k8s, ns, f"{NAME}-cluster-ca")
    # Each CA and certificate's remaining life, in seconds (365 days by default).
    import re
    # This cluster's series only (other tests' clusters have their own).
    expiry = {}
    for m in re.finditer(r'skein_operator_certificate_expiry_seconds\{([^}]*)\} (\S+)',
                         k8s.operator_metrics(k8s.operator)):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m[1]))
        if labels.get("namespace") == ns and labels.get("cluster") == NAME:
            expiry[labels["certificate"]] = float(m[2])
    assert {"cluster-ca", "clients-ca", f"{NAME}-0", "operator"} <= set(expiry), expiry
    assert 364 * 86400 < expiry["cluster-ca"] <= 365 * 86400, expiry
    # The NetworkPolicy: replication and quorum from the brokers, the operator's
    # way in from its pods, each listener from its peers (9094: anyone).
    np = k8s.kube.get(f"/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies/{NAME}-network-policy")
    rules = [([p["port"] for p in r["ports"]], r.get("from")) for r in np["spec"]["ingress"]]
    assert [r[0] for r in rules] == [[9094, 9095, 9091, 9093], [9091, 9644], [9094], [9095], [9644]], rules
    assert rules[2][1] is None and rules[3][1] == [{"podSelector": {"matchLabels": {"app": "readers"}}}], rules
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



def kafka_user(ns, name, auth, acls, cluster_ns=None, **extra):
    spec = {"cluster": NAME, "authentication": {"type": auth},
            "authorization": {"type": "simple", "acls": acls}, **extra}
    if cluster_ns:
        spec["clusterNamespace"] = cluster_ns
    return {"apiVersion": "skein.dev/v1alpha1", "kind": "KafkaUser",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


def topic_acl(topic, *ops):
    return {"resource": {"type": "topic", "name": topic}, "operations": list(ops)}


def jaas(secret_data):
    """The user name and password in a `sasl.jaas.config` line, as a Java client reads them."""
    import re
    line = secret_data["sasl.jaas.config"]
    assert line.startswith("org.apache.kafka.common.security.scram.ScramLoginModule required "), line
    return re.search(r'username="([^"]*)"', line)[1], re.search(r'password="([^"]*)"', line)[1]


def produce_errors(conf, topic, n=5):
    """Produces n records; the delivery errors' names (empty: all acknowledged)."""
    errors = []
    p = Producer({**conf, "acks": "all", "message.timeout.ms": 15000})
    for i in range(n):
        p.produce(topic, value=f"r{i}", on_delivery=lambda err, msg: err and errors.append(err.name()))
    p.flush(30)
    return errors


def test_kafka_users_get_credentials_acls_and_quotas_and_lose_them_when_deleted(k8s, secured):
    ns, _ = secured
    host = f"{NAME}-0.{NAME}-brokers.{ns}.svc.cluster.local"
    d = tempfile.mkdtemp(prefix="skein-users-")
    with open(f"{d}/ca.crt", "w") as f:
        f.write(secret(k8s, ns, f"{NAME}-cluster-ca-cert")["ca.crt"])
    certs = secret(k8s, ns, f"{NAME}-brokers")
    for name, text in [("op.crt", certs["operator.crt"]), ("op.key", certs["operator.key"])]:
        with open(f"{d}/{name}", "w") as f:
            f.write(text)
    admin_conf = {"bootstrap.servers": f"{host}:9091", "security.protocol": "SSL", "ssl.ca.location": f"{d}/ca.crt",
                  "ssl.certificate.location": f"{d}/op.crt", "ssl.key.location": f"{d}/op.key"}
    admin = AdminClient(admin_conf)
    for f in admin.create_topics([NewTopic("orders", 3, 3), NewTopic("payroll", 1, 3)]).values():
        f.result(30)

    # A SCRAM-SHA-512 user that may write to `orders` only.
    start = time.time()
    k8s.apply(kafka_user(ns, "app", "scram-sha-512", [topic_acl("orders", "Write", "Describe")],
                         quotas={"producerByteRate": 1048576, "requestPercentage": 50}))
    ku = k8s.wait_condition("kafkausers", ns, "app", "Ready", timeout=60)
    assert ku["status"]["username"] == "app" and ku["status"]["secret"] == "app", ku["status"]
    user, password = jaas(secret(k8s, ns, "app"))
    assert (user, password) == ("app", secret(k8s, ns, "app")["password"]) and len(password) >= 32
    scram = {"bootstrap.servers": f"{host}:9094", "security.protocol": "SASL_SSL", "ssl.ca.location": f"{d}/ca.crt",
             "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": user, "sasl.password": password}
    authenticated = k8s.kube.wait("the user's first acknowledged produce",
                                  lambda: not produce_errors(scram, "orders", 1), timeout=60)
    assert authenticated
    print(f"KafkaUser applied -> a client authenticated with its Secret and produced: {time.time() - start:.2f} s")
    assert produce_errors(scram, "orders") == []
    assert set(produce_errors(scram, "payroll", 1)) == {"TOPIC_AUTHORIZATION_FAILED"}
    assert password not in k8s.operator_logs(tail=10**8) and password not in str(ku["status"])

    # The Secret's sasl.jaas.config as a Kafka tool's --command-config takes it;
    # the operator's certificate sees the quotas as Kafka's user quotas.
    def skeinctl(props, *args):
        path = f"{d}/{uuid.uuid4().hex}.properties"
        with open(path, "w") as f:
            f.write("\n".join(f"{k}={v}" for k, v in props.items()))
        r = subprocess.run([os.environ["SKEINCTL_BIN"], "-o", "json", *args, "--command-config", path],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)
    as_app = {"security.protocol": "SASL_SSL", "ssl.truststore.location": f"{d}/ca.crt",
              "sasl.mechanism": "SCRAM-SHA-512", "sasl.jaas.config": secret(k8s, ns, "app")["sasl.jaas.config"]}
    topics = skeinctl(as_app, "-b", f"{host}:9094", "topic", "list")
    assert [t["name"] for t in topics] == ["orders"], topics
    with open(f"{d}/op.pem", "w") as f:
        f.write(certs["operator.key"] + certs["operator.crt"])
    as_operator = {"security.protocol": "SSL", "ssl.truststore.location": f"{d}/ca.crt",
                   "ssl.keystore.location": f"{d}/op.pem"}
    quotas = skeinctl(as_operator, "-b", f"{host}:9091", "quota", "list", "--user", "app")
    assert quotas == [{"entity": "user=app", "quotas": {"producer_byte_rate": 1048576.0,
                                                        "request_percentage": 50.0}}], quotas

    from confluent_kafka.admin import AclBindingFilter, AclOperation, AclPermissionType, ResourcePatternType, \
        ResourceType

    def described():
        out = {}
        for b in admin.describe_acls(AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, "User:app",
                                                      None, AclOperation.ANY, AclPermissionType.ANY)).result(20):
            out[(b.name, b.operation.name)] = b
        return out
    assert set(described()) == {("orders", "WRITE"), ("orders", "DESCRIBE")}

    # Drift: an ACL removed and one added behind the operator's back come back as declared.
    skeinctl(as_operator, "-b", f"{host}:9091", "acl", "delete", "--topic", "orders", "--principal", "User:app",
             "--operation", "Write")
    skeinctl(as_operator, "-b", f"{host}:9091", "acl", "create", "--topic", "payroll", "--principal", "User:app",
             "--operation", "Write")
    k8s.kube.wait("the declared ACLs back",
                  lambda: set(described()) == {("orders", "WRITE"), ("orders", "DESCRIBE")}, timeout=30)
    k8s.kube.wait("a DriftReverted Event",
                  lambda: any(e.get("reason") == "DriftReverted" for e in k8s.events(ns, "app")), timeout=30)

    # A TLS user: its Secret holds Strimzi's keys; the PEM files and the PKCS#12 work.
    k8s.apply(kafka_user(ns, "reader", "tls", [topic_acl("orders", "Read", "Describe"),
                                               {"resource": {"type": "group", "name": "readers",
                                                             "patternType": "prefix"},
                                                "operations": ["Read"]}]))
    ku = k8s.wait_condition("kafkausers", ns, "reader", "Ready", timeout=60)
    assert ku["status"]["username"] == "CN=reader", ku["status"]
    s = k8s.kube.get(f"/api/v1/namespaces/{ns}/secrets/reader")["data"]
    assert {"ca.crt", "user.crt", "user.key", "user.p12", "user.password"} <= set(s), sorted(s)
    for k in ("user.crt", "user.key", "user.p12"):
        with open(f"{d}/reader-{k}", "wb") as f:
            f.write(base64.b64decode(s[k]))
    p12_password = base64.b64decode(s["user.password"]).decode()
    out = subprocess.run(["openssl", "pkcs12", "-in", f"{d}/reader-user.p12", "-passin", f"pass:{p12_password}",
                          "-nokeys", "-clcerts"], capture_output=True, text=True)
    assert out.returncode == 0 and "CN=reader" in out.stdout.replace(" = ", "="), out.stderr
    mtls = {"bootstrap.servers": f"{host}:9095", "security.protocol": "SSL", "ssl.ca.location": f"{d}/ca.crt",
            "ssl.certificate.location": f"{d}/reader-user.crt", "ssl.key.location": f"{d}/reader-user.key"}
    c = Consumer({**mtls, "group.id": "readers-1", "auto.offset.reset": "earliest"})
    c.subscribe(["orders"])
    got, deadline = 0, time.time() + 60
    while got < 6 and time.time() < deadline:
        m = c.poll(1)
        if m is not None and not m.error():
            got += 1
    c.close()
    assert got == 6, got
    assert set(produce_errors(mtls, "orders", 1)) == {"TOPIC_AUTHORIZATION_FAILED"}

    # A user from another namespace: allowed by the cluster's userNamespaces, namespaced name.
    other = k8s.namespace()
    k8s.kube.merge(f"/api/v1/namespaces/{other}", {"metadata": {"labels": {"skein.dev/users": "sec"}}})
    k8s.apply(kafka_user(other, "app", "scram-sha-512", [topic_acl("orders", "Write", "Describe")], cluster_ns=ns))
    ku = k8s.wait_condition("kafkausers", other, "app", "Ready", timeout=60)
    assert ku["status"]["username"] == f"{other}/app"
    user2, password2 = jaas(secret(k8s, other, "app"))
    assert user2 == f"{other}/app"
    scram2 = {**scram, "sasl.username": user2, "sasl.password": password2}
    k8s.kube.wait("the other namespace's user produces", lambda: not produce_errors(scram2, "orders", 1), timeout=60)
    stranger = k8s.namespace()
    k8s.apply(kafka_user(stranger, "app", "scram-sha-512", [], cluster_ns=ns))
    k8s.wait_condition("kafkausers", stranger, "app", "Ready", "False", "NamespaceNotAllowed", timeout=60)

    # Deleted: the credentials and ACLs leave the cluster, the Secret goes.
    k8s.kube.delete(f"/apis/skein.dev/v1alpha1/namespaces/{ns}/kafkausers/app")
    k8s.kube.wait("the KafkaUser gone", lambda: k8s.get("kafkausers", ns, "app") is None, timeout=60)
    k8s.kube.wait("the user refused", lambda: produce_errors(scram, "orders", 1) != [], timeout=30)
    assert described() == {}
    k8s.kube.wait("the Secret collected",
                  lambda: k8s.kube.get_opt(f"/api/v1/namespaces/{ns}/secrets/app") is None, timeout=60)


def test_replacing_both_cas_breaks_no_connected_client_and_restarts_nothing(k8s, secured):
    """skein.dev/force-renew replaces both CA keys while a TLS user produces and
    consumes: no failed send or read, no container restarted, and at the end
    the bundles hold only the new CAs."""
    import threading
    ns, _ = secured
    host = f"{NAME}-0.{NAME}-brokers.{ns}.svc.cluster.local"
    admin_certs = secret(k8s, ns, f"{NAME}-brokers")
    d = tempfile.mkdtemp(prefix="skein-renew-")
    files = {"ca.crt": secret(k8s, ns, f"{NAME}-cluster-ca-cert")["ca.crt"],
             "op.crt": admin_certs["operator.crt"], "op.key": admin_certs["operator.key"]}
    k8s.apply(kafka_user(ns, "steady", "tls", [topic_acl("steady", "Read", "Write", "Describe"),
                                               {"resource": {"type": "group", "name": "steady"},
                                                "operations": ["Read"]}]))
    k8s.wait_condition("kafkausers", ns, "steady", "Ready", timeout=60)
    user = secret(k8s, ns, "steady")
    files.update({"user.crt": user["user.crt"], "user.key": user["user.key"]})
    for name, text in files.items():
        with open(f"{d}/{name}", "w") as f:
            f.write(text)
    # Kept in a variable: a handle destroyed at once fails its own request.
    admin = AdminClient({"bootstrap.servers": f"{host}:9091", "security.protocol": "SSL",
                         "ssl.ca.location": f"{d}/ca.crt", "ssl.certificate.location": f"{d}/op.crt",
                         "ssl.key.location": f"{d}/op.key"})
    admin.create_topics([NewTopic("steady", 3, 3)])["steady"].result(30)
    conf = {"bootstrap.servers": f"{host}:9095", "security.protocol": "SSL", "ssl.ca.location": f"{d}/ca.crt",
            "ssl.certificate.location": f"{d}/user.crt", "ssl.key.location": f"{d}/user.key"}

    def restarts():
        pods = k8s.kube.get(f"/api/v1/namespaces/{ns}/pods?labelSelector=app.kubernetes.io/instance={NAME}")
        return {p["metadata"]["name"]: (p["metadata"]["uid"],
                                        sum(c.get("restartCount", 0) for c in p["status"].get("containerStatuses", [])))
                for p in pods["items"]}
    before = restarts()
    assert len(before) == 3, before

    stop = threading.Event()
    sent, failed, read = [], [], []
    p = Producer({**conf, "acks": "all", "enable.idempotence": True, "message.timeout.ms": 120000,
                  "connections.max.idle.ms": 0})
    c = Consumer({**conf, "group.id": "steady", "auto.offset.reset": "earliest", "connections.max.idle.ms": 0})
    c.subscribe(["steady"])

    def produce():
        i = 0
        while not stop.is_set():
            p.produce("steady", value=str(i), on_delivery=lambda err, msg: (failed if err else sent).append(err or 1))
            p.poll(0)
            i += 1
            time.sleep(0.05)
        p.flush(60)

    def consume():
        while not stop.is_set() or len(read) < len(sent):
            m = c.poll(0.5)
            if m is not None:
                (failed if m.error() else read).append(m.error() or m.value())
            if stop.is_set() and time.time() > deadline:
                break
    deadline = float("inf")
    threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
    for t in threads:
        t.start()
    try:
        time.sleep(5)
        kc = k8s.get("kafkaclusters", ns, NAME)
        old = {c["name"]: c["generations"] for c in kc["status"]["certificateAuthorities"]}
        k8s.kube.merge(f"/apis/skein.dev/v1alpha1/namespaces/{ns}/kafkaclusters/{NAME}",
                       {"metadata": {"annotations": {"skein.dev/force-renew": "e2e-1"}}})
        start = time.time()

        def renewed():
            st = k8s.get("kafkaclusters", ns, NAME)["status"]
            cas = {c["name"]: c for c in st["certificateAuthorities"]}
            done = all(cas[n]["phase"] == "Ready" and cas[n]["generations"] == [old[n][-1] + 1] for n in old)
            return st if done else None
        try:
            k8s.kube.wait("both CAs replaced", renewed, timeout=300, interval=2)
        except AssertionError as e:
            st = k8s.get("kafkaclusters", ns, NAME)["status"]
            raise AssertionError(f"{e}: {st.get('certificateAuthorities')}\n{k8s.operator_logs(tail=20000)}") from None
        print(f"both CAs replaced in {time.time() - start:.1f} s with a producer and a consumer connected")
        time.sleep(5)
    finally:
        stop.set()
        deadline = time.time() + 60
        for t in threads:
            t.join(120)
        c.close()
    assert not failed, failed[:5]
    assert len(sent) > 100 and len(read) >= len(sent), (len(sent), len(read))
    assert restarts() == before
    bundle = secret(k8s, ns, f"{NAME}-cluster-ca-cert")["ca.crt"]
    assert bundle.count("BEGIN CERTIFICATE") == 1 and bundle != files["ca.crt"]
    assert secret(k8s, ns, f"{NAME}-clients-ca-cert")["ca.crt"].count("BEGIN CERTIFICATE") == 1
    # A new client with the new bundle and the user's re-issued certificate connects.
    user = secret(k8s, ns, "steady")
    assert user["user.crt"] != files["user.crt"]
    for name, text in [("ca2.crt", bundle), ("user2.crt", user["user.crt"]), ("user2.key", user["user.key"])]:
        with open(f"{d}/{name}", "w") as f:
            f.write(text)
    fresh = {**conf, "ssl.ca.location": f"{d}/ca2.crt", "ssl.certificate.location": f"{d}/user2.crt",
             "ssl.key.location": f"{d}/user2.key"}
    assert produce_errors(fresh, "steady", 3) == []
