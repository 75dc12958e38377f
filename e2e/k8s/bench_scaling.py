#!/usr/bin/env python3
"""The scaling benchmark on the local API-server tier (`make bench-scaling`).

Measures: the time to move BENCH_MIB (default 1024) MiB of partition data onto
two new brokers (3 -> 5) at a replication throttle of BENCH_THROTTLE_MIB
(default 16) MiB/s, and how close to the throttle the moves ran (bytes moved
over time moving, per new broker, against the throttle); then the operator's
RSS and CPU over a minute while it manages that cluster with 1,000 partitions
(a 960-partition topic beside the data topics). Writes bench-results/scaling.json.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_operator import cpu_seconds, rss_mb  # noqa: E402
from conftest import Harness, ROOT  # noqa: E402
from test_operator import cluster, topic  # noqa: E402
from test_scaling import Sampler, fill, scaling  # noqa: E402


def main():
    mib = int(os.environ.get("BENCH_MIB", "1024"))
    throttle = int(os.environ.get("BENCH_THROTTLE_MIB", "16")) << 20
    h = Harness()
    results = {"data_mib": mib, "throttle_bytes_per_second": throttle}
    try:
        h.start(drift_seconds=60)
        pid = h.operator.pid
        ns = h.namespace()
        config = {"default.replication.factor": "2", "offsets.topic.replication.factor": "3",
                  "offsets.topic.num.partitions": "10", "min.insync.replicas": "1"}
        kc = cluster(ns, "grow", replicas=3, config=config,
                     storage={"size": "20Gi", "whenScaled": "Delete", "whenDeleted": "Delete"},
                     rebalance={"throttleBytesPerSecond": throttle, "maxMovesInFlight": 8})
        h.apply(kc)
        kc = h.wait_condition("kafkaclusters", ns, "grow", "Ready", timeout=300)
        h.apply(topic(ns, "data", 10, rf=2, cluster_name="grow"))
        h.wait_condition("topics", ns, "data", "Ready", timeout=60)
        t = time.time()
        fill(kc, "data", mib << 20)
        results["fill_s"] = round(time.time() - t, 1)

        sampler = Sampler(h, ns, [3, 4])
        start = time.time()
        h.kube.merge(f"/apis/skein.dev/v1alpha1/namespaces/{ns}/kafkaclusters/grow/scale",
                     {"spec": {"replicas": 5}})
        h.kube.wait("the scale to 5 completed", lambda: scaling(h, ns).get("phase") == "Completed"
                    and scaling(h, ns).get("to") == 5, timeout=3600, interval=1)
        results["scale_3_to_5_s"] = round(time.time() - start, 1)
        sampler.finish()
        st = scaling(h, ns)
        results["moves"] = st["partitionsTotal"]
        results["bytes_moved"] = st["bytesTotal"]
        per_broker = {}
        for b in (3, 4):
            s = [x for x in sampler.bytes_in[b]]
            moving = [(t, v) for i, (t, v) in enumerate(s) if i > 0 and v > s[i - 1][1]]
            if len(moving) >= 2:
                span = moving[-1][0] - moving[0][0]
                got = moving[-1][1] - moving[0][1]
                per_broker[b] = {"bytes": int(s[-1][1]), "moving_s": round(span, 1),
                                 "rate_bytes_per_second": int(got / span) if span else None,
                                 "of_throttle": round(got / span / throttle, 3) if span else None}
        results["new_brokers"] = per_broker

        h.apply(topic(ns, "wide", 960, rf=3, cluster_name="grow"))
        h.wait_condition("topics", ns, "wide", "Ready", timeout=300)
        time.sleep(10)
        rss, cpu0, t0 = [], cpu_seconds(pid), time.time()
        while time.time() - t0 < 60:
            rss.append(rss_mb(pid))
            time.sleep(1)
        results["operator_1000_partitions"] = {
            "rss_mb_max": round(max(rss), 1),
            "cpu_percent_of_one_core": round(100 * (cpu_seconds(pid) - cpu0) / (time.time() - t0), 2),
        }
    finally:
        h.close()
    out = ROOT / "bench-results" / "scaling.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
