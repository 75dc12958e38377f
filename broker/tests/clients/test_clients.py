"""Real Kafka clients produce and consume through a real broker process.

Each client writes at least 10,000 records with keys, headers and timestamps,
under each compression codec it supports, and reads every one back in order.
"""

import asyncio
import json
import os
import subprocess
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

N = 10_000
CODECS = ["gzip", "snappy", "lz4", "zstd"]
BASE_TS = 1_700_000_000_000


def create_topic(bootstrap, name, partitions=1, config=None):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fs = admin.create_topics([NewTopic(name, partitions, 1, config=config or {})])
    fs[name].result(30)


def consume_all(bootstrap, topic, expected, partitions=1, timeout=60, **extra):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False, **extra})
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out = []
    import time

    deadline = time.monotonic() + timeout
    while len(out) < expected and time.monotonic() < deadline:
        for m in c.consume(1000, 1.0):
            assert m.error() is None, m.error()
            out.append(m)
    c.close()
    return out


@pytest.mark.parametrize("codec", CODECS)
def test_confluent_kafka_round_trips_10k_records(broker, codec):
    topic = f"confluent-{codec}"
    create_topic(broker.bootstrap, topic)
    p = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": codec, "enable.idempotence": True, "linger.ms": 5})
    for i in range(N):
        p.produce(topic, key=f"key-{i}", value=f"value-{i}" * 3, headers=[("seq", str(i).encode())], timestamp=BASE_TS + i)
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(30) == 0
    msgs = consume_all(broker.bootstrap, topic, N)
    assert len(msgs) == N
    for i, m in enumerate(msgs):
        assert m.offset() == i
        assert m.key() == f"key-{i}".encode()
        assert m.value() == (f"value-{i}" * 3).encode()
        assert m.headers() == [("seq", str(i).encode())]
        assert m.timestamp() == (1, BASE_TS + i)  # (TIMESTAMP_CREATE_TIME, ts)


@pytest.mark.parametrize("codec", CODECS)
def test_kafka_python_idempotent_producer_round_trips_10k_records(broker, codec):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition as KTP

    topic = f"kafka-python-{codec}"
    create_topic(broker.bootstrap, topic)
    # kafka-python 3 enables idempotence by default.
    p = KafkaProducer(bootstrap_servers=broker.bootstrap, compression_type=codec, linger_ms=5)
    assert p.config.get("enable_idempotence", True)
    futures = [
        p.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), headers=[("h", b"%d" % i)], timestamp_ms=BASE_TS + i)
        for i in range(N)
    ]
    p.flush(60)
    offsets = [f.get(30).offset for f in futures]
    assert offsets == list(range(N))
    p.close()
    c = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False, consumer_timeout_ms=5000)
    tp = KTP(topic, 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    got = [m for m in c][:N]
    c.close()
    assert [(m.offset, m.key, m.value, m.timestamp) for m in got] == [
        (i, f"k{i}".encode(), f"v{i}".encode(), BASE_TS + i) for i in range(N)
    ]
    assert got[7].headers == [("h", b"7")]


@pytest.mark.parametrize("codec", CODECS)
def test_aiokafka_round_trips_10k_records(broker, codec):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.structs import TopicPartition as ATP

    topic = f"aiokafka-{codec}"
    create_topic(broker.bootstrap, topic)

    async def run():
        p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, compression_type=codec, enable_idempotence=True, linger_ms=5)
        await p.start()
        try:
            batch_futs = [
                await p.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), headers=[("h", b"x")], timestamp_ms=BASE_TS + i)
                for i in range(N)
            ]
            metas = await asyncio.gather(*batch_futs)
        finally:
            await p.stop()
        assert [m.offset for m in metas] == list(range(N))
        c = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
        await c.start()
        try:
            tp = ATP(topic, 0)
            c.assign([tp])
            await c.seek_to_beginning(tp)
            got = []
            while len(got) < N:
                batch = await c.getmany(tp, timeout_ms=2000)
                assert batch, "no data within 2s"
                got.extend(batch[tp])
        finally:
            await c.stop()
        assert [(m.offset, m.key, m.timestamp) for m in got] == [(i, f"k{i}".encode(), BASE_TS + i) for i in range(N)]

    asyncio.run(run())


@pytest.mark.parametrize("codec", CODECS)
def test_kcat_round_trips_10k_records(broker, codec, tmp_path):
    topic = f"kcat-{codec}"
    create_topic(broker.bootstrap, topic)
    lines = "".join(f"key{i}\tvalue{i}\n" for i in range(N))
    subprocess.run(
        ["kcat", "-b", broker.bootstrap, "-t", topic, "-P", "-z", codec, "-K", "\t", "-H", "source=kcat", "-X", "linger.ms=5"],
        input=lines.encode(), check=True, timeout=60,
    )
    out = subprocess.run(
        ["kcat", "-b", broker.bootstrap, "-t", topic, "-C", "-e", "-o", "beginning", "-f", "%o %k %s %h\n"],
        capture_output=True, check=True, timeout=60,
    ).stdout.decode().splitlines()
    assert out == [f"{i} key{i} value{i} source=kcat" for i in range(N)]


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy"])
def test_kafkajs_round_trips_10k_records(broker, codec):
    # kafkajs ships gzip; snappy comes from kafkajs-snappy. Its lz4 and zstd codecs
    # are native addons that need a compiler download, so they are not tested here.
    topic = f"kafkajs-{codec}"
    create_topic(broker.bootstrap, topic)
    script = Path(__file__).parent / "node" / "roundtrip.js"
    r = subprocess.run(
        ["node", str(script), broker.bootstrap, topic, codec, str(N)],
        capture_output=True, timeout=120, cwd=script.parent,
    )
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    result = json.loads(r.stdout.decode().strip().splitlines()[-1])
    assert result == {"produced": N, "consumed": N, "inOrder": True}


def test_offsets_for_times_uses_record_timestamps(broker):
    topic = "by-time"
    create_topic(broker.bootstrap, topic)
    p = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": "lz4", "linger.ms": 20})
    for i in range(3000):
        p.produce(topic, value=b"x", timestamp=BASE_TS + 10 * i)
    p.flush(30)
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "t"})
    for ts, want in [(BASE_TS, 0), (BASE_TS + 5, 1), (BASE_TS + 12_340, 1234), (BASE_TS + 29_990, 2999), (BASE_TS + 29_991, -1)]:
        [tp] = c.offsets_for_times([TopicPartition(topic, 0, ts)], 10)
        assert tp.offset == want, (ts, tp.offset)
    lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), 10)
    assert (lo, hi) == (0, 3000)
    c.close()


def test_log_append_time_topic_stamps_broker_time(broker):
    topic = "append-time"
    create_topic(broker.bootstrap, topic, config={"message.timestamp.type": "LogAppendTime"})
    p = Producer({"bootstrap.servers": broker.bootstrap})
    p.produce(topic, value=b"x", timestamp=1000)
    p.flush(10)
    [m] = consume_all(broker.bootstrap, topic, 1)
    kind, ts = m.timestamp()
    assert kind == 2 and ts > BASE_TS  # TIMESTAMP_LOG_APPEND_TIME, the broker's clock


def test_auto_created_topic_uses_num_partitions(broker_factory):
    b = broker_factory(**{"num.partitions": 3})
    p = Producer({"bootstrap.servers": b.bootstrap})
    for i in range(30):
        p.produce("auto-topic", key=str(i), value=b"v")
    assert p.flush(30) == 0
    md = AdminClient({"bootstrap.servers": b.bootstrap}).list_topics("auto-topic", timeout=10)
    assert len(md.topics["auto-topic"].partitions) == 3
    assert os.path.isdir(os.path.join(b.data_dir, "auto-topic-2"))
