"""Filters for the Kubernetes target (roles/kailash_k8s).

Small pure functions, exposed to Ansible by ``FilterModule``:

* ``kailash_k8s_totals``: total requests/limits of a list of workloads (ResourceQuota).
* ``kailash_k8s_env_file``: parse a rendered ``KEY='value'`` env file into a dict.
* ``kailash_k8s_image_errors``: messages for images that are unpinned or ``latest``.
* ``kailash_k8s_cpu``: millicores as a Kubernetes CPU quantity (``2000`` -> ``"2"``).
* ``kailash_backup_config``: the config.json of the backup CronJobs (ConfigMap
  kailash-backup-config), also used by tests/backup/test_ops_image.py.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sizing import (  # noqa: E402
    AnsibleFilterError,
    kailash_bytes,
    kailash_cpu_millis,
    kailash_k8s_quantity,
)

_ENV_LINE = re.compile(r"^(?P<key>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)$")
_IMAGE_RE = re.compile(
    r"^(?P<name>[a-z0-9]+(?:[._/:-][a-z0-9]+)*?)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})|@sha256:[0-9a-f]{64})$"
)


def kailash_k8s_cpu(millis: Any) -> str:
    """Millicores as a Kubernetes CPU quantity: 2000 -> '2', 1500 -> '1500m'."""
    value = (
        kailash_cpu_millis(f"{millis}m") if isinstance(millis, int) else kailash_cpu_millis(millis)
    )
    return str(value // 1000) if value % 1000 == 0 else f"{value}m"


def kailash_k8s_totals(items: Any) -> dict[str, str]:
    """Sum requests and limits over workloads.

    ``items`` is a list of dicts with ``count`` (pods) and ``memory_request``,
    ``memory_limit``, ``cpu_request``, ``cpu_limit`` (one pod's totals, any form the
    sizing filters accept). Returns Kubernetes quantities for a ResourceQuota.
    """
    if not isinstance(items, list):
        raise AnsibleFilterError(f"kailash_k8s_totals: expected a list, got {type(items).__name__}")
    mem_req = mem_lim = cpu_req = cpu_lim = 0
    for item in items:
        count = int(item.get("count", 1))
        mem_req += count * kailash_bytes(item["memory_request"])
        mem_lim += count * kailash_bytes(item["memory_limit"])
        cpu_req += count * kailash_cpu_millis(item["cpu_request"])
        cpu_lim += count * kailash_cpu_millis(item["cpu_limit"])
    return {
        "requests.memory": kailash_k8s_quantity(mem_req),
        "limits.memory": kailash_k8s_quantity(mem_lim),
        "requests.cpu": kailash_k8s_cpu(cpu_req),
        "limits.cpu": kailash_k8s_cpu(cpu_lim),
    }


def kailash_k8s_env_file(text: Any) -> dict[str, str]:
    """Parse ``KEY=value`` / ``KEY='value'`` lines (comments and blanks skipped)."""
    if not isinstance(text, str):
        raise AnsibleFilterError("kailash_k8s_env_file: expected the text of an env file")
    result: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _ENV_LINE.match(line)
        if match is None:
            raise AnsibleFilterError(f"kailash_k8s_env_file: not a KEY=value line: {line!r}")
        value = match.group("value")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        result[match.group("key")] = value
    return result


def kailash_k8s_image_errors(images: Any) -> list[str]:
    """Messages naming each variable whose image is not pinned (no tag, or ``latest``)."""
    if not isinstance(images, dict):
        raise AnsibleFilterError("kailash_k8s_image_errors: expected {variable: image}")
    errors = []
    for variable, image in sorted(images.items()):
        match = _IMAGE_RE.match(image) if isinstance(image, str) else None
        if match is None:
            errors.append(
                f"{variable} must be a pinned image (name:tag or name@sha256:...), got {image!r}"
            )
        elif match.group("tag") == "latest":
            errors.append(f"{variable} may not use the tag 'latest' outside dev, got {image!r}")
    return errors


BACKUP_SECRET_KEYS = {
    "postgresql": "postgresql_password",
    "redis": "redis_admin_password",
    "chromadb": "chromadb_token",
}
BACKUP_KEY_SECRET = "backup_encryption_key"


def kailash_backup_config(params: Any) -> dict[str, Any]:
    """config.json of ``python3 -m kailash_backup`` in the ops image (backend local,
    network mode): every datastore by host and port, every secret as a file under
    ``secret_dir`` (keys of the Secret kailash-secrets, see BACKUP_SECRET_KEYS).

    ``params``: project, services (of postgresql/redis/chromadb), hosts and ports (per
    service), postgresql_user, postgresql_database, redis_admin_user, secret_dir,
    backup_root, report_dir, textfile_dir, work_dir, compress, keep_last, keep_daily,
    keep_weekly; optional encrypt (default true)."""
    if not isinstance(params, dict):
        raise AnsibleFilterError("kailash_backup_config expects a dict")
    missing = [
        k
        for k in ("project", "services", "hosts", "ports", "secret_dir", "backup_root")
        if k not in params
    ]
    if missing:
        raise AnsibleFilterError(f"kailash_backup_config: missing {', '.join(missing)}")
    services = [s for s in params["services"] if s in BACKUP_SECRET_KEYS]
    secret_dir = str(params["secret_dir"]).rstrip("/")
    stores: dict[str, dict[str, Any]] = {}
    for svc in services:
        conf: dict[str, Any] = {
            "host": str(params["hosts"][svc]),
            "port": int(params["ports"][svc]),
        }
        secret = f"{secret_dir}/{BACKUP_SECRET_KEYS[svc]}"
        if svc == "postgresql":
            conf.update(
                user=str(params.get("postgresql_user", "kailash_user")),
                database=str(params.get("postgresql_database", "kailash")),
                password_file=secret,
            )
        elif svc == "redis":
            conf.update(
                user=str(params.get("redis_admin_user", "kailash-admin")), password_file=secret
            )
        else:
            conf.update(token_file=secret, tenants=["default_tenant"])
        stores[svc] = conf
    out: dict[str, Any] = {
        "_comment": "Generated by kailash-deploy (roles/kailash_k8s); secrets are files "
        "(mounted keys of the Secret kailash-secrets), never values here.",
        "project": str(params["project"]),
        "backend": "local",
        "services": services,
        "backup_root": str(params["backup_root"]),
        "compress": bool(params.get("compress", True)),
        "keep_last": int(params.get("keep_last", 7)),
        "keep_daily": int(params.get("keep_daily", 7)),
        "keep_weekly": int(params.get("keep_weekly", 4)),
        "datastores": stores,
    }
    if params.get("encrypt", True):
        out["encryption_key_file"] = f"{secret_dir}/{BACKUP_KEY_SECRET}"
    for key in ("report_dir", "textfile_dir", "work_dir"):
        if params.get(key):
            out[key] = str(params[key])
    return out


class FilterModule:
    """Ansible filter plugin entry point."""

    def filters(self) -> dict[str, Any]:
        return {
            "kailash_k8s_cpu": kailash_k8s_cpu,
            "kailash_k8s_totals": kailash_k8s_totals,
            "kailash_k8s_env_file": kailash_k8s_env_file,
            "kailash_k8s_image_errors": kailash_k8s_image_errors,
            "kailash_backup_config": kailash_backup_config,
        }
