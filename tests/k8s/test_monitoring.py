"""Monitoring on the Kubernetes target (issue #13; kailash_k8s_monitoring): the three modes
rendered from production's inventory (plain, the default; operator; none), the
PrometheusRule against the rule files, the prometheus-operator schemas (node, pinned
@kubernetes-models/prometheus-operator), promtool on the extracted rules and the plain
configuration, the exporters, and the NetworkPolicies that let the scraper in.

The renders, builds and checks run in the session fixture (conftest.py), at once with the
other Kubernetes tests'."""

from __future__ import annotations

import base64
import copy
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
APP_WORKLOADS = ("nexus-api", "nexus-websocket", "nexus-worker")
# what the nexus role adds to the app's environment when the cluster's Prometheus scrapes it
# (nexus_metrics_enabled) and the Celery exporter runs (nexus_celery_events)
APP_MONITORING_ENV = {"NEXUS_METRICS_PORT", "NEXUS_CELERY_EVENTS"}


def _defaults(role: str) -> dict[str, Any]:
    return yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text())


def _cluster_exporters() -> list[str]:
    """kailash_k8s_monitoring_exporters' default: the known roles (the registry's order) that
    carry tasks/kubernetes.yml."""
    known = yaml.safe_load((ROLES / "kailash" / "vars" / "main.yml").read_text())
    return [
        r for r in known["kailash__known_services"]
        if (ROLES / r / "tasks" / "kubernetes.yml").is_file()
    ]  # fmt: skip


def test_the_cluster_exporters_are_the_roles_with_a_kubernetes_side(k8s: Session) -> None:
    """The default exporters (found by their roles' files) are the three of before, and each
    has its workload in the rendered tree."""
    assert _cluster_exporters() == ["postgres_exporter", "redis_exporter", "celery_exporter"]
    names = {d["metadata"]["name"] for d in k8s.renders["production"].docs}
    assert {"postgres-exporter", "redis-exporter", "celery-exporter"} <= names


def _expected_rule_files() -> list[Path]:
    """The rule files the dev stack's Prometheus would load for production's services plus
    the cluster's exporters (roles/prometheus tasks/plan.yml's selection), in its order."""
    services = _defaults("kailash")["kailash_services"]
    exporters = _cluster_exporters()
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


def _without_app_metrics(docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """The objects by (kind, name), but what monitoring changes about the app left out: the
    app's ConfigMap under its generator's name without the metrics and task-event settings,
    the app's Deployments referring to it by that name and without a metrics port."""
    out = {}
    for doc in copy.deepcopy(docs):
        name = doc["metadata"]["name"]
        if doc["kind"] == "ConfigMap" and name.startswith("nexus-config-"):
            name = doc["metadata"]["name"] = "nexus-config"
            doc["data"] = {k: v for k, v in doc["data"].items() if k not in APP_MONITORING_ENV}
        if doc["kind"] == "Deployment" and name in APP_WORKLOADS:
            for c in _pod(doc)["spec"]["containers"]:
                for source in c["envFrom"]:
                    source["configMapRef"]["name"] = "nexus-config"
                ports = [p for p in c.get("ports", []) if p["name"] != "metrics"]
                c.pop("ports", None)
                if ports:
                    c["ports"] = ports
        out[(doc["kind"], name)] = doc
    return out


def test_none_is_the_tree_without_monitoring(k8s: Session) -> None:
    """Every object of the none render is in the plain render unchanged, but the
    ResourceQuota (it makes room for the exporters' pods) and what the app's metrics change
    (its ConfigMap's metrics and task-event settings, the nexus-api pods' metrics port);
    everything the plain render adds is monitoring (exporters, their Secret, policies,
    discovery RBAC). The none render has no trace of the app's metrics or the Celery
    exporter."""
    plain = _without_app_metrics(k8s.renders["production"].docs)
    none = _without_app_metrics(k8s.renders["none"].docs)
    assert set(none) <= set(plain)
    changed = sorted(k for k in none if none[k] != plain[k])
    assert changed == [("ResourceQuota", "kailash")], changed
    render = k8s.renders["none"]
    assert not APP_MONITORING_ENV & set(render.generated("ConfigMap", "nexus-config")["data"])
    for name in APP_WORKLOADS:
        ports = [p for c in _pod(render.get("Deployment", name))["spec"]["containers"]
                 for p in c.get("ports", [])]
        assert not [p for p in ports if p["name"].startswith("metrics")], name
    # the overlay deletes the shared base's monitoring objects ($patch: delete): only those
    # name the Celery exporter
    overlay = yaml.safe_load((render.tree / "kustomization.yaml").read_text())
    kept = [p for p in overlay.pop("patches", []) if "$patch" not in p["patch"]]
    built = render.built_text + json.dumps(overlay) + json.dumps(kept)
    assert "celery" not in built.lower()
    metrics_port = str(_defaults("nexus")["nexus_metrics_port"])
    for doc in render.docs:
        if doc["kind"] in ("Deployment", "Service", "NetworkPolicy"):
            assert metrics_port not in json.dumps(doc), (doc["kind"], doc["metadata"]["name"])
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
    # a PodMonitor per job of the plain scrape configuration, one PrometheusRule
    config = yaml.safe_load(
        (k8s.renders["production"].tree / "monitoring" / "prometheus.yml").read_text()
    )
    jobs = sorted(job["job_name"] for job in config["scrape_configs"])
    assert sorted(d["metadata"]["name"] for d in added if d["kind"] == "PodMonitor") == jobs
    assert [d["kind"] for d in added if d["kind"] != "PodMonitor"] == ["PrometheusRule"]
    assert {"celery-exporter", "nexus-api", "postgres-exporter", "redis-exporter"} <= set(jobs)
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
    assert {
        ("postgres-exporter", "postgresql"),
        ("redis-exporter", "redis"),
        ("nexus-api", "nexus-api"),
        ("celery-exporter", "nexus-worker"),
    } <= {(w, s) for w, _, _, _, s in scraped}
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
        "celery-exporter",
        "postgres-exporter",
        "redis-exporter",
    ]
    for dep in exporters:
        pod = _pod(dep)["spec"]
        assert dep["spec"]["replicas"] == 1
        assert (
            pod["securityContext"]["runAsUser"] == 65534 and pod["securityContext"]["runAsNonRoot"]
        )
        assert pod["automountServiceAccountToken"] is False
        for c in pod["containers"] + pod.get("initContainers", []):
            assert c["securityContext"]["readOnlyRootFilesystem"] is True
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
            assert c["resources"]["limits"] and c["resources"]["requests"]
        for c in pod["containers"]:
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert c[probe]["httpGet"]["port"] == "metrics", (dep["metadata"]["name"], probe)
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
    assert secret["celery_exporter_broker_password"] == store["redis_password"]
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
        "celery_exporter_broker_password",
        "postgres_exporter_admin_password",
        "postgres_exporter_password",
        "postgres_exporter_setup.sql",
        "redis_exporter_passwords",
    ]
    values = [
        (prod.tree / "secrets" / "monitoring" / n).read_text()
        for n in (
            "postgres_exporter_admin_password",
            "postgres_exporter_password",
            "celery_exporter_broker_password",
        )
    ]
    for f in files:
        assert oct(f.stat().st_mode & 0o777) == "0o600", f
    for path in prod.tree.rglob("*"):
        rel = path.relative_to(prod.tree)
        if path.is_file() and rel.parts[0] != "secrets" and rel.name != "secrets.env":
            text = path.read_text()
            assert not [v for v in values if v in text], f"a secret value is in {rel}"


def test_celery_exporter_runs_as_on_the_dev_stack(k8s: Session) -> None:
    """The Celery exporter's container: the image the overlay pins (in the image list, a
    digest in staging), the dev stack's environment (the monitored dev plan's, no secret in
    it), the broker password as the file that environment names, from the Secret
    kailash-monitoring (never a ConfigMap); resources from the role's variables."""
    dev = k8s.dev_plan_monitored["compose"]["celery_exporter"]["services"]["celery-exporter"]
    defaults = _defaults("celery_exporter")
    for env in ("production", "staging"):
        render = k8s.renders[env]
        pod = _pod(render.get("Deployment", "celery-exporter"))["spec"]
        (c,) = pod["containers"]
        assert {e["name"]: e["value"] for e in c["env"]} == dev["environment"], env
        password_file = dev["environment"]["CELERY_EXPORTER_BROKER_PASSWORD_FILE"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        (mount,) = [m for m in c["volumeMounts"] if "secret" in volumes[m["name"]]]
        (item,) = volumes[mount["name"]]["secret"]["items"]
        assert f"{mount['mountPath']}/{item['path']}" == password_file
        assert item["key"] == "celery_exporter_broker_password"
        assert volumes[mount["name"]]["secret"]["secretName"].startswith("kailash-monitoring-")
        port = defaults["celery_exporter_port"]
        assert c["ports"] == [{"name": "metrics", "containerPort": port, "protocol": "TCP"}]
        assert c["resources"] == {
            "requests": {"cpu": defaults["celery_exporter_cpu_request"],
                         "memory": defaults["celery_exporter_memory_request"]},
            "limits": {"cpu": defaults["celery_exporter_cpu_limit"],
                       "memory": defaults["celery_exporter_memory_limit"]},
        }
        name = defaults["celery_exporter_image_pull"].split(":")[0]
        if env == "staging":
            assert c["image"].startswith(name + "@sha256:"), c["image"]
        else:
            assert c["image"] == defaults["celery_exporter_image_pull"]
        for cm in render.objects("ConfigMap"):
            assert "celery_exporter_broker_password" not in json.dumps(cm), cm["metadata"]["name"]


def test_api_pods_serve_their_metrics_as_on_the_dev_stack(k8s: Session) -> None:
    """The nexus-api pods name the metrics port the nexus role declares (nexus_metrics_port,
    the dev stack's x-kailash.metrics slot) and the app's environment switches it on
    (NEXUS_METRICS_PORT); the port is the pods', not the Service's (nor the Ingress'); the
    websocket and worker pods name none (their slots are empty on the dev stack too)."""
    slots = {
        name: (svc.get("x-kailash") or {}).get("metrics") or []
        for name, svc in k8s.dev_plan_monitored["compose"]["nexus"]["services"].items()
    }
    port = _defaults("nexus")["nexus_metrics_port"]
    assert slots["nexus-api"] == [{"port": port, "network": "app"}]
    for env in ("production", "staging"):
        render = k8s.renders[env]
        assert render.generated("ConfigMap", "nexus-config")["data"]["NEXUS_METRICS_PORT"] == str(
            port
        )
        for name in APP_WORKLOADS:
            (c,) = _pod(render.get("Deployment", name))["spec"]["containers"]
            named = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
            expected = {s["port"] for s in slots[name]}
            assert {v for k, v in named.items() if k == "metrics"} == expected, (env, name)
        service = render.get("Service", "nexus-api")
        assert port not in [p["port"] for p in service["spec"]["ports"]]
        for ingress in render.objects("Ingress"):
            assert str(port) not in json.dumps(ingress)


def test_rules_on_the_app_and_celery_metrics_match_the_cluster_scrape(
    k8s: Session, operator: Render
) -> None:
    """The rules on the app's and the Celery exporter's metrics (the nexus and celery_exporter
    roles' files) are in the cluster's rules (PrometheusRule and the plain rules.yml), and
    every job/service label matcher of every rule names a job or service label that the
    cluster's scrape configuration gives (the dev stack's: job = compose service, service =
    the slot's service)."""
    tree = k8s.renders["production"].tree
    plain = yaml.safe_load((tree / "monitoring" / "rules.yml").read_text())
    spec = operator.get("PrometheusRule", "kailash-rules")["spec"]
    for groups in (plain["groups"], spec["groups"]):
        alerts = {r.get("alert") for g in groups for r in g["rules"]}
        for role in ("nexus", "celery_exporter"):
            own = yaml.safe_load((ROLES / role / "files" / "prometheus" / "rules.yml").read_text())
            assert {r["alert"] for g in own["groups"] for r in g["rules"]} <= alerts, role
    config = yaml.safe_load(
        (k8s.renders["production"].tree / "monitoring" / "prometheus.yml").read_text()
    )
    labels: dict[str, set[str]] = {"job": set(), "service": set()}
    for job in config["scrape_configs"]:
        labels["job"].add(job["job_name"])
        labels["service"] |= {
            r["replacement"] for r in job["relabel_configs"] if r.get("target_label") == "service"
        }
    assert {"nexus-api", "celery-exporter"} <= labels["job"]
    assert {"nexus-api", "nexus-worker"} <= labels["service"]
    for pm in operator.objects("PodMonitor"):
        (endpoint,) = pm["spec"]["podMetricsEndpoints"]
        relabeled = {r["targetLabel"]: r["replacement"] for r in endpoint["relabelings"]}
        assert relabeled["job"] in labels["job"] and relabeled["service"] in labels["service"]
    matcher = re.compile(r'\b(job|service)\s*(=~|=|!=|!~)\s*"([^"]*)"')
    for group in spec["groups"]:
        for rule in group["rules"]:
            for label, op, value in matcher.findall(rule["expr"]):
                if op == "=":
                    assert value in labels[label], (rule.get("alert"), label, value)
                elif op == "=~":
                    assert any(re.fullmatch(value, v) for v in labels[label]), (
                        rule.get("alert"), label, value)


# --- NetworkPolicies --------------------------------------------------------------------

SCRAPER_NS = "monitoring"


def _scraper_labels() -> dict[str, str]:
    """kailash_k8s_monitoring_scraper_labels' default: the scraper role's
    (roles/prometheus/vars/kubernetes_scraper_defaults.yml)."""
    path = ROLES / "prometheus" / "vars" / "kubernetes_scraper_defaults.yml"
    spec = yaml.safe_load(path.read_text())
    labels = spec["prometheus__kubernetes_scraper_defaults"]["pod_labels"]
    assert labels == {"app.kubernetes.io/name": "prometheus"}
    return labels


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
    assert {
        "postgres-exporter": {9187},
        "redis-exporter": {9121},
        "celery-exporter": {9808},
        "nexus-api": {9464},
    }.items() <= metrics.items()
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
    for name in ("postgres-exporter", "redis-exporter", "celery-exporter"):
        for ns, labels in peers:
            assert _ingress_ports(everyone, pods[name], ns, labels, own) == set(), (
                name,
                ns,
                labels,
            )
        assert _ingress_ports(everyone, pods[name], SCRAPER_NS, scraper, own) == metrics[name]
    # the app's metrics port: the scraper's alone (every policy, the app's own included)
    for ns, labels in [*peers, (SCRAPER_NS, {"app.kubernetes.io/name": "grafana"})]:
        allowed = _ingress_ports(everyone, pods["nexus-api"], ns, labels, own)
        assert not allowed & metrics["nexus-api"], (ns, labels, allowed)
    assert metrics["nexus-api"] <= _ingress_ports(
        everyone, pods["nexus-api"], SCRAPER_NS, scraper, own
    )


def test_exporters_reach_their_datastore_only(prod) -> None:
    """Egress: an exporter reaches its datastore's port (and DNS); the datastore admits it
    there (a policy of its own: the datastore's existing policies are unchanged)."""
    own = "kailash-production"
    pods = _workload_pods(prod)
    policies = prod.objects("NetworkPolicy")
    for exporter, target, port in (
        ("postgres-exporter", "postgresql", 5432),
        ("redis-exporter", "redis", 6379),
        ("celery-exporter", "redis", 6379),
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
