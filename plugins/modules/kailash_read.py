#!/usr/bin/python
"""Ansible module kailash_read: stat paths, read files and run read-only commands in one task."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kailash_read
short_description: Read a host's state in one task (paths, small files, read-only commands)
description:
  - Looks at everything a role needs to decide whether it has anything to do, in a single
    module run. It replaces one C(ansible.builtin.stat), C(ansible.builtin.slurp) or
    C(ansible.builtin.command) task per item, each of which costs a module round trip
    (about 0.3 to 0.5 s on a local connection).
  - Commands run at the same time (one thread each), so the task takes as long as the
    slowest of them, not their sum.
  - It never changes anything; it runs the same in check mode. Roles compare what it
    returns with what they would write and skip the writing tasks when both agree, so an
    idempotent run executes few modules.
  - Use C(no_log) on the task when a file read may hold a secret.
version_added: "1.0.0"
author:
  - kailash-deploy
options:
  stat:
    description:
      - Paths to look at (they need not exist). Symbolic links are not followed.
    type: list
    elements: path
    default: []
  read:
    description:
      - Files to read as UTF-8 text (invalid bytes replaced). A missing file reads as null.
      - At most O(max_size) bytes are read; larger files fail the task.
    type: list
    elements: path
    default: []
  checksum:
    description:
      - Files to checksum (the hash of O(checksum_algorithm) of the content). A path that
        is not a regular file gets null.
    type: list
    elements: path
    default: []
  checksum_algorithm:
    description:
      - The hash function of O(checksum) (V(sha1) as C(ansible.builtin.stat) computes by
        default; V(sha256) as M(kailash_files) does).
    type: str
    choices: [sha1, sha256]
    default: sha1
  urls:
    description:
      - URLs to probe with a GET, by name, at the same time as the commands. The result is
        the HTTP status (any status, 401 included) or -1 with the error when none came.
    type: dict
    default: {}
  commands:
    description:
      - Read-only commands to run, by name. Each value is an argument vector (no shell).
      - A command that cannot be started (not installed) gets return code 127.
    type: dict
    default: {}
  timeout:
    description:
      - Seconds each command may run before it is killed (return code -9), and each URL
        probe may wait for an answer.
    type: int
    default: 30
  max_size:
    description: The largest file O(read) accepts, in bytes.
    type: int
    default: 1048576
notes:
  - Supports check mode (it reads only) and never reports a change.
seealso:
  - module: kailash_files
"""

EXAMPLES = r"""
- name: Read what the role would otherwise look at in six tasks
  kailash_read:
    stat: [/run/systemd/system, /etc/docker]
    read: [/etc/docker/daemon.json, /proc/sys/vm/overcommit_memory]
    commands:
      docker_info: [docker, info, --format, "{{ '{{' }}.ServerVersion{{ '}}' }}"]
      compose: [docker, compose, version, --short]
  register: host_state

- name: Write daemon.json only when it differs
  ansible.builtin.copy:
    dest: /etc/docker/daemon.json
    content: "{{ wanted }}"
    mode: "0644"
  when: host_state.files['/etc/docker/daemon.json'] != wanted
"""

RETURN = r"""
stat:
  description: Per path of O(stat), what was found.
  returned: always
  type: dict
  sample:
    /etc/docker:
      exists: true
      isdir: true
      isreg: false
      islnk: false
      lnk_source: null
      mode: "0755"
      size: 4096
files:
  description: Per path of O(read), its text, or null when it does not exist.
  returned: always
  type: dict
  sample:
    /proc/sys/vm/overcommit_memory: "1\n"
commands:
  description: Per name of O(commands), its return code and output (stdout and stderr as text).
  returned: always
  type: dict
  sample:
    compose:
      rc: 0
      stdout: "2.26.1"
      stderr: ""
checksums:
  description: Per path of O(checksum), the hash of its content, or null.
  returned: always
  type: dict
  sample:
    /etc/ssl/certs/ca-certificates.crt: 0b5e3bba4d7c5b2d3fe4bb7a0c6c8d1e2f3a4b5c
urls:
  description: Per name of O(urls), the HTTP status and, when no answer came, the error.
  returned: always
  type: dict
  sample:
    registry:
      status: -1
      msg: "<urlopen error [Errno -3] Temporary failure in name resolution>"
"""

import hashlib  # noqa: E402
import os  # noqa: E402
import stat as stat_mod  # noqa: E402
import subprocess  # noqa: E402
import urllib.error  # noqa: E402
import urllib.request  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402


def stat_path(path):
    """What a path is, without following a symbolic link."""
    try:
        st = os.lstat(path)
    except OSError:
        return {"exists": False, "isdir": False, "isreg": False, "islnk": False, "lnk_source": None,
                "mode": None, "size": None}
    islnk = stat_mod.S_ISLNK(st.st_mode)
    return {
        "exists": True,
        "isdir": stat_mod.S_ISDIR(st.st_mode),
        "isreg": stat_mod.S_ISREG(st.st_mode),
        "islnk": islnk,
        "lnk_source": os.path.realpath(path) if islnk else None,
        "mode": f"{stat_mod.S_IMODE(st.st_mode):04o}",
        "size": st.st_size,
    }


def read_text(path, max_size):
    """A file's text, None when it does not exist; ValueError when it is too large."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(max_size + 1)
    except FileNotFoundError:
        return None
    if len(data) > max_size:
        raise ValueError(f"{path} is larger than max_size ({max_size} bytes)")
    return data.decode("utf-8", errors="replace")


def run_command(argv, timeout):
    """Run one argument vector; its return code and text output."""
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
    except FileNotFoundError as exc:
        return {"rc": 127, "stdout": "", "stderr": str(exc)}
    except subprocess.TimeoutExpired:
        return {"rc": -9, "stdout": "", "stderr": f"timed out after {timeout} s"}
    return {"rc": proc.returncode,
            "stdout": proc.stdout.decode("utf-8", errors="replace").rstrip("\n"),
            "stderr": proc.stderr.decode("utf-8", errors="replace").rstrip("\n")}


def checksum(path, algorithm="sha1"):
    """The hash of a regular file's content, None otherwise."""
    try:
        if not stat_mod.S_ISREG(os.stat(path).st_mode):
            return None
        digest = hashlib.new(algorithm)
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 16), b""):
                digest.update(block)
        return digest.hexdigest()
    except OSError:
        return None


def probe_url(url, timeout):
    """The HTTP status of a GET, or -1 and the error when no answer came."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (URLs from the role)
            return {"status": resp.status, "msg": ""}
    except urllib.error.HTTPError as exc:
        return {"status": exc.code, "msg": str(exc)}
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return {"status": -1, "msg": str(exc)}


def run_all(commands, urls, timeout):
    """Run every command and probe every URL at once; results by name."""
    if not commands and not urls:
        return {}, {}
    with ThreadPoolExecutor(max_workers=min(len(commands) + len(urls), 16)) as pool:
        cmd_futures = {name: pool.submit(run_command, [str(a) for a in argv], timeout)
                       for name, argv in commands.items()}
        url_futures = {name: pool.submit(probe_url, url, timeout) for name, url in urls.items()}
        return ({name: fut.result() for name, fut in cmd_futures.items()},
                {name: fut.result() for name, fut in url_futures.items()})


def main():
    module = AnsibleModule(
        argument_spec={
            "stat": {"type": "list", "elements": "path", "default": []},
            "read": {"type": "list", "elements": "path", "default": []},
            "checksum": {"type": "list", "elements": "path", "default": []},
            "checksum_algorithm": {"type": "str", "default": "sha1", "choices": ["sha1", "sha256"]},
            "urls": {"type": "dict", "default": {}},
            "commands": {"type": "dict", "default": {}},
            "timeout": {"type": "int", "default": 30},
            "max_size": {"type": "int", "default": 1048576},
        },
        supports_check_mode=True,
    )
    p = module.params
    for name, argv in p["commands"].items():
        if not isinstance(argv, list) or not argv:
            module.fail_json(
                msg=f"commands.{name} must be a non-empty list (an argument vector), got {argv!r}")
    try:
        files = {path: read_text(path, p["max_size"]) for path in p["read"]}
    except (OSError, ValueError) as exc:
        module.fail_json(msg=f"cannot read: {exc}")
    commands, urls = run_all(p["commands"], p["urls"], p["timeout"])
    module.exit_json(
        changed=False,
        stat={path: stat_path(path) for path in p["stat"]},
        files=files,
        checksums={path: checksum(path, p["checksum_algorithm"]) for path in p["checksum"]},
        commands=commands,
        urls=urls,
    )


if __name__ == "__main__":
    main()
