"""plugins/action/kailash_local_files.py's helpers on real files under tmp_path (the action
plugin writes the health reports on the control node without a module run): created,
rewritten only when the content or mode differs, atomically, and nothing in check mode."""

from __future__ import annotations

import importlib.util
import stat
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "plugins" / "action" / "kailash_local_files.py"
spec = importlib.util.spec_from_file_location("kailash_local_files_action", PLUGIN)
action = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = action
spec.loader.exec_module(action)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_directory_created_then_unchanged_mode_fixed(tmp_path: Path) -> None:
    target = tmp_path / "a" / "reports"
    assert action.ensure_directory(str(target), 0o755, check=True)
    assert not target.exists()  # check mode changes nothing
    assert action.ensure_directory(str(target), 0o755, check=False)
    assert target.is_dir() and mode(target) == 0o755
    assert not action.ensure_directory(str(target), 0o755, check=False)
    assert action.ensure_directory(str(target), 0o700, check=False) and mode(target) == 0o700


def test_file_written_only_when_it_differs(tmp_path: Path) -> None:
    report = tmp_path / "health.json"
    assert action.ensure_file(str(report), "{}\n", 0o644, check=True)
    assert not report.exists()
    assert action.ensure_file(str(report), "{}\n", 0o644, check=False)
    assert report.read_bytes() == b"{}\n" and mode(report) == 0o644
    inode = report.stat().st_ino
    assert not action.ensure_file(str(report), "{}\n", 0o644, check=False)
    assert report.stat().st_ino == inode  # not rewritten
    assert action.ensure_file(str(report), "{}\n", 0o600, check=False)
    assert mode(report) == 0o600 and report.stat().st_ino == inode  # mode fixed in place
    assert action.ensure_file(str(report), '{"a": 1}\n', 0o600, check=False)
    assert report.read_text() == '{"a": 1}\n' and report.stat().st_ino != inode  # replaced
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".kailash-")] == []
