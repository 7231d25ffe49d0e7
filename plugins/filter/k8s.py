"""Filters for the Kubernetes target (roles/kailash_k8s).

Small pure functions, exposed to Ansible by ``FilterModule``:

* ``kailash_k8s_totals``: total requests/limits of a list of workloads (ResourceQuota).
* ``kailash_k8s_env_file``: parse a rendered ``KEY='value'`` env file into a dict.
* ``kailash_k8s_image_errors``: messages for images that are unpinned or ``latest``.
* ``kailash_k8s_cpu``: millicores as a Kubernetes CPU quantity (``2000`` -> ``"2"``).
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


class FilterModule:
    """Ansible filter plugin entry point."""

    def filters(self) -> dict[str, Any]:
        return {
            "kailash_k8s_cpu": kailash_k8s_cpu,
            "kailash_k8s_totals": kailash_k8s_totals,
            "kailash_k8s_env_file": kailash_k8s_env_file,
            "kailash_k8s_image_errors": kailash_k8s_image_errors,
        }
