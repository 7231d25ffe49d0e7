"""Unit tests (no service, no Docker) of the backup core's CLI config validation and the
ChromaDB export framing (plugins/module_utils/kailash_backup/); the real runs are
tests/backup/test_ops_image.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from kailash_testlib import load_backup_core

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def kb():
    return load_backup_core()


@pytest.fixture
def cfg(tmp_path):
    for name in ("pg", "redis", "token", "key"):
        (tmp_path / name).write_text(f"value-of-{name}\n")
    return {
        "backup_root": "/backups/sets",
        "backend": "local",
        "services": ["postgresql", "redis", "chromadb"],
        "encryption_key_file": str(tmp_path / "key"),
        "datastores": {
            "postgresql": {
                "host": "postgresql",
                "port": 5432,
                "password_file": str(tmp_path / "pg"),
            },
            "redis": {"host": "redis", "port": 6379, "password_file": str(tmp_path / "redis")},
            "chromadb": {"host": "chromadb", "port": 8000, "token_file": str(tmp_path / "token")},
        },
    }


def test_secret_files_are_read_and_removed(kb, cfg):
    out = kb.load_config(cfg, "c.json")
    assert out["encryption_key"] == "value-of-key" and "encryption_key_file" not in out
    assert out["datastores"]["postgresql"]["password"] == "value-of-pg"
    assert out["datastores"]["chromadb"]["token"] == "value-of-token"
    assert "password_file" not in out["datastores"]["redis"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c.update(bogus=1), "c.json: unknown field 'bogus'"),
        (lambda c: c.update(backup_root="rel"), "c.json: backup_root: required, an absolute path"),
        (lambda c: c.update(services=["mysql"]), "c.json: services: unknown 'mysql'"),
        (lambda c: c.update(keep_last=0), "c.json: keep_last: a whole number >= 1"),
        (lambda c: c["datastores"]["redis"].pop("host"), "c.json: datastores.redis.host: required"),
        (lambda c: c["datastores"]["redis"].update(port="x"), "datastores.redis.port: a TCP port"),
        (lambda c: c["datastores"]["redis"].update(pasword="x"), "unknown field 'pasword'"),
        (
            lambda c: c["datastores"]["postgresql"].update(password_file="/nonexistent/pw"),
            "c.json: datastores.postgresql.password_file: cannot read /nonexistent/pw",
        ),
        (lambda c: c.update(services=["neo4j"]), "neo4j cannot be backed up over the network"),
    ],
)
def test_bad_config_is_refused_naming_the_field(kb, cfg, change, message):
    change(cfg)
    with pytest.raises(kb.BackupError) as exc:
        kb.load_config(cfg, "c.json")
    assert message in str(exc.value)
    assert "value-of-" not in str(exc.value)


def test_empty_secret_file_is_refused(kb, cfg, tmp_path):
    (tmp_path / "token").write_text("\n")
    with pytest.raises(kb.BackupError, match=r"datastores.chromadb.token_file: .* is empty"):
        kb.load_config(cfg, "c.json")


def _export(*records: list[str], end: bool = True) -> list[dict]:
    lines = [{"type": "header", "format": "kailash-chroma-export", "version": 1}]
    total = 0
    for i, ids in enumerate(records):
        tenant, db, name = "default_tenant", "default_database", f"c{i}"
        lines.append({"type": "collection", "tenant": tenant, "database": db, "name": name})
        lines.append(
            {
                "type": "records",
                "tenant": tenant,
                "database": db,
                "collection": name,
                "ids": ids,
                "embeddings": [[0.0] for _ in ids],
            }
        )
        total += len(ids)
    if end:
        lines.append({"type": "end", "collections": len(records), "records": total})
    return lines


def test_chroma_export_counts_and_framing(kb):
    counts = kb.chroma_export_counts(_export(["a", "b"], []), "x")
    assert counts == {"default_database/c0": 2, "default_database/c1": 0}
    with pytest.raises(kb.BackupError, match="truncated export"):
        kb.chroma_export_counts(_export(["a"], end=False), "x")
    bad = _export(["a", "b"])
    bad[2]["embeddings"] = [[0.0]]
    with pytest.raises(kb.BackupError, match="embeddings do not match the ids"):
        kb.chroma_export_counts(bad, "x")
    chunks = [json.dumps(obj).encode() + b"\n" for obj in _export(["a"])]
    joined = b"".join(chunks)
    pieces = [joined[i : i + 7] for i in range(0, len(joined), 7)]
    assert kb.chroma_export_counts(kb._json_lines(pieces, "x"), "x") == {"default_database/c0": 1}
    with pytest.raises(kb.BackupError, match="truncated"):
        list(kb._json_lines([joined[:-1]], "x"))


def test_a_partial_dir_with_our_own_pid_is_stale(kb, tmp_path):
    """A pod's backup often runs as pid 1 every time: its old partial dir is removed."""
    mine = tmp_path / f".partial-20261126T000000Z-{os.getpid()}"
    other = tmp_path / ".partial-20261126T000000Z-1"
    mine.mkdir()
    other.mkdir()
    removed = kb.remove_stale_partials(str(tmp_path))
    assert mine.name in removed and not mine.exists()
    assert other.exists() == (os.getpid() != 1)
