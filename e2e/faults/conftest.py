"""Fixtures of the fault tier: a FaultCluster per test, its evidence (broker
logs, client histories) kept when the test fails."""

import os

import pytest

from faultrun import FaultCluster

EVIDENCE = os.path.join(os.environ.get("TMPDIR", "/tmp"), "skein-fault-evidence")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def fault_cluster(request):
    fc = FaultCluster().start()
    yield fc
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print("evidence kept in", fc.evidence(os.path.join(EVIDENCE, request.node.name)))
    fc.stop()
