"""The sets under a backup root: naming, listing, retention, stale partials, and the
manifest (written last, checked before any restore)."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from typing import Any

from .common import (
    FORMAT_VERSION,
    PARTIAL_PREFIX,
    SET_NAME_RE,
    BackupError,
    fsync_dir,
    sha256_file,
)
from .crypto import key_id


def list_sets(root: str) -> list[str]:
    """Promoted set names, oldest first."""
    if not os.path.isdir(root):
        return []
    return sorted(
        n
        for n in os.listdir(root)
        if SET_NAME_RE.match(n) and os.path.isfile(os.path.join(root, n, "manifest.json"))
    )


def resolve_set(root: str, name: str | None) -> str:
    sets = list_sets(root)
    if not name or name == "latest":
        if not sets:
            raise BackupError(f"no backup set under {root}")
        return os.path.join(root, sets[-1])
    path = name if os.path.isabs(name) else os.path.join(root, name)
    if not os.path.isfile(os.path.join(path, "manifest.json")):
        raise BackupError(f"{path}: no manifest.json (not a promoted backup set)")
    return path


def remove_stale_partials(root: str) -> list[str]:
    """Remove partial directories of runs that died without cleaning up (SIGKILL, power
    loss): those whose process no longer exists on this host. Never a promoted set."""
    removed = []
    for name in os.listdir(root):
        if not name.startswith(PARTIAL_PREFIX):
            continue
        pid = name.rsplit("-", 1)[-1]
        # our own pid cannot be a run in progress (a pod's backup is often pid 1 every time)
        alive = pid.isdigit() and int(pid) != os.getpid() and os.path.exists(f"/proc/{pid}")
        if not alive:
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
            removed.append(name)
    return removed


def retention_plan(
    names: list[str], keep_last: int, keep_daily: int, keep_weekly: int
) -> list[str]:
    """Set names to delete: keep the newest ``keep_last``, plus the newest set of each of
    the last ``keep_daily`` days and ``keep_weekly`` ISO weeks that have sets."""
    newest_first = sorted(names, reverse=True)
    keep = set(newest_first[:keep_last])
    days: dict[str, str] = {}
    weeks: dict[str, str] = {}
    for name in newest_first:
        stamp = dt.datetime.strptime(name[:16], "%Y%m%dT%H%M%SZ")
        days.setdefault(stamp.strftime("%Y-%m-%d"), name)
        iso_year, iso_week, _ = stamp.isocalendar()
        weeks.setdefault(f"{iso_year}-{iso_week:02d}", name)
    keep.update(list(days.values())[:keep_daily])
    keep.update(list(weeks.values())[:keep_weekly])
    return [n for n in sorted(names) if n not in keep]


def verify_set(
    set_dir: str, secret: str | None = None, services: list[str] | None = None
) -> dict[str, Any]:
    """Check the manifest and every file (size + sha256) without changing anything.

    Raises BackupError naming the first bad file; returns the manifest."""
    mpath = os.path.join(set_dir, "manifest.json")
    try:
        with open(mpath, encoding="utf-8") as fh:
            manifest = json.load(fh)
    except (OSError, ValueError) as exc:
        raise BackupError(f"{mpath}: unreadable manifest ({exc})") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(f"{mpath}: unsupported format_version {manifest.get('format_version')!r}")
    if manifest.get("encryption", "none") != "none":
        if not secret:
            raise BackupError(f"{set_dir}: the set is encrypted; give the encryption key")
        if key_id(secret) != manifest.get("key_id"):
            raise BackupError(
                f"{set_dir}: the encryption key given is not the one the set was made "
                f"with (key id {key_id(secret)} != {manifest.get('key_id')})"
            )
    for svc, section in manifest.get("services", {}).items():
        if services and svc not in services:
            continue
        for entry in section.get("files", []):
            path = os.path.join(set_dir, entry["path"])
            if not os.path.isfile(path):
                raise BackupError(f"{path}: missing from the set")
            size, digest = sha256_file(path)
            if size != entry["size"]:
                raise BackupError(
                    f"{path}: size {size} != {entry['size']} in the manifest (truncated?)"
                )
            if digest != entry["sha256"]:
                raise BackupError(
                    f"{path}: sha256 mismatch (corrupted): {digest} != {entry['sha256']}"
                )
    return manifest


def check_written(set_dir: str, manifest: dict[str, Any]) -> None:
    """Every file re-read from disk and compared with what was hashed while writing."""
    for section in manifest["services"].values():
        for entry in section["files"]:
            size, digest = sha256_file(os.path.join(set_dir, entry["path"]))
            if (size, digest) != (entry["size"], entry["sha256"]):
                raise BackupError(f"{entry['path']}: changed on disk while the set was written")


def write_manifest(set_dir: str, manifest: dict[str, Any]) -> None:
    """manifest.json, written last (a set without it is not a set), fsynced, renamed."""
    mtmp = os.path.join(set_dir, "manifest.json.tmp")
    with open(mtmp, "w", encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=2, sort_keys=True)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.rename(mtmp, os.path.join(set_dir, "manifest.json"))


def fsync_set(set_dir: str) -> None:
    for dirpath, _dirs, _files in os.walk(set_dir):
        fsync_dir(dirpath)
