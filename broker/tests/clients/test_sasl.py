"""SASL listeners (SASL_PLAINTEXT, SASL_SSL): PLAIN from the listener's JAAS
config and SCRAM-SHA-256/512 from the metadata log, with real clients; the
failures each client is told; what an unauthenticated connection may do;
SCRAM users managed with the admin API and kept across kill -9; KIP-368
session lifetimes."""

import asyncio
import json
import os
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest
import trustme
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import (
    AdminClient,
    NewTopic,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from conftest import free_port

JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    'username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";'
)
ADD_ALICE = [
    "--add-scram",
    "SCRAM-SHA-256=[name=alice,password=alice-secret]",
    "--add-scram",
    "SCRAM-SHA-512=[name=alice,password=alice-secret,iterations=8192]",
]


@pytest.fixture
def ca(tmp_path):
    ca = trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1")
    (tmp_path / "server.pem").write_bytes(server.private_key_and_cert_chain_pem.bytes())
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem.bytes())
    return tmp_path


def sasl_broker(broker_factory, ca, **extra):
    plain, sasl, sasl_ssl = free_port(), free_port(), free_port()
    settings = {
        "listeners": f"PLAINTEXT://127.0.0.1:{plain},SASL_PLAINTEXT://127.0.0.1:{sasl},SASL_SSL://127.0.0.1:{sasl_ssl}",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS,
        "listener.name.sasl_ssl.plain.sasl.jaas.config": JAAS,
        "ssl.keystore.location": str(ca / "server.pem"),
        **extra,
    }
    b = broker_factory(args=ADD_ALICE, **settings)
    b.sasl_bootstrap = f"127.0.0.1:{sasl}"
    b.sasl_port = sasl
    b.sasl_ssl_bootstrap = f"127.0.0.1:{sasl_ssl}"
    return b


def rdkafka(mechanism, user="alice", password="alice-secret", ca=None) -> dict:
    conf = {
        "security.protocol": "SASL_SSL" if ca else "SASL_PLAINTEXT",
        "sasl.mechanism": mechanism,
        "sasl.username": user,
        "sasl.password": password,
    }
    if ca:
        conf["ssl.ca.location"] = str(ca / "ca.pem")
    return conf


def round_trip(bootstrap, conf, topic, n=100):
    admin = AdminClient({"bootstrap.servers": bootstrap, **conf})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(15)
    p = Producer({"bootstrap.servers": bootstrap, **conf})
    for i in range(n):
        p.produce(topic, value=f"v{i}")
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


def auth_error(bootstrap, conf) -> str:
    """Connects with librdkafka expecting an authentication failure; its errors."""
    errors = []
    admin = AdminClient({"bootstrap.servers": bootstrap, "error_cb": lambda e: errors.append(str(e)), **conf})
    t0 = time.monotonic()
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=3)
    while not errors and time.monotonic() - t0 < 15:
        admin.poll(0.2)
    assert errors, "the client was told nothing"
    return " ".join(errors)


def test_every_client_authenticates_with_plain_and_scram(broker_factory, ca):
    b = sasl_broker(broker_factory, ca)
    for mech in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]:
        tag = mech.lower().replace("-", "")
        round_trip(b.sasl_bootstrap, rdkafka(mech), f"rd-{tag}")
        round_trip(b.sasl_ssl_bootstrap, rdkafka(mech, ca=ca), f"rd-ssl-{tag}")

    # kafka-python, SCRAM-SHA-512 over SASL_PLAINTEXT and PLAIN over SASL_SSL.
    from kafka import KafkaConsumer, KafkaProducer

    for bootstrap, proto, mech, extra in [
        (b.sasl_bootstrap, "SASL_PLAINTEXT", "SCRAM-SHA-512", {}),
        (b.sasl_ssl_bootstrap, "SASL_SSL", "PLAIN", {"ssl_cafile": str(ca / "ca.pem")}),
    ]:
        topic = f"kp-{mech.lower()}"
        auth = dict(security_protocol=proto, sasl_mechanism=mech, sasl_plain_username="alice", sasl_plain_password="alice-secret", **extra)
        kp = KafkaProducer(bootstrap_servers=bootstrap, **auth)
        for i in range(50):
            kp.send(topic, value=f"v{i}".encode())
        kp.flush(30)
        kp.close()
        kc = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=10000, **auth)
        assert [m.value.decode() for m in kc][:50] == [f"v{i}" for i in range(50)]
        kc.close()

    # aiokafka, SCRAM-SHA-256 over SASL_SSL.
    async def aio():
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
        from aiokafka.helpers import create_ssl_context

        auth = dict(
            security_protocol="SASL_SSL",
            ssl_context=create_ssl_context(cafile=str(ca / "ca.pem")),
            sasl_mechanism="SCRAM-SHA-256",
            sasl_plain_username="alice",
            sasl_plain_password="alice-secret",
        )
        p = AIOKafkaProducer(bootstrap_servers=b.sasl_ssl_bootstrap, **auth)
        await p.start()
        for i in range(30):
            await p.send_and_wait("aio-scram", f"v{i}".encode())
        await p.stop()
        c = AIOKafkaConsumer("aio-scram", bootstrap_servers=b.sasl_ssl_bootstrap, auto_offset_reset="earliest", **auth)
        await c.start()
        got = []
        try:
            while len(got) < 30:
                batch = await asyncio.wait_for(c.getmany(timeout_ms=500), 20)
                for msgs in batch.values():
                    got.extend(m.value.decode() for m in msgs)
        finally:
            await c.stop()
        assert got == [f"v{i}" for i in range(30)]

    asyncio.run(aio())

    # kcat, SCRAM-SHA-512.
    args = ["kcat", "-b", b.sasl_bootstrap, "-X", "security.protocol=sasl_plaintext", "-X", "sasl.mechanisms=SCRAM-SHA-512",
            "-X", "sasl.username=alice", "-X", "sasl.password=alice-secret"]
    subprocess.run([*args, "-t", "kcat-scram", "-P"], input=b"a\nb\n", check=True, timeout=30)
    out = subprocess.run([*args, "-t", "kcat-scram", "-C", "-e", "-o", "beginning"], capture_output=True, timeout=30)
    assert out.stdout.decode().split() == ["a", "b"], out.stderr.decode()

    # kafkajs, SCRAM-SHA-256 and PLAIN.
    script = Path(__file__).parent / "node" / "roundtrip.js"
    for mech in ["scram-sha-256", "plain"]:
        r = subprocess.run(
            ["node", str(script), b.sasl_bootstrap, f"kafkajs-{mech}", "none", "200"],
            capture_output=True, timeout=120, cwd=script.parent,
            env={**os.environ, "KAFKAJS_SASL": f"{mech}:alice:alice-secret"},
        )
        assert r.returncode == 0, r.stderr.decode()[-3000:]
        assert json.loads(r.stdout.decode().strip().splitlines()[-1]) == {"produced": 200, "consumed": 200, "inOrder": True}
    # No password reached the log.
    assert "alice-secret" not in b.log() and "admin-secret" not in b.log()


@pytest.mark.parametrize("mech", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_wrong_password_and_unknown_user_are_authentication_errors(broker_factory, ca, mech):
    b = sasl_broker(broker_factory, ca)
    for user, pw in [("alice", "wrong"), ("mallory", "alice-secret")]:
        t0 = time.monotonic()
        err = auth_error(b.sasl_bootstrap, rdkafka(mech, user, pw))
        assert "Authentication failed" in err or "SASL authentication error" in err, err
        assert time.monotonic() - t0 < 15
    assert "wrong" not in b.log()
    assert "failed authentication" in b.log()


def test_a_disabled_mechanism_is_refused_with_the_enabled_ones(broker_factory, ca):
    b = sasl_broker(broker_factory, ca, **{"listener.name.sasl_plaintext.sasl.enabled.mechanisms": "SCRAM-SHA-512"})
    err = auth_error(b.sasl_bootstrap, rdkafka("PLAIN"))
    assert "PLAIN" in err and "SCRAM-SHA-512" in err, err
    round_trip(b.sasl_bootstrap, rdkafka("SCRAM-SHA-512"), "only-512")


# Bare Kafka requests, for what clients do not do.
def request(api_key, version, body: bytes, correlation=1) -> bytes:
    header = struct.pack(">hhih", api_key, version, correlation, 4) + b"test"
    return struct.pack(">i", len(header) + len(body)) + header + body


def kstring(s: str) -> bytes:
    return struct.pack(">h", len(s)) + s.encode()


def read_response(sock) -> bytes:
    size = struct.unpack(">i", recv_exact(sock, 4))[0]
    return recv_exact(sock, size)[4:]  # without the correlation id


def recv_exact(sock, n) -> bytes:
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed by the broker")
        out += chunk
    return out


def closed(sock, timeout=5) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def plain_login(sock, user, password) -> int:
    """SaslHandshake v1 + SaslAuthenticate v1 with PLAIN; the session lifetime."""
    sock.sendall(request(17, 1, kstring("PLAIN")))
    assert struct.unpack(">h", read_response(sock)[:2])[0] == 0
    token = b"\0" + user.encode() + b"\0" + password.encode()
    sock.sendall(request(36, 1, struct.pack(">i", len(token)) + token, 2))
    resp = read_response(sock)
    code = struct.unpack(">h", resp[:2])[0]
    assert code == 0, code
    return struct.unpack(">q", resp[-8:])[0]


def test_an_unauthenticated_connection_gets_api_versions_and_sasl_only(broker_factory, ca):
    b = sasl_broker(broker_factory, ca)
    # ApiVersions is answered before authentication.
    with socket.create_connection(("127.0.0.1", b.sasl_port), timeout=5) as s:
        s.sendall(request(18, 0, b""))
        assert struct.unpack(">h", read_response(s)[:2])[0] == 0
        # Metadata is not: the connection closes.
        s.sendall(request(3, 1, struct.pack(">i", -1), 2))
        assert closed(s)
    # A frame above sasl.server.max.receive.size closes the connection unread.
    with socket.create_connection(("127.0.0.1", b.sasl_port), timeout=5) as s:
        s.sendall(struct.pack(">i", 600_000) + b"\0" * 1024)
        assert closed(s)
    # SaslAuthenticate without a handshake: ILLEGAL_SASL_STATE, then closed.
    with socket.create_connection(("127.0.0.1", b.sasl_port), timeout=5) as s:
        s.sendall(request(36, 1, struct.pack(">i", 3) + b"abc"))
        assert struct.unpack(">h", read_response(s)[:2])[0] == 34
        assert closed(s)
    # A failed PLAIN login: SASL_AUTHENTICATION_FAILED with Kafka's message, then closed.
    with socket.create_connection(("127.0.0.1", b.sasl_port), timeout=5) as s:
        s.sendall(request(17, 1, kstring("PLAIN")))
        read_response(s)
        token = b"\0alice\0nope"
        s.sendall(request(36, 1, struct.pack(">i", len(token)) + token, 2))
        resp = read_response(s)
        assert struct.unpack(">h", resp[:2])[0] == 58
        assert b"Invalid username or password" in resp
        assert closed(s)
    # SaslHandshake on a PLAINTEXT listener: ILLEGAL_SASL_STATE.
    with socket.create_connection(("127.0.0.1", b.port), timeout=5) as s:
        s.sendall(request(17, 1, kstring("PLAIN")))
        assert struct.unpack(">h", read_response(s)[:2])[0] == 34
    # A v0 handshake with bare tokens (old clients): PLAIN, then requests flow.
    with socket.create_connection(("127.0.0.1", b.sasl_port), timeout=5) as s:
        s.sendall(request(17, 0, kstring("PLAIN")))
        assert struct.unpack(">h", read_response(s)[:2])[0] == 0
        token = b"\0alice\0alice-secret"
        s.sendall(struct.pack(">i", len(token)) + token)
        assert recv_exact(s, 4) == b"\0\0\0\0"
        s.sendall(request(3, 1, struct.pack(">i", -1), 3))
        assert len(read_response(s)) > 0
    # The listener still serves clients after all this.
    round_trip(b.sasl_bootstrap, rdkafka("SCRAM-SHA-256"), "after-abuse")


def test_a_session_past_its_lifetime_is_closed_unless_it_reauthenticates(broker_factory, ca):
    b = sasl_broker(broker_factory, ca, **{"connections.max.reauth.ms": "1500"})
    with socket.create_connection(("127.0.0.1", b.sasl_port), timeout=5) as s:
        assert plain_login(s, "alice", "alice-secret") == 1500
        s.sendall(request(3, 1, struct.pack(">i", -1), 3))
        read_response(s)
        time.sleep(2)
        s.sendall(request(3, 1, struct.pack(">i", -1), 4))
        assert closed(s)
    # Re-authenticating in time keeps the connection; as another user it is refused.
    with socket.create_connection(("127.0.0.1", b.sasl_port), timeout=5) as s:
        plain_login(s, "alice", "alice-secret")
        time.sleep(1)
        plain_login(s, "alice", "alice-secret")
        time.sleep(1)
        s.sendall(request(3, 1, struct.pack(">i", -1), 5))
        read_response(s)
        s.sendall(request(17, 1, kstring("PLAIN")))
        read_response(s)
        token = b"\0admin\0admin-secret"
        s.sendall(request(36, 1, struct.pack(">i", len(token)) + token, 6))
        assert struct.unpack(">h", read_response(s)[:2])[0] == 58
        assert closed(s)
    # librdkafka re-authenticates on its own (KIP-368): a producer runs through
    # several lifetimes and none of its connections is closed for expiry.
    expired_before = b.log().count("SASL session expired")
    assert expired_before >= 1
    errors = []
    p = Producer({"bootstrap.servers": b.sasl_bootstrap, "error_cb": lambda e: errors.append(e), **rdkafka("SCRAM-SHA-256")})
    failed = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < 5:
        p.produce("reauth", value=b"x", on_delivery=lambda err, msg: err and failed.append(err))
        p.poll(0.05)
    assert p.flush(30) == 0
    assert failed == [], failed[:3]
    assert b.log().count("SASL session expired") == expired_before


def test_scram_users_are_managed_with_the_admin_api_and_survive_kill_9(broker_factory, ca):
    b = sasl_broker(broker_factory, ca)
    admin = AdminClient({"bootstrap.servers": b.sasl_bootstrap, **rdkafka("SCRAM-SHA-256")})
    info256 = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192)
    futures = admin.alter_user_scram_credentials(
        [
            UserScramCredentialUpsertion("bob", info256, b"bob-secret"),
            UserScramCredentialUpsertion("carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), b"carol-secret"),
        ]
    )
    for f in futures.values():
        f.result(15)
    round_trip(b.sasl_bootstrap, rdkafka("SCRAM-SHA-256", "bob", "bob-secret"), "bob-topic", n=10)
    desc = admin.describe_user_scram_credentials(["bob", "alice"])
    bob = desc["bob"].result(15)
    assert [(i.mechanism, i.iterations) for i in bob.scram_credential_infos] == [(ScramMechanism.SCRAM_SHA_256, 8192)]
    alice = desc["alice"].result(15)
    assert sorted((i.mechanism, i.iterations) for i in alice.scram_credential_infos) == [
        (ScramMechanism.SCRAM_SHA_256, 4096),
        (ScramMechanism.SCRAM_SHA_512, 8192),
    ]
    # A user that does not exist, and iterations Kafka does not accept.
    with pytest.raises(KafkaException) as e:
        admin.describe_user_scram_credentials(["nobody"])["nobody"].result(15)
    assert "RESOURCE_NOT_FOUND" in str(e.value) or "does not exist" in str(e.value)
    with pytest.raises(KafkaException) as e:
        admin.alter_user_scram_credentials(
            [UserScramCredentialUpsertion("dave", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 100), b"pw")]
        )["dave"].result(15)
    assert "UNACCEPTABLE_CREDENTIAL" in str(e.value) or "Iterations" in str(e.value)
    # Deleted: bob can no longer log in. Alice's password changed.
    admin.alter_user_scram_credentials([UserScramCredentialDeletion("bob", ScramMechanism.SCRAM_SHA_256)])["bob"].result(15)
    admin.alter_user_scram_credentials(
        [UserScramCredentialUpsertion("alice", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"alice-new")]
    )["alice"].result(15)
    auth_error(b.sasl_bootstrap, rdkafka("SCRAM-SHA-256", "bob", "bob-secret"))
    # kill -9 and a restart with the same --add-scram: changes kept, alice's new password stays.
    b.kill9()
    b.start()
    round_trip(b.sasl_bootstrap, rdkafka("SCRAM-SHA-512", "carol", "carol-secret"), "carol-topic", n=10)
    round_trip(b.sasl_bootstrap, rdkafka("SCRAM-SHA-256", "alice", "alice-new"), "alice-new", n=10)
    auth_error(b.sasl_bootstrap, rdkafka("SCRAM-SHA-256", "alice", "alice-secret"))
    auth_error(b.sasl_bootstrap, rdkafka("SCRAM-SHA-256", "bob", "bob-secret"))
    assert "bob-secret" not in b.log() and "carol-secret" not in b.log()


def test_skeinctl_reaches_a_sasl_ssl_listener_with_a_command_config(broker_factory, ca, tmp_path):
    from test_skeinctl import skeinctl_binary

    b = sasl_broker(broker_factory, ca)

    def ctl(props: str, *args):
        conf = tmp_path / "client.properties"
        conf.write_text(props)
        return subprocess.run(
            [skeinctl_binary(), "-b", b.sasl_ssl_bootstrap, "--output", "json", "--timeout", "20",
             "--command-config", str(conf), *args],
            capture_output=True, timeout=60,
        )

    good = (
        "# Kafka's client properties\n"
        "security.protocol=SASL_SSL\n"
        f"ssl.truststore.location={ca / 'ca.pem'}\n"
        "sasl.mechanism=SCRAM-SHA-512\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\\n"
        '    username="alice" password="alice-secret";\n'
    )
    r = ctl(good, "topic", "create", "ctl-secured", "--partitions", "2")
    assert r.returncode == 0, r.stderr.decode()
    r = ctl(good, "topic", "list")
    assert r.returncode == 0, r.stderr.decode()
    assert "ctl-secured" in r.stdout.decode()

    # A wrong password is an authentication error at once, not a retry until the timeout.
    t0 = time.monotonic()
    r = ctl(good.replace("alice-secret", "wrong-secret"), "topic", "list")
    assert r.returncode != 0
    err = r.stderr.decode()
    assert "authentication failed" in err, err
    assert "wrong-secret" not in err
    assert time.monotonic() - t0 < 15
    # A client that does not trust the broker's CA says so.
    other = tmp_path / "other-ca.pem"
    other.write_bytes(trustme.CA().cert_pem.bytes())
    r = ctl(good.replace(str(ca / "ca.pem"), str(other)), "topic", "list")
    assert r.returncode != 0 and "authentication failed" in r.stderr.decode(), r.stderr.decode()
    # A property file that asks for something unknown is a usage error.
    r = ctl("security.protocol=SASL_SSL\nsasl.mechanism=GSSAPI\n" + f"ssl.truststore.location={ca / 'ca.pem'}\n", "topic", "list")
    assert r.returncode == 2 and "sasl.mechanism" in r.stderr.decode()
