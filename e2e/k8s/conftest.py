"""Fixtures of the operator tests: a Kubernetes API server with the operator installed.

By default (`make test`) a real control plane runs on loopback (apiserver.py)
with the test node agent (agent.py) running pods as podman containers, the Helm
chart is installed, and the operator runs as a process holding the token of the
chart's ServiceAccount, so the chart's RBAC is all it gets.

With E2E_KUBECONFIG set, the same tests run against that cluster (kind, k3d, a
real one) where the chart's operator Deployment runs in-cluster; see README.
"""

import base64
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from kube import ApiError, Kube

ROOT = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("SKEIN_IMAGE", "localhost/skein:dev")
CHART = ROOT / "charts" / "skein-operator"
RELEASE, OPERATOR_NS = "skein-operator", "skein-system"


def operator_bin():
    explicit = os.environ.get("SKEIN_OPERATOR_BIN")
    if explicit:
        return explicit
    target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    return os.path.join(target, "release", "skein-operator")


class Harness:
    """The API server, the tools pointed at it, and the operator's process (local mode)."""

    def __init__(self):
        self.tools = subprocess.run([str(ROOT / "e2e/k8s/tools.sh")], check=True, capture_output=True,
                                    text=True).stdout.strip().splitlines()[-1]
        self.tmp = tempfile.mkdtemp(prefix="skein-e2e-")
        self.external = os.environ.get("E2E_KUBECONFIG")
        self.cp = self.agent = self.operator = None
        self.operators = []

    # -- set-up ------------------------------------------------------------
    def start(self, drift_seconds=2):
        self.drift_seconds = drift_seconds
        if self.external:
            self.kubeconfig = self.external
            server, token = self._external_credentials()
            self.kube = Kube(server, token)
            self.helm_install(replicas=1)
            return self
        from agent import Agent
        from apiserver import ControlPlane
        self.cp = ControlPlane().start()
        self.kube = self.cp.kube
        self.kubeconfig = self.cp.kubeconfig(self.cp.token, os.path.join(self.tmp, "admin.kubeconfig"))
        self._storage()
        self.agent = Agent(self.kube, self.tmp).start()
        # The chart's own Deployment stays at zero: the operator runs here as a process.
        self.helm_install(replicas=0)
        self.start_operator()
        return self

    def _external_credentials(self):
        out = self.kubectl("config", "view", "--minify", "--raw", "-o",
                           "jsonpath={.clusters[0].cluster.server} {.users[0].user.token}")
        server, _, token = out.partition(" ")
        return server, token

    def _storage(self):
        """A default StorageClass binding at once, and hostPath volumes for the claims."""
        self.kube.post("/apis/storage.k8s.io/v1/storageclasses", {
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "kubernetes.io/no-provisioner", "volumeBindingMode": "Immediate",
            "allowVolumeExpansion": True})
        for i in range(32):
            path = os.path.join(self.tmp, "volumes", f"pv-{i}")
            os.makedirs(path, exist_ok=True)
            self.kube.post("/api/v1/persistentvolumes", {
                "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"pv-{i}"},
                "spec": {"capacity": {"storage": "100Gi"}, "accessModes": ["ReadWriteOnce"],
                         "storageClassName": "standard", "persistentVolumeReclaimPolicy": "Retain",
                         "hostPath": {"path": path, "type": "DirectoryOrCreate"}}})

    def helm(self, *args, check=True):
        env = dict(os.environ, KUBECONFIG=self.kubeconfig, HELM_CACHE_HOME=os.path.join(self.tmp, "helm"),
                   HELM_CONFIG_HOME=os.path.join(self.tmp, "helm"), HELM_DATA_HOME=os.path.join(self.tmp, "helm"))
        r = subprocess.run([os.path.join(self.tools, "helm"), *args], capture_output=True, text=True, env=env,
                           timeout=300)
        if check and r.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)}: {r.stderr}")
        return r.stdout

    def kubectl(self, *args, check=True, input=None):
        r = subprocess.run([os.path.join(self.tools, "kubectl"), "--kubeconfig", self.kubeconfig, *args],
                           capture_output=True, text=True, timeout=120, input=input)
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {r.stderr}")
        return r.stdout

    def helm_install(self, replicas):
        repo, _, tag = IMAGE.rpartition(":")
        args = ["install", RELEASE, str(CHART), "--namespace", OPERATOR_NS, "--create-namespace",
                "--set", f"replicaCount={replicas}", "--set", f"image.repository={repo}", "--set", f"image.tag={tag}",
                "--set", "driftIntervalSeconds=2"]
        if self.external:
            args.append("--wait")
        else:
            # Helm 4 applies server-side by default; 1.20's typed apply refuses the CRDs'
            # CEL rules (x-kubernetes-validations, 1.25+) that a create silently drops.
            args.append("--server-side=false")
        self.install_output = self.helm(*args)

    def operator_token(self):
        """The token of the chart's ServiceAccount (its token Secret, made by the token controller)."""
        def token():
            sa = self.kube.get(f"/api/v1/namespaces/{OPERATOR_NS}/serviceaccounts/{RELEASE}")
            for ref in sa.get("secrets") or []:
                secret = self.kube.get(f"/api/v1/namespaces/{OPERATOR_NS}/secrets/{ref['name']}")
                if secret.get("data", {}).get("token"):
                    return base64.b64decode(secret["data"]["token"]).decode()
            return None
        return self.kube.wait("the operator's ServiceAccount token", token, timeout=60)

    def start_operator(self, identity="e2e-operator"):
        """Starts an operator process (another one joins the leader election)."""
        kubeconfig = self.cp.kubeconfig(self.operator_token(), os.path.join(self.tmp, "operator.kubeconfig"))
        log = open(os.path.join(self.tmp, f"{identity}.log"), "ab")  # a restart appends
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SKEIN_")}
        env.update(KUBECONFIG=kubeconfig, RUST_LOG="info,kube=warn,kube_client=error", POD_NAMESPACE=OPERATOR_NS)
        p = subprocess.Popen(
            [operator_bin(), "run", f"--http-addr=127.0.0.1:{port}", f"--broker-image={IMAGE}",
             f"--drift-interval-seconds={self.drift_seconds}", f"--identity={identity}",
             # The agent updates Secret volumes every 3 s and brokers reload within 2 s.
             "--secret-propagation-seconds=10"],
            stdout=log, stderr=subprocess.STDOUT, env=env)
        p.http_port, p.identity = port, identity
        self.operators.append(p)
        if self.operator is None:
            self.operator = p
        return p

    def operator_logs(self, tail=4000):
        if self.external:
            return self.kubectl("logs", "-n", OPERATOR_NS, f"deploy/{RELEASE}", "--tail=200", check=False)
        out = ""
        for identity in dict.fromkeys(p.identity for p in self.operators):  # a restart shares its log
            with open(os.path.join(self.tmp, f"{identity}.log"), errors="replace") as f:
                out += f"[{identity}]\n" + f.read()[-tail:]
        return out

    def close(self):
        for p in self.operators:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
        if self.agent is not None:
            self.agent.close()
        if self.cp is not None:
            self.cp.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- helpers for tests -------------------------------------------------
    def namespace(self):
        ns = f"e2e-{uuid.uuid4().hex[:6]}"
        self.kube.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        return ns

    def apply(self, obj):
        kind = obj["kind"]
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        if kind == "Secret":
            return self.kube.apply(f"/api/v1/namespaces/{ns}/secrets/{name}", obj)
        plural = {"KafkaCluster": "kafkaclusters", "Topic": "topics", "KafkaUser": "kafkausers"}[kind]
        return self.kube.apply(f"/apis/skein.dev/v1alpha1/namespaces/{ns}/{plural}/{name}", obj)

    def get(self, plural, ns, name):
        return self.kube.get_opt(f"/apis/skein.dev/v1alpha1/namespaces/{ns}/{plural}/{name}")

    def condition(self, obj, type_):
        for c in (obj or {}).get("status", {}).get("conditions", []):
            if c["type"] == type_:
                return c
        return None

    def wait_condition(self, plural, ns, name, type_, status="True", reason=None, timeout=120):
        def check():
            obj = self.get(plural, ns, name)
            c = self.condition(obj, type_)
            if c and c["status"] == status and (reason is None or c["reason"] == reason) \
                    and c.get("observedGeneration") == obj["metadata"].get("generation"):
                return obj
            return None
        try:
            return self.kube.wait(f"{plural}/{name} {type_}={status} {reason or ''}", check, timeout=timeout)
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- operator log:\n{self.operator_logs()}\n--- agent errors: "
                                 f"{(self.agent.errors[-5:] if self.agent else '')}") from None

    def operator_metrics(self, p):
        """The operator's /metrics text, or "" while it does not answer yet."""
        import urllib.request
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{p.http_port}/metrics", timeout=5) as r:
                return r.read().decode()
        except OSError:
            return ""

    def events(self, ns, name):
        evs = self.kube.get(f"/apis/events.k8s.io/v1/namespaces/{ns}/events")["items"]
        return [e for e in evs if e.get("regarding", {}).get("name") == name]


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def k8s():
    h = Harness()
    try:
        h.start()
    except BaseException:
        h.close()
        raise
    yield h
    h.close()
