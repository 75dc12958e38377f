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


def broker_binary() -> str:
    explicit = os.environ.get("SKEIN_BROKER_BIN")
    if explicit:
        return explicit
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return str(target / "release" / "skein-broker")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BrokerProcess:
    """One broker process; can be killed and restarted on the same data."""

    def __init__(self, data_dir: str, settings: dict):
        self.data_dir = data_dir
        self.port = free_port()
        self.settings = {"log.dirs": data_dir, "listeners": f"PLAINTEXT://127.0.0.1:{self.port}", **settings}
        self.proc = None
        self.log_path = os.path.join(data_dir, "..", f"broker-{self.port}.log")
        self.startup_seconds = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout=30):
        args = [broker_binary()]
        for k, v in self.settings.items():
            args += ["--set", f"{k}={v}"]
        log = open(self.log_path, "ab")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker exited with {self.proc.returncode}: {self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                self.startup_seconds = time.monotonic() - t0
                return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"broker did not listen within {timeout}s: {self.log()}")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")[-4000:]
        except OSError:
            return ""


@pytest.fixture
def broker_factory():
    """Starts brokers with extra settings; stops them and removes their data afterwards."""
    made = []
    root = tempfile.mkdtemp(prefix="skein-test-")

    def make(**settings):
        data = os.path.join(root, f"data{len(made)}")
        os.makedirs(data)
        b = BrokerProcess(data, {k.replace("_", "."): v for k, v in settings.items()})
        made.append(b)
        return b.start()

    yield make
    for b in made:
        b.stop()
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def broker(broker_factory):
    return broker_factory()
