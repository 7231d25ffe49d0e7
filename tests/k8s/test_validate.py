"""Offline validation of every overlay: kustomize builds, the strict schemas of
Kubernetes 1.29-1.37 accept every object (staging: 1.29 and 1.37), and checkov finds
nothing (the session fixture runs them all at once; see conftest.py)."""

from __future__ import annotations

import pytest

from conftest import VERSIONS, Session

ENVS = ["production", "staging"]


def _containers(doc):
    spec = doc.get("spec", {})
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    pod = spec.get("template", {}).get("spec", {})
    return pod.get("containers", []) + pod.get("initContainers", [])


@pytest.mark.parametrize("env", ENVS)
def test_kustomize_builds_every_overlay(k8s: Session, env: str) -> None:
    docs = k8s.renders[env].docs
    kinds = {d["kind"] for d in docs}
    assert {
        "Namespace",
        "Deployment",
        "StatefulSet",
        "Service",
        "Ingress",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "CronJob",
        "ResourceQuota",
        "LimitRange",
        "PriorityClass",
        "ServiceAccount",
        "ConfigMap",
        "Secret",
        "PersistentVolumeClaim",
    } <= kinds
    namespaced = [d for d in docs if d["kind"] not in ("Namespace", "PriorityClass")]
    assert {d["metadata"].get("namespace") for d in namespaced} == {f"kailash-{env}"}


@pytest.mark.parametrize("env", ENVS)
def test_kubernetes_validate_strict_across_versions(k8s: Session, env: str) -> None:
    run = k8s.validation[env]
    assert run.rc == 0, run.output[-4000:]
    count = len(k8s.renders[env].docs)
    versions = len(VERSIONS) if env == "production" else 2
    assert f"validated {count} objects x {versions} versions: 0 failures" in run.output


@pytest.mark.parametrize("env", ENVS)
def test_checkov_finds_nothing(k8s: Session, env: str) -> None:
    run = k8s.checkov[env]
    assert run.rc == 0, run.output[-4000:]
    assert "Failed checks: 0" in run.output, run.output[-2000:]


def test_digests_pin_every_image_and_pass_the_digest_check(k8s: Session) -> None:
    """Staging is rendered with kailash_k8s_image_digests and scanned with no global skip:
    the one skip production's scan has (CKV_K8S_43) is only about those digests."""
    render = k8s.renders["staging"]
    images = {c["image"] for d in render.docs for c in _containers(d)}
    assert images and all("@sha256:" in image for image in images), images
    assert "CKV_K8S_43" not in k8s.checkov["staging"].output
