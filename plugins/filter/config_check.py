"""Checks of server settings before they are rendered, and of the servers' own verdicts.

Two layers guard a rendered server configuration (issue #11, item 3):

* **Static**, in every role's preflight, for both targets (the Kubernetes render has no
  server binary to ask): ``kailash_pg_settings_errors`` parses each user-set PostgreSQL
  setting the way PostgreSQL 15 does (its type, unit, range and enum values come from
  ``catalog/postgresql15.json``, a dump of ``pg_settings`` from our image), and
  ``kailash_redis_settings_errors`` checks Redis settings against ``catalog/redis7.json``
  (names, and the kind of value their defaults have).
* **The server's own binary**, on the Docker host, before a changed file replaces the live
  one (``roles/kailash_stack/tasks/config_check.yml``); ``kailash_config_rejection`` turns
  the server's output into a message that names the variable the user set.
"""

from __future__ import annotations

import json
import math
import re
from functools import cache
from pathlib import Path
from typing import Any

CATALOG = Path(__file__).resolve().parent / "catalog"

# PostgreSQL's unit tables (guc.c): memory units in bytes, time units in milliseconds.
_PG_MEMORY = {"B": 1, "kB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_PG_TIME = {"us": 0.001, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}


@cache
def _catalog(name: str) -> dict[str, Any]:
    return json.loads((CATALOG / name).read_text())


def _pg_unit_value(unit: str) -> tuple[dict[str, float], float]:
    """The unit table of a setting and the size of its base unit in that table's terms."""
    match = re.fullmatch(r"(\d*)(\w+)", unit)
    count, name = int(match.group(1) or 1), match.group(2)
    table = _PG_MEMORY if name in _PG_MEMORY else _PG_TIME
    return table, count * table[name]


def _pg_parse_int(text: str, unit: str | None) -> float | None:
    """PostgreSQL's parse_int: a number, optionally followed by a unit of the setting's kind."""
    match = re.fullmatch(
        r"\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|0x[0-9a-fA-F]+)\s*(\w*)\s*", text
    )
    if not match:
        return None
    number = (
        float(int(match.group(1), 16)) if match.group(1).startswith("0x") else float(match.group(1))
    )
    suffix = match.group(2)
    if not suffix:
        return number
    if unit is None:
        return None
    table, base = _pg_unit_value(unit)
    if suffix not in table:
        return None
    return number * table[suffix] / base


def _pg_parse_bool(text: str) -> bool:
    """PostgreSQL's parse_bool: true/false/yes/no and their prefixes, on/off (two letters
    at least), 1/0."""
    word = text.strip().lower()
    if not word:
        return False
    if word in ("1", "0") or word in ("on", "of", "off"):
        return True
    return any(full.startswith(word) for full in ("true", "false", "yes", "no"))


# Enum values PostgreSQL accepts but pg_settings.enumvals does not list (hidden aliases).
_PG_HIDDEN_ENUM = {"wal_level": ["archive", "hot_standby"]}


def _pg_value_error(name: str, value: Any, spec: dict[str, Any]) -> str | None:
    text = ("on" if value else "off") if isinstance(value, bool) else str(value)
    kind = spec["type"]
    if kind == "bool":
        return None if _pg_parse_bool(text) else f"must be a boolean (on/off), got {value!r}"
    if kind == "enum":
        choices = spec.get("enum") or []
        accepted = [c.lower() for c in choices] + _PG_HIDDEN_ENUM.get(name, [])
        if "on" in accepted and "off" in accepted:  # PostgreSQL's hidden boolean spellings
            accepted += ["true", "false", "yes", "no", "1", "0"]
        return (
            None
            if text.strip().lower() in accepted
            else (f"must be one of {', '.join(choices)}, got {value!r}")
        )
    if kind in ("integer", "real"):
        number = _pg_parse_int(text, spec.get("unit"))
        low, high = float(spec["min"]), float(spec["max"])
        unit = (
            f" (unit {spec['unit']}: a number, or with a unit such as "
            f"{'MB' if spec.get('unit') in ('B', 'kB', '8kB', 'MB') else 's'})"
            if spec.get("unit")
            else ""
        )
        if number is None or math.isnan(number):
            return (
                f"must be a{'n integer' if kind == 'integer' else ' number'}{unit}, got {value!r}"
            )
        if kind == "integer":
            number = round(number)
        if not low <= number <= high:
            return f"{value!r} is outside the valid range {spec['min']} .. {spec['max']}{unit}"
        return None
    return None  # strings: PostgreSQL checks their content itself (the binary check catches it)


def kailash_pg_settings_errors(settings: Any, variable: str = "postgresql_settings") -> list[str]:
    """Errors in PostgreSQL settings (name -> value), each naming ``<variable>.<name>``."""
    if not isinstance(settings, dict):
        return [f"{variable} must be a mapping of setting -> value, got {type(settings).__name__}"]
    catalog = {k.lower(): v for k, v in _catalog("postgresql15.json")["settings"].items()}
    errors = []
    for name, value in settings.items():
        key = str(name).lower()
        if "." in key:  # custom (extension) settings: any value
            continue
        spec = catalog.get(key)
        if spec is None:
            errors.append(f"{variable}.{name}: PostgreSQL 15 has no setting of that name")
            continue
        if value is None or isinstance(value, (dict, list)):
            errors.append(f"{variable}.{name} must be a single value, got {json.dumps(value)}")
            continue
        problem = _pg_value_error(key, value, spec)
        if problem:
            errors.append(f"{variable}.{name} {problem}")
    return errors


_REDIS_MEMORY = re.compile(r"-?\d+([kmg]b?|b)?", re.IGNORECASE)
_REDIS_ENUMS = {
    "maxmemory-policy": [
        "volatile-lru",
        "allkeys-lru",
        "volatile-lfu",
        "allkeys-lfu",
        "volatile-random",
        "allkeys-random",
        "volatile-ttl",
        "noeviction",
    ],
    "appendfsync": ["always", "everysec", "no"],
    "loglevel": ["debug", "verbose", "notice", "warning"],
    "repl-diskless-load": ["disabled", "on-empty-db", "swapdb"],
}


def kailash_redis_settings_errors(settings: Any, variable: str = "redis_settings") -> list[str]:
    """Errors in Redis settings (directive -> value), each naming ``<variable>.<name>``."""
    if not isinstance(settings, dict):
        return [
            f"{variable} must be a mapping of directive -> value, got {type(settings).__name__}"
        ]
    defaults = _catalog("redis7.json")["defaults"]
    errors = []
    for name, value in settings.items():
        key = str(name).lower()
        if key not in defaults:
            errors.append(f"{variable}.{name}: Redis 7.0 has no config directive of that name")
            continue
        if value is None or isinstance(value, (dict, list)) or "\n" in str(value):
            errors.append(f"{variable}.{name} must be a single-line value, got {json.dumps(value)}")
            continue
        text = ("yes" if value else "no") if isinstance(value, bool) else str(value).strip()
        default = defaults[key]
        if key in _REDIS_ENUMS and text.lower() not in _REDIS_ENUMS[key]:
            errors.append(
                f"{variable}.{name} must be one of {', '.join(_REDIS_ENUMS[key])}, got {value!r}"
            )
        elif default in ("yes", "no") and text.lower() not in ("yes", "no"):
            errors.append(f"{variable}.{name} must be yes or no, got {value!r}")
        elif re.fullmatch(r"-?\d+", default) and not _REDIS_MEMORY.fullmatch(text):
            errors.append(
                f"{variable}.{name} must be a number (memory values may end in kb, mb, gb),"
                f" got {value!r}"
            )
    return errors


def _redact(text: str) -> str:
    """Redis echoes the offending line: never let a password (>secret, #hash) through."""
    return re.sub(r"(\s)([>#<])(?!>)\S+", r"\1\2***", text)


def kailash_config_rejection(
    output: Any,
    service: str,
    image: str,
    keymap: Any = None,
    key_pattern: str = "",
    files: Any = None,
    values: Any = None,
) -> str:
    """The message for a configuration the server's own binary refused.

    ``output`` is what the check printed; ``key_pattern`` a regex whose first group is a
    setting name in that output; ``keymap`` maps such names to the variable the user sets
    (e.g. ``shared_buffers`` -> ``postgresql_settings.shared_buffers``). When no setting name
    is found, ``values`` (variable -> value the user set) names the variables whose value the
    message quotes (``could not access file "no_such_ext"``).
    """
    text = _redact(str(output or "")).strip()
    keymap = keymap or {}
    keys = []
    if key_pattern:
        for match in re.finditer(key_pattern, text, flags=re.MULTILINE):
            key = next((group for group in match.groups() if group), "")
            if key not in keys:
                keys.append(key)
    named = [
        keymap.get(k, keymap.get(k.lower(), f"{k} (a setting the role derives)")) for k in keys
    ]
    if not named:
        named = [
            var
            for var, value in (values or {}).items()
            if len(str(value)) >= 3 and re.search(rf"\b{re.escape(str(value))}\b", text)
        ]
    lines = [line for line in text.splitlines() if line.strip()]
    essential = [line for line in lines if "skipping missing configuration file" not in line]
    which = ", ".join(files or []) or "configuration"
    return (
        f"{service}: the rendered {which} was refused by the server's own binary ({image}); "
        f"nothing was changed and the running service is untouched. "
        + (f"Set by: {', '.join(named)}. " if named else "")
        + "The server says: "
        + " | ".join(essential[-8:])
    )


def kailash_subnet_errors(
    networks: Any, taken: Any = None, variable: str = "kailash_networks"
) -> list[str]:
    """Errors in the stack's subnets: malformed, overlapping each other, or overlapping a
    network or route the host already has (``taken``: list of {name, subnet})."""
    import ipaddress

    if not isinstance(networks, dict) or not networks:
        return [f"{variable} must map network names to subnets, got {json.dumps(networks)}"]
    errors: list[str] = []
    parsed = {}
    for name, subnet in networks.items():
        try:
            parsed[name] = ipaddress.ip_network(str(subnet), strict=True)
        except ValueError as exc:
            errors.append(
                f"{variable}.{name} must be a subnet in CIDR form, got {json.dumps(subnet)} ({exc})"
            )
    names = list(parsed)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if parsed[a].overlaps(parsed[b]):
                errors.append(f"{variable}.{a} ({parsed[a]}) overlaps {variable}.{b} ({parsed[b]})")
    for other in taken or []:
        try:
            net = ipaddress.ip_network(str(other["subnet"]), strict=False)
        except (ValueError, KeyError, TypeError):
            continue
        for name, mine in parsed.items():
            if mine.version == net.version and mine.overlaps(net):
                errors.append(
                    f"{variable}.{name} ({mine}) overlaps "
                    f"{other.get('name', 'a host network')} ({net})"
                )
    return errors


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "kailash_pg_settings_errors": kailash_pg_settings_errors,
            "kailash_redis_settings_errors": kailash_redis_settings_errors,
            "kailash_config_rejection": kailash_config_rejection,
            "kailash_subnet_errors": kailash_subnet_errors,
        }
