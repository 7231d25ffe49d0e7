#!/usr/bin/env python3
"""Backup/restore figures on a deployed dev stack (run once by hand, not in CI).

  bench      PostgreSQL: kailash backup / restore (postgresql only) next to a raw
             `pg_dump -Fc` / `pg_restore` of the same database in the same run; Redis:
             kailash backup next to a raw BGSAVE + copy of the RDB. Prints the ratios.
  roundtrip  back up every datastore, record content checksums, destroy the project's
             volumes (`docker compose down -v`), redeploy an empty stack with
             playbooks/dev_stack.yml, restore, compare every count (manifest) and checksum.

  python3 bench/backup_bench.py bench --project kailash-bk-big --secrets .../secrets.yml \
      --root /tmp/sets
  python3 bench/backup_bench.py roundtrip --project kailash-bk-big --secrets ... --root ... \
      --extra-vars /tmp/extra.json        # the -e file the stack was deployed with

Seed data first with bench/seed_data.py (e.g. --pg-size 1GB).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins" / "module_utils"))
sys.path.insert(0, str(ROOT / "bench"))

import kailash_backup as kb  # noqa: E402
from seed_data import container, load_secrets  # noqa: E402


def settings(args, services, **extra) -> kb.Settings:
    sec = load_secrets(args.secrets)
    return kb.Settings(
        backup_root=args.root,
        project=args.project,
        services=services,
        datastores={
            "postgresql": {
                "user": "kailash_user",
                "password": sec["postgresql_password"],
                "database": "kailash",
            },
            "redis": {"user": "kailash-admin", "password": sec["redis_admin_password"]},
            "neo4j": {"password": sec.get("neo4j_password")},
        },
        keep_last=100,
        **extra,
    )


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def sh(argv, env=None, stdin=None, stdout=None):
    proc = subprocess.run(
        argv,
        env={**os.environ, **(env or {})},
        stdin=stdin,
        stdout=stdout,
        stderr=subprocess.PIPE,
        check=False,
    )
    if proc.returncode:
        raise SystemExit(f"{' '.join(argv[:4])} failed: {proc.stderr.decode()[-1500:]}")
    return proc


def pg_checksums(name: str, pw: str) -> dict[str, str]:
    """md5 over every row (ordered by primary key) of each seeded table."""
    out = {}
    for table in ("models", "documents", "classification_results"):
        proc = sh(
            [
                "docker",
                "exec",
                "-e",
                "PGPASSWORD",
                name,
                "psql",
                "-h",
                "/var/run/postgresql",
                "-U",
                "kailash_user",
                "-d",
                "kailash",
                "-Atc",
                "SELECT count(*) || ':' || "
                f"coalesce(md5(string_agg(md5(t::text), '' ORDER BY t.id)), '')"
                f" FROM {table} t",
            ],
            env={"PGPASSWORD": pw},
            stdout=subprocess.PIPE,
        )
        out[table] = proc.stdout.decode().strip()
    return out


def redis_checksums(name: str, pw: str) -> dict[str, str]:
    """sha256 over sorted (key, DUMP-free value) of dbs 0 and 1 (strings and hashes)."""
    script = (
        "local out = {} for _, k in ipairs(redis.call('KEYS', '*')) do "
        "local t = redis.call('TYPE', k).ok if t == 'string' then out[#out+1] = k .. '=' .. "
        "redis.call('GET', k) elseif t == 'hash' then out[#out+1] = k .. '=' .. "
        "table.concat(redis.call('HGETALL', k), ',') end end table.sort(out) "
        "return table.concat(out, '\\n')"
    )
    res = {}
    for db in ("0", "1"):
        proc = sh(
            [
                "docker",
                "exec",
                "-e",
                "REDISCLI_AUTH",
                name,
                "redis-cli",
                "--user",
                "kailash-admin",
                "--no-auth-warning",
                "-n",
                db,
                "EVAL",
                script,
                "0",
            ],
            env={"REDISCLI_AUTH": pw},
            stdout=subprocess.PIPE,
        )
        res[f"db{db}"] = hashlib.sha256(proc.stdout).hexdigest()
    return res


def cmd_bench(args) -> dict:
    sec = load_secrets(args.secrets)
    pg = container(args.project, "postgresql")
    rd = container(args.project, "redis")
    pw = {"PGPASSWORD": sec["postgresql_password"]}
    conn = ["-h", "/var/run/postgresql", "-U", "kailash_user"]
    raw_dir = Path(args.root) / "raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    rows = {
        "pg_backup": [],
        "pg_raw_dump": [],
        "pg_restore": [],
        "pg_raw_restore": [],
        "redis_backup": [],
        "redis_raw": [],
    }
    s_pg = settings(args, ["postgresql"])
    s_rd = settings(args, ["redis"])

    def quiet():
        """Wait until no autovacuum worker runs (a restore leaves 1 GB to analyze, which
        would slow the next timed step down and skew the comparison)."""
        for _ in range(600):
            busy = sh(
                [
                    "docker",
                    "exec",
                    "-e",
                    "PGPASSWORD",
                    pg,
                    "psql",
                    *conn,
                    "-d",
                    "postgres",
                    "-Atc",
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE backend_type = 'autovacuum worker'",
                ],
                env=pw,
                stdout=subprocess.PIPE,
            ).stdout.strip()
            if busy == b"0":
                return
            time.sleep(1)

    for _ in range(args.repeat):
        quiet()
        # raw pg_dump -Fc of the same database, through docker exec into a host file
        dump = raw_dir / "kailash.dump"
        with open(dump, "wb") as fh:
            t, _ = timed(
                lambda fh=fh: sh(
                    [
                        "docker",
                        "exec",
                        "-e",
                        "PGPASSWORD",
                        pg,
                        "pg_dump",
                        "-Fc",
                        *conn,
                        "-d",
                        "kailash",
                    ],
                    env=pw,
                    stdout=fh,
                )
            )
        rows["pg_raw_dump"].append(t)
        quiet()
        t, res = timed(lambda: kb.backup(s_pg))
        rows["pg_backup"].append(t)
        quiet()
        # raw pg_restore (drop + --create) of the raw dump
        sh(
            [
                "docker",
                "exec",
                "-e",
                "PGPASSWORD",
                pg,
                "psql",
                *conn,
                "-d",
                "postgres",
                "-c",
                "DROP DATABASE IF EXISTS kailash WITH (FORCE)",
            ],
            env=pw,
        )
        with open(dump, "rb") as fh:
            t, _ = timed(
                lambda fh=fh: sh(
                    [
                        "docker",
                        "exec",
                        "-i",
                        "-e",
                        "PGPASSWORD",
                        pg,
                        "pg_restore",
                        "--create",
                        "--exit-on-error",
                        *conn,
                        "-d",
                        "postgres",
                    ],
                    env=pw,
                    stdin=fh,
                )
            )
        rows["pg_raw_restore"].append(t)
        quiet()
        t, rres = timed(lambda res=res: kb.restore(s_pg, res["set"]))
        assert rres["ok"], rres
        rows["pg_restore"].append(t)
        # Redis: raw BGSAVE + copy
        ra = {"REDISCLI_AUTH": sec["redis_admin_password"]}
        cli = [
            "docker",
            "exec",
            "-e",
            "REDISCLI_AUTH",
            rd,
            "redis-cli",
            "--user",
            "kailash-admin",
            "--no-auth-warning",
        ]

        def raw_redis(cli=cli, ra=ra):
            last = sh([*cli, "LASTSAVE"], env=ra, stdout=subprocess.PIPE).stdout.strip()
            if int(time.time()) <= int(last):
                time.sleep(1.1)
            sh([*cli, "BGSAVE"], env=ra, stdout=subprocess.PIPE)
            while sh([*cli, "LASTSAVE"], env=ra, stdout=subprocess.PIPE).stdout.strip() == last:
                time.sleep(0.2)
            with open(raw_dir / "dump.rdb", "wb") as fh:
                sh(["docker", "exec", rd, "cat", "/data/dump.rdb"], stdout=fh)

        t, _ = timed(raw_redis)
        rows["redis_raw"].append(t)
        t, _ = timed(lambda: kb.backup(s_rd))
        rows["redis_backup"].append(t)
    med = {k: round(statistics.median(v), 3) for k, v in rows.items()}
    out = {
        "medians_s": med,
        "runs": args.repeat,
        "ratios": {
            "pg_backup/pg_dump": round(med["pg_backup"] / med["pg_raw_dump"], 3),
            "pg_restore/raw_pg_restore": round(med["pg_restore"] / med["pg_raw_restore"], 3),
            "redis_backup/raw_bgsave_copy": round(med["redis_backup"] / med["redis_raw"], 3),
        },
        "dump_bytes": (raw_dir / "kailash.dump").stat().st_size,
    }
    shutil.rmtree(raw_dir, ignore_errors=True)
    return out


def cmd_roundtrip(args) -> dict:
    sec = load_secrets(args.secrets)
    services = args.services.split(",")
    s = settings(
        args,
        services,
        compress=args.compress,
        encryption_key=("roundtrip-key-" + "x" * 20) if args.encrypt else None,
    )
    before = {
        "postgresql": pg_checksums(
            container(args.project, "postgresql"), sec["postgresql_password"]
        ),
        "redis": redis_checksums(container(args.project, "redis"), sec["redis_admin_password"]),
    }
    t_backup, res = timed(lambda: kb.backup(s))
    manifest = res["manifest"]
    sh(["docker", "compose", "-p", args.project, "down", "-v", "--timeout", "20"])
    cmd = [
        str(ROOT / ".venv/bin/ansible-playbook"),
        "-i",
        "inventories/local",
        "playbooks/dev_stack.yml",
        "-e",
        f"@{args.extra_vars}",
    ]
    if args.deploy_extra:
        cmd += ["-e", args.deploy_extra]
    t_deploy, _ = timed(
        lambda: subprocess.run(
            cmd,
            cwd=ROOT,
            check=True,
            capture_output=True,
            env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")},
        )
    )
    empty = {
        "postgresql": kb.Postgres(
            kb.DockerTarget(container(args.project, "postgresql")), s.datastores["postgresql"]
        ).counts()
    }
    t_restore, rres = timed(lambda: kb.restore(s, res["set"]))
    after = {
        "postgresql": pg_checksums(
            container(args.project, "postgresql"), sec["postgresql_password"]
        ),
        "redis": redis_checksums(container(args.project, "redis"), sec["redis_admin_password"]),
    }
    return {
        "set": res["set"],
        "set_bytes": manifest["totals"]["bytes"],
        "files": manifest["totals"]["files"],
        "backup_s": round(t_backup, 1),
        "redeploy_empty_s": round(t_deploy, 1),
        "restore_s": round(t_restore, 1),
        "counts_after_redeploy_before_restore": empty,
        "counts_match": rres["ok"],
        "count_failures": rres["failures"],
        "manifest_counts": {k: v["counts"] for k, v in manifest["services"].items()},
        "restored_counts": {k: v["counts"] for k, v in rres["services"].items()},
        "content_checksums_before": before,
        "content_checksums_after": after,
        "content_checksums_match": before == after,
        "per_service_backup_s": {k: v["duration_s"] for k, v in manifest["services"].items()},
        "per_service_restore_s": {k: v["duration_s"] for k, v in rres["services"].items()},
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("action", choices=["bench", "roundtrip"])
    p.add_argument("--project", default="kailash-bk-big")
    p.add_argument("--secrets", required=True)
    p.add_argument("--root", required=True, help="backup root for the sets")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--services", default="postgresql,redis,chromadb")
    p.add_argument("--extra-vars", help="roundtrip: JSON file of the stack's deploy extra vars")
    p.add_argument("--deploy-extra", help="roundtrip: more -e JSON for the redeploy")
    p.add_argument("--compress", action="store_true")
    p.add_argument("--encrypt", action="store_true")
    args = p.parse_args(argv)
    out = cmd_bench(args) if args.action == "bench" else cmd_roundtrip(args)
    print(json.dumps(out, indent=2))
    return 0 if out.get("counts_match", True) and out.get("content_checksums_match", True) else 1


if __name__ == "__main__":
    sys.exit(main())
