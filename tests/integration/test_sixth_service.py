"""A sixth service added by one role alone (issue #12): a throwaway copy of the project gets
the test-only role tests/fixtures/sixth_service/echo (python3's http.server on the offline
base image) and one entry in the service registry (roles/kailash/vars/main.yml), and nothing
else. Then, in the copy:

- the dev stack (own project kailash-six: Redis and echo) comes up healthy, echo on the
  Compose network its vars/network.yml names;
- playbooks/health.yml reports echo up (its vars/health_probe.yml);
- the Kubernetes render of the production inventory with echo planned has its ServiceAccount,
  Service, Deployment and NetworkPolicy echo-ingress (its vars/network.yml), the app's
  egress to it and its pods in the quota: built with the real ``kubectl kustomize`` offline
  (no cluster here: nothing is applied).
"""

from __future__ import annotations

import filecmp
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from kailash_testlib import ROOT, run_playbook

pytestmark = pytest.mark.usefixtures("docker_available")

PROJECT = "kailash-six"
WORK = Path("/tmp/kailash-six")
FIXTURE = ROOT / "tests/fixtures/sixth_service/echo"
DEFAULTS = yaml.safe_load((ROOT / "roles/kailash/defaults/main.yml").read_text())
SERVICES = DEFAULTS["kailash_services"]
DEV = {
    "kailash_project": PROJECT,
    "kailash_services": ["redis", "echo"],
    "kailash_stack_root": str(WORK / "stack"),
    "kailash_secrets_dir": str(WORK / "secrets"),
    "kailash_publish_datastores": False,
    "kailash_networks": {"edge": "10.235.0.0/24", "app": "10.235.1.0/24", "data": "10.235.2.0/24"},
}


def _down() -> None:
    subprocess.run(["docker", "compose", "-p", PROJECT, "down", "-v", "--remove-orphans"],
                   capture_output=True, check=False, timeout=300)  # fmt: skip


@pytest.fixture(scope="module")
def copy():
    """The project's tracked files as they are in this checkout, plus the role and the entry."""
    _down()
    shutil.rmtree(WORK, ignore_errors=True)
    target = WORK / "project"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                             check=True).stdout.decode().split("\0")  # fmt: skip
    for rel in filter(None, tracked):
        src = ROOT / rel
        if src.is_file():
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target / rel)
    if (ROOT / ".ansible").is_dir():
        (target / ".ansible").symlink_to(ROOT / ".ansible")
    # the whole change: the role directory, and one entry in the registry
    shutil.copytree(FIXTURE, target / "roles/echo")
    registry = target / "roles/kailash/vars/main.yml"
    text = registry.read_text()
    assert "celery_exporter]" in text
    registry.write_text(text.replace("celery_exporter]", "celery_exporter, echo]", 1))
    yield target
    _down()
    shutil.rmtree(WORK, ignore_errors=True)


def test_only_the_role_and_one_registry_entry_were_touched(copy) -> None:
    touched = []
    for path in copy.rglob("*"):
        rel = path.relative_to(copy)
        if not path.is_file() or ".ansible" in rel.parts:
            continue
        original = ROOT / rel
        if not original.is_file() or not filecmp.cmp(path, original, shallow=False):
            touched.append(str(rel))
    role = [f"roles/echo/{p.relative_to(FIXTURE)}" for p in FIXTURE.rglob("*") if p.is_file()]
    print("touched:", sorted(touched))
    assert sorted(touched) == sorted([*role, "roles/kailash/vars/main.yml"])


@pytest.fixture(scope="module")
def dev_stack(copy):
    run = run_playbook("playbooks/dev_stack.yml", extra=DEV, root=copy, timeout=1200)
    assert run.rc == 0, run.output[-4000:]
    return copy


def test_the_compose_stack_runs_it_healthy(dev_stack) -> None:
    out = subprocess.run(["docker", "compose", "-p", PROJECT, "ps", "--all", "--format", "json"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    rows = [json.loads(line) for line in out.splitlines() if line.strip()]
    rows = rows[0] if rows and isinstance(rows[0], list) else rows
    states = {r["Service"]: (r["State"], r.get("Health")) for r in rows}
    assert states == {"redis": ("running", "healthy"), "echo": ("running", "healthy")}, out


def test_its_network_exposure_gives_its_compose_network(dev_stack) -> None:
    """vars/network.yml says tier app: the compose file puts echo on app, Redis on data."""
    compose = yaml.safe_load((WORK / "stack" / PROJECT / "compose.yml").read_text())
    assert compose["services"]["echo"]["networks"] == ["app"]
    assert compose["services"]["redis"]["networks"] == ["data"]
    out = subprocess.run(["docker", "inspect", "-f", "{{json .NetworkSettings.Networks}}",
                          f"{PROJECT}-echo-1"], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    assert sorted(json.loads(out)) == [f"{PROJECT}_app"]


def test_the_health_report_probes_it(dev_stack) -> None:
    run = run_playbook("playbooks/health.yml", extra=DEV, root=dev_stack)
    assert run.rc == 0, run.output[-3000:]
    rows = [line.split("|") for line in run.output.splitlines() if line.strip().startswith("echo ")]
    assert rows and rows[0][1].strip() == "up", run.output[-3000:]


def test_the_kubernetes_tree_has_it_with_its_network_policy(copy) -> None:
    services = [*SERVICES[:-1], "echo", SERVICES[-1]]  # Prometheus stays last
    tree = WORK / "k8s" / "production"
    run = run_playbook("playbooks/k8s.yml", "--tags", "render", inventory="inventories/production",
                       extra={"kailash_services": services, "kailash_k8s_render_dir": str(tree)},
                       root=copy,
                       env={"KAILASH_SECRETS_DIR": str(WORK / "k8s-secrets")})  # fmt: skip
    assert run.rc == 0, run.output[-4000:]
    tools = subprocess.run([str(ROOT / "scripts/k8s-tools.sh")], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.strip().splitlines()[-1]  # fmt: skip
    built = subprocess.run([str(Path(tools) / "kubectl"), "kustomize", str(tree)],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    docs = [d for d in yaml.safe_load_all(built) if d]
    echo = {(d["kind"], d["metadata"]["name"]): d for d in docs if "echo" in d["metadata"]["name"]}
    assert set(echo) == {("ServiceAccount", "echo"), ("Service", "echo"), ("Deployment", "echo"),
                         ("NetworkPolicy", "echo-ingress")}, sorted(echo)  # fmt: skip
    policy = echo[("NetworkPolicy", "echo-ingress")]["spec"]
    assert policy["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "echo"
    assert policy["ingress"][0]["ports"] == [{"port": 8088, "protocol": "TCP"}]
    callers = policy["ingress"][0]["from"]
    assert {"podSelector": {"matchLabels": {"kailash.io/tier": "app"}}} in callers
    egress = next(d for d in docs if d["kind"] == "NetworkPolicy"
                  and d["metadata"]["name"] == "app-egress")["spec"]["egress"]  # fmt: skip
    assert any("echo" in json.dumps(rule.get("to")) for rule in egress), egress
    deployment = echo[("Deployment", "echo")]
    assert deployment["metadata"]["namespace"] == "kailash-production"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["memory"] == "64Mi"
