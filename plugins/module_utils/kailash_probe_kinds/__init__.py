"""The probe kinds of the kailash_*_probe modules and of kailash_probes: one module each,
and the registry (kind name -> Kind).

A kind is what one probe module does: its options (the Ansible argument spec), the keys of
its result for a down service (facts), ``check(params)`` (``make_check`` of
``kailash_probe.run_probe``), its own option checks and the Python library it needs. Each
lives in its own module here (``postgresql.py``, ``redis.py``, ``chromadb.py``,
``neo4j.py``, ``generic_http.py`` for the http kind), which declares its ``NAME`` and its
``KIND``; this registry is built from them and never names a kind itself.
``kailash_postgresql_probe`` and its siblings run one kind (``probe_main``);
``kailash_probes`` runs several at once in threads (``probe_one``), with the same options,
checks and results, so one module run probes a whole stack.

Imported by the modules as ``ansible.module_utils.kailash_probe_kinds`` (AnsiballZ ships
the package: its kind modules are imported statically below). The PostgreSQL (psycopg) and
Neo4j drivers are imported when a probe of theirs runs, not before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.module_utils.kailash_probe import probe_param_errors, run_probe

from . import chromadb, generic_http, neo4j, postgresql, redis
from .common import Kind, MissingLibrary
from .generic_http import _MISSING, json_lookup, judge, returned, values_match
from .neo4j import neo4j_error_text

__all__ = [
    "KINDS",
    "Kind",
    "MissingLibrary",
    "_MISSING",
    "json_lookup",
    "judge",
    "neo4j_error_text",
    "probe_main",
    "probe_one",
    "returned",
    "secret_options",
    "values_match",
]

KINDS: dict[str, Kind] = {
    module.NAME: module.KIND for module in (postgresql, redis, chromadb, neo4j, generic_http)
}


def secret_options(kind: str) -> list[str]:
    """The options of a kind whose values are secrets (no_log in its spec)."""
    return [name for name, opts in KINDS[kind].spec.items() if opts.get("no_log")]


def probe_main(kind: str) -> None:
    """The main() of a single-kind probe module."""
    from ansible.module_utils.basic import AnsibleModule, missing_required_lib

    spec = KINDS[kind]
    module = AnsibleModule(argument_spec=spec.spec, supports_check_mode=True)
    try:
        if spec.library:
            spec.library()
    except MissingLibrary as exc:
        module.fail_json(msg=missing_required_lib(exc.library), exception=exc.trace)
    errors = probe_param_errors(module.params) + spec.errors(module.params)
    if errors:
        module.fail_json(msg="; ".join(errors))
    module.exit_json(**run_probe(spec.make_check(module.params), module.params, spec.facts))


def probe_one(kind: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """One probe of ``kind`` with ``options`` (validated as the kind's module validates
    them): its result, or ``{failed: true, msg}`` as the module would fail."""
    from ansible.module_utils.basic import missing_required_lib
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    spec = KINDS.get(kind)
    if spec is None:
        return {"failed": True, "changed": False,
                "msg": f"unknown probe kind {kind!r} (one of {', '.join(sorted(KINDS))})"}
    checked = ArgumentSpecValidator(spec.spec).validate(dict(options))
    if checked.error_messages:
        return {"failed": True, "changed": False, "msg": "; ".join(checked.error_messages)}
    params = checked.validated_parameters
    try:
        if spec.library:
            spec.library()
    except MissingLibrary as exc:
        return {"failed": True, "changed": False, "msg": missing_required_lib(exc.library),
                "exception": exc.trace}
    errors = probe_param_errors(params) + spec.errors(params)
    if errors:
        return {"failed": True, "changed": False, "msg": "; ".join(errors)}
    return run_probe(spec.make_check(params), params, spec.facts)
