"""Unit tests of kailash_roles_with (plugins/filter/roles.py) on the project's own roles."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "plugins" / "filter"))
from roles import kailash_role_specs, kailash_roles_with  # noqa: E402

ROLES = str(ROOT / "roles")


def test_the_roles_that_carry_a_file_in_the_given_order() -> None:
    services = ["nexus", "redis", "postgresql", "edge"]
    assert kailash_roles_with(services, ROLES, "vars/backup.yml") == ["redis", "postgresql"]
    assert kailash_roles_with(services, ROLES, "vars/backup.yml", False) == ["nexus", "edge"]
    assert kailash_roles_with(services, ROLES, "tasks/rotate_roll.yml") == ["nexus"]
    assert kailash_roles_with(["no_such_role"], ROLES, "vars/main.yml") == []


def test_a_string_is_not_a_list_of_services() -> None:
    from ansible.errors import AnsibleFilterError

    with pytest.raises(AnsibleFilterError, match="expected a list of services"):
        kailash_roles_with("redis", ROLES, "vars/backup.yml")


def test_the_specs_of_the_roles_that_carry_them(tmp_path) -> None:
    """Each role's vars/<name>.yml, <svc>__<name>, in the services' order; a file without
    the variable is refused naming it."""
    specs = kailash_role_specs(["nexus", "neo4j", "redis"], ROLES, "kubernetes_volumes")
    assert specs == {"neo4j": {"neo4j": "50Gi", "neo4j_logs": "5Gi"}, "redis": {"redis": "10Gi"}}
    assert list(kailash_role_specs(["redis", "neo4j"], ROLES, "kubernetes_volumes")) == [
        "redis",
        "neo4j",
    ]
    (tmp_path / "svc" / "vars").mkdir(parents=True)
    (tmp_path / "svc" / "vars" / "thing.yml").write_text("other: 1\n")
    from ansible.errors import AnsibleFilterError

    with pytest.raises(AnsibleFilterError, match="does not set svc__thing"):
        kailash_role_specs(["svc"], str(tmp_path), "thing")
