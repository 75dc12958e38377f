"""Configuration as a container gives it: SKEIN_* environment variables, named
listeners that advertise different addresses, Kafka's KRaft keys, and the
start-up errors that keep a broker off the wrong cluster's data."""

import os
import subprocess

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from conftest import broker_binary, free_port


def run_broker(args, env=None, timeout=20):
    """Runs a broker expected to refuse to start: (exit code, stderr)."""
    full_env = {**os.environ, **(env or {})}
    p = subprocess.run([broker_binary(), *args], env=full_env, capture_output=True, timeout=timeout, text=True)
    return p.returncode, p.stderr


def test_a_client_is_told_the_addresses_of_the_listener_it_connected_to(broker_factory):
    internal, external = free_port(), free_port()
    b = broker_factory(
        listeners=f"INTERNAL://127.0.0.1:{internal},EXTERNAL://127.0.0.1:{external}",
        **{
            "listener.security.protocol.map": "INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "advertised.listeners": f"INTERNAL://127.0.0.1:{internal},EXTERNAL://localhost:{external}",
            "inter.broker.listener.name": "INTERNAL",
        },
    )
    for port, host in [(internal, "127.0.0.1"), (external, "localhost")]:
        md = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}"}).list_topics(timeout=20)
        assert [(x.host, x.port) for x in md.brokers.values()] == [(host, port)]
    p = Producer({"bootstrap.servers": f"127.0.0.1:{external}"})
    p.produce("through-external", value=b"hello")
    assert p.flush(20) == 0
    c = Consumer({"bootstrap.servers": f"127.0.0.1:{external}", "group.id": "ext", "auto.offset.reset": "earliest"})
    c.subscribe(["through-external"])
    m = None
    for _ in range(30):
        m = c.poll(1)
        if m is not None and not m.error():
            break
    c.close()
    assert m is not None and m.value() == b"hello"


def test_environment_variables_set_properties_and_set_flags_override_them(broker_factory):
    env = {"SKEIN_NUM_PARTITIONS": "5", "SKEIN_LOG_RETENTION_MS": "1234567"}
    b = broker_factory(env=env, num_partitions="4")
    p = Producer({"bootstrap.servers": b.bootstrap})
    p.produce("auto-created", value=b"x")
    assert p.flush(20) == 0
    a = AdminClient({"bootstrap.servers": b.bootstrap})
    # --set num.partitions=4 beats SKEIN_NUM_PARTITIONS=5.
    assert len(a.list_topics(timeout=10).topics["auto-created"].partitions) == 4
    res = ConfigResource(ResourceType.BROKER, "0")
    entry = a.describe_configs([res])[res].result(10)["log.retention.ms"]
    assert entry.value == "1234567"


def test_an_unknown_skein_variable_is_a_startup_error(tmp_path):
    code, err = run_broker(["--set", f"log.dirs={tmp_path}"], env={"SKEIN_NUM_PARTITONS": "3"})
    assert code == 2
    assert "environment variable SKEIN_NUM_PARTITONS names unknown config `num.partitons`" in err


def test_ordinal_needs_a_statefulset_style_host_name(tmp_path):
    code, err = run_broker(["--set", f"log.dirs={tmp_path}", "--set", "node.id=${ORDINAL}"])
    if os.uname().nodename.rsplit("-", 1)[-1].isdigit():
        return  # this machine's name ends in -N: nothing to refuse
    assert code == 2
    assert "needs a host name ending in -N" in err


def test_a_controller_only_role_is_refused_with_the_reason(tmp_path):
    code, err = run_broker(["--set", f"log.dirs={tmp_path}", "--set", "process.roles=controller"])
    assert code == 2
    assert "no controller-only nodes" in err


def test_a_log_dir_of_another_cluster_or_node_is_refused(broker_factory):
    b = broker_factory(**{"cluster.id": "first-cluster"})
    b.stop()
    data = b.settings["log.dirs"]
    meta = open(os.path.join(data, "meta.properties")).read()
    assert "cluster.id=first-cluster" in meta and "node.id=0" in meta and "version=1" in meta
    common = ["--set", f"log.dirs={data}", "--set", f"listeners=PLAINTEXT://127.0.0.1:{free_port()}", "--set", "http.listener="]
    code, err = run_broker([*common, "--set", "cluster.id=second-cluster"])
    assert code != 0
    assert "belongs to cluster `first-cluster`, but cluster.id is `second-cluster`" in err
    code, err = run_broker([*common, "--set", "cluster.id=first-cluster", "--set", "node.id=7"])
    assert code != 0
    assert "belongs to node 0, but node.id is 7" in err
    # Nothing was written by the refused starts: the rightful owner still starts.
    b.start()
    assert AdminClient({"bootstrap.servers": b.bootstrap}).list_topics(timeout=10) is not None
