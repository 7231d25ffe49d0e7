#!/usr/bin/python
"""Write a rendered tree of files in one module call (roles/kailash_k8s)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: kailash_k8s_tree
short_description: Write a tree of rendered files, changing only what differs
description:
  - Writes every file of O(files) and O(secret_files) under O(root), creating the
    directories, and only when the content or the mode differs (atomic replace).
  - Files under the O(prune) directories of O(root) that are not in the tree are
    removed, so a disabled service leaves no stale manifest.
  - One call for the whole tree: rendering a kustomize tree stays fast and a second
    run with the same input reports no change.
options:
  root:
    description: Directory the relative paths are under (created when missing).
    type: path
    required: true
  files:
    description: Relative path -> C({content, mode}) (mode as an octal string, default C(0644)).
    type: dict
    default: {}
  secret_files:
    description:
      - Like O(files), for contents that must never be logged (default mode C(0600));
        their directories are created with mode C(0700).
    type: dict
    default: {}
  prune:
    description:
      - Directories (relative to O(root), C(.) for O(root) itself) whose files not in the
        tree are removed; a file named here is removed when it is not in the tree.
    type: list
    elements: str
    default: []
author: kailash-deploy
"""

EXAMPLES = r"""
- name: Write the tree
  kailash_k8s_tree:
    root: /srv/k8s/production
    files:
      base/kustomization.yaml: {content: "resources: []\n"}
    prune: [base]
"""

RETURN = r"""
written:
  description: Relative paths written (new or changed).
  type: list
  returned: always
removed:
  description: Relative paths removed by O(prune).
  type: list
  returned: always
"""

import os  # noqa: E402
import tempfile  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402


def _safe(root: str, rel: str, itself: bool = False) -> str:
    path = os.path.normpath(os.path.join(root, rel))
    if itself and path == os.path.normpath(root):
        return path
    if os.path.isabs(rel) or not path.startswith(root.rstrip("/") + "/"):
        raise ValueError(f"path {rel!r} leaves the root")
    return path


def _write(module: AnsibleModule, root: str, rel: str, spec: dict, secret: bool) -> bool:
    path = _safe(root, rel)
    content = spec.get("content", "")
    if not isinstance(content, str):
        module.fail_json(msg=f"{rel}: content must be a string")
    mode = int(str(spec.get("mode", "0600" if secret else "0644")), 8)
    data = content.encode("utf-8")
    try:
        with open(path, "rb") as handle:
            same = handle.read() == data
        same_mode = (os.stat(path).st_mode & 0o7777) == mode
    except FileNotFoundError:
        same, same_mode = False, False
    if same and same_mode:
        return False
    if module.check_mode:
        return True
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700 if secret else 0o755, exist_ok=True)
    if same:
        os.chmod(path, mode)
        return True
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return True


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "root": {"type": "path", "required": True},
            "files": {"type": "dict", "default": {}},
            "secret_files": {"type": "dict", "default": {}, "no_log": True},
            "prune": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    root = os.path.abspath(module.params["root"])
    files, secrets = module.params["files"], module.params["secret_files"]
    written: list[str] = []
    removed: list[str] = []
    try:
        if not module.check_mode:
            os.makedirs(root, mode=0o755, exist_ok=True)
        for rel in sorted(files):
            if _write(module, root, rel, files[rel] or {}, secret=False):
                written.append(rel)
        for rel in sorted(secrets):
            if _write(module, root, rel, secrets[rel] or {}, secret=True):
                written.append(rel)
        wanted = {os.path.normpath(rel) for rel in list(files) + list(secrets)}
        for top in module.params["prune"]:
            base = _safe(root, top, itself=True)
            if os.path.isfile(base) and os.path.normpath(top) not in wanted:
                removed.append(os.path.normpath(top))
                if not module.check_mode:
                    os.unlink(base)
            for dirpath, _dirs, names in os.walk(base):
                for name in sorted(names):
                    rel = os.path.relpath(os.path.join(dirpath, name), root)
                    if rel not in wanted:
                        removed.append(rel)
                        if not module.check_mode:
                            os.unlink(os.path.join(dirpath, name))
    except (OSError, ValueError) as exc:
        module.fail_json(msg=str(exc), written=written, removed=removed)
    module.exit_json(changed=bool(written or removed), written=written, removed=sorted(removed))


if __name__ == "__main__":
    main()
