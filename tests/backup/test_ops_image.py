"""The ops image of the Kubernetes backup CronJobs, run for real against the REAL datastores of
the backup tests' dev stack (conftest.py, Compose project kailash-bk-ci: PostgreSQL 15,
Redis 7.0 with AOF, ChromaDB 1.5.9 behind its token gate).

What is real: the image (built by playbooks/ops_image.yml from roles/kailash_backup/files/ops
and the package plugins/module_utils/kailash_backup/), the datastores, the network path (the ops
container reaches them over the stack's data network by their service names, which are the
Kubernetes Service names too), and the config.json (made by the filter the kailash_k8s role
renders the ConfigMap with, and checked equal to the committed production ConfigMap but for
the project name). What stands in for Kubernetes: a plain `docker run` container plays the
CronJob's pod, with what the pod spec gives it (uid 10001, read-only root filesystem, a
tmpfs /tmp, the Secret keys as read-only files, a host directory as the /backups volume). No
Kubernetes API, no NetworkPolicy enforcement, no kubelet is involved.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import secrets as pysecrets
import shutil
import struct
import subprocess
import time

import pytest
import yaml
from backup_env import PROJECT, WORK

from kailash_testlib import ROOT, run_playbook

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("stack")]

OPS = WORK / "ops"
NETWORK = f"{PROJECT}_data"
PROBE_DB = "ops_probe"  # a database of its own in the stack's Chroma, deleted afterwards
SCRATCH_CHROMA = f"{PROJECT}-ops-chroma"


def role_default(role: str, name: str):
    return yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text())[name]


OPS_IMAGE = role_default("kailash", "kailash_ops_image")
OPS_UID = yaml.safe_load((ROOT / "roles/kailash_k8s/vars/main.yml").read_text())[
    "kailash_k8s__ops_uid"
]


def backup_config_filter():
    """kailash_backup_config of plugins/filter/k8s.py (what roles/kailash_k8s renders)."""
    spec = importlib.util.spec_from_file_location(
        "kailash_filter_k8s", ROOT / "plugins" / "filter" / "k8s.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.kailash_backup_config


def docker(*args: str, check: bool = True, stdin: bytes | None = None, timeout: int = 900):
    return subprocess.run(
        ["docker", *args], input=stdin, capture_output=True, check=check, timeout=timeout
    )


def chroma(container: str, port: int, method: str, path: str, body=None):
    """One Chroma API call from inside a server container (its loopback, no gate)."""
    cmd = ["exec", "-i", container, "curl", "-fsS", "-X", method]
    if body is not None:
        cmd += ["-H", "Content-Type: application/json", "--data-binary", "@-"]
    cmd.append(f"http://127.0.0.1:{port}{path}")
    out = docker(*cmd, stdin=None if body is None else json.dumps(body).encode()).stdout
    return json.loads(out) if out.strip() else None


def records(container: str, port: int, database: str, name: str) -> dict:
    base = f"/api/v2/tenants/default_tenant/databases/{database}/collections"
    coll = next(c for c in chroma(container, port, "GET", base) if c["name"] == name)
    got = chroma(
        container,
        port,
        "POST",
        f"{base}/{coll['id']}/get",
        {"limit": 100000, "include": ["embeddings", "documents", "metadatas"]},
    )
    return {
        "collection": {
            "metadata": coll["metadata"],
            "hnsw": (coll.get("configuration_json") or {}).get("hnsw"),
            "dimension": coll.get("dimension"),
        },
        "records": {
            i: (e, d, m)
            for i, e, d, m in zip(
                got["ids"], got["embeddings"], got["documents"], got["metadatas"], strict=True
            )
        },
    }


def f32(value: float) -> int:
    """The float32 bit pattern (as an ordered integer) of a value."""
    bits = struct.unpack("<i", struct.pack("<f", value))[0]
    return bits if bits >= 0 else -(bits & 0x7FFFFFFF)


@pytest.fixture(scope="module")
def image() -> str:
    """playbooks/ops_image.yml: the real build (image_base service_image)."""
    run = run_playbook("playbooks/ops_image.yml", timeout=1800)
    assert run.rc == 0, run.output[-4000:]
    info = json.loads(docker("image", "inspect", OPS_IMAGE).stdout)[0]
    assert info["Config"]["User"] == f"{OPS_UID}:{OPS_UID}"
    return OPS_IMAGE


@pytest.fixture(scope="module")
def ops(image, secrets, kb):
    """The pod's view: secret files (0400, the ops uid), config.json, a /backups dir; plus a
    second Chroma database with an l2 collection (bit-exact embeddings) in the stack."""
    shutil.rmtree(OPS, ignore_errors=True)
    secret_dir, conf_dir, backups = OPS / "secrets", OPS / "conf", OPS / "backups"
    for d in (secret_dir, conf_dir, backups):
        d.mkdir(parents=True)
    values = {
        "postgresql_password": secrets["postgresql_password"],
        "redis_admin_password": secrets["redis_admin_password"],
        "chromadb_token": secrets["chromadb_token"],
        "backup_encryption_key": pysecrets.token_urlsafe(48),
    }
    for key, value in values.items():
        path = secret_dir / key
        path.write_text(value + "\n")
        os.chown(path, OPS_UID, OPS_UID)
        path.chmod(0o400)
    os.chown(backups, OPS_UID, OPS_UID)
    backups.chmod(0o700)
    cfg = backup_config_filter()(
        {
            "project": PROJECT,
            # the "backup" slots of the datastore roles' Kubernetes plans (roles/*/vars)
            "datastores": [
                {
                    "service": "postgresql",
                    "host": "postgresql",
                    "port": role_default("postgresql", "postgresql_port"),
                    "user": role_default("postgresql", "postgresql_user"),
                    "database": role_default("postgresql", "postgresql_database"),
                    "secrets": {"password_file": "postgresql_password"},
                },
                {
                    "service": "redis",
                    "host": "redis",
                    "port": role_default("redis", "redis_port"),
                    "user": role_default("redis", "redis_admin_user"),
                    "secrets": {"password_file": "redis_admin_password"},
                },
                {
                    "service": "chromadb",
                    "host": "chromadb",
                    "port": role_default("chromadb", "chromadb_port"),
                    "tenants": ["default_tenant"],
                    "secrets": {"token_file": "chromadb_token"},
                },
            ],
            "secret_dir": "/run/secrets",
            "backup_root": "/backups/sets",
            "report_dir": "/backups/drill",
            "textfile_dir": "/backups/drill",
            "work_dir": "/backups/.work",
            "compress": True,
            "keep_last": 7,
            "keep_daily": 7,
            "keep_weekly": 4,
        }
    )
    committed = json.loads((ROOT / "k8s/production/config/ops/config.json").read_text())
    assert {**cfg, "project": committed["project"]} == committed
    (conf_dir / "config.json").write_text(json.dumps(cfg, indent=2))
    # a second database with an l2 collection, in the stack's Chroma (deleted afterwards)
    server = f"{PROJECT}-chromadb-server-1"
    chroma(server, 8001, "POST", "/api/v2/tenants/default_tenant/databases", {"name": PROBE_DB})
    base = f"/api/v2/tenants/default_tenant/databases/{PROBE_DB}/collections"
    coll = chroma(server, 8001, "POST", base, {"name": "l2_exact", "metadata": {"kind": "probe"}})
    rng = __import__("random").Random(11)
    ids = [f"p-{i}" for i in range(120)]
    chroma(
        server,
        8001,
        "POST",
        f"{base}/{coll['id']}/add",
        {
            "ids": ids,
            "embeddings": [[rng.uniform(-1, 1) for _ in range(24)] for _ in ids],
            "documents": [f"probe text {i} \u00e9\u4e2d" for i in range(len(ids))],
            "metadatas": [
                {"i": i, "f": i / 7, "ok": i % 2 == 0, "s": "x" * (i % 5)} for i in range(len(ids))
            ],
        },
    )
    yield {"dir": OPS, "values": values, "config": cfg, "backups": backups}
    docker(
        "exec",
        server,
        "curl",
        "-fsS",
        "-X",
        "DELETE",
        f"http://127.0.0.1:8001/api/v2/tenants/default_tenant/databases/{PROBE_DB}",
        check=False,
    )
    docker("rm", "-f", "-v", SCRATCH_CHROMA, check=False)


def run_ops(ops: dict, action: str, *extra: str, config: str = "config.json"):
    """The CronJob's container: uid 10001, read-only rootfs, tmpfs /tmp, secrets read-only."""
    t0 = time.monotonic()
    proc = docker(
        "run",
        "--rm",
        "--network",
        NETWORK,
        "--read-only",
        "--user",
        f"{OPS_UID}:{OPS_UID}",
        "--tmpfs",
        "/tmp:rw,mode=1777,size=256m",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "-v",
        f"{ops['dir'] / 'secrets'}:/run/secrets:ro",
        "-v",
        f"{ops['dir'] / 'conf'}:/etc/kailash-backup:ro",
        "-v",
        f"{ops['backups']}:/backups",
        OPS_IMAGE,
        "python3",
        "-m",
        "kailash_backup",
        action,
        "--config",
        f"/etc/kailash-backup/{config}",
        *extra,
        check=False,
    )
    out = proc.stdout.decode() + proc.stderr.decode()
    for name, value in ops["values"].items():
        assert value not in out, f"the {name} value is in the container's output"
    return proc.returncode, proc.stdout.decode(), out, round(time.monotonic() - t0, 1)


@pytest.fixture(scope="module")
def ops_backup(ops):
    rc, stdout, out, secs = run_ops(ops, "backup")
    assert rc == 0, out[-3000:]
    result = json.loads(stdout)
    return {"result": result, "dir": ops["backups"] / "sets" / result["set"], "seconds": secs}


def live_counts(kb, secrets) -> dict:
    """Counts of the running stack by the docker backend's handlers (docker exec)."""
    pg = kb.Postgres(
        kb.DockerTarget(f"{PROJECT}-postgresql-1"),
        {"user": "kailash_user", "password": secrets["postgresql_password"], "database": "kailash"},
    )
    rd = kb.Redis(
        kb.DockerTarget(f"{PROJECT}-redis-1"),
        {"user": "kailash-admin", "password": secrets["redis_admin_password"]},
    )
    ch = kb.Chroma(kb.DockerTarget(f"{PROJECT}-chromadb-server-1"), {"port": 8001})
    chroma_counts = {}
    base = "/api/v2/tenants/default_tenant/databases"
    for db in ch.api(base):
        for coll in ch.api(f"{base}/{db['name']}/collections"):
            chroma_counts[f"{db['name']}/{coll['name']}"] = int(
                ch.api(f"{base}/{db['name']}/collections/{coll['id']}/count")
            )
    return {"postgresql": pg.counts(), "redis": rd.counts(), "chromadb": chroma_counts}


def test_backup_over_the_network_verifies_and_counts_match_live(ops, ops_backup, kb, secrets):
    """`python3 -m kailash_backup backup` in the image: an encrypted, compressed set whose
    checksums verify with the key file's key, counts equal to the live data, network
    methods recorded, no datastore volume mounted anywhere."""
    set_dir = ops_backup["dir"]
    manifest = kb.verify_set(str(set_dir), ops["values"]["backup_encryption_key"])
    assert manifest["backend"] == "local"
    assert manifest["encryption"] == "aes-256-gcm" and manifest["compression"] == "gzip"
    assert set(manifest["services"]) == {"postgresql", "redis", "chromadb"}
    live = live_counts(kb, secrets)
    for svc in ("postgresql", "redis", "chromadb"):
        assert manifest["services"][svc]["counts"] == live[svc], svc
        assert manifest["services"][svc]["target"] == {
            "backend": "local",
            "name": svc,
            "host": ops["config"]["datastores"][svc]["host"],
        }
    assert live["chromadb"][f"{PROBE_DB}/l2_exact"] == 120
    assert live["redis"]["db0"]["keys"] == 300
    files = {svc: [e["path"] for e in sec["files"]] for svc, sec in manifest["services"].items()}
    assert files["redis"] == ["redis/dump.rdb.gz.enc"]
    assert files["chromadb"] == ["chromadb/export.jsonl.gz.enc"]
    assert "postgresql/kailash.dump.enc" in files["postgresql"]
    assert manifest["services"]["redis"]["method"].startswith("redis-cli --rdb")
    assert manifest["services"]["chromadb"]["details"]["format"] == "export-jsonl"
    key = ops["values"]["backup_encryption_key"]
    rdb = b"".join(kb.read_artefact(str(set_dir), manifest["services"]["redis"]["files"][0], key))
    assert rdb.startswith(b"REDIS")
    for entry in (e for sec in manifest["services"].values() for e in sec["files"]):
        path = set_dir / entry["path"]
        assert path.stat().st_uid == OPS_UID and oct(path.stat().st_mode & 0o777) == "0o600"


def test_drill_in_the_image_passes_for_all_three(ops, ops_backup):
    """`python3 -m kailash_backup drill`: PostgreSQL restored into initdb/pg_ctl and Redis into
    a redis-server, both throwaway processes of the container; the Chroma export checked and
    counted (the report says it was not loaded into a Chroma server)."""
    rc, stdout, out, secs = run_ops(ops, "drill", "--set", "latest")
    assert rc == 0, out[-3000:]
    report = json.loads(stdout)
    assert report["passed"] and report["checksums_ok"] and report["backend"] == "local"
    assert report["set"] == ops_backup["result"]["set"]
    assert set(report["services"]) == {"postgresql", "redis", "chromadb"}
    for svc, entry in report["services"].items():
        assert entry["passed"] and not entry["differences"], (svc, entry)
    assert "not loaded into a Chroma server" in report["services"]["chromadb"]["method"]
    drill_dir = ops["backups"] / "drill"
    record = json.loads((drill_dir / f"restore-drill-{PROJECT}.json").read_text())
    assert record["passed"] and record["last_success_at"] == report["finished_at"]
    prom = (drill_dir / f"kailash_restore_drill_{PROJECT.replace('-', '_')}.prom").read_text()
    assert f'kailash_restore_drill_passed{{project="{PROJECT}"}} 1' in prom
    assert "kailash_restore_drill_last_success_timestamp_seconds" in prom
    # the scratch space is gone, no process survives the container
    assert not list((ops["backups"] / ".work").glob("*"))


def test_docker_drill_restores_the_network_set_into_the_stacks_images(
    ops, ops_backup, settings, kb
):
    """The same set (made over the network) through the docker backend's drill on this host:
    its pg_dump and RDB restored into throwaway containers of the stack's own PostgreSQL and
    Redis images; the Chroma export checked and counted (not loaded there either)."""
    report = kb.drill(
        settings(
            backup_root=str(ops["backups"] / "sets"),
            encryption_key=ops["values"]["backup_encryption_key"],
        ),
        ops_backup["result"]["set"],
    )
    assert report["passed"], json.dumps(report, indent=1)[-3000:]
    assert report["backend"] == "docker"
    assert "not loaded" in report["services"]["chromadb"]["method"]
    left = docker("ps", "-aq", "--filter", f"name={PROJECT}-drill").stdout.split()
    assert left == []


def test_chroma_export_restores_into_a_fresh_chroma(ops, ops_backup, image):
    """The export restored by the image into a throwaway Chroma server (the stack's own
    image, a fresh tmpfs /data): same collections, ids, documents, metadatas; embeddings
    bit-identical in the l2 collection and within one float32 step in the cosine one
    (Chroma 1.5 changes cosine-space vectors by up to one unit in the last place when they
    are added, whatever the client; measured, see docs/backup-restore.md). A second restore
    onto the now non-empty collections is refused."""
    server = f"{PROJECT}-chromadb-server-1"
    chroma_image = json.loads(docker("inspect", server).stdout)[0]["Config"]["Image"]
    docker("rm", "-f", "-v", SCRATCH_CHROMA, check=False)
    docker(
        "run",
        "-d",
        "--name",
        SCRATCH_CHROMA,
        "--network",
        NETWORK,
        "--tmpfs",
        "/data:uid=1000,gid=1000",
        "--label",
        "io.kailash.drill=true",
        chroma_image,
    )
    deadline = time.monotonic() + 120
    heartbeat = ("exec", SCRATCH_CHROMA, "curl", "-fsS", "http://127.0.0.1:8000/api/v2/heartbeat")
    while docker(*heartbeat, check=False).returncode:
        assert time.monotonic() < deadline, "scratch Chroma did not start"
        time.sleep(0.5)
    cfg = json.loads(json.dumps(ops["config"]))
    cfg["services"] = ["chromadb"]
    cfg["datastores"] = {"chromadb": {"host": SCRATCH_CHROMA, "port": 8000}}
    (ops["dir"] / "conf" / "restore-chroma.json").write_text(json.dumps(cfg))
    rc, stdout, out, _ = run_ops(ops, "restore", config="restore-chroma.json")
    assert rc == 0, out[-3000:]
    result = json.loads(stdout)
    assert result["ok"] and result["services"]["chromadb"]["counts_match"]
    for database, name, exact in (
        (PROBE_DB, "l2_exact", True),
        ("default_database", "documents", False),
    ):
        want = records(server, 8001, database, name)
        got = records(SCRATCH_CHROMA, 8000, database, name)
        assert got["collection"] == want["collection"], name
        assert set(got["records"]) == set(want["records"]), name
        for rid, (emb, doc, meta) in want["records"].items():
            g_emb, g_doc, g_meta = got["records"][rid]
            assert (g_doc, g_meta) == (doc, meta), rid
            if exact:
                assert g_emb == emb, rid
            else:
                assert len(g_emb) == len(emb)
                assert all(abs(f32(a) - f32(b)) <= 1 for a, b in zip(g_emb, emb, strict=True)), rid
    rc, stdout, out, _ = run_ops(ops, "restore", config="restore-chroma.json")
    assert rc == 1 and "exist and hold records" in stdout, out[-2000:]
    assert len(records(SCRATCH_CHROMA, 8000, "default_database", "documents")["records"]) == 200
    docker("rm", "-f", "-v", SCRATCH_CHROMA, check=False)


def test_extract_decodes_an_artefact_for_manual_restores(ops, ops_backup, kb):
    """`extract` (the first step of the documented Kubernetes Redis restore): the RDB of the
    set decrypted and gunzipped into a file, byte-identical to the manifest's plain sha256."""
    rc, stdout, out, _ = run_ops(
        ops, "extract", "--file", "redis/dump.rdb", "--out", "/backups/extracted.rdb"
    )
    assert rc == 0, out[-2000:]
    result = json.loads(stdout)
    data = (ops["backups"] / "extracted.rdb").read_bytes()
    assert data.startswith(b"REDIS") and len(data) == result["size"]
    assert hashlib.sha256(data).hexdigest() == result["sha256"]
    (ops["backups"] / "extracted.rdb").unlink()


def test_bad_config_is_refused_naming_the_field(ops):
    """A missing secret file and a missing host are refused before any work (exit 2)."""
    cfg = json.loads(json.dumps(ops["config"]))
    cfg["datastores"]["redis"]["password_file"] = "/run/secrets/nope"
    (ops["dir"] / "conf" / "bad1.json").write_text(json.dumps(cfg))
    rc, stdout, _, _ = run_ops(ops, "backup", config="bad1.json")
    assert rc == 2 and "datastores.redis.password_file: cannot read /run/secrets/nope" in stdout
    cfg = json.loads(json.dumps(ops["config"]))
    del cfg["datastores"]["postgresql"]["host"]
    (ops["dir"] / "conf" / "bad2.json").write_text(json.dumps(cfg))
    rc, stdout, _, _ = run_ops(ops, "backup", config="bad2.json")
    assert rc == 2 and "datastores.postgresql.host: required with backend local" in stdout


def test_embeddings_are_packed_as_chroma_packs_them(kb):
    """Pure logic: embeddings go to Chroma as little-endian float32, base64 (its client's)."""
    packed = kb._pack_f32([1.0, -0.5])
    assert base64.b64decode(packed) == struct.pack("<2f", 1.0, -0.5)
