"""ACLs with real clients: Kafka's StandardAuthorizer semantics over ACLs in the
metadata log. confluent-kafka's and kafka-python's admin clients create,
describe and delete them; producers and consumers of three clients are denied
with Kafka's errors and allowed once granted; the ACLs and SCRAM users hold on
every broker of a cluster and survive kill -9."""

import asyncio
import os
import tempfile
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from conftest import Cluster, free_port

JAAS = (
    "org.apache.kafka.common.security.plain.PlainLoginModule required "
    'user_admin="admin-secret";'
)
ADD_ALICE = [
    "--add-scram",
    "SCRAM-SHA-256=[name=alice,password=alice-secret]",
]
AUTHORIZER = {
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    # The inter-broker listener is PLAINTEXT: brokers replicate as User:ANONYMOUS.
    "super.users": "User:admin;User:ANONYMOUS",
    "listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS,
}


def admin_conf(bootstrap):
    return {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.username": "admin",
        "sasl.password": "admin-secret",
    }


def alice_conf(bootstrap):
    return {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": "alice",
        "sasl.password": "alice-secret",
    }


def secured_broker(broker_factory):
    plain, sasl = free_port(), free_port()
    b = broker_factory(
        args=ADD_ALICE,
        listeners=f"PLAINTEXT://127.0.0.1:{plain},SASL_PLAINTEXT://127.0.0.1:{sasl}",
        **AUTHORIZER,
    )
    b.sasl_bootstrap = f"127.0.0.1:{sasl}"
    return b


def produce_error(conf, topic):
    """Produces one record; the delivery error's code, or None."""
    errors = []
    p = Producer({**conf, "message.timeout.ms": 10000})
    p.produce(topic, b"v", on_delivery=lambda err, msg: errors.append(err))
    p.flush(15)
    assert errors, "no delivery report"
    return errors[0].code() if errors[0] else None


def binding(op, name, pattern=ResourcePatternType.LITERAL, rtype=ResourceType.TOPIC,
            permission=AclPermissionType.ALLOW, principal="User:alice"):
    return AclBinding(rtype, name, pattern, principal, "*", op, permission)


def test_real_clients_manage_acls_and_are_denied_without_them(broker_factory):
    b = secured_broker(broker_factory)
    admin = AdminClient(admin_conf(b.sasl_bootstrap))
    for f in admin.create_topics([NewTopic(t, 1, 1) for t in ["orders", "ord-eu", "payroll"]]).values():
        f.result(15)

    # Nothing granted: alice may neither write nor see the topics.
    alice = alice_conf(b.sasl_bootstrap)
    assert produce_error(alice, "orders") == KafkaError.TOPIC_AUTHORIZATION_FAILED
    md = AdminClient(alice).list_topics(timeout=10)
    assert not {"orders", "ord-eu", "payroll"} & set(md.topics), "Metadata hides what alice may not describe"

    # confluent-kafka creates a PREFIXED WRITE, a LITERAL READ and the group READ.
    grants = [
        binding(AclOperation.WRITE, "ord", ResourcePatternType.PREFIXED),
        binding(AclOperation.READ, "orders"),
        binding(AclOperation.READ, "g-alice", rtype=ResourceType.GROUP),
    ]
    for f in admin.create_acls(grants).values():
        f.result(15)
    found = admin.describe_acls(
        AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, "User:alice", None,
                         AclOperation.ANY, AclPermissionType.ANY)
    ).result(15)
    assert sorted(str(x.name) for x in found) == ["g-alice", "ord", "orders"]

    assert produce_error(alice, "orders") is None
    assert produce_error(alice, "ord-eu") is None
    assert produce_error(alice, "payroll") == KafkaError.TOPIC_AUTHORIZATION_FAILED

    # A consumer in its own group reads; in another group it is denied the group.
    c = Consumer({**alice, "group.id": "g-alice", "auto.offset.reset": "earliest"})
    c.subscribe(["orders"])
    got = None
    deadline = time.monotonic() + 30
    while got is None and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got = m.value()
    c.close()
    assert got == b"v"
    c = Consumer({**alice, "group.id": "g-other", "auto.offset.reset": "earliest"})
    c.subscribe(["orders"])
    err = None
    deadline = time.monotonic() + 30
    while err is None and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and m.error():
            err = m.error().code()
    c.close()
    assert err == KafkaError.GROUP_AUTHORIZATION_FAILED

    # A DENY beats the prefixed ALLOW.
    admin.create_acls([binding(AclOperation.WRITE, "ord-eu", permission=AclPermissionType.DENY)])[
        binding(AclOperation.WRITE, "ord-eu", permission=AclPermissionType.DENY)
    ].result(15)
    assert produce_error(alice, "ord-eu") == KafkaError.TOPIC_AUTHORIZATION_FAILED

    # kafka-python: its admin client describes and deletes; its producer is denied.
    from kafka import KafkaProducer
    from kafka.admin import ACLFilter, ACLOperation, ACLPermissionType, KafkaAdminClient, ResourcePatternFilter
    from kafka.admin import ACLResourcePatternType, ResourceType as KPResourceType
    from kafka.errors import TopicAuthorizationFailedError

    kp_auth = dict(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                   sasl_plain_username="admin", sasl_plain_password="admin-secret")
    kadmin = KafkaAdminClient(bootstrap_servers=b.sasl_bootstrap, **kp_auth)
    everything = ACLFilter(
        principal="User:alice", host=None, operation=ACLOperation.ANY, permission_type=ACLPermissionType.ANY,
        resource_pattern=ResourcePatternFilter(KPResourceType.ANY, None, ACLResourcePatternType.ANY),
    )
    acls, error = kadmin.describe_acls(everything)
    assert error.errno == 0 and len(acls) == 4
    kp = KafkaProducer(bootstrap_servers=b.sasl_bootstrap, security_protocol="SASL_PLAINTEXT",
                       sasl_mechanism="SCRAM-SHA-256", sasl_plain_username="alice",
                       sasl_plain_password="alice-secret", max_block_ms=10000)
    with pytest.raises(TopicAuthorizationFailedError):
        kp.send("payroll", b"x").get(timeout=15)
    kp.close()
    [(_, deleted, err)] = kadmin.delete_acls([everything])
    assert err.errno == 0 and len(deleted) == 4
    kadmin.close()

    # aiokafka: revoked at once.
    async def aio():
        from aiokafka import AIOKafkaProducer
        from aiokafka.errors import TopicAuthorizationFailedError as AioTopicAuthorizationFailed

        p = AIOKafkaProducer(bootstrap_servers=b.sasl_bootstrap, security_protocol="SASL_PLAINTEXT",
                             sasl_mechanism="SCRAM-SHA-256", sasl_plain_username="alice",
                             sasl_plain_password="alice-secret", request_timeout_ms=10000)
        await p.start()
        try:
            with pytest.raises(AioTopicAuthorizationFailed):
                await asyncio.wait_for(p.send_and_wait("orders", b"late"), 20)
        finally:
            await p.stop()

    asyncio.run(aio())
    assert "alice-secret" not in b.log() and "admin-secret" not in b.log()


def test_acls_and_scram_users_hold_on_every_broker_and_survive_kill9():
    root = tempfile.mkdtemp(prefix="skein-acl-")
    c = Cluster(root, 3, {**AUTHORIZER, "inter.broker.listener.name": "PLAINTEXT"})
    for b in c.brokers:
        b.sasl_port = free_port()
        b.settings["listeners"] += f",SASL_PLAINTEXT://127.0.0.1:{b.sasl_port}"
        b.args = ADD_ALICE
    c.start()
    try:
        sasl = ",".join(f"127.0.0.1:{b.sasl_port}" for b in c.brokers)
        admin = AdminClient(admin_conf(sasl))
        admin.create_topics([NewTopic("shared", 3, 3)])["shared"].result(20)
        grant = binding(AclOperation.WRITE, "shared")
        admin.create_acls([grant])[grant].result(15)

        def enforced_everywhere(allowed: bool):
            # Each broker alone: its own image decides.
            for b in c.brokers:
                if not b.alive:
                    continue
                conf = alice_conf(f"127.0.0.1:{b.sasl_port}")
                deadline = time.monotonic() + 20
                while True:
                    md = AdminClient(conf).list_topics(topic="shared", timeout=10)
                    visible = md.topics["shared"].error is None
                    if visible == allowed or time.monotonic() > deadline:
                        break
                    time.sleep(0.2)
                assert visible == allowed, f"broker {b.port}: shared visible={visible}"

        enforced_everywhere(True)
        assert produce_error(alice_conf(sasl), "shared") is None

        # kill -9 every broker in turn and restart it: ACLs and alice's SCRAM
        # credential come back from the metadata log.
        for b in c.brokers:
            b.kill9()
            b.start(60)
        enforced_everywhere(True)
        assert produce_error(alice_conf(sasl), "shared") is None

        admin = AdminClient(admin_conf(sasl))
        deleted = admin.delete_acls(
            [AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, "User:alice", None,
                              AclOperation.ANY, AclPermissionType.ANY)]
        )
        for f in deleted.values():
            assert len(f.result(15)) == 1
        enforced_everywhere(False)
        assert produce_error(alice_conf(sasl), "shared") == KafkaError.TOPIC_AUTHORIZATION_FAILED
    finally:
        c.stop()


def test_skeinctl_manages_acls_and_scram_users(broker_factory, tmp_path):
    import json
    import subprocess

    from test_skeinctl import skeinctl_binary

    b = secured_broker(broker_factory)
    props = tmp_path / "admin.properties"
    props.write_text(
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
        'sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="admin-secret";\n'
    )

    def ctl(*args, stdin=None):
        r = subprocess.run(
            [skeinctl_binary(), "-b", b.sasl_bootstrap, "--output", "json", "--timeout", "20",
             "--command-config", str(props), *args],
            capture_output=True, timeout=60, input=stdin,
        )
        assert r.returncode == 0, r.stderr.decode()
        return json.loads(r.stdout.decode())

    # A SCRAM user from standard input; it logs in at once.
    ctl("user", "create", "carol", "--mechanism", "SCRAM-SHA-256", stdin=b"carol-secret\n")
    users = {(u["user"], u["mechanism"]) for u in ctl("user", "list")}
    assert ("carol", "SCRAM-SHA-256") in users and ("alice", "SCRAM-SHA-256") in users
    carol = {**alice_conf(b.sasl_bootstrap), "sasl.username": "carol", "sasl.password": "carol-secret"}
    admin = AdminClient(admin_conf(b.sasl_bootstrap))
    admin.create_topics([NewTopic("audit", 1, 1)])["audit"].result(15)
    assert produce_error(carol, "audit") == KafkaError.TOPIC_AUTHORIZATION_FAILED

    created = ctl("acl", "create", "--topic", "aud", "--prefixed", "--principal", "User:carol",
                  "--operation", "write", "--operation", "describe")
    assert len(created) == 2
    assert produce_error(carol, "audit") is None
    listed = ctl("acl", "list", "--principal", "User:carol")
    assert sorted(x["operation"] for x in listed) == ["Describe", "Write"]
    assert {x["pattern_type"] for x in listed} == {"Prefixed"}
    deleted = ctl("acl", "delete", "--principal", "User:carol", "--operation", "write")
    assert [x["operation"] for x in deleted] == ["Write"]
    assert produce_error(carol, "audit") == KafkaError.TOPIC_AUTHORIZATION_FAILED

    ctl("user", "delete", "carol", "--mechanism", "SCRAM-SHA-256")
    assert ("carol", "SCRAM-SHA-256") not in {(u["user"], u["mechanism"]) for u in ctl("user", "list")}
    assert "carol-secret" not in b.log()
