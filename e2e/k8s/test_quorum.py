"""The metadata quorum's voters follow spec.controllers on the real API server
(see conftest.py): 1 -> 3 -> 5 -> 3 controllers under a steady producer and a
consumer group, one voter change at a time, each seen in status and Events;
no acknowledged record and no metadata change lost, no pod restarted. (A
change that would leave no majority is refused: operator/src/cluster/quorum.rs.)"""

import json
import subprocess

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
