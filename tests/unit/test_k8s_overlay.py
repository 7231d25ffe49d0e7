"""plugins/filter/k8s_overlay.py: the overlay of an environment over the shared Kubernetes
base (JSON patches per object, deletes, objects only the environment has). Each case
applies the computed overlay to the base (an RFC 6902 applier below) and gets the
environment's objects back."""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "plugins" / "filter"))
_spec = importlib.util.spec_from_file_location(
    "k8s_overlay_filters", ROOT / "plugins" / "filter" / "k8s_overlay.py"
)
ko = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ko)

from ansible.errors import AnsibleFilterError  # noqa: E402


def _tokens(path: str) -> list[str]:
    return [t.replace("~1", "/").replace("~0", "~") for t in path.split("/")[1:]]


def _apply(doc: Any, ops: list[dict[str, Any]]) -> Any:
    """RFC 6902 add/remove/replace, as kustomize applies them."""
    doc = copy.deepcopy(doc)
    for op in ops:
        *parents, last = _tokens(op["path"])
        node = doc
        for token in parents:
            node = node[int(token)] if isinstance(node, list) else node[token]
        key: Any = int(last) if isinstance(node, list) else last
        if op["op"] == "remove":
            del node[key]
        elif op["op"] == "replace":
            assert key in node if isinstance(node, dict) else key < len(node), op
            node[key] = op["value"]
        else:
            assert op["op"] == "add", op
            node[key] = op["value"]
    return doc


def _build(base: dict[str, str], overlay: dict[str, list]) -> list[dict[str, Any]]:
    """The base's objects with the overlay applied (the order kustomize keeps)."""
    objects = ko._objects(base, "base")
    deleted = {ko._key(d) for d in overlay["deletes"]}
    patches = {
        (p["target"].get("group", "") + "/" if p["target"].get("group") else "")
        + p["target"]["version"]
        + "|" + p["target"]["kind"] + "|" + p["target"].get("namespace", "")
        + "|" + p["target"]["name"]: p["ops"]
        for p in overlay["patches"]
    }
    out = []
    for key, doc in objects.items():
        if key in deleted:
            continue
        out.append(_apply(doc, patches.get("|".join(key), [])))
    return out + overlay["objects"]


def _text(*docs: dict[str, Any]) -> str:
    return yaml.safe_dump_all(list(docs), sort_keys=False)


def _deployment(name: str, instance: str, **spec: Any) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/instance": instance}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {"containers": [{"name": name, "image": "app", "args": ["a", "b"]}]},
            },
            **spec,
        },
    }


def _service(name: str, instance: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app.kubernetes.io/instance": instance}},
    }


def _roundtrip(base: dict[str, str], env: dict[str, str]) -> dict[str, list]:
    overlay = ko.kailash_k8s_overlay(env, base)
    want = sorted(ko._objects(env, "env").values(), key=repr)
    assert sorted(_build(base, overlay), key=repr) == want
    return overlay


def test_equal_trees_need_no_overlay() -> None:
    files = {"a.yaml": _text(_deployment("api", "kailash-base"), _service("api", "x"))}
    assert ko.kailash_k8s_overlay(files, files) == {"patches": [], "deletes": [], "objects": []}


def test_a_value_that_differs_is_replaced_by_its_json_pointer() -> None:
    base = {"a.yaml": _text(_deployment("api", "kailash-base"))}
    env = {"a.yaml": _text(_deployment("api", "kailash-production"))}
    overlay = _roundtrip(base, env)
    assert overlay["patches"] == [
        {
            "target": {"group": "apps", "version": "v1", "kind": "Deployment", "name": "api"},
            "ops": [
                {"op": "replace", "path": f"{p}/app.kubernetes.io~1instance",
                 "value": "kailash-production"}
                for p in ("/metadata/labels", "/spec/selector/matchLabels",
                          "/spec/template/metadata/labels")
            ],
        }
    ]


def test_keys_added_and_removed_lists_and_types() -> None:
    base_doc = _deployment("api", "b", paused=False)
    base_doc["metadata"]["annotations"] = {"old/key": "1", "keep": "x"}
    env_doc = copy.deepcopy(base_doc)
    del env_doc["metadata"]["annotations"]["old/key"]
    env_doc["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] = "le~prod"
    env_doc["spec"]["replicas"] = "3"  # a type change is a difference
    env_doc["spec"]["paused"] = 0
    env_doc["spec"]["template"]["spec"]["containers"][0]["args"] = ["a", "b", "c"]
    env_doc["spec"]["template"]["spec"]["containers"][0]["image"] = "app2"
    overlay = _roundtrip({"a.yaml": _text(base_doc)}, {"b.yaml": _text(env_doc)})
    ops = overlay["patches"][0]["ops"]
    assert {"op": "remove", "path": "/metadata/annotations/old~1key"} in ops
    assert {"op": "add", "path": "/metadata/annotations/cert-manager.io~1cluster-issuer",
            "value": "le~prod"} in ops
    # a list of another length is replaced whole; one of the same length element-wise
    assert {"op": "replace", "path": "/spec/template/spec/containers/0/args",
            "value": ["a", "b", "c"]} in ops
    assert {"op": "replace", "path": "/spec/template/spec/containers/0/image",
            "value": "app2"} in ops
    assert {"op": "replace", "path": "/spec/replicas", "value": "3"} in ops
    assert {"op": "replace", "path": "/spec/paused", "value": 0} in ops


def test_objects_only_in_one_side_are_deleted_or_kept_whole() -> None:
    monitor = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
               "metadata": {"name": "redis", "namespace": "mon"}, "spec": {}}
    base = {"a.yaml": _text(_deployment("api", "b"), _service("exporter", "b")),
            "kustomization.yaml": "kind: Kustomization\nresources: [a.yaml]\n"}
    env = {"a.yaml": _text(_deployment("api", "b")), "m.yaml": _text(monitor)}
    overlay = _roundtrip(base, env)
    assert overlay["patches"] == []
    assert overlay["deletes"] == [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "exporter"}}
    ]
    assert overlay["objects"] == [monitor]


def test_the_target_names_a_namespace_only_when_the_object_has_one() -> None:
    assert ko._target(("rbac.authorization.k8s.io/v1", "Role", "mon", "r")) == {
        "group": "rbac.authorization.k8s.io", "version": "v1", "kind": "Role", "name": "r",
        "namespace": "mon"}
    assert ko._target(("v1", "ConfigMap", "", "c")) == {
        "version": "v1", "kind": "ConfigMap", "name": "c"}


def test_bad_input_is_named() -> None:
    twice = {"a.yaml": _text(_service("s", "x"), _service("s", "y"))}
    with pytest.raises(AnsibleFilterError, match="Service/s twice"):
        ko.kailash_k8s_overlay(twice, {})
    with pytest.raises(AnsibleFilterError, match="must map file names"):
        ko.kailash_k8s_overlay([], {})
    with pytest.raises(AnsibleFilterError, match="the base a.yaml"):
        ko.kailash_k8s_overlay({}, {"a.yaml": "a: [b"})
