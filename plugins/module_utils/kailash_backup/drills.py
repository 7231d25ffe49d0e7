"""Restore drills: a set restored into throwaway containers (``Drill``, backend docker)
or throwaway processes (``LocalDrill``, backend local), its counts compared with the
manifest, the outcome recorded (JSON report + Prometheus textfile). The steps of each
datastore are its class's ``drill_docker`` / ``drill_local``."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .common import BackupError, iso, utcnow
from .datastores import compare_counts, handler_class, make_target
from .datastores.base import Datastore
from .runs import Settings
from .sets import resolve_set, verify_set
from .targets import DockerTarget, Result, _run_process


class _Drill:
    """What both drills share: the set, and the comparison of a restored handler's counts."""

    def __init__(
        self, s: Settings, set_dir: str, manifest: dict[str, Any], log: Callable[[str], None]
    ) -> None:
        self.s = s
        self.set_dir = set_dir
        self.manifest = manifest
        self.log = log

    @staticmethod
    def checked(svc: str, section: dict[str, Any], handler: Datastore) -> dict[str, Any]:
        counts = handler.counts()
        diffs = compare_counts(section["counts"], counts, svc, section.get("counts_exact", True))
        return {"counts": counts, "differences": diffs, "passed": not diffs}


class Drill(_Drill):
    """Restore a set into throwaway containers (<project>-drill-<service>), never the stack."""

    def __init__(
        self, s: Settings, set_dir: str, manifest: dict[str, Any], log: Callable[[str], None]
    ) -> None:
        super().__init__(s, set_dir, manifest, log)
        self.created: list[str] = []
        self.volumes: list[str] = []
        self.prefix = f"{s.project}-drill"

    def docker(self, *args: str, check: bool = True, timeout: float = 300) -> Result:
        return _run_process(
            [self.s.docker, *args], None, None, None, timeout, f"docker {args[0]}", check
        )

    def image_of(self, svc: str) -> str:
        conf = self.s.datastores.get(svc) or {}
        if conf.get("image"):
            return conf["image"]
        target = make_target(svc, conf, "docker", self.s.project, self.s.docker)
        if target is None:
            raise BackupError(f"{svc}: no image given and no container to take it from")
        return target.image

    def container(
        self,
        svc: str,
        image: str,
        args: list[str],
        env: dict[str, str] | None = None,
        user: str | None = None,
        entrypoint: str | None = None,
        volume_path: str = "/data",
        tmpfs: list[str] | None = None,
    ) -> DockerTarget:
        name = f"{self.prefix}-{svc}"
        self.docker("rm", "-f", "-v", name, check=False)
        vol = f"{name}-data"
        self.docker("volume", "rm", "-f", vol, check=False)
        self.docker("volume", "create", "--label", "io.kailash.drill=true", vol)
        self.volumes.append(vol)
        cmd = [
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "none",
            "--label",
            "io.kailash.drill=true",
            "-v",
            f"{vol}:{volume_path}",
            "--tmpfs",
            "/tmp",
        ]
        for mount in tmpfs or []:
            cmd += ["--tmpfs", mount]
        for key, value in (env or {}).items():
            cmd += ["-e", f"{key}={value}"]
        if user:
            cmd += ["--user", user]
        if entrypoint is not None:
            cmd += ["--entrypoint", entrypoint]
        self.created.append(name)
        self.docker(*cmd, image, *args)
        return DockerTarget(name, self.s.docker)

    def cleanup(self) -> None:
        for name in self.created:
            self.docker("rm", "-f", "-v", name, check=False)
        for vol in self.volumes:
            self.docker("volume", "rm", "-f", vol, check=False)

    def run_service(self, svc: str) -> dict[str, Any]:
        section = self.manifest["services"][svc]
        image = self.image_of(svc)
        conf = dict(self.s.datastores.get(svc) or {})
        got = handler_class(svc).drill_docker(self, section, conf, image)
        if isinstance(got, dict):
            return {**got, "image": image}
        return {**self.checked(svc, section, got), "image": image}


class LocalDrill(_Drill):
    """The drill of the local backend (a pod: no Docker): restores into throwaway processes
    of this machine, in a scratch directory removed afterwards.

    * PostgreSQL: ``initdb`` + ``pg_ctl`` (the postgresql-15 server binaries of the ops
      image), listening on a Unix socket in a private directory only (no TCP, trust
      auth for this user), ``pg_restore`` of every database, counts compared;
    * Redis: a ``redis-server`` on a private Unix socket loading the set's RDB, key counts
      compared;
    * ChromaDB (export): the export file parsed, its framing checked and the records per
      collection counted and compared; it is NOT loaded into a Chroma server;
    * anything else (a Chroma tar, Neo4j dumps) fails with the reason.
    """

    def __init__(
        self, s: Settings, set_dir: str, manifest: dict[str, Any], log: Callable[[str], None]
    ) -> None:
        super().__init__(s, set_dir, manifest, log)
        base = s.work_dir or None
        if base:
            os.makedirs(base, mode=0o700, exist_ok=True)
        self.work = tempfile.mkdtemp(prefix=f"{s.project}-drill-", dir=base)
        # sockets in a short private path (sun_path holds 107 bytes)
        self.sockets = tempfile.mkdtemp(prefix="kbd-")
        self.procs: list[subprocess.Popen[bytes]] = []
        # (argv, what) run at the cleanup, before the processes are killed (pg_ctl stop)
        self.stops: list[tuple[list[str], str]] = []

    def run_service(self, svc: str) -> dict[str, Any]:
        section = self.manifest["services"][svc]
        conf = dict(self.s.datastores.get(svc) or {})
        got = handler_class(svc).drill_local(self, section, conf)
        if isinstance(got, dict):
            return got
        return {
            **self.checked(svc, section, got),
            "method": "restored into a throwaway process in this pod/container",
        }

    def cleanup(self) -> None:
        for argv, what in self.stops:
            with contextlib.suppress(BackupError, subprocess.TimeoutExpired):
                _run_process(argv, None, None, None, 120, what, False)
        for proc in self.procs:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(30)
        shutil.rmtree(self.work, ignore_errors=True)
        shutil.rmtree(self.sockets, ignore_errors=True)


def drill(
    s: Settings,
    set_ref: str | None = "latest",
    report_dir: str | None = None,
    textfile_dir: str | None = None,
    check_mode: bool = False,
    keep: bool = False,
    log: Callable[[str], None] = lambda m: None,
) -> dict[str, Any]:
    """Restore drill: verify the set, restore each service into throwaway containers
    (backend docker) or throwaway processes (backend local: LocalDrill), compare counts;
    record pass/fail (JSON report + Prometheus textfile)."""
    started = utcnow()
    t0 = time.monotonic()
    report: dict[str, Any] = {"project": s.project, "started_at": iso(started), "services": {}}
    try:
        set_dir = resolve_set(s.backup_root, set_ref)
        report.update(set=os.path.basename(set_dir), path=set_dir)
        manifest = verify_set(set_dir, s.encryption_key, s.services)
        report["checksums_ok"] = True
    except BackupError as exc:
        report.update(passed=False, error=str(exc), checksums_ok=False)
        manifest = None
    if check_mode:
        report.update(changed=False, check_mode=True)
        return report
    if manifest is not None:
        wanted = [svc for svc in s.services if svc in manifest["services"]]
        d: Drill | LocalDrill = (
            LocalDrill(s, set_dir, manifest, log)
            if s.backend == "local"
            else Drill(s, set_dir, manifest, log)
        )
        report["backend"] = s.backend
        try:

            def one(svc: str) -> dict[str, Any]:
                t1 = time.monotonic()
                try:
                    entry = d.run_service(svc)
                except BackupError as exc:
                    entry = {"passed": False, "error": str(exc)}
                entry["duration_s"] = round(time.monotonic() - t1, 3)
                return entry

            # the services' throwaway containers are independent: drill them at once
            with ThreadPoolExecutor(max_workers=max(1, len(wanted))) as pool:
                for svc, entry in zip(wanted, pool.map(one, wanted), strict=True):
                    report["services"][svc] = entry
        finally:
            if not keep:
                d.cleanup()
        report["passed"] = bool(report["services"]) and all(
            e["passed"] for e in report["services"].values()
        )
    report["finished_at"] = iso(utcnow())
    report["duration_s"] = round(time.monotonic() - t0, 3)
    write_drill_records(report, report_dir, textfile_dir)
    report["changed"] = True
    return report


def write_drill_records(
    report: dict[str, Any], report_dir: str | None, textfile_dir: str | None
) -> None:
    project = report["project"]
    prev_success = None
    if report_dir:
        os.makedirs(report_dir, exist_ok=True)
        last_path = os.path.join(report_dir, f"restore-drill-{project}.json")
        with contextlib.suppress(OSError, ValueError), open(last_path, encoding="utf-8") as fh:
            prev_success = json.load(fh).get("last_success_at")
        if report.get("passed"):
            report["last_success_at"] = report["finished_at"]
        else:
            report["last_success_at"] = prev_success
        _atomic_write(last_path, json.dumps(report, indent=2, sort_keys=True) + "\n")
    if textfile_dir:
        os.makedirs(textfile_dir, exist_ok=True)
        prom = os.path.join(textfile_dir, f"kailash_restore_drill_{project.replace('-', '_')}.prom")
        last_ts = None
        with contextlib.suppress(OSError, ValueError), open(prom, encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("kailash_restore_drill_last_success_timestamp_seconds"):
                    last_ts = float(line.split()[-1])
        if report.get("passed"):
            last_ts = (
                dt.datetime.strptime(report["finished_at"], "%Y-%m-%dT%H:%M:%SZ")
                .replace(tzinfo=dt.UTC)
                .timestamp()
            )
        lines = [
            "# HELP kailash_restore_drill_last_success_timestamp_seconds "
            "Unix time of the last passed restore drill.",
            "# TYPE kailash_restore_drill_last_success_timestamp_seconds gauge",
        ]
        if last_ts is not None:
            lines.append(
                "kailash_restore_drill_last_success_timestamp_seconds"
                f'{{project="{project}"}} {last_ts:.0f}'
            )
        lines += [
            "# HELP kailash_restore_drill_passed 1 when the last restore drill passed, else 0.",
            "# TYPE kailash_restore_drill_passed gauge",
            f'kailash_restore_drill_passed{{project="{project}"}} '
            f"{1 if report.get('passed') else 0}",
            "# HELP kailash_restore_drill_duration_seconds Duration of the last restore drill.",
            "# TYPE kailash_restore_drill_duration_seconds gauge",
            f'kailash_restore_drill_duration_seconds{{project="{project}"}} {report["duration_s"]}',
        ]
        _atomic_write(prom, "\n".join(lines) + "\n")


def _atomic_write(path: str, text: str) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)
