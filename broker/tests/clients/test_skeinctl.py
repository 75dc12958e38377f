"""skeinctl, the command-line tool, against real brokers: topics, groups with
lag, a three-broker cluster drained by a reassignment plan, and the exit codes
scripts rely on (0 done, 1 refused by the cluster, 2 usage, 3 unreachable)."""

import json
import subprocess
import time

from confluent_kafka import Consumer, Producer

from conftest import free_port, release_binary


def skeinctl_binary() -> str:
    return release_binary("skeinctl", "SKEINCTL_BIN")


def ctl(bootstrap, *args, check=True, timeout=30):
    """Runs skeinctl with JSON output; returns (exit code, parsed stdout or None, stderr)."""
    p = subprocess.run(
        [skeinctl_binary(), "--bootstrap-server", bootstrap, "--output", "json", "--timeout", str(timeout), *args],
        capture_output=True, text=True, timeout=timeout + 30,
    )
    if check:
        assert p.returncode == 0, (args, p.returncode, p.stderr)
    doc = json.loads(p.stdout) if p.stdout.strip() else None
    return p.returncode, doc, p.stderr


def produce(bootstrap, topic, n, partitions, size=100):
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(n):
        p.produce(topic, value=b"x" * size, partition=i % partitions)
    assert p.flush(30) == 0


def test_topics_are_created_described_altered_grown_and_deleted(broker):
    b = broker.bootstrap
    ctl(b, "topic", "create", "events", "--partitions", "3", "--replication-factor", "1", "--config", "retention.ms=3600000")
    _, topics, _ = ctl(b, "topic", "list")
    assert topics == [{"name": "events", "partitions": 3, "replication_factor": 1, "internal": False}]
    _, [desc], _ = ctl(b, "topic", "describe", "events")
    assert [p["leader"] for p in desc["partitions"]] == [0, 0, 0]
    assert desc["configs"]["retention.ms"] == {"value": "3600000", "source": "DYNAMIC_TOPIC_CONFIG"}
    ctl(b, "topic", "alter-config", "events", "--set", "cleanup.policy=compact", "--delete", "retention.ms")
    _, [desc], _ = ctl(b, "topic", "describe", "events")
    assert desc["configs"]["cleanup.policy"]["value"] == "compact"
    assert desc["configs"]["retention.ms"]["source"] == "DEFAULT_CONFIG"
    ctl(b, "topic", "add-partitions", "events", "--count", "5")
    _, [desc], _ = ctl(b, "topic", "describe", "events")
    assert len(desc["partitions"]) == 5
    # The human-readable table names the partitions too.
    table = subprocess.run([skeinctl_binary(), "-b", b, "topic", "describe", "events"], capture_output=True, text=True)
    assert table.returncode == 0 and table.stdout.splitlines()[0].split() == [
        "TOPIC", "PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR", "OFFLINE"]
    ctl(b, "topic", "delete", "events")
    _, topics, _ = ctl(b, "topic", "list")
    assert topics == []


def test_exit_codes_tell_refused_from_usage_from_unreachable(broker):
    b = broker.bootstrap
    ctl(b, "topic", "create", "once", "--partitions", "1")
    code, _, err = ctl(b, "topic", "create", "once", "--partitions", "1", check=False)
    assert code == 1 and "TopicAlreadyExists" in err, err
    code, _, err = ctl(b, "topic", "alter-config", "once", "--set", "retention.ms=soon", check=False)
    assert code == 1 and "InvalidConfig" in err, err
    code, _, err = ctl(b, "topic", "describe", "missing", check=False)
    assert code == 1 and "UnknownTopicOrPartition" in err, err
    code, _, _ = ctl(b, "topic", "create", check=False)
    assert code == 2
    code, _, _ = ctl(b, "topic", "alter-config", "once", check=False)
    assert code == 2
    code, _, err = ctl(f"127.0.0.1:{free_port()}", "cluster", "describe", check=False, timeout=2)
    assert code == 3, err


def test_group_describe_reports_lag_per_partition(broker):
    b = broker.bootstrap
    ctl(b, "topic", "create", "lagged", "--partitions", "2")
    produce(b, "lagged", 100, 2)
    c = Consumer({"bootstrap.servers": b, "group.id": "laggards", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe(["lagged"])
    got = 0
    deadline = time.monotonic() + 30
    while got < 60 and time.monotonic() < deadline:
        got += len([m for m in c.consume(60 - got, 1.0) if m.error() is None])
    assert got == 60
    c.commit(asynchronous=False)
    _, listed, _ = ctl(b, "group", "list")
    assert [g["group"] for g in listed] == ["laggards"]
    _, desc, _ = ctl(b, "group", "describe", "laggards")
    c.close()
    assert desc["state"] == "Stable" and len(desc["members"]) == 1
    assert sum(p["committed"] for p in desc["partitions"]) == 60
    assert all(p["end"] == 50 for p in desc["partitions"])
    assert desc["total_lag"] == 40


def test_a_broker_is_drained_by_the_reassignment_plan(cluster_factory):
    c = cluster_factory(3)
    b = c.bootstrap
    deadline = time.monotonic() + 60
    while True:
        _, cluster, _ = ctl(b, "cluster", "describe")
        if sum(not br["fenced"] for br in cluster["brokers"]) == 3:
            break
        assert time.monotonic() < deadline, cluster
        time.sleep(0.2)
    ctl(b, "topic", "create", "drained", "--partitions", "6", "--replication-factor", "2")
    produce(b, "drained", 600, 6, size=1000)
    _, plan, _ = ctl(b, "reassign", "plan", "--brokers", "0,1", "--topics", "drained")
    assert plan["executed"] is False
    # Every partition with a replica on broker 2 moves; the (i+j) mod 2 rule decides where.
    moved = {m["partition"]: m for m in plan["moves"]}
    for i in range(6):
        current = [(i + j) % 3 for j in range(2)]
        target = [(i + j) % 2 for j in range(2)]
        assert (i in moved) == (current != target), (i, plan)
        if i in moved:
            assert moved[i]["target"] == target
            # Bytes are copied to added replicas only: [0,1] -> [1,0] copies nothing.
            assert (moved[i]["bytes"] > 0) == bool(moved[i]["adding"]), moved[i]
    assert plan["total_bytes"] == sum(m["bytes"] for m in plan["moves"])
    _, executed, _ = ctl(b, "reassign", "plan", "--brokers", "0,1", "--topics", "drained", "--execute")
    assert executed["started"] == len(plan["moves"])
    deadline = time.monotonic() + 60
    while True:
        _, status, _ = ctl(b, "reassign", "status")
        if not status["reassignments"]:
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.5)
    _, [desc], _ = ctl(b, "topic", "describe", "drained")
    assert [p["replicas"] for p in desc["partitions"]] == [[(i + j) % 2 for j in range(2)] for i in range(6)]
    # Nothing is left to move; a broker that is not in the cluster is a usage error.
    _, again, _ = ctl(b, "reassign", "plan", "--brokers", "0,1", "--topics", "drained")
    assert again["moves"] == []
    code, _, err = ctl(b, "reassign", "plan", "--brokers", "0,7", check=False)
    assert code == 2 and "broker 7" in err, err
    c2 = Consumer({"bootstrap.servers": b, "group.id": "after-drain", "auto.offset.reset": "earliest"})
    c2.subscribe(["drained"])
    got = 0
    deadline = time.monotonic() + 30
    while got < 600 and time.monotonic() < deadline:
        got += len([m for m in c2.consume(600, 1.0) if m.error() is None])
    c2.close()
    assert got == 600


def test_reassign_status_shows_bytes_copied_and_cancel_keeps_the_old_replicas(cluster_factory):
    """A throttled move (50 KB/s of a ~3 MB partition) is still running when
    `reassign status` looks: the first fetch may take one replica.fetch.max.bytes
    (1 MiB) at once, then the throttle holds the next for ~20 s, so status
    reports fewer bytes copied than the total of the replica being added. `reassign cancel` stops it; the partition keeps its
    replica list from before and nothing is left in progress."""
    from test_cluster import set_throttle

    c = cluster_factory(3)
    b = c.bootstrap
    ctl(b, "topic", "create", "slow", "--partitions", "1", "--replication-factor", "1")
    produce(b, "slow", 3000, 1, size=1000)
    _, [before], _ = ctl(b, "topic", "describe", "slow")
    owner = before["partitions"][0]["replicas"]
    other = next(i for i in range(3) if i not in owner)
    set_throttle(c, 50_000)
    _, plan, _ = ctl(b, "reassign", "plan", "--brokers", str(other), "--topics", "slow", "--execute")
    assert plan["started"] == 1 and plan["moves"][0]["adding"] == [other]
    _, status, _ = ctl(b, "reassign", "status")
    [r] = status["reassignments"]
    assert r["adding"] == [other] and r["removing"] == owner
    assert 0 <= r["copied_bytes"] < r["total_bytes"], r
    assert r["total_bytes"] >= 3_000_000
    _, cancelled, _ = ctl(b, "reassign", "cancel")
    assert cancelled == {"cancelled": 1}
    _, status, _ = ctl(b, "reassign", "status")
    assert status["reassignments"] == []
    _, [after], _ = ctl(b, "topic", "describe", "slow")
    assert after["partitions"][0]["replicas"] == owner
