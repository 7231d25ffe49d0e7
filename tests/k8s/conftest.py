"""Fixtures of the Kubernetes tests: render the trees once per session (in parallel),
build them with kustomize, and provide the validation tools' venv.

Everything runs offline: kubectl only for `kustomize`, no cluster. Tests that need a
cluster are marked ``cluster`` and skipped unless KAILASH_K8S_CLUSTER=1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
HERE = Path(__file__).resolve().parent

# Bad input refused before rendering, in three runs (a run stops at the first role whose
# preflight fails; the renderer's preflight reports every problem it finds at once):
# run -> (extra vars, {case: texts its message must hold}).
REFUSAL_RUNS: dict[str, tuple[dict[str, Any], dict[str, list[str]]]] = {
    "renderer": (
        {
            "nexus_api_replicas": 2,
            "edge_cert_manager_issuer": "",
            "edge_tls_secret_name": "",
            "kailash_k8s_app_image_tag": "latest",
            "redis_image_pull": "redis:latest",
        },
        {
            "replicas_below_pdb_minimum": [
                "nexus_api_replicas (2) must be greater than the PodDisruptionBudget minimum "
                "kailash_k8s_pdb_min_available['nexus-api'] (2)"
            ],
            "missing_tls_secret_name": [
                "edge_tls_secret_name must name an existing kubernetes.io/tls Secret in namespace "
                "kailash-production when edge_cert_manager_issuer is empty"
            ],
            "latest_app_tag": [
                "kailash_k8s_app_image_tag must be a pinned tag other than 'latest'"
            ],
            "latest_datastore_image": ["redis_image_pull may not use the tag 'latest' outside dev"],
        },
    ),
    "memory": (
        {"nexus_worker_memory_limit": "1Gi"},
        {
            "memory_limit_below_request": [
                "nexus_worker_memory_request ('2Gi') exceeds nexus_worker_memory_limit ('1Gi')"
            ]
        },
    ),
    "password": (
        {"kailash_secrets_overrides": {"postgresql_password": "changeme"}},
        {"default_password": ["production refuses empty, short", "postgresql_password"]},
    ),
}
REFUSALS = {
    case: (run, texts) for run, (_, cases) in REFUSAL_RUNS.items() for case, texts in cases.items()
}
VERSIONS = [f"1.{minor}" for minor in range(29, 38)]

DIGEST = "sha256:" + "ab" * 32
# the prometheus-operator's API group, and the operator render's extra variables
CRD_GROUP = "monitoring.coreos.com"
OPERATOR_EXTRA = {
    "kailash_k8s_monitoring": "operator",
    "kailash_k8s_monitoring_labels": {"release": "kube-prometheus-stack"},
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "cluster: needs a live Kubernetes API (KAILASH_K8S_CLUSTER=1)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("KAILASH_K8S_CLUSTER") == "1":
        return
    skip = pytest.mark.skip(reason="needs a Kubernetes cluster (set KAILASH_K8S_CLUSTER=1)")
    for item in items:
        if "cluster" in item.keywords:
            item.add_marker(skip)


# the Docker host paths a Kubernetes render must not look at, pointed at nothing
NO_DOCKER = {
    "container_exporter_docker_socket": "/nonexistent/docker.sock",
    "container_exporter_cgroup_root": "/nonexistent/cgroup",
}


def _env(secrets_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        KAILASH_SECRETS_DIR=str(secrets_dir),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
    )
    return env


def _start(
    playbook: str,
    inventory: str,
    extra: dict[str, Any],
    secrets_dir: Path,
    tags: str | None = "render",
) -> subprocess.Popen[str]:
    cmd = [
        str(ANSIBLE_PLAYBOOK),
        "-i",
        f"inventories/{inventory}",
        playbook,
        "-e",
        json.dumps(extra),
    ]
    if tags:
        cmd += ["--tags", tags]
    return subprocess.Popen(
        cmd,
        cwd=REPO,
        env=_env(secrets_dir),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


@dataclass
class Run:
    rc: int
    output: str


@dataclass
class Render:
    """One rendered environment tree and its kustomize build."""

    name: str
    tree: Path
    secrets_dir: Path
    run: Run
    built_text: str = ""
    docs: list[dict[str, Any]] = field(default_factory=list)
    # the plain monitoring kustomization (monitoring/), built
    monitoring_text: str = ""
    monitoring_docs: list[dict[str, Any]] = field(default_factory=list)

    def objects(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        for doc in self.docs:
            if doc["kind"] == kind and doc["metadata"]["name"] == name:
                return doc
        raise KeyError(f"{kind}/{name}")

    def generated(self, kind: str, prefix: str) -> dict[str, Any]:
        found = [d for d in self.objects(kind) if d["metadata"]["name"].startswith(prefix + "-")]
        assert len(found) == 1, f"{kind} {prefix}-<hash>: {len(found)} found"
        return found[0]


@dataclass
class Session:
    tools: Path
    renders: dict[str, Render]
    refusals: dict[str, tuple[Run, Path]]
    validation: dict[str, Run]
    checkov: dict[str, Run]
    second_run: Run
    first_hashes: dict[str, str]
    dev_plan: dict[str, Any]
    crd_validation: Run
    # the dev stack's plan with the monitoring the cluster has (the Celery exporter and a
    # Prometheus planned): the app's metrics and task events switched on as there
    dev_plan_monitored: dict[str, Any] = field(default_factory=dict)


def _hashes(root: Path) -> dict[str, str]:
    import hashlib

    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() + oct(p.stat().st_mode)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def kustomize(tools: Path, tree: Path) -> str:
    proc = subprocess.run(
        [str(tools / "kubectl"), "kustomize", str(tree)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def results_names(results: dict[str, Run], check: str) -> list[str]:
    return [key.split("-", 1)[1] for key in results if key.startswith(check + "-")]


def setup_tool(script: str) -> Path:
    """Run one of the scripts that install a test tool if missing (scripts/<script>); the
    directory it prints last."""
    proc = subprocess.run(
        [str(REPO / "scripts" / script)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return Path(proc.stdout.strip().splitlines()[-1])


def crd_tools() -> Path:
    """node_modules of the prometheus-operator schemas (scripts/k8s-crd-tools.sh, npm ci)."""
    return setup_tool("k8s-crd-tools.sh")


def _monitoring_checks(
    tools: Path, renders: dict[str, Render], root: Path
) -> dict[str, subprocess.Popen[str]]:
    """The monitoring modes' own checks, started at once: the operator render's core
    objects against the strict schemas (its CRD objects have none there) and checkov, its
    CRD objects against the prometheus-operator schemas (node), and the plain mode's
    monitoring kustomization (production's) against the strict schemas."""
    op = renders["operator"]
    core = [d for d in op.docs if not d["apiVersion"].startswith(CRD_GROUP + "/")]
    crds = [d for d in op.docs if d["apiVersion"].startswith(CRD_GROUP + "/")]
    (root / "operator-core.yaml").write_text(yaml.safe_dump_all(core, sort_keys=False))
    (root / "operator-built.yaml").write_text(op.built_text)
    (root / "operator-crds.json").write_text(json.dumps(crds))
    plain = renders["production"]
    plain.monitoring_text = kustomize(tools, plain.tree / "monitoring")
    plain.monitoring_docs = [d for d in yaml.safe_load_all(plain.monitoring_text) if d]
    (root / "plain-monitoring.yaml").write_text(plain.monitoring_text)
    validate = [str(tools / "python"), str(HERE / "kube_validate.py")]
    ends = [VERSIONS[0], VERSIONS[-1]]
    run = {"text": True, "stdout": subprocess.PIPE, "stderr": subprocess.STDOUT}
    checkov = [str(tools / "checkov"), "--skip-download", "--framework", "kubernetes",
               "--compact", "--quiet", "--config-file", str(HERE / "checkov.yaml")]
    return {
        "validate-operator": subprocess.Popen(
            [*validate, str(root / "operator-core.yaml"), *ends], **run
        ),
        "validate-plain-monitoring": subprocess.Popen(
            [*validate, str(root / "plain-monitoring.yaml"), *ends], **run
        ),
        "checkov-operator": subprocess.Popen(
            [*checkov, "-f", str(root / "operator-built.yaml")], **run
        ),
        "crd-operator": subprocess.Popen(
            ["node", str(HERE / "crd" / "validate.mjs"), str(crd_tools()),
             str(root / "operator-crds.json")], **run
        ),
    }


@pytest.fixture(scope="session")
def k8s_tools() -> Path:
    """bin/ of the tools venv (.cache/k8s-tools), installed by scripts/k8s-tools.sh if missing."""
    return setup_tool("k8s-tools.sh")


@pytest.fixture(scope="session")
def k8s(k8s_tools: Path, tmp_path_factory: pytest.TempPathFactory) -> Session:
    """Render production, staging (with image digests) and the refusals at once; then a
    second production render and the dev stack's plan; then validate and scan at once."""
    root = tmp_path_factory.mktemp("k8s")
    digests = {
        name: DIGEST
        for name in [
            "postgres",
            "redis",
            "chromadb/chroma",
            "nginx",
            "neo4j",
            "kailash/nexus-ops",
            "kailash/nexus-app",
            "kailash/pgbouncer",
            "quay.io/prometheuscommunity/postgres-exporter",
            "oliver006/redis_exporter",
            "kailash/celery-exporter",
        ]
    }
    # production and staging with the default monitoring (plain)
    specs = {"production": {}, "staging": {"kailash_k8s_image_digests": digests}}
    procs: dict[str, subprocess.Popen[str]] = {}
    renders: dict[str, Render] = {}
    for name, extra in specs.items():
        tree, secrets = root / name / "tree", root / name / "secrets"
        procs[name] = _start(
            "playbooks/k8s.yml", name, {"kailash_k8s_render_dir": str(tree), **extra}, secrets
        )
        renders[name] = Render(name, tree, secrets, Run(-1, ""))
    refusal_procs = {}
    for name, (extra, _cases) in REFUSAL_RUNS.items():
        tree = root / "refused" / name / "tree"
        refusal_procs[name] = (
            _start(
                "playbooks/k8s.yml",
                "production",
                {"kailash_k8s_render_dir": str(tree), **extra},
                root / "refused" / name / "secrets",
            ),
            tree,
        )
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=900)
        renders[name].run = Run(proc.returncode, out)
        assert proc.returncode == 0, f"render of {name} failed:\n{out[-4000:]}"
    prod = renders["production"]
    first = _hashes(prod.tree.parent)  # the overlay and the base
    # the second render (idempotence) and the dev stack's plan (parity), at once
    dump = root / "dev-plan.json"
    # ... run as on a workstation without a Docker engine: no socket, no cgroup tree (the
    # container exporter's host checks are for Docker hosts; its paths do not reach the tree)
    second = _start(
        "playbooks/k8s.yml",
        "production",
        {"kailash_k8s_render_dir": str(prod.tree), **NO_DOCKER},
        prod.secrets_dir,
    )
    # the dev stack without the two services the app's environment depends on (the default
    # service set has them: monitoring is on by default), and with them
    services = yaml.safe_load((REPO / "roles" / "kailash" / "defaults" / "main.yml").read_text())[
        "kailash_services"
    ]
    app_monitoring = ("celery_exporter", "prometheus")
    dev = _start(
        str(HERE / "dev_plan.yml"),
        "production",
        {
            "kailash_dev_plan_dump": str(dump),
            "kailash_services": [s for s in services if s not in app_monitoring],
        },
        prod.secrets_dir,
        tags=None,
    )
    dump_monitored = root / "dev-plan-monitored.json"
    dev_monitored = _start(
        str(HERE / "dev_plan.yml"),
        "production",
        {
            "kailash_dev_plan_dump": str(dump_monitored),
            "kailash_services": [s for s in services if s not in app_monitoring]
            + list(app_monitoring),
        },
        prod.secrets_dir,
        tags=None,
    )
    # the other monitoring modes, from production's inventory and secret store (its
    # generated Secrets then compare with production's)
    modes = {"operator": OPERATOR_EXTRA, "none": {"kailash_k8s_monitoring": "none"}}
    for name, extra in modes.items():
        tree = root / name / "tree"
        procs[name] = _start(
            "playbooks/k8s.yml",
            "production",
            {"kailash_k8s_render_dir": str(tree), **extra},
            prod.secrets_dir,
        )
        renders[name] = Render(name, tree, prod.secrets_dir, Run(-1, ""))
    for name in modes:
        out, _ = procs[name].communicate(timeout=900)
        renders[name].run = Run(procs[name].returncode, out)
        assert procs[name].returncode == 0, f"render of {name} failed:\n{out[-4000:]}"
    # meanwhile: build, then validate (schemas of every version) and scan, all at once
    checks: dict[str, subprocess.Popen[str]] = {}
    for render in renders.values():
        render.built_text = kustomize(k8s_tools, render.tree)
        render.docs = [d for d in yaml.safe_load_all(render.built_text) if d]
    checks.update(_monitoring_checks(k8s_tools, renders, root))
    for name in ("production", "staging"):
        render = renders[name]
        built = root / f"{name}-built.yaml"
        built.write_text(render.built_text)
        # production across the whole window; staging (labels, TLS and digests differ) at its ends
        versions = VERSIONS if name == "production" else [VERSIONS[0], VERSIONS[-1]]
        checks[f"validate-{name}"] = subprocess.Popen(
            [str(k8s_tools / "python"), str(HERE / "kube_validate.py"), str(built), *versions],
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        # production with the justified skip of the digest check; staging pins digests,
        # so it is scanned with no global skip at all
        cmd = [
            str(k8s_tools / "checkov"),
            "-f",
            str(built),
            "--skip-download",
            "--framework",
            "kubernetes",
            "--compact",
            "--quiet",
        ]
        if name == "production":
            cmd += ["--config-file", str(HERE / "checkov.yaml")]
        checks[f"checkov-{name}"] = subprocess.Popen(
            cmd, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
    results: dict[str, Run] = {}
    for name, proc in checks.items():
        out, _ = proc.communicate(timeout=900)
        results[name] = Run(proc.returncode, out)
    second_out, _ = second.communicate(timeout=900)
    dev_out, _ = dev.communicate(timeout=900)
    assert dev.returncode == 0, f"dev plan failed:\n{dev_out[-4000:]}"
    dev_out, _ = dev_monitored.communicate(timeout=900)
    assert dev_monitored.returncode == 0, f"monitored dev plan failed:\n{dev_out[-4000:]}"
    refusals = {}
    for name, (proc, tree) in refusal_procs.items():
        out, _ = proc.communicate(timeout=900)
        for case in REFUSAL_RUNS[name][1]:
            refusals[case] = (Run(proc.returncode, out), tree)
    return Session(
        tools=k8s_tools,
        renders=renders,
        refusals=refusals,
        validation={n: results[f"validate-{n}"] for n in results_names(results, "validate")},
        checkov={n: results[f"checkov-{n}"] for n in results_names(results, "checkov")},
        crd_validation=results["crd-operator"],
        second_run=Run(second.returncode, second_out),
        first_hashes=first,
        dev_plan=json.loads(dump.read_text()),
        dev_plan_monitored=json.loads(dump_monitored.read_text()),
    )


@pytest.fixture(scope="session")
def prod(k8s: Session) -> Render:
    return k8s.renders["production"]
