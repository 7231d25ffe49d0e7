#!/usr/bin/env python3
"""Converge speed of the dev stack next to plain `docker compose up -d --wait`.

Run from the repository root after `make host` (images are built by a warm-up
run first, so every timed run has its images present):

    .venv/bin/python bench/converge.py [--runs 3] [--services postgresql,redis,chromadb]
        [--project kailash-bench] [--change postgresql_memory_limit=1536Mi] [-e '{"k": "v"}']

It deploys a separate Compose project (kailash-bench), so a running dev stack is
left alone (its edge on other ports: 9543/9181), and prints, per measurement, the
median wall time and the ratio to the baseline measured in the same run:

- cold converge: volumes removed, then `ansible-playbook playbooks/dev_stack.yml`
  vs `docker compose -f <the same rendered compose.yml> up -d --wait`;
- idempotent re-run: the playbook again on the running stack (changes nothing)
  vs `docker compose up -d --wait` on the running stack;
- idempotent `make deploy`: scripts/bootstrap.sh and the whole `site.yml` (engine,
  images, stack, health report) on the running stack, as `make deploy` runs them,
  vs the same `docker compose up -d --wait`;
- with --change: the playbook with one setting changed (-e key=value), then back to
  the default, each vs `compose up -d --wait` on the running stack, naming the
  containers the change recreated (only the service the setting belongs to should be).

--services default: every service of the default kailash_services (edge included).
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
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd[:4])} ...\n"
                 f"{proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    return proc


def timed(cmd: list[str], **kw) -> float:
    start = time.perf_counter()
    sh(cmd, **kw)
    return time.perf_counter() - start


def containers(project: str) -> dict[str, str]:
    """Container name -> id of a Compose project."""
    out = sh(["docker", "ps", "--all", "--filter", f"label=com.docker.compose.project={project}",
              "--format", "{{.Names}} {{.ID}}"]).stdout
    return dict(line.split() for line in out.splitlines() if line.strip())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--services", default="",
                    help="comma-separated kailash_services (default: the roles' default list)")
    ap.add_argument("--project", default=PROJECT)
    ap.add_argument("--change", default="",
                    help="key=value: also time a run with this one setting changed")
    ap.add_argument("-e", "--extra-vars", default="{}", help="more extra vars (JSON)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="kailash-bench-"))
    extra = {
        "kailash_project": args.project,
        "kailash_stack_root": str(work / "stack"),
        "kailash_secrets_dir": str(work / "secrets"),
        "kailash_publish_datastores": False,
        "kailash_networks": {"edge": "10.216.0.0/24", "app": "10.216.1.0/24",
                             "data": "10.216.2.0/24"},
        # the default stack (kailash) holds 8443/8080
        "edge_https_port": 9543, "edge_http_port": 9181,
        **({"kailash_services": args.services.split(",")} if args.services else {}),
        **json.loads(args.extra_vars),
    }
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
               PATH=f"{BIN}:{os.environ['PATH']}")
    playbook = [str(BIN / "ansible-playbook"), "-i", "inventories/local",
                "playbooks/dev_stack.yml", "-e", json.dumps(extra)]
    compose_file = work / "stack" / args.project / "compose.yml"
    compose = ["docker", "compose", "-p", args.project, "-f", str(compose_file)]
    down = [*compose, "down", "--volumes", "--timeout", "5"]
    up = [*compose, "up", "-d", "--wait"]

    # what `make deploy` runs (Makefile: venv, then site.yml), on the bench project
    site = ["bash", "-c", 'scripts/bootstrap.sh >/dev/null && exec "$0" "$@"',
            str(BIN / "ansible-playbook"), "-i", "inventories/local", "site.yml",
            "-e", json.dumps(extra)]
    keys = ["ours_cold", "compose_cold", "ours_rerun", "compose_rerun", "ours_site"]
    if args.change:
        key, _, value = args.change.partition("=")
        changed = [*playbook[:-1], json.dumps({**extra, key: value})]
        keys += ["ours_change", "ours_back", "compose_change"]
    results: dict[str, list[float]] = {k: [] for k in keys}
    recreated: list[str] = []
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
            results["ours_site"].append(timed(site, cwd=ROOT, env=env))
            if args.change:
                before = containers(args.project)
                results["ours_change"].append(timed(changed, cwd=ROOT, env=env))
                after = containers(args.project)
                recreated = sorted(n for n, cid in after.items() if before.get(n) != cid)
                results["compose_change"].append(timed(up))
                results["ours_back"].append(timed(playbook, cwd=ROOT, env=env))
            print(f"run {i + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in results.items()),
                  flush=True)
    finally:
        subprocess.run(down, capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"\nservices: {args.services or 'default'}; runs: {args.runs}; median wall time")
    print(f"{'measurement':<24}{'ours (s)':>10}{'compose (s)':>13}{'ratio':>8}")
    rows = [("cold converge", "ours_cold", "compose_cold"),
            ("idempotent re-run", "ours_rerun", "compose_rerun"),
            ("idempotent make deploy", "ours_site", "compose_rerun")]
    if args.change:
        rows += [(f"{args.change}", "ours_change", "compose_change"),
                 ("back to the default", "ours_back", "compose_change")]
    for label, ours, base in rows:
        print(f"{label:<24}{med[ours]:>10.1f}{med[base]:>13.1f}{med[ours] / med[base]:>8.2f}")
    if args.change:
        print(f"recreated by {args.change}: {', '.join(recreated) or 'nothing'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
