"""Monitoring on the Kubernetes target (issue #13; kailash_k8s_monitoring): the three modes
rendered from production's inventory (plain, the default; operator; none), the
PrometheusRule against the rule files, the prometheus-operator schemas (node, pinned
@kubernetes-models/prometheus-operator), promtool on the extracted rules and the plain
configuration, the exporters, and the NetworkPolicies that let the scraper in.

The renders, builds and checks run in the session fixture (conftest.py), at once with the
other Kubernetes tests'."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import CRD_GROUP, OPERATOR_EXTRA, REPO, Render, Session, setup_tool

ROLES = REPO / "roles"
MONITORING_COMPONENTS = {"metrics-exporter", "monitoring"}


def _defaults(role: str) -> dict[str, Any]:
    return yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text())


def _expected_rule_files() -> list[Path]:
    """The rule files the dev stack's Prometheus would load for production's services plus
    the cluster's exporters (roles/prometheus tasks/plan.yml's selection), in its order."""
    services = _defaults("kailash")["kailash_services"]
    exporters = _defaults("kailash_k8s")["kailash_k8s_monitoring_exporters"]
    rule_roles = _defaults("prometheus")["prometheus_rule_roles"]
    roles = list(dict.fromkeys(services + exporters + rule_roles))
    files = [ROLES / r / "files" / "prometheus" / "rules.yml" for r in roles]
    return [f for f in files if f.is_file()] + sorted(
        (ROLES / "prometheus" / "files" / "rules").glob("*.yml")
    )


def _expected_groups() -> list[dict[str, Any]]:
    return [g for f in _expected_rule_files() for g in yaml.safe_load(f.read_text())["groups"]]


def _secret(render: Render, prefix: str) -> dict[str, str]:
    data = render.generated("Secret", prefix)["data"]
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def _pod(doc: dict[str, Any]) -> dict[str, Any]:
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]


def _component(doc: dict[str, Any]) -> str:
    return doc["metadata"].get("labels", {}).get("app.kubernetes.io/component", "")


def _tool(script: str) -> Path:
    return setup_tool(script) / "promtool"


@pytest.fixture(scope="module")
def promtool() -> Path:
    """Debian bookworm's promtool 2.42 (scripts/monitoring-tools.sh), the rules' pin."""
    return _tool("monitoring-tools.sh")


@pytest.fixture(scope="module")
def promtool3() -> Path:
    """Prometheus 3's promtool (scripts/promtool3.sh): Debian's 2.42 build has no
    Kubernetes service discovery, so only this one can check the plain configuration."""
    return _tool("promtool3.sh")


@pytest.fixture(scope="module")
def operator(k8s: Session) -> Render:
    return k8s.renders["operator"]


# --- the modes ------------------------------------------------------------------------


def test_default_mode_is_plain_and_needs_no_crds(k8s: Session) -> None:
    """The default applies to any cluster: no prometheus-operator object in the builds of
    the committed environments, the scrape configuration and rules as ConfigMaps instead."""
    assert _defaults("kailash_k8s")["kailash_k8s_monitoring"] == "plain"
    for env in ("production", "staging"):
        render = k8s.renders[env]
        assert not [d for d in render.docs if d["apiVersion"].startswith(CRD_GROUP + "/")], env
        assert (render.tree / "monitoring" / "kustomization.yaml").is_file(), env
    cms = {d["metadata"]["name"]: d for d in k8s.renders["production"].monitoring_docs}
    assert set(cms) == {
        "kailash-production-prometheus-config",
        "kailash-production-prometheus-rules",
    }
    assert {d["metadata"]["namespace"] for d in cms.values()} == {"monitoring"}


def test_none_is_the_tree_without_monitoring(k8s: Session) -> None:
    """Every object of the none render is in the plain render unchanged, but the
    ResourceQuota (it makes room for the exporters' pods); everything the plain render adds
    is monitoring (exporters, their Secret, policies, discovery RBAC)."""
    plain = {(d["kind"], d["metadata"]["name"]): d for d in k8s.renders["production"].docs}
    none = {(d["kind"], d["metadata"]["name"]): d for d in k8s.renders["none"].docs}
    assert set(none) <= set(plain)
    changed = sorted(k for k in none if none[k] != plain[k])
    assert changed == [("ResourceQuota", "kailash")], changed
    added = sorted(set(plain) - set(none))
    for kind, name in added:
        doc = plain[(kind, name)]
        if kind == "Secret":
            assert name.startswith("kailash-monitoring-"), name
        elif kind == "NetworkPolicy":
            assert re.search(r"-(metrics|egress|from-[a-z-]+exporter)$", name), name
        else:
            assert _component(doc) in MONITORING_COMPONENTS, (kind, name)
    kinds = {k for k, _ in added}
    assert {"Deployment", "NetworkPolicy", "Role", "RoleBinding", "Secret"} <= kinds
    assert not (k8s.renders["none"].tree / "monitoring").exists()
    assert not (k8s.renders["none"].tree / "secrets" / "monitoring").exists()


def test_operator_adds_only_prometheus_operator_objects(k8s: Session, operator: Render) -> None:
    plain = {(d["kind"], d["metadata"]["name"]): d for d in k8s.renders["production"].docs}
    op = {(d["kind"], d["metadata"]["name"]): d for d in operator.docs}
    assert {k: v for k, v in op.items() if k in plain} == plain
    added = [op[k] for k in set(op) - set(plain)]
    assert {d["apiVersion"] for d in added} == {CRD_GROUP + "/v1"}
    assert sorted(d["kind"] for d in added) == ["PodMonitor", "PodMonitor", "PrometheusRule"]
    for doc in added:
        labels = doc["metadata"]["labels"]
        assert OPERATOR_EXTRA["kailash_k8s_monitoring_labels"].items() <= labels.items()
    assert not (operator.tree / "monitoring").exists()


# --- rules ------------------------------------------------------------------------------


def test_prometheus_rule_spec_equals_the_rule_files(operator: Render) -> None:
    rule = operator.get("PrometheusRule", "kailash-rules")
    expected = _expected_groups()
    assert rule["spec"] == {"groups": expected}
    # every file contributes, the platform's generic rules included
    names = [g["name"] for g in rule["spec"]["groups"]]
    assert len(names) == len(set(names)) and "kailash.platform" in names
    assert len(_expected_rule_files()) >= 5


def test_plain_rules_configmap_equals_the_rule_files(k8s: Session) -> None:
    for env in ("production", "staging"):
        render = k8s.renders[env]
        text = (render.tree / "monitoring" / "rules.yml").read_text()
        assert yaml.safe_load(text) == {"groups": _expected_groups()}, env
    cm = next(
        d
        for d in k8s.renders["production"].monitoring_docs
        if d["metadata"]["name"].endswith("-rules")
    )
    assert yaml.safe_load(cm["data"]["rules.yml"]) == {"groups": _expected_groups()}


def test_promtool_checks_the_extracted_rules_and_config(
    k8s: Session, operator: Render, promtool: Path, promtool3: Path, tmp_path: Path
) -> None:
    """promtool on what the cluster gets: the PrometheusRule's spec (as the operator writes
    it to a rule file) and the plain ConfigMaps' rules.yml, with the rules' pinned 2.42 and
    with 3.5; the plain prometheus.yml (its rule_files pointed at the extracted rules, so
    the configuration check loads them too) with 3.5 (2.42 from Debian cannot read
    kubernetes_sd_configs)."""
    spec = operator.get("PrometheusRule", "kailash-rules")["spec"]
    (tmp_path / "operator-rules.yml").write_text(yaml.safe_dump(spec, sort_keys=False))
    data = {}
    for cm in k8s.renders["production"].monitoring_docs:
        data.update(cm["data"])
    (tmp_path / "rules.yml").write_text(data["rules.yml"])
    config = yaml.safe_load(data["prometheus.yml"])
    config["rule_files"] = [str(tmp_path / "rules.yml")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    (tmp_path / "scrape-configs.yml").write_text(data["scrape-configs.yml"])
    rules = ["check", "rules", str(tmp_path / "operator-rules.yml"), str(tmp_path / "rules.yml")]
    for tool, args in (
        (promtool, rules),
        (promtool3, rules),
        (promtool3, ["check", "config", str(tmp_path / "prometheus.yml")]),
    ):
        proc = subprocess.run([str(tool), *args], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "SUCCESS" in proc.stdout + proc.stderr
    groups = len(spec["groups"])
    rules = sum(len(g["rules"]) for g in spec["groups"])
    out = subprocess.run(
        [str(promtool), "check", "rules", str(tmp_path / "operator-rules.yml")],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    assert f"SUCCESS: {rules} rules found" in out, out
    assert groups >= 5
    # the standalone jobs are the complete configuration's
    assert yaml.safe_load(data["scrape-configs.yml"])["scrape_configs"] == config["scrape_configs"]


def test_promtool_unit_tests_pass_against_the_extracted_rules(
    operator: Render, promtool: Path, tmp_path: Path
) -> None:
    """The rules' own promtool tests (tests/monitoring/rules) of the files the cluster
    loads, run against the PrometheusRule's groups instead of the files: the cluster alerts
    as tested."""
    spec = operator.get("PrometheusRule", "kailash-rules")["spec"]
    rules = tmp_path / "extracted.yml"
    rules.write_text(yaml.safe_dump(spec, sort_keys=False))
    loaded = {f.resolve() for f in _expected_rule_files()}
    tests = []
    for test in sorted((REPO / "tests" / "monitoring" / "rules").glob("*.test.yml")):
        doc = yaml.safe_load(test.read_text())
        if {(test.parent / f).resolve() for f in doc["rule_files"]} <= loaded:
            tests.append((test, doc))
    assert len(tests) >= 5, [t.name for t, _ in tests]
    for test, doc in tests:
        doc["rule_files"] = [str(rules)]
        out = tmp_path / test.name
        out.write_text(yaml.safe_dump(doc, sort_keys=False))
        proc = subprocess.run(
            [str(promtool), "test", "rules", str(out)], capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, f"{test.name}:\n{proc.stdout}{proc.stderr}"


# --- prometheus-operator objects --------------------------------------------------------


def test_crd_objects_validate_against_the_operator_schemas(k8s: Session, operator: Render) -> None:
    run = k8s.crd_validation
    crds = [d for d in operator.docs if d["apiVersion"].startswith(CRD_GROUP + "/")]
    assert run.rc == 0, run.output[-4000:]
    pin = json.loads((REPO / "tests" / "k8s" / "crd" / "package.json").read_text())
    version = pin["dependencies"]["@kubernetes-models/prometheus-operator"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), "pin an exact version"
    assert (
        f"validated {len(crds)} objects against @kubernetes-models/prometheus-operator "
        f"{version}: 0 failures" in run.output
    ), run.output[-2000:]


def test_core_objects_of_every_mode_pass_strict_validation_and_checkov(k8s: Session) -> None:
    for name in ("operator", "plain-monitoring"):
        run = k8s.validation[name]
        assert run.rc == 0, run.output[-4000:]
        assert re.search(r"validated \d+ objects x 2 versions: 0 failures", run.output), run.output
    run = k8s.checkov["operator"]
    assert run.rc == 0 and "Failed checks: 0" in run.output, run.output[-3000:]


def test_pod_monitors_select_named_metrics_ports(k8s: Session, operator: Render) -> None:
    """Each PodMonitor selects exactly one workload whose pods name the port it scrapes,
    and labels every series with the `service` and `job` the rules and the dev stack use;
    the plain jobs scrape the same (workload, port, path, labels)."""
    workloads = [d for d in operator.docs if d["kind"] in ("Deployment", "StatefulSet")]
    scraped = set()
    for pm in operator.objects("PodMonitor"):
        selector = pm["spec"]["selector"]["matchLabels"]
        targets = [
            w for w in workloads if selector.items() <= _pod(w)["metadata"]["labels"].items()
        ]
        assert len(targets) == 1, pm["metadata"]["name"]
        (endpoint,) = pm["spec"]["podMetricsEndpoints"]
        ports = {
            p["name"]: p["containerPort"]
            for c in _pod(targets[0])["spec"]["containers"]
            for p in c.get("ports", [])
        }
        assert endpoint["port"] in ports
        labels = {r["targetLabel"]: r["replacement"] for r in endpoint["relabelings"]}
        assert set(labels) == {"job", "service"} and labels["job"] == pm["metadata"]["name"]
        scraped.add(
            (
                targets[0]["metadata"]["name"],
                ports[endpoint["port"]],
                endpoint["path"],
                labels["job"],
                labels["service"],
            )
        )
    assert {("postgres-exporter", "postgresql"), ("redis-exporter", "redis")} <= {
        (w, s) for w, _, _, _, s in scraped
    }
    config = yaml.safe_load(
        next(d for d in k8s.renders["production"].monitoring_docs if "prometheus.yml" in d["data"])[
            "data"
        ]["prometheus.yml"]
    )
    plain = set()
    for job in config["scrape_configs"]:
        (sd,) = job["kubernetes_sd_configs"]
        assert sd["role"] == "pod" and sd["namespaces"]["names"] == ["kailash-production"]
        keep = job["relabel_configs"][0]["regex"].split(";")
        port_name = job["relabel_configs"][1]["regex"]
        service = next(
            r["replacement"] for r in job["relabel_configs"] if r.get("target_label") == "service"
        )
        workload = next(w for w in workloads if w["metadata"]["name"] == keep[0])
        ports = {
            p["name"]: p["containerPort"]
            for c in _pod(workload)["spec"]["containers"]
            for p in c.get("ports", [])
        }
        plain.add((keep[0], ports[port_name], job["metrics_path"], job["job_name"], service))
    assert plain == scraped


# --- exporters --------------------------------------------------------------------------


def _exporters(render: Render) -> list[dict[str, Any]]:
    return [d for d in render.objects("Deployment") if _component(d) == "metrics-exporter"]


def test_exporters_are_hardened_deployments(k8s: Session) -> None:
    render = k8s.renders["production"]
    exporters = _exporters(render)
    assert sorted(d["metadata"]["name"] for d in exporters) == [
        "postgres-exporter",
        "redis-exporter",
    ]
    for dep in exporters:
        pod = _pod(dep)["spec"]
        assert dep["spec"]["replicas"] == 1
        assert (
            pod["securityContext"]["runAsUser"] == 65534 and pod["securityContext"]["runAsNonRoot"]
        )
        for c in pod["containers"] + pod.get("initContainers", []):
            assert c["securityContext"]["readOnlyRootFilesystem"] is True
            assert c["resources"]["limits"] and c["resources"]["requests"]
        # secrets as files, never as environment values
        for c in pod["containers"]:
            assert not [e for e in c.get("env", []) if "valueFrom" in e], c["name"]
        assert render.get("PodDisruptionBudget", dep["metadata"]["name"])
        assert _pod(dep)["metadata"]["labels"]["kailash.io/tier"] == "monitoring"


def test_exporter_credentials_come_from_the_secret_store(k8s: Session) -> None:
    """The Secret kailash-monitoring holds the store's postgres_exporter_password (the dev
    stack's own), Redis's admin password in redis_exporter's JSON file, and the SQL that
    gives the monitoring user that password as a SCRAM verifier (never the password); the
    exporter container mounts its own password only, the init container the rest.
    kailash-secrets is untouched (its generated name is the none render's)."""
    render = k8s.renders["production"]
    store = yaml.safe_load((render.secrets_dir / "secrets.yml").read_text())
    secret = _secret(render, "kailash-monitoring")
    assert secret["postgres_exporter_password"] == store["postgres_exporter_password"]
    assert secret["postgres_exporter_admin_password"] == store["postgresql_password"]
    assert json.loads(secret["redis_exporter_passwords"]) == {
        "redis://redis:6379": store["redis_admin_password"]
    }
    sql = secret["postgres_exporter_setup.sql"]
    assert store["postgres_exporter_password"] not in sql and "GRANT pg_monitor" in sql
    verifier = re.search(r"PASSWORD 'SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):([^']+)'", sql)
    assert verifier, sql
    iterations, salt, stored = int(verifier[1]), base64.b64decode(verifier[2]), verifier[3]
    salted = hashlib.pbkdf2_hmac(
        "sha256", store["postgres_exporter_password"].encode(), salt, iterations
    )
    client = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    assert base64.b64encode(hashlib.sha256(client).digest()).decode() == stored
    none = k8s.renders["none"]
    assert render.generated("Secret", "kailash-secrets") == none.generated(
        "Secret", "kailash-secrets"
    )
    dep = render.get("Deployment", "postgres-exporter")
    pod = _pod(dep)["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounted = {m["name"] for m in pod["containers"][0]["volumeMounts"]}
    keys = {
        i["key"]
        for name in mounted
        if "secret" in volumes[name]
        for i in volumes[name]["secret"]["items"]
    }
    assert keys == {"postgres_exporter_password"}
    assert all(
        v["secret"]["secretName"].startswith("kailash-monitoring-")
        for v in volumes.values()
        if "secret" in v
    )


def test_monitoring_secret_files_are_private_and_stay_out_of_committable_files(prod) -> None:
    files = sorted((prod.tree / "secrets" / "monitoring").iterdir())
    assert [f.name for f in files] == [
        "postgres_exporter_admin_password",
        "postgres_exporter_password",
        "postgres_exporter_setup.sql",
        "redis_exporter_passwords",
    ]
    values = [
        (prod.tree / "secrets" / "monitoring" / n).read_text()
        for n in ("postgres_exporter_admin_password", "postgres_exporter_password")
    ]
    for f in files:
        assert oct(f.stat().st_mode & 0o777) == "0o600", f
    for path in prod.tree.rglob("*"):
        rel = path.relative_to(prod.tree)
        if path.is_file() and rel.parts[0] != "secrets" and rel.name != "secrets.env":
            text = path.read_text()
            assert not [v for v in values if v in text], f"a secret value is in {rel}"


# --- NetworkPolicies --------------------------------------------------------------------

SCRAPER_NS = "monitoring"


def _scraper_labels() -> dict[str, str]:
    return _defaults("kailash_k8s")["kailash_k8s_monitoring_scraper_labels"]


def _matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, selector  # what the templates use
    return selector.get("matchLabels", {}).items() <= labels.items()


def _peer_admits(peer: dict[str, Any], ns: str, labels: dict[str, str], own_ns: str) -> bool:
    """NetworkPolicy peer semantics: podSelector alone = pods of the policy's namespace;
    namespaceSelector alone = every pod of those namespaces; both = both must match."""
    if "ipBlock" in peer:
        return False
    ns_sel, pod_sel = peer.get("namespaceSelector"), peer.get("podSelector")
    if ns_sel is None and ns != own_ns:
        return False
    if ns_sel is not None and not _matches(ns_sel, {"kubernetes.io/metadata.name": ns}):
        return False
    return pod_sel is None or _matches(pod_sel, labels)


def _ingress_ports(
    policies: list[dict[str, Any]],
    pod: dict[str, str],
    ns: str,
    labels: dict[str, str],
    own_ns: str,
) -> set[int]:
    """TCP ports of a pod (labels `pod`) that a peer (namespace `ns`, `labels`) may reach."""
    ports: set[int] = set()
    for pol in policies:
        if not _matches(pol["spec"]["podSelector"], pod):
            continue
        for rule in pol["spec"].get("ingress", []):
            if any(_peer_admits(p, ns, labels, own_ns) for p in rule.get("from", [])):
                ports |= {p["port"] for p in rule["ports"]}
    return ports


def _workload_pods(render: Render) -> dict[str, dict[str, str]]:
    return {
        d["metadata"]["name"]: _pod(d)["metadata"]["labels"]
        for d in render.docs
        if d["kind"] in ("Deployment", "StatefulSet", "CronJob")
    }


@pytest.mark.parametrize("env", ["production", "staging"])
def test_scraper_is_allowed_exactly_the_metrics_ports(k8s: Session, env: str) -> None:
    """Over every pod of the namespace: the policies monitoring adds let the scraper's
    selector (kailash_k8s_monitoring_scraper_labels in the monitoring namespace) reach
    exactly the scraped containers' metrics ports, and let no other pod of that namespace
    reach anything; an exporter admits the scraper on its metrics port and nobody else on
    any port."""
    render = k8s.renders[env]
    own = f"kailash-{env}"
    before = {p["metadata"]["name"] for p in k8s.renders["none"].objects("NetworkPolicy")}
    added = [p for p in render.objects("NetworkPolicy") if p["metadata"]["name"] not in before]
    config = yaml.safe_load((render.tree / "monitoring" / "prometheus.yml").read_text())
    pods = _workload_pods(render)
    metrics: dict[str, set[int]] = {}
    for job in config["scrape_configs"]:
        workload = job["relabel_configs"][0]["regex"].split(";")[0]
        port_name = job["relabel_configs"][1]["regex"]
        dep = next(
            d
            for d in render.docs
            if d["kind"] in ("Deployment", "StatefulSet") and d["metadata"]["name"] == workload
        )
        metrics.setdefault(workload, set()).update(
            p["containerPort"]
            for c in _pod(dep)["spec"]["containers"]
            for p in c.get("ports", [])
            if p["name"] == port_name
        )
    assert {"postgres-exporter": {9187}, "redis-exporter": {9121}}.items() <= metrics.items()
    scraper = _scraper_labels()
    for name, labels in pods.items():
        allowed = _ingress_ports(added, labels, SCRAPER_NS, scraper, own)
        assert allowed == metrics.get(name, set()), f"{name}: scraper allowed {allowed}"
        other = _ingress_ports(
            added, labels, SCRAPER_NS, {"app.kubernetes.io/name": "grafana"}, own
        )
        assert other == set(), f"{name}: another monitoring pod allowed {other}"
    everyone = render.objects("NetworkPolicy")
    peers = [
        (SCRAPER_NS, {}),
        ("ingress-nginx", {}),
        (own, {"kailash.io/tier": "app"}),
        (own, {"kailash.io/tier": "ops"}),
        (own, {"kailash.io/tier": "monitoring"}),
    ]
    for name in ("postgres-exporter", "redis-exporter"):
        for ns, labels in peers:
            assert _ingress_ports(everyone, pods[name], ns, labels, own) == set(), (
                name,
                ns,
                labels,
            )
        assert _ingress_ports(everyone, pods[name], SCRAPER_NS, scraper, own) == metrics[name]


def test_exporters_reach_their_datastore_only(prod) -> None:
    """Egress: an exporter reaches its datastore's port (and DNS); the datastore admits it
    there (a policy of its own: the datastore's existing policies are unchanged)."""
    own = "kailash-production"
    pods = _workload_pods(prod)
    policies = prod.objects("NetworkPolicy")
    for exporter, target, port in (
        ("postgres-exporter", "postgresql", 5432),
        ("redis-exporter", "redis", 6379),
    ):
        labels = pods[exporter]
        egress = [
            p
            for p in policies
            if "Egress" in p["spec"]["policyTypes"] and _matches(p["spec"]["podSelector"], labels)
        ]
        reach = {}
        for pol in egress:
            for rule in pol["spec"].get("egress", []):
                for peer in rule["to"]:
                    match = peer.get("podSelector", {}).get("matchLabels", {})
                    key = match.get("app.kubernetes.io/name", match.get("k8s-app"))
                    reach.setdefault(key, set()).update(p["port"] for p in rule["ports"])
        assert reach == {target: {port}, "kube-dns": {53}}, reach
        assert port in _ingress_ports(policies, pods[target], own, labels, own)
