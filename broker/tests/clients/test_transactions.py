"""Transactions (KIP-98) with real clients against real broker processes:
commit and abort seen by read_committed and read_uncommitted consumers, the
last stable offset holding consumers back, fencing of a zombie producer,
offsets committed in a transaction, the broker aborting a transaction past its
timeout, markers to partitions led by other brokers, and recovery after kill -9."""

import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from test_cluster import wait_until


def create(bootstrap, name, partitions=1, rf=1, **configs):
    a = AdminClient({"bootstrap.servers": bootstrap})
    fs = a.create_topics(
        [NewTopic(name, partitions, rf, config={k.replace("_", "."): str(v) for k, v in configs.items()})]
    )
    fs[name].result(timeout=30)
    wait_until(lambda: name in a.list_topics(timeout=10).topics, what=f"{name} listed")


def txn_producer(bootstrap, tid, **extra):
    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": tid,
            "transaction.timeout.ms": 60000,
            **extra,
        }
    )
    p.init_transactions(30)
    return p


def consume_all(bootstrap, topic, isolation, expect=None, partitions=1, timeout=30, group=None):
    """Every value in `topic` a consumer with `isolation` reads (until `expect`
    values arrive, or the partitions' ends are reached)."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group or f"g-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": isolation,
            "enable.partition.eof": True,
        }
    )
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    values, eofs = [], set()
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == -191:  # _PARTITION_EOF
                    eofs.add(m.partition())
                    if expect is None and len(eofs) == partitions:
                        break
                    continue
                raise KafkaException(m.error())
            values.append(m.value().decode())
            if expect is not None and len(values) >= expect:
                break
    finally:
        c.close()
    return values


def test_committed_records_are_read_and_aborted_ones_only_by_read_uncommitted(broker):
    create(broker.bootstrap, "tx-basic", partitions=2)
    p = txn_producer(broker.bootstrap, "tx-basic-app")
    for round_, commit in enumerate([True, False, True, False, True]):
        p.begin_transaction()
        for i in range(10):
            p.produce("tx-basic", value=f"r{round_}-{i}", partition=i % 2)
        if commit:
            p.commit_transaction(30)
        else:
            p.flush(10)  # an abort drops what was not sent yet
            p.abort_transaction(30)
    committed = consume_all(broker.bootstrap, "tx-basic", "read_committed", partitions=2)
    assert sorted(committed) == sorted(f"r{r}-{i}" for r in (0, 2, 4) for i in range(10))
    everything = consume_all(broker.bootstrap, "tx-basic", "read_uncommitted", partitions=2)
    assert len(everything) == 50


def test_an_open_transaction_holds_read_committed_consumers_at_the_last_stable_offset(broker):
    create(broker.bootstrap, "tx-lso")
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    plain.produce("tx-lso", value="before")
    plain.flush(10)
    p = txn_producer(broker.bootstrap, "tx-lso-app")
    p.begin_transaction()
    p.produce("tx-lso", value="in-txn")
    p.flush(10)
    # Non-transactional data after the open transaction waits behind it too.
    plain.produce("tx-lso", value="after")
    plain.flush(10)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "lso", "isolation.level": "read_committed"})
    try:
        lo, hi = c.get_watermark_offsets(TopicPartition("tx-lso", 0), timeout=10)
        assert hi == 1, "the last stable offset is the open transaction's first offset"
    finally:
        c.close()
    assert consume_all(broker.bootstrap, "tx-lso", "read_committed", timeout=5) == ["before"]
    status, metrics = broker.http("/metrics")
    assert status == 200
    assert 'kafka_cluster_partition_laststableoffsetlag{topic="tx-lso",partition="0"} 2' in metrics, [
        line for line in metrics.splitlines() if "laststableoffsetlag" in line
    ]
    assert "kafka_coordinator_transaction_transactionstatemanager_numopentransactions 1" in metrics
    assert consume_all(broker.bootstrap, "tx-lso", "read_uncommitted", timeout=10) == ["before", "in-txn", "after"]
    p.commit_transaction(30)
    assert consume_all(broker.bootstrap, "tx-lso", "read_committed", expect=3) == ["before", "in-txn", "after"]


def test_a_second_producer_with_the_same_id_fences_the_first_and_aborts_its_transaction(broker):
    create(broker.bootstrap, "tx-fence")
    zombie = txn_producer(broker.bootstrap, "tx-fence-app")
    zombie.begin_transaction()
    zombie.produce("tx-fence", value="zombie")
    zombie.flush(10)
    successor = txn_producer(broker.bootstrap, "tx-fence-app")
    successor.begin_transaction()
    successor.produce("tx-fence", value="successor")
    successor.commit_transaction(30)
    with pytest.raises(KafkaException) as e:
        zombie.commit_transaction(30)
    assert e.value.args[0].fatal() or "fenced" in str(e.value).lower()
    assert consume_all(broker.bootstrap, "tx-fence", "read_committed") == ["successor"]


def test_offsets_sent_to_a_transaction_move_on_commit_and_not_on_abort(broker):
    create(broker.bootstrap, "tx-offsets")
    group = "tx-offsets-group"
    p = txn_producer(broker.bootstrap, "tx-offsets-app")
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        tp = TopicPartition("tx-offsets", 0)
        p.begin_transaction()
        p.produce("tx-offsets", value="x")
        p.send_offsets_to_transaction([TopicPartition("tx-offsets", 0, 7)], c.consumer_group_metadata(), 30)
        p.commit_transaction(30)
        wait_until(lambda: c.committed([tp], timeout=10)[0].offset == 7, what="offset 7 committed")
        p.begin_transaction()
        p.send_offsets_to_transaction([TopicPartition("tx-offsets", 0, 9)], c.consumer_group_metadata(), 30)
        p.abort_transaction(30)
        time.sleep(1)
        assert c.committed([tp], timeout=10)[0].offset == 7
    finally:
        c.close()


def test_the_broker_aborts_a_transaction_left_open_past_its_timeout(broker_factory):
    b = broker_factory(**{"transaction.abort.timed.out.transaction.cleanup.interval.ms": "200"})
    create(b.bootstrap, "tx-timeout")
    p = txn_producer(b.bootstrap, "tx-timeout-app", **{"transaction.timeout.ms": 2000})
    p.begin_transaction()
    p.produce("tx-timeout", value="abandoned")
    p.flush(10)
    plain = Producer({"bootstrap.servers": b.bootstrap})
    plain.produce("tx-timeout", value="later")
    plain.flush(10)
    # The broker's abort marker frees the stable offset: "later" becomes readable.
    assert consume_all(b.bootstrap, "tx-timeout", "read_committed", expect=1, timeout=30) == ["later"]


def test_committed_and_aborted_transactions_survive_kill_9(broker):
    create(broker.bootstrap, "tx-crash")
    p = txn_producer(broker.bootstrap, "tx-crash-app")
    for commit in (True, False, True):
        p.begin_transaction()
        for i in range(5):
            p.produce("tx-crash", value=f"{'c' if commit else 'a'}{i}")
        p.flush(10)  # an abort drops what was not sent yet
        p.commit_transaction(30) if commit else p.abort_transaction(30)
    del p
    broker.kill9()
    broker.start()
    values = consume_all(broker.bootstrap, "tx-crash", "read_committed")
    assert values == [f"c{i}" for i in range(5)] * 2
    # The coordinator's state came back too: the id starts a new epoch and commits.
    p = txn_producer(broker.bootstrap, "tx-crash-app")
    p.begin_transaction()
    p.produce("tx-crash", value="after-restart")
    p.commit_transaction(30)
    assert consume_all(broker.bootstrap, "tx-crash", "read_committed")[-1] == "after-restart"


def test_markers_reach_partitions_led_by_other_brokers(cluster_factory):
    cluster = cluster_factory(3)
    create(cluster.bootstrap, "tx-spread", partitions=6, rf=3, min_insync_replicas=2)
    p = txn_producer(cluster.bootstrap, "tx-spread-app")
    for commit in (True, False, True):
        p.begin_transaction()
        for i in range(60):
            p.produce("tx-spread", value=f"{commit}-{i}", partition=i % 6)
        p.flush(30)
        p.commit_transaction(60) if commit else p.abort_transaction(60)
    values = consume_all(cluster.bootstrap, "tx-spread", "read_committed", partitions=6, timeout=60)
    assert sorted(values) == sorted([f"True-{i}" for i in range(60)] * 2)


def java_hash_partition(s, partitions=50):
    """Kafka's `abs(s.hashCode()) % partitions`: the __transaction_state partition of an id."""
    h = 0
    for ch in s.encode("utf-16-be").decode("utf-16-be"):
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    h = h - (1 << 32) if h >= 1 << 31 else h
    return 0 if h == -(1 << 31) else abs(h) % partitions


def test_a_new_coordinator_finishes_a_commit_its_predecessor_prepared(cluster_factory):
    """The coordinator dies between PrepareCommit and CompleteCommit, while the
    only leader that needs a marker is paused: the broker that leads the
    transaction's __transaction_state partition next writes the markers and
    completes the commit, and read_committed consumers see all of it."""
    from test_skeinctl import ctl

    # Four brokers, three of them voters, so that the metadata quorum keeps
    # its majority with the coordinator dead and one broker paused.
    cluster = cluster_factory(4, voters=3, transaction_abort_timed_out_transaction_cleanup_interval_ms="500")
    tid = "tx-failover-app"
    p = txn_producer(cluster.bootstrap, tid)
    coordinator = ctl(cluster.bootstrap, "txn", "describe", tid)[1]["coordinator"]
    # The partition that needs the marker lives on one broker alone, which is
    # paused: not a voter unless the coordinator is the one learner.
    paused = 3 if coordinator != 3 else 0
    meta = AdminClient({"bootstrap.servers": cluster.bootstrap}).list_topics(timeout=10)
    state_replicas = meta.topics["__transaction_state"].partitions[java_hash_partition(tid)].replicas
    survivor = next(r for r in state_replicas if r not in (coordinator, paused))
    a = AdminClient({"bootstrap.servers": cluster.bootstrap})
    a.create_topics([NewTopic("tx-failover", num_partitions=1, replica_assignment=[[paused]])])["tx-failover"].result(30)
    wait_until(lambda: "tx-failover" in a.list_topics(timeout=10).topics, what="topic listed")

    p.begin_transaction()
    values = [f"v{i}" for i in range(20)]
    for v in values:
        p.produce("tx-failover", value=v)
    p.flush(30)
    cluster.brokers[paused].pause()
    try:
        p.commit_transaction(60)  # answered once PrepareCommit is durable
        described = ctl(cluster.brokers[coordinator].bootstrap, "txn", "describe", tid)[1]
        assert described["state"] == "PrepareCommit", described
        cluster.brokers[coordinator].kill9()
        # The next leader of the partition loads it and takes the commit over.
        survivor_bootstrap = cluster.brokers[survivor].bootstrap
        wait_until(
            lambda: ctl(survivor_bootstrap, "txn", "describe", tid, check=False)[1] or {},
            what="the transaction described by a new coordinator",
        )
        taken = ctl(survivor_bootstrap, "txn", "describe", tid)[1]
        assert taken["coordinator"] != coordinator and taken["state"] == "PrepareCommit", taken
        # Its marker waits for a partition without a leader (the paused broker is fenced).
        gauge = "kafka_coordinator_transaction_transactionmarkerchannelmanager_unknowndestinationqueuesize 1"
        wait_until(
            lambda: gauge in cluster.brokers[taken["coordinator"]].http("/metrics")[1].splitlines(),
            what="the marker counted as waiting for a leader",
        )
    finally:
        cluster.brokers[paused].resume()
    wait_until(
        lambda: ctl(survivor_bootstrap, "txn", "describe", tid)[1]["state"] == "CompleteCommit",
        timeout=60,
        what="the commit completed by the new coordinator",
    )
    live = ",".join(cluster.brokers[i].bootstrap for i in range(4) if i != coordinator)
    assert consume_all(live, "tx-failover", "read_committed", expect=len(values), timeout=60) == values


def test_skeinctl_lists_describes_finds_and_aborts_a_hanging_transaction(broker):
    from test_skeinctl import ctl

    create(broker.bootstrap, "tx-ctl")
    p = txn_producer(broker.bootstrap, "tx-ctl-app")
    p.begin_transaction()
    p.produce("tx-ctl", value="hanging")
    p.flush(10)
    listed = ctl(broker.bootstrap, "txn", "list")[1]
    assert [(t["transactional_id"], t["state"]) for t in listed] == [("tx-ctl-app", "Ongoing")]
    desc = ctl(broker.bootstrap, "txn", "describe", "tx-ctl-app")[1]
    assert desc["state"] == "Ongoing" and desc["partitions"] == ["tx-ctl-0"]
    hanging = ctl(broker.bootstrap, "txn", "find-hanging", "--topic", "tx-ctl", "--partition", "0", "--max-age-ms", "0")[1]
    assert len(hanging) == 1 and hanging[0]["current_txn_start_offset"] == 0
    assert consume_all(broker.bootstrap, "tx-ctl", "read_committed", timeout=3) == []
    ctl(
        broker.bootstrap, "txn", "abort", "--topic", "tx-ctl", "--partition", "0",
        "--producer-id", str(hanging[0]["producer_id"]), "--producer-epoch", str(hanging[0]["producer_epoch"]),
    )
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    plain.produce("tx-ctl", value="after")
    plain.flush(10)
    assert consume_all(broker.bootstrap, "tx-ctl", "read_committed", expect=1) == ["after"]
    # Nothing is open on the partition any more.
    left = ctl(broker.bootstrap, "txn", "find-hanging", "--topic", "tx-ctl", "--partition", "0", "--max-age-ms", "0")[1]
    assert left == []


EXPECTED = [f"a{i}" for i in range(10)] + [f"c{i}" for i in range(10)]


def test_kafkajs_transactions_commit_abort_and_send_offsets(broker):
    import json
    import subprocess
    from pathlib import Path

    create(broker.bootstrap, "tx-kafkajs")
    script = Path(__file__).parent / "node" / "txn.js"
    p = subprocess.run(
        ["node", str(script), broker.bootstrap, "tx-kafkajs", "tx-kafkajs-group"],
        capture_output=True, text=True, timeout=180, cwd=script.parent,
    )
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["values"] == EXPECTED
    assert out["committed"] == "5"
    assert consume_all(broker.bootstrap, "tx-kafkajs", "read_committed") == EXPECTED


def test_kafka_python_transactions_commit_and_abort(broker):
    from kafka import KafkaConsumer, KafkaProducer

    create(broker.bootstrap, "tx-kpy")
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id="tx-kpy-app")
    p.init_transactions()
    for prefix, commit in (("a", True), ("b", False), ("c", True)):
        p.begin_transaction()
        for i in range(10):
            p.send("tx-kpy", value=f"{prefix}{i}".encode())
        p.flush()
        p.commit_transaction() if commit else p.abort_transaction()
    p.close()
    c = KafkaConsumer(
        "tx-kpy",
        bootstrap_servers=broker.bootstrap,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    values = [m.value.decode() for m in c]
    c.close()
    assert values == EXPECTED
    assert consume_all(broker.bootstrap, "tx-kpy", "read_committed") == EXPECTED


def test_aiokafka_transactions_commit_and_abort(broker):
    import asyncio

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    create(broker.bootstrap, "tx-aio")

    async def run():
        p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id="tx-aio-app")
        await p.start()
        try:
            for prefix, commit in (("a", True), ("b", False), ("c", True)):
                await p.begin_transaction()
                for i in range(10):
                    await p.send("tx-aio", value=f"{prefix}{i}".encode())
                await p.flush()
                await (p.commit_transaction() if commit else p.abort_transaction())
        finally:
            await p.stop()
        c = AIOKafkaConsumer(
            "tx-aio",
            bootstrap_servers=broker.bootstrap,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
        )
        await c.start()
        values = []
        try:
            deadline = time.time() + 30
            while len(values) < 20 and time.time() < deadline:
                batch = await c.getmany(timeout_ms=500)
                for msgs in batch.values():
                    values.extend(m.value.decode() for m in msgs)
        finally:
            await c.stop()
        return values

    assert asyncio.run(run()) == EXPECTED
