"""The web console, `skeinctl console`, against real brokers: its JSON (what the
pages draw) checked against what was produced, placed and consumed; and its
pages in Debian's Chromium driven by Playwright, which sees the placement map
show a move as it happens and a consumer group's lag appear and drain.
Screenshots of every page are kept in $SKEIN_ARTEFACTS/console (default
target/test-artefacts/console)."""

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import free_port
from test_cluster import set_throttle, wait_until
from test_skeinctl import ctl, skeinctl_binary

ROOT = Path(__file__).resolve().parents[3]


class ConsoleProcess:
    def __init__(self, bootstrap):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.proc = subprocess.Popen(
            [skeinctl_binary(), "--bootstrap-server", bootstrap, "--timeout", "10",
             "console", "--listen", f"127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wait_until(self.up, timeout=20, what="the console listening")

    def up(self):
        try:
            return self.get("api/clusters")[0] == 200
        except OSError:
            return False

    def get(self, path, method="GET"):
        req = urllib.request.Request(self.url + path, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read().decode(), {k.lower(): v for k, v in r.headers.items()}
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(), {k.lower(): v for k, v in e.headers.items()}

    def json(self, path):
        status, body, _ = self.get(path)
        assert status == 200, (path, status, body)
        return json.loads(body)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def console_factory():
    made = []

    def make(bootstrap):
        c = ConsoleProcess(bootstrap)
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()


def produce(bootstrap, topic, n, size=100, partitions=None):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 10})
    for i in range(n):
        kw = {"partition": i % partitions} if partitions else {}
        p.produce(topic, value=f"{i}:".encode() + b"x" * size, **kw)
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(60) == 0


def consume_and_commit(bootstrap, topic, group, n):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([topic])
    got, deadline = 0, time.monotonic() + 60
    while got < n and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got += 1
    c.commit(asynchronous=False)
    c.close()
    return got


def test_the_console_json_shows_brokers_topics_placement_groups_and_the_quorum(cluster_factory, console_factory):
    cluster = cluster_factory(3)
    a = AdminClient({"bootstrap.servers": cluster.bootstrap})
    a.create_topics([NewTopic("placed", 6, 2, config={"retention.ms": "3600000"})])["placed"].result(30)
    produce(cluster.bootstrap, "placed", 600, partitions=6)
    assert consume_and_commit(cluster.bootstrap, "placed", "api-group", 600) == 600
    produce(cluster.bootstrap, "placed", 120, partitions=6)
    console = console_factory(cluster.bootstrap)

    [entry] = console.json("api/clusters")
    assert entry["id"] == "local" and entry["phase"] is None
    s = console.json("api/snapshot?cluster=local")
    assert sorted(b["id"] for b in s["brokers"]) == [0, 1, 2] and not any(b["fenced"] for b in s["brokers"])
    assert sum(b["controller"] for b in s["brokers"]) == 1
    [topic] = [t for t in s["topics"] if t["name"] == "placed"]
    assert (topic["partitions"], topic["replication_factor"], topic["under_replicated"]) == (6, 2, 0)
    assert topic["configs"] == {"retention.ms": "3600000"} and topic["bytes"] > 720 * 100
    # Created by the rule: every partition's replicas are its (i+j) mod n target.
    [placed] = [p for p in s["placement"] if p["topic"] == "placed"]
    for p in placed["partitions"]:
        assert p["replicas"] == p["target"] == [p["partition"] % 3, (p["partition"] + 1) % 3], p
        assert p["leader"] == p["replicas"][0] and sorted(p["isr"]) == sorted(p["replicas"])
    # The group's lag: 120 records produced after its commit.
    wait_until(lambda: console.json("api/snapshot?cluster=local")["groups"], what="the group listed")
    [g] = [g for g in console.json("api/snapshot?cluster=local")["groups"] if g["group_id"] == "api-group"]
    assert g["total_lag"] == 120 and sum(l["lag"] for l in g["lag"]) == 120, g
    assert len(g["lag"]) == 6
    history = console.json("api/snapshot?cluster=local")["history"]
    h = history["lag"]["api-group"]
    assert len(h) >= 2 and all(v == 120 for _, v in h)
    # And per partition: 20 behind on each of the six.
    for p in range(6):
        series = history["partition_lag"][f"api-group/placed/{p}"]
        assert len(series) >= 2 and all(v == 20 for _, v in series), (p, series)
    # A live member: its assignment, decoded from the consumer protocol.
    live = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": "live-group",
                     "auto.offset.reset": "earliest"})
    live.subscribe(["placed"])
    try:
        wait_until(lambda: live.poll(0.2) is not None and live.assignment(), what="an assignment")

        def member():
            groups = console.json("api/snapshot?cluster=local")["groups"]
            return [g for g in groups if g["group_id"] == "live-group" and g["members"]]

        [g] = wait_until(member, what="the live group's member")
        [m] = g["members"]
        assert g["state"] == "Stable" and m["client_id"] and m["assignment"] == [["placed", [0, 1, 2, 3, 4, 5]]], g
    finally:
        live.close()
    # The metadata quorum: three voters, one leader.
    q = s["quorum"]
    assert sorted(m["id"] for m in q["members"] if m["role"] in ("leader", "voter")) == [0, 1, 2]
    assert [m["id"] for m in q["members"] if m["role"] == "leader"] == [q["leader"]]
    assert s["reassignments"] == [] and s["errors"] == []

    # The pages: embedded, nothing from elsewhere (CSP), read-only.
    status, body, headers = console.get("")
    assert status == 200 and "<nav" in body and "app.js" in body
    assert "default-src 'self'" in headers["content-security-policy"]
    assert console.get("app.js")[0] == 200 and console.get("app.css")[0] == 200
    assert console.get("api/snapshot?cluster=local", method="POST")[0] == 405
    assert console.get("api/snapshot?cluster=elsewhere")[0] == 404
    assert console.get("api/snapshot")[0] == 400


def test_the_console_in_chromium_shows_a_move_and_lag_appear_and_drain(cluster_factory, console_factory):
    """Four brokers, a topic on the first three; moving it onto all four under
    a throttle shows replicas being added on the placement map; a group's lag
    shows, then drains as it consumes."""
    shots = Path(os.environ.get("SKEIN_ARTEFACTS", ROOT / "target" / "test-artefacts")) / "console"
    shots.mkdir(parents=True, exist_ok=True)
    cluster = cluster_factory(4)
    a = AdminClient({"bootstrap.servers": cluster.bootstrap})
    a.create_topics([NewTopic("moving", num_partitions=4, replica_assignment=[[0, 1], [1, 2], [2, 0], [0, 1]])])["moving"].result(30)
    a.create_topics([NewTopic("lagging", 2, 2)])["lagging"].result(30)
    produce(cluster.bootstrap, "moving", 4000, size=1000, partitions=4)
    produce(cluster.bootstrap, "lagging", 500, partitions=2)
    assert consume_and_commit(cluster.bootstrap, "lagging", "console-group", 100) >= 100
    console = console_factory(cluster.bootstrap)
    node = subprocess.Popen(["node", str(Path(__file__).parent / "node" / "console.js"), console.url, str(shots)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        set_throttle(cluster, 300_000)
        ctl(cluster.bootstrap, "reassign", "plan", "--brokers", "0,1,2,3", "--topics", "moving", "--execute")
        lines = []
        for line in node.stdout:
            lines.append(line.strip())
            if line.startswith("LAG_SEEN"):
                assert int(line.split()[1]) > 0
                # Drain: the group reads what is left and commits.
                consume_and_commit(cluster.bootstrap, "lagging", "console-group", 400)
            if line.startswith("DONE"):
                break
        assert node.wait(120) == 0, (lines, node.stderr.read())
        assert any(l.startswith("MOVING") for l in lines), lines
    finally:
        if node.poll() is None:
            node.kill()
    for name in ("overview", "brokers", "topics", "placement", "groups", "moves", "quorum", "transactions",
                 "operator", "placement-moving", "groups-lagging", "groups-drained"):
        assert (shots / f"{name}.png").stat().st_size > 1000, name
