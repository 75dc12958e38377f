"""A cluster CA the user brings (`certificates.clusterCa.generate: false`),
as cert-manager or a company CA would: a Secret with `tls.crt`/`tls.key`
made by OpenSSL here. The operator signs the brokers' certificates with it and
never replaces it itself; a client that trusts only the company's CA
connects. The user puts a new CA in the Secret: it joins the trust bundle,
the brokers' certificates move to it, the old one leaves, and a client that
trusts only the new CA connects, with nothing restarted. A Secret that does not
exist is named in an Event and the status."""

import base64
import os
import subprocess
import tempfile
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

NAME = "corp"


def company_ca(d, name):
    """A CA key (PKCS#8 EC P-256) and self-signed certificate, by OpenSSL."""
    key, crt = os.path.join(d, f"{name}.key"), os.path.join(d, f"{name}.crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", crt, "-days", "30", "-subj", "/O=Example Corp/CN=Example Corp Root CA",
                    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
                   check=True, capture_output=True)
    return crt, key


def ca_secret(ns, crt, key):
    read = lambda p: base64.b64encode(open(p, "rb").read()).decode()
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "corp-ca", "namespace": ns},
            "type": "kubernetes.io/tls", "data": {"tls.crt": read(crt), "tls.key": read(key)}}


def cluster(ns, name, secret):
    return {
        "apiVersion": "skein.dev/v1alpha1", "kind": "KafkaCluster",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": 1, "controllers": 1, "storage": {"size": "1Gi"},
                 "config": {"offsets.topic.replication.factor": "1"},
                 "listeners": [{"name": "tls", "port": 9094, "tls": True}],
                 "certificates": {"clusterCa": {"generate": False, "secretName": secret}}},
    }


def connects(ns, ca_file, topic):
    conf = {"bootstrap.servers": f"{NAME}-0.{NAME}-brokers.{ns}.svc.cluster.local:9094",
            "security.protocol": "SSL", "ssl.ca.location": ca_file}
    a = AdminClient(conf)
    a.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    p = Producer({**conf, "acks": "all", "message.timeout.ms": 30000})
    p.produce(topic, value=b"x")
    return p.flush(30) == 0


def test_a_company_ca_signs_the_brokers_and_its_replacement_restarts_nothing(k8s):
    ns = k8s.namespace()
    d = tempfile.mkdtemp(prefix="skein-corp-")
    crt1, key1 = company_ca(d, "v1")
    k8s.apply(ca_secret(ns, crt1, key1))
    k8s.apply(cluster(ns, NAME, "corp-ca"))
    kc = k8s.wait_condition("kafkaclusters", ns, NAME, "Ready", timeout=240)
    cas = {c["name"]: c for c in kc["status"]["certificateAuthorities"]}
    assert cas["cluster"]["generations"] == [1], cas
    # A client that trusts only the company's CA, not the operator's bundle.
    assert connects(ns, crt1, "corp-1")
    pod = k8s.kube.get(f"/api/v1/namespaces/{ns}/pods/{NAME}-0")
    uid, restarts = pod["metadata"]["uid"], pod["status"]["containerStatuses"][0]["restartCount"]
    # The key never leaves: not in the operator's log, status or Events.
    assert "PRIVATE KEY" not in k8s.operator_logs(tail=10**8) and "PRIVATE KEY" not in str(kc["status"])

    # The company replaces its CA: the operator follows, restarting nothing.
    crt2, key2 = company_ca(d, "v2")
    start = time.time()
    k8s.apply(ca_secret(ns, crt2, key2))

    def replaced():
        st = k8s.get("kafkaclusters", ns, NAME).get("status", {})
        gens = {c["name"]: c["generations"] for c in st.get("certificateAuthorities", [])}
        return gens.get("cluster") == [2]
    k8s.kube.wait("the company's new CA alone in the bundle", replaced, timeout=180)
    print(f"company CA replaced in {time.time() - start:.1f} s")
    time.sleep(6)  # the agent's Secret sync (3 s) and the broker's reload (2 s)
    assert connects(ns, crt2, "corp-2")
    pod = k8s.kube.get(f"/api/v1/namespaces/{ns}/pods/{NAME}-0")
    assert (pod["metadata"]["uid"], pod["status"]["containerStatuses"][0]["restartCount"]) == (uid, restarts)
    reasons = [e.get("reason") for e in k8s.events(ns, NAME)]
    assert "CaReplacing" in reasons and "CaReplaced" in reasons, reasons


def test_a_missing_company_ca_is_named_and_nothing_is_signed(k8s):
    ns = k8s.namespace()
    k8s.apply(cluster(ns, "nocorp", "absent-ca"))

    def named():
        return any(e.get("reason") == "CaUnusable" and "absent-ca" in (e.get("note") or e.get("message") or "")
                   for e in k8s.events(ns, "nocorp"))
    k8s.kube.wait("a CaUnusable Event naming the Secret", named, timeout=60)
    st = k8s.get("kafkaclusters", ns, "nocorp").get("status", {})
    cas = {c["name"]: c for c in st.get("certificateAuthorities", [])}
    assert cas["cluster"]["phase"] == "Unusable", cas
    secrets = k8s.kube.get(f"/api/v1/namespaces/{ns}/secrets")["items"]
    assert not any(s["metadata"]["name"] == "nocorp-brokers" for s in secrets)
