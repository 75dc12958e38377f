"""TLS listeners (SSL): real clients over TLS, mutual TLS, refusals, rotation
of the key store while clients run, and hostile handshakes."""

import asyncio
import json
import os
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest
import trustme
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)
from cryptography.hazmat.primitives import serialization

from conftest import free_port


class Pki:
    """A CA, the broker's certificate and a client's, as PEM files."""

    def __init__(self, root: Path):
        self.root = root
        self.ca = trustme.CA()
        self.ca_path = self.write("ca.pem", self.ca.cert_pem.bytes())
        server = self.ca.issue_cert("localhost", "127.0.0.1")
        self.server_der = ssl.PEM_cert_to_DER_cert(server.cert_chain_pems[0].bytes().decode())
        self.keystore = self.write("server.pem", server.private_key_and_cert_chain_pem.bytes())
        self.server = server
        alice = self.ca.issue_cert("alice@example.org", common_name="alice", organization_name="acme")
        self.client_cert = self.write("alice.crt", b"".join(p.bytes() for p in alice.cert_chain_pems))
        self.client_key = self.write("alice.key", alice.private_key_pem.bytes())

    def write(self, name: str, data: bytes) -> str:
        p = self.root / name
        p.write_bytes(data)
        return str(p)


@pytest.fixture
def pki(tmp_path):
    return Pki(tmp_path)


def ssl_broker(broker_factory, pki: Pki, **extra):
    """A broker with a PLAINTEXT listener (first, for readiness) and an SSL one."""
    plain, tls = free_port(), free_port()
    settings = {
        "listeners": f"PLAINTEXT://127.0.0.1:{plain},SSL://127.0.0.1:{tls}",
        "ssl.keystore.location": pki.keystore,
        **extra,
    }
    b = broker_factory(**settings)
    b.tls_bootstrap = f"127.0.0.1:{tls}"
    b.tls_port = tls
    return b


def rdkafka_ssl(pki: Pki, cert=True, ca=None) -> dict:
    conf = {"security.protocol": "SSL", "ssl.ca.location": ca or pki.ca_path}
    if cert:
        conf.update({"ssl.certificate.location": pki.client_cert, "ssl.key.location": pki.client_key})
    return conf


def round_trip_rdkafka(bootstrap: str, conf: dict, topic: str, n=200):
    admin = AdminClient({"bootstrap.servers": bootstrap, **conf})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(15)
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, **conf})
    for i in range(n):
        p.produce(topic, key=f"k{i}", value=f"v{i}")
    assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{topic}", "auto.offset.reset": "earliest", **conf})
    c.subscribe([topic])
    got = []
    deadline = time.monotonic() + 30
    while len(got) < n and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got.append(m.value().decode())
    c.close()
    assert got == [f"v{i}" for i in range(n)]


def refused_by_tls(bootstrap: str, conf: dict) -> str:
    """Connects with librdkafka; returns the errors it reported. Fails the test
    if the connection worked or the client was not told within 15 s."""
    errors = []
    conf = {"bootstrap.servers": bootstrap, "error_cb": lambda e: errors.append(str(e)), **conf}
    admin = AdminClient(conf)
    t0 = time.monotonic()
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=3)
    while not errors and time.monotonic() - t0 < 15:
        admin.poll(0.2)
    assert errors, "the client was told nothing"
    return " ".join(errors)


def test_every_client_produces_and_consumes_over_tls(broker_factory, pki, tmp_path):
    b = ssl_broker(broker_factory, pki)
    round_trip_rdkafka(b.tls_bootstrap, rdkafka_ssl(pki, cert=False), "tls-rdkafka")

    # kafka-python
    from kafka import KafkaConsumer, KafkaProducer

    kp = KafkaProducer(bootstrap_servers=b.tls_bootstrap, security_protocol="SSL", ssl_cafile=pki.ca_path)
    for i in range(100):
        kp.send("tls-kafka-python", value=f"v{i}".encode())
    kp.flush(30)
    kp.close()
    kc = KafkaConsumer(
        "tls-kafka-python",
        bootstrap_servers=b.tls_bootstrap,
        security_protocol="SSL",
        ssl_cafile=pki.ca_path,
        auto_offset_reset="earliest",
        consumer_timeout_ms=10000,
    )
    assert [m.value.decode() for m in kc][:100] == [f"v{i}" for i in range(100)]
    kc.close()

    # aiokafka
    async def aio():
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
        from aiokafka.helpers import create_ssl_context

        ctx = create_ssl_context(cafile=pki.ca_path)
        p = AIOKafkaProducer(bootstrap_servers=b.tls_bootstrap, security_protocol="SSL", ssl_context=ctx)
        await p.start()
        for i in range(50):
            await p.send_and_wait("tls-aiokafka", f"v{i}".encode())
        await p.stop()
        c = AIOKafkaConsumer(
            "tls-aiokafka",
            bootstrap_servers=b.tls_bootstrap,
            security_protocol="SSL",
            ssl_context=ctx,
            auto_offset_reset="earliest",
        )
        await c.start()
        got = []
        try:
            while len(got) < 50:
                batch = await asyncio.wait_for(c.getmany(timeout_ms=500), 20)
                for msgs in batch.values():
                    got.extend(m.value.decode() for m in msgs)
        finally:
            await c.stop()
        assert got == [f"v{i}" for i in range(50)]

    asyncio.run(aio())

    # kcat
    args = ["kcat", "-b", b.tls_bootstrap, "-X", "security.protocol=ssl", "-X", f"ssl.ca.location={pki.ca_path}"]
    subprocess.run([*args, "-t", "tls-kcat", "-P"], input=b"a\nb\nc\n", check=True, timeout=30)
    out = subprocess.run([*args, "-t", "tls-kcat", "-C", "-e", "-o", "beginning"], capture_output=True, timeout=30)
    assert out.stdout.decode().split() == ["a", "b", "c"], out.stderr.decode()

    # kafkajs
    script = Path(__file__).parent / "node" / "roundtrip.js"
    r = subprocess.run(
        ["node", str(script), b.tls_bootstrap, "tls-kafkajs", "none", "300"],
        capture_output=True,
        timeout=120,
        cwd=script.parent,
        env={**os.environ, "KAFKAJS_SSL_CA": pki.ca_path},
    )
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    assert json.loads(r.stdout.decode().strip().splitlines()[-1]) == {"produced": 300, "consumed": 300, "inOrder": True}


def test_mutual_tls_admits_trusted_certificates_only(broker_factory, pki, tmp_path):
    b = ssl_broker(broker_factory, pki, **{"ssl.client.auth": "required", "ssl.truststore.location": pki.ca_path})
    round_trip_rdkafka(b.tls_bootstrap, rdkafka_ssl(pki), "mtls")

    # No certificate where one is required.
    err = refused_by_tls(b.tls_bootstrap, rdkafka_ssl(pki, cert=False))
    assert "SSL" in err or "ssl" in err, err
    # A certificate from a CA the broker does not trust.
    (tmp_path / "other").mkdir()
    other = Pki(tmp_path / "other")
    conf = {
        "security.protocol": "SSL",
        "ssl.ca.location": pki.ca_path,
        "ssl.certificate.location": other.client_cert,
        "ssl.key.location": other.client_key,
    }
    err = refused_by_tls(b.tls_bootstrap, conf)
    assert "SSL" in err or "ssl" in err, err
    assert "failed authentication" in b.log()
    # The broker still serves trusted clients.
    round_trip_rdkafka(b.tls_bootstrap, rdkafka_ssl(pki), "mtls-after")


def test_a_client_that_does_not_trust_the_broker_is_told_so(broker_factory, pki, tmp_path):
    b = ssl_broker(broker_factory, pki)
    other = trustme.CA()
    path = tmp_path / "other-ca.pem"
    path.write_bytes(other.cert_pem.bytes())
    err = refused_by_tls(b.tls_bootstrap, rdkafka_ssl(pki, cert=False, ca=str(path)))
    assert "certificate verify failed" in err or "SSL handshake failed" in err, err


def test_inline_pem_and_an_encrypted_key(broker_factory, pki, tmp_path):
    key = serialization.load_pem_private_key(pki.server.private_key_pem.bytes(), None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"s3cret-pw"),
    ).decode()
    chain = "".join(p.bytes().decode() for p in pki.server.cert_chain_pems)
    b = ssl_broker(
        broker_factory,
        pki,
        **{
            "ssl.keystore.location": "",
            "ssl.keystore.key": encrypted,
            "ssl.keystore.certificate.chain": chain,
            "ssl.key.password": "s3cret-pw",
        },
    )
    round_trip_rdkafka(b.tls_bootstrap, rdkafka_ssl(pki, cert=False), "inline")
    # Neither the password nor the key shows in the log.
    assert "s3cret-pw" not in b.log() and "PRIVATE KEY" not in b.log()


def test_a_wrong_key_password_stops_start_up_without_showing_it(broker_factory, pki):
    key = serialization.load_pem_private_key(pki.server.private_key_pem.bytes(), None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"right-pw"),
    )
    path = Path(pki.keystore)
    path.write_bytes(encrypted + b"".join(p.bytes() for p in pki.server.cert_chain_pems))
    with pytest.raises(RuntimeError) as e:
        ssl_broker(broker_factory, pki, **{"ssl.key.password": "wrong-pw"})
    assert "cannot be decrypted with ssl.key.password" in str(e.value)
    assert "wrong-pw" not in str(e.value) and "right-pw" not in str(e.value)


def served_certificate(port: int, cafile: str) -> bytes:
    ctx = ssl.create_default_context(cafile=cafile)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
            return t.getpeercert(binary_form=True)


def test_a_rotated_certificate_is_served_without_a_restart_while_clients_run(broker_factory, pki, tmp_path):
    # Clients trust the old CA and the new one, as during a CA rotation.
    new_ca = trustme.CA()
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(pki.ca.cert_pem.bytes() + new_ca.cert_pem.bytes())
    b = ssl_broker(broker_factory, pki)
    pid = b.proc.pid
    assert served_certificate(b.tls_port, str(bundle)) == pki.server_der
    conf = {"security.protocol": "SSL", "ssl.ca.location": str(bundle)}
    admin = AdminClient({"bootstrap.servers": b.tls_bootstrap, **conf})
    admin.create_topics([NewTopic("rot", 1, 1)])["rot"].result(15)

    failures, acked = [], []
    stop = threading.Event()

    def produce():
        p = Producer({"bootstrap.servers": b.tls_bootstrap, "linger.ms": 5, **conf})

        def report(err, msg):
            (failures if err else acked).append(err or msg.offset())

        i = 0
        while not stop.is_set():
            p.produce("rot", value=f"v{i}", on_delivery=report)
            p.poll(0)
            i += 1
            time.sleep(0.005)
        p.flush(30)

    t = threading.Thread(target=produce)
    t.start()
    try:
        time.sleep(1)
        renewed = new_ca.issue_cert("localhost", "127.0.0.1")
        new_der = ssl.PEM_cert_to_DER_cert(renewed.cert_chain_pems[0].bytes().decode())
        # Replaced as Kubernetes replaces a Secret's files: write beside, rename over.
        tmp = Path(pki.keystore + ".new")
        tmp.write_bytes(renewed.private_key_and_cert_chain_pem.bytes())
        os.replace(tmp, pki.keystore)
        deadline = time.monotonic() + 15
        while served_certificate(b.tls_port, str(bundle)) != new_der:
            assert time.monotonic() < deadline, "the new certificate was not served within 15 s"
            time.sleep(0.2)
        # A broken file (a half-written rotation) keeps the last good certificate.
        Path(pki.keystore).write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot a key\n")
        time.sleep(3)
        assert served_certificate(b.tls_port, str(bundle)) == new_der
        time.sleep(1)
    finally:
        stop.set()
        t.join(60)
    assert failures == [], failures[:5]
    assert len(acked) > 100
    assert b.proc.pid == pid and b.alive
    assert "new connections keep the previous TLS configuration" in b.log()
    # Everything acknowledged is there, read over a new connection (the new certificate).
    c = Consumer({"bootstrap.servers": b.tls_bootstrap, "group.id": "rot", "auto.offset.reset": "earliest", **conf})
    c.subscribe(["rot"])
    n = 0
    deadline = time.monotonic() + 30
    while n < len(acked) and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            n += 1
    c.close()
    assert n == len(acked)


def alter_broker(admin, *entries):
    """IncrementalAlterConfigs SET on broker 0: the future's result or exception."""
    res = ConfigResource(ResourceType.BROKER, "0", incremental_configs=[
        ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in entries])
    return admin.incremental_alter_configs([res])[res]


def test_alter_configs_moves_a_listener_to_new_stores_and_refuses_unusable_ones(broker_factory, pki, tmp_path):
    """Kafka's dynamic update of a listener's key store: checked on the broker
    before it is accepted, served to new connections without a restart, kept
    through kill -9, its secrets never shown."""
    new_ca = trustme.CA()
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(pki.ca.cert_pem.bytes() + new_ca.cert_pem.bytes())
    b = ssl_broker(broker_factory, pki)
    admin = AdminClient({"bootstrap.servers": b.bootstrap})
    assert served_certificate(b.tls_port, str(bundle)) == pki.server_der

    # Refused: a file that is not there, and an inline key that is not a key
    # (its text never comes back); the listener keeps its certificate.
    with pytest.raises(KafkaException) as e:
        alter_broker(admin, ("listener.name.ssl.ssl.keystore.location", str(tmp_path / "missing.pem"))).result(30)
    assert e.value.args[0].code() == KafkaError.INVALID_CONFIG and "cannot read" in str(e.value), e.value
    with pytest.raises(KafkaException) as e:
        alter_broker(admin,
                     ("listener.name.ssl.ssl.keystore.location", ""),
                     ("listener.name.ssl.ssl.keystore.key", "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleQ==\n-----END PRIVATE KEY-----\n"),
                     ("listener.name.ssl.ssl.keystore.certificate.chain", pki.server.cert_chain_pems[0].bytes().decode()),
                     ).result(30)
    assert e.value.args[0].code() == KafkaError.INVALID_CONFIG, e.value
    assert "c2VjcmV0LWtleQ" not in str(e.value)
    with pytest.raises(KafkaException) as e:
        alter_broker(admin, ("listener.name.ssl.ssl.client.auth", "required")).result(30)
    assert e.value.args[0].code() == KafkaError.INVALID_CONFIG and "dynamically" in str(e.value), e.value
    assert served_certificate(b.tls_port, str(bundle)) == pki.server_der

    renewed = new_ca.issue_cert("localhost", "127.0.0.1")
    path = tmp_path / "renewed.pem"
    path.write_bytes(renewed.private_key_and_cert_chain_pem.bytes())
    new_der = ssl.PEM_cert_to_DER_cert(renewed.cert_chain_pems[0].bytes().decode())
    alter_broker(admin,
                 ("listener.name.ssl.ssl.keystore.location", str(path)),
                 ("listener.name.ssl.ssl.key.password", "not-needed-but-secret")).result(30)
    deadline = time.monotonic() + 15
    while served_certificate(b.tls_port, str(bundle)) != new_der and time.monotonic() < deadline:
        time.sleep(0.3)
    assert served_certificate(b.tls_port, str(bundle)) == new_der
    round_trip_rdkafka(b.tls_bootstrap, {"security.protocol": "SSL", "ssl.ca.location": str(bundle)}, "dyn-tls")
    configs = list(admin.describe_configs([ConfigResource(ResourceType.BROKER, "0")]).values())[0].result(30)
    assert configs["listener.name.ssl.ssl.keystore.location"].value == str(path)
    assert configs["listener.name.ssl.ssl.key.password"].value is None
    assert configs["listener.name.ssl.ssl.key.password"].is_sensitive
    assert "not-needed-but-secret" not in b.log() and "c2VjcmV0LWtleQ" not in b.log()

    # The dynamic store outlives the process: after kill -9 the listener
    # serves it again once the metadata log is replayed.
    b.kill9()
    b.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if served_certificate(b.tls_port, str(bundle)) == new_der:
                break
        except OSError:
            pass
        time.sleep(0.3)
    assert served_certificate(b.tls_port, str(bundle)) == new_der


def test_garbage_and_half_finished_handshakes_are_closed_and_the_listener_keeps_serving(broker_factory, pki):
    b = ssl_broker(broker_factory, pki, **{"connections.max.idle.ms": "2000", "max.connections": "50"})
    # Not TLS at all: closed at once.
    with socket.create_connection(("127.0.0.1", b.tls_port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 10)
        s.settimeout(5)
        try:
            while s.recv(4096):
                pass
        except ConnectionResetError:
            pass
    # A Kafka request in clear on the TLS port.
    with socket.create_connection(("127.0.0.1", b.tls_port), timeout=5) as s:
        s.sendall(bytes.fromhex("0000001300120003000000010006736b65696e00"))
        s.settimeout(5)
        try:
            while s.recv(4096):
                pass
        except ConnectionResetError:
            pass
    # Many half-finished handshakes (a ClientHello's first bytes, then silence)
    # hold connections only until the handshake deadline.
    held = []
    for _ in range(40):
        s = socket.create_connection(("127.0.0.1", b.tls_port), timeout=5)
        s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        held.append(s)
    t0 = time.monotonic()
    for s in held:
        s.settimeout(max(0.1, 10 - (time.monotonic() - t0)))
        try:
            assert s.recv(1) == b""
        except ConnectionResetError:
            pass
        s.close()
    assert time.monotonic() - t0 < 10
    round_trip_rdkafka(b.tls_bootstrap, rdkafka_ssl(pki, cert=False), "after-garbage")
