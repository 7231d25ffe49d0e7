"""The runs: ``Settings``, and a backup, a restore, an artefact's extraction."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .artefacts import Ctx, read_artefact
from .common import FORMAT_VERSION, PARTIAL_PREFIX, BackupError, fsync_dir, iso, set_name, utcnow
from .crypto import derive_key, key_id
from .datastores import SERVICES, compare_counts, handler_class, make_target
from .sets import (
    check_written,
    fsync_set,
    list_sets,
    remove_stale_partials,
    resolve_set,
    retention_plan,
    verify_set,
    write_manifest,
)
from .targets import DockerTarget, Target


@dataclass
class Settings:
    backup_root: str
    project: str = "kailash"
    backend: str = "docker"
    services: list[str] = field(default_factory=lambda: list(SERVICES))
    datastores: dict[str, dict[str, Any]] = field(default_factory=dict)
    compress: bool = False
    encryption_key: str | None = None
    label: str = ""
    keep_last: int = 7
    keep_daily: int = 7
    keep_weekly: int = 4
    docker: str = "docker"
    skip_missing: bool = True
    work_dir: str | None = None  # local drill: scratch space (default: the temp dir)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and v is not None}
        return cls(**known)


def plan_targets(s: Settings) -> tuple[dict[str, Target], list[str]]:
    targets: dict[str, Target] = {}
    missing: list[str] = []
    for svc in s.services:
        handler_class(svc)  # BackupError for an unknown service
        target = make_target(svc, s.datastores.get(svc) or {}, s.backend, s.project, s.docker)
        if target is None:
            missing.append(svc)
        else:
            targets[svc] = target
    if missing and not s.skip_missing:
        raise BackupError(f"not deployed: {', '.join(missing)}")
    return targets, missing


def _manifest_head(
    s: Settings, name: str, started: dt.datetime, missing: list[str]
) -> dict[str, Any]:
    """The manifest of a run before any service is backed up (MANIFEST_SCHEMA)."""
    return {
        "format_version": FORMAT_VERSION,
        "name": name,
        "project": s.project,
        "label": s.label,
        "created_at": iso(started),
        "backend": s.backend,
        "compression": "gzip" if s.compress else "none",
        "encryption": "aes-256-gcm" if s.encryption_key else "none",
        "key_id": key_id(s.encryption_key) if s.encryption_key else None,
        "tool": {
            "name": "kailash_backup",
            "python": sys.version.split()[0],
            "host": os.uname().nodename,
        },
        "skipped_services": missing,
        "services": {},
    }


def _backup_service(
    svc: str, target: Target, s: Settings, partial: str, log: Callable[[str], None]
) -> dict[str, Any]:
    """One service backed up into the partial set: its manifest section."""
    handler = handler_class(svc)(target, s.datastores.get(svc) or {})
    ctx = Ctx(partial, s.compress, s.encryption_key, log)
    t1 = time.monotonic()
    log(f"{svc}: backing up ({target.describe()})")
    section = {"target": target.describe(), "started_at": iso(utcnow())}
    section.update(handler.versions())
    details = handler.backup(ctx)
    section["counts"] = details.pop("counts")
    section["counts_exact"] = details.pop("counts_exact", True)
    section["method"] = details.pop("method", section.get("method", "native dump"))
    section["details"] = details
    section["files"] = ctx.files
    section["duration_s"] = round(time.monotonic() - t1, 3)
    return section


def _apply_retention(s: Settings, name: str) -> list[str]:
    deleted = []
    for old in retention_plan(list_sets(s.backup_root), s.keep_last, s.keep_daily, s.keep_weekly):
        if old != name:
            shutil.rmtree(os.path.join(s.backup_root, old))
            deleted.append(old)
    return deleted


def backup(
    s: Settings,
    check_mode: bool = False,
    log: Callable[[str], None] = lambda m: None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """One backup run. Writes into a partial directory, promotes it by rename when every
    service succeeded and every file is checksummed; a failure removes the partial
    directory and leaves every earlier set as it was."""
    targets, missing = plan_targets(s)
    if not targets:
        raise BackupError(f"nothing to back up: none of {', '.join(s.services)} is deployed")
    if s.encryption_key:
        derive_key(s.encryption_key)  # fail early without cryptography
    started = now or utcnow()
    name = set_name(started)
    existing = list_sets(s.backup_root)
    if name in existing:
        name = f"{name}-{os.getpid()}"
    final = os.path.join(s.backup_root, name)
    result: dict[str, Any] = {
        "set": name,
        "path": final,
        "not_deployed": missing,
        "changed": True,
        "services": sorted(targets),
    }
    if check_mode:
        result.update(
            changed=True,
            would_delete=retention_plan(
                existing + [name], s.keep_last, s.keep_daily, s.keep_weekly
            ),
        )
        return result
    os.makedirs(s.backup_root, mode=0o700, exist_ok=True)
    remove_stale_partials(s.backup_root)
    partial = os.path.join(s.backup_root, f"{PARTIAL_PREFIX}{name}-{os.getpid()}")
    os.makedirs(partial, mode=0o700)
    manifest = _manifest_head(s, name, started, missing)
    t0 = time.monotonic()
    try:
        for svc, target in targets.items():
            manifest["services"][svc] = _backup_service(svc, target, s, partial, log)
        check_written(partial, manifest)
        manifest["finished_at"] = iso(utcnow())
        manifest["duration_s"] = round(time.monotonic() - t0, 3)
        files = [e for sec in manifest["services"].values() for e in sec["files"]]
        manifest["totals"] = {"files": len(files), "bytes": sum(e["size"] for e in files)}
        write_manifest(partial, manifest)
        fsync_set(partial)
        os.rename(partial, final)  # atomic promotion (same filesystem)
        fsync_dir(s.backup_root)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    result.update(
        manifest=manifest,
        deleted=_apply_retention(s, name),
        duration_s=manifest["duration_s"],
        totals=manifest["totals"],
    )
    return result


def restore(
    s: Settings,
    set_ref: str | None = "latest",
    check_mode: bool = False,
    verify_only: bool = False,
    log: Callable[[str], None] = lambda m: None,
) -> dict[str, Any]:
    """Verify the whole set first (checksums, key, versions); only then restore each service,
    and compare its content counts with the manifest."""
    set_dir = resolve_set(s.backup_root, set_ref)
    manifest = verify_set(set_dir, s.encryption_key, s.services)
    wanted = [svc for svc in s.services if svc in manifest["services"]]
    if not wanted:
        raise BackupError(f"{set_dir}: holds none of {', '.join(s.services)}")
    targets, missing = plan_targets(Settings.from_dict({**s.__dict__, "services": wanted}))
    if missing:
        raise BackupError(f"cannot restore {', '.join(missing)}: not deployed (no container)")
    handlers = {
        svc: handler_class(svc)(targets[svc], s.datastores.get(svc) or {}) for svc in wanted
    }
    for svc, handler in handlers.items():
        handler.check_compatible(manifest["services"][svc])
    result: dict[str, Any] = {
        "set": os.path.basename(set_dir),
        "path": set_dir,
        "verified": True,
        "services": {},
        "changed": not verify_only,
    }
    if check_mode or verify_only:
        result["services"] = {svc: {"would_restore": True} for svc in wanted}
        return result
    failures = []
    for svc, handler in handlers.items():
        section = manifest["services"][svc]
        t1 = time.monotonic()
        log(f"{svc}: restoring from {set_dir}")
        details = handler.restore(set_dir, section, s.encryption_key)
        handler.wait_ready()
        counts = handler.counts()
        diffs = compare_counts(section["counts"], counts, svc, section.get("counts_exact", True))
        entry = {
            "duration_s": round(time.monotonic() - t1, 3),
            "counts": counts,
            "counts_match": not diffs,
            "differences": diffs,
            "details": details,
        }
        if isinstance(handler.t, DockerTarget):
            entry["address"] = handler.t.address()
        result["services"][svc] = entry
        if diffs:
            failures.append(f"{svc}: {'; '.join(diffs[:5])}")
    result["ok"] = not failures
    result["failures"] = failures
    return result


def extract(s: Settings, set_ref: str | None, relpath: str, out: str) -> dict[str, Any]:
    """Decode one artefact of a verified set (decrypt, gunzip, check its plain sha256) into
    ``out`` (written as out.tmp, renamed at the end): for restores done by hand, e.g. an
    RDB placed on a Redis volume in Kubernetes (docs/kubernetes.md)."""
    set_dir = resolve_set(s.backup_root, set_ref)
    manifest = verify_set(set_dir, s.encryption_key)
    entries = [e for sec in manifest["services"].values() for e in sec["files"]]
    entry = next(
        (e for e in entries if e["path"] == relpath or e["path"].startswith(relpath + ".")), None
    )
    if entry is None:
        known = ", ".join(e["path"] for e in entries)
        raise BackupError(f"{set_dir}: no artefact {relpath} (the set holds {known})")
    tmp = f"{out}.tmp"
    with open(tmp, "wb") as fh:
        try:
            for block in read_artefact(set_dir, entry, s.encryption_key):
                fh.write(block)
            fh.flush()
            os.fsync(fh.fileno())
        except BaseException:
            fh.close()
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    os.rename(tmp, out)
    return {
        "set": os.path.basename(set_dir),
        "artefact": entry["path"],
        "out": out,
        "size": entry["plain_size"],
        "sha256": entry["plain_sha256"],
        "changed": True,
    }
