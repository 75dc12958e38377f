#!/usr/bin/env python3
"""KafkaUsers at scale on the local API-server tier (`make bench-users`).

Measures, on a secured one-broker cluster (TLS + SCRAM-SHA-512, ACL
authorizer): the time from applying a KafkaUser to a real client (librdkafka)
authenticating with its Secret and producing, over several users; the time for
USERS users (SCRAM, two ACLs and a quota each) to be Ready; and the operator's
RSS and CPU while it manages them (a steady minute, 60 s drift check). Writes
bench-results/users.json.
"""

import base64
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_operator import cpu_seconds, rss_mb  # noqa: E402
from conftest import Harness, ROOT  # noqa: E402
from test_operator import topic  # noqa: E402
from test_security import NAME, kafka_user, produce_errors, secured_cluster, topic_acl  # noqa: E402


def main():
    users_total = int(os.environ.get("USERS", "1000"))
    h = Harness()
    results = {}
    try:
        h.start(drift_seconds=60)
        pid = h.operator.pid
        ns = h.namespace()
        kc = secured_cluster(ns)
        kc["spec"].update(replicas=1, controllers=1)
        kc["spec"]["config"] = {"default.replication.factor": "1", "offsets.topic.replication.factor": "1",
                                "min.insync.replicas": "1"}
        h.apply(kc)
        h.wait_condition("kafkaclusters", ns, NAME, "Ready", timeout=300)
        h.apply(topic(ns, "bench", 1, rf=1, cluster_name=NAME))
        h.wait_condition("topics", ns, "bench", "Ready", timeout=120)
        d = tempfile.mkdtemp(prefix="skein-bench-users-")
        ca = h.kube.get(f"/api/v1/namespaces/{ns}/secrets/{NAME}-cluster-ca-cert")["data"]["ca.crt"]
        with open(f"{d}/ca.crt", "wb") as f:
            f.write(base64.b64decode(ca))
        host = f"{NAME}-0.{NAME}-brokers.{ns}.svc.cluster.local"

        latencies = []
        for i in range(10):
            name = f"first-{i}"
            t = time.time()
            h.apply(kafka_user(ns, name, "scram-sha-512", [topic_acl("bench", "Write", "Describe")]))

            def authenticated():
                s = h.kube.get_opt(f"/api/v1/namespaces/{ns}/secrets/{name}")
                if not s:
                    return False
                password = base64.b64decode(s["data"]["password"]).decode()
                conf = {"bootstrap.servers": f"{host}:9094", "security.protocol": "SASL_SSL",
                        "ssl.ca.location": f"{d}/ca.crt", "sasl.mechanism": "SCRAM-SHA-512",
                        "sasl.username": name, "sasl.password": password}
                return not produce_errors(conf, "bench", 1)
            h.kube.wait(f"{name} produces", authenticated, timeout=120, interval=0.05)
            latencies.append(time.time() - t)
        results["apply_to_authenticated_produce_ms"] = {
            "median": round(statistics.median(latencies) * 1000), "max": round(max(latencies) * 1000)}

        t = time.time()
        for i in range(users_total):
            h.apply(kafka_user(ns, f"u-{i}", "scram-sha-512",
                               [topic_acl(f"t-{i}", "Read", "Describe")], quotas={"producerByteRate": 1048576}))
        applied = time.time() - t

        def all_ready():
            items = h.kube.get(f"/apis/skein.dev/v1alpha1/namespaces/{ns}/kafkausers")["items"]
            return sum(any(c["type"] == "Ready" and c["status"] == "True"
                           for c in (u.get("status") or {}).get("conditions", [])) for u in items) \
                >= users_total + 10
        h.kube.wait(f"{users_total} users Ready", all_ready, timeout=3600, interval=2)
        results["users_applied_s"] = round(applied, 1)
        results["users_applied_to_all_ready_s"] = round(time.time() - t, 1)
        results["managed_users"] = users_total + 10
        results["rss_mb_after_converging"] = round(rss_mb(pid), 1)
        c0, t0 = cpu_seconds(pid), time.time()
        peak = 0
        while time.time() - t0 < 60:
            peak = max(peak, rss_mb(pid))
            time.sleep(1)
        results["steady_minute"] = {
            "cpu_percent_of_one_core": round((cpu_seconds(pid) - c0) / (time.time() - t0) * 100, 1),
            "rss_mb_peak": round(peak, 1)}
    finally:
        h.close()
    print(json.dumps(results, indent=2))
    out = ROOT / "bench-results" / "users.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
