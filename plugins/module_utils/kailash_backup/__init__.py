"""Backup, restore and restore drills of the Kailash datastores: the core, plain Python.

Used three ways, with the same code:

* by the Ansible modules ``kailash_backup``, ``kailash_restore`` and
  ``kailash_restore_drill`` (imported as ``ansible.module_utils.kailash_backup``);
* as a script (``python3 -m kailash_backup backup --config cfg.json``, __main__.py), e.g. by
  the Kubernetes CronJobs of roles/kailash_k8s in the ops image (roles/kailash_backup/files/ops):
  the ``local`` exec backend with a ``host`` per datastore reaches every server over the
  network only (see "Network mode" below);
* by the tests and ``bench/backup_bench.py`` (``import kailash_backup``).

Exec backends: every command of a datastore runs through a ``Target``.
``DockerTarget`` runs it with ``docker exec`` in the service's container (so the tools
always match the server's version) and, for work on stopped data (restore, offline
dumps), in a helper container of the same image with ``--volumes-from`` the service
container. ``LocalTarget`` runs the same argv as a local process (in the pod) and can
stop/start the service with configured commands (e.g. ``kubectl scale``).

Network mode (backend ``local`` and ``host`` set for a datastore; what the pod uses, whose
datastores live in other pods on ReadWriteOnce volumes):

* PostgreSQL: ``pg_dumpall --globals-only`` / ``pg_dump -Fc`` / ``pg_restore`` over TCP to
  ``host:port`` (password from ``password_file``, given to the tools as PGPASSWORD in their
  environment, never on a command line);
* Redis: ``redis-cli --rdb`` as the admin ACL user (REDISCLI_AUTH in the environment):
  the server forks and streams a fresh RDB, stored as the same ``redis/dump.rdb``;
  restoring an RDB needs the server's volume, so it is refused over the network;
* ChromaDB: a logical export over the HTTP API v2 (token header from ``token_file``):
  ``chromadb/export.jsonl`` (kind ``chroma-export``), restored by creating the
  collections and adding the records in batches;
* drills (``LocalDrill``): throwaway processes in the pod (initdb + pg_ctl, redis-server
  on a Unix socket), the Chroma export checked by parsing it (never loaded).

Backup set layout (one directory per run under the backup root)::

    <root>/20261126T141502Z/            promoted (renamed) only when every part succeeded
        manifest.json                   see common.MANIFEST_SCHEMA
        postgresql/globals.sql[.gz][.enc]
        postgresql/<database>.dump[.enc]
        redis/dump.rdb[.gz][.enc]
        chromadb/data.tar[.gz][.enc]         (docker backend: the persistent dir)
        chromadb/export.jsonl[.gz][.enc]     (network mode: logical export, see CHROMA_EXPORT)
        neo4j/<database>.dump[.enc]
    <root>/.partial-20261126T141502Z-<pid>/   a run in progress (removed when it fails)

The package, by concern (relative imports only, so that it loads the same as
``ansible.module_utils.kailash_backup``, as ``kailash_backup`` and by file path)::

    common.py        constants, BackupError, small helpers
    crypto.py        chunked AES-256-GCM of the artefacts
    artefacts.py     writing / reading the files of a set; Ctx (what a datastore writes through)
    targets.py       exec backends: Target, DockerTarget, LocalTarget
    datastores/      one module per datastore (postgresql, redis, chromadb, neo4j), each
                     class owning its backup, restore and drill steps; __init__.py holds
                     the registry (service name -> class): no name switch anywhere else
    sets.py          the sets under a root: listing, retention, verification, the manifest
    runs.py          Settings; backup, restore, extract
    drills.py        restore drills (Drill: docker, LocalDrill: processes in a pod)
    cli.py           the command line (``python3 -m kailash_backup``), its JSON config
    ansible_glue.py  the Ansible modules' shared argument spec

Standard library only, except ``cryptography`` for encrypted sets.
"""

from __future__ import annotations

from .ansible_glue import _CONN, BACKUP_ARGUMENT_SPEC, backup_argument_spec, settings_from_params
from .artefacts import ArtefactWriter, Ctx, _gunzip, read_artefact
from .cli import CONFIG_DATASTORE, CONFIG_TOP, _read_secret_file, load_config, main
from .common import (
    CHUNK,
    FORMAT_VERSION,
    MANIFEST_SCHEMA,
    PARTIAL_PREFIX,
    SET_NAME_RE,
    BackupError,
    fsync_dir,
    iso,
    one_line,
    set_name,
    sha256_file,
    utcnow,
    version_tuple,
)
from .crypto import ENC_MAGIC, _decrypt_stream, _Encryptor, derive_key, key_id
from .datastores import (
    DATA_SERVICE,
    HANDLERS,
    NETWORK_SERVICES,
    REGISTRY,
    SERVICES,
    compare_counts,
    handler_class,
    make_target,
)
from .datastores.base import Datastore
from .datastores.chromadb import (
    CHROMA_EXPORT,
    CHROMA_INCLUDE,
    Chroma,
    _json_lines,
    _pack_f32,
    chroma_export_counts,
    drill_chroma_export,
)
from .datastores.neo4j import Neo4j
from .datastores.postgresql import Postgres
from .datastores.redis import Redis, info_fields, redis_loaded
from .drills import Drill, LocalDrill, _atomic_write, drill, write_drill_records
from .runs import Settings, backup, extract, plan_targets, restore
from .sets import list_sets, remove_stale_partials, resolve_set, retention_plan, verify_set
from .targets import CommandFailed, DockerTarget, LocalTarget, Result, Target, _run_process, _wait

# every name of the former single-file module, so that its users (the Ansible modules, the
# tests, bench/) see the same interface
__all__ = [
    "BACKUP_ARGUMENT_SPEC",
    "CHROMA_EXPORT",
    "CHROMA_INCLUDE",
    "CHUNK",
    "CONFIG_DATASTORE",
    "CONFIG_TOP",
    "DATA_SERVICE",
    "ENC_MAGIC",
    "FORMAT_VERSION",
    "HANDLERS",
    "MANIFEST_SCHEMA",
    "NETWORK_SERVICES",
    "PARTIAL_PREFIX",
    "REGISTRY",
    "SERVICES",
    "SET_NAME_RE",
    "ArtefactWriter",
    "BackupError",
    "Chroma",
    "CommandFailed",
    "Ctx",
    "Datastore",
    "DockerTarget",
    "Drill",
    "LocalDrill",
    "LocalTarget",
    "Neo4j",
    "Postgres",
    "Redis",
    "Result",
    "Settings",
    "Target",
    "_CONN",
    "_Encryptor",
    "_atomic_write",
    "_decrypt_stream",
    "_gunzip",
    "_json_lines",
    "_pack_f32",
    "_read_secret_file",
    "_run_process",
    "_wait",
    "backup",
    "backup_argument_spec",
    "chroma_export_counts",
    "compare_counts",
    "derive_key",
    "drill",
    "drill_chroma_export",
    "extract",
    "fsync_dir",
    "handler_class",
    "info_fields",
    "iso",
    "key_id",
    "list_sets",
    "load_config",
    "main",
    "make_target",
    "one_line",
    "plan_targets",
    "read_artefact",
    "redis_loaded",
    "remove_stale_partials",
    "resolve_set",
    "restore",
    "retention_plan",
    "set_name",
    "settings_from_params",
    "sha256_file",
    "utcnow",
    "verify_set",
    "version_tuple",
    "write_drill_records",
]
