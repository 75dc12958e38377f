"""Skein in real containers: three brokers from the image on a podman network
form a cluster by their container names (INTERNAL listener), each publishing an
EXTERNAL listener on a host port; a host client writes with RF=3 and acks=all,
one container is killed and restarted on its volume, and nothing acknowledged
is lost. Needs root and podman (`make image` installs it and builds the image)."""

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[1]
IMAGE = os.environ.get("SKEIN_IMAGE", "localhost/skein:dev")
BROKERS = 3


def podman(*args, check=True, timeout=120):
    p = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)}: {p.stderr.strip()}")
    return p.stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(port, path, timeout=2):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return None, ""


class ContainerCluster:
    def __init__(self):
        self.tag = uuid.uuid4().hex[:8]
        self.network = f"skein-e2e-{self.tag}"
        self.kafka_ports = [free_port() for _ in range(BROKERS)]
        self.http_ports = [free_port() for _ in range(BROKERS)]

    def name(self, i):
        # The container name is also its host name: `-N` is its ordinal, so its node.id.
        return f"skein-{self.tag}-{i}"

    def start(self, i):
        voters = ",".join(f"{j}@{self.name(j)}:9093" for j in range(BROKERS))
        env = {
            "SKEIN_NODE_ID": "${ORDINAL}",
            "SKEIN_CLUSTER_ID": f"e2e-{self.tag}",
            "SKEIN_PROCESS_ROLES": "broker,controller",
            "SKEIN_LISTENERS": "INTERNAL://:9092,EXTERNAL://:9094,CONTROLLER://:9093",
            "SKEIN_LISTENER_SECURITY_PROTOCOL_MAP": "INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "SKEIN_ADVERTISED_LISTENERS": f"INTERNAL://${{HOSTNAME}}:9092,EXTERNAL://127.0.0.1:{self.kafka_ports[i]}",
            "SKEIN_INTER_BROKER_LISTENER_NAME": "INTERNAL",
            "SKEIN_CONTROLLER_QUORUM_VOTERS": voters,
            "SKEIN_DEFAULT_REPLICATION_FACTOR": "3",
            "SKEIN_MIN_INSYNC_REPLICAS": "2",
            "SKEIN_OFFSETS_TOPIC_REPLICATION_FACTOR": "3",
            "SKEIN_BROKER_SESSION_TIMEOUT_MS": "3000",
            "SKEIN_REPLICA_LAG_TIME_MAX_MS": "3000",
        }
        args = ["run", "-d", "--name", self.name(i), "--hostname", self.name(i), "--network", self.network]
        args += ["-p", f"127.0.0.1:{self.kafka_ports[i]}:9094", "-p", f"127.0.0.1:{self.http_ports[i]}:9644"]
        args += ["-v", f"{self.name(i)}:/var/lib/skein"]
        for k, v in env.items():
            args += ["-e", f"{k}={v}"]
        podman(*args, IMAGE)

    def wait_ready(self, i, timeout=90):
        deadline = time.time() + timeout
        while time.time() < deadline:
            status, _ = http(self.http_ports[i], "/readyz")
            if status == 200:
                return
            state = podman("inspect", "--format", "{{.State.Status}}", self.name(i), check=False)
            if state in ("exited", "stopped"):
                break
            time.sleep(0.25)
        raise AssertionError(f"{self.name(i)} not ready: {podman('logs', self.name(i), check=False)[-3000:]}")

    @property
    def bootstrap(self):
        return ",".join(f"127.0.0.1:{p}" for p in self.kafka_ports)

    def cleanup(self):
        for i in range(BROKERS):
            podman("rm", "-f", "-t", "0", self.name(i), check=False)
            podman("volume", "rm", "-f", self.name(i), check=False)
        podman("network", "rm", "-f", self.network, check=False)


@pytest.fixture
def containers():
    exists = subprocess.run(["podman", "image", "exists", IMAGE]).returncode == 0
    assert exists, f"image {IMAGE} is missing: run `make image`"
    c = ContainerCluster()
    podman("network", "create", c.network)
    try:
        yield c
    finally:
        c.cleanup()


def test_the_image_is_small_static_and_runs_as_uid_1000():
    assert subprocess.run(["podman", "image", "exists", IMAGE]).returncode == 0, f"run `make image` ({IMAGE})"
    info = json.loads(podman("image", "inspect", IMAGE))[0]
    # Three stripped static binaries (48.07 MB in all on 2026-12-04, with TLS, SASL,
    # ACLs and quotas): the bound catches an unstripped or debug build (hundreds of
    # MB) or a base image slipping in, with room for the code still to come.
    assert info["Size"] < 60_000_000, info["Size"]
    cfg = info["Config"]
    assert cfg["User"] == "1000:1000"
    assert cfg["Entrypoint"] == ["/usr/local/bin/skein-broker"]
    assert "/var/lib/skein" in cfg["Volumes"]
    assert {"9092/tcp", "9093/tcp", "9644/tcp"} <= set(cfg["ExposedPorts"])
    # The same binary runs the CLI: --version answers without a shell in the image.
    out = podman("run", "--rm", "--entrypoint", "/usr/local/bin/skeinctl", IMAGE, "--version")
    assert out.startswith("skeinctl ")


def test_dockerfile_ends_with_the_stage_make_image_builds():
    def stage(text):
        last = text[text.rindex("FROM scratch"):]
        lines = [ln for ln in last.splitlines() if ln.strip() and not ln.startswith("#")]
        return [ln.replace("--from=build ", "").replace("/image/rootfs", "rootfs") for ln in lines]

    assert stage((ROOT / "Dockerfile").read_text()) == stage((ROOT / "image" / "Containerfile").read_text())


def test_three_containers_form_a_cluster_and_lose_nothing_when_one_is_killed(containers):
    c = containers
    for i in range(BROKERS):
        c.start(i)
    for i in range(BROKERS):
        c.wait_ready(i)

    admin = AdminClient({"bootstrap.servers": c.bootstrap})
    md = admin.list_topics(timeout=30)
    # A host client is told the EXTERNAL addresses, on the published ports.
    assert sorted((b.host, b.port) for b in md.brokers.values()) == sorted(("127.0.0.1", p) for p in c.kafka_ports)
    admin.create_topics([NewTopic("orders", 6, 3)])["orders"].result(30)

    acked = []

    def produce(prefix, n):
        p = Producer({"bootstrap.servers": c.bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5})
        errors = []

        def done(err, msg):
            if err is None:
                acked.append(msg.value())
            else:
                errors.append(err)

        for i in range(n):
            p.produce("orders", value=f"{prefix}-{i}".encode(), key=str(i).encode(), on_delivery=done)
            if i % 500 == 0:
                p.poll(0)
        assert p.flush(60) == 0
        return errors

    assert produce("before", 3000) == []
    podman("kill", c.name(1))
    # Two of three replicas are left: min.insync.replicas=2 still takes acks=all.
    assert produce("during", 3000) == []
    podman("start", c.name(1))
    c.wait_ready(1)
    deadline = time.time() + 60
    while True:
        parts = admin.list_topics("orders", timeout=10).topics["orders"].partitions.values()
        if all(len(p.isrs) == 3 for p in parts):
            break
        assert time.time() < deadline, [(p.id, p.isrs) for p in parts]
        time.sleep(0.5)
    assert produce("after", 1000) == []

    consumer = Consumer({"bootstrap.servers": c.bootstrap, "group.id": "e2e-check", "auto.offset.reset": "earliest"})
    ends = {p: consumer.get_watermark_offsets(TopicPartition("orders", p), timeout=10)[1] for p in range(6)}
    consumer.assign([TopicPartition("orders", p, 0) for p in range(6)])
    got = []
    deadline = time.time() + 60
    while len(got) < sum(ends.values()) and time.time() < deadline:
        m = consumer.poll(1)
        if m is not None and not m.error():
            got.append(m.value())
    consumer.close()
    assert len(acked) == 7000
    assert set(acked) <= set(got), f"{len(set(acked) - set(got))} acknowledged records lost"
    # Idempotent producers: no record is written twice.
    assert len(got) == len(set(got)) == 7000
