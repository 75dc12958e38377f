#!/usr/bin/env python3
"""The operator's benchmark on the local API-server tier (`make bench-operator`).

Measures: time from `kubectl apply` of a 3-broker KafkaCluster to Ready; time
from a KafkaCluster spec change to the desired objects applied (the ConfigMap
carrying the change), over several changes; and the operator's RSS and CPU
while it manages 10 clusters and 1,000 Topic resources (after they are all
Ready, over a steady minute with the default 60 s drift check). Writes
bench-results/operator.json.
"""

import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conftest import Harness, ROOT  # noqa: E402
from test_operator import cluster, topic  # noqa: E402


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    topics_total = int(os.environ.get("TOPICS", "1000"))
    clusters_total = int(os.environ.get("CLUSTERS", "10"))
    h = Harness()
    results = {}
    try:
        h.start(drift_seconds=60)
        pid = h.operator.pid
        ns = h.namespace()
        t = time.time()
        h.apply(cluster(ns, "demo"))
        h.wait_condition("kafkaclusters", ns, "demo", "Ready", timeout=300)
        results["apply_to_ready_3_brokers_s"] = round(time.time() - t, 2)

        latencies = []
        for i in range(10):
            c = cluster(ns, "demo")
            c["spec"]["config"]["log.retention.ms"] = str(3600000 + i)
            t = time.time()
            h.apply(c)
            h.kube.wait("ConfigMap updated", lambda: f"log.retention.ms={3600000 + i}" in
                        h.kube.get(f"/api/v1/namespaces/{ns}/configmaps/demo-config")["data"]["server.properties"],
                        timeout=30, interval=0.01)
            latencies.append(time.time() - t)
        results["spec_change_to_applied_ms"] = {
            "median": round(statistics.median(latencies) * 1000), "max": round(max(latencies) * 1000)}

        names = []
        for c in range(clusters_total - 1):
            cns = h.namespace()
            h.apply(cluster(cns, "small", replicas=1, controllers=1))
            names.append(cns)
        names.append(ns)
        for cns in names:
            h.wait_condition("kafkaclusters", cns, "small" if cns != ns else "demo", "Ready", timeout=600)
        t = time.time()
        per = topics_total // len(names)
        for cns in names:
            for j in range(per):
                h.apply(topic(cns, f"t-{j}", 1, rf=1, cluster_name="small" if cns != ns else "demo"))
        def all_ready():
            ready = 0
            for cns in names:
                for kt in h.kube.get(f"/apis/skein.dev/v1alpha1/namespaces/{cns}/topics")["items"]:
                    if any(c["type"] == "Ready" and c["status"] == "True" for c in kt.get("status", {}).get("conditions", [])):
                        ready += 1
            return ready >= per * len(names)
        h.kube.wait(f"{per * len(names)} topics Ready", all_ready, timeout=1800, interval=2)
        results["topics_created_to_all_ready_s"] = round(time.time() - t, 1)
        results["managed"] = {"clusters": len(names), "topics": per * len(names)}
        results["rss_mb_after_converging"] = round(rss_mb(pid), 1)
        c0, t0 = cpu_seconds(pid), time.time()
        peak = 0
        while time.time() - t0 < 60:
            peak = max(peak, rss_mb(pid))
            time.sleep(1)
        results["steady_minute"] = {"cpu_percent_of_one_core": round((cpu_seconds(pid) - c0) / (time.time() - t0) * 100, 1),
                                    "rss_mb_peak": round(peak, 1)}
    finally:
        h.close()
    print(json.dumps(results, indent=2))
    out = ROOT / "bench-results" / "operator.json"
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
