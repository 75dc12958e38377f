"""Acknowledged records survive kill -9; restarts recover the log; retention deletes segments."""

import glob
import os
import re
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def create_topic(bootstrap, name, partitions=1, config=None):
    a = AdminClient({"bootstrap.servers": bootstrap})
    a.create_topics([NewTopic(name, partitions, 1, config=config or {})])[name].result(30)


def read_everything(bootstrap, topic, partitions):
    """Every record of every partition: {(partition, offset): value}."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader", "enable.auto.commit": False})
    ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), 10)[1] for p in range(partitions)}
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got = {}
    deadline = time.monotonic() + 60
    while sum(1 for _ in got) < sum(ends.values()) and time.monotonic() < deadline:
        for m in c.consume(1000, 1.0):
            assert m.error() is None, m.error()
            got[(m.partition(), m.offset())] = m.value()
    c.close()
    return got, ends


def produce_until_killed(broker, topic, acked, stop):
    p = Producer({
        "bootstrap.servers": broker.bootstrap, "acks": "all", "enable.idempotence": True,
        "linger.ms": 2, "message.timeout.ms": 5000, "retries": 1000,
    })

    def on_delivery(err, msg):
        if err is None:
            acked[(msg.partition(), msg.offset())] = msg.value()

    i = 0
    while not stop.is_set():
        try:
            p.produce(topic, key=str(i), value=b"record-%d" % i, on_delivery=on_delivery)
            i += 1
        except BufferError:
            p.poll(0.01)
        if i % 100 == 0:
            p.poll(0)
    p.flush(8)


def test_kill9_during_produce_loses_no_acknowledged_record(broker):
    topic = "durable"
    create_topic(broker.bootstrap, topic, partitions=3)
    acked, stop = {}, threading.Event()
    t = threading.Thread(target=produce_until_killed, args=(broker, topic, acked, stop))
    t.start()
    while len(acked) < 20_000:
        time.sleep(0.05)
    broker.kill9()
    stop.set()
    t.join(30)
    acked_at_kill = dict(acked)
    broker.start()
    assert "clean_shutdown=false" in broker.log()
    got, _ = read_everything(broker.bootstrap, topic, 3)
    missing = [k for k, v in acked_at_kill.items() if got.get(k) != v]
    assert not missing, f"{len(missing)} acknowledged records lost or changed, e.g. {missing[:5]}"


def test_flush_every_message_group_commits_concurrent_producers(broker_factory):
    b = broker_factory(**{"log.flush.interval.messages": "1"})
    topic = "fsync"
    create_topic(b.bootstrap, topic)
    acked = {}
    lock = threading.Lock()

    def producer(n):
        p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 0})

        def cb(err, msg):
            assert err is None, err
            with lock:
                acked[(msg.partition(), msg.offset())] = msg.value()

        for i in range(500):
            p.produce(topic, value=b"p%d-%d" % (n, i), on_delivery=cb)
            p.poll(0)
        p.flush(30)

    threads = [threading.Thread(target=producer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(acked) == 2000
    b.kill9()
    b.start()
    got, ends = read_everything(b.bootstrap, topic, 1)
    assert ends == {0: 2000}
    assert all(got[k] == v for k, v in acked.items())


def test_torn_tail_after_a_crash_is_truncated(broker):
    topic = "torn"
    create_topic(broker.bootstrap, topic)
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    for i in range(1000):
        p.produce(topic, value=b"v%d" % i)
    p.flush(10)
    broker.kill9()
    [seg] = glob.glob(os.path.join(broker.data_dir, "torn-0", "*.log"))
    with open(seg, "ab") as f:
        f.write(b"\x00\x00\x00\x00\x00\x00\x03\xe8\x00\x00\x01\x00garbage from a half-written batch")
    broker.start()
    assert re.search(r"truncated_bytes=[1-9]", broker.log())
    got, ends = read_everything(broker.bootstrap, topic, 1)
    assert ends == {0: 1000} and len(got) == 1000
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all"})
    offsets = []
    p.produce(topic, value=b"after", on_delivery=lambda e, m: offsets.append(m.offset()))
    p.flush(10)
    assert offsets == [1000]


def test_clean_restart_skips_recovery(broker_factory):
    b = broker_factory(**{"log.segment.bytes": str(1 << 20)})
    topic = "big"
    create_topic(b.bootstrap, topic)
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5, "batch.size": 65536})
    for i in range(50_000):
        try:
            p.produce(topic, value=b"x" * 200)
        except BufferError:
            p.poll(0.1)
            p.produce(topic, value=b"x" * 200)
    p.flush(30)
    b.stop()
    b.start()
    last = b.log().strip().splitlines()
    loaded = [line for line in last if "loaded" in line][-1]
    assert "clean_shutdown=true" in loaded and "recovered_segments=0" in loaded, loaded
    assert int(re.search(r"segments=(\d+)", loaded).group(1)) > 5
    _, ends = read_everything(b.bootstrap, topic, 1)
    assert ends == {0: 50_000}


def test_retention_deletes_old_segments_and_moves_log_start(broker_factory):
    b = broker_factory(**{"log.retention.check.interval.ms": "200"})
    topic = "short-lived"
    create_topic(b.bootstrap, topic, config={"retention.ms": "1000", "segment.bytes": "4096"})
    p = Producer({"bootstrap.servers": b.bootstrap})
    for i in range(200):
        p.produce(topic, value=b"y" * 100, timestamp=int(time.time() * 1000) - 60_000)
    p.flush(10)
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "r"})
    deadline = time.monotonic() + 20
    lo, hi = 0, 0
    while time.monotonic() < deadline:
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), 10)
        if lo == hi == 200:
            break
        time.sleep(0.2)
    c.close()
    assert (lo, hi) == (200, 200)
    assert len(glob.glob(os.path.join(b.data_dir, f"{topic}-0", "*.log"))) == 1


def test_more_partitions_than_open_files_are_written_read_and_recovered(broker_factory):
    """Under an open files limit of 320 (160 segment files kept open), 400 partitions
    take records, serve them back, and keep them across a clean restart and kill -9:
    idle segment files are closed and reopened on use."""
    limit = 320
    b = broker_factory(prefix=["prlimit", f"--nofile={limit}:{limit}", "--"])
    create_topic(b.bootstrap, "many", partitions=400)
    want = {}

    def produce_round(r):
        p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "linger.ms": 5})

        def on_delivery(err, msg):
            assert err is None, err
            want[(msg.partition(), msg.offset())] = msg.value()

        for part in range(400):
            p.produce("many", value=b"round-%d-partition-%d" % (r, part), partition=part, on_delivery=on_delivery)
        assert p.flush(60) == 0

    def open_files():
        return len(os.listdir(f"/proc/{b.proc.pid}/fd"))

    produce_round(0)
    produce_round(1)
    assert len(want) == 800
    assert open_files() < limit
    for restart in ("read", "clean restart", "kill -9"):
        if restart == "clean restart":
            b.stop()
            b.start()
        elif restart == "kill -9":
            b.kill9()
            b.start()
        got, _ = read_everything(b.bootstrap, "many", 400)
        assert got == want, f"after {restart}: {len(got)} of {len(want)} records"
        assert open_files() < limit, f"after {restart}"
    produce_round(2)
    got, _ = read_everything(b.bootstrap, "many", 400)
    assert got == want and len(want) == 1200
    assert "Too many open files" not in b.log()
