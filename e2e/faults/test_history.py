"""The history checker finds each anomaly it names (no network needed)."""

from history import Producer, check


def final(topic, records, ends):
    lines = []
    for reader in ("final-a", "final-b"):
        lines += [{"r": reader, "t": topic, "p": p, "o": o, "v": v} for (p, o), v in records.items()]
        lines.append({"r": reader, "t": topic, "ends": {str(p): e for p, e in ends.items()}, "reached": {str(p): e for p, e in ends.items()}})
    return {topic: lines}


def prod(events, name="a", topic="t", idempotent=True):
    return Producer(name, topic, "all", idempotent, events)


def sends(*vs):
    return [{"e": "send", "v": v} for v in vs]


def test_a_clean_history_passes():
    p = prod(sends("a-0", "a-1") + [{"e": "ack", "v": "a-0", "p": 0, "o": 0}, {"e": "ack", "v": "a-1", "p": 0, "o": 1}])
    c = {"c1": [{"e": "assign"}, {"e": "read", "t": "t", "p": 0, "o": 0, "v": "a-0"}]}
    r = check([p], c, final("t", {(0, 0): "a-0", (0, 1): "a-1"}, {0: 2}), {"t"})
    assert r.ok, r.summary()
    assert r.counts["acknowledged"] == 2


def test_an_acknowledged_record_missing_from_the_log_is_lost():
    p = prod(sends("a-0", "a-1") + [{"e": "ack", "v": "a-1", "p": 0, "o": 1}])
    r = check([p], {}, final("t", {(0, 0): "a-0"}, {0: 1}), {"t"})
    assert len(r.anomalies["lost"]) == 1


def test_acks_1_losses_are_counted_not_failed():
    p = prod(sends("a-0") + [{"e": "ack", "v": "a-0", "p": 0, "o": 0}], idempotent=False)
    r = check([p], {}, final("t", {}, {0: 0}), set())
    assert r.ok and r.tolerated["acks=1 lost"] == 1


def test_an_idempotent_record_written_twice_is_duplicated():
    p = prod(sends("a-0"))
    r = check([p], {}, final("t", {(0, 0): "a-0", (0, 1): "a-0"}, {0: 2}), {"t"})
    assert len(r.anomalies["duplicated"]) == 1


def test_a_record_nobody_sent_is_a_phantom():
    r = check([prod(sends("a-0"))], {}, final("t", {(0, 0): "a-0", (0, 1): "x-9"}, {0: 2}), {"t"})
    assert len(r.anomalies["phantom"]) == 1


def test_a_read_record_later_gone_is_dirty_and_a_changed_one_divergent():
    p = prod(sends("a-0", "a-1", "a-2"))
    c = {
        "c1": [
            {"e": "read", "t": "t", "p": 0, "o": 0, "v": "a-1"},
            {"e": "read", "t": "t", "p": 0, "o": 1, "v": "a-2"},
        ]
    }
    r = check([p], c, final("t", {(0, 0): "a-0"}, {0: 1}), {"t"})
    assert len(r.anomalies["divergent"]) == 1
    assert len(r.anomalies["dirty"]) == 1


def test_offsets_read_backwards_without_a_rebalance_regress():
    p = prod(sends("a-0", "a-1"))
    read = lambda o, v: {"e": "read", "t": "t", "p": 0, "o": o, "v": v}
    log = final("t", {(0, 0): "a-0", (0, 1): "a-1"}, {0: 2})
    r = check([p], {"c": [read(1, "a-1"), read(0, "a-0")]}, log, {"t"})
    assert len(r.anomalies["regressed"]) == 1
    r = check([p], {"c": [read(1, "a-1"), {"e": "assign"}, read(0, "a-0")]}, log, {"t"})
    assert r.ok, "a rebalance may re-deliver from the committed offset"


def test_the_two_final_readers_must_agree():
    p = prod(sends("a-0", "a-1"))
    f = final("t", {(0, 0): "a-0"}, {0: 1})
    f["t"] = [e if not (e.get("r") == "final-b" and "o" in e) else {**e, "v": "a-1"} for e in f["t"]]
    r = check([p], {}, f, {"t"})
    assert len(r.anomalies["divergent"]) == 1


def test_an_ack_without_an_offset_needs_the_record_somewhere_in_its_partition():
    p = prod(sends("a-0", "a-1") + [{"e": "ack", "v": "a-0", "p": 0, "o": None}, {"e": "ack", "v": "a-1", "p": 0, "o": None}])
    r = check([p], {}, final("t", {(0, 3): "a-0"}, {0: 4}), {"t"})
    assert len(r.anomalies["lost"]) == 1 and r.anomalies["lost"][0]["v"] == "a-1"
    assert r.counts["acknowledged without an offset"] == 2
