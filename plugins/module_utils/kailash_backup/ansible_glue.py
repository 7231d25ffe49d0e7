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
    # datastore -> the same keys as its own option, secrets apart (what the playbooks pass:
    # they name no datastore); checked against _CONN in settings_from_params
    "datastores": {"type": "dict", "default": {}},
    "datastore_secrets": {"type": "dict", "default": {}, "no_log": True},
    # one set of sub-options for every service (each reads the keys it knows)
    **{svc: {"type": "dict", "default": {}, "options": _CONN} for svc in SERVICES},
}


def backup_argument_spec(specific: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The module's own options plus the shared ones (deep enough copies)."""
    spec = json.loads(json.dumps(BACKUP_ARGUMENT_SPEC))
    spec.update(json.loads(json.dumps(specific)))
    return spec


_SECRET_KEYS = tuple(key for key, spec in _CONN.items() if spec.get("no_log"))


def _checked_connections(
    given: Any, option: str, allowed: tuple[str, ...]
) -> dict[str, dict[str, Any]]:
    """O(datastores) or O(datastore_secrets): datastore -> its connection keys (only
    ``allowed``), checked and converted like the per-datastore options. An unknown datastore
    or key, or a value of the wrong type, is an error naming it (never the value)."""
    if not isinstance(given, dict):
        raise BackupError(f"{option}: a mapping datastore -> settings, got {type(given).__name__}")
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    validator = ArgumentSpecValidator({key: _CONN[key] for key in allowed})
    out: dict[str, dict[str, Any]] = {}
    for svc, conf in given.items():
        if svc not in SERVICES:
            raise BackupError(f"{option}: unknown datastore {svc!r} (known: {', '.join(SERVICES)})")
        if not isinstance(conf, dict):
            raise BackupError(f"{option}.{svc}: a mapping of settings, got {type(conf).__name__}")
        wrong = sorted(set(conf) - set(allowed))
        if wrong:
            raise BackupError(f"{option}.{svc}: unknown or misplaced key(s) {', '.join(wrong)}"
                              f" (allowed: {', '.join(allowed)})")
        result = validator.validate(conf)
        if result.error_messages:
            raise BackupError(f"{option}.{svc}: {'; '.join(result.error_messages)}")
        out[svc] = {k: v for k, v in result.validated_parameters.items() if v is not None}
    return out


def settings_from_params(params: dict[str, Any], **extra: Any) -> Settings:
    """Settings from module parameters (None sub-options dropped: handler defaults apply).

    A datastore's settings: its O(datastores) and O(datastore_secrets) entries, then its own
    option (O(postgresql), ...) on top.
    """
    plain = _checked_connections(params.get("datastores") or {}, "datastores",
                                 tuple(key for key in _CONN if key not in _SECRET_KEYS))
    secret = _checked_connections(
        params.get("datastore_secrets") or {}, "datastore_secrets", _SECRET_KEYS
    )
    datastores = {
        svc: {**plain.get(svc, {}), **secret.get(svc, {}),
              **{k: v for k, v in (params.get(svc) or {}).items() if v is not None}}
        for svc in SERVICES
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
