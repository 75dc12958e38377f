"""A test node agent: plays the kubelet (and the scheduler, kube-proxy's node
ports and a cloud's load balancers) for the API-server tier.

It registers three Nodes, one per zone (`topology.kubernetes.io/zone`
zone-a, -b, -c), each with its own loopback address as InternalIP, renews
their Leases, binds unscheduled pods to the node a scheduler would pick (the
zone with fewest matching pods under a topology spread constraint, else the
least loaded node), and runs each pod's containers as podman containers from
their image on one container network, where pods resolve each other by their
DNS names (network aliases). Init containers run first, in order, to
completion (retried while they fail, as the kubelet does). Volumes: a PersistentVolumeClaim is its bound hostPath volume's
directory (so data survives pod deletion); a ConfigMap is written to files; a
Secret too, and kept up to date while the pod runs (every few seconds, each
changed file replaced atomically), as the kubelet does. It
runs readiness probes, writes pod status back, restarts exited containers, and
finishes deletions as a kubelet does (gracePeriodSeconds=0 with a uid
precondition). Pod and Service DNS names are published to the host's
/etc/hosts (between marker lines) so processes on the host, like the operator
under test, reach brokers by the names a pod would use.

Services of type NodePort answer on every node's address at their node port,
and LoadBalancer ones get an ingress address (127.0.1.N) where they answer at
their port: a client on the host reaches brokers from "outside" the cluster.
A projected volume gets a ServiceAccount token bound to the pod (TokenRequest),
the API server's CA (kube-root-ca.crt) and the namespace, and a container
that mounts one reaches the API server as KUBERNETES_SERVICE_HOST/PORT say.

Test equipment, not product: all nodes share this host and one container
network; init containers run in the host's network (the API server listens on
this host's loopback only); no liveness probes.
"""

import base64
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from datetime import datetime, timezone

from kube import ApiError

# (name, zone, InternalIP): each node's node ports answer on its own address.
NODES = [("skein-e2e-node-a", "zone-a", "127.0.0.1"),
         ("skein-e2e-node-b", "zone-b", "127.0.0.2"),
         ("skein-e2e-node-c", "zone-c", "127.0.0.3")]
NODE_IP = {name: ip for name, _, ip in NODES}
ZONE_LABEL = "topology.kubernetes.io/zone"
LB_PREFIX = "127.0.1."
NETWORK = "skein-k8s"
DOMAIN = "cluster.local"
HOSTS = "/etc/hosts"
BEGIN, END = "# BEGIN skein-e2e-agent\n", "# END skein-e2e-agent\n"
# How often running pods' Secret volumes follow their Secrets (the kubelet's
# sync period is a minute; shorter keeps renewal tests short).
SECRET_SYNC_SECONDS = 3


def now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def podman(*args, check=True):
    r = subprocess.run(["podman", *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args[:3])}: {r.stderr.strip()}")
    return r.stdout.strip()


class Running:
    """One pod's container as the agent runs it."""

    def __init__(self, pod, container, ip):
        self.pod = pod
        self.uid = pod["metadata"]["uid"]
        self.container = container
        self.ip = ip
        self.ready = False
        self.restarts = 0
        self.started = now()
        self.last_status = None


class Forwarder:
    """TCP listeners on host addresses that pass each connection to a backend
    the agent picks at accept time (a Service's ready endpoint): node ports and
    load balancers, as kube-proxy and a cloud would give them."""

    def __init__(self):
        self.listeners = {}  # (ip, port) -> (socket, resolve)
        self.stop = threading.Event()

    def ensure(self, ip, port, resolve):
        key = (ip, port)
        if key in self.listeners:
            self.listeners[key] = (self.listeners[key][0], resolve)
            return
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((ip, port))
        s.listen(64)
        self.listeners[key] = (s, resolve)
        threading.Thread(target=self._accept, args=(key,), daemon=True, name=f"fwd-{ip}:{port}").start()

    def keep_only(self, keys):
        for key in [k for k in self.listeners if k not in keys]:
            s, _ = self.listeners.pop(key)
            s.close()

    def close(self):
        self.stop.set()
        self.keep_only(set())

    def _accept(self, key):
        while not self.stop.is_set() and key in self.listeners:
            s, resolve = self.listeners[key]
            try:
                conn, _ = s.accept()
            except OSError:
                return
            target = resolve()
            if target is None:
                conn.close()
                continue
            try:
                upstream = socket.create_connection(target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                conn.close()
                continue
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class Agent:
    def __init__(self, kube, workdir):
        self.kube = kube
        self.dir = workdir
        self.pods = {}  # uid -> Running
        self.inits = {}  # uid -> "running" | "done" (init containers, run by a thread each)
        self.forwarder = Forwarder()
        self.lb_addresses = {}  # (namespace, Service) -> ingress IP
        self.secret_volumes = {}  # (pod uid, volume) -> (namespace, Secret, host path)
        self.secrets_synced = 0.0
        self.stop = threading.Event()
        self.errors = []
        self.thread = threading.Thread(target=self._run, daemon=True, name="node-agent")
        self.lease_thread = threading.Thread(target=self._lease, daemon=True, name="node-lease")

    # -- lifecycle ---------------------------------------------------------
    def start(self):
        if NETWORK not in podman("network", "ls", "--format", "{{.Name}}").split():
            podman("network", "create", NETWORK)
        self._register()
        self.thread.start()
        self.lease_thread.start()
        return self

    def close(self):
        self.stop.set()
        self.thread.join(timeout=30)
        self.forwarder.close()
        for r in list(self.pods.values()):
            podman("rm", "-f", "-t", "0", r.container, check=False)
        self.pods.clear()
        self._publish({})

    # -- node --------------------------------------------------------------
    def _register(self):
        for name, zone, _ in NODES:
            node = {"apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                                          ZONE_LABEL: zone}}}
            try:
                self.kube.post("/api/v1/nodes", node)
            except ApiError as e:
                if e.code != 409:
                    raise
            self._node_status(name)

    def _node_status(self, name):
        cond = lambda t, s, r: {"type": t, "status": s, "reason": r, "lastHeartbeatTime": now(), "lastTransitionTime": now()}
        self.kube.merge(f"/api/v1/nodes/{name}/status", {"status": {
            "capacity": {"cpu": "16", "memory": "64Gi", "pods": "110"},
            "allocatable": {"cpu": "16", "memory": "64Gi", "pods": "110"},
            "addresses": [{"type": "InternalIP", "address": NODE_IP[name]}, {"type": "Hostname", "address": name}],
            "conditions": [cond("Ready", "True", "KubeletReady"), cond("MemoryPressure", "False", "Ok"),
                           cond("DiskPressure", "False", "Ok"), cond("PIDPressure", "False", "Ok")],
        }})

    def _lease(self):
        while not self.stop.wait(0 if not hasattr(self, "_leased") else 5):
            self._leased = True
            for name, _, _ in NODES:
                try:
                    renew = now().replace("Z", ".000000Z")
                    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                             "metadata": {"name": name, "namespace": "kube-node-lease"},
                             "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": renew}}
                    self.kube.apply(f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}", lease,
                                    manager="e2e-agent")
                    self._node_status(name)
                except Exception as e:  # the next renewal retries
                    self.errors.append(f"lease: {e}")

    # -- pods --------------------------------------------------------------
    def _run(self):
        while not self.stop.is_set():
            try:
                self._sync()
            except Exception as e:
                self.errors.append(f"sync: {e!r}")
            self.stop.wait(0.3)

    def _sync(self):
        pods = self.kube.get("/api/v1/pods")["items"]
        seen = set()
        for pod in pods:
            meta, spec = pod["metadata"], pod["spec"]
            uid = meta["uid"]
            seen.add(uid)
            if not spec.get("nodeName"):
                if not meta.get("deletionTimestamp"):
                    self._bind(pod, pods)
                continue
            if spec["nodeName"] not in NODE_IP:
                continue
            if meta.get("deletionTimestamp"):
                self._finish_deletion(pod)
                continue
            r = self.pods.get(uid)
            if r is None:
                if spec.get("initContainers") and self.inits.get(uid) != "done":
                    if uid not in self.inits:
                        self.inits[uid] = "running"
                        threading.Thread(target=self._run_inits, args=(pod,), daemon=True,
                                         name=f"init-{meta['name']}").start()
                    continue
                self._start_pod(pod)
                continue
            self._check(pod, r)
        for uid in [u for u in self.pods if u not in seen]:
            container = self.pods.pop(uid).container
            self._keep_log(container)
            podman("rm", "-f", "-t", "0", container, check=False)
        for uid in [u for u in self.inits if u not in seen]:
            self.inits.pop(uid, None)
        self._resync_secrets()
        self._publish({u: r for u, r in self.pods.items()}, pods)
        self._forward(pods)

    def _keep_log(self, container):
        """A removed container's output, kept for a failing test's diagnosis (a kubelet keeps it too)."""
        os.makedirs(os.path.join(self.dir, "container-logs"), exist_ok=True)
        with open(os.path.join(self.dir, "container-logs", f"{container}.log"), "ab") as f:
            subprocess.run(["podman", "logs", container], stdout=f, stderr=subprocess.STDOUT, check=False)

    def logs(self, namespace):
        """{container: output} of every container of pods in `namespace`, removed ones included."""
        out, prefix = {}, f"k8s_{namespace}_"
        kept = os.path.join(self.dir, "container-logs")
        for name in sorted(os.listdir(kept)) if os.path.isdir(kept) else []:
            if name.startswith(prefix):
                with open(os.path.join(kept, name), errors="replace") as f:
                    out[name[:-len(".log")] + " (removed)"] = f.read()
        for r in list(self.pods.values()):
            if r.container.startswith(prefix):
                out[r.container] = subprocess.run(["podman", "logs", r.container], stdout=subprocess.PIPE,
                                                  stderr=subprocess.STDOUT, text=True, errors="replace",
                                                  check=False).stdout
        return out

    def _bind(self, pod, pods):
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        body = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                "target": {"apiVersion": "v1", "kind": "Node", "name": self._schedule(pod, pods)}}
        try:
            self.kube.post(f"/api/v1/namespaces/{ns}/pods/{name}/binding", body)
            # Later pods of this round count it, as the scheduler's cache would.
            pod["spec"]["nodeName"] = body["target"]["name"]
        except ApiError as e:
            if e.code not in (404, 409):
                raise

    @staticmethod
    def _schedule(pod, pods):
        """The node for `pod`: under a zone spread constraint the zone with the
        fewest pods its selector matches, else the node with the fewest pods."""
        bound = [p for p in pods if p["spec"].get("nodeName") in NODE_IP and not p["metadata"].get("deletionTimestamp")]
        spread = [c for c in pod["spec"].get("topologySpreadConstraints") or [] if c.get("topologyKey") == ZONE_LABEL]
        def matches(p, selector):
            labels = p["metadata"].get("labels") or {}
            return p["metadata"]["namespace"] == pod["metadata"]["namespace"] and all(
                labels.get(k) == v for k, v in ((selector or {}).get("matchLabels") or {}).items())
        if spread:
            count = {zone: 0 for _, zone, _ in NODES}
            zone_of = {name: zone for name, zone, _ in NODES}
            for p in bound:
                if matches(p, spread[0].get("labelSelector")):
                    count[zone_of[p["spec"]["nodeName"]]] += 1
            zone = min(count, key=lambda z: (count[z], z))
            return next(name for name, z, _ in NODES if z == zone)
        load = {name: 0 for name, _, _ in NODES}
        for p in bound:
            load[p["spec"]["nodeName"]] += 1
        return min(load, key=lambda n: (load[n], n))

    def _run_inits(self, pod):
        """Runs the pod's init containers in order until each exits 0, then
        marks the pod for its main container (the sync loop starts it)."""
        meta = pod["metadata"]
        uid = meta["uid"]
        try:
            volumes = None
            while volumes is None and uid in self.inits:
                volumes = self._volumes(pod)
                if volumes is None:
                    time.sleep(1)
            for i, c in enumerate(pod["spec"]["initContainers"]):
                container = f"k8s_{meta['namespace']}_{meta['name']}_{uid[:8]}_init{i}"
                while uid in self.inits and not self.stop.is_set():
                    podman("rm", "-f", "-t", "0", container, check=False)
                    args = ["run", "--name", container, "--network", "host"]
                    args += self._container_args(pod, c, volumes)
                    server = urllib.parse.urlparse(self.kube.server)
                    args += ["-e", f"KUBERNETES_SERVICE_HOST={server.hostname}",
                             "-e", f"KUBERNETES_SERVICE_PORT={server.port}"]
                    args += [c["image"], *(c.get("args") or [])]
                    r = subprocess.run(["podman", *args], capture_output=True, text=True)
                    self._keep_log(container)
                    podman("rm", "-f", "-t", "0", container, check=False)
                    if r.returncode == 0:
                        break
                    self.errors.append(f"init {meta['name']}/{c['name']} exited {r.returncode}: {r.stderr.strip()[-300:]}")
                    time.sleep(2)
            if uid in self.inits:
                self.inits[uid] = "done"
        except Exception as e:
            self.errors.append(f"init {meta['name']}: {e!r}")
            self.inits.pop(uid, None)  # the next sync tries again

    def _finish_deletion(self, pod):
        meta = pod["metadata"]
        self.inits.pop(meta["uid"], None)
        r = self.pods.pop(meta["uid"], None)
        if r is not None:
            grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
            podman("stop", "-t", str(min(int(grace), 60)), r.container, check=False)
            self._keep_log(r.container)
            podman("rm", "-f", "-t", "0", r.container, check=False)
        self.kube.delete(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                         {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}})

    def _volume_dir(self, pod, volume):
        ns = pod["metadata"]["namespace"]
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]["claimName"]
            pvc = self.kube.get(f"/api/v1/namespaces/{ns}/persistentvolumeclaims/{claim}")
            pv_name = pvc.get("spec", {}).get("volumeName")
            if not pv_name or pvc.get("status", {}).get("phase") != "Bound":
                return None  # not bound yet: try again next round
            path = self.kube.get(f"/api/v1/persistentvolumes/{pv_name}")["spec"]["hostPath"]["path"]
            os.makedirs(path, exist_ok=True)
            return path
        if "configMap" in volume:
            cm = self.kube.get(f"/api/v1/namespaces/{ns}/configmaps/{volume['configMap']['name']}")
            path = os.path.join(self.dir, "pods", pod["metadata"]["uid"], volume["name"])
            shutil.rmtree(path, ignore_errors=True)
            os.makedirs(path)
            for k, v in (cm.get("data") or {}).items():
                with open(os.path.join(path, k), "w") as f:
                    f.write(v)
            os.chmod(path, 0o755)
            return path
        if "secret" in volume:
            path = os.path.join(self.dir, "pods", pod["metadata"]["uid"], volume["name"])
            if not self._sync_secret(ns, volume["secret"]["secretName"], path):
                return None  # not created yet: the kubelet waits too (ContainerCreating)
            self.secret_volumes[(pod["metadata"]["uid"], volume["name"])] = (ns, volume["secret"]["secretName"], path)
            return path
        if "emptyDir" in volume:
            path = os.path.join(self.dir, "pods", pod["metadata"]["uid"], volume["name"])
            os.makedirs(path, exist_ok=True)
            return path
        if "projected" in volume:
            return self._projected(pod, volume)
        raise RuntimeError(f"volume {volume['name']}: unsupported by the test agent")

    def _projected(self, pod, volume):
        """A projected volume: a ServiceAccount token bound to the pod (the
        TokenRequest API, as the kubelet asks), ConfigMap keys, the namespace."""
        meta = pod["metadata"]
        ns = meta["namespace"]
        path = os.path.join(self.dir, "pods", meta["uid"], volume["name"])
        os.makedirs(path, exist_ok=True)
        os.chmod(path, 0o755)
        files = {}
        for source in volume["projected"].get("sources") or []:
            if "serviceAccountToken" in source:
                t = source["serviceAccountToken"]
                sa = pod["spec"].get("serviceAccountName") or "default"
                body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                        "spec": {"expirationSeconds": t.get("expirationSeconds", 3600),
                                 "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": meta["name"],
                                                    "uid": meta["uid"]}}}
                if t.get("audience"):
                    body["spec"]["audiences"] = [t["audience"]]
                r = self.kube.post(f"/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token", body)
                files[t["path"]] = r["status"]["token"].encode()
            elif "configMap" in source:
                try:
                    cm = self.kube.get(f"/api/v1/namespaces/{ns}/configmaps/{source['configMap']['name']}")
                except ApiError as e:
                    if e.code == 404:
                        return None  # not published yet: the kubelet waits too
                    raise
                data = cm.get("data") or {}
                for item in source["configMap"].get("items") or [{"key": k, "path": k} for k in data]:
                    files[item["path"]] = data[item["key"]].encode()
            elif "downwardAPI" in source:
                for item in source["downwardAPI"].get("items") or []:
                    field = item.get("fieldRef", {}).get("fieldPath")
                    files[item["path"]] = {"metadata.namespace": ns, "metadata.name": meta["name"]}.get(field, "").encode()
            else:
                raise RuntimeError(f"volume {volume['name']}: projected source {list(source)} unsupported")
        for name, data in files.items():
            with open(os.path.join(path, name), "wb") as f:
                f.write(data)
            os.chmod(os.path.join(path, name), 0o644)
        return path

    def _sync_secret(self, ns, name, path):
        """Writes a Secret's keys as files under `path`, replacing changed ones
        atomically and removing keys it no longer has, as the kubelet keeps a
        Secret volume up to date. False when the Secret does not exist."""
        try:
            secret = self.kube.get(f"/api/v1/namespaces/{ns}/secrets/{name}")
        except ApiError as e:
            if e.code == 404:
                return False
            raise
        os.makedirs(path, exist_ok=True)
        os.chmod(path, 0o755)
        data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
        for k, v in data.items():
            f = os.path.join(path, k)
            try:
                with open(f, "rb") as old:
                    if old.read() == v:
                        continue
            except FileNotFoundError:
                pass
            tmp = f + ".tmp"
            with open(tmp, "wb") as out:
                out.write(v)
            os.chmod(tmp, 0o644)
            os.replace(tmp, f)
        for k in os.listdir(path):
            if k not in data:
                os.remove(os.path.join(path, k))
        return True

    def _resync_secrets(self):
        """Every few seconds, the running pods' Secret volumes follow their Secrets."""
        if time.monotonic() - self.secrets_synced < SECRET_SYNC_SECONDS:
            return
        self.secrets_synced = time.monotonic()
        running = set(self.pods)
        for (uid, volume), (ns, name, path) in list(self.secret_volumes.items()):
            if uid not in running:
                del self.secret_volumes[(uid, volume)]
                continue
            try:
                self._sync_secret(ns, name, path)
            except Exception as e:  # the next round retries
                self.errors.append(f"secret {ns}/{name}: {e!r}")

    def _volumes(self, pod):
        """{volume: host dir} of the pod, or None while one cannot be made yet."""
        spec = pod["spec"]
        sc = spec.get("securityContext") or {}
        volumes = {}
        for v in spec.get("volumes") or []:
            d = self._volume_dir(pod, v)
            if d is None:
                return None
            volumes[v["name"]] = d
        if sc.get("fsGroup") is not None:
            for v in spec.get("volumes") or []:
                if "persistentVolumeClaim" in v or "emptyDir" in v:
                    os.chown(volumes[v["name"]], sc.get("runAsUser", 0), sc["fsGroup"])
        return volumes

    @staticmethod
    def _container_args(pod, c, volumes):
        """`podman run` arguments of container `c`: user, mounts, environment, command."""
        meta, spec = pod["metadata"], pod["spec"]
        sc = spec.get("securityContext") or {}
        args = []
        if sc.get("runAsUser") is not None:
            args += ["--user", f"{sc['runAsUser']}:{sc.get('runAsGroup', sc['runAsUser'])}"]
        for m in c.get("volumeMounts") or []:
            args += ["-v", f"{volumes[m['name']]}:{m['mountPath']}" + (":ro" if m.get("readOnly") else "")]
        fields = {"metadata.name": meta["name"], "metadata.namespace": meta["namespace"],
                  "spec.nodeName": spec.get("nodeName", "")}
        for e in c.get("env") or []:
            if "value" in e:
                args += ["-e", f"{e['name']}={e['value']}"]
            elif e.get("valueFrom", {}).get("fieldRef"):
                args += ["-e", f"{e['name']}={fields.get(e['valueFrom']['fieldRef']['fieldPath'], '')}"]
        if c.get("command"):
            args += ["--entrypoint", json.dumps(c["command"])]
        return args

    def _start_pod(self, pod):
        meta, spec = pod["metadata"], pod["spec"]
        ns, name = meta["namespace"], meta["name"]
        c = spec["containers"][0]
        volumes = self._volumes(pod)
        if volumes is None:
            return
        hostname = spec.get("hostname") or name
        container = f"k8s_{ns}_{name}_{meta['uid'][:8]}"
        # Podman seeds a container's /etc/hosts from the host's, where this agent
        # publishes pod names for the test clients; a container would then keep
        # a peer's old address after the peer's restart (kubelet's pods resolve
        # peers through cluster DNS only). Its own file holds localhost; peers
        # resolve through the network's DNS and its aliases.
        hosts = os.path.join(self.dir, f"hosts-{container}")
        with open(hosts, "w") as f:
            f.write("127.0.0.1\tlocalhost\n::1\tlocalhost\n")
        os.chmod(hosts, 0o644)
        args = ["run", "-d", "--name", container, "--network", NETWORK, "--hostname", hostname,
                "--no-hosts", "-v", f"{hosts}:/etc/hosts:ro"]
        if spec.get("subdomain"):
            args += ["--network-alias", f"{hostname}.{spec['subdomain']}.{ns}.svc.{DOMAIN}"]
        args += self._container_args(pod, c, volumes)
        args += [c["image"], *(c.get("args") or [])]
        podman("rm", "-f", "-t", "0", container, check=False)
        podman(*args)
        ip = self._ip(container)
        self.pods[meta["uid"]] = Running(pod, container, ip)
        self._write_status(pod, self.pods[meta["uid"]])

    def _ip(self, container):
        info = json.loads(podman("inspect", container))[0]
        nets = info["NetworkSettings"]["Networks"]
        return nets[NETWORK]["IPAddress"]

    def _check(self, pod, r):
        state = json.loads(podman("inspect", "--format", "{{json .State}}", r.container, check=False) or "{}")
        if not state.get("Running"):
            # restartPolicy Always: the same container again, on the same volumes.
            podman("start", r.container, check=False)
            r.restarts += 1
            r.ip = self._ip(r.container)
            r.ready = False
        else:
            r.ready = self._probe(pod, r)
        self._write_status(pod, r)

    def _probe(self, pod, r):
        c = pod["spec"]["containers"][0]
        probe = (c.get("readinessProbe") or {}).get("httpGet")
        if probe is None:
            return True
        port = probe["port"]
        if isinstance(port, str):
            port = next(p["containerPort"] for p in c.get("ports", []) if p.get("name") == port)
        try:
            with urllib.request.urlopen(f"http://{r.ip}:{port}{probe.get('path', '/')}", timeout=1) as resp:
                return 200 <= resp.status < 400
        except Exception:
            return False

    def _write_status(self, pod, r):
        ready = "True" if r.ready else "False"
        c = pod["spec"]["containers"][0]
        status = {
            "phase": "Running", "hostIP": NODE_IP.get(pod["spec"].get("nodeName"), "127.0.0.1"), "podIP": r.ip, "podIPs": [{"ip": r.ip}], "startTime": r.started,
            "conditions": [
                {"type": "Initialized", "status": "True"},
                {"type": "Ready", "status": ready},
                {"type": "ContainersReady", "status": ready},
                {"type": "PodScheduled", "status": "True"},
            ],
            "containerStatuses": [{
                "name": c["name"], "image": c["image"], "imageID": "", "ready": r.ready, "started": True,
                "restartCount": r.restarts, "state": {"running": {"startedAt": r.started}},
            }],
        }
        key = json.dumps(status, sort_keys=True)
        if key == r.last_status:
            return
        meta = pod["metadata"]
        try:
            self.kube.merge(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status", {"status": status})
            r.last_status = key
        except ApiError as e:
            if e.code != 404:
                raise

    # -- node ports and load balancers -------------------------------------
    def _forward(self, pods):
        """NodePort Services answer on every node's address at their node
        port, LoadBalancer ones also on their ingress address at their port;
        each connection goes to a ready pod the selector matches."""
        keys = set()
        for svc in self.kube.get("/api/v1/services")["items"]:
            spec, meta = svc["spec"], svc["metadata"]
            if spec.get("type") not in ("NodePort", "LoadBalancer") or not spec.get("selector"):
                continue
            ns = meta["namespace"]
            lb_ip = None
            if spec["type"] == "LoadBalancer":
                lb_ip = self._load_balancer(svc)
            for port in spec.get("ports") or []:
                resolve = self._resolver(ns, spec["selector"], port.get("targetPort", port["port"]))
                if port.get("nodePort"):
                    for _, _, ip in NODES:
                        keys.add((ip, port["nodePort"]))
                        self._listen(ip, port["nodePort"], resolve)
                if lb_ip:
                    keys.add((lb_ip, port["port"]))
                    self._listen(lb_ip, port["port"], resolve)
        self.forwarder.keep_only(keys)

    def _listen(self, ip, port, resolve):
        try:
            self.forwarder.ensure(ip, port, resolve)
        except OSError as e:
            self.errors.append(f"listen {ip}:{port}: {e}")

    def _load_balancer(self, svc):
        """The Service's ingress address, given (as a cloud would) when it has none."""
        meta = svc["metadata"]
        key = (meta["namespace"], meta["name"])
        ingress = (svc.get("status", {}).get("loadBalancer", {}).get("ingress") or [{}])[0].get("ip")
        if ingress:
            self.lb_addresses[key] = ingress
            return ingress
        if key not in self.lb_addresses:
            self.lb_addresses[key] = f"{LB_PREFIX}{len(self.lb_addresses) + 1}"
        ip = self.lb_addresses[key]
        self.kube.merge(f"/api/v1/namespaces/{key[0]}/services/{key[1]}/status",
                        {"status": {"loadBalancer": {"ingress": [{"ip": ip}]}}})
        return ip

    def _resolver(self, ns, selector, target):
        """At each connection: (pod IP, port) of a ready pod the selector matches."""
        def resolve():
            for r in list(self.pods.values()):
                pod = r.pod
                if not r.ready or pod["metadata"]["namespace"] != ns:
                    continue
                labels = pod["metadata"].get("labels") or {}
                if not all(labels.get(k) == v for k, v in selector.items()):
                    continue
                port = target
                if isinstance(port, str):
                    c = pod["spec"]["containers"][0]
                    port = next((p["containerPort"] for p in c.get("ports") or [] if p.get("name") == port), None)
                if port is not None:
                    return (r.ip, port)
            return None
        return resolve

    # -- names on the host -------------------------------------------------
    def _publish(self, running, pods=()):
        lines = []
        by_uid = {p["metadata"]["uid"]: p for p in pods}
        ready_pods = []
        for uid, r in running.items():
            pod = by_uid.get(uid)
            if pod is None:
                continue
            spec, ns = pod["spec"], pod["metadata"]["namespace"]
            if spec.get("subdomain"):
                host = spec.get("hostname") or pod["metadata"]["name"]
                lines.append(f"{r.ip} {host}.{spec['subdomain']}.{ns}.svc.{DOMAIN}\n")
            if r.ready:
                ready_pods.append((pod, r))
        if pods:
            for svc in self.kube.get("/api/v1/services")["items"]:
                sel = svc["spec"].get("selector")
                if not sel or svc["spec"].get("clusterIP") == "None":
                    continue
                ns = svc["metadata"]["namespace"]
                for pod, r in ready_pods:
                    labels = pod["metadata"].get("labels") or {}
                    if pod["metadata"]["namespace"] == ns and all(labels.get(k) == v for k, v in sel.items()):
                        # The first ready endpoint stands in for the ClusterIP (no kube-proxy here).
                        lines.append(f"{r.ip} {svc['metadata']['name']}.{ns}.svc.{DOMAIN}\n")
                        break
        block = BEGIN + "".join(sorted(lines)) + END
        with open(HOSTS) as f:
            text = f.read()
        if BEGIN in text:
            head, rest = text.split(BEGIN, 1)
            tail = rest.split(END, 1)[1] if END in rest else ""
        else:
            head, tail = text if text.endswith("\n") else text + "\n", ""
        new = head + (block if running else "") + tail
        if new != text:
            # /etc/hosts may be a bind mount: rewrite in place rather than rename.
            with open(HOSTS, "w") as f:
                f.write(new)
