"""A three-broker cluster whose every listener is TLS: the only client
listener, the inter-broker one, is SASL_SSL (brokers replicate over TLS and log
in to each other with SCRAM-SHA-512, as clients do; ACLs are on), and the
metadata quorum's CONTROLLER listener is SSL with mutual authentication. RF=3
acks=all traffic keeps full ISRs; a broker whose certificate the others do not
trust cannot join."""

import os
import socket
import ssl
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
        # The voters that refused it say so, with its address, as Kafka logs a
        # failed authentication (its own side may only see the connection close).
        # Other refused handshakes (a client closing early on SASL_SSL) may come first.
        def refused_on_controller():
            return [l for b in c.brokers[:2] for l in b.log().splitlines()
                    if "failed authentication (TLS handshake failed)" in l and "listener=CONTROLLER" in l]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not refused_on_controller():
            time.sleep(0.5)
        lines = refused_on_controller()
        assert lines, "no voter logged the refused handshake"
        line = lines[0]
        assert "CONTROLLER" in line and "127.0.0.1" in line and "UnknownIssuer" in line, line
    finally:
        c.stop()


def served_certificate(port, bundle, client_pem):
    """The certificate a TLS server on `port` presents (DER), connecting with
    `client_pem` as the client certificate and offering h2 as gRPC clients do."""
    ctx = ssl.create_default_context(cafile=bundle)
    ctx.load_cert_chain(client_pem)
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.selected_alpn_protocol() == "h2"
            return tls.getpeercert(binary_form=True)


def reloads(broker, listener):
    return sum(1 for line in broker.log().splitlines()
               if "TLS key or trust store changed" in line and f"listener={listener}" in line)


def test_a_ca_roll_needs_no_restart_of_the_quorum_or_the_inter_broker_links():
    """A CA roll in two steps, files only: certificates from the new CA (both
    CAs trusted), then the old CA dropped from the trust store. The quorum and
    the inter-broker listener serve the new certificate, and the brokers
    present it when they dial each other, so a voter restarted after the roll
    (which trusts the new CA only) rejoins and replicates."""
    old_ca, new_ca = trustme.CA(), trustme.CA()
    root = tempfile.mkdtemp(prefix="skein-ca-roll-")
    c = secure_cluster(root, old_ca, old_ca)
    with open(c.truststore, "wb") as f:
        f.write(old_ca.cert_pem.bytes() + new_ca.cert_pem.bytes())
    c.start()
    try:
        admin = AdminClient(client(c))
        admin.create_topics([NewTopic("before-roll", 1, 3)])["before-roll"].result(30)
        ports = [int(b.settings["listeners"].split(",")[1].rsplit(":", 1)[1]) for b in c.brokers]
        keystore = f"{root}/server.pem"
        before = served_certificate(ports[0], c.truststore, keystore)
        fresh = new_ca.issue_cert("localhost", "127.0.0.1")
        with open(f"{keystore}.new", "wb") as f:
            f.write(fresh.private_key_and_cert_chain_pem.bytes())
        os.replace(f"{keystore}.new", keystore)
        want = ssl.PEM_cert_to_DER_cert(fresh.cert_chain_pems[0].bytes().decode())
        assert before != want
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            served = [served_certificate(p, c.truststore, keystore) for p in ports]
            if all(s == want for s in served):
                break
            time.sleep(0.5)
        assert all(s == want for s in served), "a voter still serves the old certificate"
        # Step two: the old CA is no longer trusted anywhere.
        with open(f"{c.truststore}.new", "wb") as f:
            f.write(new_ca.cert_pem.bytes())
        os.replace(f"{c.truststore}.new", c.truststore)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if all(reloads(b, "CONTROLLER") >= 2 and reloads(b, "SASL_SSL") >= 2 for b in c.brokers):
                break
            time.sleep(0.5)
        assert all(reloads(b, "CONTROLLER") >= 2 and reloads(b, "SASL_SSL") >= 2 for b in c.brokers)
        c.brokers[2].stop()
        c.brokers[2].launch()
        c.brokers[2].wait_ready(60)
        # Every replica of an RF=3, min.insync.replicas=3 topic must fetch:
        # brokers 0 and 1 dial the restarted broker 2 with their new certificates.
        admin = AdminClient(client(c))
        admin.create_topics([NewTopic("after-roll", 3, 3, config={"min.insync.replicas": "3"})])["after-roll"].result(30)
        p = Producer(client(c, acks="all", **{"message.timeout.ms": 60000}))
        for i in range(300):
            p.produce("after-roll", value=f"v{i}")
        assert p.flush(90) == 0
        errors = []
        p2 = Producer(client(c, acks="all"))
        p2.produce("before-roll", value="x", on_delivery=lambda e, m: errors.append(e))
        assert p2.flush(60) == 0 and errors == [None]
    finally:
        c.stop()
