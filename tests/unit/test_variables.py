"""Unit tests of the unknown-variable check (plugins/filter/variables.py), which roles/kailash
runs on every variable the user set."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "plugins" / "filter"))

import variables  # noqa: E402


def _project(tmp_path: Path, defaults: str) -> str:
    (tmp_path / "roles" / "edge" / "defaults").mkdir(parents=True)
    (tmp_path / "roles" / "edge" / "defaults" / "main.yml").write_text(defaults)
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "site.yml").write_text("---\n")
    return str(tmp_path)


def test_known_names_pass_and_misspelt_ones_get_the_closest(tmp_path: Path) -> None:
    root = _project(tmp_path, "edge_tls_days: 365\nedge_hostname: x\n")
    names = ["edge_tls_days", "edge_tls_dayz", "edge__internal", "other_thing", "edge_foo"]
    errors = variables.kailash_unknown_variables(names, ["edge"], root=root)
    assert errors == [
        "edge_foo is not a setting of this project (it would be ignored): "
        "see roles/edge/defaults/main.yml for its settings",
        "edge_tls_dayz is not a setting of this project (it would be ignored): "
        "did you mean edge_tls_days?",
    ]


def test_replaced_names_are_refused_naming_the_replacement(tmp_path: Path) -> None:
    # refused even where a project file still mentions the old name
    root = _project(tmp_path, "# kailash_k8s_backup_keep_last was renamed\n")
    errors = variables.kailash_unknown_variables(
        ["kailash_k8s_backup_keep_last", "kailash_k8s_backup_keep_weekly"], ["kailash"], root=root
    )
    assert errors == [
        "kailash_k8s_backup_keep_last is no longer a setting of this project (it would be "
        "ignored): it was replaced by kailash_backup_keep_last, set that instead",
        "kailash_k8s_backup_keep_weekly is no longer a setting of this project (it would be "
        "ignored): it was replaced by kailash_backup_keep_weekly, set that instead",
    ]


def test_the_project_knows_every_replacement_and_none_of_the_replaced() -> None:
    """In this repository: the new names are settings, the old ones are refused."""
    replaced = sorted(variables.REPLACED)
    assert variables.kailash_unknown_variables(list(variables.REPLACED.values()), ["kailash"]) == []
    errors = variables.kailash_unknown_variables(replaced, ["kailash"])
    assert [e.split(" ")[0] for e in errors] == replaced
    assert not set(replaced) & variables._known_names()  # no role or playbook still uses one
