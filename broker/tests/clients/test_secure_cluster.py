"""A three-broker cluster whose every listener is TLS: the only client
listener, the inter-broker one, is SASL_SSL (brokers replicate over TLS and log
in to each other with SCRAM-SHA-512, as clients do; ACLs are on), and the
metadata quorum's CONTROLLER listener is SSL with mutual authentication. RF=3
acks=all traffic keeps full ISRs; a broker whose certificate the others do not
trust cannot join."""

import tempfile
import time

import trustme
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import Cluster

BROKER_LOGIN = (
    "org.apache.kafka.common.security.scram.ScramLoginModule required "
    'username="broker" password="broker-secret";'
)
USERS = [
    "--add-scram", "SCRAM-SHA-512=[name=broker,password=broker-secret]",
    "--add-scram", "SCRAM-SHA-512=[name=alice,password=alice-secret]",
]


def secure_cluster(root, ca_for_trust, ca_for_keys):
    """Three brokers on SASL_SSL only; `ca_for_trust` signs nothing, it is
    what each broker trusts; `ca_for_keys` signs the brokers' certificates."""
    server = ca_for_keys.issue_cert("localhost", "127.0.0.1")
    keystore = f"{root}/server.pem"
    truststore = f"{root}/ca.pem"
    with open(keystore, "wb") as f:
        f.write(server.private_key_and_cert_chain_pem.bytes())
    with open(truststore, "wb") as f:
        f.write(ca_for_trust.cert_pem.bytes())
    c = Cluster(root, 3, {
        "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:SSL",
        "inter.broker.listener.name": "SASL_SSL",
        "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": BROKER_LOGIN,
        "ssl.keystore.location": keystore,
        "ssl.truststore.location": truststore,
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:broker;User:alice",
    })
    for b in c.brokers:
        ctl = b.settings["listeners"].split(",")[1]
        b.settings["listeners"] = f"SASL_SSL://127.0.0.1:{b.port},{ctl}"
        b.args = USERS
    c.truststore = truststore
    c.root = root
    return c


def client(c, **extra):
    return {
        "bootstrap.servers": ",".join(f"127.0.0.1:{b.port}" for b in c.brokers),
        "security.protocol": "SASL_SSL",
        "ssl.ca.location": c.truststore,
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "alice",
        "sasl.password": "alice-secret",
        **extra,
    }


def test_brokers_replicate_over_sasl_ssl_with_full_isrs():
    ca = trustme.CA()
    c = secure_cluster(tempfile.mkdtemp(prefix="skein-secure-"), ca, ca)
    c.start()
    try:
        admin = AdminClient(client(c))
        admin.create_topics([NewTopic("secured", 3, 3, config={"min.insync.replicas": "2"})])["secured"].result(30)
        p = Producer(client(c, acks="all", **{"enable.idempotence": True}))
        n = 3000
        for i in range(n):
            p.produce("secured", key=str(i % 7), value=f"v{i}")
            if i % 500 == 0:
                p.poll(0)
        assert p.flush(60) == 0
        # Every ISR full: the followers fetched everything over SASL_SSL.
        deadline = time.monotonic() + 30
        while True:
            md = admin.list_topics(topic="secured", timeout=10)
            isrs = [sorted(part.isrs) for part in md.topics["secured"].partitions.values()]
            if all(len(isr) == 3 for isr in isrs) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert all(len(isr) == 3 for isr in isrs), isrs
        cons = Consumer(client(c, **{"group.id": "g", "auto.offset.reset": "earliest"}))
        cons.subscribe(["secured"])
        got = 0
        deadline = time.monotonic() + 60
        while got < n and time.monotonic() < deadline:
            m = cons.poll(0.5)
            if m is not None and not m.error():
                got += 1
        cons.close()
        assert got == n
        for b in c.brokers:
            assert "broker-secret" not in b.log() and "alice-secret" not in b.log()
    finally:
        c.stop()



def test_a_voter_whose_certificate_the_others_do_not_trust_cannot_join():
    ca = trustme.CA()
    root = tempfile.mkdtemp(prefix="skein-intruder-")
    c = secure_cluster(root, ca, ca)
    # Broker 2 trusts the right CA but presents a certificate from another one.
    intruder = trustme.CA().issue_cert("localhost", "127.0.0.1")
    with open(f"{root}/intruder.pem", "wb") as f:
        f.write(intruder.private_key_and_cert_chain_pem.bytes())
    c.brokers[2].settings["ssl.keystore.location"] = f"{root}/intruder.pem"
    for b in c.brokers:
        b.launch()
    try:
        # Brokers 0 and 1 are a majority of the quorum and start; broker 2 is
        # refused at every TLS handshake, never registers, so never serves.
        c.brokers[0].wait_ready(60)
        c.brokers[1].wait_ready(60)
        conf = client(c)
        conf["bootstrap.servers"] = ",".join(f"127.0.0.1:{b.port}" for b in c.brokers[:2])
        admin = AdminClient(conf)
        deadline = time.monotonic() + 20
        while True:
            brokers = sorted(admin.list_topics(timeout=10).brokers)
            if brokers == [0, 1] or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert brokers == [0, 1]
        admin.create_topics([NewTopic("two-of-three", 1, 2)])["two-of-three"].result(30)
        time.sleep(3)
        assert sorted(admin.list_topics(timeout=10).brokers) == [0, 1], "broker 2 joined with an untrusted certificate"
        assert c.brokers[2].alive
        assert "UnknownCA" in c.brokers[2].log() or "certificate" in c.brokers[2].log()
    finally:
        c.stop()
