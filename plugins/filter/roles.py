"""Which services' roles carry a given file: how the cross-cutting playbooks and roles find
the services that take part in something (a backup spec, a rotation step) without naming
any (issue #12; docs/datastore-role-contract.md)."""

from __future__ import annotations

import os
from typing import Any

import yaml
from ansible.errors import AnsibleFilterError


def kailash_roles_with(
    services: Any, roles_dir: str, relpath: str, present: bool = True
) -> list[str]:
    """The ``services`` (in their order) whose role ``<roles_dir>/<service>`` has the file
    ``relpath`` (``vars/backup.yml``, ``tasks/rotate.yml``); with ``present=False`` those
    whose role has not."""
    if isinstance(services, (str, bytes)) or not hasattr(services, "__iter__"):
        raise AnsibleFilterError(
            f"kailash_roles_with: expected a list of services, got {services!r}"
        )
    return [
        str(svc) for svc in services
        if os.path.isfile(os.path.join(roles_dir, str(svc), relpath)) == present
    ]  # fmt: skip


def kailash_role_specs(services: Any, roles_dir: str, name: str) -> dict[str, Any]:
    """The spec ``<service>__<name>`` of each of the ``services`` (in their order) whose role
    has ``vars/<name>.yml``: ``{service: spec}``. The file is read as plain YAML (a spec is
    data; Jinja in it stays text until used)."""
    out: dict[str, Any] = {}
    for svc in kailash_roles_with(services, roles_dir, f"vars/{name}.yml"):
        path = os.path.join(roles_dir, svc, "vars", f"{name}.yml")
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
        key = f"{svc}__{name}"
        if key not in data:
            raise AnsibleFilterError(f"kailash_role_specs: {path} does not set {key}")
        out[svc] = data[key]
    return out


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"kailash_roles_with": kailash_roles_with, "kailash_role_specs": kailash_role_specs}
