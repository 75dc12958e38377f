"""A history checker for exactly-once under faults.

Three brokers (RF=3, min.insync.replicas=2). Workers run consume-transform-
produce with confluent-kafka: each reads its partition of `in` (read_committed),
writes one output record per input record to `out` (spread over its
partitions, so every transaction spans several leaders) and commits the input
offsets in the same transaction. Meanwhile a nemesis kills brokers with
SIGKILL and pauses them with SIGSTOP, the transaction coordinators' included.
Every transaction attempt is recorded with its outcome (committed, aborted,
unknown). The checks, once faults stop:

- every input record's output is read by read_committed exactly once (no
  committed record lost, none duplicated);
- no record of a transaction recorded as aborted is ever read;
- no transaction is read partially (each output record carries its
  transaction's tag and size);
- two independent consumers read every partition identically, offset by offset;
- every partition's last stable offset catches up with its high watermark.

`make test` runs a bounded history (TXN_CHECK_RECORDS, TXN_CHECK_FAULT_SECONDS
scale it; `make chaos` runs a longer one). The numbers are printed.
"""

import collections
import os
import random
import threading
import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from test_cluster import wait_until

RECORDS = int(os.environ.get("TXN_CHECK_RECORDS", "900"))
FAULT_SECONDS = float(os.environ.get("TXN_CHECK_FAULT_SECONDS", "18"))
PARTITIONS = 3
BATCH = 25
# The nemesis' choices; printed, so a failing history can be replayed.
SEED = int(os.environ.get("TXN_CHECK_SEED", random.randrange(1 << 30)))


def create(bootstrap, name):
    a = AdminClient({"bootstrap.servers": bootstrap})
    a.create_topics([NewTopic(name, PARTITIONS, 3, config={"min.insync.replicas": "2"})])[name].result(30)
    wait_until(lambda: name in a.list_topics(timeout=10).topics, what=f"{name} listed")


class Worker(threading.Thread):
    """Consume-transform-produce over input partition `partition`."""

    def __init__(self, bootstrap, partition, end, history):
        super().__init__(daemon=True)
        self.bootstrap, self.partition, self.end, self.history = bootstrap, partition, end, history
        self.tid = f"ctp-{partition}"
        self.group = f"ctp-group-{partition}"
        self.done = False
        self.error = None
        self.last_error = None
        self.deadline = time.time() + float(os.environ.get("TXN_CHECK_WORKER_SECONDS", "240"))

    def producer(self):
        """A transactional producer, initialised (which fences its predecessor)."""
        while True:
            p = Producer(
                {
                    "bootstrap.servers": self.bootstrap,
                    "transactional.id": self.tid,
                    "transaction.timeout.ms": 15000,
                    "message.timeout.ms": 14000,
                    "socket.timeout.ms": 5000,
                    "retry.backoff.ms": 50,
                }
            )
            try:
                p.init_transactions(20)
                return p
            except KafkaException as e:
                self.last_error = e.args[0]
                self.check_deadline("initialising a producer")
                time.sleep(0.5)

    def check_deadline(self, what):
        assert time.time() < self.deadline, (
            f"worker {self.partition} stuck {what} (seed {SEED}); last outcomes "
            f"{[h[2] for h in self.history if h[4] == self.partition][-5:]}, last error {self.last_error!r}"
        )

    def rewind(self, consumer, tp):
        """Back to the offset last committed (a transaction that did not commit is redone)."""
        while True:
            self.check_deadline("reading the committed offset")
            try:
                committed = consumer.committed([TopicPartition("in", self.partition)], timeout=10)[0].offset
                break
            except KafkaException as e:
                self.last_error = e.args[0]
                time.sleep(0.3)
        start = committed if committed >= 0 else 0
        consumer.seek(TopicPartition("in", self.partition, start))
        return start

    def run(self):
        try:
            self._run()
        except Exception as e:  # reported by the test
            self.error = e

    def _run(self):
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": self.group,
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
            }
        )
        tp = TopicPartition("in", self.partition, 0)
        consumer.assign([tp])
        position = self.rewind(consumer, tp)
        producer = self.producer()
        while position < self.end:
            self.check_deadline(f"at {position}")
            msgs = consumer.consume(BATCH, 1.0)
            msgs = [m for m in msgs if m.error() is None]
            if not msgs:
                continue
            tag = uuid.uuid4().hex[:12]
            values = [m.value().decode().replace("i-", "o-") for m in msgs]
            next_offset = msgs[-1].offset() + 1
            outcome = "unknown"
            try:
                producer.begin_transaction()
                for v in values:
                    k = int(v[2:])
                    # Spread over every output partition: each transaction spans several leaders.
                    producer.produce("out", value=f"{v}|{tag}|{len(values)}", partition=(k // PARTITIONS) % PARTITIONS)
                producer.send_offsets_to_transaction(
                    [TopicPartition("in", self.partition, next_offset)], consumer.consumer_group_metadata(), 30
                )
                self.commit(producer)
                outcome = "committed"
                position = next_offset
            except KafkaException as e:
                err = e.args[0]
                self.last_error = err
                if err.fatal():
                    # Fenced or broken: a new producer's InitProducerId aborts
                    # whatever this one left open.
                    outcome = "unknown"
                    producer = self.producer()
                else:
                    try:
                        producer.abort_transaction(30)
                        outcome = "aborted"
                    except KafkaException:
                        outcome = "unknown"
                        producer = self.producer()
                position = self.rewind(consumer, tp)
            self.history.append((tag, len(values), outcome, values, self.partition))
        consumer.close()
        self.done = True

    def commit(self, producer):
        """commit_transaction, retried while librdkafka says the outcome is still pending."""
        while True:
            try:
                producer.commit_transaction(30)
                return
            except KafkaException as e:
                self.last_error = e.args[0]
                if e.args[0].retriable() and not e.args[0].txn_requires_abort():
                    self.check_deadline("committing")
                    continue
                raise


def read_all(bootstrap, topic, isolation="read_committed"):
    """partition -> [(offset, value)] of everything in `topic`."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"checker-{uuid.uuid4()}",
            "isolation.level": isolation,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
    )
    c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    out, eof = collections.defaultdict(list), set()
    deadline = time.time() + 120
    while len(eof) < PARTITIONS and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                eof.add(m.partition())
                continue
            raise KafkaException(m.error())
        eof.discard(m.partition())
        out[m.partition()].append((m.offset(), m.value().decode()))
    c.close()
    assert len(eof) == PARTITIONS, f"{topic}: not every partition read to its end"
    return dict(out)


class Nemesis(threading.Thread):
    """Kills (SIGKILL, then restart) or pauses (SIGSTOP, SIGCONT) one broker at a time."""

    def __init__(self, cluster, seconds):
        super().__init__(daemon=True)
        self.cluster, self.seconds = cluster, seconds
        self.faults = collections.Counter()
        self.stop = threading.Event()

    def run(self):
        rnd = random.Random(SEED)
        end = time.time() + self.seconds
        while time.time() < end and not self.stop.is_set():
            time.sleep(rnd.uniform(1.5, 3.0))
            b = rnd.choice(self.cluster.brokers)
            if rnd.random() < 0.5:
                b.kill9()
                self.faults["kill -9"] += 1
                time.sleep(rnd.uniform(0.5, 2.0))
                b.start(60)
            else:
                b.pause()
                self.faults["SIGSTOP"] += 1
                time.sleep(rnd.uniform(0.5, 2.5))
                b.resume()
            # Let the cluster settle a little: one fault at a time.
            time.sleep(1.0)


def test_consume_transform_produce_is_exactly_once_under_kills_and_pauses(cluster_factory):
    cluster = cluster_factory(3, **{"transaction.abort.timed.out.transaction.cleanup.interval.ms": "1000"})
    create(cluster.bootstrap, "in")
    create(cluster.bootstrap, "out")
    ends = {p: len(range(p, RECORDS, PARTITIONS)) for p in range(PARTITIONS)}

    def feed():
        # The input arrives over the faults' window, so transactions run throughout it.
        plain = Producer({"bootstrap.servers": cluster.bootstrap, "enable.idempotence": True, "linger.ms": 5})
        pace = FAULT_SECONDS * 0.8 / RECORDS
        for k in range(RECORDS):
            plain.produce("in", value=f"i-{k}", partition=k % PARTITIONS)
            plain.poll(0)
            time.sleep(pace)
        assert plain.flush(120) == 0

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()

    history = []
    workers = [Worker(cluster.bootstrap, p, ends[p], history) for p in range(PARTITIONS)]
    nemesis = Nemesis(cluster, FAULT_SECONDS)
    started = time.time()
    for w in workers:
        w.start()
    nemesis.start()
    nemesis.join()
    feeder.join(180)
    for b in cluster.brokers:
        if not b.alive:
            b.start(60)
    for w in workers:
        w.join(600)
        assert w.error is None, f"worker {w.partition}: {w.error!r}"
        assert w.done, f"worker {w.partition} did not finish"
    took = time.time() - started

    outcomes = collections.Counter(h[2] for h in history)
    bootstrap = ",".join(b.bootstrap for b in cluster.brokers)
    first = read_all(bootstrap, "out")
    second = read_all(bootstrap, "out")
    # Every partition read identically by two consumers.
    assert first == second
    values = [v for part in first.values() for _, v in part]
    by_tag = collections.defaultdict(list)
    for v in values:
        record, tag, size = v.split("|")
        by_tag[tag].append((record, int(size)))
    # No partial transaction.
    partial = {t: (len(rs), rs[0][1]) for t, rs in by_tag.items() if len(rs) != rs[0][1]}
    assert not partial, f"transactions read partially: {partial}"
    # No aborted transaction read.
    aborted = {h[0] for h in history if h[2] == "aborted"}
    assert not aborted & set(by_tag), f"aborted transactions read: {aborted & set(by_tag)}"
    committed = {h[0] for h in history if h[2] == "committed"}
    assert committed <= set(by_tag), f"committed transactions lost: {committed - set(by_tag)}"
    # Exactly once: every input's output once.
    counts = collections.Counter(v.split("|")[0] for v in values)
    missing = [k for k in range(RECORDS) if counts[f"o-{k}"] == 0]
    duplicated = {r: n for r, n in counts.items() if n > 1}
    assert not missing and not duplicated, f"missing {missing[:10]} ({len(missing)}), duplicated {list(duplicated.items())[:10]}"
    # Every last stable offset caught up with its high watermark.
    for topic in ("in", "out"):
        rc = Consumer({"bootstrap.servers": bootstrap, "group.id": "lso", "isolation.level": "read_committed"})
        ru = Consumer({"bootstrap.servers": bootstrap, "group.id": "hw", "isolation.level": "read_uncommitted"})
        try:
            for p in range(PARTITIONS):
                tp = TopicPartition(topic, p)
                wait_until(
                    lambda: rc.get_watermark_offsets(tp, timeout=10)[1] == ru.get_watermark_offsets(tp, timeout=10)[1],
                    timeout=60,
                    what=f"{topic}-{p}'s last stable offset at its high watermark",
                )
        finally:
            rc.close()
            ru.close()
    print(
        f"txn history: {len(history)} transactions ({dict(outcomes)}), {RECORDS} inputs, "
        f"{len(values)} outputs read, faults {dict(nemesis.faults)} (seed {SEED}), {took:.1f} s"
    )
