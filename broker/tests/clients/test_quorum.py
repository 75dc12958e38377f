"""The metadata quorum's voters changed at run time (KIP-853): AddRaftVoter and
RemoveRaftVoter through skeinctl, DescribeQuorum v2 with directory ids, a voter
whose disk was lost replaced under its new directory, and a voter change
whose active controller dies half way. Real broker processes, a real producer."""

import os
import shutil
import threading
import time

from confluent_kafka import Producer

from test_cluster import consume_all, create_topic, wait_until
from test_skeinctl import ctl

NIL = "00000000-0000-0000-0000-000000000000"


def quorum(bootstrap):
    return ctl(bootstrap, "cluster", "quorum")[1]


def voters(bootstrap):
    return sorted(v["id"] for v in quorum(bootstrap)["voters"])


class Producing:
    """A producer (acks=all, idempotent) writing until stopped; what it had
    acknowledged is checked against what a consumer reads back."""

    def __init__(self, cluster, topic, partitions=3):
        self.cluster, self.topic, self.partitions = cluster, topic, partitions
        self.acked = {p: [] for p in range(partitions)}
        self.errors = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self):
        p = Producer(
            {
                "bootstrap.servers": ",".join(b.bootstrap for b in self.cluster.brokers),
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "message.timeout.ms": 60000,
                "topic.metadata.refresh.interval.ms": 500,
            }
        )

        def on_delivery(err, msg):
            if err:
                self.errors.append(err)
            else:
                self.acked[msg.partition()].append(msg.value().decode())

        i = 0
        while not self.stop.is_set():
            p.produce(self.topic, value=str(i).encode(), partition=i % self.partitions, on_delivery=on_delivery)
            p.poll(0)
            i += 1
            if i % 100 == 0:
                time.sleep(0.02)
        assert p.flush(60) == 0

    def count(self):
        return sum(len(v) for v in self.acked.values())

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(120)

    def check(self, bootstrap):
        assert not self.errors, self.errors[:5]
        got = consume_all(bootstrap, self.topic, self.partitions, self.count())
        for p in range(self.partitions):
            assert got[p] == self.acked[p], f"partition {p}: {len(got[p])} read, {len(self.acked[p])} acknowledged"


def test_voters_are_added_and_removed_one_at_a_time_under_a_producer(cluster_factory):
    """One voter, two observers: both become voters, the first voter dies and
    the two carry on, it comes back as a voter, one is removed again; no
    acknowledged record and no metadata change is lost."""
    cluster = cluster_factory(3, voters=1)
    b = cluster.bootstrap
    q = quorum(b)
    assert [v["id"] for v in q["voters"]] == [0]
    # Observers report their log directory; DescribeQuorum v2 lists their controller endpoints.
    wait_until(lambda: sorted(o["id"] for o in quorum(b)["observers"]) == [1, 2], what="two observers")
    q = quorum(b)
    assert all(o["directory_id"] != NIL and o["endpoint"] for o in q["observers"]), q
    create_topic(cluster, "dq", 3, min_insync_replicas=2)
    with Producing(cluster, "dq") as producing:
        ctl(b, "cluster", "add-voter", "1")
        assert voters(b) == [0, 1]
        ctl(b, "cluster", "add-voter", "2")
        assert voters(b) == [0, 1, 2]
        # Refusals name the case: already a voter; not a voter.
        code, _, err = ctl(b, "cluster", "add-voter", "2", check=False)
        assert code != 0 and "DuplicateVoter" in err and "already a voter" in err, err
        code, _, err = ctl(b, "cluster", "remove-voter", "7", check=False)
        assert code != 0 and "VoterNotFound" in err, err
        # The only initial voter dies: the two added voters are a majority.
        cluster.brokers[0].kill9()
        live = ",".join(x.bootstrap for x in cluster.brokers[1:])
        ctl(live, "topic", "create", "after-0-died", "--partitions", "1", "--replication-factor", "2")
        assert quorum(live)["leader_id"] in (1, 2)
        before = producing.count()
        wait_until(lambda: producing.count() > before + 100, what="produce to go on")
        cluster.brokers[0].start(60)
        wait_until(lambda: quorum(live)["voters"][0]["log_end_offset"] > 0, what="node 0 back")
        wait_until(
            lambda: all(m["log_end_offset"] >= 0 for m in quorum(b)["voters"]) and voters(b) == [0, 1, 2],
            what="node 0 back as a voter",
        )
        ctl(b, "cluster", "remove-voter", "2")
        assert voters(b) == [0, 1]
        # Still running: it follows the log as an observer.
        assert 2 in [o["id"] for o in quorum(b)["observers"]]
        before = producing.count()
        wait_until(lambda: producing.count() > before + 100, what="produce to go on")
    producing.check(cluster.bootstrap)
    # The topic created while node 0 was down is known to every broker.
    for x in cluster.brokers:
        listed = [t["name"] for t in ctl(x.bootstrap, "topic", "list")[1]]
        assert "after-0-died" in listed, (x.port, listed)


def test_the_last_voter_is_not_removed(broker):
    code, _, err = ctl(broker.bootstrap, "cluster", "remove-voter", "0", check=False)
    assert code != 0 and "InvalidRequest" in err and "only voter" in err, err
    # The voter's directory is recorded once it has reported itself.
    [v] = wait_until(lambda: [v for v in quorum(broker.bootstrap)["voters"] if v["directory_id"] != NIL], what="recorded")
    assert v["id"] == 0


def test_a_voter_whose_disk_is_lost_rejoins_as_a_new_voter(cluster_factory):
    """A voter's data is deleted and it restarts with a new directory id: it
    follows as an observer and does not vote until the old voter is removed
    and it is added under the new id; then it counts toward the majority."""
    cluster = cluster_factory(3)
    b = cluster.bootstrap
    wait_until(lambda: all(v["directory_id"] != NIL for v in quorum(b)["voters"]), what="every voter's directory")
    old = {v["id"]: v["directory_id"] for v in quorum(b)["voters"]}
    lost = cluster.brokers[2]
    lost.stop()
    shutil.rmtree(lost.data_dir)
    os.makedirs(lost.data_dir)
    lost.start(60)
    live = ",".join(x.bootstrap for x in cluster.brokers[:2])

    def replacement():
        q = quorum(live)
        return [o for o in q["observers"] if o["id"] == 2 and o["directory_id"] != old[2]]

    [new] = wait_until(replacement, what="the new directory listed as an observer")
    assert {v["id"]: v["directory_id"] for v in quorum(live)["voters"]} == old
    wait_until(lambda: "does not vote until the voter is replaced" in "".join(
        x.log() for x in cluster.brokers[:2]), what="the leader's warning")
    assert "following as an observer until the voter is replaced" in lost.log()
    # It does not vote: with the active controller dead, the other old voter
    # cannot be elected, and metadata cannot change.
    leader = quorum(live)["leader_id"]
    other = cluster.brokers[1 - leader]
    cluster.brokers[leader].kill9()
    code, _, err = ctl(other.bootstrap, "topic", "create", "no-majority", "--partitions", "1", "--replication-factor", "1", check=False, timeout=5)
    assert code != 0, "a topic was created without a majority of voters"
    cluster.brokers[leader].start(60)
    # Adding it while the old voter stands is refused; remove, then add.
    code, _, err = ctl(live, "cluster", "add-voter", "2", check=False)
    assert code != 0 and "DuplicateVoter" in err, err
    ctl(live, "cluster", "remove-voter", "2", "--directory-id", old[2])
    ctl(live, "cluster", "add-voter", "2", "--directory-id", new["directory_id"])
    q = quorum(live)
    assert {v["id"]: v["directory_id"] for v in q["voters"]} == {**old, 2: new["directory_id"]}, q
    # It votes now: with node 0 dead, nodes 1 and 2 are the majority.
    cluster.brokers[0].kill9()
    survivors = ",".join(x.bootstrap for x in cluster.brokers[1:])
    ctl(survivors, "topic", "create", "after-replacement", "--partitions", "1", "--replication-factor", "2")
    assert quorum(survivors)["leader_id"] in (1, 2)


def test_a_voter_change_survives_its_active_controller_dying(cluster_factory):
    """The active controller is killed while it adds a voter: afterwards the
    change is either complete or absent, the quorum works, and asking again
    finishes it."""
    cluster = cluster_factory(4, voters=3)
    b = cluster.bootstrap
    wait_until(lambda: 3 in [o["id"] for o in quorum(b)["observers"]], what="node 3 observing")
    leader = quorum(b)["leader_id"]
    others = ",".join(x.bootstrap for i, x in enumerate(cluster.brokers) if i != leader)
    adding = threading.Thread(target=lambda: ctl(others, "cluster", "add-voter", "3", check=False, timeout=20))
    adding.start()
    time.sleep(0.05)
    cluster.brokers[leader].kill9()
    adding.join(60)
    # A new active controller finishes or forgets the change; either way the quorum works.
    ctl(others, "topic", "create", "after-the-change", "--partitions", "1", "--replication-factor", "2")
    assert sorted(voters(others)) in ([0, 1, 2], [0, 1, 2, 3]), quorum(others)
    if 3 not in voters(others):
        ctl(others, "cluster", "add-voter", "3")
    assert voters(others) == [0, 1, 2, 3]
    cluster.brokers[leader].start(60)
    wait_until(lambda: all(m["log_end_offset"] > 0 for m in quorum(others)["voters"]), what="every voter replicating")
