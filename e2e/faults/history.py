"""The history checker of a fault run: pure functions over what the clients
wrote (workload.py's JSON lines). It asserts what Kafka promises:

  lost        an acknowledged acks=all record is not in the final log at the
              partition and offset it was acknowledged with
  duplicated  an idempotent producer's record is in the final log twice
  phantom     a record read (by anyone) that no producer ever sent
  divergent   two readers saw different records at one offset (the two final
              readers, or a group member and the final log)
  dirty       a record read during the run that is gone from the final log
              (read past the final end of its partition)
  regressed   a group member read a partition's offsets out of order without
              a rebalance in between

acks=1 topics may lose acknowledged records (the leader acknowledged alone);
those are counted, not failed, as Kafka counts them.
"""

import json
from collections import defaultdict
from dataclasses import dataclass, field


def load_lines(path):
    out = []
    try:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    try:
                        out.append(json.loads(line))
                    except json.JSONDecodeError:
                        pass  # a line cut short by a killed client
    except FileNotFoundError:
        pass
    return out


@dataclass
class Producer:
    name: str
    topic: str
    acks: str
    idempotent: bool
    events: list


@dataclass
class Report:
    counts: dict = field(default_factory=dict)
    anomalies: dict = field(default_factory=lambda: defaultdict(list))
    # Anomalies allowed by the guarantees of the topic (acks=1 losses).
    tolerated: dict = field(default_factory=lambda: defaultdict(int))

    def add(self, kind, example):
        self.anomalies[kind].append(example)

    @property
    def ok(self):
        return not any(self.anomalies.values())

    def summary(self):
        lines = [f"{k}: {v}" for k, v in sorted(self.counts.items())]
        lines += [f"tolerated {k}: {v}" for k, v in sorted(self.tolerated.items())]
        for kind, ex in sorted(self.anomalies.items()):
            if ex:
                lines.append(f"ANOMALY {kind}: {len(ex)}, e.g. {ex[:5]}")
        return "\n".join(lines)


def check(producers, consumers, final, strict_topics):
    """producers: [Producer]; consumers: {name: events}; final: {topic: lines of
    workload `read`}; strict_topics: topics whose acknowledged records must all
    survive (acks=all). Returns a Report."""
    r = Report()
    sent = set()
    for p in producers:
        sent.update(e["v"] for e in p.events if e.get("e") == "send")

    # The final log, as the first final reader saw it; the second must agree.
    log = {}  # (t, p, o) -> v
    ends = {}  # (t, p) -> end offset reached
    for topic, lines in final.items():
        by_reader = defaultdict(dict)
        for e in lines:
            if "o" in e:
                by_reader[e["r"]][(topic, e["p"], e["o"])] = e["v"]
            elif "ends" in e and e["r"] == "final-a":
                for p, end in e["ends"].items():
                    ends[(topic, int(p))] = end
                    if e["reached"].get(p, 0) < end:
                        r.add("incomplete", {"t": topic, "p": int(p), "end": end, "reached": e["reached"].get(p)})
        a, b = by_reader.get("final-a", {}), by_reader.get("final-b", {})
        for k in set(a) | set(b):
            if a.get(k) != b.get(k):
                r.add("divergent", {"at": k, "final-a": a.get(k), "final-b": b.get(k)})
        log.update(a)
    r.counts["final records"] = len(log)

    where = defaultdict(list)  # value -> [(t, p, o)]
    for k, v in log.items():
        where[v].append(k)
        if v not in sent:
            r.add("phantom", {"at": k, "v": v})

    acked = failed = no_offset = 0
    for p in producers:
        strict = p.topic in strict_topics
        for e in p.events:
            if e.get("e") == "fail":
                failed += 1
            if e.get("e") != "ack":
                continue
            acked += 1
            if e["o"] is None or e["o"] < 0:
                # Acknowledged without an offset (librdkafka does so when the
                # broker says a retried batch was a duplicate of one written):
                # it must be in the partition, anywhere.
                no_offset += 1
                if not any(t == p.topic and part == e["p"] for t, part, _ in where.get(e["v"], [])):
                    example = {"v": e["v"], "acked in": (p.topic, e["p"]), "final": where.get(e["v"])}
                    if strict:
                        r.add("lost", example)
                    else:
                        r.tolerated["acks=1 lost"] += 1
                continue
            k = (p.topic, e["p"], e["o"])
            if log.get(k) != e["v"]:
                example = {"v": e["v"], "acked at": k, "final": log.get(k)}
                if strict:
                    r.add("lost", example)
                else:
                    r.tolerated["acks=1 lost"] += 1
        if p.idempotent:
            mine = [v for v in where if v.startswith(p.name + "-")]
            for v in mine:
                if len(where[v]) > 1:
                    r.add("duplicated", {"v": v, "at": where[v]})
    r.counts["sent"] = len(sent)
    r.counts["acknowledged"] = acked
    r.counts["acknowledged without an offset"] = no_offset
    r.counts["failed (not acknowledged)"] = failed

    reads = 0
    for name, events in consumers.items():
        last = {}  # (t, p) -> last offset read since the last assignment
        for e in events:
            if e.get("e") == "assign":
                last = {}
                continue
            if e.get("e") != "read":
                continue
            reads += 1
            tp = (e["t"], e["p"])
            k = (e["t"], e["p"], e["o"])
            if e["v"] not in sent:
                r.add("phantom", {"reader": name, "at": k, "v": e["v"]})
            if tp in last and e["o"] <= last[tp]:
                r.add("regressed", {"reader": name, "at": k, "after": last[tp]})
            last[tp] = e["o"]
            final_v = log.get(k)
            strict = e["t"] in strict_topics
            if final_v is None and e["o"] >= ends.get(tp, 0):
                if strict:
                    r.add("dirty", {"reader": name, "at": k, "v": e["v"]})
                else:
                    r.tolerated["acks=1 dirty"] += 1
            elif final_v is not None and final_v != e["v"]:
                if strict:
                    r.add("divergent", {"reader": name, "at": k, "read": e["v"], "final": final_v})
                else:
                    r.tolerated["acks=1 divergent"] += 1
    r.counts["read by the group"] = reads
    return r
