"""Filters for the Kubernetes target (roles/kailash_k8s).

Small pure functions, exposed to Ansible by ``FilterModule``:

* ``kailash_k8s_totals``: total requests/limits of a list of workloads (ResourceQuota).
* ``kailash_k8s_env_file``: parse a rendered ``KEY='value'`` env file into a dict.
* ``kailash_k8s_image_errors``: messages for images that are unpinned or ``latest``.
* ``kailash_k8s_cpu``: millicores as a Kubernetes CPU quantity (``2000`` -> ``"2"``).
* ``kailash_k8s_setting_names``: the variables the plan of the target reads (see below).
* ``kailash_k8s_preflight_errors``: the renderer's refusals, each naming the variable.
* ``kailash_k8s_images``: the overlay's ``images:`` (name and tag of every image).
* ``kailash_k8s_quota``: the ResourceQuota ``hard`` of the namespace.
* ``kailash_k8s_container_max``: the LimitRange ``max`` (largest container limits).
* ``kailash_k8s_seconds``: whole seconds of a Compose duration (``1m30s`` -> 90).
* ``kailash_k8s_burst_multiplier``: the Ingress' burst as a multiple of its rate.
* ``kailash_backup_config``: the config.json of the backup CronJobs (ConfigMap
  kailash-backup-config), also used by tests/backup/test_ops_image.py.
"""

from __future__ import annotations

import json
import os
import re
import sys
from fractions import Fraction
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sizing import (  # noqa: E402
    AnsibleFilterError,
    kailash_bytes,
    kailash_cpu_millis,
    kailash_k8s_quantity,
    kailash_resource_errors,
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


# --- The plan of the Kubernetes target: what the quota, the LimitRange and the
# preflight read. ``plan`` (roles/kailash_k8s/vars/main.yml, kailash_k8s__plan) lists
# the workloads; ``settings`` maps each variable it names to the user's value, so every
# message names the variable to fix.

RESOURCE_KEYS = ("memory_request", "memory_limit", "cpu_request", "cpu_limit")
# Settings every preflight reads besides the workloads' resources, replicas and images.
PLAN_SETTINGS = (
    "edge_enabled",
    "edge_cert_manager_issuer",
    "edge_tls_secret_name",
    "edge_hostname",
    "kailash_k8s_namespace",
    "kailash_k8s_app_image_tag",
    "kailash_k8s_pod_security",
    "kailash_k8s_volume_sizes",
    "kailash_k8s_pdb_min_available",
    "kailash_k8s_hpa_max_replicas",
)
POD_SECURITY_LEVELS = ("restricted", "baseline")
# Jinja's ``match`` test is re.match: "$" also matches before a final newline; kept so.
_WHOLE_RE = re.compile(r"^[0-9]+$")
_HOSTNAME_RE = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z]{2,63}$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_VOLUME_SIZE_RE = re.compile(r"^[0-9]+(Mi|Gi|Ti)$")


def _plan_parts(plan: Any) -> tuple[list[dict], list[dict], dict]:
    """(app workloads, datastores, ops) of a plan, or AnsibleFilterError."""
    if not isinstance(plan, dict):
        raise AnsibleFilterError(f"kailash_k8s plan: expected a dict, got {type(plan).__name__}")
    missing = [
        k for k in ("app_workloads", "app_image_variable", "datastores", "ops") if k not in plan
    ]
    if missing:
        raise AnsibleFilterError(f"kailash_k8s plan: missing {', '.join(missing)}")
    return list(plan["app_workloads"]), list(plan["datastores"]), dict(plan["ops"])


def _monitoring(plan: Any) -> list[dict]:
    """The monitoring workloads (optional key ``monitoring``: the exporters' Deployments,
    kailash_k8s_monitoring other than none), shaped like the datastores: ``{name,
    containers, pods}``."""
    return list(plan.get("monitoring") or []) if isinstance(plan, dict) else []


def _container_prefixes(plan: Any) -> list[str]:
    """Resource prefixes of every container: the app's, the datastores', the ops jobs',
    the monitoring workloads'."""
    apps, datastores, ops = _plan_parts(plan)
    return (
        [w["prefix"] for w in apps]
        + [p for d in datastores for p in d["containers"]]
        + [ops["prefix"]]
        + [p for w in _monitoring(plan) for p in w["containers"]]
    )


def _image_variables(plan: Any) -> list[str]:
    """Image variables: the app's, each datastore container's <prefix>_image_pull, the ops',
    each monitoring container's <prefix>_image_pull."""
    _, datastores, ops = _plan_parts(plan)
    return (
        [plan["app_image_variable"]]
        + [f"{p}_image_pull" for d in datastores for p in d["containers"]]
        + [ops["image_variable"]]
        + [f"{p}_image_pull" for w in _monitoring(plan) for p in w["containers"]]
    )


def kailash_k8s_setting_names(plan: Any) -> list[str]:
    """Every variable the plan's filters read (the input of ``kailash_k8s__settings``)."""
    apps, _, _ = _plan_parts(plan)
    names = [f"{p}_{k}" for p in _container_prefixes(plan) for k in RESOURCE_KEYS]
    names += [f"{w['prefix']}_replicas" for w in apps]
    names += _image_variables(plan) + list(PLAN_SETTINGS)
    return list(dict.fromkeys(names))


def _setting(settings: Any, name: str) -> Any:
    if not isinstance(settings, dict):
        raise AnsibleFilterError(
            f"kailash_k8s settings: expected {{variable: value}}, got {type(settings).__name__}"
        )
    if name not in settings:
        raise AnsibleFilterError(f"kailash_k8s settings: {name} is missing")
    return settings[name]


def _resources(settings: Any, prefix: str) -> dict[str, Any]:
    """A container's memory/CPU request and limit: ``<prefix>_<key>`` of the settings."""
    return {key: _setting(settings, f"{prefix}_{key}") for key in RESOURCE_KEYS}


def _whole(value: Any) -> bool:
    return value is not None and _WHOLE_RE.match(str(value)) is not None


def _app_workload_errors(settings: Any, workload: dict[str, Any]) -> list[str]:
    """Resources and replicas of one app workload, and its PDB minimum and HPA maximum."""
    name, prefix = workload["name"], workload["prefix"]
    replicas = _setting(settings, f"{prefix}_replicas")
    errors = kailash_resource_errors({**_resources(settings, prefix), "replicas": replicas}, prefix)
    pdb_mins = _setting(settings, "kailash_k8s_pdb_min_available")
    hpa_maxes = _setting(settings, "kailash_k8s_hpa_max_replicas")
    pdb_min = pdb_mins.get(name) if isinstance(pdb_mins, dict) else None
    hpa_max = hpa_maxes.get(name) if isinstance(hpa_maxes, dict) else None
    pdb_var = f"kailash_k8s_pdb_min_available['{name}']"
    hpa_var = f"kailash_k8s_hpa_max_replicas['{name}']"
    if not _whole(pdb_min) or int(str(pdb_min)) < 1:
        errors.append(f"{pdb_var} must be a whole number >= 1, got {json.dumps(pdb_min)}")
    elif _whole(replicas) and int(str(replicas)) <= int(str(pdb_min)):
        errors.append(
            f"{prefix}_replicas ({replicas}) must be greater than the PodDisruptionBudget "
            f"minimum {pdb_var} ({pdb_min}), or no node drain could ever evict a pod"
        )
    if not _whole(hpa_max):
        errors.append(f"{hpa_var} must be a whole number, got {json.dumps(hpa_max)}")
    elif _whole(replicas) and int(str(hpa_max)) < int(str(replicas)):
        errors.append(f"{hpa_var} ({hpa_max}) must be >= {prefix}_replicas ({replicas})")
    return errors


def _edge_errors(settings: Any) -> list[str]:
    """The Ingress: a TLS source when edge is enabled, and a DNS host name."""
    errors = []
    if (
        _setting(settings, "edge_enabled")
        and not _setting(settings, "edge_cert_manager_issuer")
        and not _setting(settings, "edge_tls_secret_name")
    ):
        errors.append(
            "edge_tls_secret_name must name an existing kubernetes.io/tls Secret in namespace "
            f"{_setting(settings, 'kailash_k8s_namespace')} when edge_cert_manager_issuer is "
            "empty (set one of the two)"
        )
    hostname = _setting(settings, "edge_hostname")
    if not (isinstance(hostname, str) and _HOSTNAME_RE.match(hostname)):
        errors.append(
            f"edge_hostname must be a DNS name like kailash.example.com, got {json.dumps(hostname)}"
        )
    return errors


def _naming_errors(settings: Any) -> list[str]:
    """The app image tag, the namespace and its Pod Security level."""
    errors = []
    tag = _setting(settings, "kailash_k8s_app_image_tag")
    if not _TAG_RE.match(str(tag)) or tag == "latest":
        errors.append(
            "kailash_k8s_app_image_tag must be a pinned tag other than 'latest' outside dev, "
            f"got {json.dumps(tag)}"
        )
    namespace = _setting(settings, "kailash_k8s_namespace")
    if not (isinstance(namespace, str) and _LABEL_RE.match(namespace)):
        errors.append(
            f"kailash_k8s_namespace must be a DNS-1123 label, got {json.dumps(namespace)}"
        )
    level = _setting(settings, "kailash_k8s_pod_security")
    if level not in POD_SECURITY_LEVELS:
        errors.append(
            f"kailash_k8s_pod_security must be restricted or baseline, got {json.dumps(level)}"
        )
    return errors


def _claims(plan: Any) -> list[str]:
    """PersistentVolumeClaims (keys of kailash_k8s_volume_sizes): datastores', then ops'."""
    _, datastores, ops = _plan_parts(plan)
    return [c for d in datastores for c in d["claims"]] + list(ops["claims"])


def _volume_errors(settings: Any, plan: Any) -> list[str]:
    sizes = _setting(settings, "kailash_k8s_volume_sizes")
    errors = []
    for name in _claims(plan):
        size = sizes.get(name) if isinstance(sizes, dict) else None
        if not _VOLUME_SIZE_RE.match(str("" if size is None else size)):
            errors.append(
                f"kailash_k8s_volume_sizes['{name}'] must be a size like 50Gi, "
                f"got {json.dumps(size)}"
            )
    return errors


def kailash_k8s_preflight_errors(settings: Any, plan: Any) -> list[str]:
    """Every refusal of the renderer's preflight, each naming the variable to fix.

    ``settings`` maps the variables of ``kailash_k8s_setting_names(plan)`` to their values.
    An empty list means the tree may be rendered.
    """
    apps, _, ops = _plan_parts(plan)
    errors: list[str] = []
    for workload in apps:
        errors += _app_workload_errors(settings, workload)
    errors += kailash_resource_errors(_resources(settings, ops["prefix"]), ops["prefix"])
    errors += _edge_errors(settings)
    images = {name: _setting(settings, name) for name in _image_variables(plan)}
    errors += kailash_k8s_image_errors(images)
    errors += _naming_errors(settings)
    errors += _volume_errors(settings, plan)
    return errors


def kailash_k8s_images(settings: Any, plan: Any) -> list[dict[str, str]]:
    """The overlay's ``images:``: name and tag of every image, one entry per name, sorted;
    the app's tag is kailash_k8s_app_image_tag."""
    app_variable, *others = _image_variables(plan)
    images = []
    for variable in others:
        name, tag = str(_setting(settings, variable)).rsplit(":", 1)
        images.append({"name": name, "tag": tag})
    app_name = str(_setting(settings, app_variable)).rsplit(":", 1)[0]
    images.append({"name": app_name, "tag": _setting(settings, "kailash_k8s_app_image_tag")})
    unique = [image for i, image in enumerate(images) if image not in images[:i]]
    # as Jinja's sort(attribute='name'): stable, case-insensitive
    return sorted(unique, key=lambda image: image["name"].lower())


def kailash_k8s_quota(settings: Any, plan: Any) -> dict[str, str]:
    """ResourceQuota ``hard``: room for every app workload at its HPA maximum plus one surge
    pod, one pod per datastore (all its containers), every ops job at once and each
    monitoring workload's pods."""
    apps, datastores, ops = _plan_parts(plan)
    hpa_maxes = _setting(settings, "kailash_k8s_hpa_max_replicas")
    items: list[dict[str, Any]] = []
    pods = 0
    for workload in apps:
        count = int(hpa_maxes[workload["name"]]) + 1
        items.append({"count": count, **_resources(settings, workload["prefix"])})
        pods += count
    for datastore in datastores:
        # one pod, or a Deployment's replicas plus its surge pod ("pods", e.g. PgBouncer)
        count = int(datastore.get("pods", 1))
        items += [{"count": count, **_resources(settings, p)} for p in datastore["containers"]]
        pods += count
    items.append({"count": int(ops["jobs"]), **_resources(settings, ops["prefix"])})
    pods += int(ops["jobs"])
    for workload in _monitoring(plan):
        # a Deployment's replicas plus its surge pod
        count = int(workload.get("pods", 1))
        items += [{"count": count, **_resources(settings, p)} for p in workload["containers"]]
        pods += count
    return {
        **kailash_k8s_totals(items),
        "pods": str(pods),
        "persistentvolumeclaims": str(len(_claims(plan))),
        "services.loadbalancers": "0",
        "services.nodeports": "0",
    }


def kailash_k8s_container_max(settings: Any, plan: Any) -> dict[str, str]:
    """LimitRange ``max``: the largest memory and CPU limit of any container."""
    prefixes = _container_prefixes(plan)
    memory = max(kailash_bytes(_setting(settings, f"{p}_memory_limit")) for p in prefixes)
    cpu = max(kailash_cpu_millis(_setting(settings, f"{p}_cpu_limit")) for p in prefixes)
    return {"memory": kailash_k8s_quantity(memory), "cpu": kailash_k8s_cpu(cpu)}


# --- Durations and ratios of the manifests --------------------------------------------

_DURATION_UNITS = {
    "h": Fraction(3600),
    "m": Fraction(60),
    "s": Fraction(1),
    "ms": Fraction(1, 10**3),
    "us": Fraction(1, 10**6),
    "\u00b5s": Fraction(1, 10**6),
    "ns": Fraction(1, 10**9),
}
_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_DURATION_PART = re.compile(rf"({_NUMBER})(ns|us|\u00b5s|ms|s|m|h)")
_DURATION_RE = re.compile(rf"(?:{_NUMBER}(?:ns|us|\u00b5s|ms|s|m|h))+")


def kailash_k8s_seconds(value: Any, variable: str = "duration") -> int:
    """Whole seconds (rounded down) of a Compose duration such as a service's
    ``stop_grace_period``: ``30s``, ``1m30s``, ``1.5h``, ``500ms``; a bare number is
    seconds. For terminationGracePeriodSeconds; anything else names ``variable``."""
    error = AnsibleFilterError(
        f"{variable} must be a duration like 30s, 1m30s or 2m (or a number of seconds), "
        f"got {value!r}"
    )
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise error
    text = str(value).strip()
    if re.fullmatch(_NUMBER, text):
        return int(Fraction(text))
    if not _DURATION_RE.fullmatch(text):
        raise error
    total = sum(
        (Fraction(num) * _DURATION_UNITS[unit] for num, unit in _DURATION_PART.findall(text)),
        Fraction(0),
    )
    return int(total)


def kailash_k8s_burst_multiplier(burst: Any, rps: Any) -> int:
    """ingress-nginx limit-burst-multiplier: edge_rate_limit_burst // edge_rate_limit_rps,
    at least 1 (the burst the dev stack's NGINX allows, in multiples of the rate)."""
    values = {"edge_rate_limit_burst": burst, "edge_rate_limit_rps": rps}
    for variable, value in values.items():
        if isinstance(value, bool) or not str(value).strip().isdigit() or int(value) < 1:
            raise AnsibleFilterError(f"{variable} must be a whole number >= 1, got {value!r}")
    return max(1, int(burst) // int(rps))


BACKUP_KEY_SECRET = "backup_encryption_key"


def _backup_datastore(entry: Any, secret_dir: str) -> tuple[str, dict[str, Any]]:
    """One datastore of the backup config from its service plan's ``backup`` slot
    (docs/datastore-role-contract.md): ``service``, ``host``, ``port``, ``secrets`` (a
    config field -> the key of the Secret kailash-secrets that is mounted as that file) and
    any other fields the datastore's backup class reads (user, database, tenants)."""
    if not isinstance(entry, dict) or not all(k in entry for k in ("service", "host", "port")):
        raise AnsibleFilterError(
            f"kailash_backup_config: a datastore needs service, host and port, got {entry!r}"
        )
    secrets = entry.get("secrets") or {}
    if not isinstance(secrets, dict):
        raise AnsibleFilterError(
            f"kailash_backup_config: secrets of {entry['service']} must map a field to a "
            f"Secret key, got {secrets!r}"
        )
    conf = {k: v for k, v in entry.items() if k not in ("service", "secrets")}
    conf.update(host=str(entry["host"]), port=int(entry["port"]))
    conf.update({field: f"{secret_dir}/{key}" for field, key in secrets.items()})
    return str(entry["service"]), conf


def kailash_backup_config(params: Any) -> dict[str, Any]:
    """config.json of ``python3 -m kailash_backup`` in the ops image (backend local,
    network mode): every datastore by host and port, every secret as a file under
    ``secret_dir`` (keys of the Secret kailash-secrets).

    ``params``: project, datastores (the ``backup`` slots of the planned services' plans,
    each with its service, in order), secret_dir, backup_root, report_dir, textfile_dir,
    work_dir, compress, keep_last, keep_daily, keep_weekly; optional encrypt (default true).
    No datastore is named here: each service role says what its backup needs."""
    if not isinstance(params, dict):
        raise AnsibleFilterError("kailash_backup_config expects a dict")
    missing = [
        k for k in ("project", "datastores", "secret_dir", "backup_root") if k not in params
    ]
    if missing:
        raise AnsibleFilterError(f"kailash_backup_config: missing {', '.join(missing)}")
    if not isinstance(params["datastores"], list):
        raise AnsibleFilterError("kailash_backup_config: datastores must be a list")
    secret_dir = str(params["secret_dir"]).rstrip("/")
    stores = dict(_backup_datastore(e, secret_dir) for e in params["datastores"])
    services = list(stores)
    out: dict[str, Any] = {
        "_comment": "Generated by kailash-deploy (roles/kailash_k8s); secrets are files "
        "(mounted keys of the Secret kailash-secrets), never values here.",
        "project": str(params["project"]),
        "backend": "local",
        "services": services,
        "backup_root": str(params["backup_root"]),
        "compress": bool(params.get("compress", True)),
        "keep_last": int(params.get("keep_last", 7)),
        "keep_daily": int(params.get("keep_daily", 7)),
        "keep_weekly": int(params.get("keep_weekly", 4)),
        "datastores": stores,
    }
    if params.get("encrypt", True):
        out["encryption_key_file"] = f"{secret_dir}/{BACKUP_KEY_SECRET}"
    for key in ("report_dir", "textfile_dir", "work_dir"):
        if params.get(key):
            out[key] = str(params[key])
    return out


class FilterModule:
    """Ansible filter plugin entry point."""

    def filters(self) -> dict[str, Any]:
        return {
            "kailash_k8s_cpu": kailash_k8s_cpu,
            "kailash_k8s_totals": kailash_k8s_totals,
            "kailash_k8s_env_file": kailash_k8s_env_file,
            "kailash_k8s_image_errors": kailash_k8s_image_errors,
            "kailash_backup_config": kailash_backup_config,
            "kailash_k8s_setting_names": kailash_k8s_setting_names,
            "kailash_k8s_preflight_errors": kailash_k8s_preflight_errors,
            "kailash_k8s_images": kailash_k8s_images,
            "kailash_k8s_quota": kailash_k8s_quota,
            "kailash_k8s_container_max": kailash_k8s_container_max,
            "kailash_k8s_seconds": kailash_k8s_seconds,
            "kailash_k8s_burst_multiplier": kailash_k8s_burst_multiplier,
        }
