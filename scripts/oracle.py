#!/usr/bin/env python3
"""The refactor oracle: what the project renders, captured so a refactor can prove it
changed nothing (issue #12).

    scripts/oracle.py snapshot DIR     render everything into DIR
    scripts/oracle.py compare A B      byte-compare two snapshots; exit 1 naming each difference

A snapshot holds:

- ``local/``: every file the default inventory (``inventories/local``, every default
  service) writes under the stack directory (``compose.yml`` and each service's configs),
  with its mode. The stack is really deployed, as project ``kailash-oracle`` under
  /tmp/kailash-oracle (only the project name, the stack root, the networks and the
  published ports differ from the default project, so it never touches a running
  ``kailash``), then removed with its volumes.
- ``k8s/<env>.yaml`` for staging and production: the fully built ``kubectl kustomize``
  output of the rendered tree, objects sorted by kind, namespace and name (a refactor may
  move objects between files; it may not change one).

Secrets come from one store kept in /var/tmp/kailash-oracle/secrets
(KAILASH_ORACLE_SECRETS), so the "before" and "after"
snapshots render the same passwords, certificates and tokens. Nothing from that store is
ever printed: a difference in a file that holds secrets is reported by name only.

Scratch files go to /tmp/kailash-oracle (KAILASH_ORACLE_WORK: another directory, so two
snapshots can run at once). ``snapshot --only k8s`` (or ``local``) takes one half: the
Kubernetes half needs no Docker.

Needs the venv (`make venv`), Docker (`make host`) and kubectl (scripts/k8s-tools.sh;
K8S_TOOLS_VENV reuses another checkout's tools). The snapshot of the commit before a
refactor, from a clone:

    git clone -q . /tmp/before && git -C /tmp/before checkout <commit>
    export K8S_TOOLS_VENV=$PWD/.cache/k8s-tools
    .venv/bin/python /tmp/before/scripts/oracle.py snapshot /tmp/snap-before
    .venv/bin/python scripts/oracle.py snapshot /tmp/snap-after
    .venv/bin/python scripts/oracle.py compare /tmp/snap-before /tmp/snap-after
"""

from __future__ import annotations

import argparse
import filecmp
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# outside the repository, so a snapshot of another checkout (the commit before a refactor)
# renders the same secrets
SECRETS = Path(os.environ.get("KAILASH_ORACLE_SECRETS", "/var/tmp/kailash-oracle/secrets"))
PROJECT = "kailash-oracle"
WORK = Path(os.environ.get("KAILASH_ORACLE_WORK", "/tmp/kailash-oracle"))
LOCAL_EXTRA = {
    "kailash_project": PROJECT,
    "kailash_stack_root": str(WORK / "stack"),
    "kailash_networks": {"edge": "10.231.0.0/24", "app": "10.231.1.0/24",
                         "data": "10.231.2.0/24"},
    "edge_https_port": 9643, "edge_http_port": 9680,
    "postgresql_host_port": 15632, "redis_host_port": 16579, "chromadb_host_port": 18201,
    "neo4j_http_host_port": 17674, "neo4j_bolt_host_port": 17887,
    # the monitoring (in the default services): never the default stack's 9090/9093
    "prometheus_host_port": 19690, "alertmanager_host_port": 19693,
}
ENVIRONMENTS = {
    "production": {},
    # staging pins digests (as tests/k8s does), so the digest path is rendered too
    "staging": {"kailash_k8s_image_digests": {
        name: "sha256:" + "ab" * 32
        for name in ("postgres", "redis", "chromadb/chroma", "nginx", "neo4j",
                     "kailash/nexus-ops", "kailash/nexus-app", "kailash/pgbouncer",
                     "quay.io/prometheuscommunity/postgres-exporter", "oliver006/redis_exporter",
                     "kailash/celery-exporter")}},
}
# files the deploy writes that record runtime state (container ids, the ChromaDB gate's
# network namespace), not rendered content
RUNTIME_STAMPS = {".user-checked", "netns"}
# files whose content is (or holds) a secret: differences named, never shown
SECRET_PARTS = ("secrets", "secret-store", "token", ".key", "auth", "users.acl")


def _env(secrets: Path) -> dict[str, str]:
    return dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
                KAILASH_SECRETS_DIR=str(secrets), ANSIBLE_NOCOLOR="1")


def _playbook(inventory: str, playbook: str, extra: dict, *args: str) -> None:
    cmd = [str(BIN / "ansible-playbook"), "-i", f"inventories/{inventory}", playbook,
           "-e", json.dumps({**extra, "kailash_secrets_dir": str(SECRETS)}), *args]
    proc = subprocess.run(cmd, cwd=REPO, env=_env(SECRETS), capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        sys.exit(f"oracle: {playbook} on inventories/{inventory} failed:\n{proc.stdout[-3000:]}")


def _kubectl() -> Path:
    proc = subprocess.run([str(REPO / "scripts" / "k8s-tools.sh")], cwd=REPO,
                          capture_output=True, text=True, check=True)
    return Path(proc.stdout.strip().splitlines()[-1]) / "kubectl"


def _sorted_objects(text: str) -> str:
    """Objects sorted; a Secret's values replaced by their SHA-256 (a diff never shows one)."""
    docs = [d for d in yaml.safe_load_all(text) if d]
    for doc in docs:
        if doc.get("kind") == "Secret":
            for key in ("data", "stringData"):
                doc[key] = {k: "sha256:" + hashlib.sha256(str(v).encode()).hexdigest()
                            for k, v in (doc.get(key) or {}).items()}
    docs.sort(key=lambda d: (d.get("kind", ""), d.get("metadata", {}).get("namespace", ""),
                             d.get("metadata", {}).get("name", "")))
    return yaml.safe_dump_all(docs, sort_keys=True, width=1000)


def snapshot_k8s(out: Path) -> None:
    kubectl = _kubectl()
    (out / "k8s").mkdir(parents=True)
    for env, extra in ENVIRONMENTS.items():
        tree = WORK / "k8s" / env
        shutil.rmtree(tree, ignore_errors=True)
        _playbook(env, "playbooks/k8s.yml", {**extra, "kailash_k8s_render_dir": str(tree)},
                  "--tags", "render")
        built = subprocess.run([str(kubectl), "kustomize", str(tree)], capture_output=True,
                               text=True, check=True).stdout
        (out / "k8s" / f"{env}.yaml").write_text(_sorted_objects(built))


def _down() -> None:
    subprocess.run(["docker", "compose", "-p", PROJECT, "down", "--volumes", "--timeout", "5"],
                   capture_output=True, check=False)


def snapshot_local(out: Path) -> None:
    _down()
    shutil.rmtree(WORK / "stack", ignore_errors=True)
    try:
        _playbook("local", "playbooks/dev_stack.yml", LOCAL_EXTRA)
        stack = WORK / "stack" / PROJECT
        out.mkdir(parents=True, exist_ok=True)
        for path in sorted(stack.rglob("*")):
            # runtime stamps, not renders: postgres_exporter's .user-checked hashes the
            # PostgreSQL container's id and start time, new at every deploy
            if path.is_symlink() or path.name in RUNTIME_STAMPS:
                continue
            # directories too: their mode and owner are part of what the roles write
            meta = path.stat()
            with (out / "local.modes").open("a") as fh:
                fh.write(f"{path.relative_to(stack)} {stat.filemode(meta.st_mode)} "
                         f"{meta.st_uid}:{meta.st_gid}\n")
            if path.is_dir():
                continue
            dest = out / "local" / path.relative_to(stack)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)
    finally:
        _down()
        shutil.rmtree(WORK / "stack", ignore_errors=True)


def compare(a: Path, b: Path) -> int:
    files = sorted({p.relative_to(a) for p in a.rglob("*") if p.is_file()}
                   | {p.relative_to(b) for p in b.rglob("*") if p.is_file()})
    differences = 0
    for rel in files:
        left, right = a / rel, b / rel
        if not left.exists() or not right.exists():
            print(f"only in {'B' if not left.exists() else 'A'}: {rel}")
            differences += 1
        elif not filecmp.cmp(left, right, shallow=False):
            differences += 1
            if any(part in str(rel) for part in SECRET_PARTS):
                print(f"differs (content not shown, it holds secrets): {rel}")
                continue
            print(f"differs: {rel}")
            diff = subprocess.run(["diff", "-u", str(left), str(right)], capture_output=True,
                                  text=True, check=False).stdout
            print("\n".join(diff.splitlines()[:80]))
    print(f"oracle: {len(files)} files compared, {differences} differ")
    return 1 if differences else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    snap = sub.add_parser("snapshot")
    snap.add_argument("dir", type=Path)
    snap.add_argument("--only", choices=["local", "k8s"], help="one half of the snapshot")
    cmp_ = sub.add_parser("compare")
    cmp_.add_argument("a", type=Path)
    cmp_.add_argument("b", type=Path)
    args = parser.parse_args()
    if args.cmd == "compare":
        return compare(args.a, args.b)
    if args.dir.exists():
        sys.exit(f"oracle: {args.dir} exists; snapshots are never overwritten")
    args.dir.mkdir(parents=True)
    SECRETS.mkdir(parents=True, exist_ok=True, mode=0o700)
    if args.only in (None, "k8s"):
        snapshot_k8s(args.dir)
    if args.only in (None, "local"):
        snapshot_local(args.dir)
    print(f"oracle: snapshot in {args.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
