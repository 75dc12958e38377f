"""Log compaction with real clients: latest value per key survives at its offset."""

import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic


def read_all(bootstrap, topic):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader", "enable.auto.commit": False})
    lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), 10)
    c.assign([TopicPartition(topic, 0, lo)])
    out = []
    deadline = time.monotonic() + 30
    while (not out or out[-1][0] < hi - 1) and time.monotonic() < deadline:
        for m in c.consume(1000, 0.5):
            assert m.error() is None, m.error()
            out.append((m.offset(), m.key(), m.value()))
    c.close()
    return out


def test_compacted_topic_keeps_the_latest_value_per_key(broker_factory):
    b = broker_factory(**{"log.cleaner.backoff.ms": "200"})
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    config = {"cleanup.policy": "compact", "segment.bytes": "4096", "min.cleanable.dirty.ratio": "0.01"}
    a.create_topics([NewTopic("table", 1, 1, config=config)])["table"].result(30)
    latest = {}
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 0})
    for rnd in range(20):
        for k in range(50):
            key, value = b"k%d" % k, b"v%d-%d" % (k, rnd)

            def cb(err, msg, key=key, value=value):
                assert err is None
                latest[key] = (msg.offset(), value)

            p.produce("table", key=key, value=value, on_delivery=cb)
        p.flush(10)
    deadline = time.monotonic() + 30
    records = read_all(b.bootstrap, "table")
    while len(records) > 400 and time.monotonic() < deadline:
        time.sleep(0.3)
        records = read_all(b.bootstrap, "table")
    assert len(records) <= 400, f"no compaction: {len(records)} records"
    # Every key's latest value is there, at the offset it was written to.
    by_offset = {o: (k, v) for o, k, v in records}
    for key, (offset, value) in latest.items():
        assert by_offset.get(offset) == (key, value)
    # Offsets only grow, and a key never shows an older value after its latest.
    offsets = [o for o, _, _ in records]
    assert offsets == sorted(offsets)
    assert "compacted" in b.log()


def test_consumer_offsets_are_compacted_and_still_load(broker_factory):
    b = broker_factory(**{"log.cleaner.backoff.ms": "200", "offsets.topic.num.partitions": "1"})
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.create_topics([NewTopic("src", 1, 1)])["src"].result(30)
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "many-commits", "enable.auto.commit": False})
    for i in range(1, 3001):
        c.commit(offsets=[TopicPartition("src", 0, i)], asynchronous=False)
    c.close()
    # Small segments from now on, so that commits roll segments the cleaner can work on.
    res = ConfigResource(
        "TOPIC", "__consumer_offsets",
        set_config={"cleanup.policy": "compact", "segment.bytes": "16384", "min.cleanable.dirty.ratio": "0.01"},
    )
    a.alter_configs([res])[res].result(10)
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "many-commits", "enable.auto.commit": False})
    for i in range(3001, 3101):
        c.commit(offsets=[TopicPartition("src", 0, i)], asynchronous=False)
    c.close()
    deadline = time.monotonic() + 20
    while "topic=__consumer_offsets" not in "".join(l for l in b.log().splitlines() if "compacted" in l) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert any("compacted" in l and "__consumer_offsets" in l for l in b.log().splitlines())
    b.stop()
    b.start()
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "many-commits"})
    [tp] = c.committed([TopicPartition("src", 0)], timeout=10)
    assert tp.offset == 3100
    c.close()
