"""One Kubernetes base, an overlay per environment (issue #12, roles/kailash_k8s).

``k8s/base`` holds the manifests rendered from the role defaults alone (the same bytes
whichever inventory renders it); ``k8s/<env>`` holds only what differs. The renderer
renders an environment's manifests in memory exactly as before, and this filter computes
the overlay that turns the base into them:

- an object in both: RFC 6902 JSON patch operations (``add``, ``remove``, ``replace``)
  for each value that differs, by JSON pointer. Lists of the same length are compared
  element by element; a list whose length differs is replaced whole.
- an object only in the base: a strategic-merge ``$patch: delete``.
- an object only in the environment: kept whole, for the overlay's own resource file.

Objects are matched by apiVersion, kind, namespace and name. Any template change flows
through: nothing here names a field.
"""

from __future__ import annotations

from typing import Any

import yaml
from ansible.errors import AnsibleFilterError

Key = tuple[str, str, str, str]


def _key(doc: dict[str, Any]) -> Key:
    meta = doc.get("metadata") or {}
    return (
        str(doc.get("apiVersion", "")),
        str(doc.get("kind", "")),
        str(meta.get("namespace", "")),
        str(meta.get("name", "")),
    )


def _objects(files: Any, what: str) -> dict[Key, dict[str, Any]]:
    """The objects of ``{file name: YAML text}``, in file order (sorted names), by key."""
    if not isinstance(files, dict):
        raise AnsibleFilterError(f"kailash_k8s_overlay: {what} must map file names to YAML")
    out: dict[Key, dict[str, Any]] = {}
    for name in sorted(files):
        try:
            docs = [d for d in yaml.safe_load_all(str(files[name])) if d]
        except yaml.YAMLError as exc:
            raise AnsibleFilterError(f"kailash_k8s_overlay: {what} {name}: {exc}") from exc
        for doc in docs:
            if not isinstance(doc, dict) or doc.get("kind") == "Kustomization":
                continue
            key = _key(doc)
            if key in out:
                raise AnsibleFilterError(
                    f"kailash_k8s_overlay: {what} has {key[1]}/{key[3]} twice ({name})"
                )
            out[key] = doc
    return out


def _pointer(path: str, token: Any) -> str:
    """``path`` + ``/token``, escaped as RFC 6901 asks (``~`` -> ``~0``, ``/`` -> ``~1``)."""
    return path + "/" + str(token).replace("~", "~0").replace("/", "~1")


def _same(a: Any, b: Any) -> bool:
    """Equal and of the same type (``1`` is not ``"1"``, ``True`` is not ``1``)."""
    return type(a) is type(b) and a == b


def kailash_k8s_json_patch(base: Any, env: Any, path: str = "") -> list[dict[str, Any]]:
    """The RFC 6902 operations that turn ``base`` into ``env`` (empty: they are equal)."""
    if isinstance(base, dict) and isinstance(env, dict):
        ops: list[dict[str, Any]] = []
        for key in base:
            if key not in env:
                ops.append({"op": "remove", "path": _pointer(path, key)})
        for key, value in env.items():
            if key not in base:
                ops.append({"op": "add", "path": _pointer(path, key), "value": value})
            else:
                ops.extend(kailash_k8s_json_patch(base[key], value, _pointer(path, key)))
        return ops
    if isinstance(base, list) and isinstance(env, list) and len(base) == len(env):
        ops = []
        for index, (left, right) in enumerate(zip(base, env, strict=True)):
            ops.extend(kailash_k8s_json_patch(left, right, _pointer(path, index)))
        return ops
    if _same(base, env):
        return []
    if not path:
        raise AnsibleFilterError("kailash_k8s_json_patch: an object must be a mapping")
    return [{"op": "replace", "path": path, "value": env}]


def _target(key: Key) -> dict[str, str]:
    """The kustomize patch target of an object: group, version, kind, namespace, name."""
    api_version, kind, namespace, name = key
    group, _, version = api_version.rpartition("/")
    target = {"group": group, "version": version, "kind": kind, "name": name}
    if not group:
        del target["group"]
    if namespace:
        target["namespace"] = namespace
    return target


def kailash_k8s_overlay(env_files: Any, base_files: Any) -> dict[str, list]:
    """What the overlay of an environment carries over the base.

    ``env_files``, ``base_files``: ``{file name: YAML text}`` (the environment's manifests
    as rendered for it, the base's). Returns ``{"patches": [{"target": {...}, "ops":
    [...]}], "deletes": [{apiVersion, kind, metadata: {name[, namespace]}}], "objects":
    [...]}``: patches and deletes in the base's order, objects in the environment's.
    """
    env = _objects(env_files, "the environment")
    base = _objects(base_files, "the base")
    patches, deletes = [], []
    for key, doc in base.items():
        if key not in env:
            meta = {"name": key[3], **({"namespace": key[2]} if key[2] else {})}
            deletes.append({"apiVersion": key[0], "kind": key[1], "metadata": meta})
            continue
        ops = kailash_k8s_json_patch(doc, env[key])
        if ops:
            patches.append({"target": _target(key), "ops": ops})
    objects = [doc for key, doc in env.items() if key not in base]
    return {"patches": patches, "deletes": deletes, "objects": objects}


class FilterModule:
    """Ansible filter plugin entry point."""

    def filters(self) -> dict[str, Any]:
        return {
            "kailash_k8s_overlay": kailash_k8s_overlay,
            "kailash_k8s_json_patch": kailash_k8s_json_patch,
        }
