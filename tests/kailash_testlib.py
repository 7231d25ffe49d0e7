"""Helpers shared by the integration tests (a module of its own: tests/health has
its own conftest.py, and two modules named ``conftest`` cannot both be imported)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@dataclass
class PlaybookRun:
    rc: int
    output: str

    def recap(self) -> dict[str, int]:
        """Sum of the PLAY RECAP counters over all hosts."""
        totals: dict[str, int] = {}
        for line in self.output.split("PLAY RECAP")[-1].splitlines():
            for key, value in re.findall(r"(\w+)=(\d+)", line):
                totals[key] = totals.get(key, 0) + int(value)
        return totals


def run_playbook(playbook: str, *args: str, extra: dict | None = None,
                 inventory: str = "inventories/local", timeout: int = 900) -> PlaybookRun:
    cmd = [str(BIN / "ansible-playbook"), "-i", inventory, playbook, *args]
    if extra is not None:
        cmd += ["-e", json.dumps(extra)]
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0", PATH=f"{BIN}:{os.environ.get('PATH', '')}")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    return PlaybookRun(proc.returncode, proc.stdout + proc.stderr)
