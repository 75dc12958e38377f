"""Consumer groups with real clients: rebalances, failover, committed offsets."""

import asyncio
import json
import os
import subprocess
import sys
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

MEMBER = os.path.join(os.path.dirname(__file__), "group_member.py")


def create_topic(bootstrap, name, partitions):
    a = AdminClient({"bootstrap.servers": bootstrap})
    a.create_topics([NewTopic(name, partitions, 1)])[name].result(30)


def produce(bootstrap, topic, n, partitions):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(n):
        p.produce(topic, value=b"%d" % i, partition=i % partitions)
    assert p.flush(30) == 0


class Member:
    """A group member process whose events are collected by a reader thread."""

    def __init__(self, bootstrap, topic, group, extra=None):
        self.proc = subprocess.Popen(
            [sys.executable, MEMBER, bootstrap, topic, group, json.dumps(extra or {})],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        self.assigned = None
        self.owned_history = []
        self.records = []
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            ev = json.loads(line)
            with self.lock:
                if "assigned" in ev:
                    self.assigned = ev["assigned"]
                elif "owned" in ev:
                    self.owned_history.append(ev["owned"])
                else:
                    self.records.append(tuple(ev["record"]))

    def kill(self):
        self.proc.kill()
        self.proc.wait()


def wait_for(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def group_broker(broker_factory):
    return broker_factory(**{"group.initial.rebalance.delay.ms": "0", "group.min.session.timeout.ms": "1000"})


def test_three_members_share_six_partitions_and_survive_a_sigkill(group_broker):
    b = group_broker
    create_topic(b.bootstrap, "shared", 6)
    members = [Member(b.bootstrap, "shared", "g3") for _ in range(3)]
    try:
        wait_for(lambda: all(m.assigned is not None and len(m.assigned) == 2 for m in members), 60, "two partitions each")
        assert sorted(p for m in members for p in m.assigned) == list(range(6))
        produce(b.bootstrap, "shared", 3000, 6)
        wait_for(lambda: sum(len(m.records) for m in members) >= 3000, 60, "first 3000 records")
        victim = members[0]
        victim.kill()
        produce(b.bootstrap, "shared", 3000, 6)
        survivors = members[1:]
        # After the session timeout the survivors take over the victim's partitions.
        wait_for(lambda: sorted(p for m in survivors for p in (m.assigned or [])) == list(range(6)), 60, "takeover")
        wait_for(lambda: len({r for m in members for r in m.records}) >= 6000, 60, "every record")
        seen = [r for m in members for r in m.records]
        assert len(set(seen)) == 6000
        # Duplicates can only come from the victim's uncommitted window.
        assert len(seen) - len(set(seen)) <= 1000
    finally:
        for m in members:
            m.kill()


def test_committed_offsets_survive_a_broker_restart(group_broker):
    b = group_broker
    create_topic(b.bootstrap, "resume", 2)
    produce(b.bootstrap, "resume", 100, 2)
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "resumers", "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.subscribe(["resume"])
    got = 0
    deadline = time.monotonic() + 30
    while got < 100 and time.monotonic() < deadline:
        got += len([m for m in c.consume(100, 1.0) if m.error() is None])
    assert got == 100
    c.commit(asynchronous=False)
    c.close()
    b.stop()
    b.start()
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "resumers"})
    committed = c.committed([TopicPartition("resume", 0), TopicPartition("resume", 1)], timeout=10)
    assert sorted(tp.offset for tp in committed) == [50, 50]
    c.close()


def test_a_member_that_outlives_max_poll_interval_cannot_commit_over_the_new_owner(group_broker):
    b = group_broker
    create_topic(b.bootstrap, "slow", 1)
    produce(b.bootstrap, "slow", 10, 1)
    conf = {
        "bootstrap.servers": b.bootstrap, "group.id": "slowpokes", "enable.auto.commit": False,
        "auto.offset.reset": "earliest", "session.timeout.ms": 1500, "max.poll.interval.ms": 2000,
    }
    slow = Consumer(conf)
    slow.subscribe(["slow"])
    msgs = []
    deadline = time.monotonic() + 30
    while not msgs and time.monotonic() < deadline:
        msgs = [m for m in slow.consume(10, 1.0) if m.error() is None]
    assert msgs
    # "Processing" takes longer than max.poll.interval.ms: the client leaves the group.
    time.sleep(4)
    # Meanwhile another member takes the partition and commits its progress.
    fast = Consumer({**conf, "max.poll.interval.ms": 300000})
    fast.subscribe(["slow"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not fast.assignment():
        fast.consume(10, 0.5)
    fast.commit(offsets=[TopicPartition("slow", 0, 7)], asynchronous=False)
    # The late commit of the removed member must be rejected, and the client told.
    with pytest.raises(KafkaException) as e:
        slow.commit(offsets=[TopicPartition("slow", 0, 3)], asynchronous=False)
    assert e.value.args[0].code() in (
        KafkaError.UNKNOWN_MEMBER_ID, KafkaError.ILLEGAL_GENERATION, KafkaError._MAX_POLL_EXCEEDED,
        KafkaError.REBALANCE_IN_PROGRESS, KafkaError._NO_OFFSET, KafkaError._STATE,
    ), e.value
    [tp] = fast.committed([TopicPartition("slow", 0)], timeout=10)
    assert tp.offset == 7
    fast.close()
    slow.close()


def test_kafka_python_group_of_two_commits(group_broker):
    from kafka import KafkaConsumer

    b = group_broker
    create_topic(b.bootstrap, "kp-group", 4)
    produce(b.bootstrap, "kp-group", 400, 4)
    consumers = [
        KafkaConsumer("kp-group", bootstrap_servers=b.bootstrap, group_id="kp", enable_auto_commit=False,
                      auto_offset_reset="earliest", consumer_timeout_ms=1000, metadata_max_age_ms=500)
        for _ in range(2)
    ]
    # The topic's metadata in each client before it joins: kafka-python's
    # leader otherwise may assign with none ("No partition metadata") and,
    # seen once in CI, not rejoin within the minute when it arrives.
    for c in consumers:
        wait_for(lambda: c.partitions_for_topic("kp-group") == {0, 1, 2, 3}, 30, "the topic's metadata")
    seen, lock, stop = set(), threading.Lock(), threading.Event()

    # One thread per consumer, as applications run them (kafka-python rejoins inside poll()).
    def run(c):
        from kafka.errors import CommitFailedError, RebalanceInProgressError

        while not stop.is_set():
            for tp, records in c.poll(timeout_ms=200).items():
                with lock:
                    seen.update((r.partition, r.offset) for r in records)
            try:
                c.commit()
            except (RebalanceInProgressError, CommitFailedError):
                # The group rebalances (the broker answers the commit
                # REBALANCE_IN_PROGRESS, as Kafka does): the next poll()
                # rejoins, as an application's loop would. CI saw the thread
                # die on this and its consumer never rejoin.
                pass

    threads = [threading.Thread(target=run, args=(c,)) for c in consumers]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(seen) >= 400 and all(len(c.assignment()) == 2 for c in consumers), 60, "every record")
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert len(seen) == 400
    assert sorted(p for c in consumers for p in (tp.partition for tp in c.assignment())) == [0, 1, 2, 3]
    for c in consumers:
        c.close()
    check = KafkaConsumer(bootstrap_servers=b.bootstrap, group_id="kp")
    from kafka import TopicPartition as KTP

    assert [check.committed(KTP("kp-group", p)) for p in range(4)] == [100, 100, 100, 100]
    check.close()


def test_aiokafka_group_of_two_commits(group_broker):
    from aiokafka import AIOKafkaConsumer

    b = group_broker
    create_topic(b.bootstrap, "aio-group", 2)
    produce(b.bootstrap, "aio-group", 200, 2)

    async def run():
        cs = [
            AIOKafkaConsumer("aio-group", bootstrap_servers=b.bootstrap, group_id="aio", enable_auto_commit=False,
                             auto_offset_reset="earliest")
            for _ in range(2)
        ]
        for c in cs:
            await c.start()
        seen = set()
        deadline = time.monotonic() + 60
        while len(seen) < 200 and time.monotonic() < deadline:
            for c in cs:
                batch = await c.getmany(timeout_ms=200)
                for tp, records in batch.items():
                    seen.update((r.partition, r.offset) for r in records)
                await c.commit()
        for c in cs:
            await c.stop()
        return seen

    assert len(asyncio.run(run())) == 200


def test_admin_lists_describes_and_deletes_groups(group_broker):
    b = group_broker
    create_topic(b.bootstrap, "adm", 1)
    produce(b.bootstrap, "adm", 10, 1)
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "adm-group", "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe(["adm"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not c.assignment():
        c.consume(10, 0.5)
    c.commit(offsets=[TopicPartition("adm", 0, 5)], asynchronous=False)
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    listed = a.list_consumer_groups().result(10)
    assert "adm-group" in [g.group_id for g in listed.valid]
    [desc] = a.describe_consumer_groups(["adm-group"]).values()
    d = desc.result(10)
    assert d.state.name == "STABLE" and len(d.members) == 1
    assert d.members[0].assignment.topic_partitions[0].topic == "adm"
    from confluent_kafka import ConsumerGroupTopicPartitions

    [f] = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions("adm-group")]).values()
    assert [(tp.topic, tp.partition, tp.offset) for tp in f.result(10).topic_partitions] == [("adm", 0, 5)]
    # A group with members cannot be deleted; once empty it can.
    [d1] = a.delete_consumer_groups(["adm-group"]).values()
    with pytest.raises(KafkaException) as e:
        d1.result(10)
    assert e.value.args[0].code() == KafkaError.NON_EMPTY_GROUP
    c.close()
    [d2] = a.delete_consumer_groups(["adm-group"]).values()
    d2.result(10)
    assert "adm-group" not in [g.group_id for g in a.list_consumer_groups().result(10).valid]
    [f] = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions("adm-group")]).values()
    assert [tp.offset for tp in f.result(10).topic_partitions] in ([], [-1001])



def test_static_member_restart_gets_its_partitions_back_without_a_rebalance(group_broker):
    b = group_broker
    create_topic(b.bootstrap, "static", 4)
    extra = {"group.instance.id": "member-a", "session.timeout.ms": 10000}
    a = Member(b.bootstrap, "static", "statics", extra)
    other = Member(b.bootstrap, "static", "statics", {"group.instance.id": "member-b", "session.timeout.ms": 10000})
    try:
        wait_for(
            lambda: a.owned_history and other.owned_history and a.owned_history[-1] and other.owned_history[-1]
            and len(a.owned_history[-1]) + len(other.owned_history[-1]) == 4,
            60, "assignment",
        )
        first = list(a.owned_history[-1])
        other_at_kill = len(other.owned_history) - 1
        a.kill()  # no LeaveGroup: a static member's session outlives its process
        a = Member(b.bootstrap, "static", "statics", extra)
        wait_for(lambda: a.owned_history and a.owned_history[-1], 30, "the restarted member's assignment")
        assert a.owned_history[-1] == first
        # The other member saw no rebalance: once assigned, it never lost its partitions.
        hist = list(other.owned_history)[other_at_kill:]
        assert all(o == hist[0] for o in hist), hist
        a_desc = AdminClient({"bootstrap.servers": b.bootstrap})
        [f] = a_desc.describe_consumer_groups(["statics"]).values()
        d = f.result(10)
        assert sorted(m.group_instance_id for m in d.members) == ["member-a", "member-b"]
    finally:
        a.kill()
        other.kill()


def test_cooperative_sticky_moves_only_the_partitions_it_must(group_broker):
    b = group_broker
    create_topic(b.bootstrap, "coop", 6)
    conf = {"partition.assignment.strategy": "cooperative-sticky"}
    m1 = Member(b.bootstrap, "coop", "coop-group", conf)
    try:
        wait_for(lambda: m1.owned_history and len(m1.owned_history[-1]) == 6, 60, "all six to the first member")
        m2 = Member(b.bootstrap, "coop", "coop-group", conf)
        try:
            wait_for(
                lambda: m2.owned_history and len(m2.owned_history[-1]) == 3 and len(m1.owned_history[-1]) == 3,
                60, "three move to the second member",
            )
            kept = set(m1.owned_history[-1])
            assert kept | set(m2.owned_history[-1]) == set(range(6))
            # Incremental rebalancing: the first member never gave up the partitions it kept
            # (an eager rebalance would have revoked all six first).
            after_join = m1.owned_history[m1.owned_history.index(list(range(6))):]
            assert all(kept <= set(owned) for owned in after_join), m1.owned_history
        finally:
            m2.kill()
    finally:
        m1.kill()


def test_kip848_consumer_protocol_group_of_three_with_a_member_leaving(broker_factory):
    b = broker_factory(**{"group.consumer.heartbeat.interval.ms": "500",
                          "group.consumer.min.heartbeat.interval.ms": "100"})
    create_topic(b.bootstrap, "kip848", 6)
    produce(b.bootstrap, "kip848", 600, 6)
    conf = {"bootstrap.servers": b.bootstrap, "group.id": "next-gen", "group.protocol": "consumer",
            "auto.offset.reset": "earliest", "enable.auto.commit": False}
    cs = [Consumer(conf) for _ in range(3)]
    for c in cs:
        c.subscribe(["kip848"])
    seen = set()

    def spin(consumers, until, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not until():
            for c in consumers:
                msgs = c.consume(100, 0.1)
                for m in msgs:
                    assert m.error() is None, m.error()
                    seen.add((m.partition(), m.offset()))
                if msgs:
                    c.commit(asynchronous=False)
        return until()

    assert spin(cs, lambda: len(seen) == 600 and all(len(c.assignment()) == 2 for c in cs), 30), \
        [c.assignment() for c in cs]
    assert sorted(tp.partition for c in cs for tp in c.assignment()) == list(range(6))
    # The group is visible to admin tools as a consumer-protocol group.
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    [f] = a.describe_consumer_groups(["next-gen"]).values()
    d = f.result(10)
    assert len(d.members) == 3
    cs[0].close()
    assert spin(cs[1:], lambda: sum(len(c.assignment()) for c in cs[1:]) == 6, 20)
    produce(b.bootstrap, "kip848", 600, 6)
    assert spin(cs[1:], lambda: len(seen) == 1200, 30)
    committed = cs[1].committed([TopicPartition("kip848", p) for p in range(6)], timeout=10)
    assert [tp.offset for tp in committed] == [200] * 6
    for c in cs[1:]:
        c.close()


def test_a_groups_own_session_timeout_expires_a_killed_consumer_protocol_member(broker_factory):
    """consumer.session.timeout.ms set on the group (resource type GROUP) wins
    over the broker's group.consumer.session.timeout.ms: with the broker at
    60 s and the group at 2 s, a SIGKILLed member's partitions move to the
    survivor well before the broker default could expire it."""
    b = broker_factory(**{
        "group.consumer.min.session.timeout.ms": "1000",
        "group.consumer.session.timeout.ms": "60000",
        "group.consumer.min.heartbeat.interval.ms": "100",
        "group.consumer.heartbeat.interval.ms": "500",
    })
    create_topic(b.bootstrap, "own-timeout", 4)
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    res = ConfigResource(ResourceType.GROUP, "quick", incremental_configs=[
        ConfigEntry("consumer.session.timeout.ms", "2000", incremental_operation=AlterConfigOpType.SET)])
    a.incremental_alter_configs([res])[res].result(30)
    members = [Member(b.bootstrap, "own-timeout", "quick", {"group.protocol": "consumer"}) for _ in range(2)]
    try:
        wait_for(lambda: all(m.owned_history and len(m.owned_history[-1]) == 2 for m in members), 60,
                 "two partitions each")
        members[0].kill()
        wait_for(lambda: members[1].owned_history[-1] == [0, 1, 2, 3], 20, "the survivor owning all four")
    finally:
        for m in members:
            m.kill()


def test_kafkajs_group_of_two_commits(group_broker):
    b = group_broker
    create_topic(b.bootstrap, "js-group", 4)
    script = os.path.join(os.path.dirname(__file__), "node", "group.js")
    # The script produces the 400 records itself once both members hold partitions.
    r = subprocess.run(["node", script, b.bootstrap, "js-group", "js", "400", "4"], capture_output=True, timeout=120,
                       cwd=os.path.dirname(script))
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    result = json.loads(r.stdout.decode().strip().splitlines()[-1])
    assert result["consumed"] == 400
    assert result["bothMembersWorked"]
    assert result["committed"] == 400


@pytest.mark.parametrize("strategy", ["range", "roundrobin"])
def test_librdkafka_assignors_share_partitions(group_broker, strategy):
    b = group_broker
    topic = f"assign-{strategy}"
    create_topic(b.bootstrap, topic, 4)
    members = [Member(b.bootstrap, topic, f"g-{strategy}", {"partition.assignment.strategy": strategy}) for _ in range(2)]
    try:
        wait_for(lambda: all(m.owned_history and len(m.owned_history[-1]) == 2 for m in members), 60, "two each")
        assert sorted(p for m in members for p in m.owned_history[-1]) == [0, 1, 2, 3]
    finally:
        for m in members:
            m.kill()


def test_admin_alters_committed_offsets_of_an_empty_group(group_broker):
    from confluent_kafka import ConsumerGroupTopicPartitions

    b = group_broker
    create_topic(b.bootstrap, "rewind", 2)
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    req = ConsumerGroupTopicPartitions("rewinders", [TopicPartition("rewind", 0, 11), TopicPartition("rewind", 1, 22)])
    [f] = a.alter_consumer_group_offsets([req]).values()
    f.result(10)
    [f] = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions("rewinders")]).values()
    assert sorted((tp.partition, tp.offset) for tp in f.result(10).topic_partitions) == [(0, 11), (1, 22)]
