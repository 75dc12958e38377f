#!/usr/bin/env python3
"""Writes dashboards/skein.json, the Grafana dashboard over skein-broker's
/metrics (the Prometheus JMX exporter's names for Kafka's MBeans, so it also
reads a Kafka cluster scraped that way). Edit the panels here, then run it."""

import json
from pathlib import Path

DS = {"type": "prometheus", "uid": "${datasource}"}

# (title, unit, [(expr, legend)], kind)
PANELS = [
    ("Active controllers (must be 1)", "none", [("sum(kafka_controller_kafkacontroller_activecontrollercount)", "active")], "stat"),
    ("Offline partitions", "none", [("sum(kafka_controller_kafkacontroller_offlinepartitionscount)", "offline")], "stat"),
    ("Under-replicated partitions", "none", [("sum(kafka_server_replicamanager_underreplicatedpartitions)", "under-replicated")], "stat"),
    ("Consumer groups", "none", [("sum(kafka_coordinator_group_groupmetadatamanager_numgroups)", "groups")], "stat"),
    ("Records in per second, by topic", "short", [("sum by (topic) (rate(kafka_server_brokertopicmetrics_messagesin_total[1m]))", "{{topic}}")], "timeseries"),
    ("Bytes in per second, by topic", "Bps", [("sum by (topic) (rate(kafka_server_brokertopicmetrics_bytesin_total[1m]))", "{{topic}}")], "timeseries"),
    ("Bytes out per second, by topic", "Bps", [("sum by (topic) (rate(kafka_server_brokertopicmetrics_bytesout_total[1m]))", "{{topic}}")], "timeseries"),
    ("Requests per second, by API", "reqps", [("sum by (request) (rate(kafka_network_requestmetrics_requests_total[1m]))", "{{request}}")], "timeseries"),
    ("Errors per second, by API and error", "reqps", [("sum by (request, error) (rate(kafka_network_requestmetrics_errors_total[1m]))", "{{request}} {{error}}")], "timeseries"),
    ("Request time p99 (ms)", "ms", [
        ('histogram_quantile(0.99, sum by (le, request) (rate(kafka_network_requestmetrics_totaltimems_bucket{request=~"Produce|FetchConsumer|FetchFollower"}[5m])))', "{{request}}"),
    ], "timeseries"),
    ("Leaders and replicas, by broker", "none", [
        ("kafka_server_replicamanager_leadercount", "leaders {{instance}}"),
        ("kafka_server_replicamanager_partitioncount", "replicas {{instance}}"),
    ], "timeseries"),
    ("ISR shrinks and expands per second", "short", [
        ("sum(rate(kafka_server_replicamanager_isrshrinks_total[5m]))", "shrinks"),
        ("sum(rate(kafka_server_replicamanager_isrexpands_total[5m]))", "expands"),
    ], "timeseries"),
    ("Log size, by topic", "bytes", [("sum by (topic) (kafka_log_log_size)", "{{topic}}")], "timeseries"),
    ("Consumer lag, by group and topic", "short", [("sum by (consumergroup, topic) (kafka_consumergroup_lag)", "{{consumergroup}} {{topic}}")], "timeseries"),
    ("Open transactions, and last stable offset lag by topic", "short", [
        ("sum(kafka_coordinator_transaction_transactionstatemanager_numopentransactions)", "open transactions"),
        ("sum by (topic) (kafka_cluster_partition_laststableoffsetlag)", "LSO lag {{topic}}"),
    ], "timeseries"),
    ("Reassignment traffic (throttled), bytes per second", "Bps", [
        ("sum(rate(kafka_server_brokertopicmetrics_reassignmentbytesout_total[1m]))", "leaders sent"),
        ("sum(rate(kafka_server_brokertopicmetrics_reassignmentbytesin_total[1m]))", "followers fetched"),
    ], "timeseries"),
]


def panel(i, title, unit, targets, kind):
    stat = kind == "stat"
    w, h = (6, 4) if stat else (12, 8)
    x = (i % 4) * 6 if stat else ((i - 4) % 2) * 12
    y = 0 if stat else 4 + ((i - 4) // 2) * 8
    return {
        "id": i + 1,
        "type": kind,
        "title": title,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
        "targets": [{"refId": chr(65 + n), "datasource": DS, "expr": e, "legendFormat": leg} for n, (e, leg) in enumerate(targets)],
    }


def main():
    dashboard = {
        "title": "Skein brokers",
        "uid": "skein-brokers",
        "tags": ["skein", "kafka"],
        "schemaVersion": 39,
        "time": {"from": "now-1h", "to": "now"},
        "refresh": "30s",
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"}]},
        "panels": [panel(i, *p) for i, p in enumerate(PANELS)],
    }
    out = Path(__file__).with_name("skein.json")
    out.write_text(json.dumps(dashboard, indent=2) + "\n")


if __name__ == "__main__":
    main()
