#!/usr/bin/env python3
"""Seed a deployed Kailash dev stack with realistic data (the reference app is not ready yet).

  PostgreSQL  tables documents / classification_results / models, generated server-side
              (INSERT ... SELECT generate_series) up to a target size (e.g. 100MB, 1GB)
  Redis       cache keys in db 0 (strings, hashes, a few with a TTL) and sessions in db 1
  ChromaDB    a collection with explicit embeddings (the default embedding function
              downloads a model and fails offline)

Runs the tools inside the project's containers with ``docker exec`` (secrets from the
stack's secrets.yml), so it needs no published ports:

  python3 bench/seed_data.py --project kailash-bk --secrets /tmp/kailash-bk/secrets/secrets.yml \
      --pg-size 100MB --redis-keys 5000 --chroma-records 2000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import time

UNITS = {"": 1, "B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]?B?)\s*", text.upper())
    if not m:
        raise SystemExit(f"bad size {text!r} (e.g. 5MB, 100MB, 1GB)")
    return int(float(m.group(1)) * UNITS[m.group(2) if m.group(2) != "K" else "KB"])


def load_secrets(path: str) -> dict[str, str]:
    out = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if ":" in line and not line.startswith("#"):
                key, value = line.split(":", 1)
                out[key.strip()] = value.strip().strip("'\"")
    return out


def container(project: str, service: str) -> str:
    out = subprocess.run(
        [
            "docker",
            "ps",
            "--filter",
            f"label=com.docker.compose.project={project}",
            "--filter",
            f"label=com.docker.compose.service={service}",
            "--format",
            "{{.Names}}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    names = out.stdout.split()
    if not names:
        raise SystemExit(f"no running {service} container in project {project}")
    return names[0]


def dexec(
    name: str, argv: list[str], env: dict[str, str] | None = None, stdin: bytes | None = None
) -> str:
    cmd = ["docker", "exec", "-i"]
    for key in env or {}:
        cmd += ["-e", key]
    proc = subprocess.run(
        cmd + [name, *argv],
        input=stdin,
        capture_output=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} in {name} failed: {proc.stderr.decode()[-2000:]}")
    return proc.stdout.decode()


PG_SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
  id serial PRIMARY KEY, name text NOT NULL UNIQUE, version text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS documents (
  id bigserial PRIMARY KEY, external_id uuid NOT NULL, title text NOT NULL, body text NOT NULL,
  source text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS classification_results (
  id bigserial PRIMARY KEY, document_id bigint NOT NULL REFERENCES documents(id),
  model_id int NOT NULL REFERENCES models(id), label text NOT NULL, confidence real NOT NULL,
  scores jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX IF NOT EXISTS classification_results_document ON classification_results(document_id);
INSERT INTO models(name, version) VALUES ('intent-classifier','1.4.2'),
  ('topic-classifier','2.0.0'),
  ('sentiment','0.9.1') ON CONFLICT DO NOTHING;
"""

# one batch: N documents (~700 bytes each with index) + 2 results each (~300 bytes)
PG_BATCH = """
WITH d AS (
  INSERT INTO documents(external_id, title, body, source, created_at)
  SELECT md5(g::text || clock_timestamp()::text)::uuid,
         'Document ' || g || ' ' || substr(md5(random()::text), 1, 12),
         repeat(md5(random()::text) || ' ', 12),
         (ARRAY['email','ticket','chat','upload'])[1 + (g % 4)],
         now() - (g % 100000) * interval '1 minute'
  FROM generate_series(1, {n}) g
  RETURNING id)
INSERT INTO classification_results(document_id, model_id, label, confidence, scores)
SELECT d.id, m.id, (ARRAY['billing','support','sales','spam','other'])[1 + (d.id % 5)::int],
       random()::real,
       jsonb_build_object('billing', random(), 'support', random(), 'sales', random())
FROM d CROSS JOIN (SELECT id FROM models WHERE name <> 'sentiment') m;
"""


def seed_postgres(project: str, secrets: dict[str, str], size: int, user: str, db: str) -> dict:
    name = container(project, "postgresql")
    env = {"PGPASSWORD": secrets["postgresql_password"]}
    base = [
        "psql",
        "-X",
        "-qAt",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        "/var/run/postgresql",
        "-U",
        user,
        "-d",
        db,
    ]
    dexec(name, base, env, PG_SCHEMA.encode())
    t0 = time.monotonic()

    def db_size() -> int:
        # the seeded tables (indexes and TOAST included), not the empty database's 8 MB
        return int(
            dexec(
                name,
                [
                    *base,
                    "-c",
                    "SELECT sum(pg_total_relation_size(c)) FROM unnest("
                    "ARRAY['documents','classification_results','models']::regclass[]) c",
                ],
                env,
            )
        )

    batch = 20000
    while db_size() < size:
        left = size - db_size()
        n = max(500, min(batch, left // 1400 + 1))
        dexec(name, [*base, "-c", PG_BATCH.format(n=n)], env)
    dexec(name, [*base, "-c", "ANALYZE"], env)
    rows = dexec(
        name,
        [
            *base,
            "-c",
            "SELECT (SELECT count(*) FROM documents) || ' ' || "
            "(SELECT count(*) FROM classification_results)",
        ],
        env,
    ).split()
    return {
        "tables_bytes": db_size(),
        "documents": int(rows[0]),
        "classification_results": int(rows[1]),
        "seconds": round(time.monotonic() - t0, 1),
    }


def seed_redis(project: str, secrets: dict[str, str], keys: int) -> dict:
    name = container(project, "redis")
    env = {"REDISCLI_AUTH": secrets["redis_admin_password"]}
    rng = random.Random(42)
    cmds = []

    def resp(*parts: str) -> str:
        return f"*{len(parts)}\r\n" + "".join(f"${len(p.encode())}\r\n{p}\r\n" for p in parts)

    cmds.append(resp("SELECT", "0"))
    for i in range(keys):
        if i % 3 == 0:
            cmds.append(
                resp(
                    "HSET",
                    f"cache:classification:{i}",
                    "label",
                    rng.choice(["billing", "support", "sales"]),
                    "confidence",
                    f"{rng.random():.4f}",
                    "model",
                    "intent-classifier",
                )
            )
        else:
            cmds.append(resp("SET", f"cache:doc:{i}", json.dumps({"id": i, "v": rng.random()})))
    cmds.append(resp("SELECT", "1"))
    for i in range(max(1, keys // 10)):
        cmds.append(resp("SET", f"session:{i:06d}", f"user-{rng.randrange(1000)}"))
    dexec(
        name,
        ["redis-cli", "--user", "kailash-admin", "--no-auth-warning", "--pipe"],
        env,
        "".join(cmds).encode(),
    )
    return {"db0": keys, "db1": max(1, keys // 10)}


def seed_chroma(project: str, records: int, dim: int = 64, collection: str = "documents") -> dict:
    name = container(project, "chromadb-server")
    base = "http://127.0.0.1:8001/api/v2/tenants/default_tenant/databases/default_database"

    def post(path: str, body: dict) -> dict:
        out = dexec(
            name,
            [
                "curl",
                "-fsS",
                "-X",
                "POST",
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                "@-",
                base + path,
            ],
            stdin=json.dumps(body).encode(),
        )
        return json.loads(out) if out.strip() else {}

    coll = post(
        "/collections",
        {"name": collection, "get_or_create": True, "metadata": {"hnsw:space": "cosine"}},
    )
    rng = random.Random(7)
    batch = 500
    for start in range(0, records, batch):
        ids = [f"doc-{i}" for i in range(start, min(records, start + batch))]
        post(
            f"/collections/{coll['id']}/add",
            {
                "ids": ids,
                "embeddings": [[rng.uniform(-1, 1) for _ in range(dim)] for _ in ids],
                "metadatas": [
                    {"label": rng.choice(["billing", "support", "sales"]), "n": i}
                    for i, _ in enumerate(ids)
                ],
                "documents": [f"text of {i}" for i in ids],
            },
        )
    return {"collection": collection, "records": records, "dim": dim}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--project", default="kailash-bk")
    p.add_argument("--secrets", required=True, help="the stack's secrets.yml")
    p.add_argument("--pg-size", default="5MB", help="target PostgreSQL database size (0 = skip)")
    p.add_argument("--pg-user", default="kailash_user")
    p.add_argument("--pg-database", default="kailash")
    p.add_argument("--redis-keys", type=int, default=1000, help="keys in db 0 (db 1 gets a tenth)")
    p.add_argument("--chroma-records", type=int, default=500)
    args = p.parse_args(argv)
    secrets = load_secrets(args.secrets)
    out = {}
    if parse_size(args.pg_size):
        out["postgresql"] = seed_postgres(
            args.project, secrets, parse_size(args.pg_size), args.pg_user, args.pg_database
        )
    if args.redis_keys:
        out["redis"] = seed_redis(args.project, secrets, args.redis_keys)
    if args.chroma_records:
        out["chromadb"] = seed_chroma(args.project, args.chroma_records)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
