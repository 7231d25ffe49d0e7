"""Unit tests of the Kubernetes filters (plugins/filter/k8s.py) and the tree writer
(roles/kailash_k8s/library/kailash_k8s_tree.py helpers)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "plugins" / "filter"))

import k8s  # noqa: E402
from sizing import AnsibleFilterError  # noqa: E402


def test_cpu_quantities() -> None:
    assert k8s.kailash_k8s_cpu(2000) == "2"
    assert k8s.kailash_k8s_cpu(1500) == "1500m"
    assert k8s.kailash_k8s_cpu("500m") == "500m"
    assert k8s.kailash_k8s_cpu("2") == "2"


def test_totals() -> None:
    totals = k8s.kailash_k8s_totals(
        [
            {
                "count": 3,
                "memory_request": "2Gi",
                "memory_limit": "4Gi",
                "cpu_request": "1000m",
                "cpu_limit": "2000m",
            },
            {
                "count": 1,
                "memory_request": "512Mi",
                "memory_limit": "1Gi",
                "cpu_request": "250m",
                "cpu_limit": "500m",
            },
        ]
    )
    assert totals == {
        "requests.memory": "6656Mi",
        "limits.memory": "13Gi",
        "requests.cpu": "3250m",
        "limits.cpu": "6500m",
    }
    with pytest.raises(AnsibleFilterError):
        k8s.kailash_k8s_totals({"not": "a list"})


def test_env_file() -> None:
    text = "# comment\n\nNEO4J_server_memory_heap_max__size='4g'\nA=\"b c\"\nB=plain\n"
    assert k8s.kailash_k8s_env_file(text) == {
        "NEO4J_server_memory_heap_max__size": "4g",
        "A": "b c",
        "B": "plain",
    }
    with pytest.raises(AnsibleFilterError, match="not a KEY=value line"):
        k8s.kailash_k8s_env_file("no equals sign")


@pytest.mark.parametrize(
    ("image", "ok"),
    [
        ("kailash/nexus-app:1.0.0", True),
        ("registry.example.com:5000/team/app:2.1", True),
        ("postgres@sha256:" + "0" * 64, True),
        ("redis:latest", False),
        ("nginx", False),
        ("registry.example.com:5000/app", False),
        ("", False),
    ],
)
def test_image_errors(image: str, ok: bool) -> None:
    errors = k8s.kailash_k8s_image_errors({"some_image_var": image})
    assert (errors == []) is ok, errors
    if not ok:
        assert errors[0].startswith("some_image_var ")
