#!/usr/bin/env python3
"""Converge speed of the dev stack next to plain `docker compose up -d --wait`.

Run from the repository root after `make host` (images are built by a warm-up
run first, so every timed run has its images present):

    .venv/bin/python bench/converge.py [--runs 3] [--services postgresql,redis,chromadb]

It deploys a separate Compose project (kailash-bench), so a running dev stack is
left alone, and prints, per measurement, the median wall time and the ratio to
the baseline measured in the same run:

- cold converge: volumes removed, then `ansible-playbook playbooks/dev_stack.yml`
  vs `docker compose -f <the same rendered compose.yml> up -d --wait`;
- idempotent re-run: the playbook again on the running stack (changes nothing)
  vs `docker compose up -d --wait` on the running stack.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"
PROJECT = "kailash-bench"


def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def timed(cmd: list[str], **kw) -> float:
    start = time.perf_counter()
    sh(cmd, **kw)
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--services", default="postgresql,redis,chromadb")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="kailash-bench-"))
    extra = {
        "kailash_project": PROJECT,
        "kailash_services": args.services.split(","),
        "kailash_stack_root": str(work / "stack"),
        "kailash_secrets_dir": str(work / "secrets"),
        "kailash_publish_datastores": False,
        "kailash_networks": {"edge": "10.216.0.0/24", "app": "10.216.1.0/24",
                             "data": "10.216.2.0/24"},
    }
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
               PATH=f"{BIN}:{os.environ['PATH']}")
    playbook = [str(BIN / "ansible-playbook"), "-i", "inventories/local",
                "playbooks/dev_stack.yml", "-e", json.dumps(extra)]
    compose_file = work / "stack" / PROJECT / "compose.yml"
    compose = ["docker", "compose", "-p", PROJECT, "-f", str(compose_file)]
    down = [*compose, "down", "--volumes", "--timeout", "5"]
    up = [*compose, "up", "-d", "--wait"]

    results: dict[str, list[float]] = {k: [] for k in
                                       ("ours_cold", "compose_cold", "ours_rerun", "compose_rerun")}
    try:
        print(f"warm-up (builds images if needed): {timed(playbook, cwd=ROOT, env=env):.1f} s",
              flush=True)
        for i in range(args.runs):
            sh(down)
            results["compose_cold"].append(timed(up))
            results["compose_rerun"].append(timed(up))
            sh(down)
            results["ours_cold"].append(timed(playbook, cwd=ROOT, env=env))
            results["ours_rerun"].append(timed(playbook, cwd=ROOT, env=env))
            print(f"run {i + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in results.items()),
                  flush=True)
    finally:
        subprocess.run(down, capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"\nservices: {args.services}; runs: {args.runs}; median wall time")
    print(f"{'measurement':<22}{'ours (s)':>10}{'compose (s)':>13}{'ratio':>8}")
    for label, ours, base in (("cold converge", "ours_cold", "compose_cold"),
                              ("idempotent re-run", "ours_rerun", "compose_rerun")):
        print(f"{label:<22}{med[ours]:>10.1f}{med[base]:>13.1f}{med[ours] / med[base]:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
