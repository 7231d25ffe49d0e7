"""Monitoring on the Kubernetes target (issue #13, roles/kailash_k8s): what the cluster's
Prometheus scrapes, as PodMonitors (prometheus-operator) or as a plain Prometheus's
``kubernetes_sd_configs`` scrape jobs, and the peers of the NetworkPolicies that let the
scraper in.

The input is data, never a list of services: the metrics slots of the planned services'
compose fragments (``x-kailash.metrics``, docs/datastore-role-contract.md "Metrics"; the
same declarations the dev stack's Prometheus scrapes) and the workloads the Kubernetes
tree runs with their named container ports. A slot whose compose service is no workload
of the tree (for example the dev stack's own Prometheus) is reported, not scraped.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

NAME_LABEL = "app.kubernetes.io/name"
INSTANCE_LABEL = "app.kubernetes.io/instance"


def _ports(workloads: Any) -> dict[str, dict[int, str]]:
    """{workload name: {container port number: port name}}."""
    if not isinstance(workloads, list):
        raise AnsibleFilterError("kailash_k8s_scrape_plan: workloads must be a list")
    out: dict[str, dict[int, str]] = {}
    for workload in workloads:
        if not isinstance(workload, dict) or "name" not in workload:
            raise AnsibleFilterError(f"kailash_k8s_scrape_plan: bad workload {workload!r}")
        named = out.setdefault(str(workload["name"]), {})
        for port in workload.get("ports") or []:
            named[int(port["port"])] = str(port["name"])
    return out


def kailash_k8s_scrape_plan(services: Any, workloads: Any) -> dict[str, list]:
    """The scrape targets of the tree: ``{"targets": [...], "skipped": [...]}``.

    ``services``: compose service name -> definition (the planned fragments' services);
    ``workloads``: ``[{name, ports: [{name, port}]}]``, the tree's workloads whose compose
    service has the same name. A target: ``{workload, port, port_name, path, scheme,
    service, job}``, sorted by job; ``skipped`` names each ``<service>:<port>`` slot with
    no such workload or no named container port of that number.
    """
    named = _ports(workloads)
    targets, skipped = [], []
    for name in sorted(services or {}):
        svc = services[name] or {}
        for entry in (svc.get("x-kailash") or {}).get("metrics") or []:
            port = int(entry["port"])
            port_name = named.get(name, {}).get(port)
            if port_name is None:
                skipped.append(f"{name}:{port}")
                continue
            targets.append(
                {
                    "workload": name,
                    "port": port,
                    "port_name": port_name,
                    "path": entry.get("path", "/metrics"),
                    "scheme": entry.get("scheme", "http"),
                    "service": entry.get("service", name),
                    "job": entry.get("job", name),
                }
            )
    return {"targets": sorted(targets, key=lambda t: t["job"]), "skipped": skipped}


def kailash_k8s_metrics_ports(targets: Any) -> list[dict[str, Any]]:
    """``[{workload, ports: [numbers]}]``: the metrics ports of each scraped workload, sorted
    (one NetworkPolicy per workload lets the scraper in on exactly these)."""
    ports: dict[str, set[int]] = {}
    for target in targets or []:
        ports.setdefault(target["workload"], set()).add(int(target["port"]))
    return [{"workload": w, "ports": sorted(p)} for w, p in sorted(ports.items())]


def _relabel_labels(target: dict[str, Any]) -> dict[str, str]:
    # the labels every series of the target carries, as in the dev stack (service, job)
    return {"job": target["job"], "service": target["service"]}


def kailash_k8s_pod_monitor_spec(
    target: Any, instance: str, interval: str = "", timeout: str = ""
) -> dict[str, Any]:
    """The ``spec`` of a prometheus-operator PodMonitor for one target: the workload's
    pods of this instance (the PodMonitor's own namespace), its named metrics port, and
    the ``service`` and ``job`` labels the rules and the dev stack use."""
    endpoint: dict[str, Any] = {
        "port": target["port_name"],
        "path": target["path"],
        "scheme": target["scheme"],
    }
    if interval:
        endpoint["interval"] = interval
    if timeout:
        endpoint["scrapeTimeout"] = timeout
    endpoint["relabelings"] = [
        {"action": "replace", "targetLabel": label, "replacement": value}
        for label, value in sorted(_relabel_labels(target).items())
    ]
    return {
        "selector": {"matchLabels": {NAME_LABEL: target["workload"], INSTANCE_LABEL: instance}},
        "podMetricsEndpoints": [endpoint],
    }


def _meta(label: str) -> str:
    """Prometheus's meta label of a pod label (``app.kubernetes.io/name`` ->
    ``__meta_kubernetes_pod_label_app_kubernetes_io_name``)."""
    return "__meta_kubernetes_pod_label_" + "".join(c if c.isalnum() else "_" for c in label)


def kailash_k8s_scrape_configs(
    targets: Any, namespace: str, instance: str, interval: str = "", timeout: str = ""
) -> list[dict[str, Any]]:
    """scrape_configs of a plain Prometheus (no operator), one job per target: pod
    discovery in ``namespace`` (``kubernetes_sd_configs``, role pod, limited to the
    workload's pods of this instance), kept to the named metrics port of running pods,
    with the ``service`` label (and ``namespace``, ``pod``) the rules use."""
    jobs = []
    for target in targets or []:
        selector = f"{NAME_LABEL}={target['workload']},{INSTANCE_LABEL}={instance}"
        job: dict[str, Any] = {"job_name": target["job"]}
        if interval:
            job["scrape_interval"] = interval
        if timeout:
            job["scrape_timeout"] = timeout
        job.update(
            {
                "metrics_path": target["path"],
                "scheme": target["scheme"],
                "kubernetes_sd_configs": [
                    {
                        "role": "pod",
                        "namespaces": {"names": [namespace]},
                        "selectors": [{"role": "pod", "label": selector}],
                    }
                ],
                "relabel_configs": [
                    {
                        "source_labels": [_meta(NAME_LABEL), _meta(INSTANCE_LABEL)],
                        "separator": ";",
                        "regex": f"{target['workload']};{instance}",
                        "action": "keep",
                    },
                    {
                        "source_labels": ["__meta_kubernetes_pod_container_port_name"],
                        "regex": target["port_name"],
                        "action": "keep",
                    },
                    {
                        "source_labels": ["__meta_kubernetes_pod_phase"],
                        "regex": "Running",
                        "action": "keep",
                    },
                    {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                    {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
                    {"target_label": "service", "replacement": target["service"]},
                ],
            }
        )
        jobs.append(job)
    return jobs


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "kailash_k8s_scrape_plan": kailash_k8s_scrape_plan,
            "kailash_k8s_metrics_ports": kailash_k8s_metrics_ports,
            "kailash_k8s_pod_monitor_spec": kailash_k8s_pod_monitor_spec,
            "kailash_k8s_scrape_configs": kailash_k8s_scrape_configs,
        }
