"""A test node agent: plays the kubelet (and the scheduler) for the API-server tier.

It registers one Node and renews its Lease, binds unscheduled pods to it, and
runs each pod's containers as podman containers from their image on one
container network, where pods resolve each other by their DNS names (network
aliases). Volumes: a PersistentVolumeClaim is its bound hostPath volume's
directory (so data survives pod deletion); a ConfigMap is written to files; a
Secret too, and kept up to date while the pod runs (every few seconds, each
changed file replaced atomically), as the kubelet does. It
runs readiness probes, writes pod status back, restarts exited containers, and
finishes deletions as a kubelet does (gracePeriodSeconds=0 with a uid
precondition). Pod and Service DNS names are published to the host's
/etc/hosts (between marker lines) so processes on the host, like the operator
under test, reach brokers by the names a pod would use.

Test equipment, not product: one node, no liveness probes, no init containers.
"""

import base64
import json
import os
import shutil
import subprocess
import threading
import time
import urllib.request
from datetime import datetime, timezone

from kube import ApiError

NODE = "skein-e2e-node"
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
        self.uid = pod["metadata"]["uid"]
        self.container = container
        self.ip = ip
        self.ready = False
        self.restarts = 0
        self.started = now()
        self.last_status = None


class Agent:
    def __init__(self, kube, workdir):
        self.kube = kube
        self.dir = workdir
        self.pods = {}  # uid -> Running
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
        for r in list(self.pods.values()):
            podman("rm", "-f", "-t", "0", r.container, check=False)
        self.pods.clear()
        self._publish({})

    # -- node --------------------------------------------------------------
    def _register(self):
        node = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE, "kubernetes.io/os": "linux"}}}
        try:
            self.kube.post("/api/v1/nodes", node)
        except ApiError as e:
            if e.code != 409:
                raise
        self._node_status()

    def _node_status(self):
        cond = lambda t, s, r: {"type": t, "status": s, "reason": r, "lastHeartbeatTime": now(), "lastTransitionTime": now()}
        self.kube.merge(f"/api/v1/nodes/{NODE}/status", {"status": {
            "capacity": {"cpu": "16", "memory": "64Gi", "pods": "110"},
            "allocatable": {"cpu": "16", "memory": "64Gi", "pods": "110"},
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": NODE}],
            "conditions": [cond("Ready", "True", "KubeletReady"), cond("MemoryPressure", "False", "Ok"),
                           cond("DiskPressure", "False", "Ok"), cond("PIDPressure", "False", "Ok")],
        }})

    def _lease(self):
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{NODE}"
        while not self.stop.wait(0 if not hasattr(self, "_leased") else 5):
            self._leased = True
            try:
                renew = now().replace("Z", ".000000Z")
                lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                         "metadata": {"name": NODE, "namespace": "kube-node-lease"},
                         "spec": {"holderIdentity": NODE, "leaseDurationSeconds": 40, "renewTime": renew}}
                self.kube.apply(path, lease, manager="e2e-agent")
                self._node_status()
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
                    self._bind(pod)
                continue
            if spec["nodeName"] != NODE:
                continue
            if meta.get("deletionTimestamp"):
                self._finish_deletion(pod)
                continue
            r = self.pods.get(uid)
            if r is None:
                self._start_pod(pod)
                continue
            self._check(pod, r)
        for uid in [u for u in self.pods if u not in seen]:
            container = self.pods.pop(uid).container
            self._keep_log(container)
            podman("rm", "-f", "-t", "0", container, check=False)
        self._resync_secrets()
        self._publish({u: r for u, r in self.pods.items()}, pods)

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

    def _bind(self, pod):
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        body = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                "target": {"apiVersion": "v1", "kind": "Node", "name": NODE}}
        try:
            self.kube.post(f"/api/v1/namespaces/{ns}/pods/{name}/binding", body)
        except ApiError as e:
            if e.code not in (404, 409):
                raise

    def _finish_deletion(self, pod):
        meta = pod["metadata"]
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
        raise RuntimeError(f"volume {volume['name']}: unsupported by the test agent")

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

    def _start_pod(self, pod):
        meta, spec = pod["metadata"], pod["spec"]
        ns, name = meta["namespace"], meta["name"]
        c = spec["containers"][0]
        sc = spec.get("securityContext") or {}
        volumes = {}
        for v in spec.get("volumes") or []:
            d = self._volume_dir(pod, v)
            if d is None:
                return
            volumes[v["name"]] = d
        if sc.get("fsGroup") is not None:
            for v in spec.get("volumes") or []:
                if "persistentVolumeClaim" in v or "emptyDir" in v:
                    os.chown(volumes[v["name"]], sc.get("runAsUser", 0), sc["fsGroup"])
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
        if sc.get("runAsUser") is not None:
            args += ["--user", f"{sc['runAsUser']}:{sc.get('runAsGroup', sc['runAsUser'])}"]
        for m in c.get("volumeMounts") or []:
            args += ["-v", f"{volumes[m['name']]}:{m['mountPath']}" + (":ro" if m.get("readOnly") else "")]
        for e in c.get("env") or []:
            if "value" in e:
                args += ["-e", f"{e['name']}={e['value']}"]
            elif e.get("valueFrom", {}).get("fieldRef"):
                field = e["valueFrom"]["fieldRef"]["fieldPath"]
                args += ["-e", f"{e['name']}={ {'metadata.name': name, 'metadata.namespace': ns}.get(field, '') }"]
        if c.get("command"):
            args += ["--entrypoint", json.dumps(c["command"])]
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
            "phase": "Running", "hostIP": "127.0.0.1", "podIP": r.ip, "podIPs": [{"ip": r.ip}], "startTime": r.started,
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
