"""Fixtures that run a real skein-broker process on a free loopback port."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def release_binary(name: str, env: str) -> str:
    """A binary of the release build: $env if set, else under CARGO_TARGET_DIR."""
    explicit = os.environ.get(env)
    if explicit:
        return explicit
    # The Makefile's static build (target/<triple>/release), else a plain release build.
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    built = sorted(target.glob(f"*-linux-*/release/{name}"), key=lambda p: p.stat().st_mtime)
    return str(built[-1] if built else target / "release" / name)


def broker_binary() -> str:
    return release_binary("skein-broker", "SKEIN_BROKER_BIN")


_handed_out = set()


def free_port() -> int:
    """A free loopback port, never one this process handed out before: the
    kernel may offer a just-released port again, and two listeners of one
    broker (or of two) must not be given the same number."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


class BrokerProcess:
    """One broker process; can be killed and restarted on the same data."""

    def __init__(self, data_dir: str, settings: dict, env=None, prefix=None, args=None):
        self.data_dir = data_dir
        self.env = env or {}
        # Command-line arguments after the settings (--add-scram ...).
        self.args = args or []
        # A command the broker runs under, e.g. ["prlimit", "--nofile=300:300", "--"] (it execs).
        self.prefix = prefix or []
        self.port = free_port()
        self.http_port = free_port()
        self.settings = {
            "log.dirs": data_dir,
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "http.listener": f"127.0.0.1:{self.http_port}",
            **settings,
        }
        # With listeners given, the first one is where clients (and wait_ready) connect.
        self.port = int(self.settings["listeners"].split(",")[0].rsplit(":", 1)[1])
        self.proc = None
        self.log_path = os.path.join(data_dir, "..", f"broker-{self.port}.log")
        self.startup_seconds = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def http(self, path: str, timeout=5):
        """GET path on the broker's HTTP endpoint: (status, body text)."""
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=timeout) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def start(self, timeout=30):
        return self.launch().wait_ready(timeout)

    def launch(self):
        """Starts the process without waiting (cluster members need each other to start)."""
        args = [*self.prefix, broker_binary()]
        for k, v in self.settings.items():
            args += ["--set", f"{k}={v}"]
        args += self.args
        log = open(self.log_path, "ab")
        self._t0 = time.monotonic()
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env})
        return self

    def wait_ready(self, timeout=30):
        """Waits until the client listener accepts connections."""
        t0 = self._t0
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                self.startup_seconds = time.monotonic() - t0
                return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"broker did not listen within {timeout}s: {self.log_tail()}")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def pause(self):
        """SIGSTOP: the process keeps its sockets but answers nothing."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self) -> str:
        """The broker's whole log: a test looking for a line must not miss it
        because later lines (say, 50 partitions created) pushed it out."""
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self) -> str:
        """The end of the log, for error messages."""
        return self.log()[-4000:]


@pytest.fixture
def broker_factory():
    """Starts brokers with extra settings; stops them and removes their data afterwards."""
    made = []
    root = tempfile.mkdtemp(prefix="skein-test-")

    def make(env=None, prefix=None, args=None, **settings):
        data = os.path.join(root, f"data{len(made)}")
        os.makedirs(data)
        # Python names (log_dirs) become keys (log.dirs); keys given with dots stay as they are.
        keys = {k if "." in k else k.replace("_", "."): v for k, v in settings.items()}
        b = BrokerProcess(data, keys, env, prefix, args)
        made.append(b)
        return b.start()

    yield make
    for b in made:
        b.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def broker(broker_factory):
    return broker_factory()


# Timings short enough for tests: fencing after 1.5 s, ISR shrink after 2 s.
FAST_CLUSTER = {
    "broker.heartbeat.interval.ms": "100",
    "broker.session.timeout.ms": "1500",
    "replica.lag.time.max.ms": "2000",
    "controller.quorum.election.timeout.ms": "300",
    "replica.fetch.backoff.ms": "100",
    "replica.fetch.wait.max.ms": "200",
}


class Cluster:
    """Brokers 0..n-1 on loopback; every one a voter of the metadata quorum."""

    def __init__(self, root: str, n: int, settings: dict, voters=None):
        self.brokers = []
        controller_ports = [free_port() for _ in range(n)]
        # The first `voters` brokers vote (all by default); the others follow the metadata log as learners.
        voters = ",".join(f"{i}@127.0.0.1:{p}" for i, p in enumerate(controller_ports[: voters or n]))
        for i in range(n):
            data = os.path.join(root, f"node{i}")
            os.makedirs(data)
            b = BrokerProcess(data, {})
            b.settings.update(
                {
                    "node.id": str(i),
                    "listeners": f"PLAINTEXT://127.0.0.1:{b.port},CONTROLLER://127.0.0.1:{controller_ports[i]}",
                    "controller.quorum.voters": voters,
                    **FAST_CLUSTER,
                    # A callable setting is per broker: it is given the broker's index.
                    **{k: (v(i) if callable(v) else v) for k, v in settings.items()},
                }
            )
            self.brokers.append(b)

    def start(self):
        for b in self.brokers:
            b.launch()
        for b in self.brokers:
            b.wait_ready(60)
        return self

    @property
    def bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers if b.alive)

    def stop(self):
        for b in self.brokers:
            b.stop()


@pytest.fixture
def cluster_factory():
    """Starts local clusters; stops them and removes their data afterwards."""
    made = []
    root = tempfile.mkdtemp(prefix="skein-cluster-")

    def make(n=3, voters=None, **settings):
        c = Cluster(
            os.path.join(root, f"c{len(made)}"), n, {k.replace("_", "."): v for k, v in settings.items()}, voters
        )
        made.append(c)
        return c.start()

    yield make
    for c in made:
        c.stop()
    shutil.rmtree(root, ignore_errors=True)
