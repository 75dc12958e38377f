"""A real Kubernetes control plane on loopback: etcd, kube-apiserver, kube-controller-manager.

The binaries come from e2e/k8s/build-kubernetes.sh (Debian's kubernetes 1.20.2
source, built once and cached). Authentication is a static token file: an admin
token (system:masters) for the harness; the operator under test gets the token
of its ServiceAccount, so RBAC applies to it.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time

from kube import Kube

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ControlPlane:
    def __init__(self):
        self.bin = subprocess.run([os.path.join(HERE, "build-kubernetes.sh")], check=True,
                                  capture_output=True, text=True).stdout.strip().splitlines()[-1]
        base = "/dev/shm" if os.path.isdir("/dev/shm") else None
        self.dir = tempfile.mkdtemp(prefix="skein-k8s-", dir=base)
        self.procs = []
        self.token = "skein-e2e-admin-token"
        self.port = free_port()
        self.server = f"https://127.0.0.1:{self.port}"

    def _spawn(self, name, args):
        log = open(os.path.join(self.dir, f"{name}.log"), "wb")
        p = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append((name, p))
        return p

    def log(self, name, tail=3000):
        try:
            with open(os.path.join(self.dir, f"{name}.log"), errors="replace") as f:
                return f.read()[-tail:]
        except OSError:
            return ""

    def start(self):
        d = self.dir
        subprocess.run(["openssl", "genrsa", "-out", f"{d}/sa.key", "2048"], check=True, capture_output=True)
        subprocess.run(["openssl", "rsa", "-in", f"{d}/sa.key", "-pubout", "-out", f"{d}/sa.pub"],
                       check=True, capture_output=True)
        with open(f"{d}/tokens.csv", "w") as f:
            f.write(f'{self.token},admin,admin,"system:masters"\n')
        etcd_port, peer_port = free_port(), free_port()
        self._spawn("etcd", [
            "etcd", "--name", "e2e", "--data-dir", f"{d}/etcd",
            "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-cluster", f"e2e=http://127.0.0.1:{peer_port}",
            "--log-level", "warn",
        ])
        self._spawn("kube-apiserver", [
            f"{self.bin}/kube-apiserver",
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1", f"--secure-port={self.port}", "--advertise-address=127.0.0.1",
            f"--cert-dir={d}/certs", f"--token-auth-file={d}/tokens.csv",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={d}/sa.pub", f"--service-account-signing-key-file={d}/sa.key",
            "--service-cluster-ip-range=10.0.0.0/16", "--allow-privileged=true",
            "--enable-priority-and-fairness=false", "--v=0",
        ])
        self.kube = Kube(self.server, self.token)
        self.kube.wait("the API server", lambda: self._healthy(), timeout=90)
        kubeconfig = self.kubeconfig(self.token, f"{d}/admin.kubeconfig")
        self._spawn("kube-controller-manager", [
            f"{self.bin}/kube-controller-manager",
            f"--kubeconfig={kubeconfig}", "--authentication-skip-lookup=true",
            "--leader-elect=false", "--use-service-account-credentials=true",
            f"--service-account-private-key-file={d}/sa.key",
            f"--root-ca-file={d}/certs/apiserver.crt",
            "--pvclaimbinder-sync-period=1s", "--port=0", "--secure-port=0",
            "--node-monitor-grace-period=40s", "--v=0",
        ])
        return self

    def _healthy(self):
        for name, p in self.procs:
            if p.poll() is not None:
                raise AssertionError(f"{name} exited: {self.log(name)}")
        try:
            return self.kube.request("GET", "/readyz", timeout=2) == "ok"
        except Exception:
            return False

    def kubeconfig(self, token, path):
        with open(path, "w") as f:
            f.write(f"""apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: {self.server}
    insecure-skip-tls-verify: true
users:
- name: user
  user:
    token: {token}
contexts:
- name: e2e
  context: {{cluster: e2e, user: user}}
current-context: e2e
""")
        return path

    def stop(self):
        for _, p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
        for _, p in reversed(self.procs):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
