#!/usr/bin/env python3
"""Records the request frames real Kafka clients send, for the fuzzers' seeds.

Starts a skein-broker whose advertised listener is a recording proxy, runs
confluent-kafka (idempotent lz4 producer, consumer group, admin client) and
kafka-python (gzip producer, consumer group) through it, and writes every
client-to-broker frame, length prefix included, to
broker/tests/data/client-frames.bin. The live-socket fuzzer
(broker/tests/fuzz.rs) mutates these frames; `make fuzz-seed` turns them into
the coverage-guided targets' seed corpora.

Run with the test venv: .venv/bin/python scripts/record-client-frames.py
"""

import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "broker/tests/data/client-frames.bin"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Recorder:
    """A TCP proxy that keeps the complete request frames each client sends."""

    def __init__(self, listen_port, broker_port):
        self.frames = []
        self.lock = threading.Lock()
        self.broker_port = broker_port
        self.server = socket.create_server(("127.0.0.1", listen_port))
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            client, _ = self.server.accept()
            upstream = socket.create_connection(("127.0.0.1", self.broker_port))
            threading.Thread(target=self.pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self.pump, args=(upstream, client, False), daemon=True).start()

    def pump(self, src, dst, record):
        pending = b""
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
                if record:
                    pending += data
                    while len(pending) >= 4:
                        (n,) = struct.unpack(">i", pending[:4])
                        if len(pending) < 4 + n:
                            break
                        with self.lock:
                            self.frames.append(pending[: 4 + n])
                        pending = pending[4 + n :]
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def confluent_workload(bootstrap):
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewPartitions,
                                       NewTopic, OffsetSpec)

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic("rec", 3, 1), NewTopic("rec-compact", 1, 1, config={"cleanup.policy": "compact"})]).values():
        f.result(10)
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "compression.type": "lz4", "linger.ms": 5})
    for i in range(300):
        p.produce("rec", key=f"k{i % 17}".encode(), value=os.urandom(i % 200), headers=[("h", b"v")])
        p.produce("rec-compact", key=f"k{i % 5}".encode(), value=b"x" * (i % 50))
    p.flush(10)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "rec-group", "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe(["rec"])
    got, deadline = 0, time.time() + 20
    while got < 300 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got += 1
    c.commit(asynchronous=False)
    c.committed([TopicPartition("rec", 0)], 5)
    c.close()
    c2 = Consumer({"bootstrap.servers": bootstrap, "group.id": "rec-848", "group.protocol": "consumer", "auto.offset.reset": "earliest"})
    c2.subscribe(["rec"])
    deadline = time.time() + 10
    while time.time() < deadline and c2.poll(0.5) is None:
        pass
    c2.close()
    admin.describe_configs([ConfigResource("TOPIC", "rec"), ConfigResource("BROKER", "0")])
    retention = ConfigEntry("retention.ms", "86400000", incremental_operation=AlterConfigOpType.SET)
    for f in admin.incremental_alter_configs([ConfigResource("TOPIC", "rec", incremental_configs=[retention])]).values():
        f.result(10)
    for f in admin.create_partitions([NewPartitions("rec", 4)]).values():
        f.result(10)
    admin.list_consumer_groups().result(10)
    admin.describe_consumer_groups(["rec-group"])["rec-group"].result(10)
    admin.describe_cluster().result(10)
    for f in admin.list_offsets({TopicPartition("rec", 0): OffsetSpec.latest()}).values():
        f.result(10)
    for f in admin.delete_topics(["rec-compact"]).values():
        f.result(10)


def kafka_python_workload(bootstrap):
    from kafka import KafkaConsumer, KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, compression_type="gzip", acks="all")
    for i in range(100):
        p.send("rec", key=b"kp%d" % i, value=b"v" * i)
    p.flush(10)
    p.close()
    c = KafkaConsumer("rec", bootstrap_servers=bootstrap, group_id="kp-group", auto_offset_reset="earliest", consumer_timeout_ms=5000)
    for n, _ in enumerate(c):
        if n >= 100:
            break
    c.commit()
    c.close()


def main():
    binary = os.environ.get("SKEIN_BROKER_BIN") or str(
        Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release/skein-broker"
    )
    broker_port, proxy_port = free_port(), free_port()
    data = tempfile.mkdtemp(prefix="skein-record-")
    recorder = Recorder(proxy_port, broker_port)
    proc = subprocess.Popen(
        [binary, "--set", f"log.dirs={data}", "--set", f"listeners=PLAINTEXT://127.0.0.1:{broker_port}",
         "--set", f"advertised.listeners=PLAINTEXT://127.0.0.1:{proxy_port}", "--set", "http.listener="],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", broker_port), 0.2).close()
                break
            except OSError:
                if time.time() > deadline:
                    sys.exit("broker did not start")
                time.sleep(0.05)
        bootstrap = f"127.0.0.1:{proxy_port}"
        confluent_workload(bootstrap)
        kafka_python_workload(bootstrap)
        time.sleep(1)
    finally:
        proc.terminate()
        proc.wait(30)
    with recorder.lock:
        frames = list(recorder.frames)
    OUT.write_bytes(b"".join(frames))
    keys = sorted({struct.unpack(">h", f[4:6])[0] for f in frames})
    print(f"{len(frames)} frames, {sum(map(len, frames))} bytes, API keys {keys} -> {OUT}")


if __name__ == "__main__":
    main()
