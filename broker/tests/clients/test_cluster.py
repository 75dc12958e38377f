"""A three-broker cluster with real processes and confluent-kafka: placement,
replication, ISR, failover and controller failover."""

import concurrent.futures
import json
import os
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic


def admin(cluster):
    return AdminClient({"bootstrap.servers": cluster.bootstrap})


def create_topic(cluster, name, partitions, rf=3, **configs):
    a = admin(cluster)  # kept alive until the future completes
    fs = a.create_topics(
        [NewTopic(name, partitions, rf, config={k.replace("_", "."): str(v) for k, v in configs.items()})]
    )
    fs[name].result(30)


def partitions_of(cluster, topic):
    """partition -> (leader, replicas, isrs), from Metadata."""
    md = admin(cluster).list_topics(topic, timeout=10)
    return {p.id: (p.leader, list(p.replicas), sorted(p.isrs)) for p in md.topics[topic].partitions.values()}


def wait_until(pred, timeout=30, every=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except (KafkaException, concurrent.futures.TimeoutError) as e:
            # A client that picked a dead or paused broker first: ask again.
            last = e
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def consume_all(bootstrap, topic, partitions, expect, timeout=60):
    """Reads every partition from the start: partition -> list of values."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"check-{topic}-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got = {p: [] for p in range(partitions)}
    deadline = time.monotonic() + timeout
    while sum(len(v) for v in got.values()) < expect and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        got[m.partition()].append(m.value().decode())
    c.close()
    return got


def test_every_broker_is_listed_and_replicas_follow_the_classic_rule(cluster_factory):
    cluster = cluster_factory(3)
    # A broker's registration reaches the others' metadata a moment after it listens.
    wait_until(lambda: sorted(admin(cluster).list_topics(timeout=10).brokers) == [0, 1, 2], what="every broker listed")
    create_topic(cluster, "placed", 6)
    parts = partitions_of(cluster, "placed")
    for i in range(6):
        leader, replicas, isr = parts[i]
        assert replicas == [(i + j) % 3 for j in range(3)]
        assert leader == i % 3
        assert isr == [0, 1, 2]


def test_rf_larger_than_the_cluster_is_invalid_replication_factor(cluster_factory):
    cluster = cluster_factory(3)
    a = admin(cluster)
    fs = a.create_topics([NewTopic("too-many", 1, 4)])
    with pytest.raises(KafkaException) as e:
        fs["too-many"].result(30)
    assert e.value.args[0].code() == KafkaError.INVALID_REPLICATION_FACTOR


def test_acks_all_loses_nothing_when_each_leader_is_killed_in_turn(cluster_factory):
    cluster = cluster_factory(3)
    create_topic(cluster, "durable", 3, min_insync_replicas=2)
    acked = {p: [] for p in range(3)}
    errors = []
    stop = threading.Event()

    def produce():
        p = Producer(
            {
                "bootstrap.servers": cluster.bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "message.timeout.ms": 60000,
                "topic.metadata.refresh.interval.ms": 500,
            }
        )

        def on_delivery(err, msg):
            if err:
                errors.append(err)
            else:
                acked[msg.partition()].append(msg.value().decode())

        i = 0
        while not stop.is_set():
            p.produce("durable", value=str(i).encode(), partition=i % 3, on_delivery=on_delivery)
            p.poll(0)
            i += 1
            if i % 200 == 0:
                time.sleep(0.02)
        assert p.flush(60) == 0

    t = threading.Thread(target=produce)
    t.start()
    try:
        for partition in range(3):
            time.sleep(1.5)
            leader = partitions_of(cluster, "durable")[partition][0]
            before = sum(len(v) for v in acked.values())
            cluster.brokers[leader].kill9()
            # A new leader serves within a few seconds.
            wait_until(
                lambda: partitions_of(cluster, "durable")[partition][0] not in (-1, leader),
                timeout=15,
                what=f"a new leader of partition {partition}",
            )
            wait_until(
                lambda: sum(len(v) for v in acked.values()) > before + 100,
                timeout=20,
                what="produce to resume",
            )
            cluster.brokers[leader].start(60)
            wait_until(
                lambda: all(isr == [0, 1, 2] for _, _, isr in partitions_of(cluster, "durable").values()),
                timeout=30,
                what="the restarted broker to rejoin every ISR",
            )
    finally:
        stop.set()
        t.join(120)
    assert not errors, errors[:5]
    total = sum(len(v) for v in acked.values())
    got = consume_all(cluster.bootstrap, "durable", 3, total)
    for p in range(3):
        # Exactly once and in order: the log is the acknowledged sequence.
        assert got[p] == acked[p], f"partition {p}: {len(got[p])} read, {len(acked[p])} acknowledged"


def test_a_stopped_follower_leaves_the_isr_and_two_down_refuse_acks_all(cluster_factory):
    # Five brokers, so that the metadata quorum (every broker votes) survives two
    # of the partition's three replicas going down.
    cluster = cluster_factory(5)
    create_topic(cluster, "isr", 1, min_insync_replicas=2)
    leader, replicas, _ = partitions_of(cluster, "isr")[0]
    follower = next(r for r in replicas if r != leader)
    other = next(r for r in replicas if r not in (leader, follower))
    # The producer talks to the leader only: a client whose metadata request
    # lands on the paused broker waits out socket.timeout.ms, which is not the
    # behaviour under test.
    p = Producer({"bootstrap.servers": cluster.brokers[leader].bootstrap, "acks": "all", "message.timeout.ms": 10000})
    p.list_topics("isr", timeout=10)
    cluster.brokers[follower].pause()
    try:
        wait_until(
            lambda: partitions_of(cluster, "isr")[0][2] == sorted([leader, other]),
            timeout=20,
            what="the stopped follower to leave the ISR",
        )
        delivered = []
        p.produce("isr", b"while-paused", on_delivery=lambda e, m: delivered.append(e))
        p.flush(15)
        assert delivered == [None], "produce continues with two of three in the ISR"
        # Two of three down: below min.insync.replicas.
        cluster.brokers[other].kill9()
        wait_until(
            lambda: partitions_of(cluster, "isr")[0][2] == [leader],
            timeout=20,
            what="the ISR to shrink to the leader",
        )
        failed = []
        p.produce("isr", b"refused", on_delivery=lambda e, m: failed.append(e))
        p.flush(15)
        assert failed and failed[0] is not None
        assert failed[0].code() in (KafkaError.NOT_ENOUGH_REPLICAS, KafkaError._MSG_TIMED_OUT), failed[0]
    finally:
        cluster.brokers[follower].resume()
    cluster.brokers[other].start(60)
    wait_until(
        lambda: partitions_of(cluster, "isr")[0][2] == sorted(replicas),
        timeout=30,
        what="both brokers to rejoin the ISR",
    )
    got = consume_all(cluster.bootstrap, "isr", 1, 1)
    assert got[0] == ["while-paused"], "the refused record was never committed"


def active_controller(cluster):
    """The quorum's leader, from the live brokers' Raft vote files (clients are
    told a live broker instead, as in KRaft): the committed vote of the highest term."""
    votes = []
    for b in cluster.brokers:
        if not b.alive:
            continue
        try:
            with open(os.path.join(b.data_dir, "__cluster_metadata-0", "vote")) as f:
                v = json.load(f)
        except (OSError, ValueError):
            continue
        if v.get("committed"):
            votes.append((v["leader_id"]["term"], v["leader_id"]["node_id"]))
    return max(votes)[1] if votes else None


def test_killing_the_active_controller_stalls_produce_only_briefly(cluster_factory):
    cluster = cluster_factory(3)
    create_topic(cluster, "ctl", 3, min_insync_replicas=2)
    controller = wait_until(lambda: (c := active_controller(cluster)) is not None and (c,), what="an active controller")[0]
    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "enable.idempotence": True})
    p.list_topics("ctl", timeout=10)
    cluster.brokers[controller].kill9()
    t0 = time.monotonic()
    # A new controller is elected, and produce to every partition and an admin
    # request (forwarded to the new controller) still succeed.
    (new,) = wait_until(
        lambda: (c := active_controller(cluster)) not in (None, controller) and (c,),
        timeout=15,
        what="a new active controller",
    )
    delivered = []
    for i in range(30):
        p.produce("ctl", str(i).encode(), partition=i % 3, on_delivery=lambda e, m: delivered.append(e))
    assert p.flush(20) == 0
    assert delivered == [None] * 30
    create_topic(cluster, "after-failover", 1, rf=2)
    assert time.monotonic() - t0 < 20
    # Clients are told a live broker as "controller", never the dead one.
    a = admin(cluster)
    assert a.describe_cluster(request_timeout=10).result(10).controller.id != controller


def test_an_old_leader_truncates_its_divergent_tail_and_leads_again(cluster_factory):
    # min.insync.replicas=1 lets the old leader take acks=1 writes its followers never see.
    cluster = cluster_factory(3, leader_imbalance_check_interval_seconds=1)
    create_topic(cluster, "diverge", 1, min_insync_replicas=1)
    old_leader, replicas, _ = partitions_of(cluster, "diverge")[0]
    assert old_leader == replicas[0]
    followers = [r for r in replicas if r != old_leader]
    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "linger.ms": 0})
    for i in range(5):
        p.produce("diverge", f"committed-{i}".encode())
    assert p.flush(10) == 0
    # Followers stop fetching; the leader takes writes only it has, then dies.
    lone = Producer({"bootstrap.servers": cluster.brokers[old_leader].bootstrap, "acks": "1", "linger.ms": 0})
    lone.list_topics("diverge", timeout=5)
    for f in followers:
        cluster.brokers[f].pause()
    # Let fetches already parked on the leader (replica.fetch.wait.max.ms) answer empty first.
    time.sleep(0.5)
    for i in range(3):
        lone.produce("diverge", f"divergent-{i}".encode())
    lone.flush(5)
    cluster.brokers[old_leader].kill9()
    for f in followers:
        cluster.brokers[f].resume()
    wait_until(
        lambda: partitions_of(cluster, "diverge")[0][0] in followers,
        timeout=20,
        what="a follower to take over",
    )
    for i in range(5):
        p.produce("diverge", f"new-leader-{i}".encode())
    assert p.flush(20) == 0
    # The old leader comes back, truncates, catches up, and becomes leader again (preferred replica).
    cluster.brokers[old_leader].start(60)
    wait_until(
        lambda: partitions_of(cluster, "diverge")[0][0] == old_leader,
        timeout=30,
        what="the preferred leader to lead again",
    )
    got = consume_all(cluster.brokers[old_leader].bootstrap, "diverge", 1, 10, timeout=20)[0]
    assert got == [f"committed-{i}" for i in range(5)] + [f"new-leader-{i}" for i in range(5)]


def kafka_python_admin(cluster):
    from kafka import KafkaAdminClient

    return KafkaAdminClient(bootstrap_servers=cluster.bootstrap, request_timeout_ms=30000)


def set_throttle(cluster, rate):
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

    a = admin(cluster)
    # librdkafka takes one broker resource per call.
    for resource in [
        ConfigResource(
            ResourceType.BROKER,
            str(i),
            incremental_configs=[
                ConfigEntry(key, str(rate), incremental_operation=AlterConfigOpType.SET)
                for key in ("leader.replication.throttled.rate", "follower.replication.throttled.rate")
            ],
        )
        for i in range(len(cluster.brokers))
    ]:
        for f in a.incremental_alter_configs([resource]).values():
            f.result(30)


def replica_size(kp_admin, broker, topic, partition):
    """Bytes of the replica on `broker`, from DescribeLogDirs (0 if it has none yet)."""
    for d in kp_admin.describe_log_dirs(brokers=[broker])[0]["log_dirs"]:
        for t in d["topics"]:
            if t["name"] == topic:
                for p in t["partitions"]:
                    if p["partition_index"] == partition:
                        return p["partition_size"]
    return 0


def fill(cluster, topic, n, size=1024):
    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "linger.ms": 20})
    for i in range(n):
        p.produce(topic, value=(f"pre-{i}:".encode() + b"x" * size), partition=0)
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(60) == 0


def test_a_partition_moves_to_new_brokers_under_load_within_the_throttle(cluster_factory):
    from kafka.structs import TopicPartition as KTP

    cluster = cluster_factory(4)
    a = admin(cluster)
    a.create_topics([NewTopic("moving", num_partitions=1, replica_assignment=[[0, 1, 2]], config={"min.insync.replicas": "2"})])[
        "moving"
    ].result(30)
    fill(cluster, "moving", 4000)  # ~4 MB
    rate = 1_000_000
    set_throttle(cluster, rate)
    acked, errors, stop, stop_consumer = [], [], threading.Event(), threading.Event()
    consumed = set()

    def produce():
        p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "enable.idempotence": True})
        i = 0
        while not stop.is_set():
            p.produce(
                "moving",
                value=f"live-{i}".encode(),
                partition=0,
                on_delivery=lambda e, m: errors.append(e) if e else acked.append(m.value().decode()),
            )
            p.poll(0.01)
            i += 1
        assert p.flush(60) == 0

    def consume():
        c = Consumer(
            {
                "bootstrap.servers": cluster.bootstrap,
                "group.id": "movers",
                "auto.offset.reset": "earliest",
                "topic.metadata.refresh.interval.ms": 500,
            }
        )
        c.subscribe(["moving"])
        while not stop_consumer.is_set():
            m = c.poll(0.2)
            if m is not None and not m.error() and m.value().startswith(b"live-"):
                consumed.add(m.value().decode())
        c.close()

    threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
    for t in threads:
        t.start()
    kp = kafka_python_admin(cluster)
    try:
        time.sleep(1)
        leader_size = replica_size(kp, partitions_of(cluster, "moving")[0][0], "moving", 0)
        assert leader_size > 4_000_000
        t0 = time.monotonic()
        result = kp.alter_partition_reassignments({KTP("moving", 0): [1, 2, 3]})
        assert result == {KTP("moving", 0): None}
        ongoing = kp.list_partition_reassignments()
        assert ongoing[KTP("moving", 0)]["adding_replicas"] == [3]
        assert ongoing[KTP("moving", 0)]["removing_replicas"] == [0]
        # Progress: the new replica grows towards the leader's size.
        progress = []
        while kp.list_partition_reassignments():
            progress.append(replica_size(kp, 3, "moving", 0))
            assert time.monotonic() - t0 < 60, f"reassignment did not finish; copied {progress[-1]} bytes"
            time.sleep(0.2)
        elapsed = time.monotonic() - t0
        leader, replicas, isr = wait_until(
            lambda: (p := partitions_of(cluster, "moving")[0])[1] == [1, 2, 3] and p,
            timeout=10,
            what="Metadata to show the new replicas",
        )
        assert leader in (1, 2, 3) and set(isr) <= {1, 2, 3}
        # The throttle held: ~4 MB at 1 MB/s (plus one second of burst) takes about 3 s.
        assert elapsed >= (leader_size - rate) / rate * 0.8, f"moved {leader_size} bytes in {elapsed:.1f}s"
        assert any(0 < s < leader_size for s in progress), progress
        time.sleep(1)
    finally:
        stop.set()
        threads[0].join(90)
        # The group drains everything acknowledged, before, during and after the move.
        deadline = time.monotonic() + 30
        while not set(acked) <= consumed and time.monotonic() < deadline:
            time.sleep(0.2)
        stop_consumer.set()
        threads[1].join(30)
        kp.close()
    assert not errors, errors[:5]
    # Broker 0 no longer holds the partition.
    wait_until(
        lambda: not os.path.exists(os.path.join(cluster.brokers[0].data_dir, "moving-0")),
        timeout=20,
        what="broker 0 to delete its replica",
    )
    got = consume_all(cluster.bootstrap, "moving", 1, 4000 + len(acked))[0]
    live = [v for v in got if v.startswith("live-")]
    assert live == acked, "every acknowledged record, once, in order"
    assert set(acked) <= consumed, "the consumer group read every acknowledged record"


def test_cancelling_a_reassignment_restores_the_old_replicas(cluster_factory):
    from kafka.structs import TopicPartition as KTP

    cluster = cluster_factory(4)
    a = admin(cluster)
    a.create_topics([NewTopic("stay", num_partitions=1, replica_assignment=[[0, 1, 2]])])["stay"].result(30)
    fill(cluster, "stay", 2000)
    set_throttle(cluster, 100_000)  # slow enough that the move cannot finish
    kp = kafka_python_admin(cluster)
    try:
        assert kp.alter_partition_reassignments({KTP("stay", 0): [1, 2, 3]}) == {KTP("stay", 0): None}
        # Metadata is served from each broker's copy of the image, which trails the controller by a moment.
        wait_until(lambda: partitions_of(cluster, "stay")[0][1] == [1, 2, 3, 0], timeout=10, what="the adding replica in Metadata")
        wait_until(lambda: replica_size(kp, 3, "stay", 0) > 0, timeout=20, what="the new replica to start copying")
        assert kp.alter_partition_reassignments({KTP("stay", 0): None}) == {KTP("stay", 0): None}
        assert kp.list_partition_reassignments() == {}
        wait_until(
            lambda: partitions_of(cluster, "stay")[0] == (0, [0, 1, 2], [0, 1, 2]),
            timeout=10,
            what="Metadata to show the original replicas, leader and ISR",
        )
        # Cancelling again: nothing to cancel.
        from kafka.errors import NoReassignmentInProgressError

        assert kp.alter_partition_reassignments({KTP("stay", 0): None}) == {KTP("stay", 0): NoReassignmentInProgressError}
    finally:
        kp.close()
    wait_until(
        lambda: not os.path.exists(os.path.join(cluster.brokers[3].data_dir, "stay-0")),
        timeout=20,
        what="broker 3 to delete its partial replica",
    )
    assert len(consume_all(cluster.bootstrap, "stay", 1, 2000)[0]) == 2000


def test_an_isolated_leader_cannot_acknowledge_writes_the_new_leader_lacks(cluster_factory):
    cluster = cluster_factory(3, leader_imbalance_check_interval_seconds=1)
    create_topic(cluster, "isolated", 1, min_insync_replicas=2)
    old, replicas, _ = partitions_of(cluster, "isolated")[0]
    acked, failed = [], []
    # This producer knows only the old leader: its requests queue up there while it is stopped.
    p = Producer(
        {
            "bootstrap.servers": cluster.brokers[old].bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "message.timeout.ms": 30000,
        }
    )
    p.list_topics("isolated", timeout=5)
    cluster.brokers[old].pause()
    try:
        for i in range(20):
            p.produce(
                "isolated",
                f"r{i}".encode(),
                on_delivery=lambda e, m: failed.append(e) if e else acked.append(m.value().decode()),
            )
            p.poll(0)
        # The others fence it and elect a new leader while it is stopped.
        wait_until(
            lambda: partitions_of(cluster, "isolated")[0][0] not in (-1, old),
            timeout=20,
            what="a new leader while the old one is stopped",
        )
    finally:
        cluster.brokers[old].resume()
    # The old leader wakes up with the queued writes; it must not acknowledge them on its own.
    assert p.flush(40) == 0
    assert not failed, failed[:3]
    got = consume_all(cluster.bootstrap, "isolated", 1, len(acked), timeout=20)[0]
    assert got == acked, "every acknowledged record is on the new leader, once, in order"
    # Once the old leader is back in the ISR and leads again, its log agrees.
    wait_until(
        lambda: partitions_of(cluster, "isolated")[0][0] == old,
        timeout=40,
        what="the preferred replica to lead again",
    )
    again = consume_all(cluster.brokers[old].bootstrap, "isolated", 1, len(acked), timeout=20)[0]
    assert again == acked


def test_committed_offsets_survive_losing_the_coordinator(cluster_factory):
    cluster = cluster_factory(3)
    create_topic(cluster, "offs", 3)
    conf = {"bootstrap.servers": cluster.bootstrap, "group.id": "survivors", "enable.auto.commit": False}
    c = Consumer(conf)
    c.commit(offsets=[TopicPartition("offs", p, 10 * (p + 1)) for p in range(3)], asynchronous=False)
    c.close()
    a = admin(cluster)
    [f] = a.describe_consumer_groups(["survivors"]).values()
    coordinator = f.result(10).coordinator.id
    cluster.brokers[coordinator].kill9()

    def committed():
        c2 = Consumer({**conf, "bootstrap.servers": cluster.bootstrap})
        try:
            got = c2.committed([TopicPartition("offs", p) for p in range(3)], timeout=5)
            return [tp.offset for tp in got] == [10, 20, 30]
        finally:
            c2.close()

    # Only another broker can answer now: the coordinator moved with the partition's leadership.
    wait_until(committed, timeout=30, what="the new coordinator to serve the committed offsets")


def test_a_coordinator_commits_and_deletes_offsets_of_partitions_it_does_not_host(cluster_factory):
    # One replica per partition, one partition per broker: the group's
    # coordinator hosts one of the three, and must still take commits for the
    # other two (Kafka checks the cluster's metadata, not the local replicas).
    cluster = cluster_factory(3)
    create_topic(cluster, "spread", 3, rf=1)
    conf = {"bootstrap.servers": cluster.bootstrap, "group.id": "spread-group", "enable.auto.commit": False}
    c = Consumer(conf)
    try:
        done = c.commit(offsets=[TopicPartition("spread", p, 5 + p) for p in range(3)], asynchronous=False)
        assert [(tp.partition, tp.offset, tp.error) for tp in done] == [(p, 5 + p, None) for p in range(3)]
        got = c.committed([TopicPartition("spread", p) for p in range(3)], timeout=10)
        assert [tp.offset for tp in got] == [5, 6, 7]
        # A partition that does not exist is still refused.
        with pytest.raises(KafkaException) as e:
            c.commit(offsets=[TopicPartition("spread", 3, 1)], asynchronous=False)
        assert e.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART, e.value
    finally:
        c.close()
    a = admin(cluster)
    [coordinator] = [f.result(10).coordinator.id for f in a.describe_consumer_groups(["spread-group"]).values()]
    remote = next(p for p, (leader, _, _) in sorted(partitions_of(cluster, "spread").items()) if leader != coordinator)
    # OffsetDelete (kafka-python; confluent-kafka's Python client has no call for it).
    import kafka

    kadmin = kafka_python_admin(cluster)
    try:
        deleted = kadmin.delete_group_offsets("spread-group", [kafka.TopicPartition("spread", remote)])
    finally:
        kadmin.close()
    assert [e.__name__ for e in deleted.values()] == ["NoError"], deleted
    c = Consumer(conf)
    try:
        got = c.committed([TopicPartition("spread", p) for p in range(3)], timeout=10)
        assert [tp.offset for tp in got] == [-1001 if p == remote else 5 + p for p in range(3)]
    finally:
        c.close()


def test_a_waiting_consumer_gets_a_replicated_record_when_it_is_committed_not_when_its_wait_ends(cluster_factory):
    # With replicas, the leader's append comes before the high watermark moves:
    # a consumer's long-polling fetch woken by the append finds nothing it may
    # read yet, and must be woken again when the followers' fetches move the
    # high watermark (as Kafka completes delayed fetches), not sit out its wait.
    cluster = cluster_factory(3)
    create_topic(cluster, "waits", 1, min_insync_replicas=2)
    wait_ms = 20_000
    c = Consumer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "group.id": "waiter",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": wait_ms,
        }
    )
    c.assign([TopicPartition("waits", 0, 0)])
    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "linger.ms": 0})
    try:
        for i in range(3):
            # Let the consumer's fetch reach the leader and park there first.
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                assert c.poll(0.2) is None
            p.produce("waits", f"r{i}".encode())
            assert p.flush(30) == 0
            acked = time.monotonic()
            m = None
            while m is None and time.monotonic() - acked < wait_ms / 1000 + 10:
                m = c.poll(0.1)
            assert m is not None and not m.error() and m.value() == f"r{i}".encode(), m
            waited = time.monotonic() - acked
            assert waited < wait_ms / 2000, f"record {i} reached the consumer {waited:.1f} s after its acknowledgement"
    finally:
        c.close()


def test_deleted_records_stay_deleted_after_a_failover(cluster_factory):
    cluster = cluster_factory(3)
    create_topic(cluster, "trim", 1, min_insync_replicas=2)
    fill(cluster, "trim", 100, size=10)
    a = admin(cluster)
    (deleted,) = a.delete_records([TopicPartition("trim", 0, 60)]).values()
    # DeleteRecords answers once every in-sync replica has dropped the prefix.
    assert deleted.result(30).low_watermark == 60
    leader = partitions_of(cluster, "trim")[0][0]
    cluster.brokers[leader].kill9()
    wait_until(lambda: partitions_of(cluster, "trim")[0][0] not in (-1, leader), timeout=20, what="a new leader")
    got = consume_all(cluster.bootstrap, "trim", 1, 40)[0]
    assert [v.split(":")[0] for v in got] == [f"pre-{i}" for i in range(60, 100)], "the new leader starts at 60"


def test_sigterm_moves_leadership_away_before_the_broker_stops(cluster_factory):
    # A session timeout far longer than the test: only the controlled shutdown
    # can move leadership this soon.
    cluster = cluster_factory(3, broker_session_timeout_ms=60000, auto_leader_rebalance_enable="false")
    create_topic(cluster, "calm", 3, min_insync_replicas=2)
    assert partitions_of(cluster, "calm")[1][0] == 1
    cluster.brokers[1].stop()  # SIGTERM, then wait for the exit
    wait_until(
        lambda: all(leader not in (-1, 1) and 1 not in isr for leader, _, isr in partitions_of(cluster, "calm").values()),
        timeout=3,
        what="leaders and ISRs without the stopped broker",
    )
    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "message.timeout.ms": 10000})
    delivered = []
    for i in range(3):
        p.produce("calm", b"after", partition=i, on_delivery=lambda e, m: delivered.append(e))
    assert p.flush(15) == 0
    assert delivered == [None] * 3
    # Back again: it rejoins every ISR.
    cluster.brokers[1].start(60)
    wait_until(
        lambda: all(isr == [0, 1, 2] for _, _, isr in partitions_of(cluster, "calm").values()),
        timeout=30,
        what="the restarted broker to rejoin the ISRs",
    )


def test_sigterm_stops_a_broker_without_replicas_at_once(cluster_factory):
    cluster = cluster_factory(3)
    create_topic(cluster, "elsewhere", 1, rf=2)  # on two of the three brokers
    ((_, replicas, _),) = partitions_of(cluster, "elsewhere").values()
    # Placement follows the brokers live when the topic is made, so find the spare one.
    spare = next(i for i in range(3) if i not in replicas)
    b = cluster.brokers[spare]
    t0 = time.monotonic()
    b.stop()
    # Nothing to hand over: no controlled shutdown to wait for (a bound, not a benchmark).
    assert time.monotonic() - t0 < 3, b.log_tail()
    assert "clean shutdown complete" in b.log()


def test_elect_leaders_restores_the_preferred_leader(cluster_factory):
    from confluent_kafka import ElectionType

    cluster = cluster_factory(3, auto_leader_rebalance_enable="false")
    create_topic(cluster, "pref", 1, min_insync_replicas=2)
    assert partitions_of(cluster, "pref")[0][0] == 0
    a = admin(cluster)
    tp = TopicPartition("pref", 0)
    (err,) = a.elect_leaders(ElectionType.PREFERRED, [tp]).result(10).values()
    assert err is not None and err.code() == KafkaError.ELECTION_NOT_NEEDED
    cluster.brokers[0].kill9()
    wait_until(lambda: partitions_of(cluster, "pref")[0][0] in (1, 2), timeout=20, what="a new leader")
    cluster.brokers[0].start(60)
    wait_until(lambda: partitions_of(cluster, "pref")[0][2] == [0, 1, 2], timeout=30, what="broker 0 back in the ISR")
    assert partitions_of(cluster, "pref")[0][0] != 0, "no automatic rebalance"
    a = admin(cluster)
    (err,) = a.elect_leaders(ElectionType.PREFERRED, [tp]).result(10).values()
    assert err is None
    wait_until(lambda: partitions_of(cluster, "pref")[0][0] == 0, timeout=10, what="broker 0 to lead again")
    # An unclean election of a partition that has a leader has nothing to do.
    (err,) = a.elect_leaders(ElectionType.UNCLEAN, [tp]).result(10).values()
    assert err is not None and err.code() == KafkaError.ELECTION_NOT_NEEDED


def test_unclean_leader_election_only_where_enabled_or_asked(cluster_factory):
    from confluent_kafka import ElectionType

    cluster = cluster_factory(3, auto_leader_rebalance_enable="false")
    a = admin(cluster)
    fs = a.create_topics(
        [
            NewTopic("dirty", num_partitions=1, replica_assignment=[[0, 1]], config={"unclean.leader.election.enable": "true", "min.insync.replicas": "1"}),
            NewTopic("clean", num_partitions=1, replica_assignment=[[0, 1]], config={"min.insync.replicas": "1"}),
        ]
    )
    for f in fs.values():
        f.result(30)
    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "message.timeout.ms": 10000})
    for t in ("dirty", "clean"):
        p.produce(t, b"before")
    assert p.flush(15) == 0
    # Broker 1 dies: broker 0 alone is the ISR and takes writes broker 1 never sees.
    cluster.brokers[1].kill9()
    wait_until(lambda: partitions_of(cluster, "dirty")[0][2] == [0] and partitions_of(cluster, "clean")[0][2] == [0], what="ISR [0]")
    for t in ("dirty", "clean"):
        p.produce(t, b"only-on-0")
    assert p.flush(15) == 0
    # Broker 0 dies too, and broker 1, out of sync, comes back.
    cluster.brokers[0].kill9()
    cluster.brokers[1].start(60)
    # Leader, replicas and ISR from one answer (two calls may ask two brokers).
    wait_until(lambda: partitions_of(cluster, "dirty")[0] == (1, [0, 1], [1]), timeout=20,
               what="an unclean election of broker 1")
    assert partitions_of(cluster, "clean")[0][0] == -1, "no unclean election where it is not enabled"
    # An admin may still ask for one explicitly.
    a = admin(cluster)
    (err,) = a.elect_leaders(ElectionType.UNCLEAN, [TopicPartition("clean", 0)]).result(10).values()
    assert err is None
    wait_until(lambda: partitions_of(cluster, "clean")[0][0] == 1, timeout=10, what="broker 1 to lead 'clean'")
    p2 = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all", "message.timeout.ms": 10000})
    p2.produce("dirty", b"after")
    assert p2.flush(15) == 0
    # Broker 0 returns, truncates the tail the new leader never had, and rejoins the ISR.
    cluster.brokers[0].start(60)
    wait_until(lambda: partitions_of(cluster, "dirty")[0][2] == [0, 1], timeout=30, what="broker 0 back in the ISR")
    # The cost, as documented: what only broker 0 had is gone.
    got = consume_all(cluster.bootstrap, "dirty", 1, 2, timeout=20)[0]
    assert got == ["before", "after"]


def reassign_and_wait(cluster, topic, partition, replicas):
    """Moves one partition to `replicas` and waits until no reassignment is in progress."""
    from kafka.structs import TopicPartition as KTP

    kp = kafka_python_admin(cluster)
    try:
        kp.alter_partition_reassignments({KTP(topic, partition): replicas})
        wait_until(lambda: not kp.list_partition_reassignments(), timeout=30, what="the move to finish")
    finally:
        kp.close()


def test_replicas_of_new_topics_spread_over_the_brokers_racks(cluster_factory):
    # Four brokers in two racks (a, a, b, b: the classic rule alone would put
    # partition 0 on brokers 0 and 1, both in a): every partition of RF 2 gets one
    # replica in each rack, from CreateTopics and from CreatePartitions
    # (auto-creation places through the same function).
    racks = "aabb"
    cluster = cluster_factory(4, broker_rack=lambda i: racks[i])
    a = admin(cluster)  # kept alive until the future completes
    nodes = a.describe_cluster().result(10).nodes
    assert sorted((n.id, n.rack) for n in nodes) == [(i, racks[i]) for i in range(4)]
    create_topic(cluster, "racked", 8, rf=2)
    for p, (leader, replicas, _) in sorted(partitions_of(cluster, "racked").items()):
        assert sorted(racks[b] for b in replicas) == ["a", "b"], (p, replicas)
    # Leaders still spread evenly: two partitions each.
    leaders = [leader for leader, _, _ in partitions_of(cluster, "racked").values()]
    assert sorted(leaders.count(b) for b in range(4)) == [2, 2, 2, 2]
    # CreatePartitions places the new ones the same way.
    a.create_partitions([NewPartitions("racked", 12)])["racked"].result(30)
    parts = partitions_of(cluster, "racked")
    assert sorted(parts) == list(range(12))
    for p, (_, replicas, _) in parts.items():
        assert sorted(racks[b] for b in replicas) == ["a", "b"], (p, replicas)


def test_a_consumer_with_client_rack_fetches_from_the_replica_in_its_rack(cluster_factory):
    # KIP-392: with the RackAwareReplicaSelector, the leader answers a consumer
    # in another rack with the in-sync replica of that rack, and the consumer
    # reads every record from it; a consumer without client.rack reads the leader.
    cluster = cluster_factory(3, broker_rack=lambda i: f"zone-{i}",
                              replica_selector_class="org.apache.kafka.common.replica.RackAwareReplicaSelector")
    create_topic(cluster, "near", 1, rf=3)
    leader, replicas, _ = partitions_of(cluster, "near")[0]
    near = next(b for b in replicas if b != leader)
    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all"})
    for i in range(100):
        p.produce("near", value=f"r{i}")
    assert p.flush(30) == 0

    def consume(extra):
        stats = []
        c = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": f"g-{len(extra)}",
                      "auto.offset.reset": "earliest", "statistics.interval.ms": 200,
                      "stats_cb": lambda s: stats.append(json.loads(s)), **extra})
        c.assign([TopicPartition("near", 0, 0)])
        got, deadline = [], time.time() + 30
        while len(got) < 100 and time.time() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append(m.value().decode())
        c.poll(0.5)  # one more statistics callback after the last record
        c.close()
        assert got == [f"r{i}" for i in range(100)]
        # The broker librdkafka fetched partition 0 from, at the last report.
        return stats[-1]["topics"]["near"]["partitions"]["0"]["broker"]

    assert consume({"client.rack": f"zone-{near}"}) == near
    assert consume({}) == leader
    assert consume({"client.rack": f"zone-{leader}"}) == leader


def test_a_broker_far_behind_catches_up_from_a_metadata_snapshot(cluster_factory):
    # A snapshot every 20 metadata entries, and only 20 kept after it: a broker
    # that misses a hundred entries must be sent the snapshot. The one stopped is
    # the active controller, the hardest case: it comes back believing it leads,
    # with a log tail the new leader replaces by the snapshot.
    cluster = cluster_factory(3, metadata_log_max_entries_between_snapshots=20)
    away = wait_until(lambda: (c := active_controller(cluster)) is not None and (c,), what="an active controller")[0]
    others = [b for b in range(3) if b != away]
    cluster.brokers[away].kill9()
    a = admin(cluster)
    names = [f"snap-{i}" for i in range(100)]
    for f in a.create_topics([NewTopic(n, 1, 2) for n in names], operation_timeout=30).values():
        f.result(60)
    snapshot = os.path.join(cluster.brokers[others[0]].data_dir, "__cluster_metadata-0", "snapshot")
    assert os.path.exists(snapshot), "the active quorum took a snapshot"
    cluster.brokers[away].start(60)
    wait_until(lambda: away in admin(cluster).list_topics(timeout=10).brokers, timeout=30, what="the broker to register")
    # The broker knows topics created while it was away: it can take a replica of one.
    reassign_and_wait(cluster, "snap-0", 0, others + [away])
    wait_until(
        lambda: sorted(partitions_of(cluster, "snap-0")[0][2]) == [0, 1, 2], timeout=10, what="the broker in the ISR"
    )
    assert os.path.isdir(os.path.join(cluster.brokers[away].data_dir, "snap-0-0"))


def test_new_partitions_follow_the_classic_rule(cluster_factory):
    from confluent_kafka.admin import NewPartitions

    cluster = cluster_factory(3)
    create_topic(cluster, "growing", 2)
    before = partitions_of(cluster, "growing")
    a = admin(cluster)
    a.create_partitions([NewPartitions("growing", 7)])["growing"].result(30)
    parts = wait_until(lambda: len(p := partitions_of(cluster, "growing")) == 7 and p, what="seven partitions")
    for i in range(7):
        assert parts[i][1] == [(i + j) % 3 for j in range(3)]
    assert {i: parts[i] for i in range(2)} == before, "existing partitions did not move"


def test_a_broker_outside_the_voters_joins_as_a_learner_and_takes_replicas(cluster_factory):
    cluster = cluster_factory(4, voters=3)
    md = admin(cluster).list_topics(timeout=10)
    assert sorted(md.brokers) == [0, 1, 2, 3], "the learner registered through the quorum"
    create_topic(cluster, "learn", 4)
    parts = partitions_of(cluster, "learn")
    assert parts[3][1] == [3, 0, 1], "placement counts the learner like any live broker"
    reassign_and_wait(cluster, "learn", 0, [3, 1, 2])
    wait_until(lambda: partitions_of(cluster, "learn")[0][1] == [3, 1, 2], timeout=10, what="Metadata to show the move")
