"""Network exposure: one declaration per service, both targets rendered from it (issue #12;
docs/datastore-role-contract.md, "Network exposure").

Each service role's ``vars/network.yml`` sets ``<service>__network`` (plain data, read with
``kailash_role_specs``)::

    tier: data                  # its Compose network: a tier of kailash_networks
    workloads: [redis]          # its Compose services / Kubernetes workloads that join it
    caller: app                 # optional: the caller group its workloads are ("app")
    public: true                # optional: the callers' group is the public ingress; the
                                # services it reaches join this tier (not the reverse)
    expose:                     # which callers may reach which of its ports
      - {workload: redis, ports: [redis_port], from: [app, ops, monitoring]}
    egress:                     # what its workloads reach themselves
      - {workload: pgbouncer, to: postgresql, ports: [postgresql_port]}
    fronts: {postgresql: app}   # optional: when enabled, it takes that caller's place there

Ports (and an egress's ``to_variable``) name variables; the caller resolves them (the
variables' values: ``kailash_network_variables`` lists the names).

Kubernetes: ``kailash_network_rules`` gives each service's NetworkPolicy rules (``network``:
workload, ports, callers; ``egress``: workload, to, ports). Callers are the groups
``ingress``, ``monitoring``, ``app``, ``ops`` or a workload.

Compose: ``kailash_compose_networks`` gives the networks each Compose service joins, in
this order: the public tier when the ingress reaches it, its own tier, then the tier of
every service it reaches (as a caller named in that service's ``expose``, by its group,
or by its ``egress``; ``fronts`` is a Kubernetes policy only: on a Docker host the
fronted service's callers keep their network). The monitoring groups have no members on a
Docker host: the dev stack's scraper and prober reach what their metrics and probe slots
name.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

GROUPS = ("ingress", "monitoring", "app", "ops")
KEYS = {"tier", "workloads", "caller", "public", "expose", "egress", "fronts"}


def _fail(svc: str, msg: str) -> AnsibleFilterError:
    return AnsibleFilterError(f"{svc}__network (roles/{svc}/vars/network.yml): {msg}")


def _check(specs: Any, tiers: Any = None) -> dict[str, dict[str, Any]]:
    if not isinstance(specs, dict):
        raise AnsibleFilterError(f"network specs must be a dict, got {specs!r}")
    out = {}
    for svc, spec in specs.items():
        if not isinstance(spec, dict):
            raise _fail(svc, f"must be a dict, got {spec!r}")
        unknown = sorted(set(spec) - KEYS)
        if unknown:
            raise _fail(svc, f"unknown keys {unknown}; known: {sorted(KEYS)}")
        if not isinstance(spec.get("tier"), str) or (tiers and spec["tier"] not in tiers):
            raise _fail(svc, f"tier must be one of {list(tiers or [])}, got {spec.get('tier')!r}")
        workloads = spec.get("workloads")
        if not isinstance(workloads, list) or not all(isinstance(w, str) for w in workloads):
            raise _fail(svc, f"workloads must be a list of names, got {workloads!r}")
        for key in ("expose", "egress"):
            for i, rule in enumerate(spec.get(key) or []):
                if not isinstance(rule, dict) or rule.get("workload") not in workloads:
                    raise _fail(svc, f"{key}[{i}] must name one of its workloads {workloads}")
                if not isinstance(rule.get("ports"), list) or not rule["ports"]:
                    raise _fail(svc, f"{key}[{i}].ports must be a list of variable names")
        out[svc] = spec
    return out


def kailash_network_variables(specs: Any) -> list[str]:
    """The variable names the specs' ports and egress targets name (sorted)."""
    names = set()
    for spec in _check(specs).values():
        for rule in (spec.get("expose") or []) + (spec.get("egress") or []):
            names.update(str(p) for p in rule["ports"])
            if rule.get("to_variable"):
                names.add(str(rule["to_variable"]))
    return sorted(names)


def _value(svc: str, values: dict, name: str) -> Any:
    value = (values or {}).get(name)
    if value is None or value == "":
        raise _fail(svc, f"names {name}, which is not set")
    return value


def _port(svc: str, values: dict, name: Any) -> int:
    value = _value(svc, values, str(name))
    try:
        port = int(value)
    except (TypeError, ValueError):
        port = 0
    if not 0 < port < 65536 or isinstance(value, bool):
        raise _fail(svc, f"{name} must be a TCP port (1-65535), got {value!r}")
    return port


def _target(svc: str, rule: dict, values: dict) -> str:
    if rule.get("to_variable"):
        return str((values or {}).get(rule["to_variable"]) or rule.get("to") or "")
    return str(rule.get("to") or "")


def _callers(specs: dict, enabled: Any) -> dict[str, dict[str, str]]:
    """{fronted service: {caller group: fronting workload}} of the enabled fronts."""
    out: dict[str, dict[str, str]] = {}
    for svc, spec in specs.items():
        if enabled is not None and svc not in enabled:
            continue
        for fronted, group in (spec.get("fronts") or {}).items():
            out.setdefault(fronted, {})[group] = spec["workloads"][0]
    return out


def kailash_network_rules(
    specs: Any, values: Any, enabled: Any = None, services: Any = None
) -> dict[str, dict[str, list]]:
    """``{service: {network: [...], egress: [...]}}``: the NetworkPolicy rules of each of
    ``services`` (default: every spec), ports resolved from ``values``; a group an enabled
    service ``fronts`` on another is replaced there by that service's workload."""
    specs = _check(specs)
    fronted = _callers(specs, enabled)
    out = {}
    for svc in specs if services is None else [s for s in services if s in specs]:
        spec = specs[svc]
        network = []
        for rule in spec.get("expose") or []:
            swap = fronted.get(svc, {})
            callers = [swap.get(c, c) for c in rule.get("from") or []]
            ports = [_port(svc, values, p) for p in rule["ports"]]
            network.append({"workload": rule["workload"], "ports": ports, "from": callers})
        egress = [
            {
                "workload": rule["workload"],
                "to": _target(svc, rule, values),
                "ports": [_port(svc, values, p) for p in rule["ports"]],
            }
            for rule in spec.get("egress") or []
        ]
        out[svc] = {"network": network, "egress": egress}
    return out


def kailash_compose_networks(specs: Any, tiers: Any, values: Any = None) -> dict[str, list]:
    """``{compose service: [networks]}`` for every workload of the specs (module doc)."""
    specs = _check(specs, list(tiers or []))
    owner = {w: svc for svc, spec in specs.items() for w in spec["workloads"]}
    public = {spec["caller"]: spec["tier"] for spec in specs.values()
              if spec.get("caller") and spec.get("public")}  # fmt: skip
    members: dict[str, list[str]] = {}  # caller group -> its workloads
    for w, svc in owner.items():
        if specs[svc].get("caller"):
            members.setdefault(specs[svc]["caller"], []).append(w)
    # the tiers each workload reaches as a caller
    reach: dict[str, set[str]] = {w: set() for w in owner}
    for svc, spec in specs.items():
        for rule in spec.get("expose") or []:
            for caller in rule.get("from") or []:
                if caller in public:
                    continue
                if caller not in owner and caller not in GROUPS and caller not in members:
                    raise _fail(svc, f"expose names the caller {caller!r}: neither a group "
                                     f"{list(GROUPS)} nor a planned workload")  # fmt: skip
                for w in [caller] if caller in owner else members.get(caller, []):
                    reach[w].add(spec["tier"])
        for rule in spec.get("egress") or []:
            target = _target(svc, rule, values or {})
            if target in specs or target in owner:
                reach[rule["workload"]].add(specs[owner.get(target, target)]["tier"])
    out = {}
    for w, svc in owner.items():
        spec = specs[svc]
        inbound = [public[c] for rule in spec.get("expose") or [] if rule["workload"] == w
                   for c in rule.get("from") or [] if c in public]  # fmt: skip
        order = [*inbound, spec["tier"], *[t for t in tiers if t in reach[w]]]
        out[w] = list(dict.fromkeys(order))
    return out


class FilterModule:
    def filters(self) -> dict[str, Any]:
        funcs = (kailash_network_variables, kailash_network_rules, kailash_compose_networks)
        return {f.__name__: f for f in funcs}
