"""The clients of a fault run, one process each, started inside the client's
network namespace. Each writes what it did as JSON lines for the checker:

  produce  attempts, acknowledgements and failures of one producer
  consume  what one member of a consumer group read, and its assignments
  read     a whole topic from offset 0 to the high watermark (the final log)
  create   a topic;  metadata  leaders and ISRs as one broker answers them
"""

import argparse
import json
import os
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def out_file(path):
    return open(path, "a", buffering=1)


def produce(a):
    conf = {
        "bootstrap.servers": a.bootstrap,
        "acks": a.acks,
        "enable.idempotence": a.idempotent == 1,
        "message.timeout.ms": 20000,
        "request.timeout.ms": 5000,
        "linger.ms": 5,
        "topic.metadata.refresh.interval.ms": 2000,
    }
    if a.idempotent != 1:
        conf["retries"] = 5
        conf["max.in.flight.requests.per.connection"] = 1
    p = Producer(conf)
    out = out_file(a.out)

    def delivered(err, msg):
        v = msg.value().decode()
        if err is None:
            out.write(json.dumps({"e": "ack", "v": v, "p": msg.partition(), "o": msg.offset()}) + "\n")
        else:
            out.write(json.dumps({"e": "fail", "v": v, "err": str(err)}) + "\n")

    seq = 0
    gap = 1.0 / a.rate
    next_at = time.monotonic()
    while not os.path.exists(a.stop_file):
        v = f"{a.id}-{seq}"
        out.write(json.dumps({"e": "send", "v": v}) + "\n")
        while True:
            try:
                p.produce(a.topic, v.encode(), on_delivery=delivered)
                break
            except BufferError:
                p.poll(0.05)
        seq += 1
        next_at += gap
        p.poll(max(0.0, next_at - time.monotonic()))
    left = p.flush(30)
    out.write(json.dumps({"e": "end", "sent": seq, "unflushed": left}) + "\n")


def consume(a):
    c = Consumer(
        {
            "bootstrap.servers": a.bootstrap,
            "group.id": a.group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": True,
            "auto.commit.interval.ms": 500,
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 1000,
            "topic.metadata.refresh.interval.ms": 2000,
        }
    )
    out = out_file(a.out)

    def assigned(_c, parts):
        out.write(json.dumps({"e": "assign", "parts": [[tp.topic, tp.partition] for tp in parts]}) + "\n")

    c.subscribe(a.topics.split(","), on_assign=assigned)
    while not os.path.exists(a.stop_file):
        m = c.poll(0.2)
        if m is None or m.error():
            continue
        out.write(
            json.dumps({"e": "read", "t": m.topic(), "p": m.partition(), "o": m.offset(), "v": m.value().decode()})
            + "\n"
        )
    try:
        c.commit(asynchronous=False)
    except KafkaException:
        pass
    c.close()
    out.write(json.dumps({"e": "end"}) + "\n")


def read(a):
    """Every record of a topic up to each partition's high watermark, read twice
    by two consumers, so that two readers of the final log are compared too."""
    out = out_file(a.out)
    for reader in ("final-a", "final-b"):
        c = Consumer(
            {
                "bootstrap.servers": a.bootstrap,
                "group.id": f"{reader}-{time.monotonic_ns()}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
        ends = {}
        for p in range(a.partitions):
            ends[p] = c.get_watermark_offsets(TopicPartition(a.topic, p), timeout=10)[1]
        c.assign([TopicPartition(a.topic, p, 0) for p in range(a.partitions)])
        pos = {p: 0 for p in ends}
        deadline = time.monotonic() + a.timeout
        while any(pos[p] < ends[p] for p in ends) and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            pos[m.partition()] = m.offset() + 1
            out.write(
                json.dumps(
                    {"r": reader, "t": a.topic, "p": m.partition(), "o": m.offset(), "v": m.value().decode()}
                )
                + "\n"
            )
        out.write(json.dumps({"r": reader, "t": a.topic, "ends": ends, "reached": pos}) + "\n")
        c.close()


def create(a):
    admin = AdminClient({"bootstrap.servers": a.bootstrap})
    configs = dict(kv.split("=", 1) for kv in a.config)
    f = admin.create_topics([NewTopic(a.topic, a.partitions, a.rf, config=configs)])
    f[a.topic].result(30)


def metadata(a):
    """Metadata v0 sent to exactly the broker at --bootstrap (a Kafka client
    would ask whichever broker it likes): partition -> leader and ISR."""
    import socket
    import struct

    host, port = a.bootstrap.rsplit(":", 1)
    name = a.topic.encode()
    body = struct.pack(">hhih", 3, 0, 1, 6) + b"faults" + struct.pack(">ih", 1, len(name)) + name
    with socket.create_connection((host, int(port)), timeout=3) as s:
        s.settimeout(3)
        s.sendall(struct.pack(">i", len(body)) + body)

        def exactly(n):
            buf = b""
            while len(buf) < n:
                chunk = s.recv(n - len(buf))
                if not chunk:
                    raise ConnectionError("closed")
                buf += chunk
            return buf

        (size,) = struct.unpack(">i", exactly(4))
        data = exactly(size)
    pos = 4  # correlation id

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return v[0] if len(v) == 1 else v

    def string():
        nonlocal pos
        n = take(">h")
        v = data[pos : pos + max(n, 0)].decode()
        pos += max(n, 0)
        return v

    for _ in range(take(">i")):  # brokers
        take(">i"), string(), take(">i")
    out = {}
    for _ in range(take(">i")):  # topics
        take(">h"), string()
        for _ in range(take(">i")):
            err, index, leader = take(">hii")
            for _ in range(take(">i")):
                take(">i")
            isr = sorted(take(">i") for _ in range(take(">i")))
            out[str(index)] = {"leader": leader, "isr": isr, "error": err}
    json.dump(out, sys.stdout)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("produce")
    s.add_argument("--bootstrap", required=True)
    s.add_argument("--topic", required=True)
    s.add_argument("--id", required=True)
    s.add_argument("--acks", default="all")
    s.add_argument("--idempotent", type=int, default=1)
    s.add_argument("--rate", type=float, default=100)
    s.add_argument("--stop-file", required=True)
    s.add_argument("--out", required=True)
    s = sub.add_parser("consume")
    s.add_argument("--bootstrap", required=True)
    s.add_argument("--topics", required=True)
    s.add_argument("--group", required=True)
    s.add_argument("--stop-file", required=True)
    s.add_argument("--out", required=True)
    s = sub.add_parser("read")
    s.add_argument("--bootstrap", required=True)
    s.add_argument("--topic", required=True)
    s.add_argument("--partitions", type=int, required=True)
    s.add_argument("--timeout", type=float, default=60)
    s.add_argument("--out", required=True)
    s = sub.add_parser("create")
    s.add_argument("--bootstrap", required=True)
    s.add_argument("--topic", required=True)
    s.add_argument("--partitions", type=int, default=3)
    s.add_argument("--rf", type=int, default=3)
    s.add_argument("--config", action="append", default=[])
    s = sub.add_parser("metadata")
    s.add_argument("--bootstrap", required=True)
    s.add_argument("--topic", required=True)
    a = ap.parse_args()
    {"produce": produce, "consume": consume, "read": read, "create": create, "metadata": metadata}[a.cmd](a)


if __name__ == "__main__":
    main()
