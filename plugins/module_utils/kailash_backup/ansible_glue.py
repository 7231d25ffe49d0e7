"""What the Ansible modules kailash_backup, kailash_restore and kailash_restore_drill share:
the argument spec of the common options and Settings from module parameters."""

from __future__ import annotations

import json
from typing import Any

from .common import BackupError
from .datastores import SERVICES
from .runs import Settings

_CONN = {
    "container": {"type": "str"},
    "host": {"type": "str"},
    "token": {"type": "str", "no_log": True},
    "replace_collections": {"type": "bool"},
    "image": {"type": "str"},
    "user": {"type": "str"},
    "password": {"type": "str", "no_log": True},
    "port": {"type": "int"},
    "stop_command": {"type": "list", "elements": "str"},
    "start_command": {"type": "list", "elements": "str"},
    "health_command": {"type": "list", "elements": "str"},
    "database": {"type": "str"},
    "databases": {"type": "list", "elements": "str"},
    "socket_dir": {"type": "str"},
    "restore_globals": {"type": "bool"},
    "data_path": {"type": "str"},
    "start_timeout": {"type": "float"},
}

# Shared options; documented in plugins/doc_fragments/kailash_backup.py.
BACKUP_ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "backup_root": {"type": "path", "required": True},
    "project": {"type": "str", "default": "kailash"},
    "backend": {"type": "str", "default": "docker", "choices": ["docker", "local"]},
    "services": {"type": "list", "elements": "str", "default": list(SERVICES)},
    "encryption_key": {"type": "str", "no_log": True},
    "docker_cli": {"type": "str", "default": "docker"},
    # one set of sub-options for every service (each reads the keys it knows)
    **{svc: {"type": "dict", "default": {}, "options": _CONN} for svc in SERVICES},
}


def backup_argument_spec(specific: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The module's own options plus the shared ones (deep enough copies)."""
    spec = json.loads(json.dumps(BACKUP_ARGUMENT_SPEC))
    spec.update(json.loads(json.dumps(specific)))
    return spec


def settings_from_params(params: dict[str, Any], **extra: Any) -> Settings:
    """Settings from module parameters (None sub-options dropped: handler defaults apply)."""
    datastores = {
        svc: {k: v for k, v in (params.get(svc) or {}).items() if v is not None} for svc in SERVICES
    }
    unknown = [svc for svc in params["services"] if svc not in SERVICES]
    if unknown:
        raise BackupError(f"services: unknown {', '.join(unknown)} (known: {', '.join(SERVICES)})")
    return Settings(
        backup_root=params["backup_root"],
        project=params["project"],
        backend=params["backend"],
        services=list(params["services"]),
        datastores=datastores,
        encryption_key=params.get("encryption_key") or None,
        docker=params["docker_cli"],
        **extra,
    )
