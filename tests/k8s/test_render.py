"""The rendered tree: layout (one shared base, an overlay per environment that carries
only what differs), secrets kept out of committable files, a second render changes
nothing, and bad input is refused before anything is written."""

from __future__ import annotations

import fnmatch
import re
import stat

import pytest
import yaml

from conftest import REFUSALS, REPO, Session, _hashes

OVERLAY_FILES = ["kustomization.yaml", "namespace.yaml", "quota.yaml"]
BASE_FILES = [
    "kustomization.yaml",
    "priorityclasses.yaml",
    "postgresql.yaml",
    "redis.yaml",
    "chromadb.yaml",
    "neo4j.yaml",
    "pgbouncer.yaml",
    "nexus.yaml",
    "ingress.yaml",
    "networkpolicies.yaml",
    "ops.yaml",
]
SECRET_FILES = [
    "secrets.env",
    "secrets/users.conf",
    "secrets/chromadb_gate_token",
    "secrets/pgbouncer_userlist.txt",
    # the exporters' credentials (kailash_k8s_monitoring plain, the default)
    "secrets/monitoring/postgres_exporter_admin_password",
    "secrets/monitoring/postgres_exporter_password",
    "secrets/monitoring/postgres_exporter_setup.sql",
    "secrets/monitoring/redis_exporter_passwords",
    "secrets/monitoring/celery_exporter_broker_password",
]


def _gitignored(rel: str) -> bool:
    """Whether `k8s/<env>/<rel>` matches a pattern of .gitignore (read, no git command)."""
    path = f"k8s/production/{rel}"
    for line in (REPO / ".gitignore").read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        if pattern.endswith("/"):
            if fnmatch.fnmatch(path, pattern + "*"):
                return True
        elif fnmatch.fnmatch(path, pattern):
            return True
    return False


@pytest.mark.parametrize("env", ["production", "staging"])
def test_tree_layout(k8s: Session, env: str) -> None:
    tree = k8s.renders[env].tree
    for name in OVERLAY_FILES:
        assert (tree / name).is_file(), name
    for name in BASE_FILES:
        assert (tree.parent / "base" / name).is_file(), name
    for name in SECRET_FILES:
        assert (tree / name).is_file(), name
    # the overlay has no manifest of its own: the base's, patched
    assert not (tree / "base").exists()
    assert not (tree / "objects.yaml").exists()
    overlay = yaml.safe_load((tree / "kustomization.yaml").read_text())
    assert overlay["resources"] == ["namespace.yaml", "quota.yaml", "../base"]


def test_one_base_whichever_inventory_renders_it(k8s: Session) -> None:
    """Staging and production (different inventories, staging with digests) write the same
    base, byte for byte, and it is the committed k8s/base."""
    bases = {
        env: _hashes(k8s.renders[env].tree.parent / "base") for env in ("staging", "production")
    }
    assert bases["staging"] == bases["production"]
    assert bases["production"] == _hashes(REPO / "k8s" / "base"), (
        "k8s/base is not what the role renders: re-render (ansible-playbook -i "
        "inventories/production site.yml --tags render)"
    )


@pytest.mark.parametrize("env", ["production", "staging"])
def test_the_overlay_carries_only_what_differs(k8s: Session, env: str) -> None:
    """The patches of the overlay change the instance label, the ingress host and TLS,
    nothing of the datastores' or the app's specs at the default sizes."""
    overlay = yaml.safe_load((k8s.renders[env].tree / "kustomization.yaml").read_text())
    paths = {
        op["path"]
        for patch in overlay["patches"]
        for op in yaml.safe_load(patch["patch"])
    }
    changed = {p for p in paths if not p.endswith("/app.kubernetes.io~1instance")}
    expected = {"/spec/tls/0/hosts/0", "/spec/tls/0/secretName", "/spec/rules/0/host"}
    if env == "production":
        expected.add("/metadata/annotations/cert-manager.io~1cluster-issuer")
    assert changed == expected


def test_secret_files_are_private_and_ignored(prod) -> None:
    assert stat.S_IMODE((prod.tree / "secrets").stat().st_mode) == 0o700
    for name in SECRET_FILES:
        assert stat.S_IMODE((prod.tree / name).stat().st_mode) == 0o600, name
        assert _gitignored(name), f"{name} is not git-ignored"
    for name in ["kustomization.yaml", "objects.yaml", "config/postgresql/postgresql.conf"]:
        assert not _gitignored(name), f"{name} should be committable"


def test_no_secret_value_in_committable_files(prod) -> None:
    values = []
    for line in (prod.tree / "secrets.env").read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            values.append(line.split("=", 1)[1].split("/", 1)[-1])
    assert len(values) >= 6
    for path in [*prod.tree.rglob("*"), *(prod.tree.parent / "base").rglob("*")]:
        rel = str(path.relative_to(prod.tree.parent))
        if not path.is_file() or rel.removeprefix(prod.tree.name + "/") in SECRET_FILES:
            continue
        text = path.read_text()
        for value in values:
            assert value not in text, f"a secret value is in {rel}"


def test_generated_secrets_reference_the_git_ignored_files(prod) -> None:
    text = (prod.tree / "kustomization.yaml").read_text()
    assert "envs:\n      - secrets.env" in text
    assert "secrets/users.conf" in text and "secrets/chromadb_gate_token" in text
    assert "literals" not in text


def test_second_render_is_byte_identical_and_changes_nothing(k8s: Session, prod) -> None:
    """The second render runs as on a machine without Docker (conftest.NO_DOCKER: the
    container exporter's socket and cgroup paths point at nothing), which failed before
    kailash_target: a Kubernetes render must not need a Docker engine."""
    assert k8s.second_run.rc == 0, k8s.second_run.output[-3000:]
    assert _hashes(prod.tree.parent) == k8s.first_hashes
    recap = re.search(r"production-cluster\s*:.*changed=(\d+)", k8s.second_run.output)
    assert recap and recap.group(1) == "0", k8s.second_run.output[-2000:]


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_bad_input_is_refused_before_rendering(k8s: Session, case: str) -> None:
    run, tree = k8s.refusals[case]
    expected = REFUSALS[case][1]
    assert run.rc != 0, f"{case} was accepted"
    for text in expected:
        assert text in run.output, f"{case}: {text!r} not in:\n{run.output[-2500:]}"
    assert not tree.exists(), f"{case}: the tree was written although the input was refused"
