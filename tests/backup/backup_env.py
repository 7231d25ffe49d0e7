"""Names and variables of the backup tests' stack (shared by conftest.py and the tests)."""

from __future__ import annotations

from pathlib import Path

PROJECT = "kailash-bk-ci"
WORK = Path("/tmp/kailash-bk-ci")
SECRETS_DIR = WORK / "secrets"
BACKUP_ROOT = WORK / "backups"
REPORTS = WORK / "reports"
TEXTFILE = WORK / "textfile"
STACK = {
    "kailash_project": PROJECT,
    "kailash_services": ["postgresql", "redis", "chromadb", "neo4j"],
    "kailash_stack_root": str(WORK / "stack"),
    "kailash_secrets_dir": str(SECRETS_DIR),
    "kailash_publish_datastores": False,
    "kailash_networks": {"edge": "10.219.4.0/24", "app": "10.219.5.0/24", "data": "10.219.6.0/24"},
    "postgresql_memory_request": "512Mi",
    "postgresql_memory_limit": "1Gi",
    # maxmemory 256mb (allkeys-lru): room for test_redis_large's 1.1 million keys (~100 MB)
    "redis_memory_request": "256Mi",
    "redis_memory_limit": "512Mi",
    "chromadb_memory_request": "512Mi",
    "chromadb_memory_limit": "1Gi",
    "redis_appendonly": True,
}
BACKUP_VARS = {
    **STACK,
    "kailash_backup_root": str(BACKUP_ROOT),
    "kailash_backup_report_dir": str(REPORTS),
    "kailash_backup_textfile_dir": str(TEXTFILE),
}
