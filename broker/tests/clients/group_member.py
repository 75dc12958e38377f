"""A consumer-group member in its own process, for tests that SIGKILL members.

Prints one JSON line per event: {"assigned": [...]} from the assignment
callback, {"owned": [...]} whenever the partitions it owns change, and
{"record": [partition, offset]}.
Commits synchronously after each batch it has printed.
"""

import json
import sys

from confluent_kafka import Consumer

bootstrap, topic, group = sys.argv[1:4]
extra = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}


def on_assign(consumer, partitions):
    print(json.dumps({"assigned": sorted(p.partition for p in partitions)}), flush=True)


conf = {
    "bootstrap.servers": bootstrap,
    "group.id": group,
    "enable.auto.commit": False,
    "auto.offset.reset": "earliest",
    **extra,
}
if conf.get("group.protocol") != "consumer":
    # The consumer protocol (KIP-848) takes both from the group coordinator.
    conf = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500, **conf}
c = Consumer(conf)
c.subscribe([topic], on_assign=on_assign)
owned = None
while True:
    msgs = c.consume(500, 0.5)
    for m in msgs:
        if m.error() is None:
            print(json.dumps({"record": [m.partition(), m.offset()]}), flush=True)
    now = sorted(p.partition for p in c.assignment())
    if now != owned:
        owned = now
        print(json.dumps({"owned": owned}), flush=True)
    if msgs:
        c.commit(asynchronous=False)
