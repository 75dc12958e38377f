"""Scaling a KafkaCluster on the real API server (see conftest.py): 3 to 5
brokers under a steady producer and a consumer group, with the replication
throttle measured on the brokers; a scale-down below the largest replication
factor refused; 5 to 3 drained before the StatefulSet shrinks (seen from a
watch on the StatefulSet), the leaving brokers unregistered and their volumes
released, with the operator SIGKILLed and restarted at every phase and step
of progress it reaches."""

import collections
import json
import logging
import os
import queue
import re
import signal
import subprocess
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from kube import ApiError
from test_operator import cluster, placement_ok, topic

NAME = "grow"
THROTTLE = 1 << 20  # bytes per second per broker
BULK_BYTES = 12 << 20
BATCH_BYTES = 64 << 10


def skeinctl():
    target = os.environ.get("CARGO_TARGET_DIR", str(Path(__file__).resolve().parents[2] / "target"))
    return os.environ.get("SKEINCTL_BIN") or os.path.join(target, "release", "skeinctl")


def describe_cluster(kc):
    """skeinctl's view: every registered broker, fenced ones included, and the active controller."""
    return json.loads(subprocess.run(
        [skeinctl(), "--bootstrap-server", bootstrap(kc), "-o", "json", "cluster", "describe"],
        check=True, capture_output=True, text=True).stdout)


def scale_spec(k8s, ns, replicas):
    k8s.kube.merge(f"/apis/skein.dev/v1alpha1/namespaces/{ns}/kafkaclusters/{NAME}/scale",
                   {"spec": {"replicas": replicas}})


def scaling(k8s, ns):
    return (k8s.get("kafkaclusters", ns, NAME) or {}).get("status", {}).get("scaling") or {}


def bootstrap(kc):
    return kc["status"]["bootstrapServers"]


def describe(kc):
    return AdminClient({"bootstrap.servers": bootstrap(kc)}).list_topics(timeout=15)


class Load:
    """A steady acks=all idempotent producer and a consumer group on one topic."""

    def __init__(self, kc, topic_name, logs=None):
        self.topic, self.bs = topic_name, bootstrap(kc)
        self.prefix = uuid.uuid4().hex[:8]  # the topic holds earlier tests' records too
        self.acked, self.errors, self.received = [], [], []
        # For a failure's diagnosis: the group's last record per partition, the
        # consumer's own debug log, and the brokers' logs (`logs()`: {name: text}).
        self.last_received, self.client_log, self.logs = {}, collections.deque(maxlen=20000), logs
        self.stop, self.produced = threading.Event(), threading.Event()
        self.longest_gap = 0.0
        self.threads = [threading.Thread(target=self._produce, daemon=True),
                        threading.Thread(target=self._consume, daemon=True)]
        for t in self.threads:
            t.start()

    def _produce(self):
        p = Producer({"bootstrap.servers": self.bs, "acks": "all", "enable.idempotence": True,
                      "message.timeout.ms": 120000, "linger.ms": 5})
        last_ack = [time.time()]

        def delivered(err, msg):
            if err:
                self.errors.append(str(err))
            else:
                now = time.time()
                self.longest_gap = max(self.longest_gap, now - last_ack[0])
                last_ack[0] = now
                self.acked.append(msg.value().decode())
        i = 0
        while not self.stop.is_set():
            p.produce(self.topic, key=str(i), value=f"{self.prefix}-{i}", on_delivery=delivered)
            i += 1
            p.poll(0.02)
        left = p.flush(120)
        if left:
            self.errors.append(f"{left} records neither acknowledged nor failed after 120 s")
        self.produced.set()

    def _consume(self):
        log = logging.getLogger(f"load-consumer-{self.prefix}")
        log.propagate, log.level = False, logging.DEBUG
        log.addHandler(DequeHandler(self.client_log))
        c = Consumer({"bootstrap.servers": self.bs, "group.id": f"load-{uuid.uuid4().hex[:6]}",
                      "auto.offset.reset": "earliest", "enable.auto.commit": True,
                      "session.timeout.ms": 10000, "debug": "cgrp,topic,fetch,metadata"}, logger=log)
        c.subscribe([self.topic])
        quiet_since = None
        while True:
            m = c.poll(0.5)
            if m is not None and not m.error():
                self.last_received[m.partition()] = m.offset()
                if m.value().decode().startswith(self.prefix):
                    self.received.append(m.value().decode())
                quiet_since = None
            elif self.produced.is_set():
                # Every acknowledgement is in: read until the group has them all.
                quiet_since = quiet_since or time.time()
                if set(self.acked) <= set(self.received) or time.time() - quiet_since > 90:
                    break
        c.close()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=180)
        assert self.errors == [], self.errors[:3]
        assert len(self.acked) > 100, "the producer made no progress"
        missing = set(self.acked) - set(self.received)
        # Every acknowledged record is in the log exactly once.
        c = Consumer({"bootstrap.servers": self.bs, "group.id": f"audit-{uuid.uuid4().hex[:6]}",
                      "auto.offset.reset": "earliest", "enable.auto.commit": False})
        c.subscribe([self.topic])
        seen, where, deadline, quiet = [], {}, time.time() + 120, 0
        while time.time() < deadline and (len(seen) < len(self.acked) or quiet < 3):
            m = c.poll(1.0)
            if m is None:
                quiet += 1
            elif not m.error():
                quiet = 0
                if m.value().decode().startswith(self.prefix):
                    seen.append(m.value().decode())
                    where[m.value().decode()] = (m.partition(), m.offset())
        c.close()
        dupes = len(seen) - len(set(seen))
        lost = set(self.acked) - set(seen)
        assert not lost, f"{len(lost)} acknowledged records are not in the log: {sorted(lost)[:5]}"
        assert dupes == 0, f"{dupes} records in the log twice"
        assert not missing, (f"{len(missing)} acknowledged records (in the log) never reached the group: "
                             f"{sorted(missing)[:5]}\n{self.diagnosis(missing, where)}")
        return len(self.acked)

    def diagnosis(self, missing, where):
        """Where the missing records are, how far the group got on their partitions,
        and what the consumer and the brokers logged about those partitions."""
        first = {}
        for v in missing:
            part, off = where[v]
            first[part] = min(first.get(part, off), off)
        lines = [f"missing per partition (first offset): {dict(sorted(first.items()))}; "
                 f"the group's last offset per partition: {dict(sorted(self.last_received.items()))}"]
        group = [line for line in self.client_log if "assign" in line.lower() or "rebalance" in line.lower()]
        lines += [f"--- the group consumer's assignments and rebalances: {len(group)} lines, the last 60:",
                  *group[-60:]]
        for part in sorted(first):
            tag = f"{self.topic} [{part}]"
            about = [line for line in self.client_log if tag in line]
            lines += [f"--- the group consumer on {tag}: {len(about)} lines, the last 60:", *about[-60:]]
            for name, text in (self.logs() if self.logs else {}).items():
                hits = [line for line in text.splitlines()
                        if f"{self.topic}-{part}" in line or (self.topic in line and f"partition={part}" in line)]
                lines += [f"--- {name}: {len(hits)} lines on {tag}, the last 40:", *hits[-40:]]
        return "\n".join(lines)


class DequeHandler(logging.Handler):
    def __init__(self, lines):
        super().__init__()
        self.lines = lines

    def emit(self, record):
        self.lines.append(f"{record.created:.3f} {record.getMessage()}")


def fill(kc, topic_name, total):
    # Batches of at most BATCH_BYTES: a throttled fetch may overdraw its share by one whole batch.
    p = Producer({"bootstrap.servers": bootstrap(kc), "acks": "all", "linger.ms": 20,
                  "batch.size": BATCH_BYTES, "compression.type": "none"})
    value = b"x" * 10000
    for i in range(total // len(value)):
        p.produce(topic_name, key=str(i), value=value)
        p.poll(0)
    assert p.flush(120) == 0


def quorum_leader(k8s, ns):
    """The metadata quorum's leader, from broker 0's /v1/status."""
    host = f"{NAME}-0.{NAME}-brokers.{ns}.svc.cluster.local"
    with urllib.request.urlopen(f"http://{host}:9644/v1/status", timeout=5) as r:
        return json.loads(r.read())["quorum"]["leader"]


def broker_counter(k8s, ns, ordinal, name):
    host = f"{NAME}-{ordinal}.{NAME}-brokers.{ns}.svc.cluster.local"
    try:
        with urllib.request.urlopen(f"http://{host}:9644/metrics", timeout=3) as r:
            text = r.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            return float(line.split()[-1])
    return 0.0


class Sampler:
    """Samples, every half second, status.scaling and each broker's bytes fetched for reassignments."""

    def __init__(self, k8s, ns, brokers):
        self.k8s, self.ns, self.brokers = k8s, ns, brokers
        self.scaling, self.bytes_in = [], {b: [] for b in brokers}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            try:
                self.scaling.append(scaling(self.k8s, self.ns))
            except Exception:  # the API server is fine; one failed poll is not a result
                pass
            for b in self.brokers:
                # The counter was read somewhere between `before` and `after`.
                before = time.time()
                v = broker_counter(self.k8s, self.ns, b, "kafka_server_brokertopicmetrics_reassignmentbytesin")
                if v is not None:
                    self.bytes_in[b].append((before, time.time(), v))
            self.stop.wait(0.5)

    def finish(self):
        self.stop.set()
        self.thread.join(timeout=10)

    def fastest(self, b, window=4.0):
        """The highest rate over any window of at least `window` seconds, bytes per second (for the log)."""
        s, best = self.bytes_in[b], 0.0
        for i, (t0, _, v0) in enumerate(s):
            for t1, _, v1 in s[i + 1:]:
                if t1 - t0 >= window:
                    best = max(best, (v1 - v0) / (t1 - t0))
                    break
        return best

    def assert_within_throttle(self, b, rate, overdraft):
        """What a token bucket of one second at `rate` allows between any two samples:
        rate x (the longest the interval can have been + 1 s held in the bucket) + one
        overdraft (each fetch may return one whole batch past its share)."""
        s = self.bytes_in[b]
        for i, (before0, _, v0) in enumerate(s):
            for _, after1, v1 in s[i + 1:]:
                allowed = rate * (after1 - before0 + 1.0) + overdraft
                assert v1 - v0 <= allowed, \
                    f"broker {b} fetched {v1 - v0:.0f} B in at most {after1 - before0:.2f} s; the throttle allows {allowed:.0f}"

    def assert_progress_only_forward(self):
        last = {}
        for st in self.scaling:
            if not st or st.get("planId") != (last.get("planId") or st.get("planId")):
                last = st or {}
                continue
            for k in ("partitionsDone", "bytesDone"):
                assert st.get(k, 0) >= last.get(k, 0), f"{k} went back: {last} -> {st}"
            last = st


@pytest.fixture(scope="module")
def grow(k8s):
    """A cluster of three with a throttle of 1 MiB/s, volumes deleted on scale-down, and data."""
    ns = k8s.namespace()
    config = {"default.replication.factor": "3", "offsets.topic.replication.factor": "3",
              "offsets.topic.num.partitions": "6", "min.insync.replicas": "2",
              "broker.session.timeout.ms": "4000", "replica.lag.time.max.ms": "4000"}
    k8s.apply(cluster(ns, NAME, replicas=3, config=config,
                      storage={"size": "1Gi", "whenScaled": "Delete", "whenDeleted": "Delete"},
                      rebalance={"throttleBytesPerSecond": THROTTLE, "maxMovesInFlight": 4}))
    kc = k8s.wait_condition("kafkaclusters", ns, NAME, "Ready", timeout=240)
    for name, partitions, rf in (("events", 6, 3), ("bulk", 4, 2)):
        k8s.apply(topic(ns, name, partitions, rf=rf, cluster_name=NAME))
        k8s.wait_condition("topics", ns, name, "Ready", timeout=60)
    fill(kc, "bulk", BULK_BYTES)
    return ns, kc


def test_scaling_up_moves_partitions_onto_the_new_brokers_under_load_within_the_throttle(k8s, grow):
    ns, kc = grow
    load = Load(kc, "events", lambda: k8s.agent.logs(ns))
    time.sleep(3)
    sampler = Sampler(k8s, ns, [3, 4])
    start = time.time()
    k8s.kubectl("scale", "kc", NAME, "-n", ns, "--replicas=5")
    k8s.kube.wait("the scale to 5 completed",
                  lambda: scaling(k8s, ns).get("to") == 5 and scaling(k8s, ns).get("phase") == "Completed",
                  timeout=420, interval=1)
    took = time.time() - start
    sampler.finish()
    acked = load.finish()
    st = scaling(k8s, ns)
    print(f"3 -> 5: {took:.1f} s, {st['partitionsTotal']} moves, {st['bytesTotal']} bytes; "
          f"fastest reassignment fetch {[round(sampler.fastest(b)) for b in (3, 4)]} B/s at a throttle of {THROTTLE}; "
          f"{acked} records acked, longest gap between acks {load.longest_gap:.2f} s")
    assert st["partitionsDone"] == st["partitionsTotal"] > 0 and st["bytesDone"] == st["bytesTotal"] > 0
    sampler.assert_progress_only_forward()
    # The replication throttle held between any two samples. A broker follows up to three
    # leaders, each of whose fetches may return one batch past its share.
    for b in (3, 4):
        sampler.assert_within_throttle(b, THROTTLE, overdraft=3 * (BATCH_BYTES + (16 << 10)))
    assert any(sampler.fastest(b) > THROTTLE * 0.3 for b in (3, 4)), "the moves did not run near the throttle"
    md = describe(kc)
    for name in ("events", "bulk", "__consumer_offsets"):
        assert placement_ok(md.topics[name], [0, 1, 2, 3, 4]) is None, (name, placement_ok(md.topics[name], [0, 1, 2, 3, 4]))
        for pid, p in md.topics[name].partitions.items():
            assert p.leader == p.replicas[0], f"{name}-{pid}: leader {p.leader}, preferred {p.replicas[0]}"
    kc = k8s.wait_condition("kafkaclusters", ns, NAME, "Ready")
    assert kc["status"]["phase"] == "Ready" and kc["status"]["readyReplicas"] == 5
    reasons = [e["reason"] for e in k8s.events(ns, NAME)]
    assert "Scaling" in reasons and "ScalingCompleted" in reasons, reasons
    metrics = k8s.operator_metrics(k8s.operator)
    assert re.search(r'skein_operator_scaling_partitions_left\{[^}]*cluster="grow"[^}]*\} 0', metrics), metrics[-2000:]
    # The throttle is lifted once the moves are done.
    a = AdminClient({"bootstrap.servers": bootstrap(kc)})
    from confluent_kafka.admin import ConfigResource
    res = ConfigResource("broker", "0")
    configs = a.describe_configs([res])[res].result(timeout=15)
    assert configs["leader.replication.throttled.rate"].value != str(THROTTLE), configs["leader.replication.throttled.rate"]


def test_a_scale_down_below_the_largest_replication_factor_is_refused_and_changes_nothing(k8s, grow):
    ns, kc = grow
    k8s.apply(topic(ns, "wide", 2, rf=4, cluster_name=NAME, deletionPolicy="Delete"))
    k8s.wait_condition("topics", ns, "wide", "Ready", timeout=60)
    before = describe(kc)
    scale_spec(k8s, ns, 3)
    kc2 = k8s.wait_condition("kafkaclusters", ns, NAME, "Scaling", status="False", reason="ScaleDownRefused")
    msg = k8s.condition(kc2, "Scaling")["message"]
    assert "wide" in msg and "replication factor 4" in msg, msg
    assert any(e["reason"] == "ScaleDownRefused" and e["type"] == "Warning" for e in k8s.events(ns, NAME))
    time.sleep(3)
    sts = k8s.kube.get(f"/apis/apps/v1/namespaces/{ns}/statefulsets/{NAME}")
    assert sts["spec"]["replicas"] == 5
    after = describe(kc)
    for name in ("events", "bulk"):
        assert {p: list(x.replicas) for p, x in before.topics[name].partitions.items()} == \
               {p: list(x.replicas) for p, x in after.topics[name].partitions.items()}
    # Back to five: the refusal clears.
    scale_spec(k8s, ns, 5)
    k8s.kube.wait("the refusal cleared", lambda: k8s.condition(k8s.get("kafkaclusters", ns, NAME), "Scaling")["reason"]
                  != "ScaleDownRefused", timeout=60)
    k8s.kube.delete(f"/apis/skein.dev/v1alpha1/namespaces/{ns}/topics/wide")
    k8s.kube.wait("wide deleted", lambda: "wide" not in describe(kc).topics, timeout=60)


def watch_objects(k8s, collection, name, rv, stop, on_object):
    """Streams every version of one object from the API server's watch (each
    status write, not a sample of them) to on_object, from resourceVersion rv
    until stop() is true."""
    kube = k8s.kube
    while not stop():
        url = (f"{kube.server}{collection}?watch=1"
               f"&fieldSelector=metadata.name%3D{name}&resourceVersion={rv}&timeoutSeconds=30")
        req = urllib.request.Request(url)
        req.add_header("Authorization", f"Bearer {kube.token}")
        try:
            with urllib.request.urlopen(req, context=kube.ctx, timeout=40) as r:
                for line in r:
                    ev = json.loads(line)
                    if ev["type"] == "ERROR":
                        break
                    rv = ev["object"]["metadata"]["resourceVersion"]
                    on_object(ev["object"])
                    if stop():
                        return
        except OSError:
            time.sleep(0.5)


class StatefulSetWatch:
    """Watches the StatefulSet; when its replicas drop, asks the brokers at once which hold replicas."""

    def __init__(self, k8s, ns, kc):
        self.k8s, self.ns, self.kc = k8s, ns, kc
        self.history, self.at_shrink = [], None
        sts = k8s.kube.get(f"/apis/apps/v1/namespaces/{ns}/statefulsets/{NAME}")
        self.replicas = sts["spec"]["replicas"]
        self.stop = False
        self.thread = threading.Thread(
            target=watch_objects, daemon=True,
            args=(k8s, f"/apis/apps/v1/namespaces/{ns}/statefulsets", NAME, sts["metadata"]["resourceVersion"],
                  lambda: self.stop, self._seen))
        self.thread.start()

    def _seen(self, obj):
        replicas = obj["spec"]["replicas"]
        if replicas != self.replicas:
            self.history.append((time.time(), self.replicas, replicas))
            if replicas < self.replicas and self.at_shrink is None:
                md = describe(self.kc)
                self.at_shrink = {(t, pid): list(p.replicas) for t, m in md.topics.items()
                                  for pid, p in m.partitions.items()}
            self.replicas = replicas


class ScalingWatch:
    """Watches the KafkaCluster and queues every scaling point (phase and
    progress) its status shows, so a phase the operator passes through in one
    reconcile is seen as surely as a long one."""

    def __init__(self, k8s, ns):
        self.points = queue.Queue()
        self.stop = False
        kc = k8s.get("kafkaclusters", ns, NAME)
        self.thread = threading.Thread(
            target=watch_objects, daemon=True,
            args=(k8s, f"/apis/skein.dev/v1alpha1/namespaces/{ns}/kafkaclusters", NAME,
                  kc["metadata"]["resourceVersion"], lambda: self.stop, self._seen))
        self.thread.start()

    def _seen(self, obj):
        self.points.put((obj.get("status") or {}).get("scaling") or {})


def kill_operator(k8s):
    p = k8s.operator
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=10)
    k8s.operator = None
    k8s.operator = k8s.start_operator(p.identity)


def test_scaling_down_drains_first_then_shrinks_and_survives_the_operator_killed_at_every_step(k8s, grow):
    ns, kc = grow
    load = Load(kc, "events", lambda: k8s.agent.logs(ns))
    time.sleep(3)
    watch = StatefulSetWatch(k8s, ns, kc)
    points = ScalingWatch(k8s, ns)
    sampler = Sampler(k8s, ns, [0, 1, 2])
    scale_spec(k8s, ns, 3)
    kill_operator(k8s)  # before the operator has seen the new spec
    kills = ["before any step"]
    deadline = time.time() + 600
    while time.time() < deadline:
        try:
            st = points.points.get(timeout=1)
        except queue.Empty:
            continue
        if st.get("to") == 3 and st.get("phase") == "Completed":
            break
        point = f"{st.get('phase')} {st.get('partitionsDone')}/{st.get('partitionsTotal')}"
        if st.get("to") == 3 and point not in kills:
            kill_operator(k8s)
            kills.append(point)
    else:
        raise AssertionError(f"scale-down not completed: {scaling(k8s, ns)}\n{k8s.operator_logs()}")
    watch.stop = points.stop = True
    sampler.finish()
    print(f"5 -> 3 with the operator killed at {len(kills)} points: {kills}")
    acked = load.finish()
    print(f"5 -> 3: {acked} records acked, longest gap between acks {load.longest_gap:.2f} s")
    phases = {k.split()[0] for k in kills[1:]}
    assert len(kills) >= 5 and len(phases) >= 3, kills
    sampler.assert_progress_only_forward()
    # The StatefulSet shrank once, to 3, after brokers 3 and 4 held nothing.
    assert [(a, b) for _, a, b in watch.history] == [(5, 3)], watch.history
    on_leaving = {k: r for k, r in watch.at_shrink.items() if set(r) & {3, 4}}
    assert not on_leaving, f"the StatefulSet shrank while brokers 3-4 held {on_leaving}"
    md = describe(kc)
    for name in ("events", "bulk", "__consumer_offsets"):
        assert placement_ok(md.topics[name], [0, 1, 2]) is None, (name, placement_ok(md.topics[name], [0, 1, 2]))
    # Brokers 3 and 4 are unregistered, their volumes deleted (whenScaled: Delete).
    assert sorted(md.brokers) == [0, 1, 2], md.brokers
    registered = describe_cluster(kc)["brokers"]
    assert sorted(b["id"] for b in registered) == [0, 1, 2], registered  # fenced ones included
    claims = {c["metadata"]["name"] for c in k8s.kube.get(f"/api/v1/namespaces/{ns}/persistentvolumeclaims")["items"]}
    assert claims == {f"data-{NAME}-{i}" for i in range(3)}, claims
    # No move was started twice across the operator's lives.
    logs = k8s.operator_logs(tail=10_000_000)
    moves = re.findall(r"reassigning partition.*?plan=5-to-3-g\d+ topic=(\S+) partition=(\d+) target=(\[[^\]]*\])", logs)
    assert moves, "no reassignment logged"
    assert len(moves) == len(set(moves)), [m for m in moves if moves.count(m) > 1][:5]


def pod_uids(k8s, ns):
    pods = k8s.kube.get(f"/api/v1/namespaces/{ns}/pods?labelSelector=app.kubernetes.io/instance%3D{NAME}")["items"]
    return {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods}


def roll(k8s, ns):
    return (k8s.get("kafkaclusters", ns, NAME) or {}).get("status", {}).get("roll") or {}


class IsrWatch:
    """Samples every partition's ISR size every 0.3 s; remembers the smallest seen."""

    def __init__(self, kc, topics):
        self.kc, self.topics = kc, topics
        self.smallest, self.samples = {}, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        a = AdminClient({"bootstrap.servers": bootstrap(self.kc)})
        while not self.stop.is_set():
            try:
                md = a.list_topics(timeout=5)
            except KafkaException:
                continue
            for t in self.topics:
                if t not in md.topics:
                    continue
                for pid, p in md.topics[t].partitions.items():
                    k = (t, pid)
                    self.smallest[k] = min(self.smallest.get(k, 99), len(p.isrs))
            self.samples += 1
            self.stop.wait(0.3)

    def finish(self):
        self.stop.set()
        self.thread.join(timeout=10)
        return self.smallest


def test_a_dynamic_key_is_applied_without_a_restart_and_a_static_one_rolls_one_broker_at_a_time(k8s, grow):
    ns, kc = grow
    kc = k8s.get("kafkaclusters", ns, NAME)
    before = pod_uids(k8s, ns)
    config = dict(kc["spec"]["config"], **{"follower.replication.throttled.rate": "209715200"})
    k8s.kube.merge(f"/apis/skein.dev/v1alpha1/namespaces/{ns}/kafkaclusters/{NAME}", {"spec": {"config": config}})
    a = AdminClient({"bootstrap.servers": bootstrap(kc)})
    from confluent_kafka.admin import ConfigResource

    def on_broker(key, broker="0"):
        res = ConfigResource("broker", broker)
        e = a.describe_configs([res])[res].result(timeout=15)[key]
        return e.value, int(getattr(e.source, "value", e.source))
    # Source 3: DYNAMIC_DEFAULT_BROKER_CONFIG, the cluster-wide dynamic default.
    k8s.kube.wait("the dynamic key applied",
                  lambda: on_broker("follower.replication.throttled.rate") == ("209715200", 3),
                  timeout=60)
    time.sleep(5)
    assert pod_uids(k8s, ns) == before, "a dynamic key restarted brokers"

    # A static key: one broker at a time, never below min.insync.replicas=2, producing throughout.
    leader_before = quorum_leader(k8s, ns)
    load = Load(kc, "events", lambda: k8s.agent.logs(ns))
    isr = IsrWatch(kc, ["events", "__consumer_offsets"])
    time.sleep(3)
    start = time.time()
    config["log.retention.ms"] = "86400000"
    k8s.kube.merge(f"/apis/skein.dev/v1alpha1/namespaces/{ns}/kafkaclusters/{NAME}", {"spec": {"config": config}})
    # "bulk" has RF 2 at min.insync.replicas 2: it can never lose a replica, so the roll waits for an override.
    blocked = k8s.wait_condition("kafkaclusters", ns, NAME, "RollingUpdate", "False", "RollBlocked", timeout=60)
    assert "bulk" in k8s.condition(blocked, "RollingUpdate")["message"]
    assert pod_uids(k8s, ns) == before
    k8s.kube.merge(f"/apis/skein.dev/v1alpha1/namespaces/{ns}/kafkaclusters/{NAME}",
                   {"spec": {"rollingUpdate": {"allowUnavailableTopics": ["bulk"]}}})
    k8s.kube.wait("the roll started", lambda: roll(k8s, ns).get("phase") not in (None, "Completed", "Blocked"),
                  timeout=60)
    k8s.kube.wait("the roll completed", lambda: roll(k8s, ns).get("phase") == "Completed", timeout=420, interval=1)
    took = time.time() - start
    smallest = isr.finish()
    acked = load.finish()
    st = roll(k8s, ns)
    print(f"config roll of 3 brokers: {took:.1f} s, order {st['restarted']}; {acked} records acked, "
          f"longest gap between acks {load.longest_gap:.2f} s; {isr.samples} ISR samples, "
          f"smallest ISR {min(smallest.values())}")
    assert sorted(st["restarted"]) == [0, 1, 2]
    after = pod_uids(k8s, ns)
    assert all(after[p] != before[p] for p in before), "every broker restarted"
    assert isr.samples > 20 and min(smallest.values()) >= 2, {k: v for k, v in smallest.items() if v < 2}
    assert on_broker("log.retention.ms")[0] == "86400000"
    assert st["restarted"][-1] == leader_before, f"the quorum leader {leader_before} was not restarted last: {st}"
    reasons = [e["reason"] for e in k8s.events(ns, NAME)]
    assert {"RollBlocked", "Rolling", "RollCompleted"} <= set(reasons), reasons


def test_a_broker_that_dies_mid_roll_pauses_the_roll_until_it_is_back(k8s, grow):
    ns, kc = grow
    k8s.kube.merge(f"/apis/skein.dev/v1alpha1/namespaces/{ns}/kafkaclusters/{NAME}",
                   {"metadata": {"annotations": {"skein.dev/restart": str(time.time())}},
                    "spec": {"rollingUpdate": {"allowUnavailableTopics": ["bulk"]}}})
    # While the first restarted broker is not ready yet the roll cannot move on: kill the
    # broker it restarts last (the quorum leader) then.
    r = k8s.kube.wait("the first broker restarting", lambda: (r := roll(k8s, ns)).get("phase") == "Waiting"
                      and len(r.get("restarted", [])) == 1 and "to be ready" in r.get("message", "") and r,
                      timeout=120, interval=0.1)
    first = r["restarted"][0]
    victim = quorum_leader(k8s, ns)
    assert victim != first and victim in r["pending"], (victim, r)
    containers = subprocess.run(["podman", "ps", "--format", "{{.Names}}"], capture_output=True, text=True).stdout
    name = [c for c in containers.split() if f"_{NAME}-{victim}_" in c][0]
    subprocess.run(["podman", "kill", name], check=True, capture_output=True)

    def victim_ready():
        # Between its deletion and its re-creation by the StatefulSet the pod
        # does not exist: down, as much as a pod that is not Ready.
        try:
            pod = k8s.kube.get(f"/api/v1/namespaces/{ns}/pods/{NAME}-{victim}")
        except ApiError as e:
            if e.code == 404:
                return False
            raise
        return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))
    # Until the roll completes: no broker is restarted while the victim is seen down.
    samples, down_seen, deadline = [], 0, time.time() + 420
    while time.time() < deadline:
        st, ready = roll(k8s, ns), victim_ready()
        down_seen += not ready
        # A restart between two samples is a violation only if the victim was
        # seen down on both sides of the status read that shows it: it may
        # have become ready just after the previous sample.
        if samples and not samples[-1][1] and not ready:
            grew = [o for o in st.get("restarted", []) if o not in samples[-1][0]]
            assert not [o for o in grew if o != victim], f"broker(s) {grew} restarted while broker {victim} was down: {st}"
        samples.append((st.get("restarted", []), ready))
        if st.get("phase") == "Completed":
            break
        time.sleep(0.2)
    st = roll(k8s, ns)
    print(f"roll with broker {victim} killed: down in {down_seen} of {len(samples)} samples; order {st.get('restarted')}")
    # (Killing the quorum leader moves leadership, so the roll's last broker is the new leader.)
    assert st.get("phase") == "Completed" and sorted(st["restarted"]) == [0, 1, 2], st
    assert down_seen > 0, "the killed broker was never seen down"


def test_a_larger_storage_size_grows_the_claims_in_place_and_a_smaller_one_is_refused(k8s, grow):
    ns, kc = grow
    k8s.wait_condition("kafkaclusters", ns, NAME, "Ready", timeout=180)
    before = pod_uids(k8s, ns)
    path = f"/apis/skein.dev/v1alpha1/namespaces/{ns}/kafkaclusters/{NAME}"
    storage = dict(k8s.get("kafkaclusters", ns, NAME)["spec"]["storage"], size="2Gi")
    k8s.kube.merge(path, {"spec": {"storage": storage}})

    def claims():
        items = k8s.kube.get(f"/api/v1/namespaces/{ns}/persistentvolumeclaims")["items"]
        return {c["metadata"]["name"]: c["spec"]["resources"]["requests"]["storage"] for c in items}

    def template():
        sts = k8s.kube.get_opt(f"/apis/apps/v1/namespaces/{ns}/statefulsets/{NAME}")
        if not sts or sts["metadata"].get("deletionTimestamp"):
            return None
        return sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
    k8s.kube.wait("every claim at 2Gi", lambda: set(claims().values()) == {"2Gi"}, timeout=60)
    k8s.kube.wait("the StatefulSet recreated with 2Gi claims", lambda: template() == "2Gi", timeout=60)
    assert any(e["reason"] == "VolumesGrown" for e in k8s.events(ns, NAME))
    k8s.wait_condition("kafkaclusters", ns, NAME, "Ready", timeout=120)
    time.sleep(5)
    assert pod_uids(k8s, ns) == before, "growing the volumes restarted brokers"
    assert sorted(claims()) == [f"data-{NAME}-{i}" for i in range(3)]

    # Smaller: refused; nothing changes.
    k8s.kube.merge(path, {"spec": {"storage": dict(storage, size="1Gi")}})
    kc2 = k8s.wait_condition("kafkaclusters", ns, NAME, "Ready", "False", "InvalidSpec")
    assert "cannot shrink" in k8s.condition(kc2, "Ready")["message"]
    assert template() == "2Gi" and set(claims().values()) == {"2Gi"}
    k8s.kube.merge(path, {"spec": {"storage": storage}})
    k8s.wait_condition("kafkaclusters", ns, NAME, "Ready", timeout=120)
