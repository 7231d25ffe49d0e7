"""Memory and CPU sizing filters for the Kailash datastores.

Every filter is a small pure function; ``FilterModule.filters()`` exposes them to Ansible.
Invalid input raises ``AnsibleFilterError`` (a ``ValueError`` subclass when Ansible is not
installed) whose message quotes the offending value and says which format is accepted.

Memory sizes accepted by ``kailash_bytes``
==========================================

Integers (and floats, rounded down) are a byte count >= 0; ``bool`` is rejected.
Strings are ``<number><unit>`` with no inner whitespace (outer whitespace is ignored):

=========================  ==============  =====================  ====================
Unit (case-sensitive       Style           Multiplier             Decimal fraction
unless noted)                                                     allowed?
=========================  ==============  =====================  ====================
(none), e.g. ``1048576``   bytes / k8s     1                      yes (k8s)
``Ki`` ``Mi`` ``Gi``       Kubernetes      1024 ** 1..4           yes (``1.5Gi``)
``Ti``                     binary
``k`` ``M`` ``G`` ``T``    Kubernetes      1000 ** 1..4           yes (``0.5G``)
                           decimal SI
``kB`` ``MB`` ``GB``       PostgreSQL and  1024 ** 1..4           no
``TB`` (any case, so       Redis
also ``gb`` ``Gb``)
``K`` ``m`` ``g`` ``t``    Neo4j / JVM     1024 ** 1..4           no
=========================  ==============  =====================  ====================

Ambiguities are resolved by case, Kubernetes first: lowercase ``k`` and uppercase
``M``/``G``/``T`` are Kubernetes decimal SI (1000-based); the JVM forms are lowercase
``m``/``g``/``t`` and uppercase ``K`` (write JVM kibibytes as ``512K``; ``512k`` is
512000 bytes). Two-letter ``..B`` units are always 1024-based, as in PostgreSQL and Redis.
Fractional byte counts after conversion are rounded down (``1.1Ki`` -> 1126).

Output formats
==============

* ``kailash_k8s_quantity``: largest of ``Ti``/``Gi``/``Mi``/``Ki`` that is exact, else bytes.
* ``kailash_pg_size``: floored to kB, then the largest exact of ``TB``/``GB``/``MB``/``kB``.
* ``kailash_jvm_size``: ``g``/``m``/``k`` (floored to MiB when >= 1 MiB), else bytes.
* ``kailash_redis_size``: ``gb``/``mb``/``kb`` (floored to MiB when >= 1 MiB), else bytes.

CPU quantities
==============

``kailash_cpu_millis`` accepts ``"1000m"`` (millicores), ``"2"``/``"0.5"`` (cores, at most
three decimals) and non-negative ints/floats (cores); ``kailash_docker_cpus`` renders the
result as a decimal core count for ``docker run --cpus`` (``"2"``, ``"0.5"``, ``"1.25"``).
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # pragma: no cover - exercised by a test that hides ansible

    class AnsibleFilterError(ValueError):  # type: ignore[no-redef]
        """Stand-in for ansible.errors.AnsibleFilterError when Ansible is absent."""


KIB = 1024
MIB = 1024**2
GIB = 1024**3
TIB = 1024**4

# The smallest memory limit PostgreSQL is tuned for (kailash_pg_tuning) and deployed with
# (the postgresql role's preflight, through kailash_pg_memory_errors): the one place.
PG_MIN_MEMORY_LIMIT = 256 * MIB

_UNITS: dict[str, tuple[int, bool]] = {
    # unit: (multiplier, decimal fraction allowed)
    "": (1, True),
    "Ki": (KIB, True),
    "Mi": (MIB, True),
    "Gi": (GIB, True),
    "Ti": (TIB, True),
    "k": (1000, True),
    "M": (1000**2, True),
    "G": (1000**3, True),
    "T": (1000**4, True),
    "K": (KIB, False),
    "m": (MIB, False),
    "g": (GIB, False),
    "t": (TIB, False),
}
_BYTE_UNITS: dict[str, int] = {"kb": KIB, "mb": MIB, "gb": GIB, "tb": TIB}

_SIZE_RE = re.compile(r"(?P<num>[0-9]+(?:\.[0-9]+)?)(?P<unit>[A-Za-z]*)")
_CPU_RE = re.compile(r"(?P<num>[0-9]+(?:\.[0-9]+)?)(?P<unit>m?)")

_SIZE_FORMATS = (
    "a byte count >= 0 (e.g. 1048576) or <number><unit> with a Kubernetes unit "
    "Ki/Mi/Gi/Ti or k/M/G/T (e.g. 4Gi, 1.5Gi, 500M), a PostgreSQL/Redis unit "
    "kB/MB/GB/TB in any case (e.g. 256MB, 1gb) or a JVM unit K/m/g/t (e.g. 512m, 2g)"
)
_CPU_FORMATS = (
    "millicores like '500m', cores like '2' or '0.5' (at most 3 decimals), "
    "or a non-negative number of cores"
)


def _fail(msg: str) -> AnsibleFilterError:
    return AnsibleFilterError(msg)


def kailash_bytes(value: Any) -> int:
    """Parse a memory size in any supported form into a byte count (see module doc)."""
    if isinstance(value, bool) or value is None:
        raise _fail(f"kailash_bytes: invalid memory size {value!r}; expected {_SIZE_FORMATS}")
    if isinstance(value, int):
        if value < 0:
            raise _fail(f"kailash_bytes: negative memory size {value!r}; expected {_SIZE_FORMATS}")
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value) or value < 0:
            raise _fail(f"kailash_bytes: invalid memory size {value!r}; expected {_SIZE_FORMATS}")
        return math.floor(value)
    if not isinstance(value, str):
        raise _fail(
            f"kailash_bytes: invalid memory size {value!r} of type {type(value).__name__}; "
            f"expected {_SIZE_FORMATS}"
        )

    text = value.strip()
    if text.startswith("-"):
        raise _fail(f"kailash_bytes: negative memory size {value!r}; expected {_SIZE_FORMATS}")
    match = _SIZE_RE.fullmatch(text)
    if match is None:
        raise _fail(f"kailash_bytes: invalid memory size {value!r}; expected {_SIZE_FORMATS}")
    num, unit = match.group("num"), match.group("unit")
    if unit in _UNITS:
        multiplier, fraction_ok = _UNITS[unit]
    elif unit.lower() in _BYTE_UNITS:
        multiplier, fraction_ok = _BYTE_UNITS[unit.lower()], False
    else:
        raise _fail(
            f"kailash_bytes: unknown unit {unit!r} in memory size {value!r}; "
            f"expected {_SIZE_FORMATS}"
        )
    if "." in num and not fraction_ok:
        raise _fail(
            f"kailash_bytes: decimal fraction in memory size {value!r} is only allowed with "
            "Kubernetes units (Ki/Mi/Gi/Ti, k/M/G/T or none); use a whole number with "
            f"{unit!r}"
        )
    return math.floor(Fraction(num) * multiplier)


def _render(n_bytes: int, units: tuple[tuple[int, str], ...]) -> str:
    """Render n_bytes with the first (largest) unit that divides it exactly."""
    if n_bytes == 0:
        return "0"
    for multiplier, suffix in units:
        if n_bytes % multiplier == 0:
            return f"{n_bytes // multiplier}{suffix}"
    return str(n_bytes)


def _floor_mib(n_bytes: int) -> int:
    return n_bytes // MIB * MIB


def kailash_k8s_quantity(n_bytes: Any) -> str:
    """Kubernetes quantity using the largest exact binary unit, e.g. 4294967296 -> '4Gi'."""
    n = kailash_bytes(n_bytes)
    return _render(n, ((TIB, "Ti"), (GIB, "Gi"), (MIB, "Mi"), (KIB, "Ki")))


def kailash_pg_size(n_bytes: Any) -> str:
    """PostgreSQL size floored to kB with the largest exact unit, e.g. 268435456 -> '256MB'."""
    n = kailash_bytes(n_bytes) // KIB * KIB
    return _render(n, ((TIB, "TB"), (GIB, "GB"), (MIB, "MB"), (KIB, "kB"))) if n else "0kB"


def kailash_jvm_size(n_bytes: Any) -> str:
    """Neo4j/JVM size ('2g', '512m', '512k'); floored to MiB when >= 1 MiB."""
    n = kailash_bytes(n_bytes)
    if n >= MIB:
        n = _floor_mib(n)
    return _render(n, ((GIB, "g"), (MIB, "m"), (KIB, "k")))


def kailash_redis_size(n_bytes: Any) -> str:
    """Redis size ('1gb', '512mb', '1kb'); floored to MiB when >= 1 MiB."""
    n = kailash_bytes(n_bytes)
    if n >= MIB:
        n = _floor_mib(n)
    return _render(n, ((GIB, "gb"), (MIB, "mb"), (KIB, "kb")))


def _request_limit(
    name: str, memory_request: Any, memory_limit: Any, min_limit: int
) -> tuple[int, int]:
    request = kailash_bytes(memory_request)
    limit = kailash_bytes(memory_limit)
    if request > limit:
        raise _fail(
            f"{name}: memory request {memory_request!r} exceeds limit {memory_limit!r}; "
            "the request must be <= the limit"
        )
    if limit < min_limit:
        raise _fail(
            f"{name}: memory limit {memory_limit!r} is below the minimum "
            f"{kailash_k8s_quantity(min_limit)}; give a limit of at least that size"
        )
    return request, limit


def _max_connections(value: Any) -> int:
    text = value.strip() if isinstance(value, str) else ""
    int_like = (isinstance(value, int) and not isinstance(value, bool)) or (
        text.isascii() and text.isdecimal()
    )
    if not int_like or int(value) < 1:
        raise _fail(
            f"kailash_pg_tuning: invalid max_connections {value!r}; "
            "expected an integer >= 1 (int or string of digits)"
        )
    return int(value)


def kailash_pg_tuning(
    memory_request: Any, memory_limit: Any, max_connections: Any = 200
) -> dict[str, Any]:
    """PostgreSQL 15 memory settings for a container with the given request and limit."""
    request, limit = _request_limit(
        "kailash_pg_tuning", memory_request, memory_limit, PG_MIN_MEMORY_LIMIT
    )
    connections = _max_connections(max_connections)

    shared_buffers = max(_floor_mib(request // 4), 128 * MIB)
    effective_cache_size = _floor_mib(limit // 2)
    maintenance_work_mem = min(max(_floor_mib(limit // 32), 64 * MIB), 2 * GIB)
    work_mem = max(_floor_mib((limit - shared_buffers) // (connections * 4)), 4 * MIB)

    return {
        "shared_buffers": kailash_pg_size(shared_buffers),
        "effective_cache_size": kailash_pg_size(effective_cache_size),
        "maintenance_work_mem": kailash_pg_size(maintenance_work_mem),
        "work_mem": kailash_pg_size(work_mem),
        "wal_buffers": "16MB",
        "min_wal_size": "1GB",
        "max_wal_size": "4GB",
        "checkpoint_completion_target": "0.9",
        "random_page_cost": "1.1",
        "effective_io_concurrency": "200",
        "max_connections": connections,
    }


def kailash_pg_memory_errors(values: Any, prefix: str) -> list[str]:
    """PostgreSQL's own size rules, as messages naming the variables ``<prefix>_<key>``:
    ``memory_limit`` at least PG_MIN_MEMORY_LIMIT (256Mi) and ``shm_size`` (its /dev/shm)
    not above the limit. A malformed size is kailash_resource_errors' to report: skipped."""
    if not isinstance(values, dict):
        return [f"{prefix}: sizes must be a dict, got {type(values).__name__}"]
    try:
        limit = kailash_bytes(values["memory_limit"])
    except (KeyError, AnsibleFilterError):
        return []
    errors = []
    if limit < PG_MIN_MEMORY_LIMIT:
        errors.append(
            f"{prefix}_memory_limit must be at least {kailash_k8s_quantity(PG_MIN_MEMORY_LIMIT)} "
            f"(got {values['memory_limit']})"
        )
    try:
        shm = kailash_bytes(values["shm_size"]) if "shm_size" in values else None
    except AnsibleFilterError:
        shm = None
    if shm is not None and shm > limit:
        errors.append(
            f"{prefix}_shm_size ({values['shm_size']}) must not exceed "
            f"{prefix}_memory_limit ({values['memory_limit']})"
        )
    return errors


def kailash_neo4j_tuning(memory_request: Any, memory_limit: Any) -> dict[str, str]:
    """Neo4j heap and page cache sizes for a container with the given request and limit."""
    request, limit = _request_limit("kailash_neo4j_tuning", memory_request, memory_limit, GIB)
    return {
        "heap_initial_size": kailash_jvm_size(_floor_mib(request // 2)),
        "heap_max_size": kailash_jvm_size(_floor_mib(limit // 2)),
        "pagecache_size": kailash_jvm_size(_floor_mib(limit // 4)),
    }


def kailash_redis_maxmemory(memory_limit: Any) -> str:
    """Redis maxmemory: 50 % of the container limit, e.g. '2Gi' -> '1gb'."""
    limit = kailash_bytes(memory_limit)
    if limit < 64 * MIB:
        raise _fail(
            f"kailash_redis_maxmemory: memory limit {memory_limit!r} is below the minimum "
            "64Mi; give a limit of at least that size"
        )
    return kailash_redis_size(_floor_mib(limit // 2))


def kailash_cpu_millis(value: Any) -> int:
    """Parse a CPU quantity into millicores: '1000m' -> 1000, '2' -> 2000, '0.5' -> 500."""
    if isinstance(value, bool) or value is None:
        raise _fail(f"kailash_cpu_millis: invalid CPU quantity {value!r}; expected {_CPU_FORMATS}")
    if isinstance(value, int):
        if value < 0:
            raise _fail(
                f"kailash_cpu_millis: negative CPU quantity {value!r}; expected {_CPU_FORMATS}"
            )
        return int(value) * 1000
    if isinstance(value, float):
        if not math.isfinite(value) or value < 0:
            raise _fail(
                f"kailash_cpu_millis: invalid CPU quantity {value!r}; expected {_CPU_FORMATS}"
            )
        millis = Fraction(repr(value)) * 1000
    elif isinstance(value, str):
        match = _CPU_RE.fullmatch(value.strip())
        if match is None:
            raise _fail(
                f"kailash_cpu_millis: invalid CPU quantity {value!r}; expected {_CPU_FORMATS}"
            )
        scale = 1 if match.group("unit") == "m" else 1000
        millis = Fraction(match.group("num")) * scale
    else:
        raise _fail(
            f"kailash_cpu_millis: invalid CPU quantity {value!r} of type "
            f"{type(value).__name__}; expected {_CPU_FORMATS}"
        )
    if millis.denominator != 1:
        raise _fail(
            f"kailash_cpu_millis: CPU quantity {value!r} is finer than 1m (0.001 core); "
            f"expected {_CPU_FORMATS}"
        )
    return int(millis)


def kailash_docker_cpus(value: Any) -> str:
    """Docker --cpus value from a CPU quantity: '2000m' -> '2', '500m' -> '0.5'."""
    cores, millis = divmod(kailash_cpu_millis(value), 1000)
    if millis == 0:
        return str(cores)
    return f"{cores}.{millis:03d}".rstrip("0")


def kailash_resource_errors(values: Any, prefix: str) -> list[str]:
    """Validate a service's resources; return messages naming the variables.

    ``values`` maps some of ``memory_request``, ``memory_limit``, ``cpu_request``,
    ``cpu_limit`` (and ``replicas``) to the user's values; each message names the
    variable ``<prefix>_<key>``. An empty list means all is well. Used by role
    preflights so bad input fails before any change, naming what to fix.
    """
    if not isinstance(values, dict):
        return [f"{prefix}: resources must be a dict, got {type(values).__name__}"]
    errors: list[str] = []
    parsed: dict[str, int] = {}
    for key, parse in (
        ("memory_request", kailash_bytes),
        ("memory_limit", kailash_bytes),
        ("cpu_request", kailash_cpu_millis),
        ("cpu_limit", kailash_cpu_millis),
    ):
        if key not in values:
            continue
        try:
            parsed[key] = parse(values[key])
        except AnsibleFilterError as exc:
            errors.append(f"{prefix}_{key}: {exc}")
    for kind in ("memory", "cpu"):
        req, lim = parsed.get(f"{kind}_request"), parsed.get(f"{kind}_limit")
        if req is not None and lim is not None and req > lim:
            errors.append(
                f"{prefix}_{kind}_request ({values[f'{kind}_request']!r}) exceeds "
                f"{prefix}_{kind}_limit ({values[f'{kind}_limit']!r})"
            )
    if parsed.get("memory_limit") == 0:
        errors.append(f"{prefix}_memory_limit must be greater than 0")
    if "replicas" in values:
        replicas = values["replicas"]
        if isinstance(replicas, bool) or not str(replicas).isdigit() or int(replicas) < 1:
            errors.append(f"{prefix}_replicas must be a whole number >= 1, got {replicas!r}")
    return errors


class FilterModule:
    """Ansible filter plugin entry point."""

    def filters(self) -> dict[str, Any]:
        return {
            "kailash_bytes": kailash_bytes,
            "kailash_k8s_quantity": kailash_k8s_quantity,
            "kailash_pg_size": kailash_pg_size,
            "kailash_jvm_size": kailash_jvm_size,
            "kailash_redis_size": kailash_redis_size,
            "kailash_pg_tuning": kailash_pg_tuning,
            "kailash_pg_memory_errors": kailash_pg_memory_errors,
            "kailash_neo4j_tuning": kailash_neo4j_tuning,
            "kailash_redis_maxmemory": kailash_redis_maxmemory,
            "kailash_cpu_millis": kailash_cpu_millis,
            "kailash_docker_cpus": kailash_docker_cpus,
            "kailash_resource_errors": kailash_resource_errors,
        }
