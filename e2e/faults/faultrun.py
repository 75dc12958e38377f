"""A fault run: three brokers and a client host in a private network (netlab),
producers and a consumer group (workload.py) running through a schedule of
faults, then convergence, the final log and the history checker.

Used by test_faults.py (a bounded run in `make test`) and chaos.py (`make chaos`).
"""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from history import Producer, check, load_lines
from netlab import Lab

ROOT = Path(__file__).resolve().parents[2]
WORKLOAD = str(Path(__file__).with_name("workload.py"))
BROKERS = ["b0", "b1", "b2"]
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"

# Timings short enough for a bounded run, long enough for a loaded 2-core machine.
SETTINGS = {
    "broker.heartbeat.interval.ms": "200",
    "broker.session.timeout.ms": "2500",
    "replica.lag.time.max.ms": "3000",
    "controller.quorum.election.timeout.ms": "400",
    "replica.fetch.backoff.ms": "100",
    "replica.fetch.wait.max.ms": "200",
    "offsets.topic.replication.factor": "3",
    "group.initial.rebalance.delay.ms": "0",
}


def release_binary(name, env):
    if os.environ.get(env):
        return os.environ[env]
    # The Makefile's static build (target/<triple>/release), else a plain release build.
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    built = sorted(target.glob(f"*-linux-*/release/{name}"), key=lambda p: p.stat().st_mtime)
    return str(built[-1] if built else target / "release" / name)


def python():
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


class Broker:
    def __init__(self, lab, host, node_id, root, voters, clock_file=None):
        self.lab, self.host, self.id = lab, host, node_id
        self.addr = lab.addr[host]
        self.data = os.path.join(root, host)
        os.makedirs(self.data, exist_ok=True)
        self.log_path = os.path.join(root, f"{host}.log")
        self.clock_file = clock_file
        self.proc = None
        self.settings = {
            "node.id": str(node_id),
            "log.dirs": self.data,
            "listeners": f"PLAINTEXT://{self.addr}:9092,CONTROLLER://{self.addr}:9093",
            "controller.quorum.voters": voters,
            "http.listener": "127.0.0.1:8080",
            **SETTINGS,
        }

    @property
    def bootstrap(self):
        return f"{self.addr}:9092"

    def start(self):
        args = [release_binary("skein-broker", "SKEIN_BROKER_BIN")]
        for k, v in self.settings.items():
            args += ["--set", f"{k}={v}"]
        env = dict(os.environ)
        if self.clock_file:
            # The wall clock of this broker alone can be jumped by rewriting the file.
            env.update(
                LD_PRELOAD=FAKETIME_LIB,
                FAKETIME_TIMESTAMP_FILE=self.clock_file,
                FAKETIME_CACHE_DURATION="1",
                DONT_FAKE_MONOTONIC="1",
            )
        log = open(self.log_path, "ab")
        self.proc = self.lab.popen(self.host, args, stdout=log, stderr=subprocess.STDOUT, env=env)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def kill9(self):
        self.signal(signal.SIGKILL)
        if self.proc:
            self.proc.wait(10)

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def status(self):
        """/v1/status, read inside the broker's namespace; None if it does not answer."""
        code = (
            "import sys,urllib.request;"
            "print(urllib.request.urlopen('http://127.0.0.1:8080/v1/status',timeout=2).read().decode())"
        )
        try:
            r = self.lab.run(self.host, [sys.executable, "-c", code], timeout=10)
        except subprocess.TimeoutExpired:
            return None
        if r.returncode != 0:
            return None
        try:
            return json.loads(r.stdout)
        except json.JSONDecodeError:
            return None

    def log(self):
        try:
            return Path(self.log_path).read_text(errors="replace")
        except OSError:
            return ""


@dataclass
class Outcome:
    report: object
    faults: list = field(default_factory=list)
    metadata_log_end: dict = field(default_factory=dict)
    terms_before: dict = field(default_factory=dict)
    terms_after: dict = field(default_factory=dict)
    converge_seconds: list = field(default_factory=list)
    evidence: str = ""


class FaultCluster:
    """Three brokers (b2's wall clock can jump) and a client host."""

    def __init__(self, root=None, partitions=3):
        self.root = root or tempfile.mkdtemp(prefix="skein-faults-")
        self.lab = Lab([*BROKERS, "c"]).create()
        self.partitions = partitions
        voters = ",".join(f"{i}@{self.lab.addr[h]}:9093" for i, h in enumerate(BROKERS))
        self.clock_file = os.path.join(self.root, "b2.clock")
        Path(self.clock_file).write_text("+0\n")
        faketime = os.path.exists(FAKETIME_LIB)
        self.brokers = [
            Broker(self.lab, h, i, self.root, voters, self.clock_file if (h == "b2" and faketime) else None)
            for i, h in enumerate(BROKERS)
        ]
        self.procs = []

    @property
    def bootstrap(self):
        return ",".join(b.bootstrap for b in self.brokers)

    def start(self, timeout=60):
        for b in self.brokers:
            b.start()
        self.wait(lambda: all((s := b.status()) and s["ready"] for b in self.brokers), timeout, "brokers ready")
        return self

    def client(self, *args, timeout=60):
        r = self.lab.run("c", [python(), WORKLOAD, *args], timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"workload {args[0]} failed: {r.stderr[-2000:]}")
        return r.stdout

    def spawn(self, *args):
        p = self.lab.popen("c", [python(), WORKLOAD, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.procs.append(p)
        return p

    def create_topic(self, name, **configs):
        cfg = []
        for k, v in configs.items():
            cfg += ["--config", f"{k.replace('_', '.')}={v}"]
        self.client("create", "--bootstrap", self.bootstrap, "--topic", name, "--partitions", str(self.partitions), *cfg)

    def metadata(self, topic, via=None):
        """partition -> {leader, isr} as broker `via` answers (else the first
        broker that answers), None if none does."""
        for addr in [via] if via else [b.bootstrap for b in self.brokers]:
            try:
                out = self.client("metadata", "--bootstrap", addr, "--topic", topic, timeout=10)
                md = {int(k): v for k, v in json.loads(out).items()}
                if md:
                    return md
            except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError):
                continue
        return None
    def statuses(self):
        return {b.host: b.status() for b in self.brokers}

    def quorum_leader(self):
        for s in self.statuses().values():
            if s and s["quorum"]["leader"] is not None:
                return s["quorum"]["leader"]
        return None

    @staticmethod
    def wait(pred, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if pred():
                    return
            except (TypeError, KeyError):
                pass
            time.sleep(0.3)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    def converged(self, topics):
        """One quorum leader all brokers agree on, and every partition led with a full ISR."""
        st = self.statuses()
        if any(s is None for s in st.values()):
            return False
        leaders = {s["quorum"]["leader"] for s in st.values()}
        if len(leaders) != 1 or None in leaders:
            return False
        for t in topics:
            for b in self.brokers:  # every broker's answer, not just one's
                md = self.metadata(t, via=b.bootstrap)
                if not md or any(p["leader"] < 0 or len(p["isr"]) != 3 for p in md.values()):
                    return False
        return True

    def converge(self, topics, timeout=60):
        t0 = time.monotonic()
        self.wait(lambda: self.converged(topics), timeout, "convergence (one quorum leader, full ISRs)")
        return time.monotonic() - t0

    def by_id(self, node_id):
        return self.brokers[node_id]

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for b in self.brokers:
            b.stop()
        self.lab.destroy()

    def evidence(self, dest):
        """Keeps the broker logs and client histories of a failed run."""
        os.makedirs(dest, exist_ok=True)
        for f in Path(self.root).glob("*.log"):
            shutil.copy(f, dest)
        for f in Path(self.root).glob("*.jsonl"):
            shutil.copy(f, dest)
        return dest


# ---- faults: each returns a description; `heal` undoes it -----------------


def leader_of(fc, topic, partition):
    md = fc.metadata(topic)
    return md[partition]["leader"] if md else -1


def fault_leader_cut(fc, rng):
    """The leader of a partition cut off from its peers; clients still reach it."""
    leader = leader_of(fc, "all", rng.randrange(fc.partitions))
    if leader < 0:
        return None
    me = fc.by_id(leader).host
    fc.lab.split([me], [h for h in BROKERS if h != me])
    return f"partition leader {me} cut off from its peers (clients still reach it)"


def fault_quorum_leader_cut(fc, rng):
    leader = fc.quorum_leader()
    if leader is None:
        return None
    me = fc.by_id(leader).host
    fc.lab.split([me], [h for h in BROKERS if h != me])
    return f"quorum leader {me} cut off from the other brokers"


def fault_minority_with_client(fc, rng):
    minority = rng.choice(BROKERS)
    majority = [h for h in BROKERS if h != minority]
    fc.lab.split([minority, "c"], majority)
    return f"split: {minority} and the clients | {majority}"


def fault_pause_leader(fc, rng):
    leader = leader_of(fc, "all", rng.randrange(fc.partitions))
    if leader < 0:
        return None
    fc.by_id(leader).signal(signal.SIGSTOP)
    return f"partition leader {fc.by_id(leader).host} paused (SIGSTOP)"


def fault_kill(fc, rng):
    b = fc.by_id(rng.randrange(3))
    b.kill9()
    b.start()
    return f"{b.host} killed (SIGKILL) and restarted"


def fault_clock_jump(fc, rng):
    if not fc.brokers[2].clock_file:
        return None
    Path(fc.clock_file).write_text("+600\n")
    return "b2's wall clock jumped 10 minutes ahead"


FAULTS = {
    "leader-cut": fault_leader_cut,
    "quorum-leader-cut": fault_quorum_leader_cut,
    "minority-split": fault_minority_with_client,
    "pause": fault_pause_leader,
    "kill": fault_kill,
    "clock-jump": fault_clock_jump,
}


def heal(fc):
    fc.lab.heal()
    for b in fc.brokers:
        b.signal(signal.SIGCONT)
        if not b.alive():
            b.start()
    Path(fc.clock_file).write_text("+0\n")


def run(fc, schedule, fault_seconds=8, calm_seconds=4, rate=150, seed=0, log=print):
    """Runs the workload through `schedule` (names of FAULTS), then checks the history."""
    rng = random.Random(seed)
    topics = {"all": "all", "one": "1"}
    fc.create_topic("all", min_insync_replicas=2)
    fc.create_topic("one", min_insync_replicas=2)
    fc.converge(topics)
    stop = os.path.join(fc.root, "stop")
    producers = [
        ("pi", "all", "all", 1),  # idempotent, acks=all
        ("pn", "all", "all", 0),  # not idempotent, acks=all
        ("p1", "one", "1", 0),  # acks=1
    ]
    for name, topic, acks, idem in producers:
        fc.spawn(
            "produce", "--bootstrap", fc.bootstrap, "--topic", topic, "--id", name, "--acks", acks,
            "--idempotent", str(idem), "--rate", str(rate), "--stop-file", stop,
            "--out", os.path.join(fc.root, f"{name}.jsonl"),
        )
    consumers = ["g1", "g2"]
    for name in consumers:
        fc.spawn(
            "consume", "--bootstrap", fc.bootstrap, "--topics", "all,one", "--group", "checkers",
            "--stop-file", stop, "--out", os.path.join(fc.root, f"{name}.jsonl"),
        )
    terms_before = {h: (s or {}).get("quorum", {}).get("term") for h, s in fc.statuses().items()}
    outcome = Outcome(report=None, terms_before=terms_before)
    time.sleep(calm_seconds)
    for name in schedule:
        what = FAULTS[name](fc, rng)
        if what is None:
            continue
        log(f"fault: {what}")
        outcome.faults.append(what)
        time.sleep(fault_seconds)
        heal(fc)
        took = fc.converge(topics, timeout=90)
        outcome.converge_seconds.append(round(took, 1))
        log(f"  healed; converged in {took:.1f}s")
        time.sleep(calm_seconds)
    Path(stop).write_text("stop\n")
    deadline = time.monotonic() + 60
    for p in fc.procs:
        try:
            p.wait(max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
    fc.converge(topics, timeout=90)
    final = {}
    for t in topics:
        out = os.path.join(fc.root, f"final-{t}.jsonl")
        fc.client("read", "--bootstrap", fc.bootstrap, "--topic", t, "--partitions", str(fc.partitions),
                  "--out", out, timeout=180)
        final[t] = load_lines(out)
    history = [Producer(n, t, a, i == 1, load_lines(os.path.join(fc.root, f"{n}.jsonl"))) for n, t, a, i in producers]
    reads = {n: load_lines(os.path.join(fc.root, f"{n}.jsonl")) for n in consumers}
    outcome.report = check(history, reads, final, {t for t, acks in topics.items() if acks == "all"})
    for h, s in fc.statuses().items():
        if s:
            outcome.metadata_log_end[h] = s["quorum"]["last_log_index"]
            outcome.terms_after[h] = s["quorum"]["term"]
    return outcome
