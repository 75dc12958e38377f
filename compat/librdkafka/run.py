#!/usr/bin/env python3
"""Runs librdkafka's own test suite against real skein-broker processes.

    compat/librdkafka/run.py --tests-dir DIR [--set fast|full] [--report FILE]

DIR is librdkafka's tests directory with test-runner built
(scripts/build-librdkafka-tests.sh prints it). expected.txt, next to this file,
lists every test the suite has that needs a broker: the ones expected to pass,
on one broker or on three (replication factor 3), and every one left out with
its reason. Each test runs in its own test-runner process with
TEST_KAFKA_VERSION=4.0.0, in full mode (no -Q), against brokers with Kafka's
defaults (group.initial.rebalance.delay.ms=3000 included) and the suite's
default scenario (num.partitions=4; replication factor 3 on the three-broker
cluster). The run fails if a
test expected to pass does not; a test listed as failing that passes is
reported so the list can be updated.
"""

import argparse
import concurrent.futures
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def broker_binary():
    explicit = os.environ.get("SKEIN_BROKER_BIN")
    if explicit:
        return explicit
    # The Makefile's static build (target/<triple>/release), else a plain release build.
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    built = sorted(target.glob("*-linux-*/release/skein-broker"), key=lambda p: p.stat().st_mtime)
    return str(built[-1] if built else target / "release/skein-broker")


class Brokers:
    """n brokers on loopback, each a voter of the metadata quorum when n > 1."""

    def __init__(self, n, root, auto_create=True, protocol="PLAINTEXT", extra=None, extra_args=()):
        self.procs, self.ports = [], [free_port() for _ in range(n)]
        controllers = [free_port() for _ in range(n)]
        voters = ",".join(f"{i}@127.0.0.1:{p}" for i, p in enumerate(controllers))
        for i in range(n):
            data = Path(root) / f"node{i}"
            data.mkdir(parents=True)
            # The suite's default scenario (tests/scenarios/default.json): four
            # partitions per auto-created topic, replication factor 3 on a cluster.
            settings = {
                "log.dirs": str(data),
                "listeners": f"{protocol}://127.0.0.1:{self.ports[i]}",
                "http.listener": "",
                "num.partitions": "4",
                "auto.create.topics.enable": "true" if auto_create else "false",
            }
            if n > 1:
                settings.update({
                    "node.id": str(i),
                    "listeners": f"{protocol}://127.0.0.1:{self.ports[i]},CONTROLLER://127.0.0.1:{controllers[i]}",
                    "controller.quorum.voters": voters,
                    "default.replication.factor": "3",
                })
            # A callable value is per broker: it is given the broker's index.
            settings.update({k: (v(i) if callable(v) else v) for k, v in (extra or {}).items()})
            args = [broker_binary(), *extra_args]
            for k, v in settings.items():
                args += ["--set", f"{k}={v}"]
            log = open(Path(root) / f"node{i}.log", "wb")
            self.procs.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT))
        for port in self.ports:
            deadline = time.time() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    break
                except OSError:
                    if time.time() > deadline:
                        raise RuntimeError(f"broker on {port} did not start")
                    time.sleep(0.05)
        if n > 1:
            time.sleep(3)  # every broker registered and unfenced

    @property
    def bootstrap(self):
        return ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def alive(self):
        return all(p.poll() is None for p in self.procs)

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()


def load_expected():
    """expected.txt rows: test, expectation (pass/fail/race/skip), brokers, set, reason."""
    rows = {}
    for line in (HERE / "expected.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        test, expect, brokers, which, *reason = line.split()
        # fast:NAME: in the fast set only the subtests whose name holds NAME run;
        # full:NAME: only those, always.
        which, _, subtests = which.partition(":")
        rows[test] = {"expect": expect, "brokers": brokers, "set": which, "subtests": subtests,
                      "reason": " ".join(reason)}
    return rows


STATE = re.compile(r'"(\d{4})_[^"]*": \{"name": "[^"]*", "state": "(\w+)"')


class Setup:
    """A value of expected.txt's brokers column: how many brokers, the suite's
    scenario (noautocreate: topics are never created by Metadata requests),
    the brokers' security, what the test clients add to their config, and
    whether the tests need the suite built with TLS and SASL."""

    def __init__(self, n, scenario="default", protocol="PLAINTEXT", broker=None, args=(), client="", secure=False):
        self.n, self.scenario, self.protocol = n, scenario, protocol
        self.broker, self.args, self.client, self.secure = broker or {}, args, client, secure

    def prepare(self, root):
        """For a TLS protocol: a CA and the brokers' certificate (OpenSSL's
        command line), the key store in the brokers' settings and the CA in
        the clients' config."""
        if not self.protocol.endswith("SSL"):
            return self.broker, self.client
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        ext = root / "san.ext"
        ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
        quiet = dict(check=True, capture_output=True, cwd=root)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
                        "-out", "ca.pem", "-days", "2", "-subj", "/CN=skein-compat-ca"], **quiet)
        subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
                        "-out", "server.csr", "-subj", "/CN=localhost"], **quiet)
        subprocess.run(["openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                        "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext"], **quiet)
        (root / "server.pem").write_bytes((root / "server.key").read_bytes() + (root / "server.crt").read_bytes())
        broker = {**self.broker, "ssl.keystore.location": str(root / "server.pem"),
                  "ssl.truststore.location": str(root / "ca.pem")}
        return broker, f"{self.client}ssl.ca.location={root / 'ca.pem'}\n"


# ACLs on (StandardAuthorizer, deny by default): the suite's anonymous
# PLAINTEXT client is the super user; its ACL subtests create, list and delete
# bindings for other principals.
ACL = {
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "super.users": "User:ANONYMOUS",
}
# Three brokers on SASL_SSL (the suite's OpenSSL against the broker's rustls)
# with SCRAM-SHA-512 and ACLs, as librdkafka's own CI runs them: the brokers
# log in to each other as `broker`, the super user; the suite logs in as
# `admin`, allowed what no ACL names (allow.everyone.if.no.acl.found), so
# 0081's authorized-operations subtests see its rights narrow when they add a
# binding for it. Connections re-authenticate every 10 s (KIP-368, for 0142).
SASL_USERS = ["--add-scram", "SCRAM-SHA-512=[name=admin,password=admin-secret]",
              "--add-scram", "SCRAM-SHA-256=[name=admin,password=admin-secret]",
              "--add-scram", "SCRAM-SHA-512=[name=broker,password=broker-secret]"]
SASL = {
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "super.users": "User:broker",
    "allow.everyone.if.no.acl.found": "true",
    "connections.max.reauth.ms": "10000",
    "inter.broker.listener.name": "SASL_SSL",
    "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
    "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config":
        'org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="broker-secret";',
}
SASL_CLIENT = ("security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
               "sasl.username=admin\nsasl.password=admin-secret\n")

# Three brokers in three racks named as 0101 expects (RACK<node.id>), with
# KIP-392's rack-aware replica selector.
RACKS = {
    "broker.rack": lambda i: f"RACK{i}",
    "replica.selector.class": "org.apache.kafka.common.replica.RackAwareReplicaSelector",
}

SETUPS = {
    "1": Setup(1),
    "3": Setup(3),
    "3-noautocreate": Setup(3, "noautocreate"),
    "1-acl": Setup(1, broker=ACL),
    "3-racks": Setup(3, broker=RACKS),
    "3-sasl": Setup(3, protocol="SASL_SSL", broker=SASL, args=SASL_USERS, client=SASL_CLIENT, secure=True),
}


def subtests_of(row, which):
    """The SUBTESTS a row runs with in the `which` set ("" for all)."""
    if row.get("set") == "full" or which == "fast":
        return row.get("subtests", "")
    return ""


def run_one(tests_dir, row, bootstrap, workdir, timeout, scenario, client="", subtests=""):
    """Runs one row of expected.txt: `NNNN`, or `NNNN+what` for a test run
    a second time on another setup."""
    test = row.split("+")[0]
    conf = Path(workdir) / f"test-{row}.conf"
    conf.write_text(f"metadata.broker.list={bootstrap}\ntest.topic.random=true\n{client}")
    report = Path(workdir) / f"report-{row}.json"
    env = dict(os.environ, TESTS=test, TEST_KAFKA_VERSION="4.0.0", RDKAFKA_TEST_CONF=str(conf),
               TEST_REPORT=str(report), LD_LIBRARY_PATH="../src:../src-cpp")
    if subtests:
        env["SUBTESTS"] = subtests
    env.pop("CI", None)  # CI=true makes the runner cut test concurrency and timeouts differently
    t0 = time.time()
    try:
        out = subprocess.run(["./test-runner", "-L", "-E", "-s", scenario], cwd=tests_dir, env=env, capture_output=True,
                             timeout=timeout)
        code, output = out.returncode, out.stdout + out.stderr
    except subprocess.TimeoutExpired as e:
        code, output = "timeout", (e.stdout or b"") + (e.stderr or b"")
    # One number may name several variants (0045_subscribe_update, ...): the test
    # passes when every variant that ran passed.
    states = [s for n, s in STATE.findall(report.read_text(errors="replace")) if n == test] if report.exists() else []
    ran = [s for s in states if s != "SKIPPED"]
    if not states:
        state = "NOREPORT"
    elif not ran:
        state = "SKIPPED"
    else:
        state = "PASSED" if all(s == "PASSED" for s in ran) else "FAILED"
    if code != 0 and state != "FAILED":
        state = f"EXIT-{code}"
    (Path(workdir) / f"output-{row}.log").write_bytes(output)
    return row, state, time.time() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tests-dir", required=True)
    ap.add_argument("--secure-tests-dir",
                    help="the suite built with TLS and SASL (build-librdkafka-tests.sh --secure): "
                         "without it, tests on a secure setup are not run")
    ap.add_argument("--set", choices=["fast", "full"], default="full")
    ap.add_argument("--only", help="comma-separated test numbers (ignores --set)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--report", help="write a Markdown table of the results here")
    ap.add_argument("--keep", action="store_true", help="keep the brokers' logs and the tests' outputs")
    args = ap.parse_args()

    expected = load_expected()
    if args.only:
        chosen = args.only.split(",")
    else:
        chosen = [t for t, r in expected.items() if r["expect"] != "skip" and (args.set == "full" or r["set"] == "fast")]
    workdir = tempfile.mkdtemp(prefix="skein-librdkafka-")
    results = {}
    try:
        for name, setup in SETUPS.items():
            group = [t for t in chosen if expected.get(t, {"brokers": "1"})["brokers"] == name]
            if not group:
                continue
            tests_dir = args.secure_tests_dir if setup.secure else args.tests_dir
            if not tests_dir:
                print(f"librdkafka: {len(group)} tests on {name} need the suite built with TLS and SASL "
                      "(--secure-tests-dir); not run", flush=True)
                continue
            broker_settings, client_conf = setup.prepare(Path(workdir) / f"pki-{name}")
            brokers = Brokers(setup.n, Path(workdir) / f"brokers-{name}", auto_create=setup.scenario != "noautocreate",
                              protocol=setup.protocol, extra=broker_settings, extra_args=setup.args)
            print(f"librdkafka: {len(group)} tests against {setup.n} broker(s) ({name}), scenario {setup.scenario}",
                  flush=True)
            try:
                with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
                    futures = [pool.submit(run_one, tests_dir, t, brokers.bootstrap, workdir, args.timeout,
                                           setup.scenario, client_conf,
                                           subtests_of(expected.get(t, {}), args.set))
                               for t in group]
                    for f in concurrent.futures.as_completed(futures):
                        test, state, secs = f.result()
                        results[test] = (state, secs)
                        print(f"  {test} {state:8} {secs:6.1f} s", flush=True)
                if not brokers.alive():
                    print(f"librdkafka: a broker died (logs in {workdir})")
                    results["broker"] = ("DIED", 0)
            finally:
                brokers.stop()
    finally:
        regressions, fixed = [], []
        for test, (state, _) in sorted(results.items()):
            want = expected.get(test, {"expect": "pass"})["expect"]
            if want == "pass" and state not in ("PASSED",):
                regressions.append(f"{test} {state}")
            if want == "fail" and state == "PASSED":
                fixed.append(test)
        passed = sum(1 for s, _ in results.values() if s == "PASSED")
        print(f"librdkafka: {passed} passed of {len(results)} run")
        if fixed:
            print(f"librdkafka: listed as failing but passed (update expected.txt): {' '.join(fixed)}")
        if args.report:
            lines = [
                "# librdkafka's test suite against Skein",
                "",
                f"Written by `make compat` ({time.strftime('%Y-%m-%d')}): librdkafka "
                f"{Path(args.tests_dir).resolve().parent.name}, full mode, TEST_KAFKA_VERSION=4.0.0, "
                "each test in its own test-runner process against real skein-broker processes. "
                f"{passed} passed of {len(results)} run; `compat/librdkafka/expected.txt` gives the reason "
                "for every test expected to fail and every test not run.",
                "",
                "| test | result | seconds | expected | reason |",
                "|---|---|---|---|---|",
            ]
            for test, (state, secs) in sorted(results.items()):
                r = expected.get(test, {"expect": "?", "reason": ""})
                lines.append(f"| {test} | {state} | {secs:.0f} | {r['expect']} | {r['reason']} |")
            Path(args.report).write_text("\n".join(lines) + "\n")
        if regressions:
            print(f"librdkafka: expected to pass but did not: {', '.join(regressions)} (outputs in {workdir})")
            sys.exit(1)
        if args.keep:
            print(f"librdkafka: outputs and broker logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
