"""Which services' roles carry a given file: how the cross-cutting playbooks and roles find
the services that take part in something (a backup spec, a rotation step) without naming
any (issue #12; docs/datastore-role-contract.md)."""

from __future__ import annotations

import os
from typing import Any

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


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"kailash_roles_with": kailash_roles_with}
