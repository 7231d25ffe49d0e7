"""Filters that let a converge skip module runs whose outcome is already known.

They run in the controller's process and read the control node's files (a module run
costs 0.3-0.5 s; a re-run of the dev stack that changes nothing ran dozens of them).

``kailash_build_context(path)`` lists a build context on the control node the way the
``ansible.builtin.find`` task it replaces did (``recurse: true``, ``file_type: file``,
``hidden: true``, ``excludes: ["*.pyc", "*.md"]``, ``get_checksum: true``): every regular
file under ``path`` (symbolic links are not followed nor listed), except those whose name
matches an excluded pattern, as sorted ``[path relative to the context, SHA-1 of its
content]`` pairs. The recipe label of a service image is a hash of that list, so the
result must stay exactly what the find task gave (images built before keep their recipe).

``kailash_local_digest(paths)`` is the state of files and directories on the control node:
for each path its type, mode, owner, group and the SHA-256 of a file's content, or
``None`` when it does not exist. roles/edge/tasks/tls.yml compares it with the state its
certificate checks left last time (``kailash_local_read`` reads that note, ``""`` when
there is none).

``kailash_local_stat(paths)`` is what ``kailash_files``' ``stat`` option returns (exists,
isreg, SHA-256 checksum), plus ``isdir`` and ``mode``, for the control node's files, read in
the controller's process: roles/kailash_secrets looks at its store this way.

``kailash_stale_health_checks(containers)`` takes ``docker inspect`` output and returns the
running containers whose health monitor stopped, as ``{id: seconds since the last check
started}``: Docker before 23 no longer runs the health checks of the containers a dockerd
restarted with live-restore kept running (moby#41871), and their status stays as it was.
"""


from __future__ import annotations

import fnmatch
import hashlib
import os
import stat
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # pragma: no cover - unit tests without Ansible
    AnsibleFilterError = ValueError  # type: ignore[misc,assignment]

CONTEXT_EXCLUDES = ("*.pyc", "*.md")


def _sha1(path: str) -> str:
    digest = hashlib.sha1()  # noqa: S324 - a content fingerprint, as find's get_checksum
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def kailash_build_context(path: str, excludes: Sequence[str] = CONTEXT_EXCLUDES) -> list[list[str]]:
    """Sorted [relative path, sha1] of every regular file of a build context."""
    root = os.path.normpath(str(path))
    if not os.path.isdir(root):
        raise AnsibleFilterError(f"kailash_build_context: {path!r} is not a directory")
    out: list[list[str]] = []
    for top, dirs, files in os.walk(root, followlinks=False):
        for name in files + dirs:
            full = os.path.normpath(os.path.join(top, name))
            if not stat.S_ISREG(os.lstat(full).st_mode):
                continue
            if any(fnmatch.fnmatch(name, pattern) for pattern in excludes):
                continue
            out.append([os.path.relpath(full, root), _sha1(full)])
    return sorted(out)


def kailash_local_digest(paths: list[str]) -> list[list[Any]]:
    """[path, type, mode, uid, gid, sha256 of a file's content] per path; [path, None] if absent."""
    out: list[list[Any]] = []
    for path in paths:
        try:
            meta = os.lstat(path)
            content = None
            if stat.S_ISREG(meta.st_mode):
                with open(path, "rb") as fh:
                    content = hashlib.sha256(fh.read()).hexdigest()
        except FileNotFoundError:
            out.append([path, None])
            continue
        except OSError as err:  # unreadable: never equal to a state noted before
            out.append([path, f"error {err.errno}"])
            continue
        out.append([path, stat.S_IFMT(meta.st_mode), stat.S_IMODE(meta.st_mode), meta.st_uid,
                    meta.st_gid, content])
    return out


def kailash_local_stat(paths: list[str]) -> dict[str, dict[str, Any]]:
    """Per path what kailash_files' stat option returns, plus isdir and mode ("0700")."""
    out: dict[str, dict[str, Any]] = {}
    for path in paths:
        try:
            meta = os.stat(path)
        except FileNotFoundError:
            out[path] = {"exists": False, "checksum": None, "isreg": False, "isdir": False,
                         "mode": None}
            continue
        checksum = None
        if stat.S_ISREG(meta.st_mode):
            digest = hashlib.sha256()
            with open(path, "rb") as fh:
                for block in iter(lambda fh=fh: fh.read(1 << 16), b""):
                    digest.update(block)
            checksum = digest.hexdigest()
        out[path] = {"exists": True, "checksum": checksum, "isreg": stat.S_ISREG(meta.st_mode),
                     "isdir": stat.S_ISDIR(meta.st_mode),
                     "mode": f"{stat.S_IMODE(meta.st_mode):04o}"}
    return out


def kailash_local_read(path: str) -> str:
    """The text of a file on the control node, "" when it does not exist."""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError:
        return ""



def kailash_find_meta(text: str) -> dict[str, dict[str, Any]]:
    """path -> {type, mode, uid, gid} from ``find -printf '%y %m %U %G %p\\n'`` output."""
    out: dict[str, dict[str, Any]] = {}
    for line in (text or "").splitlines():
        parts = line.split(" ", 4)
        if len(parts) != 5 or not parts[4].startswith("/"):
            continue
        kind, mode, uid, gid, path = parts
        try:
            out[path] = {"type": kind, "mode": int(mode, 8), "uid": int(uid), "gid": int(gid)}
        except ValueError:
            continue
    return out


def _content_sha256(content: Any) -> str:
    """The SHA-256 of a file's text as kailash_files writes it (UTF-8, nothing added)."""
    return hashlib.sha256(str(content).encode("utf-8")).hexdigest()


def _meta_matches(now: dict[str, Any] | None, kind: str, spec: dict[str, Any]) -> bool:
    if not now or now["type"] != kind or now["mode"] != int(str(spec["mode"]), 8):
        return False
    for key, field in (("owner", "uid"), ("group", "gid")):
        want = spec.get(key)
        if want in (None, ""):
            continue
        # a name would need the Docker host's user database: not known here, not current
        if not str(want).isdigit() or int(want) != now[field]:
            return False
    return True


def kailash_files_current(live_meta: dict[str, Any], live_sums: dict[str, str],
                          spec: dict[str, Any]) -> bool:
    """True when a kailash_files task would change nothing, per what preflight read.

    ``spec`` is the task's arguments (directories, files, secret_files). ``live_meta``
    (kailash_find_meta) and ``live_sums`` (path -> SHA-256) describe the
    stack directory before any role wrote to it. Every directory must exist with its mode
    (and numeric owner and group when given), every file must have the SHA-256 of its
    content, its mode and ownership. Anything unknown (a path outside what was read, an
    owner given by name) is not current: the task then runs and decides itself.
    """
    if not live_meta or set(spec) - {"directories", "files", "secret_files"}:
        return False
    for item in spec.get("directories") or ():
        if not _meta_matches(live_meta.get(item["path"]), "d", item):
            return False
    for item in list(spec.get("files") or ()) + list(spec.get("secret_files") or ()):
        if not _meta_matches(live_meta.get(item["path"]), "f", item):
            return False
        if live_sums.get(item["path"]) != _content_sha256(item["content"]):
            return False
    return True


def kailash_check_current(check_files: Sequence[dict[str, Any]], live_sums: dict[str, str]) -> bool:
    """True when every file of a config check (kailash_stack's config_check: dest, content)
    has, per the stack preflight's read, the SHA-256 of its rendered content already (the
    check ran when it was written, and a file that differs is checked again)."""
    if not live_sums:
        return False
    return all(live_sums.get(f["dest"]) == _content_sha256(f["content"]) for f in check_files)


def kailash_controller_uid(_: Any = None) -> int:
    """The control node's user id (inventories/local: root needs no sudo)."""
    return os.getuid()


def _docker_time(text: str) -> float:
    """Seconds since the epoch of a Docker timestamp (RFC 3339, nanoseconds, UTC)."""
    return datetime.fromisoformat(text[:19]).replace(tzinfo=UTC).timestamp()


def kailash_stale_health_checks(containers: Sequence[dict[str, Any]],
                                now: float | None = None) -> dict[str, int]:
    """Running containers with a health check none of which started for longer than a
    monitor that runs can be late: it starts a check ``interval`` after the previous one
    ended, a check ends within ``timeout`` (Docker's default 30 s each where unset); stale
    after ``2 * interval + timeout + 20`` s. Paused containers and those started (or
    without a check logged) within that time are left out."""
    now = time.time() if now is None else now
    stale = {}
    for c in containers:
        state, check = c.get("State") or {}, (c.get("Config") or {}).get("Healthcheck") or {}
        log = (state.get("Health") or {}).get("Log") or []
        if state.get("Status") != "running" or state.get("Paused") or not log:
            continue
        interval = (check.get("Interval") or 30e9) / 1e9
        limit = 2 * interval + (check.get("Timeout") or 30e9) / 1e9 + 20
        age = now - _docker_time(log[-1]["Start"])
        if age > limit and now - _docker_time(state["StartedAt"]) > limit:
            stale[c["Id"]] = int(age)
    return stale


class FilterModule:
    """Ansible filter plugin entry point."""

    def filters(self) -> dict[str, Any]:
        return {
            "kailash_build_context": kailash_build_context,
            "kailash_check_current": kailash_check_current,
            "kailash_controller_uid": kailash_controller_uid,
            "kailash_files_current": kailash_files_current,
            "kailash_find_meta": kailash_find_meta,
            "kailash_local_digest": kailash_local_digest,
            "kailash_local_read": kailash_local_read,
            "kailash_local_stat": kailash_local_stat,
            "kailash_stale_health_checks": kailash_stale_health_checks,
        }
