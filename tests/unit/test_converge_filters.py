"""Unit tests for the converge filters (plugins/filter/converge.py)."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location(
    "converge_filters", Path(__file__).resolve().parents[2] / "plugins" / "filter" / "converge.py")
converge = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(converge)


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()  # noqa: S324


def test_build_context_lists_what_the_find_task_listed(tmp_path: Path) -> None:
    (tmp_path / "app" / ".hidden").mkdir(parents=True)
    (tmp_path / "Dockerfile").write_bytes(b"FROM x\n")
    (tmp_path / "app" / "main.py").write_bytes(b"print(1)\n")
    (tmp_path / "app" / ".hidden" / ".env").write_bytes(b"A=1\n")
    # excluded by name, wherever they are
    (tmp_path / "README.md").write_bytes(b"# doc\n")
    (tmp_path / "app" / "main.pyc").write_bytes(b"\0")
    # symbolic links are neither followed nor listed (find: follow false, file_type file)
    os.symlink(tmp_path / "Dockerfile", tmp_path / "link")
    os.symlink(tmp_path / "app", tmp_path / "dirlink")
    assert converge.kailash_build_context(str(tmp_path)) == [
        ["Dockerfile", _sha1(b"FROM x\n")],
        ["app/.hidden/.env", _sha1(b"A=1\n")],
        ["app/main.py", _sha1(b"print(1)\n")],
    ]


def test_build_context_refuses_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(converge.AnsibleFilterError, match="not a directory"):
        converge.kailash_build_context(str(tmp_path / "nope"))


def test_local_digest_changes_with_content_mode_and_existence(tmp_path: Path) -> None:
    key = tmp_path / "tls.key"
    key.write_bytes(b"k1")
    key.chmod(0o600)
    paths = [str(tmp_path), str(key), str(tmp_path / "absent")]
    first = converge.kailash_local_digest(paths)
    assert first[2] == [str(tmp_path / "absent"), None]
    assert first[1][5] == hashlib.sha256(b"k1").hexdigest()
    assert first[0][5] is None  # a directory: no content
    assert converge.kailash_local_digest(paths) == first
    key.chmod(0o644)
    assert converge.kailash_local_digest(paths) != first
    key.chmod(0o600)
    key.write_bytes(b"k2")
    assert converge.kailash_local_digest(paths) != first


def test_local_read(tmp_path: Path) -> None:
    (tmp_path / "note").write_text("abc")
    assert converge.kailash_local_read(str(tmp_path / "note")) == "abc"
    assert converge.kailash_local_read(str(tmp_path / "absent")) == ""


def test_local_stat_answers_as_kailash_files_stat(tmp_path: Path) -> None:
    (tmp_path / "secrets.yml").write_bytes(b"a: 1\n")
    (tmp_path / "secrets.yml").chmod(0o600)
    (tmp_path / "edge").mkdir()
    (tmp_path / "edge").chmod(0o700)
    got = converge.kailash_local_stat([str(tmp_path / "secrets.yml"), str(tmp_path / "edge"),
                                       str(tmp_path / "absent")])
    assert got[str(tmp_path / "secrets.yml")] == {
        "exists": True, "isreg": True, "isdir": False, "mode": "0600",
        "checksum": hashlib.sha256(b"a: 1\n").hexdigest()}
    assert got[str(tmp_path / "edge")]["isdir"] and got[str(tmp_path / "edge")]["mode"] == "0700"
    assert got[str(tmp_path / "edge")]["checksum"] is None
    assert got[str(tmp_path / "absent")]["exists"] is False


def _container(cid: str, started: str, checks: list[str], interval_s: float | None = 10,
               status: str = "running", paused: bool = False) -> dict:
    check = {"Test": ["CMD", "true"]}
    if interval_s is not None:
        check.update(Interval=int(interval_s * 1e9), Timeout=int(5e9))
    return {"Id": cid, "Config": {"Healthcheck": check},
            "State": {"Status": status, "Paused": paused, "StartedAt": started,
                      "Health": {"Status": "healthy",
                                 "Log": [{"Start": s, "End": s} for s in checks]}}}


def test_stale_health_checks_are_those_no_monitor_ran_for_too_long() -> None:
    """moby#41871: after a dockerd restart with live-restore the health log stops growing.
    10 s interval + 5 s timeout: stale after 2 * 10 + 5 + 20 = 45 s without a check."""
    now = converge._docker_time("2026-11-30T15:10:00.000000000Z")
    started = "2026-11-30T14:00:00.123456789Z"
    containers = [
        _container("frozen", started, ["2026-11-30T15:00:00.5Z", "2026-11-30T15:09:00.9Z"]),
        _container("fresh", started, ["2026-11-30T15:09:50.0Z"]),
        _container("late-but-alive", started, ["2026-11-30T15:09:16Z"]),  # 44 s: not yet
        # Docker's default interval and timeout (30 s): stale only after 110 s
        _container("defaults", started, ["2026-11-30T15:08:30Z"], interval_s=None),
        _container("defaults-frozen", started, ["2026-11-30T15:08:00Z"], interval_s=None),
        # just started: its monitor had no time to run yet
        _container("young", "2026-11-30T15:09:30Z", ["2026-11-30T15:09:30Z"]),
        _container("paused", started, ["2026-11-30T15:00:00Z"], paused=True),
        _container("exited", started, ["2026-11-30T15:00:00Z"], status="exited"),
        _container("no-log", started, []),
    ]
    assert converge.kailash_stale_health_checks(containers, now) == {
        "frozen": 60, "defaults-frozen": 120,
    }


def test_stale_health_checks_skip_containers_without_one() -> None:
    plain = {"Id": "plain", "Config": {}, "State": {"Status": "running",
                                                    "StartedAt": "2026-11-30T14:00:00Z"}}
    assert converge.kailash_stale_health_checks([plain], 1e10) == {}
