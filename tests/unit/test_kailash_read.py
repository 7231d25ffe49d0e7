"""plugins/modules/kailash_read.py, run in-process on real files under tmp_path and real
commands: stat, text reads, checksums, commands at once, a local HTTP server for the URL
probes; and the converge filters that let a role skip its kailash_files task
(kailash_find_meta on real `find -printf` output, kailash_files_current), checked against
kailash_files itself: where the filter says current, the module changes nothing."""

from __future__ import annotations

import hashlib
import http.server
import importlib.util
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args

ROOT = Path(__file__).resolve().parents[2]


def load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


kailash_read = load("kailash_read", ROOT / "plugins" / "modules" / "kailash_read.py")
kailash_files = load("kailash_files_for_read", ROOT / "plugins" / "modules" / "kailash_files.py")
converge = load("kailash_converge_filters", ROOT / "plugins" / "filter" / "converge.py")


def run(module, capsys, check: bool = False, **args) -> dict:
    with patch_module_args({**args, "_ansible_check_mode": check}), pytest.raises(SystemExit):
        module.main()
    return json.loads(capsys.readouterr().out)


def test_stat_read_checksum(tmp_path: Path, capsys) -> None:
    conf = tmp_path / "a.conf"
    conf.write_text("x = 1\n")
    os.chmod(conf, 0o640)
    link = tmp_path / "link"
    link.symlink_to(conf)
    out = run(
        kailash_read,
        capsys,
        stat=[str(conf), str(link), str(tmp_path / "none"), str(tmp_path)],
        read=[str(conf), str(tmp_path / "none")],
        checksum=[str(conf), str(tmp_path)],
        checksum_algorithm="sha256",
    )
    assert out["changed"] is False
    assert out["stat"][str(conf)] | {"size": 0} == {
        "exists": True,
        "isdir": False,
        "isreg": True,
        "islnk": False,
        "lnk_source": None,
        "mode": "0640",
        "size": 0,
    }
    assert out["stat"][str(link)]["islnk"] and out["stat"][str(link)]["lnk_source"] == str(conf)
    assert out["stat"][str(tmp_path / "none")]["exists"] is False
    assert out["stat"][str(tmp_path)]["isdir"] is True
    assert out["files"] == {str(conf): "x = 1\n", str(tmp_path / "none"): None}
    assert out["checksums"] == {
        str(conf): hashlib.sha256(b"x = 1\n").hexdigest(),
        str(tmp_path): None,
    }
    sha1 = run(kailash_read, capsys, checksum=[str(conf)])["checksums"][str(conf)]
    assert sha1 == hashlib.sha1(b"x = 1\n").hexdigest()  # noqa: S324 (the stat module's default)


def test_commands_run_at_once_with_their_output_and_codes(capsys) -> None:
    start = time.monotonic()
    out = run(
        kailash_read,
        capsys,
        commands={
            "a": ["sh", "-c", "sleep 1; echo one"],
            "b": ["sh", "-c", "sleep 1; echo two >&2; exit 3"],
            "missing": ["/nonexistent/binary"],
        },
        check=True,
    )
    took = time.monotonic() - start
    assert out["commands"]["a"] == {"rc": 0, "stdout": "one", "stderr": ""}
    assert out["commands"]["b"]["rc"] == 3 and out["commands"]["b"]["stderr"] == "two"
    assert out["commands"]["missing"]["rc"] == 127
    assert took < 1.9, f"the two 1 s commands ran one after another ({took:.2f} s)"


def test_timeout_and_bad_input(capsys) -> None:
    out = run(kailash_read, capsys, commands={"slow": ["sleep", "5"]}, timeout=1)
    assert out["commands"]["slow"]["rc"] == -9
    failed = run(kailash_read, capsys, commands={"bad": "echo hi"})
    assert failed["failed"] and "commands.bad must be a non-empty list" in failed["msg"]


def test_too_large_a_file_fails(tmp_path: Path, capsys) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"x" * 2048)
    out = run(kailash_read, capsys, read=[str(big)], max_size=1024)
    assert out["failed"] and "larger than max_size" in out["msg"]


def test_url_probes(capsys) -> None:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(401 if self.path == "/v2/" else 200)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        out = run(
            kailash_read,
            capsys,
            timeout=2,
            urls={
                "ok": f"http://127.0.0.1:{port}/",
                "auth": f"http://127.0.0.1:{port}/v2/",
                "closed": "http://127.0.0.1:9/",
            },
        )
    finally:
        server.shutdown()
    assert out["urls"]["ok"]["status"] == 200 and out["urls"]["auth"]["status"] == 401
    assert out["urls"]["closed"]["status"] == -1 and out["urls"]["closed"]["msg"]


def live_state(root: Path) -> tuple[dict, dict]:
    """What kailash_stack's preflight reads, with the same commands."""
    meta = subprocess.run(
        ["find", str(root), "-printf", "%y %m %U %G %p\\n"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    sums = {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }
    return converge.kailash_find_meta(meta), sums


def test_files_current_agrees_with_kailash_files(tmp_path: Path, capsys) -> None:
    uid, gid = str(os.getuid()), str(os.getgid())
    spec = {
        "directories": [{"path": str(tmp_path / "svc"), "mode": "0750"}],
        "files": [
            {
                "path": str(tmp_path / "svc" / "a.conf"),
                "content": "a = 1\n",
                "mode": "0440",
                "owner": uid,
                "group": gid,
            }
        ],
        "secret_files": [
            {"path": str(tmp_path / "svc" / "pw"), "content": "s3cret", "mode": "0400"}
        ],
    }
    meta, sums = live_state(tmp_path)
    assert not converge.kailash_files_current(meta, sums, spec)  # nothing there yet
    assert run(kailash_files, capsys, **spec)["changed"]
    meta, sums = live_state(tmp_path)
    assert meta[str(tmp_path / "svc")] == {
        "type": "d",
        "mode": 0o750,
        "uid": int(uid),
        "gid": int(gid),
    }
    assert converge.kailash_files_current(meta, sums, spec)
    assert not run(kailash_files, capsys, **spec)["changed"]  # the module agrees: nothing to do
    # each difference the module would fix makes it not current
    other_content = {**spec, "secret_files": [{**spec["secret_files"][0], "content": "new"}]}
    other_mode = {**spec, "directories": [{**spec["directories"][0], "mode": "0700"}]}
    other_owner = {**spec, "files": [{**spec["files"][0], "owner": str(int(uid) + 1)}]}
    by_name = {**spec, "files": [{**spec["files"][0], "owner": "root"}]}
    outside = {**spec, "files": [{**spec["files"][0], "path": "/elsewhere/a.conf"}]}
    unknown = {**spec, "stat": []}
    for changed in (other_content, other_mode, other_owner, by_name, outside, unknown):
        assert not converge.kailash_files_current(meta, sums, changed), changed
    assert not converge.kailash_files_current({}, sums, spec)  # nothing read: not current
    os.chmod(tmp_path / "svc" / "a.conf", 0o644)
    meta, sums = live_state(tmp_path)
    assert not converge.kailash_files_current(meta, sums, spec)
    assert run(kailash_files, capsys, **spec)["changed"]


def test_controller_uid_is_this_process_uid() -> None:
    """inventories/local becomes root only when the control node's user is not root."""
    assert converge.kailash_controller_uid() == os.getuid()
    assert converge.kailash_controller_uid(None) == os.getuid()
