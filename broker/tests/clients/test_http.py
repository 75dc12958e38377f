"""The broker's HTTP endpoint: Prometheus metrics that match what clients did,
probes that follow start-up and recovery, a JSON status, 404 for anything else."""

import json
import re
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def scrape(broker) -> dict:
    """The /metrics samples as {'name{labels}': value}."""
    status, text = broker.http("/metrics")
    assert status == 200, text
    samples = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, value = line.rsplit(" ", 1)
        samples[name] = float(value)
    return samples


def total(samples: dict, prefix: str) -> float:
    return sum(v for k, v in samples.items() if k.startswith(prefix))


def test_metrics_match_the_records_bytes_and_requests_of_real_clients(broker):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    a.create_topics([NewTopic("metered", 1, 1)])["metered"].result(30)
    p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 50})
    for i in range(500):
        p.produce("metered", value=b"v" * 100, key=str(i).encode())
    assert p.flush(30) == 0
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "metered-reader", "auto.offset.reset": "earliest"})
    c.subscribe(["metered"])
    seen = 0
    deadline = time.time() + 30
    while seen < 500 and time.time() < deadline:
        m = c.poll(1)
        if m is not None and not m.error():
            seen += 1
    c.close()
    assert seen == 500

    s = scrape(broker)
    assert s['kafka_server_brokertopicmetrics_messagesin_total{topic="metered"}'] == 500
    bytes_in = s['kafka_server_brokertopicmetrics_bytesin_total{topic="metered"}']
    # 500 values of 100 bytes plus keys and batch framing.
    assert 50_000 < bytes_in < 80_000
    # Every byte appended is in the log, and the consumer read each of them once.
    assert s['kafka_log_log_size{topic="metered",partition="0"}'] == bytes_in
    assert s['kafka_server_brokertopicmetrics_bytesout_total{topic="metered"}'] == bytes_in
    assert total(s, 'kafka_network_requestmetrics_requests_total{request="Produce"') >= 1
    assert total(s, 'kafka_network_requestmetrics_requests_total{request="Fetch"') >= 1
    assert total(s, 'kafka_network_requestmetrics_requests_total{request="CreateTopics"') == 1
    assert s['kafka_network_requestmetrics_totaltimems_count{request="FetchConsumer"}'] >= 1
    assert s['kafka_network_requestmetrics_totaltimems_count{request="Produce"}'] == total(
        s, 'kafka_network_requestmetrics_requests_total{request="Produce"'
    )
    hosted = len(a.list_topics(timeout=10).topics["metered"].partitions) + len(
        a.list_topics(timeout=10).topics["__consumer_offsets"].partitions
    )
    assert s["kafka_server_replicamanager_partitioncount"] == hosted
    assert s["kafka_server_replicamanager_leadercount"] == hosted
    assert s["kafka_server_replicamanager_underreplicatedpartitions"] == 0
    assert s["kafka_controller_kafkacontroller_activecontrollercount"] == 1
    assert s["kafka_controller_kafkacontroller_offlinepartitionscount"] == 0
    assert s["kafka_coordinator_group_groupmetadatamanager_numgroups"] == 1
    # The reader committed all 500 on close: no lag.
    assert s['kafka_consumergroup_lag{consumergroup="metered-reader",topic="metered",partition="0"}'] == 0


def test_produce_errors_are_counted_by_kafka_error_name(broker):
    a = AdminClient({"bootstrap.servers": broker.bootstrap})
    # One replica can never satisfy min.insync.replicas=2: acks=all is refused.
    a.create_topics([NewTopic("too-few", 1, 1, config={"min.insync.replicas": "2"})])["too-few"].result(30)
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "message.timeout.ms": 1500})
    errors = []
    p.produce("too-few", value=b"x", on_delivery=lambda err, msg: errors.append(err))
    p.flush(10)
    assert errors and errors[0] is not None
    s = scrape(broker)
    assert s['kafka_network_requestmetrics_errors_total{request="Produce",error="NOT_ENOUGH_REPLICAS"}'] >= 1
    assert 'kafka_server_brokertopicmetrics_messagesin_total{topic="too-few"}' not in s or (
        s['kafka_server_brokertopicmetrics_messagesin_total{topic="too-few"}'] == 0
    )


def test_probes_and_status_of_a_running_broker(broker):
    assert broker.http("/healthz") == (200, "ok\n")
    assert broker.http("/readyz") == (200, "ready\n")
    status, body = broker.http("/v1/status")
    assert status == 200
    st = json.loads(body)
    assert st["node_id"] == 0 and st["ready"] is True
    assert st["quorum"]["role"] == "leader" and st["quorum"]["leader"] == 0
    assert st["quorum"]["voters"] == [0]
    assert st["startup"]["done"] is True
    assert st["under_replicated"] == []


def test_unknown_paths_answer_404_and_the_endpoint_keeps_serving(broker):
    for path in ["/", "/metrics/extra", "/v1", "/v1/status/x", "/%2e%2e/etc/passwd", "/" + "a" * 5000]:
        status, body = broker.http(path)
        assert status == 404, (path, status, body)
    assert broker.http("/healthz")[0] == 200
    assert broker.alive


def test_readyz_waits_for_log_recovery_after_kill9(broker_factory):
    # Small segments, so an unclean restart has thousands of segments to re-check.
    b = broker_factory(log_segment_bytes="16384")
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    a.create_topics([NewTopic("big", 4, 1)])["big"].result(30)
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 20, "batch.size": 16000})
    for i in range(60_000):
        p.produce("big", value=b"r" * 1000, partition=i % 4)
        if i % 5000 == 0:
            p.poll(0)
    assert p.flush(60) == 0
    b.kill9()

    b.launch()
    seen_starting, seen_progress = False, None
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            status, body = b.http("/readyz", timeout=1)
        except OSError:
            time.sleep(0.005)
            continue
        if status == 503:
            seen_starting = True
            m = re.match(r"starting: (\d+) of (\d+) log segments", body)
            if m:
                seen_progress = (int(m.group(1)), int(m.group(2)))
        elif status == 200:
            break
        time.sleep(0.005)
    else:
        raise AssertionError("never became ready: " + b.log_tail())
    assert seen_starting, "readyz answered ready at once, while the log was being recovered"
    assert seen_progress is not None and seen_progress[1] > 3000, seen_progress
    st = json.loads(b.http("/v1/status")[1])
    assert st["startup"]["done"] and st["startup"]["segments_opened"] == st["startup"]["segments_total"]
    assert st["startup"]["recovered_segments"] > 0
    b.wait_ready()
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "after-recovery", "auto.offset.reset": "earliest"})
    lows_highs = [c.get_watermark_offsets(TopicPartition("big", i), timeout=10) for i in range(4)]
    c.close()
    assert sum(h - lo for lo, h in lows_highs) == 60_000

