"""Policy tests over the built manifests (production and staging): resources, probes,
security contexts, Services, PDBs, NetworkPolicies, the edge, labels, and the ADR's
figures per workload."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import Render, Session

ENVS = ["production", "staging"]
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "CronJob")
RECOMMENDED = [
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/version",
]

# ADR-002 figures: replicas and per-pod resources (requests / limits) of each workload's
# main container. ChromaDB: the ADR's 2 replicas cannot share a single-node Chroma's
# data, so 1 (docs/kubernetes.md); its figures are the server container's.
ADR = {
    "nexus-api": (3, "api", ("1", "2Gi"), ("2", "4Gi")),
    "nexus-websocket": (2, "websocket", ("500m", "1Gi"), ("1", "2Gi")),
    "nexus-worker": (5, "worker", ("1", "2Gi"), ("2", "4Gi")),
    "postgresql": (1, "postgresql", ("2", "4Gi"), ("4", "8Gi")),
    "neo4j": (1, "neo4j", ("2", "4Gi"), ("4", "8Gi")),
    "chromadb": (1, "server", ("1", "2Gi"), ("2", "4Gi")),
    "redis": (1, "redis", ("500m", "1Gi"), ("1", "2Gi")),
}


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]


def pod_labels(doc: dict[str, Any]) -> dict[str, str]:
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["metadata"]["labels"]


def workloads(render: Render) -> list[dict[str, Any]]:
    return [d for d in render.docs if d["kind"] in WORKLOAD_KINDS]


def containers(render: Render):
    for doc in workloads(render):
        spec = pod_spec(doc)
        for c in spec.get("initContainers", []) + spec["containers"]:
            yield doc, spec, c


def skips(doc: dict[str, Any]) -> str:
    return " ".join(
        v
        for k, v in doc["metadata"].get("annotations", {}).items()
        if k.startswith("checkov.io/skip")
    )


def quantity(value: str) -> float:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "m": 0.001}
    for unit, factor in units.items():
        if str(value).endswith(unit):
            return float(str(value)[: -len(unit)]) * factor
    return float(value)


@pytest.fixture(params=ENVS)
def render(request, k8s: Session) -> Render:
    return k8s.renders[request.param]


def test_every_container_has_requests_and_limits(render: Render) -> None:
    for doc, _spec, c in containers(render):
        res = c.get("resources", {})
        for kind in ("requests", "limits"):
            for key in ("cpu", "memory"):
                assert key in res.get(kind, {}), (
                    f"{doc['metadata']['name']}/{c['name']}: no {kind}.{key}"
                )
        for key in ("cpu", "memory"):
            assert quantity(res["limits"][key]) >= quantity(res["requests"][key]), c["name"]


def test_every_server_container_has_three_probes(render: Render) -> None:
    for doc, spec, c in containers(render):
        name = f"{doc['kind']}/{doc['metadata']['name']}/{c['name']}"
        if c in spec.get("initContainers", []):
            # run to completion before the pod starts: Kubernetes refuses probes on them
            assert not {"startupProbe", "readinessProbe", "livenessProbe"} & set(c), name
            continue
        if doc["kind"] == "CronJob":
            # run-to-completion: no server to probe; the exemption is declared for checkov
            assert "CKV_K8S_8" in skips(doc) and "CKV_K8S_9" in skips(doc), name
            assert pod_spec(doc)["restartPolicy"] == "Never"
            continue
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert probe in c, f"{name}: no {probe}"


def test_jvm_gets_a_generous_startup_probe(render: Render) -> None:
    neo4j = pod_spec(render.get("StatefulSet", "neo4j"))["containers"][0]["startupProbe"]
    assert neo4j["periodSeconds"] * neo4j["failureThreshold"] >= 300


def test_security_contexts(render: Render) -> None:
    for doc, spec, c in containers(render):
        name = f"{doc['metadata']['name']}/{c['name']}"
        pod_sc, sc = spec.get("securityContext", {}), c.get("securityContext", {})
        assert pod_sc.get("runAsNonRoot") is True or sc.get("runAsNonRoot") is True, name
        assert (sc.get("seccompProfile") or pod_sc.get("seccompProfile", {})).get(
            "type"
        ) == "RuntimeDefault", name
        assert sc.get("allowPrivilegeEscalation") is False, name
        assert sc.get("privileged") is False, name
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], name
        assert not sc.get("capabilities", {}).get("add"), name
        if sc.get("readOnlyRootFilesystem") is not True:
            assert "CKV_K8S_22" in skips(doc), f"{name}: writable root without a declared reason"
        assert spec.get("automountServiceAccountToken") is False, name
        assert spec.get("serviceAccountName") not in (None, "default"), name
        assert (
            not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC")
        ), name
        for vol in spec.get("volumes", []):
            assert "hostPath" not in vol, name


def test_service_accounts_do_not_mount_tokens(render: Render) -> None:
    accounts = render.objects("ServiceAccount")
    assert len(accounts) >= 8
    assert all(sa.get("automountServiceAccountToken") is False for sa in accounts)
    used = {pod_spec(d)["serviceAccountName"] for d in workloads(render)}
    assert used <= {sa["metadata"]["name"] for sa in accounts}


def test_every_service_selects_pods_and_ports(render: Render) -> None:
    for svc in render.objects("Service"):
        selector = svc["spec"]["selector"]
        assert svc["spec"].get("type", "ClusterIP") == "ClusterIP", svc["metadata"]["name"]
        matches = [d for d in workloads(render) if selector.items() <= pod_labels(d).items()]
        assert matches, f"Service {svc['metadata']['name']} selects no pods"
        ports = {
            p["name"]
            for d in matches
            for c in pod_spec(d)["containers"]
            for p in c.get("ports", [])
        }
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in ports, f"{svc['metadata']['name']}: {port['targetPort']}"


def test_statefulsets_have_headless_services_and_volumes(render: Render) -> None:
    for sts in render.objects("StatefulSet"):
        svc = render.get("Service", sts["spec"]["serviceName"])
        assert svc["spec"]["clusterIP"] == "None"
        assert sts["spec"]["volumeClaimTemplates"], sts["metadata"]["name"]


def test_pdbs_allow_a_drain(render: Render) -> None:
    pdbs = render.objects("PodDisruptionBudget")
    covered = set()
    for pdb in pdbs:
        selector = pdb["spec"]["selector"]["matchLabels"]
        targets = [
            d
            for d in workloads(render)
            if d["kind"] != "CronJob" and selector.items() <= pod_labels(d).items()
        ]
        assert len(targets) == 1, pdb["metadata"]["name"]
        replicas = targets[0]["spec"]["replicas"]
        covered.add(targets[0]["metadata"]["name"])
        if "minAvailable" in pdb["spec"]:
            assert pdb["spec"]["minAvailable"] < replicas, (
                f"{pdb['metadata']['name']} blocks drains"
            )
        else:
            assert pdb["spec"]["maxUnavailable"] >= 1
    assert covered == {d["metadata"]["name"] for d in workloads(render) if d["kind"] != "CronJob"}


def test_app_rollouts_have_no_downtime(render: Render) -> None:
    for dep in render.objects("Deployment"):
        strategy = dep["spec"]["strategy"]
        assert (
            strategy["type"] == "RollingUpdate" and strategy["rollingUpdate"]["maxUnavailable"] == 0
        )
        spec = pod_spec(dep)
        assert "preStop" in spec["containers"][0]["lifecycle"]
        assert spec["topologySpreadConstraints"] and spec["affinity"]["podAntiAffinity"]
        assert spec["priorityClassName"] in {
            p["metadata"]["name"] for p in render.objects("PriorityClass")
        }
        if pod_labels(dep).get("kailash.io/tier") != "app":
            # PgBouncer: no autoscaler, its pools are sized per replica (roles/pgbouncer)
            assert not [h for h in render.objects("HorizontalPodAutoscaler")
                        if h["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]]
            continue
        hpa = render.get("HorizontalPodAutoscaler", dep["metadata"]["name"])
        assert hpa["spec"]["minReplicas"] == dep["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]


def _allowed(render: Render, pod: dict[str, str], port: int, source_ns: str) -> bool:
    """Whether some NetworkPolicy admits TCP `port` of a pod with labels `pod` from `source_ns`."""
    for pol in render.objects("NetworkPolicy"):
        if not pol["spec"]["podSelector"].get("matchLabels", {}).items() <= pod.items():
            continue
        for rule in pol["spec"].get("ingress", []):
            ports = {p["port"] for p in rule.get("ports", [])}
            froms = rule.get("from", [])
            ns_ok = any(
                f.get("namespaceSelector", {})
                .get("matchLabels", {})
                .get("kubernetes.io/metadata.name")
                == source_ns
                for f in froms
            )
            if port in ports and ns_ok:
                return True
    return False


def test_network_policies_default_deny_with_explicit_allows(render: Render) -> None:
    deny = render.get("NetworkPolicy", "default-deny")
    assert deny["spec"]["podSelector"] == {} and set(deny["spec"]["policyTypes"]) == {
        "Ingress",
        "Egress",
    }
    assert "ingress" not in deny["spec"] and "egress" not in deny["spec"]
    dns = render.get("NetworkPolicy", "allow-dns")
    assert {p["port"] for p in dns["spec"]["egress"][0]["ports"]} == {53}


def test_health_and_metrics_stay_reachable(render: Render) -> None:
    """Every port a probe or monitoring uses admits the monitoring namespace; the app's
    HTTP ports also the ingress controller."""
    for doc, spec, c in containers(render):
        if doc["kind"] == "CronJob" or c in spec.get("initContainers", []):
            continue
        named = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            action = c[probe].get("httpGet") or c[probe].get("tcpSocket")
            if action:
                port = named.get(action["port"], action["port"])
                assert _allowed(render, pod_labels(doc), port, "monitoring"), (
                    f"{doc['metadata']['name']}/{c['name']}: probe port {port} closed to monitoring"
                )
    for name, port in (("nexus-api", 8000), ("nexus-websocket", 8001)):
        labels = pod_labels(render.get("Deployment", name))
        assert _allowed(render, labels, port, "monitoring"), name
        assert _allowed(render, labels, port, "ingress-nginx"), name


def test_mcp_is_never_exposed(render: Render) -> None:
    api = render.get("Service", "nexus-api")
    mcp_port = next(p["port"] for p in api["spec"]["ports"] if p["name"] == "mcp")
    for ing in render.objects("Ingress"):
        for rule in ing["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                port = path["backend"]["service"]["port"]
                assert port.get("name") == "http" and port.get("number") != mcp_port
    labels = pod_labels(render.get("Deployment", "nexus-api"))
    assert not _allowed(render, labels, mcp_port, "ingress-nginx")
    assert not _allowed(render, labels, mcp_port, "monitoring")


def test_ingress_tls_and_websocket_timeouts(render: Render) -> None:
    for ing in render.objects("Ingress"):
        assert ing["spec"]["tls"][0]["secretName"]
        assert ing["spec"]["ingressClassName"] == "nginx"
        ann = ing["metadata"]["annotations"]
        assert ann["nginx.ingress.kubernetes.io/force-ssl-redirect"] == "true"
    ws = render.get("Ingress", "nexus-websocket")["metadata"]["annotations"]
    assert int(ws["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    issuer = {
        ing["metadata"]["annotations"].get("cert-manager.io/cluster-issuer")
        for ing in render.objects("Ingress")
    }
    assert issuer == ({"letsencrypt-production"} if render.name == "production" else {None})


def test_images_are_pinned(render: Render) -> None:
    for _doc, _spec, c in containers(render):
        image = c["image"]
        assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), image


def test_namespace_enforces_restricted_pod_security(render: Render) -> None:
    labels = render.objects("Namespace")[0]["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_quota_and_limit_range_fit_the_workloads(render: Render) -> None:
    quota = render.get("ResourceQuota", "kailash")["spec"]["hard"]
    limits = render.get("LimitRange", "kailash")["spec"]["limits"][0]
    total_req = total_lim = 0.0
    for doc, _spec, c in containers(render):
        assert quantity(c["resources"]["limits"]["memory"]) <= quantity(limits["max"]["memory"])
        assert quantity(c["resources"]["limits"]["cpu"]) <= quantity(limits["max"]["cpu"])
        replicas = doc["spec"].get("replicas", 1)
        total_req += replicas * quantity(c["resources"]["requests"]["memory"])
        total_lim += replicas * quantity(c["resources"]["limits"]["memory"])
    assert quantity(quota["requests.memory"]) >= total_req
    assert quantity(quota["limits.memory"]) >= total_lim


def test_recommended_labels(render: Render) -> None:
    for doc in render.docs:
        if doc["kind"] in (
            "ConfigMap",
            "Secret",
            "Namespace",
            "ResourceQuota",
            "LimitRange",
            "PriorityClass",
        ):
            continue
        labels = doc["metadata"].get("labels", {})
        missing = [k for k in RECOMMENDED if k not in labels]
        assert not missing, f"{doc['kind']}/{doc['metadata']['name']}: {missing}"


def test_cronjobs_for_backups_and_drills(render: Render) -> None:
    jobs = {j["metadata"]["name"]: j for j in render.objects("CronJob")}
    assert set(jobs) == {"kailash-backup", "kailash-restore-drill"}
    for job in jobs.values():
        assert job["spec"]["concurrencyPolicy"] == "Forbid"
        assert job["spec"]["schedule"]
        vols = pod_spec(job)["volumes"]
        assert any(
            v.get("persistentVolumeClaim", {}).get("claimName") == "kailash-backups" for v in vols
        )
    assert render.get("PersistentVolumeClaim", "kailash-backups")


@pytest.mark.parametrize("name", sorted(ADR))
def test_resources_match_the_adr(k8s: Session, name: str) -> None:
    render = k8s.renders["production"]
    replicas, container, (cpu_req, mem_req), (cpu_lim, mem_lim) = ADR[name]
    kind = "Deployment" if name.startswith("nexus-") else "StatefulSet"
    doc = render.get(kind, name)
    assert doc["spec"]["replicas"] == replicas
    c = next(c for c in pod_spec(doc)["containers"] if c["name"] == container)
    assert c["resources"] == {
        "requests": {"cpu": cpu_req, "memory": mem_req},
        "limits": {"cpu": cpu_lim, "memory": mem_lim},
    }
