"""A private network of hosts on this machine: one network namespace per host,
each joined by a veth pair to a bridge in a namespace of the lab's own, so no
packet ever reaches the machine's real interfaces. Faults are iptables DROP
rules inside a host's namespace; healing flushes them.

Needs root (ip netns, iptables). Names carry the process id, so two labs (a CI
run and a session's) never collide; `destroy` removes everything it made.
"""

import os
import shutil
import subprocess

SUBNET = "10.77"


def available() -> str:
    """'' when a lab can be built here, else why not."""
    if os.geteuid() != 0:
        return "needs root for network namespaces"
    for tool in ("ip", "iptables"):
        if not shutil.which(tool):
            return f"needs {tool}"
    return ""


def sh(*args, check=True, timeout=20):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip()}")
    return r


class Lab:
    """Hosts on one bridge: `hosts` names -> addresses 10.77.<n>.<10+i>."""

    def __init__(self, hosts, tag=None):
        self.tag = tag or f"skf{os.getpid() % 100000}"
        self.net = f"{SUBNET}.{os.getpid() % 200 + 1}"
        self.bridge_ns = f"{self.tag}-br"
        self.hosts = list(hosts)
        self.addr = {h: f"{self.net}.{10 + i}" for i, h in enumerate(self.hosts)}
        self.ns = {h: f"{self.tag}-{h}" for h in self.hosts}
        self.made = []

    def create(self):
        self.destroy()
        sh("ip", "netns", "add", self.bridge_ns)
        self.made.append(self.bridge_ns)
        sh("ip", "-n", self.bridge_ns, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.bridge_ns, "link", "set", "br0", "up")
        sh("ip", "-n", self.bridge_ns, "link", "set", "lo", "up")
        for i, h in enumerate(self.hosts):
            ns = self.ns[h]
            sh("ip", "netns", "add", ns)
            self.made.append(ns)
            # Both ends are made inside the lab: the root namespace never holds them.
            sh("ip", "-n", self.bridge_ns, "link", "add", f"v{i}", "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "-n", self.bridge_ns, "link", "set", f"v{i}", "master", "br0", "up")
            sh("ip", "-n", ns, "addr", "add", f"{self.addr[h]}/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        return self

    def destroy(self):
        for ns in [self.bridge_ns, *self.ns.values()]:
            sh("ip", "netns", "del", ns, check=False)
        self.made = []

    def exec_args(self, host, args):
        return ["ip", "netns", "exec", self.ns[host], *args]

    def popen(self, host, args, **kw):
        return subprocess.Popen(self.exec_args(host, args), **kw)

    def run(self, host, args, timeout=60):
        return subprocess.run(self.exec_args(host, args), capture_output=True, text=True, timeout=timeout)

    def _iptables(self, host, *rule):
        sh("ip", "netns", "exec", self.ns[host], "iptables", "-w", *rule)

    def cut(self, a, b):
        """No packet between hosts a and b, either way (both ends drop)."""
        for x, y in ((a, b), (b, a)):
            self._iptables(x, "-A", "INPUT", "-s", self.addr[y], "-j", "DROP")
            self._iptables(x, "-A", "OUTPUT", "-d", self.addr[y], "-j", "DROP")

    def split(self, side_a, side_b):
        """Every host of side_a cut from every host of side_b."""
        for a in side_a:
            for b in side_b:
                self.cut(a, b)

    def heal(self):
        for h in self.hosts:
            self._iptables(h, "-F", "INPUT")
            self._iptables(h, "-F", "OUTPUT")
