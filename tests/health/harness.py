"""Runs the probe modules through Ansible for the tests (and the benchmark)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

REDIS_PASSWORD = "redis-probe-pw"
REDIS_DEFAULT_PASSWORD = "redis-default-pw"
PG_PASSWORD = "pg-probe-pw"
BOLT_PASSWORD = "bolt-probe-pw"


@dataclass
class Run:
    result: dict[str, Any]
    elapsed: float
    stdout: str


def run_module(module: str, args: dict[str, Any], check: bool = False,
               interpreter: str | None = None) -> Run:
    """One ad-hoc task on localhost; returns the module result from the JSON callback."""
    cmd = [str(BIN / "ansible"), "localhost", "-i", "localhost,", "-c", "local",
           "-m", module, "-a", json.dumps(args),
           "-e", f"ansible_python_interpreter={interpreter or sys.executable}"]
    if check:
        cmd.append("--check")
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
               ANSIBLE_LIBRARY=str(ROOT / "plugins" / "modules"),
               ANSIBLE_MODULE_UTILS=str(ROOT / "plugins" / "module_utils"),
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
               ANSIBLE_NOCOLOR="1", ANSIBLE_DEPRECATION_WARNINGS="0",
               PATH=f"{BIN}:{os.environ.get('PATH', '')}")
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=180, check=False)
    elapsed = time.perf_counter() - started
    try:
        data = json.loads(proc.stdout)
        result = data["plays"][0]["tasks"][0]["hosts"]["localhost"]
    except (ValueError, KeyError, IndexError) as exc:
        raise AssertionError(f"no JSON result from {' '.join(cmd)}\nrc={proc.returncode}\n"
                             f"{proc.stdout}\n{proc.stderr}") from exc
    return Run(result, elapsed, proc.stdout)
