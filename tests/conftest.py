"""Shared fixtures for the test suite (helpers live in kailash_testlib.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def docker_available() -> None:
    proc = subprocess.run(["docker", "info"], capture_output=True, check=False)
    if proc.returncode != 0:
        pytest.fail("no Docker engine answers: run `make host` first (make test does)")


# `make test` runs the integration suites two at a time (pytest-xdist, --dist loadgroup).
# Each group runs in one worker: the suites that share a session-scoped stack stay
# together (tests/day2: the default project; tests/backup: kailash-bk-ci; tests/health: its
# own servers); every other module is a group of its own (its module-scoped project).
SHARED_STACK_SUITES = ("day2", "backup", "health")


def pytest_collection_modifyitems(config, items) -> None:
    root = Path(__file__).resolve().parent
    for item in items:
        rel = Path(str(item.fspath)).resolve().relative_to(root)
        group = rel.parts[0] if rel.parts[0] in SHARED_STACK_SUITES else rel.as_posix()
        item.add_marker(pytest.mark.xdist_group(group))
