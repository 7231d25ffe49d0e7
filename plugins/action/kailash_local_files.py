"""Action plugin kailash_local_files: files on the control node, in the controller's process.

The module of the same name (plugins/modules/kailash_local_files.py) documents it. Running
here, not as a module, saves the module round trip (about 0.3-0.5 s per task): reports and
notes the playbooks write next to the checkout.
"""

from __future__ import annotations

import os
import stat
import tempfile
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase


def ensure_directory(path: str, mode: int, check: bool) -> bool:
    """Create ``path`` (and parents) with ``mode``; True when something changed."""
    if os.path.isdir(path):
        if stat.S_IMODE(os.stat(path).st_mode) == mode:
            return False
        if not check:
            os.chmod(path, mode)
        return True
    if not check:
        os.makedirs(path, exist_ok=True)
        os.chmod(path, mode)
    return True


def ensure_file(path: str, content: str, mode: int, check: bool) -> bool:
    """Write ``content`` to ``path`` atomically when it differs; True when something changed."""
    data = content.encode("utf-8")
    try:
        with open(path, "rb") as fh:
            same = fh.read() == data
        same_mode = stat.S_IMODE(os.stat(path).st_mode) == mode
    except FileNotFoundError:
        same, same_mode = False, False
    if same and same_mode:
        return False
    if check:
        return True
    if same:
        os.chmod(path, mode)
        return True
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".kailash-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return True


class ActionModule(ActionBase):
    """Write the given directories and files on the control node."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("directories", "files"))

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        args = self._task.args
        check = bool(self._task.check_mode)
        changed: list[str] = []
        try:
            for item in args.get("directories") or []:
                if ensure_directory(str(item["path"]), int(str(item["mode"]), 8), check):
                    changed.append(str(item["path"]))
            for item in args.get("files") or []:
                if ensure_file(str(item["path"]), str(item["content"]), int(str(item["mode"]), 8),
                               check):
                    changed.append(str(item["path"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise AnsibleActionFail(
                f"kailash_local_files: each directory needs path and mode, each file path, "
                f"content and mode (octal string): {exc}") from exc
        except OSError as exc:
            raise AnsibleActionFail(f"kailash_local_files: {exc}") from exc
        result.update(changed=bool(changed), changed_paths=changed)
        return result
