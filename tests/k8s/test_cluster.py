"""The apply path: only with a live cluster (KAILASH_K8S_CLUSTER=1, a kubeconfig whose
context is the inventory's kailash_k8s_context). Skipped everywhere else."""

from __future__ import annotations

import subprocess

import pytest

from conftest import ANSIBLE_PLAYBOOK, REPO, _env

pytestmark = pytest.mark.cluster


@pytest.mark.parametrize("env", ["staging"])
def test_apply_waits_for_every_rollout(env: str, tmp_path) -> None:
    proc = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", f"inventories/{env}", "playbooks/k8s.yml"],
        cwd=REPO,
        env=_env(REPO / ".secrets" / env),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:]


def test_rolling_update_rolls_back_a_broken_tag(tmp_path) -> None:
    proc = subprocess.run(
        [
            str(ANSIBLE_PLAYBOOK),
            "-i",
            "inventories/staging",
            "playbooks/rolling_update.yml",
            "-e",
            "kailash_k8s_new_image_tag=does-not-exist-0",
            "-e",
            "kailash_k8s_progress_deadline_seconds=120",
        ],
        cwd=REPO,
        env=_env(REPO / ".secrets" / "staging"),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    assert "rolled back" in proc.stdout
