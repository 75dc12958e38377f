"""The metadata quorum's voters follow spec.controllers on the real API server
(see conftest.py): 1 -> 3 -> 5 -> 3 controllers under a steady producer and a
consumer group, one voter change at a time, each seen in status and Events;
no acknowledged record and no metadata change lost, no pod restarted. (A
change that would leave no majority is refused: operator/src/cluster/quorum.rs.)"""

import json
import subprocess
import urllib.request

from test_operator import cluster, topic
from test_scaling import Load, bootstrap, skeinctl

NAME = "voters"


def quorum(kc):
    out = subprocess.run(
        [skeinctl(), "--bootstrap-server", bootstrap(kc), "-o", "json", "cluster", "quorum"],
        check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def set_controllers(k8s, ns, n):
    k8s.kube.merge(f"/apis/skein.dev/v1alpha1/namespaces/{ns}/kafkaclusters/{NAME}", {"spec": {"controllers": n}})


def voters_become(k8s, ns, want, timeout=240):
    """Waits for status.voters == want with the Voters condition True for this generation."""
    def done():
        kc = k8s.get("kafkaclusters", ns, NAME) or {}
        st = kc.get("status", {})
        cond = next((c for c in st.get("conditions", []) if c["type"] == "Voters"), {})
        ok = (st.get("voters") == want and cond.get("status") == "True"
              and cond.get("observedGeneration") == kc["metadata"]["generation"])
        return kc if ok else None
    return k8s.kube.wait(f"voters {want}", done, timeout=timeout, interval=1)


def test_controllers_go_1_3_5_3_one_voter_at_a_time_under_load(k8s):
    ns = k8s.namespace()
    config = {"default.replication.factor": "3", "offsets.topic.replication.factor": "3",
              "min.insync.replicas": "2", "broker.session.timeout.ms": "4000",
              "replica.lag.time.max.ms": "4000"}
    k8s.apply(cluster(ns, NAME, replicas=5, controllers=1, config=config))
    kc = k8s.wait_condition("kafkaclusters", ns, NAME, "Ready", timeout=240)
    voters_become(k8s, ns, [0])
    k8s.apply(topic(ns, "steady", 3, rf=3, cluster_name=NAME))
    k8s.wait_condition("topics", ns, "steady", "Ready", timeout=60)
    load = Load(kc, "steady", lambda: k8s.agent.logs(ns))
    steps = []
    for n in (3, 5, 3):
        set_controllers(k8s, ns, n)
        kc = voters_become(k8s, ns, list(range(n)))
        q = quorum(kc)
        assert sorted(v["id"] for v in q["voters"]) == list(range(n)), q
        steps.append(n)
        # A metadata change made between voter changes survives every later one.
        k8s.apply(topic(ns, f"after-{len(steps)}", 1, rf=3, cluster_name=NAME))
        k8s.wait_condition("topics", ns, f"after-{len(steps)}", "Ready", timeout=60)
    acked = load.finish()
    assert acked > 0
    notes = [e["note"] for e in k8s.events(ns, NAME) if e["reason"] == "VoterChange"]
    # One Event per single change: 1 -> 3 is two additions, 3 -> 5 two, 5 -> 3 two removals.
    assert sum("adding broker" in n for n in notes) >= 4, notes
    assert sum("removing voter" in n for n in notes) >= 2, notes
    listed = subprocess.run([skeinctl(), "--bootstrap-server", bootstrap(kc), "-o", "json", "topic", "list"],
                            check=True, capture_output=True, text=True).stdout
    names = [t["name"] for t in json.loads(listed)]
    assert all(f"after-{i}" in names for i in (1, 2, 3)), names
    # No pod restarted for any of it: the brokers' properties did not change.
    for i in range(5):
        pod = k8s.kube.get(f"/api/v1/namespaces/{ns}/pods/{NAME}-{i}")
        assert all(c.get("restartCount", 0) == 0 for c in pod["status"].get("containerStatuses", [])), pod["status"]

    # And down to one voter: removals until only the first is left.
    set_controllers(k8s, ns, 1)
    voters_become(k8s, ns, [0])
    operator_console_shows(k8s, ns)


def operator_console_shows(k8s, ns):
    """The operator's web console (its HTTP port): the cluster with its
    conditions and Events, and a snapshot read with the operator's client."""
    if k8s.operator is None:
        return  # an operator installed elsewhere (helm on a real cluster): its port is not ours
    base = f"http://127.0.0.1:{k8s.operator.http_port}/"

    def get(path):
        with urllib.request.urlopen(base + path, timeout=60) as r:
            return r.read().decode()

    assert "<nav" in get("")
    [entry] = [c for c in json.loads(get("api/clusters")) if c["id"] == f"{ns}/{NAME}"]
    assert entry["phase"] and any(c["type"] == "Voters" and c["status"] == "True" for c in entry["conditions"])
    assert any(e["reason"] == "VoterChange" for e in entry["events"]), entry["events"]
    snap = json.loads(get(f"api/snapshot?cluster={ns}/{NAME}"))
    assert sorted(b["id"] for b in snap["brokers"]) == [0, 1, 2, 3, 4], snap["errors"]
    assert [m["id"] for m in snap["quorum"]["members"] if m["role"] in ("leader", "voter")] == [0]
    assert any(t["name"] == "steady" and t["replication_factor"] == 3 for t in snap["topics"])


def test_a_voter_whose_volume_is_deleted_rejoins_as_a_new_voter(k8s):
    """Broker 2's claim and pod are deleted: it comes back on a new, empty
    volume with a new directory id, follows as an observer, and the operator
    removes the old voter and adds it under its new directory, the quorum
    keeping its majority throughout."""
    ns = k8s.namespace()
    k8s.apply(cluster(ns, NAME, replicas=3, controllers=3))
    kc = k8s.wait_condition("kafkaclusters", ns, NAME, "Ready", timeout=240)
    kc = voters_become(k8s, ns, [0, 1, 2])
    nil = "00000000-0000-0000-0000-000000000000"
    k8s.kube.wait("every voter's directory", lambda: all(v["directory_id"] != nil for v in quorum(kc)["voters"]),
                  timeout=60, interval=1)
    old = {v["id"]: v["directory_id"] for v in quorum(kc)["voters"]}
    k8s.kube.delete(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/data-{NAME}-2")
    k8s.kube.delete(f"/api/v1/namespaces/{ns}/pods/{NAME}-2")

    def replaced():
        voters = {v["id"]: v["directory_id"] for v in quorum(kc)["voters"]}
        return voters if sorted(voters) == [0, 1, 2] and voters[2] not in (old[2], nil) else None

    voters = k8s.kube.wait("voter 2 under a new directory", replaced, timeout=240, interval=2)
    assert {0: voters[0], 1: voters[1]} == {0: old[0], 1: old[1]}
    kc = voters_become(k8s, ns, [0, 1, 2])
    notes = [e["note"] for e in k8s.events(ns, NAME) if e["reason"] == "VoterChange"]
    assert any(f"removing voter 2 (directory {old[2]})" in n for n in notes), notes
    assert any(f"adding broker 2 (directory {voters[2]})" in n for n in notes), notes
