#!/usr/bin/python
"""Ansible module kailash_files: many small files and directories in one task."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kailash_files
short_description: Write a role's files and directories in one task
description:
  - Ensures a list of directories and a list of files with given text content, mode and
    ownership, in a single module run. It replaces one C(ansible.builtin.file) or
    C(ansible.builtin.copy) task per file, which costs a module round trip each (about
    0.3 to 0.5 s on a local connection; a role writes five to ten files per run).
  - A file is rewritten only when its content differs, atomically (a temporary file in the
    same directory, created with mode 0600, chowned and chmodded, then renamed over the old
    one), so a reader never sees a partial file and a secret is never readable by others,
    not even for a moment. Mode and ownership alone are fixed in place.
  - Directories are created with their parents (like C(ansible.builtin.file) with
    C(state=directory)); the given mode and ownership apply to the named directory only.
  - Supports check mode (reports what would change, changes nothing) and diff mode (the
    before and after text of each changed file of O(files); O(secret_files) only say that
    they changed).
version_added: "1.0.0"
author:
  - kailash-deploy
options:
  directories:
    description: Directories to ensure, in order (parents before children).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path.
        type: path
        required: true
      mode:
        description: Octal mode as a string, for example V('0750').
        type: str
        required: true
      owner:
        description: User name or numeric uid; omitted leaves the owner as it is.
        type: str
      group:
        description: Group name or numeric gid; omitted leaves the group as it is.
        type: str
  files:
    description:
      - Files to ensure, in order.
      - Their directories must exist or be listed in O(directories).
    type: list
    elements: dict
    default: []
    suboptions: &kailash_files_file
      path:
        description: Absolute path.
        type: path
        required: true
      content:
        description: The whole text of the file, written as UTF-8 (no newline is added).
        type: str
        required: true
      mode:
        description: Octal mode as a string, for example V('0400').
        type: str
        required: true
      owner:
        description:
          - User name or numeric uid.
          - Omitted, an existing file keeps its owner; a new one gets the module's user.
        type: str
      group:
        description: Group name or numeric gid; omitted leaves the group as it is.
        type: str
  secret_files:
    description:
      - Files whose content is a secret, written after O(files), with the same suboptions.
      - Their content is declared C(no_log) to Ansible (never printed, not even with
        C(-vvv), and scrubbed from any output), and never appears in the diff.
    type: list
    elements: dict
    default: []
    # the same suboptions as files (content declared no_log)
    suboptions: *kailash_files_file
  stat:
    description:
      - Paths to look at, read-only, before anything is written; the result RV(stat) has
        whether each exists and the SHA-256 of its content (one task instead of a
        C(ansible.builtin.stat) loop).
    type: list
    elements: path
    default: []
  stat_checksum:
    description:
      - The hash function of the checksums of O(stat) (V(sha1) as C(ansible.builtin.stat)
        computes by default, for a recipe hash that was made of those).
    type: str
    choices: [sha256, sha1]
    default: sha256
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
notes:
  - Compares bytes, not checksums, as the files are small (configurations, certificates, secrets).
seealso:
  - module: ansible.builtin.copy
  - module: ansible.builtin.file
"""

EXAMPLES = r"""
- name: Write postgresql.conf and pg_hba.conf, readable by the postgres user only
  kailash_files:
    directories:
      - {path: /opt/kailash/kailash/postgresql, mode: "0750"}
    files:
      - path: /opt/kailash/kailash/postgresql/postgresql.conf
        content: "{{ conf }}"
        mode: "0400"
        owner: "999"
        group: "999"
      - path: /opt/kailash/kailash/postgresql/pg_hba.conf
        content: "{{ hba }}"
        mode: "0400"
        owner: "999"
        group: "999"

- name: Write a config and a password file (the password is never printed nor diffed)
  kailash_files:
    files:
      - {path: /opt/kailash/kailash/redis/redis.conf, content: "{{ conf }}", mode: "0400"}
    secret_files:
      - {path: /opt/kailash/kailash/secrets/redis_password, content: "{{ password }}", mode: "0400"}
"""

RETURN = r"""
stat:
  description:
    - For each path of O(stat), whether it exists, whether it is a regular file, a
      directory or a socket (following symbolic links), its numeric owner and group when
      it exists, and the SHA-256 (or O(stat_checksum)) of its content (null unless a
      regular file).
  returned: always
  type: dict
  sample:
    /opt/kailash/kailash/secret-store/edge/ca.crt:
      exists: true
      isreg: true
      isdir: false
      issock: false
      uid: 0
      gid: 0
      checksum: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
changed_paths:
  description: The directories and files that were (in check mode, would be) created or changed.
  returned: always
  type: list
  elements: str
  sample: [/opt/kailash/kailash/postgresql/postgresql.conf]
"""

import grp  # noqa: E402
import hashlib  # noqa: E402
import os  # noqa: E402
import pwd  # noqa: E402
import stat  # noqa: E402
import tempfile  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402


def _uid(value: str | None) -> int:
    if value is None or value == "":
        return -1
    if value.isdigit():
        return int(value)
    return pwd.getpwnam(value).pw_uid


def _gid(value: str | None) -> int:
    if value is None or value == "":
        return -1
    if value.isdigit():
        return int(value)
    return grp.getgrnam(value).gr_gid


def _mode(module: AnsibleModule, value: str, where: str) -> int:
    try:
        mode = int(str(value), 8)
    except ValueError:
        module.fail_json(msg=f"{where}: mode must be an octal string such as '0640', got {value!r}")
    if not 0 <= mode <= 0o7777:
        module.fail_json(msg=f"{where}: mode out of range, got {value!r}")
    return mode


def _needs_attrs(st: os.stat_result, mode: int, uid: int, gid: int) -> bool:
    return (
        stat.S_IMODE(st.st_mode) != mode
        or (uid != -1 and st.st_uid != uid)
        or (gid != -1 and st.st_gid != gid)
    )


def _ensure_directory(module, spec, changed, diffs) -> None:
    path = spec["path"]
    mode = _mode(module, spec["mode"], path)
    uid, gid = _uid(spec.get("owner")), _gid(spec.get("group"))
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISDIR(st.st_mode):
        module.fail_json(msg=f"{path} exists and is not a directory")
    if st is not None and not _needs_attrs(st, mode, uid, gid):
        return
    changed.append(path)
    diffs.append({
        "before_header": path,
        "after_header": path,
        "before": {"path": path, "state": "absent" if st is None else "directory",
                   **({} if st is None else {"mode": f"{stat.S_IMODE(st.st_mode):04o}"})},
        "after": {"path": path, "state": "directory", "mode": f"{mode:04o}"},
    })
    if module.check_mode:
        return
    if st is None:
        os.makedirs(path, exist_ok=True)
    os.chown(path, uid, gid)
    os.chmod(path, mode)


def _ensure_file(module, spec, changed, diffs, secret: bool = False) -> None:
    path = spec["path"]
    data = spec["content"].encode("utf-8")
    mode = _mode(module, spec["mode"], path)
    uid, gid = _uid(spec.get("owner")), _gid(spec.get("group"))
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        module.fail_json(msg=f"{path} exists and is not a regular file")
    before = None
    if st is not None:
        with open(path, "rb") as handle:
            before = handle.read()
    same_content = before == data
    if same_content and not _needs_attrs(st, mode, uid, gid):
        return
    changed.append(path)
    if not same_content:
        entry = {"before_header": path, "after_header": path}
        if secret:
            entry.update(before="" if before is None else "(secret, not shown)\n",
                         after="(secret, not shown)\n")
        else:
            entry.update(before="" if before is None else before.decode("utf-8", "replace"),
                         after=spec["content"])
        diffs.append(entry)
    else:
        diffs.append({
            "before_header": path,
            "after_header": path,
            "before": {"path": path, "mode": f"{stat.S_IMODE(st.st_mode):04o}",
                       "owner": st.st_uid, "group": st.st_gid},
            "after": {"path": path, "mode": f"{mode:04o}",
                      "owner": st.st_uid if uid == -1 else uid,
                      "group": st.st_gid if gid == -1 else gid},
        })
    if module.check_mode:
        return
    if same_content:
        os.chown(path, uid, gid)
        os.chmod(path, mode)
        return
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        module.fail_json(
            msg=f"{path}: its directory {directory} does not exist (list it in directories)"
        )
    fd, tmp = tempfile.mkstemp(prefix=".kailash-", dir=directory)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        # the old file's owner when none is given (as copy keeps it), else the process's
        keep_uid = st.st_uid if (uid == -1 and st is not None) else uid
        keep_gid = st.st_gid if (gid == -1 and st is not None) else gid
        os.chown(tmp, keep_uid, keep_gid)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _stat(path: str, algorithm: str = "sha256") -> dict:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return {"exists": False, "checksum": None, "isreg": False, "isdir": False,
                "issock": False}
    kind = {"isreg": stat.S_ISREG(st.st_mode), "isdir": stat.S_ISDIR(st.st_mode),
            "issock": stat.S_ISSOCK(st.st_mode), "uid": st.st_uid, "gid": st.st_gid}
    if not kind["isreg"]:
        return {"exists": True, "checksum": None, **kind}
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return {"exists": True, "checksum": digest.hexdigest(), **kind}


def main() -> None:
    file_options = {
        "path": {"type": "path", "required": True},
        "content": {"type": "str", "required": True},
        "mode": {"type": "str", "required": True},
        "owner": {"type": "str"},
        "group": {"type": "str"},
    }
    module = AnsibleModule(
        argument_spec={
            "directories": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "path": {"type": "path", "required": True},
                    "mode": {"type": "str", "required": True},
                    "owner": {"type": "str"},
                    "group": {"type": "str"},
                },
            },
            "files": {"type": "list", "elements": "dict", "default": [], "options": file_options},
            "secret_files": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {**file_options,
                            "content": {"type": "str", "required": True, "no_log": True}},
            },
            "stat": {"type": "list", "elements": "path", "default": []},
            "stat_checksum": {"type": "str", "choices": ["sha256", "sha1"], "default": "sha256"},
        },
        supports_check_mode=True,
    )
    changed: list[str] = []
    diffs: list[dict] = []
    try:
        algorithm = module.params["stat_checksum"]
        stats = {path: _stat(path, algorithm) for path in module.params["stat"]}
        for spec in module.params["directories"]:
            _ensure_directory(module, spec, changed, diffs)
        for spec in module.params["files"]:
            _ensure_file(module, spec, changed, diffs)
        for spec in module.params["secret_files"]:
            _ensure_file(module, spec, changed, diffs, secret=True)
    except (OSError, KeyError) as exc:
        module.fail_json(msg=f"kailash_files: {exc}", changed_paths=changed)
    result = {"changed": bool(changed), "changed_paths": changed, "stat": stats}
    if module._diff and diffs:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
