"""Unit tests of the plan of the Kubernetes target (plugins/filter/k8s.py): the variables
it reads, the preflight's refusals, the ResourceQuota, the LimitRange maximum and the
overlay's images. Pure Python: no Ansible run, no cluster."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "plugins" / "filter"))

import k8s  # noqa: E402
from sizing import AnsibleFilterError  # noqa: E402

PLAN: dict[str, Any] = {
    "app_workloads": [
        {"name": "nexus-api", "prefix": "nexus_api"},
        {"name": "nexus-worker", "prefix": "nexus_worker"},
    ],
    "app_image_variable": "nexus_image_pull",
    "datastores": [
        {"name": "postgresql", "containers": ["postgresql"], "claims": ["postgresql"]},
        {"name": "chromadb", "containers": ["chromadb", "chromadb_gate"], "claims": ["chromadb"]},
        {"name": "neo4j", "containers": ["neo4j"], "claims": ["neo4j", "neo4j_logs"]},
    ],
    "ops": {
        "prefix": "kailash_k8s_ops",
        "image_variable": "kailash_k8s_ops_image",
        "jobs": 2,
        "claims": ["backups"],
    },
}


def _resources(prefix: str, mem_req: str, mem_lim: str, cpu_req: str, cpu_lim: str) -> dict:
    return {
        f"{prefix}_memory_request": mem_req,
        f"{prefix}_memory_limit": mem_lim,
        f"{prefix}_cpu_request": cpu_req,
        f"{prefix}_cpu_limit": cpu_lim,
    }


def _settings() -> dict[str, Any]:
    """Valid settings for PLAN (each value distinct enough to tell the sums apart)."""
    return {
        **_resources("nexus_api", "1Gi", "2Gi", "500m", "1000m"),
        **_resources("nexus_worker", "2Gi", "4Gi", "1", "2"),
        **_resources("postgresql", "4Gi", "8Gi", "1000m", "2000m"),
        **_resources("chromadb", "1Gi", "2Gi", "250m", "1500m"),
        **_resources("chromadb_gate", "64Mi", "128Mi", "50m", "100m"),
        **_resources("neo4j", "2Gi", "4Gi", "500m", "1000m"),
        **_resources("kailash_k8s_ops", "512Mi", "2Gi", "250m", "1000m"),
        "nexus_api_replicas": 3,
        "nexus_worker_replicas": "4",
        "nexus_image_pull": "kailash/nexus-app:1.0.0",
        "postgresql_image_pull": "postgres:15.8",
        "chromadb_image_pull": "chromadb/chroma:0.5.5",
        "chromadb_gate_image_pull": "nginxinc/nginx-unprivileged:1.27",
        "neo4j_image_pull": "neo4j:5.23",
        "kailash_k8s_ops_image": "kailash/nexus-ops:1.0.0",
        "edge_enabled": True,
        "edge_cert_manager_issuer": "letsencrypt",
        "edge_tls_secret_name": "",
        "edge_hostname": "kailash.example.com",
        "kailash_k8s_namespace": "kailash-production",
        "kailash_k8s_app_image_tag": "1.0.1",
        "kailash_k8s_pod_security": "restricted",
        "kailash_k8s_volume_sizes": {
            "postgresql": "100Gi",
            "chromadb": "50Gi",
            "neo4j": "50Gi",
            "neo4j_logs": "5Gi",
            "backups": "200Gi",
        },
        "kailash_k8s_pdb_min_available": {"nexus-api": 2, "nexus-worker": 3},
        "kailash_k8s_hpa_max_replicas": {"nexus-api": 10, "nexus-worker": "15"},
    }


def errors_with(**changes: Any) -> list[str]:
    settings = _settings()
    settings.update(changes)
    return k8s.kailash_k8s_preflight_errors(settings, PLAN)


# --- the variables the plan reads ----------------------------------------------------


def test_setting_names_cover_every_variable_the_filters_read() -> None:
    names = k8s.kailash_k8s_setting_names(PLAN)
    assert sorted(names) == sorted(_settings())  # exactly the variables, nothing else
    assert len(names) == len(set(names))
    settings = {name: _settings()[name] for name in names}
    # every filter works from exactly these settings
    assert k8s.kailash_k8s_preflight_errors(settings, PLAN) == []
    k8s.kailash_k8s_quota(settings, PLAN)
    k8s.kailash_k8s_container_max(settings, PLAN)
    k8s.kailash_k8s_images(settings, PLAN)


def test_role_plan_matches_the_default_volume_sizes() -> None:
    """The Kubernetes plans of the default services (<svc>_kubernetes in each role's
    vars/main.yml) name each PersistentVolumeClaim once, and those plus the ops jobs' are
    exactly the volumes kailash_k8s_volume_sizes sizes by default (the PVC count of the
    quota): each role's vars/kubernetes_volumes.yml sizes exactly its own plan's claims, and
    the renderer adds the backup target's."""
    role = REPO / "roles" / "kailash_k8s"
    table = yaml.safe_load((role / "vars" / "main.yml").read_text())
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text())
    services = yaml.safe_load((REPO / "roles/kailash/defaults/main.yml").read_text())
    claims, sized = [], []
    for svc in services["kailash_services"]:
        path = REPO / "roles" / svc / "vars" / "main.yml"
        plan = (yaml.safe_load(path.read_text()) or {}).get(f"{svc}_kubernetes") or {}
        own = [c for w in plan.get("workloads", []) for c in w["claims"]]
        spec = REPO / "roles" / svc / "vars" / "kubernetes_volumes.yml"
        sizes = {}
        if spec.is_file():
            sizes = yaml.safe_load(spec.read_text())[f"{svc}__kubernetes_volumes"]
        assert sorted(own) == sorted(sizes), svc
        claims += own
        sized += list(sizes)
    claims += table["kailash_k8s__plan"]["ops"]["claims"]
    assert "'backups': '200Gi'" in defaults["kailash_k8s_volume_sizes"]
    assert sorted(claims) == sorted(sized + ["backups"])
    assert len(claims) == len(set(claims)) == 6


# --- the ResourceQuota and the LimitRange --------------------------------------------


def test_quota_counts_hpa_maximum_plus_surge_datastore_pods_and_ops_jobs() -> None:
    quota = k8s.kailash_k8s_quota(_settings(), PLAN)
    # api 10+1, worker 15+1, three datastore pods (the gate shares chromadb's), two jobs
    assert quota["pods"] == str(11 + 16 + 3 + 2)
    assert quota["persistentvolumeclaims"] == "5"
    assert quota["services.loadbalancers"] == "0"
    assert quota["services.nodeports"] == "0"
    mi = 1024**2
    gi = 1024**3
    requests = 11 * gi + 16 * 2 * gi + 4 * gi + gi + 64 * mi + 2 * gi + 2 * 512 * mi
    limits = 11 * 2 * gi + 16 * 4 * gi + 8 * gi + 2 * gi + 128 * mi + 4 * gi + 2 * 2 * gi
    assert quota["requests.memory"] == f"{requests // mi}Mi"
    assert quota["limits.memory"] == f"{limits // mi}Mi"
    assert quota["requests.cpu"] == f"{11 * 500 + 16 * 1000 + 1000 + 250 + 50 + 500 + 500}m"
    assert quota["limits.cpu"] == f"{11 * 1000 + 16 * 2000 + 2000 + 1500 + 100 + 1000 + 2000}m"


def test_quota_follows_the_plan() -> None:
    """One datastore less: one pod, its containers and its claims less."""
    plan = copy.deepcopy(PLAN)
    plan["datastores"] = [d for d in plan["datastores"] if d["name"] != "neo4j"]
    before = k8s.kailash_k8s_quota(_settings(), PLAN)
    after = k8s.kailash_k8s_quota(_settings(), plan)
    assert int(after["pods"]) == int(before["pods"]) - 1
    assert int(after["persistentvolumeclaims"]) == int(before["persistentvolumeclaims"]) - 2
    assert after["requests.memory"] != before["requests.memory"]


def test_quota_of_a_whole_core_is_written_in_cores() -> None:
    settings = _settings()
    settings.update(_resources("nexus_api", "1Gi", "1Gi", "1", "1"))
    settings["kailash_k8s_hpa_max_replicas"] = {"nexus-api": 0, "nexus-worker": 0}
    settings.update(_resources("nexus_worker", "1Gi", "1Gi", "1", "1"))
    for prefix in ("postgresql", "chromadb", "chromadb_gate", "neo4j", "kailash_k8s_ops"):
        settings.update(_resources(prefix, "1Gi", "1Gi", "1", "1"))
    quota = k8s.kailash_k8s_quota(settings, PLAN)
    assert quota["requests.cpu"] == quota["limits.cpu"] == "8"  # 1+1 app, 4 containers, 2 jobs
    assert quota["requests.memory"] == "8Gi"


def test_quota_refuses_malformed_sizes() -> None:
    settings = _settings()
    settings["postgresql_memory_limit"] = "8Gx"
    with pytest.raises(AnsibleFilterError, match="'8Gx'"):
        k8s.kailash_k8s_quota(settings, PLAN)


def test_container_max_is_the_largest_limit_of_any_container() -> None:
    assert k8s.kailash_k8s_container_max(_settings(), PLAN) == {"memory": "8Gi", "cpu": "2"}
    settings = _settings()
    settings["kailash_k8s_ops_cpu_limit"] = "2500m"  # the ops jobs count too
    settings["chromadb_gate_memory_limit"] = "9000Mi"  # and a second container of a pod
    assert k8s.kailash_k8s_container_max(settings, PLAN) == {"memory": "9000Mi", "cpu": "2500m"}


# --- the overlay's images ------------------------------------------------------------


def test_images_are_unique_sorted_and_the_app_takes_the_tag_variable() -> None:
    settings = _settings()
    settings["chromadb_gate_image_pull"] = "neo4j:5.23"  # same image twice: once
    settings["postgresql_image_pull"] = "Postgres:15.8"  # sorted as Jinja: ignoring case
    images = k8s.kailash_k8s_images(settings, PLAN)
    assert images == [
        {"name": "chromadb/chroma", "tag": "0.5.5"},
        {"name": "kailash/nexus-app", "tag": "1.0.1"},
        {"name": "kailash/nexus-ops", "tag": "1.0.0"},
        {"name": "neo4j", "tag": "5.23"},
        {"name": "Postgres", "tag": "15.8"},
    ]


def test_images_registry_port_is_not_a_tag() -> None:
    settings = _settings()
    settings["neo4j_image_pull"] = "registry.example.com:5000/neo4j:5.23"
    names = {i["name"]: i["tag"] for i in k8s.kailash_k8s_images(settings, PLAN)}
    assert names["registry.example.com:5000/neo4j"] == "5.23"


# --- the preflight -------------------------------------------------------------------


def test_valid_settings_pass() -> None:
    assert k8s.kailash_k8s_preflight_errors(_settings(), PLAN) == []


def test_malformed_memory_size_names_the_variable() -> None:
    errors = errors_with(nexus_api_memory_limit="2GiB")
    assert len(errors) == 1
    assert errors[0].startswith("nexus_api_memory_limit: kailash_bytes: ")
    assert "'2GiB'" in errors[0]


def test_malformed_cpu_of_the_ops_jobs_names_the_variable() -> None:
    errors = errors_with(kailash_k8s_ops_cpu_limit="one")
    assert len(errors) == 1
    assert errors[0].startswith("kailash_k8s_ops_cpu_limit: kailash_cpu_millis: invalid")


def test_request_above_limit_names_both_variables() -> None:
    assert errors_with(nexus_worker_memory_limit="1Gi") == [
        "nexus_worker_memory_request ('2Gi') exceeds nexus_worker_memory_limit ('1Gi')"
    ]
    assert errors_with(kailash_k8s_ops_cpu_request="2") == [
        "kailash_k8s_ops_cpu_request ('2') exceeds kailash_k8s_ops_cpu_limit ('1000m')"
    ]


def test_replicas_must_exceed_the_pdb_minimum() -> None:
    assert errors_with(nexus_api_replicas=2) == [
        "nexus_api_replicas (2) must be greater than the PodDisruptionBudget minimum "
        "kailash_k8s_pdb_min_available['nexus-api'] (2), or no node drain could ever evict a pod"
    ]
    assert errors_with(nexus_api_replicas=0) == [
        "nexus_api_replicas must be a whole number >= 1, got 0",
        "nexus_api_replicas (0) must be greater than the PodDisruptionBudget minimum "
        "kailash_k8s_pdb_min_available['nexus-api'] (2), or no node drain could ever evict a pod",
    ]
    assert errors_with(nexus_api_replicas="three") == [
        "nexus_api_replicas must be a whole number >= 1, got 'three'"
    ]


@pytest.mark.parametrize(
    ("pdb", "shown"),
    [(None, "null"), (0, "0"), ("two", '"two"'), (True, "true"), (-1, "-1")],
)
def test_pdb_minimum_must_be_a_whole_number(pdb: Any, shown: str) -> None:
    pdbs: dict[str, Any] = {"nexus-worker": 3}
    if pdb is not None:
        pdbs["nexus-api"] = pdb
    assert errors_with(kailash_k8s_pdb_min_available=pdbs) == [
        f"kailash_k8s_pdb_min_available['nexus-api'] must be a whole number >= 1, got {shown}"
    ]


def test_hpa_maximum_must_be_a_whole_number_not_below_replicas() -> None:
    assert errors_with(kailash_k8s_hpa_max_replicas={"nexus-api": 2, "nexus-worker": 15}) == [
        "kailash_k8s_hpa_max_replicas['nexus-api'] (2) must be >= nexus_api_replicas (3)"
    ]
    assert errors_with(kailash_k8s_hpa_max_replicas={"nexus-api": 10}) == [
        "kailash_k8s_hpa_max_replicas['nexus-worker'] must be a whole number, got null"
    ]
    assert errors_with(kailash_k8s_hpa_max_replicas={"nexus-api": "ten", "nexus-worker": 15}) == [
        "kailash_k8s_hpa_max_replicas['nexus-api'] must be a whole number, got \"ten\""
    ]


def test_edge_needs_a_tls_source_and_a_dns_name() -> None:
    assert errors_with(edge_cert_manager_issuer="") == [
        "edge_tls_secret_name must name an existing kubernetes.io/tls Secret in namespace "
        "kailash-production when edge_cert_manager_issuer is empty (set one of the two)"
    ]
    assert errors_with(edge_cert_manager_issuer="", edge_tls_secret_name="kailash-tls") == []
    assert errors_with(edge_cert_manager_issuer="", edge_enabled=False) == []
    assert errors_with(edge_hostname="Kailash_Example") == [
        'edge_hostname must be a DNS name like kailash.example.com, got "Kailash_Example"'
    ]
    assert errors_with(edge_hostname=None) == [
        "edge_hostname must be a DNS name like kailash.example.com, got null"
    ]


def test_images_must_be_pinned_named_by_their_variable() -> None:
    assert errors_with(postgresql_image_pull="postgres:latest") == [
        "postgresql_image_pull may not use the tag 'latest' outside dev, got 'postgres:latest'"
    ]
    errors = errors_with(kailash_k8s_ops_image="kailash/nexus-ops")
    assert len(errors) == 1 and errors[0].startswith("kailash_k8s_ops_image must be a pinned")
    plan = {**PLAN, "app_image_variable": "nexus_image"}
    settings = {**_settings(), "nexus_image": "my-app"}
    errors = k8s.kailash_k8s_preflight_errors(settings, plan)
    assert len(errors) == 1 and errors[0].startswith("nexus_image must be a pinned")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"kailash_k8s_app_image_tag": "latest"},
            "kailash_k8s_app_image_tag must be a pinned tag other than 'latest' outside dev, "
            'got "latest"',
        ),
        (
            {"kailash_k8s_app_image_tag": "1.0 beta"},
            "kailash_k8s_app_image_tag must be a pinned tag other than 'latest' outside dev, "
            'got "1.0 beta"',
        ),
        (
            {"kailash_k8s_namespace": "Kailash_Prod"},
            'kailash_k8s_namespace must be a DNS-1123 label, got "Kailash_Prod"',
        ),
        (
            {"kailash_k8s_pod_security": "privileged"},
            'kailash_k8s_pod_security must be restricted or baseline, got "privileged"',
        ),
    ],
    ids=["latest-tag", "bad-tag", "namespace", "pod-security"],
)
def test_names_and_levels(changes: dict[str, Any], message: str) -> None:
    errors = errors_with(**changes)
    assert message in errors, errors


def test_every_claim_needs_a_volume_size() -> None:
    sizes = {**_settings()["kailash_k8s_volume_sizes"], "neo4j_logs": "5GB"}
    del sizes["backups"]
    assert errors_with(kailash_k8s_volume_sizes=sizes) == [
        "kailash_k8s_volume_sizes['neo4j_logs'] must be a size like 50Gi, got \"5GB\"",
        "kailash_k8s_volume_sizes['backups'] must be a size like 50Gi, got null",
    ]


def test_every_problem_is_reported_at_once() -> None:
    errors = errors_with(
        nexus_api_replicas=2, kailash_k8s_namespace="UPPER", postgresql_image_pull="postgres"
    )
    assert [e.split(" ")[0] for e in errors] == [
        "nexus_api_replicas",
        "postgresql_image_pull",
        "kailash_k8s_namespace",
    ]


# --- bad input to the filters themselves ---------------------------------------------


@pytest.mark.parametrize(
    ("function", "needed"),
    [
        (k8s.kailash_k8s_preflight_errors, "edge_hostname"),
        (k8s.kailash_k8s_quota, "kailash_k8s_ops_memory_limit"),
        (k8s.kailash_k8s_container_max, "chromadb_gate_cpu_limit"),
        (k8s.kailash_k8s_images, "kailash_k8s_ops_image"),
    ],
)
def test_bad_plan_or_settings_are_refused(function: Any, needed: str) -> None:
    with pytest.raises(AnsibleFilterError, match="expected a dict"):
        function(_settings(), ["not", "a", "plan"])
    with pytest.raises(AnsibleFilterError, match="missing datastores, ops"):
        function(_settings(), {"app_workloads": [], "app_image_variable": "x"})
    settings = _settings()
    del settings[needed]
    with pytest.raises(AnsibleFilterError, match=f"{needed} is missing"):
        function(settings, PLAN)
    with pytest.raises(AnsibleFilterError, match=r"expected \{variable: value\}"):
        function("settings", PLAN)


def test_filter_module_exposes_the_plan_filters() -> None:
    filters = k8s.FilterModule().filters()
    for name in (
        "kailash_k8s_setting_names",
        "kailash_k8s_preflight_errors",
        "kailash_k8s_images",
        "kailash_k8s_quota",
        "kailash_k8s_container_max",
    ):
        assert filters[name] is getattr(k8s, name)


# --- durations and the Ingress' burst ------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("30s", 30),
        ("1m30s", 90),  # the old "strip the s, then int" made this 0
        ("2m", 120),
        ("1.5h", 5400),
        ("1h2m3s", 3723),
        ("1500ms", 1),  # rounded down
        ("90", 90),
        (120, 120),
        (30.7, 30),
    ],
)
def test_seconds_of_compose_durations(value: Any, seconds: int) -> None:
    assert k8s.kailash_k8s_seconds(value, "nexus_stop_grace_period") == seconds


@pytest.mark.parametrize("value", ["", "30x", "-5s", "30S", "1m 30s", "s", True, None, [30]])
def test_malformed_durations_name_the_variable(value: Any) -> None:
    with pytest.raises(AnsibleFilterError, match=r"^neo4j_stop_grace_period must be a duration"):
        k8s.kailash_k8s_seconds(value, "neo4j_stop_grace_period")


@pytest.mark.parametrize(
    ("burst", "rps", "multiplier"),
    [(4000, 2000, 2), ("4000", "2000", 2), (4999, 2000, 2), (100, 2000, 1), (1, 1, 1)],
)
def test_burst_multiplier(burst: Any, rps: Any, multiplier: int) -> None:
    assert k8s.kailash_k8s_burst_multiplier(burst, rps) == multiplier


@pytest.mark.parametrize(
    ("burst", "rps", "variable"),
    [
        (4000, 0, "edge_rate_limit_rps"),
        (4000, "fast", "edge_rate_limit_rps"),
        (-1, 2000, "edge_rate_limit_burst"),
        (True, 2000, "edge_rate_limit_burst"),
    ],
)
def test_burst_multiplier_refuses_bad_rates(burst: Any, rps: Any, variable: str) -> None:
    with pytest.raises(AnsibleFilterError, match=rf"^{variable} must be a whole number >= 1"):
        k8s.kailash_k8s_burst_multiplier(burst, rps)


BACKUP = {
    "project": "p-staging",
    "secret_dir": "/run/secrets/",
    "backup_root": "/backups/sets",
    "datastores": [
        {"service": "echo", "host": "echo", "port": "7000", "secrets": {"token_file": "t"}},
        {"service": "kv", "host": "kv-0.kv", "port": 6379, "user": "admin", "db": 3},
    ],
}


def test_backup_config_takes_each_datastore_from_its_plan_slot() -> None:
    """The backup config names no datastore: services, order, fields and secret files all
    come from the plans' backup slots (any service, here two made-up ones)."""
    cfg = k8s.kailash_backup_config(BACKUP)
    assert cfg["services"] == ["echo", "kv"]
    assert cfg["datastores"] == {
        "echo": {"host": "echo", "port": 7000, "token_file": "/run/secrets/t"},
        "kv": {"host": "kv-0.kv", "port": 6379, "user": "admin", "db": 3},
    }
    assert cfg["encryption_key_file"] == "/run/secrets/backup_encryption_key"
    assert k8s.kailash_backup_config({**BACKUP, "datastores": []})["services"] == []


@pytest.mark.parametrize(
    ("datastores", "message"),
    [
        ("echo", "datastores must be a list"),
        ([{"service": "echo", "host": "echo"}], "needs service, host and port"),
        ([{"service": "echo", "host": "e", "port": 1, "secrets": ["t"]}], "secrets of echo"),
    ],
)
def test_backup_config_refuses_a_malformed_slot(datastores: Any, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=message):
        k8s.kailash_backup_config({**BACKUP, "datastores": datastores})
