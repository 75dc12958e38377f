"""Transactions' cost, measured on one fresh broker in one run (`make bench-txn`,
part of `make bench`): 1 KiB records from a transactional producer at 100 and
at 1,000 records per transaction, as a ratio to an idempotent producer's
throughput; commit latency p50/p99; and read_committed consumption of the
transactional topic as a ratio to read_uncommitted. confluent-kafka drives
librdkafka; every figure is a ratio within the run, because this machine is
noisy. Results go to stdout and bench-results/txn.json."""

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "broker" / "tests" / "clients"))

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from conftest import BrokerProcess  # noqa: E402

RECORDS = int(os.environ.get("BENCH_TXN_RECORDS", "200000"))
SIZE = 1024
PARTITIONS = 4
PRODUCER = {"linger.ms": 5, "batch.size": 1000000, "compression.type": "none", "acks": "all"}


def create(bootstrap, name):
    a = AdminClient({"bootstrap.servers": bootstrap})
    a.create_topics([NewTopic(name, PARTITIONS, 1)])[name].result(30)


def produce(bootstrap, topic, per_txn):
    """(MB/s, commit latencies in ms) for RECORDS records, `per_txn` to a
    transaction (None: an idempotent producer)."""
    conf = {"bootstrap.servers": bootstrap, **PRODUCER}
    if per_txn:
        conf["transactional.id"] = f"bench-{topic}"
    else:
        conf["enable.idempotence"] = True
    p = Producer(conf)
    value = b"x" * SIZE
    commits = []
    if per_txn:
        p.init_transactions(30)
    start = time.perf_counter()
    for i in range(0, RECORDS, per_txn or RECORDS):
        if per_txn:
            p.begin_transaction()
        for _ in range(per_txn or RECORDS):
            while True:
                try:
                    p.produce(topic, value)
                    break
                except BufferError:
                    p.poll(0.005)
        if per_txn:
            t = time.perf_counter()
            p.commit_transaction(60)
            commits.append((time.perf_counter() - t) * 1000)
    assert p.flush(60) == 0
    took = time.perf_counter() - start
    return RECORDS * SIZE / took / 1e6, commits


def consume(bootstrap, topic, isolation):
    """MB/s reading the whole topic with one consumer."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{isolation}-{time.time()}",
            "isolation.level": isolation,
            "enable.partition.eof": True,
            "fetch.queue.backoff.ms": 1,
            "queued.max.messages.kbytes": 1048576,
        }
    )
    c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    n, eof, start = 0, set(), time.perf_counter()
    while len(eof) < PARTITIONS:
        for m in c.consume(10000, 1.0):
            if m.error():
                eof.add(m.partition())
            else:
                n += 1
    took = time.perf_counter() - start
    c.close()
    assert n == RECORDS, (topic, isolation, n)
    return n * SIZE / took / 1e6


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def main():
    with tempfile.TemporaryDirectory(prefix="skein-bench-txn-") as root:
        data = os.path.join(root, "data")
        os.makedirs(data)
        b = BrokerProcess(data, {}).start()
        try:
            for t in ("idem", "txn100", "txn1000"):
                create(b.bootstrap, t)
            idem, _ = produce(b.bootstrap, "idem", None)
            t100, c100 = produce(b.bootstrap, "txn100", 100)
            t1000, c1000 = produce(b.bootstrap, "txn1000", 1000)
            uncommitted = consume(b.bootstrap, "txn1000", "read_uncommitted")
            committed = consume(b.bootstrap, "txn1000", "read_committed")
        finally:
            b.stop()
    result = {
        "records": RECORDS,
        "record_bytes": SIZE,
        "idempotent_mb_s": round(idem, 1),
        "txn_100_mb_s": round(t100, 1),
        "txn_100_ratio": round(t100 / idem, 2),
        "txn_100_commit_ms_p50": round(statistics.median(c100), 2),
        "txn_100_commit_ms_p99": round(pct(c100, 0.99), 2),
        "txn_1000_mb_s": round(t1000, 1),
        "txn_1000_ratio": round(t1000 / idem, 2),
        "txn_1000_commit_ms_p50": round(statistics.median(c1000), 2),
        "txn_1000_commit_ms_p99": round(pct(c1000, 0.99), 2),
        "read_uncommitted_mb_s": round(uncommitted, 1),
        "read_committed_mb_s": round(committed, 1),
        "read_committed_ratio": round(committed / uncommitted, 2),
    }
    for k, v in result.items():
        print(f"{k:28} {v}")
    out = ROOT / "bench-results" / "txn.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
