"""Blackbox probes (issue #13): Prometheus's probe jobs from the ``probes`` slots of the
planned services and the ``prober`` slot of the blackbox exporter.

The slots (docs/datastore-role-contract.md, "Metrics"), under ``x-kailash`` of a service
definition (never rendered into compose.yml):

    probes:                    # what a prober checks about this service (a list)
      - module: http           # required: a module the prober declares (http, tcp, tls)
        port: 8000             # required: the port inside the stack
        path: /api/v2/heartbeat  # http modules only; default /
        network: data          # the stack network it is probed on; default: the
                               # service's first network
        service: chromadb      # the `service` label; default: the compose service's name
    prober:                    # this service is a blackbox exporter (one per stack)
      port: 9115
      network: app             # where Prometheus reaches it; default app
      modules: {http: http, tcp: tcp, tls: tcp}   # module -> its prober (http or tcp)

One job per module, ``probe-<module>``, scraping ``<prober>:<port>/probe`` with the probed
address as its ``target`` parameter and as the ``instance`` label. Services declaring probes
while no prober is planned are not probed (monitoring is opt-in). Nothing here names a
service: the planned services are the input.
"""

from __future__ import annotations

import re

_PATH = re.compile(r"^/[^\s?#]*$")
_MODULE = re.compile(r"^[a-z][a-z0-9_]*$")


def _probers(services: dict) -> list[tuple[str, dict]]:
    return [
        (name, (svc or {})["x-kailash"]["prober"])
        for name, svc in sorted((services or {}).items())
        if isinstance(((svc or {}).get("x-kailash") or {}).get("prober"), dict)
    ]


def _probes(services: dict) -> list[tuple[str, int, object, dict]]:
    """(compose service, index, entry, service definition) of every declared probe."""
    out = []
    for name in sorted(services or {}):
        svc = services[name] or {}
        for i, entry in enumerate((svc.get("x-kailash") or {}).get("probes") or []):
            out.append((name, i, entry, svc))
    return out


def _port_ok(port) -> bool:
    return isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536


def probe_errors(services: dict, networks: list | None = None) -> list[str]:
    """Messages for malformed probes/prober slots, naming the compose service (and, when a
    probe cannot be reached by the planned prober, what to change)."""
    # the planned networks (kailash_networks' tiers); by default those the services join
    joined = [n for svc in (services or {}).values() for n in (svc or {}).get("networks") or []]
    nets = set(networks or joined)
    errors: list[str] = []
    probers = _probers(services)
    if len(probers) > 1:
        errors.append(
            "x-kailash.prober is declared by several services "
            f"({', '.join(n for n, _ in probers)}): plan one blackbox exporter"
        )
    for name, prober in probers:
        if not _port_ok(prober.get("port")):
            errors.append(
                f"{name}: x-kailash.prober.port must be 1-65535, got {prober.get('port')!r}"
            )
        modules = prober.get("modules")
        if (
            not isinstance(modules, dict)
            or not modules
            or not all(
                isinstance(k, str) and _MODULE.match(k) and v in ("http", "tcp")
                for k, v in modules.items()
            )
        ):
            errors.append(
                f"{name}: x-kailash.prober.modules must map module names to http or tcp, "
                f"got {modules!r}"
            )
    prober_name, prober = probers[0] if len(probers) == 1 else (None, {})
    modules = prober.get("modules") if isinstance(prober.get("modules"), dict) else {}
    prober_nets = (
        set((services.get(prober_name) or {}).get("networks") or []) if prober_name else set()
    )
    for name, i, entry, svc in _probes(services):
        where = f"{name}: x-kailash.probes[{i}]"
        if not isinstance(entry, dict):
            errors.append(f"{where} must be a dict, got {entry!r}")
            continue
        module = entry.get("module")
        if not isinstance(module, str) or not _MODULE.match(module):
            errors.append(f"{where}.module must be a module name, got {module!r}")
        elif prober_name and module not in modules:
            errors.append(
                f"{where}.module {module!r} is not a module of the prober {prober_name} "
                f"({sorted(modules)}): add it to blackbox_exporter_modules"
            )
        if not _port_ok(entry.get("port")):
            errors.append(f"{where}.port must be 1-65535, got {entry.get('port')!r}")
        path = entry.get("path", "/")
        if not isinstance(path, str) or not _PATH.match(path):
            errors.append(f"{where}.path must be an absolute URL path, got {path!r}")
        own = svc.get("networks") or []
        net = entry.get("network", own[0] if own else None)
        if net not in nets:
            errors.append(f"{where}.network must be one of {sorted(nets)}, got {net!r}")
        elif net not in own:
            errors.append(f"{where}.network {net!r} is not a network of {name} ({own})")
        elif prober_name and net not in prober_nets:
            errors.append(
                f"{where}.network {net!r} is not a network of the prober {prober_name} "
                f"({sorted(prober_nets)}): plan the role of {prober_name} after that of {name} "
                "in kailash_services"
            )
        service = entry.get("service", name)
        if not isinstance(service, str) or not service:
            errors.append(f"{where}.service must be a non-empty string, got {service!r}")
    return errors


def probe_target(name: str, entry: dict, kind: str) -> str:
    """The probed address as the prober's ``target`` parameter."""
    if kind == "http":
        return f"http://{name}:{int(entry['port'])}{entry.get('path', '/')}"
    return f"{name}:{int(entry['port'])}"


def probe_configs(services: dict, project: str = "") -> list[dict]:
    """Prometheus scrape_configs of the probes: one job per module (``probe-<module>``),
    sorted; [] when no single prober is planned."""
    probers = _probers(services)
    if len(probers) != 1:
        return []
    prober_name, prober = probers[0]
    modules = prober.get("modules") or {}
    address = f"{prober_name}:{int(prober['port'])}"
    by_module: dict[str, list[dict]] = {}
    for name, _, entry, _ in _probes(services):
        module = entry["module"]
        labels = {"service": entry.get("service", name)}
        if project:
            labels["project"] = project
        by_module.setdefault(module, []).append(
            {"targets": [probe_target(name, entry, modules[module])], "labels": labels}
        )
    jobs = []
    for module in sorted(by_module):
        jobs.append(
            {
                "job_name": f"probe-{module}",
                "metrics_path": "/probe",
                "params": {"module": [module]},
                "static_configs": by_module[module],
                "relabel_configs": [
                    {"source_labels": ["__address__"], "target_label": "__param_target"},
                    {"source_labels": ["__param_target"], "target_label": "instance"},
                    {"target_label": "__address__", "replacement": address},
                ],
            }
        )
    return jobs


def probe_networks(services: dict) -> list[str]:
    """The stack networks a prober must join to reach every declared probe."""
    nets = set()
    for _, _, entry, svc in _probes(services):
        if isinstance(entry, dict):
            own = svc.get("networks") or []
            net = entry.get("network", own[0] if own else None)
            if net:
                nets.add(net)
    return sorted(nets)


class FilterModule:
    def filters(self):
        return {
            "kailash_probe_errors": probe_errors,
            "kailash_probe_configs": probe_configs,
            "kailash_probe_networks": probe_networks,
        }
