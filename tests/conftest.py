"""Shared fixtures for the test suite (helpers live in kailash_testlib.py)."""

from __future__ import annotations

import subprocess

import pytest


@pytest.fixture(scope="session")
def docker_available() -> None:
    proc = subprocess.run(["docker", "info"], capture_output=True, check=False)
    if proc.returncode != 0:
        pytest.fail("no Docker engine answers: run `make host` first (make test does)")
