"""Faults as a test suite: brokers in network namespaces of their own, faults by
iptables, SIGSTOP, SIGKILL and a clock jump, checked by the history checker.
A bounded run here (`make test`); longer ones in `make chaos` (chaos.py)."""

import os
import time

import pytest

from faultrun import BROKERS, run
from netlab import available

why_not = available()
if why_not and os.environ.get("CI"):
    raise RuntimeError(f"the fault tier cannot run in CI: {why_not}")
pytestmark = pytest.mark.skipif(bool(why_not), reason=why_not)


def quorum(fc):
    """host -> (leader, term) as each broker reports the metadata quorum."""
    out = {}
    for h, s in fc.statuses().items():
        if s:
            out[h] = (s["quorum"]["leader"], s["quorum"]["term"])
    return out


def metadata_log_end(fc):
    return max(s["quorum"]["last_log_index"] for s in fc.statuses().values() if s)


def test_the_standard_fault_run_loses_no_acknowledged_record(fault_cluster):
    fc = fault_cluster
    schedule = ["leader-cut", "quorum-leader-cut", "minority-split", "pause", "kill", "clock-jump"]
    out = run(fc, schedule, fault_seconds=7, calm_seconds=3)
    r = out.report
    print("\n".join(out.faults))
    print(r.summary())
    print("metadata log end:", out.metadata_log_end, "terms:", out.terms_before, "->", out.terms_after)
    print("convergence seconds:", out.converge_seconds)
    assert r.ok, r.summary()
    assert len(out.faults) == len(schedule), out.faults
    assert r.counts["acknowledged"] > 1000 and r.counts["read by the group"] > 1000, r.summary()
    # A few entries per real change (fencing, unfencing, elections, ISR changes,
    # group offsets topic creation), not a flood of refused proposals.
    assert max(out.metadata_log_end.values()) < 2000, out.metadata_log_end
    # Each fault that takes the quorum leader away costs an election or two; a
    # voter that merely lost contact costs none.
    assert max(out.terms_after.values()) - min(t for t in out.terms_before.values() if t) <= 8


def test_a_voter_cut_off_and_back_does_not_depose_the_leader(fault_cluster):
    fc = fault_cluster
    before = quorum(fc)
    leader = next(iter(before.values()))[0]
    follower = next(b for b in fc.brokers if b.id != leader)
    others = [h for h in [*BROKERS, "c"] if h != follower.host]
    fc.lab.split([follower.host], others)
    time.sleep(6)  # many election timeouts
    cut_off = follower.status()
    assert cut_off["quorum"]["term"] == before[follower.host][1], "pre-vote: no term raised while cut off"
    fc.lab.heal()
    time.sleep(4)
    after = quorum(fc)
    assert all(l == leader for l, _ in after.values()), (before, after)
    assert {t for _, t in after.values()} == {before[follower.host][1]}, (before, after)


def test_a_cut_off_leader_stops_claiming_leadership(fault_cluster):
    fc = fault_cluster
    fc.create_topic("solo", min_insync_replicas=2)
    fc.converge(["solo"])
    old = fc.metadata("solo")[0]["leader"]
    me = fc.by_id(old)
    peers = [b for b in fc.brokers if b.id != old]
    fc.lab.split([me.host], [b.host for b in peers])
    fc.wait(
        lambda: (md := fc.metadata("solo", via=peers[0].bootstrap)) and md[0]["leader"] not in (-1, old),
        30,
        "a new leader on the majority side",
    )
    # Past the session timeout the cut-off broker knows it may be deposed.
    time.sleep(3)
    claims = fc.metadata("solo", via=me.bootstrap)
    assert claims is not None and claims[0]["leader"] != old, claims
    fc.lab.heal()
    # Back, it never names itself leader while the others do not.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        said = fc.metadata("solo", via=me.bootstrap)
        truth = fc.metadata("solo", via=peers[0].bootstrap)
        if said and truth and said[0]["leader"] == old:
            assert truth[0]["leader"] == old, (said, truth)
    fc.converge(["solo"])


def test_a_fenced_follower_does_not_flood_the_metadata_log(fault_cluster):
    fc = fault_cluster
    fc.create_topic("idle", min_insync_replicas=2)
    fc.create_topic("busy", min_insync_replicas=2)
    fc.converge(["idle", "busy"])
    leader = quorum(fc)["b0"][0]
    follower = next(b for b in fc.brokers if b.id != leader)
    start = metadata_log_end(fc)
    # Only the brokers lose it: its replicas' last offsets look caught up on the idle topic.
    fc.lab.split([follower.host], [b.host for b in fc.brokers if b is not follower])
    fc.spawn(
        "produce", "--bootstrap", fc.bootstrap, "--topic", "busy", "--id", "q", "--acks", "all",
        "--idempotent", "1", "--rate", "100", "--stop-file", os.path.join(fc.root, "stop-q"),
        "--out", os.path.join(fc.root, "q.jsonl"),
    )
    time.sleep(10)
    fc.lab.heal()
    fc.converge(["idle", "busy"])
    grown = metadata_log_end(fc) - start
    # Fence, unfence, one shrink and one expansion per partition at most.
    assert grown <= 2 + 2 * 2 * fc.partitions + 4, f"the metadata log grew by {grown} entries"
    refused = [l for b in fc.brokers for l in b.log().splitlines() if "ISR change refused" in l]
    assert len(refused) < 20, refused[:5]
