#!/usr/bin/python
"""Ansible module kailash_probes: several service probes in one module run, at once."""

from __future__ import annotations

DOCUMENTATION = r"""
module: kailash_probes
short_description: Run several kailash service probes at once, in one module run
description:
  - Runs the probes of M(kailash_postgresql_probe), M(kailash_redis_probe),
    M(kailash_chromadb_probe), M(kailash_neo4j_probe) and M(kailash_http_probe) from one
    module run, each probe in its own thread, and returns every probe's result under its
    name.
  - Each probe takes exactly the options of its module, validated the same way, and
    returns exactly what that module returns (its RV(results) entry). A probe that cannot
    run (bad options, a missing driver) gives C(failed=true) and C(msg) in its entry; the
    module itself fails only when O(probes) is malformed.
  - One module run instead of one per service saves a Python start, an upload and the
    driver imports per probe; the probes still run at the same time, so the run takes as
    long as the slowest probe (each bounded by its own O(probes[].options.timeout)).
  - The values of every probe's secret options (passwords, tokens) are never shown,
    also not inside a result's text.
  - Read-only; supports check mode (a probe changes nothing).
version_added: "1.0.0"
author: kailash-deploy
options:
  probes:
    description:
      - The probes to run, by name (any name; a service name, say). Each entry has
        C(kind), one of C(postgresql), C(redis), C(chromadb), C(neo4j) or C(http) (the
        module whose probe it runs), and C(options), that module's options.
    type: dict
    required: true
  parallel:
    description:
      - Run the probes at the same time (one thread each). V(false) runs them one after
        another, in the order of their names (for comparison).
    type: bool
    default: true
notes:
  - The PostgreSQL probe needs psycopg and the Neo4j probe the neo4j driver on the host
    the module runs on; they are imported only when a probe of that kind runs.
seealso:
  - module: kailash_postgresql_probe
  - module: kailash_redis_probe
  - module: kailash_chromadb_probe
  - module: kailash_neo4j_probe
  - module: kailash_http_probe
"""

EXAMPLES = r"""
- name: Probe the datastores and the API at once
  kailash_probes:
    probes:
      postgresql:
        kind: postgresql
        options:
          host: 10.231.2.2
          user: kailash_user
          password: "{{ pg_password }}"
          database: kailash
      redis:
        kind: redis
        options: {host: 10.231.2.3, user: kailash-admin, password: "{{ redis_password }}"}
      api:
        kind: http
        options: {url: "http://10.231.1.4:8000/readyz", json_key: status, json_value: ready}
  register: probes
  no_log: true  # the options hold the passwords

- name: Fail when one is not up
  ansible.builtin.assert:
    that: probes.results | dict2items | rejectattr('value.status', 'defined') | list | length == 0
"""

RETURN = r"""
results:
  description:
    - Name of each probe -> its result, as its module returns it (C(status),
      C(latency_ms), C(version), C(error), C(attempts) and the kind's own keys), or
      C(failed), C(msg) when that probe could not run.
  returned: always
  type: dict
  sample:
    redis: {status: up, latency_ms: 3.2, version: 7.0.15, error: null, attempts: 1, changed: false}
    api: {failed: true, changed: false, msg: "url must be http(s)://host[:port]/path, got 'x'"}
elapsed_ms:
  description: Wall time of all the probes, in milliseconds.
  returned: always
  type: float
  sample: 41.7
"""

import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Mapping  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.kailash_probe_kinds import (  # noqa: E402
    KINDS,
    probe_one,
    secret_options,
)


def probe_errors(probes: Mapping[str, Any]) -> list[str]:
    """Messages for entries that are not {kind, options} with a known kind."""
    errors = []
    for name, entry in probes.items():
        if not isinstance(entry, Mapping) or set(entry) - {"kind", "options"}:
            errors.append(f"probes.{name} must be a mapping with kind and options")
        elif entry.get("kind") not in KINDS:
            errors.append(f"probes.{name}.kind must be one of {', '.join(sorted(KINDS))}, "
                          f"got {entry.get('kind')!r}")
        elif not isinstance(entry.get("options", {}), Mapping):
            errors.append(f"probes.{name}.options must be a mapping")
    return errors


def secrets_of(probes: Mapping[str, Any]) -> set[str]:
    """The values of the secret options of every probe (masked in the output)."""
    values = set()
    for entry in probes.values():
        options = entry.get("options") or {}
        for name in secret_options(entry["kind"]):
            if options.get(name):
                values.add(str(options[name]))
    return values


def run_all(probes: Mapping[str, Any], parallel: bool) -> dict[str, Any]:
    """name -> result of every probe; at once (a thread each) when ``parallel``."""
    results: dict[str, Any] = {}

    def run(name: str) -> None:
        entry = probes[name]
        try:
            results[name] = probe_one(entry["kind"], entry.get("options") or {})
        except Exception as exc:  # a defect of a probe must not lose the others' results
            results[name] = {"failed": True, "changed": False,
                             "msg": f"the {entry['kind']} probe raised {exc!r}"}

    if not parallel:
        for name in sorted(probes):
            run(name)
        return results
    threads = [threading.Thread(target=run, args=(name,), daemon=True) for name in probes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "probes": {"type": "dict", "required": True},
            "parallel": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    probes = module.params["probes"]
    errors = probe_errors(probes)
    if errors:
        module.fail_json(msg="; ".join(errors))
    module.no_log_values.update(secrets_of(probes))
    started = time.perf_counter()
    results = run_all(probes, module.params["parallel"])
    module.exit_json(changed=False, results=results,
                     elapsed_ms=round((time.perf_counter() - started) * 1000.0, 3))


if __name__ == "__main__":
    main()
