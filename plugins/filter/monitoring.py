"""Monitoring filters (issue #13): Prometheus's scrape and alerting configuration from the
metrics slot of the planned services, and the rule files it loads.

The metrics slot (docs/datastore-role-contract.md, "Metrics"): a service definition of a
compose fragment may carry, under ``x-kailash`` (never rendered into compose.yml):

    metrics:                 # scrape endpoints of this service (a list)
      - port: 9121           # required: port inside the container
        path: /metrics       # default /metrics
        service: redis       # the `service` label (what the metrics describe); default: the
                             # compose service's name
        job: redis-exporter  # default: the compose service's name
        network: app         # the stack network Prometheus scrapes it on; default app
        scheme: http         # default http
    alerting:                # this service is an Alertmanager Prometheus sends alerts to
      port: 9093
      network: app

Nothing here names a service: the planned services are the input.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_-]*$")
_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")


_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def prom_seconds(value: str) -> float:
    """Seconds of a Prometheus duration (``1m30s`` = 90.0); ValueError when it is none."""
    text = str(value)
    if not _DURATION.match(text):
        raise ValueError(f"not a Prometheus duration: {value!r}")
    return float(sum(int(n) * _UNITS[u] for n, u in re.findall(r"(\d+)(ms|s|m|h|d|w|y)", text)))


def _entries(services: dict) -> list[tuple[str, dict, dict]]:
    """(compose service name, metrics entry, service definition) for every declared entry."""
    out = []
    for name in sorted(services or {}):
        svc = services[name] or {}
        for entry in (svc.get("x-kailash") or {}).get("metrics") or []:
            out.append((name, entry, svc))
    return out


def metrics_errors(services: dict, networks: list | None = None) -> list[str]:
    """Messages for malformed metrics/alerting slots (naming the compose service)."""
    # the planned networks (kailash_networks' tiers); by default those the services join
    joined = [n for svc in (services or {}).values() for n in (svc or {}).get("networks") or []]
    nets = set(networks or joined)
    errors: list[str] = []
    jobs: dict[str, str] = {}
    for name, entry, svc in _entries(services):
        where = f"{name}: x-kailash.metrics"
        if not isinstance(entry, dict):
            errors.append(f"{where} entries must be dicts, got {entry!r}")
            continue
        port = entry.get("port")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            errors.append(f"{where}.port must be 1-65535, got {port!r}")
        path = entry.get("path", "/metrics")
        if not isinstance(path, str) or not path.startswith("/"):
            errors.append(f"{where}.path must start with /, got {path!r}")
        net = entry.get("network", "app")
        if net not in nets:
            errors.append(f"{where}.network must be one of {sorted(nets)}, got {net!r}")
        elif net not in (svc.get("networks") or []):
            errors.append(
                f"{where}.network {net!r} is not a network of {name} ({svc.get('networks') or []})"
            )
        if entry.get("scheme", "http") not in ("http", "https"):
            errors.append(f"{where}.scheme must be http or https, got {entry.get('scheme')!r}")
        job = entry.get("job", name)
        if not isinstance(job, str) or not _NAME.match(job):
            errors.append(f"{where}.job must be a name, got {job!r}")
        elif job in jobs:
            errors.append(f"{where}.job {job!r} is declared by {jobs[job]} too")
        else:
            jobs[job] = name
        service = entry.get("service", name)
        if not isinstance(service, str) or not service:
            errors.append(f"{where}.service must be a non-empty string, got {service!r}")
    for name in sorted(services or {}):
        alerting = ((services[name] or {}).get("x-kailash") or {}).get("alerting")
        if alerting is None:
            continue
        port = alerting.get("port") if isinstance(alerting, dict) else None
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            errors.append(f"{name}: x-kailash.alerting.port must be 1-65535, got {port!r}")
    return errors


def scrape_configs(services: dict, project: str = "", timeout: str = "") -> list[dict]:
    """Prometheus scrape_configs, one job per metrics entry, sorted by job name. A service
    with one replica is a static target ``<compose service>:<port>``; with several, Docker's
    DNS lists every replica (dns_sd_configs, type A). Every target gets ``service`` (and
    ``project`` when given) as labels."""
    jobs = []
    for name, entry, svc in _entries(services):
        labels = {"service": entry.get("service", name)}
        if project:
            labels["project"] = project
        job: dict[str, Any] = {
            "job_name": entry.get("job", name),
            "metrics_path": entry.get("path", "/metrics"),
            "scheme": entry.get("scheme", "http"),
        }
        if timeout:
            job["scrape_timeout"] = timeout
        replicas = int(((svc.get("deploy") or {}).get("replicas")) or 1)
        if replicas > 1:
            job["dns_sd_configs"] = [
                {
                    "names": [name],
                    "type": "A",
                    "port": int(entry["port"]),
                    "refresh_interval": "30s",
                }
            ]
            # dns_sd targets carry no labels of their own: add them by relabelling
            job["relabel_configs"] = [
                {"target_label": k, "replacement": v} for k, v in sorted(labels.items())
            ]
        else:
            job["static_configs"] = [
                {"targets": [f"{name}:{int(entry['port'])}"], "labels": labels}
            ]
        jobs.append(job)
    return sorted(jobs, key=lambda j: j["job_name"])


def scrape_networks(services: dict) -> list[str]:
    """The stack networks Prometheus must join to reach every declared endpoint."""
    nets = {e.get("network", "app") for _, e, _ in _entries(services)}
    for svc in (services or {}).values():
        alerting = ((svc or {}).get("x-kailash") or {}).get("alerting")
        if isinstance(alerting, dict):
            nets.add(alerting.get("network", "app"))
    return sorted(nets)


def alertmanagers(services: dict) -> list[str]:
    """``<compose service>:<port>`` of every service that declares x-kailash.alerting."""
    out = []
    for name in sorted(services or {}):
        alerting = ((services[name] or {}).get("x-kailash") or {}).get("alerting")
        if isinstance(alerting, dict):
            out.append(f"{name}:{int(alerting['port'])}")
    return out


def rules_merge(texts: list, for_value: str = "") -> str:
    """Rule files as Prometheus loads them: the ``groups`` of every text, in order, in one
    document (one file to mount: a service dropped from the plan leaves no stale file).
    With ``for_value`` (a duration), every rule's ``for`` is set to it (tests lower it; the
    rules' own files stay as they are)."""
    if for_value and not _DURATION.match(str(for_value)):
        raise ValueError(f"not a Prometheus duration: {for_value!r}")
    groups = []
    for text in texts or []:
        doc = yaml.safe_load(text) or {}
        for group in doc.get("groups") or []:
            if for_value:
                for rule in group.get("rules") or []:
                    if "for" in rule:
                        rule["for"] = str(for_value)
            groups.append(group)
    return yaml.safe_dump({"groups": groups}, sort_keys=False, default_flow_style=False, width=1000)


class FilterModule:
    def filters(self):
        return {
            "kailash_metrics_errors": metrics_errors,
            "kailash_prom_seconds": prom_seconds,
            "kailash_scrape_configs": scrape_configs,
            "kailash_scrape_networks": scrape_networks,
            "kailash_alertmanagers": alertmanagers,
            "kailash_rules_merge": rules_merge,
        }
