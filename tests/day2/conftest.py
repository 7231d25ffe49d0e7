"""Fixtures of the day-2 tests (issue #11); the helpers live in day2lib.py (a module of its
own: ``conftest`` names more than one module in this suite)."""

from __future__ import annotations

import pytest

from day2lib import all_healthy, containers, deploy
from kailash_testlib import PlaybookRun


@pytest.fixture(scope="session")
def default_stack(docker_available) -> PlaybookRun:
    """The default stack, deployed (or converged) with no extra variables."""
    run = deploy()
    assert run.rc == 0, run.output[-4000:]
    assert all_healthy(), containers()
    return run


@pytest.fixture
def healthy_after(default_stack):
    """After the test, a plain re-run must leave the default stack fully healthy
    (the rule of issue #11: after any failed run, a plain re-run restores full health)."""
    yield
    if not all_healthy():
        run = deploy()
        assert run.rc == 0, run.output[-4000:]
        assert all_healthy(), containers()
