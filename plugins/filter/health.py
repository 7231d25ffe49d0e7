"""The health report of playbooks/health.yml: its plan, and the table, JSON and JUnit XML.

The playbook orchestrates (lists the containers, runs the probes, prints, writes, fails);
these filters compute, from plain data, everything it reports (issue #12, item 3). They
know no service by name: what is special about a service is in its *probe spec*, a mapping
the playbook passes in (``kailash_health__specs``, service -> spec):

``members``   the Compose services that make up the stack service, the first one owning
              its address (default: the service's own name)
``settings``  probe setting -> the variable that holds it (``port``, ``user``, ``password``,
              ...); the playbook resolves them into ``conf`` (service -> setting -> value)
``endpoint``  how the address is written, ``str.format`` style with ``{host}`` and
              ``{port}`` (default ``"{host}:{port}"``, e.g. ``"bolt://{host}:{port}"``)
``address``   ``bind``: the service is probed where users reach it, its published port on
              the address in its ``bind`` setting (``127.0.0.1`` when it binds to all)
``kind``      which probe runs (a kind of module_utils/kailash_probe_kinds/: the probe
              module of that name; one ``kailash_probes`` run probes every service)
``endpoint_option``  the probe's option that takes the endpoint (``url``, ``uri``); without
              it the probe gets ``host`` and ``port``
``options``   more options of that probe, as they are (``json_key: status`` ...)
``release``   ``{member, argv}``: the service's API reports only an API version; the command
              run in that member's container prints the server's release, and the report
              shows ``<release> (API <version>)``
``alerts``    the service is an alert source (a Prometheus): its probe asks its HTTP API
              ``/api/v1/alerts`` and the probe returns the alerts list from the same answer
              (the http probe's ``json_return``, set to ``alerts.key``, default
              ``data.alerts``). ``alerts.heartbeat``: labels that mark an always-firing
              heartbeat alert (``{severity: none}``): listed apart, never counted as firing

A service without a spec is reported, never probed (``unknown``: no probe for this service).

Filters
=======

``kailash_health_containers(ps_lines, inspect)``
    The project's containers in docker_host_info's (verbose) form, from ``docker ps
    --format '{{json .}}'`` and ``docker inspect`` output (one kailash_read run).
``kailash_health_plan(containers, services, specs, conf, endpoints={}, network='')``
    What is deployed and where to probe it: service -> {service, deployed, containers,
    endpoint, probe, host, port, note}. ``containers`` as community.docker.docker_host_info
    lists them (``verbose_output``); ``endpoints`` the test hook kailash_health_endpoints
    (service -> {host, port}: probe that address, container or not); ``network`` the
    network whose address wins (the project's data network).
``kailash_health_probes(plan, conf, common)``
    The probes to run, service -> its resolved settings plus service, host, port, endpoint
    and the ``common`` settings (timeout, retries, backoff, docker_host, ca_file). Holds
    secrets: never log it.
``kailash_health_probe_calls(probes, specs)``
    The ``probes`` option of ``kailash_probes``: service -> {kind, options}, the options
    taken from each probe's settings, its address (or endpoint) and the common settings,
    plus the spec's ``options``. Holds secrets: never log it.
``kailash_health_release_reads(plan, specs, results)``
    The release commands to run: [{service, container, argv}] for each service with a
    ``release`` spec whose probe answered (up or degraded) and whose member container exists.
``kailash_health_releases(reads, plan=None)``
    The registered result of those commands (a loop: ``{results: [...]}``, the list, or a
    kailash_read's ``commands``) -> service -> release, for the commands that succeeded,
    plus the releases ``plan`` (the release reads) kept from earlier runs.
``kailash_health_release_cache(plan, releases)``
    The release cache file's text: container id -> release (a container's release never
    changes, so the next run reads only new containers' releases).
``kailash_health_report(plan, results, run, releases={}, alerts=None)``
    The report (what the JSON file holds): ``results`` service -> the probe module's
    registered result (a result without ``status`` is a probe that could not run);
    ``run`` {project, host, network, timeout, retries, mode, t0, now} (``t0``/``now``: epoch
    seconds when the probes started / now); ``alerts`` the section of
    ``kailash_health_alerts`` (None: not checked).
``kailash_health_alerts(plan, results, specs, now=None)``
    The report's ``alerts`` section, from the probe results of the deployed alert sources
    (services whose spec has ``alerts``): ``status`` ``not checked`` (no source deployed),
    ``unknown`` (no source answered: ``note`` says why), ``none`` or ``firing``;
    ``firing`` and ``pending`` (lists of {alertname, severity, state, service, instance,
    job, since, active_s, summary, source}), their ``counts``, and the ``heartbeats``.
    ``now`` (epoch seconds) gives each alert's ``active_s``.
``kailash_health_table(report, check_mode=False)``
    The aligned text table printed to the user, with its title line.
``kailash_health_junit(report)``
    The JUnit XML document (down: failure, error: error, not deployed/unknown: skipped),
    and, when alerts were checked, a second suite: a failing testcase per firing alert of
    severity critical, a passing one per other firing alert (or one "no alert firing").
``kailash_health_warning(report)``
    The warning naming the degraded services ('' when none is).
``kailash_health_failure(report, report_file, alerts=False)``
    The message of the failed play naming every service that is down or in error (and,
    with ``alerts``, every firing alert: kailash_health_fail_on_alerts).

Statuses: ``up``, ``degraded`` (answers, not entirely well: a warning), ``down`` (fails the
play), ``error`` (the probe could not run: fails the play), ``not deployed``, ``unknown``.
"""

from __future__ import annotations

import datetime
import json
import numbers
import os
from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError
from markupsafe import escape

# The module result's keys that are columns of the report or Ansible's own: the rest of a
# probe result is the service's facts (``details``).
_INTERNAL = frozenset([
    "status", "latency_ms", "version", "error", "attempts", "changed", "failed",
    "failed_when_result", "invocation", "msg", "warnings", "deprecations", "exception",
    "module_stdout", "module_stderr", "stdout", "stderr", "json_returned",
])
_FAILING = ("down", "error")
_SKIPPED = ("not deployed", "unknown")
_HEADER = ["service", "status", "latency ms", "version", "error"]


def _container(found: Mapping[str, Any]) -> dict[str, Any]:
    """One container of a service as the plan lists it: name, service, state, health, status."""
    status = found.get("Status") or ""
    if "(unhealthy)" in status:
        health = "unhealthy"
    elif "health: starting" in status:
        health = "starting"
    elif "(healthy)" in status:
        health = "healthy"
    else:
        health = ""
    name = found["Names"][0]
    return {"name": name[1:] if name.startswith("/") else name,
            "service": found["Labels"]["com.docker.compose.service"],
            "state": found.get("State", ""), "health": health, "status": status}


def _address(found: Mapping[str, Any], network: str) -> str:
    """A container's address: on ``network`` if it has one there, else its first one."""
    networks = (found.get("NetworkSettings") or {}).get("Networks") or {}
    on_network = (networks.get(network) or {}).get("IPAddress") or ""
    any_ip = next((n.get("IPAddress") for n in networks.values() if n.get("IPAddress")), "")
    return on_network or any_ip


def _note(service: str, deployed: bool, host: str, containers: list[dict[str, Any]],
          members: list[str], probed: bool) -> str | None:
    """Why a deployed service is not probed (no address, no probe spec), or None."""
    if deployed and not host:
        owners = [c for c in containers if c["service"] == members[0]] + containers
        if not owners:
            return "cannot connect: no address to probe (kailash_health_endpoints gives no host)"
        main = owners[0]
        return f"cannot connect: container {main['name']} is not running ({main['status']})"
    if deployed and not probed:
        return "no probe for this service"
    return None


def kailash_health_plan(containers: Any, services: Any, specs: Any, conf: Any,
                        endpoints: Any = None, network: str = "") -> dict[str, Any]:
    """What is deployed and where to probe it: service -> plan entry (see the module doc).

    A service is deployed when it has a container or an entry in ``endpoints``; it is
    probed when it is deployed, has an address and has a spec. The address is its first
    member's (on ``network`` first), an ``address: bind`` spec's published address, or the
    ``endpoints`` override; the port is the override's or the resolved ``port`` setting.
    """
    endpoints, specs, conf = endpoints or {}, specs or {}, conf or {}
    plan: dict[str, Any] = {}
    for service in services:
        spec = specs.get(service) or {}
        members = list(spec.get("members") or [service])
        mine = [c for c in containers or []
                if (c.get("Labels") or {}).get("com.docker.compose.service", "") in members]
        address = ""
        for found in mine:
            if found["Labels"]["com.docker.compose.service"] == members[0]:
                address = _address(found, network)
        if spec.get("address") == "bind" and address:
            bind = conf[service]["bind"]
            address = "127.0.0.1" if bind in ("0.0.0.0", "") else bind
        override = endpoints.get(service) or {}
        host = override.get("host", address)
        port = override.get("port", (conf.get(service) or {}).get("port"))
        deployed = len(mine) > 0 or len(override) > 0
        listed = [_container(c) for c in mine]
        plan[service] = {
            "service": service, "deployed": deployed, "containers": listed,
            "endpoint": (spec.get("endpoint") or "{host}:{port}").format(host=host, port=port)
            if deployed and host else None,
            "probe": deployed and len(host) > 0 and service in specs,
            "host": host, "port": port,
            "note": _note(service, deployed, host, listed, members, service in specs),
        }
    return plan


def kailash_health_probes(plan: Any, conf: Any, common: Any) -> dict[str, Any]:
    """The probes to run: service -> its settings, address and the ``common`` settings.

    Only the services the plan probes; the settings hold the secrets (never log this).
    """
    return {
        service: {**(conf.get(service) or {}), "service": service, "host": entry["host"],
                  "port": entry["port"], "endpoint": entry["endpoint"], **(common or {})}
        for service, entry in plan.items() if entry["probe"]
    }


_COMMON = ("timeout", "retries", "backoff")
_ALERTS_KEY = "data.alerts"  # where /api/v1/alerts answers its list
_ADDRESS = ("host", "port", "bind")


def kailash_health_probe_calls(probes: Any, specs: Any) -> dict[str, Any]:
    """service -> {kind, options}: the ``probes`` of one ``kailash_probes`` run.

    The options: the probe's settings (the spec's ``settings`` keys are the probe's option
    names), its address as ``host`` and ``port``, or, with an ``endpoint_option`` in the
    spec, the endpoint under that option's name (``url``, ``uri``); the common timeout,
    retries and backoff; then the spec's own ``options``. An https endpoint is checked
    against ``ca_file`` when that file exists on the control node (otherwise the probe
    uses the system's store).
    """
    calls = {}
    for service, probe in probes.items():
        spec = specs.get(service) or {}
        if not spec.get("kind"):
            raise AnsibleFilterError(f"the probe spec of {service} names no kind")
        options = {key: probe[key] for key in spec.get("settings") or {}
                   if key not in _ADDRESS and probe.get(key) is not None}
        where = spec.get("endpoint_option")
        if where:
            options[where] = probe["endpoint"]
            ca_file = probe.get("ca_file")
            if str(probe["endpoint"]).startswith("https://") and ca_file \
                    and os.path.isfile(ca_file):
                options["ca_path"] = ca_file
        else:
            options.update(host=probe["host"], port=probe["port"])
        options.update({key: probe[key] for key in _COMMON if key in probe})
        options.update(spec.get("options") or {})
        if spec.get("alerts") is not None:
            options["json_return"] = (spec["alerts"] or {}).get("key", _ALERTS_KEY)
        calls[service] = {"kind": spec["kind"], "options": options}
    return calls


def kailash_health_containers(ps_lines: Any, inspect: Any) -> list[dict[str, Any]]:
    """The project's containers as community.docker.docker_host_info lists them (verbose):
    {Id, Names, Labels, State, Status, NetworkSettings.Networks}, from the output of
    ``docker ps --all --no-trunc --format '{{json .}}'`` (the state and its text, "Up 5
    minutes (healthy)") and of ``docker inspect`` of the same containers (labels, addresses).
    A container gone between the two is left out; one that came is listed by inspect alone.
    """
    status = {}
    for line in str(ps_lines or "").splitlines():
        if line.strip():
            row = json.loads(line)
            status[row["ID"]] = (row.get("State", ""), row.get("Status", ""))
    text = str(inspect or "").strip()
    found = json.loads(text[text.index("["):]) if "[" in text else []
    listed = []
    for c in found:
        state = (c.get("State") or {}).get("Status", "")
        state, status_text = status.get(c["Id"], (state, state))
        listed.append({
            "Id": c["Id"], "Names": [c.get("Name", "")],
            "Labels": (c.get("Config") or {}).get("Labels") or {},
            "State": state, "Status": status_text,
            "NetworkSettings": {"Networks": (c.get("NetworkSettings") or {}).get("Networks") or {}},
        })
    return listed


def _release_cache(text: Any) -> dict[str, str]:
    """The kept releases (container id -> release) from the cache file's text; {} when
    there is none or it is not such a mapping (the releases are read again then)."""
    if isinstance(text, Mapping):
        return {str(k): str(v) for k, v in text.items()}
    try:
        kept = json.loads(text or "{}")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in kept.items()} if isinstance(kept, dict) else {}


def kailash_health_release_reads(plan: Any, specs: Any, results: Any, containers: Any = None,
                                 cache: Any = None) -> list[dict[str, Any]]:
    """The release commands to run: [{service, container, argv, id, cached}].

    For each service whose spec has a ``release``, whose probe answered (up or degraded)
    and whose ``release.member`` container is in the plan. ``id`` is that container's id
    (from ``containers``, as docker_host_info lists them); ``cached`` the release kept for
    that id in ``cache`` (the text of the cache file, or its mapping) or None: a
    container's image, hence its release, never changes, so only new containers are read.
    """
    ids = {(c.get("Names") or ["/"])[0].lstrip("/"): c.get("Id", "") for c in containers or []}
    kept = _release_cache(cache)
    reads = []
    for service, entry in plan.items():
        release = (specs.get(service) or {}).get("release")
        status = (results.get(service) or {}).get("status")
        if not release or status not in ("up", "degraded"):
            continue
        names = [c["name"] for c in entry["containers"] if c["service"] == release["member"]]
        if names:
            cid = ids.get(names[0], "")
            reads.append({"service": service, "container": names[0],
                          "argv": list(release["argv"]), "id": cid,
                          "cached": kept.get(cid) if cid else None})
    return reads


def kailash_health_releases(reads: Any, plan: Any = None) -> dict[str, str]:
    """service -> release from the registered release commands (rc 0 only, output trimmed).

    ``reads`` is the registered loop result (``{results: [...]}``) or its list; each
    result's ``item`` is one entry of ``kailash_health_release_reads``. Or the
    ``commands`` of a ``kailash_read`` run: service -> ``{rc, stdout}``. ``plan``, the
    release reads, adds the releases kept from earlier runs (``cached``).
    """
    known = {r["service"]: r["cached"] for r in plan or [] if r.get("cached") is not None}
    if isinstance(reads, Mapping) and "results" not in reads:
        return {**known, **{service: str(out.get("stdout", "")).strip()
                            for service, out in reads.items()
                            if isinstance(out, Mapping) and out.get("rc", 1) == 0}}
    items = reads.get("results", []) if isinstance(reads, Mapping) else reads or []
    return {**known, **{r["item"]["service"]: str(r.get("stdout", "")).strip()
                        for r in items if r.get("rc", 1) == 0 and "item" in r}}


def kailash_health_release_cache(plan: Any, releases: Any) -> str:
    """The cache file's new text: container id -> release, for the release reads of this
    run whose release is known (so containers that are gone drop out)."""
    keep = {r["id"]: releases[r["service"]] for r in plan or []
            if r.get("id") and r["service"] in (releases or {})}
    return json.dumps(keep, indent=2, sort_keys=True) + "\n"


# ------------------------------------------------------------------------------ alerts

_SEVERITY_ORDER = ("critical", "warning", "info")


def _since(active_at: Any) -> tuple[str | None, float | None]:
    """An alert's ``activeAt`` (RFC 3339, nanoseconds) -> ("YYYY-MM-DDTHH:MM:SSZ", epoch)."""
    text = str(active_at or "")
    try:
        when = datetime.datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return (text or None), None
    when = when.replace(tzinfo=datetime.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ"), when.timestamp()


def _alert(found: Mapping[str, Any], source: str, now: float | None) -> dict[str, Any]:
    """One alert of /api/v1/alerts as the report lists it."""
    labels = found.get("labels") or {}
    since, epoch = _since(found.get("activeAt"))
    return {
        "alertname": labels.get("alertname"), "severity": labels.get("severity"),
        "state": found.get("state"), "service": labels.get("service"),
        "instance": labels.get("instance"), "job": labels.get("job"), "since": since,
        "active_s": None if now is None or epoch is None else round(max(now - epoch, 0.0)),
        "summary": (found.get("annotations") or {}).get("summary"), "source": source,
    }


def _alert_order(alert: Mapping[str, Any]) -> tuple[Any, ...]:
    severity = alert["severity"] or ""
    rank = _SEVERITY_ORDER.index(severity) if severity in _SEVERITY_ORDER else len(
        _SEVERITY_ORDER)
    return (rank, str(alert["alertname"] or ""), str(alert["service"] or ""),
            str(alert["instance"] or ""))


def _unanswered(entry: Mapping[str, Any], result: Mapping[str, Any]) -> str | None:
    """Why an alert source gave no alerts list (None when it did)."""
    if not entry["probe"]:
        return entry.get("note") or "not probed"
    if "status" not in result:
        return "probe failed: " + str(result.get("msg", "no result")).strip()
    if result["status"] not in ("up", "degraded"):
        return f"{result['status']}: {result.get('error') or 'no details'}"
    if not isinstance(result.get("json_returned"), list):
        return "answered without an alerts list"
    return None


def kailash_health_alerts(plan: Any, results: Any, specs: Any,
                          now: Any = None) -> dict[str, Any]:
    """The report's ``alerts`` section (see the module doc), from the deployed alert
    sources' probe results. An alert whose labels include every label of its source's
    ``alerts.heartbeat`` is a heartbeat (always firing by design): listed apart."""
    results, specs = results or {}, specs or {}
    now = None if now is None else float(now)
    sources = [name for name, spec in specs.items() if (spec or {}).get("alerts") is not None]
    deployed = [name for name in sources if (plan.get(name) or {}).get("deployed")]
    section: dict[str, Any] = {
        "checked": False, "status": "not checked", "sources": deployed, "note": None,
        "counts": {"firing": 0, "pending": 0}, "firing": [], "pending": [], "heartbeats": [],
    }
    if not deployed:
        section["note"] = ("no alert source deployed ("
                           + (", ".join(sources) or "no probe spec has alerts") + ")")
        return section
    answered, failed = [], []
    for name in deployed:
        result = results.get(name) or {}
        why = _unanswered(plan[name], result)
        if why:
            failed.append(f"{name} does not answer ({why})")
            continue
        answered.append(name)
        heartbeat = (specs[name]["alerts"] or {}).get("heartbeat") or {}
        for found in result["json_returned"]:
            if not isinstance(found, Mapping):
                continue
            alert = _alert(found, name, now)
            labels = found.get("labels") or {}
            if heartbeat and all(labels.get(k) == v for k, v in heartbeat.items()):
                if alert["state"] == "firing":
                    section["heartbeats"].append(alert)
            elif alert["state"] in ("firing", "pending"):
                section[alert["state"]].append(alert)
    for state in ("firing", "pending", "heartbeats"):
        section[state].sort(key=_alert_order)
    section["counts"] = {"firing": len(section["firing"]), "pending": len(section["pending"])}
    section["note"] = "; ".join(failed) or None
    if not answered:
        section["status"] = "unknown"
    else:
        section.update(checked=True, status="firing" if section["firing"] else "none")
    return section


def _not_checked(report: Mapping[str, Any]) -> Mapping[str, Any]:
    """The report's alerts section (a report made without one: not checked)."""
    return report.get("alerts") or {"checked": False, "status": "not checked", "note": None,
                                     "firing": [], "pending": [], "heartbeats": []}


def _alerts_lines(alerts: Mapping[str, Any]) -> list[str]:
    """The table's alerts part: a summary line, then a row per firing and pending alert."""
    if alerts["status"] == "not checked":
        return [f"Alerts: not checked ({alerts['note'] or 'no alert source'})"]
    if alerts["status"] == "unknown":
        return [f"Alerts: unknown, {alerts['note']}"]
    extra = [f"pending: {len(alerts['pending'])}"]
    if alerts["heartbeats"]:
        extra.append("heartbeat: " + ", ".join(
            sorted({str(a["alertname"]) for a in alerts["heartbeats"]})))
    extra.append("from " + ", ".join(alerts["sources"]))
    if alerts["note"]:
        extra.append(alerts["note"])
    count = len(alerts["firing"]) or "none"
    lines = [f"Alerts firing: {count} ({'; '.join(extra)})"]
    rows = [
        [a["state"], a["severity"] or "-", a["alertname"] or "-",
         " ".join(f"{k}={a[k]}" for k in ("service", "instance") if a[k]) or "-",
         f"since {a['since'] or '?'}"
         + (f" ({a['active_s']} s)" if a["active_s"] is not None else "")]
        for a in alerts["firing"] + alerts["pending"]
    ]
    widths = [max(len(row[col]) for row in rows) for col in range(4)] if rows else []
    for row in rows:
        lines.append("  " + " | ".join(
            [*(row[col].ljust(widths[col]) for col in range(4)), row[4]]))
    return lines


def _sick(containers: list[dict[str, Any]]) -> str:
    """The containers that are not running or unhealthy, ``name: status``, each once."""
    sick = [c for c in containers if c["state"] != "running"]
    sick += [c for c in containers if c["health"] == "unhealthy"]
    texts: list[str] = []
    for c in sick:
        text = f"{c['name']}: {c['status']}"
        if text not in texts:
            texts.append(text)
    return "; ".join(texts)


def _entry(entry: Mapping[str, Any], result: Mapping[str, Any],
           release: str | None) -> dict[str, Any]:
    """One service's line of the report, from its plan entry and its probe's result."""
    found = {"status": "", "error": None, "latency_ms": None, "version": None,
             "attempts": None, "details": {}}
    note = entry.get("note")
    if not entry["deployed"]:
        found["status"] = "not deployed"
    elif not entry["probe"] and note and note.startswith("cannot connect"):
        found.update(status="down", error=note)
    elif not entry["probe"]:
        found.update(status="unknown", error=note)
    elif "status" not in result:
        found.update(status="error",
                     error="probe failed: " + str(result.get("msg", "no result")).strip())
    else:
        found.update({k: result.get(k) for k in
                      ("status", "error", "latency_ms", "version", "attempts")})
        if release is not None:
            found["version"] = f"{release} (API {result.get('version')})"
        found["details"] = {k: v for k, v in result.items()
                            if k not in _INTERNAL and not k.startswith("_ansible")}
        sick = _sick(entry["containers"])
        if sick and found["status"] == "down":
            found["error"] = f"{found['error'] or 'down'} (container {sick})"
        elif sick and found["status"] == "up":
            found.update(status="degraded", error=f"answers, but container {sick}")
    return {"service": entry["service"], "status": found["status"],
            "latency_ms": found["latency_ms"], "version": found["version"],
            "error": found["error"], "attempts": found["attempts"],
            "endpoint": entry["endpoint"], "containers": entry["containers"],
            "details": found["details"]}


def kailash_health_report(plan: Any, results: Any, run: Any,
                          releases: Any = None, alerts: Any = None) -> dict[str, Any]:
    """The health report (the JSON file's content), one entry per service of the plan.

    A deployed service the plan does not probe is down when its container has no address
    (the plan's note says why), unknown when it has no probe; a probe result without a
    status is an error; a service that answers while one of its containers is stopped or
    unhealthy is degraded (down: the containers are named in its error). ``alerts`` is
    the section of ``kailash_health_alerts``; without it the alerts are not checked.
    """
    results, releases = results or {}, releases or {}
    services = [_entry(entry, results.get(name) or {}, releases.get(name))
                for name, entry in plan.items()]
    counts: dict[str, int] = {}
    for s in services:
        counts[s["status"]] = counts.get(s["status"], 0) + 1
    now = float(run["now"])
    failing = [s["service"] for s in services if s["status"] in _FAILING]
    return {
        "project": run["project"], "host": run["host"], "network": run["network"],
        "checked_at": datetime.datetime.fromtimestamp(now, datetime.UTC)
        .strftime("%Y-%m-%dT%H:%M:%SZ"),
        "probe_wall_ms": round((now - float(run["t0"])) * 1000, 1),
        "timeout_s": float(run["timeout"]), "retries": int(run["retries"]),
        "mode": run["mode"], "healthy": not failing, "counts": counts, "failing": failing,
        "degraded": [s["service"] for s in services if s["status"] == "degraded"],
        "services": services,
        "alerts": dict(alerts) if alerts is not None else dict(_not_checked({})),
    }


def kailash_health_table(report: Any, check_mode: bool = False) -> str:
    """The table printed to the user: a title line, a header, a rule, a row per service.

    The first four columns are as wide as their widest cell (the header's included); the
    error column is last and not padded, its rule as long as its longest cell.
    """
    rows = [_HEADER] + [
        [s["service"], s["status"],
         "-" if s["latency_ms"] is None else f"{float(s['latency_ms']):.1f}",
         str(s["version"] or "-"), str(s["error"] or "")]
        for s in report["services"]
    ]
    widths = [max(len(row[col]) for row in rows) for col in range(4)]
    title = (
        f"Health of {report['project']} on {report['host']} ({report['mode']}, timeout "
        f"{report['timeout_s']} s, retries {report['retries']}, probes took "
        f"{report['probe_wall_ms']} ms"
        + ("; check mode: no report files written" if check_mode else "") + ")"
    )
    lines = [title]
    for number, row in enumerate(rows):
        cells = [row[col].ljust(widths[col]) for col in range(4)]
        lines.append(" | ".join([*cells, row[4]]).strip())
        if number == 0:
            rule = [*widths, max(len(r[4]) for r in rows)]
            lines.append("-+-".join("-" * w for w in rule))
    lines += _alerts_lines(_not_checked(report))
    return "\n".join(line for line in lines if line)


def _e(value: Any) -> str:
    """XML-escaped text (as Jinja's ``e`` filter: & < > " ')."""
    return str(escape(value))


def _testcase(s: Mapping[str, Any], classname: str) -> list[str]:
    """The <testcase> element of one service, as lines."""
    error = _e(s["error"] or s["status"])
    seconds = f"{float(s['latency_ms'] or 0) / 1000:.3f}"
    lines = [f'    <testcase classname="{classname}" name="{_e(s["service"])}" time="{seconds}">']
    if s["status"] == "down":
        lines.append(f'      <failure type="down" message="{error}">{_e(s["service"])} at '
                     f'{_e(s["endpoint"] or "-")}: {error}</failure>')
    elif s["status"] == "error":
        lines.append(f'      <error type="probe error" message="{error}">{error}</error>')
    elif s["status"] in _SKIPPED:
        message = s["status"] + (f": {s['error']}" if s["error"] else "")
        lines.append(f'      <skipped message="{_e(message)}"/>')
    else:
        out = (s["status"] + (f", version {s['version']}" if s["version"] else "")
               + (f": {s['error']}" if s["error"] else ""))
        lines.append(f"      <system-out>{_e(out)} ({_e(s['endpoint'])})</system-out>")
    lines.append("    </testcase>")
    return lines


def _alert_cases(alerts: Mapping[str, Any], classname: str) -> list[list[str]]:
    """The alerts suite's testcases, as lines each: a firing critical alert fails, another
    firing alert passes with its text; none firing: one passing case; unknown: skipped."""
    if alerts["status"] == "unknown":
        return [[f'    <testcase classname="{classname}" name="alerts" time="0.000">',
                 f'      <skipped message="{_e("unknown: " + str(alerts["note"]))}"/>',
                 "    </testcase>"]]
    if not alerts["firing"]:
        return [[f'    <testcase classname="{classname}" name="no alert firing" time="0.000">',
                 f'      <system-out>{_e("from " + ", ".join(alerts["sources"]))}</system-out>',
                 "    </testcase>"]]
    cases = []
    for a in alerts["firing"]:
        where = " ".join(f"{k}={a[k]}" for k in ("service", "instance") if a[k])
        name = _e(f"{a['alertname']} {where}".strip())
        text = _e(f"{a['alertname']} ({a['severity'] or 'no severity'}) firing since "
                  f"{a['since'] or '?'}" + (f": {a['summary']}" if a["summary"] else ""))
        body = (f'      <failure type="alert firing" message="{text}">{text}</failure>'
                if a["severity"] == "critical" else f"      <system-out>{text}</system-out>")
        cases.append([f'    <testcase classname="{classname}" name="{name}" time="0.000">',
                      body, "    </testcase>"])
    return cases


def kailash_health_junit(report: Any) -> str:
    """The JUnit XML document: one testsuite per report, one testcase per service.

    down is a <failure>, error an <error>, not deployed and unknown are <skipped>, up and
    degraded have their status, version and endpoint in <system-out>. The suite's time is
    the sum of the probes' latencies. When the alerts were looked at (a source deployed),
    a second suite: one testcase per firing alert (severity critical: a <failure>; others
    pass, their text in <system-out>), one passing case when none fires, one skipped case
    when no source answered. The <testsuites> counts are the sums of both suites.
    """
    services = report["services"]
    latencies = [s["latency_ms"] for s in services if isinstance(s["latency_ms"], numbers.Number)]
    down = sum(1 for s in services if s["status"] == "down")
    errors = sum(1 for s in services if s["status"] == "error")
    skipped = sum(1 for s in services if s["status"] in _SKIPPED)
    seconds = f"{sum(latencies) / 1000:.3f}"
    counts = (f'tests="{len(services)}" failures="{down}" errors="{errors}" '
              f'skipped="{skipped}" time="{seconds}"')
    classname = _e(f"kailash.{report['project']}.{report['host']}")
    alerts = _not_checked(report)
    cases = [] if alerts["status"] == "not checked" else _alert_cases(alerts, classname + ".alerts")
    firing = sum(1 for c in cases if "<failure " in c[1])
    unknown = sum(1 for c in cases if "<skipped " in c[1])
    total = counts if not cases else (
        f'tests="{len(services) + len(cases)}" failures="{down + firing}" errors="{errors}" '
        f'skipped="{skipped + unknown}" time="{seconds}"')
    suite = _e(f"health {report['project']} on {report['host']}")
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<testsuites name="kailash health" {total}>',
        f'  <testsuite name="{suite}" {counts} timestamp="{report["checked_at"]}" '
        f'hostname="{_e(report["host"])}">',
    ]
    for s in services:
        lines += _testcase(s, classname)
    lines.append("  </testsuite>")
    if cases:
        alerts_suite = _e(f"alerts {report['project']} on {report['host']}")
        lines.append(
            f'  <testsuite name="{alerts_suite}" '
            f'tests="{len(cases)}" failures="{firing}" errors="0" skipped="{unknown}" '
            f'time="0.000" timestamp="{report["checked_at"]}" hostname="{_e(report["host"])}">')
        for case in cases:
            lines += case
        lines.append("  </testsuite>")
    lines.append("</testsuites>")
    return "\n".join(lines) + "\n"


def kailash_health_warning(report: Any) -> str:
    """The warning naming each degraded service and why ('' when none is degraded)."""
    degraded = [s for s in report["services"] if s["status"] == "degraded"]
    if not degraded:
        return ""
    return (f"WARNING: degraded on {report['host']} ({report['project']}): "
            + "; ".join(f"{s['service']}: {s['error']}" for s in degraded))


def kailash_health_failure(report: Any, report_file: str, alerts: Any = False) -> str:
    """The failed play's message: every service down or in error, and the report's path;
    with ``alerts`` (kailash_health_fail_on_alerts) also every firing alert."""
    failing = [f"{s['service']} is {s['status']} ({s['error'] or 'no details'})"
               for s in report["services"] if s["status"] in _FAILING]
    if alerts:
        failing += [f"alert {a['alertname']} is firing ({a['severity'] or 'no severity'}"
                    + "".join(f", {k} {a[k]}" for k in ("service", "instance") if a[k])
                    + f", since {a['since'] or '?'})" for a in _not_checked(report)["firing"]]
    parts = [text + ("; " if number < len(failing) - 1 else ".") + " "
             for number, text in enumerate(failing)]
    return (f"{report['project']} on {report['host']} is NOT healthy: " + "".join(parts)
            + f"Report: {report_file}")


class FilterModule:
    """Ansible filter plugin entry point."""

    def filters(self) -> dict[str, Any]:
        """The filters, by name."""
        return {
            "kailash_health_containers": kailash_health_containers,
            "kailash_health_plan": kailash_health_plan,
            "kailash_health_probes": kailash_health_probes,
            "kailash_health_probe_calls": kailash_health_probe_calls,
            "kailash_health_release_reads": kailash_health_release_reads,
            "kailash_health_releases": kailash_health_releases,
            "kailash_health_release_cache": kailash_health_release_cache,
            "kailash_health_alerts": kailash_health_alerts,
            "kailash_health_report": kailash_health_report,
            "kailash_health_table": kailash_health_table,
            "kailash_health_junit": kailash_health_junit,
            "kailash_health_warning": kailash_health_warning,
            "kailash_health_failure": kailash_health_failure,
        }
