"""plugins/modules/kailash_files.py, run in-process on real files under tmp_path: idempotence,
atomic replacement, modes, check and diff mode, secrets kept out of the diff, bad input."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import socket
import stat
import sys
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args

MODULE = Path(__file__).resolve().parents[2] / "plugins" / "modules" / "kailash_files.py"
spec = importlib.util.spec_from_file_location("kailash_files", MODULE)
kailash_files = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = kailash_files
spec.loader.exec_module(kailash_files)


def run(capsys, check: bool = False, diff: bool = False, **args) -> dict:
    args = {**args, "_ansible_check_mode": check, "_ansible_diff": diff}
    with patch_module_args(args), pytest.raises(SystemExit):
        kailash_files.main()
    return json.loads(capsys.readouterr().out)


def mode(path: Path) -> str:
    return f"{stat.S_IMODE(path.stat().st_mode):04o}"


def test_writes_then_changes_nothing(tmp_path: Path, capsys) -> None:
    conf = tmp_path / "svc" / "sub" / "app.conf"
    args = {
        "directories": [{"path": str(tmp_path / "svc" / "sub"), "mode": "0750"}],
        "files": [{"path": str(conf), "content": "a = 1\n", "mode": "0400"}],
        "secret_files": [
            {"path": str(tmp_path / "svc" / "sub" / "pw"), "content": "s3cret", "mode": "0400"}
        ],
    }
    first = run(capsys, **args)
    assert first["changed"] and len(first["changed_paths"]) == 3, first
    assert conf.read_bytes() == b"a = 1\n" and mode(conf) == "0400"
    assert mode(conf.parent) == "0750"
    assert (conf.parent / "pw").read_bytes() == b"s3cret"  # no newline added
    second = run(capsys, **args)
    assert not second["changed"] and second["changed_paths"] == [], second
    assert [p.name for p in conf.parent.iterdir() if p.name.startswith(".kailash-")] == []


def test_check_mode_reports_and_changes_nothing_diff_hides_secrets(tmp_path: Path, capsys) -> None:
    conf, pw = tmp_path / "app.conf", tmp_path / "pw"
    conf.write_text("a = 1\n")
    pw.write_text("old-secret")
    args = {
        "files": [{"path": str(conf), "content": "a = 2\n", "mode": "0644"}],
        "secret_files": [{"path": str(pw), "content": "new-secret", "mode": "0600"}],
    }
    os.chmod(conf, 0o644)
    os.chmod(pw, 0o600)
    out = run(capsys, check=True, diff=True, **args)
    assert out["changed"] and out["changed_paths"] == [str(conf), str(pw)]
    assert conf.read_text() == "a = 1\n" and pw.read_text() == "old-secret"
    diffs = {d["after_header"]: d for d in out["diff"]}
    assert diffs[str(conf)]["before"] == "a = 1\n" and diffs[str(conf)]["after"] == "a = 2\n"
    assert "secret" not in json.dumps(diffs[str(pw)]).replace("(secret, not shown)", "")
    assert "new-secret" not in json.dumps(out)  # no_log content: scrubbed from the result


def test_mode_alone_is_fixed_in_place(tmp_path: Path, capsys) -> None:
    conf = tmp_path / "app.conf"
    conf.write_text("x")
    os.chmod(conf, 0o644)
    inode = conf.stat().st_ino
    out = run(capsys, files=[{"path": str(conf), "content": "x", "mode": "0400"}])
    assert out["changed"] and mode(conf) == "0400" and conf.stat().st_ino == inode


def test_content_change_replaces_the_file_atomically_with_its_owner(tmp_path: Path, capsys) -> None:
    conf = tmp_path / "app.conf"
    conf.write_text("old")
    os.chown(conf, 4242, 4343)
    inode = conf.stat().st_ino
    out = run(capsys, files=[{"path": str(conf), "content": "new", "mode": "0440"}])
    assert out["changed"] and conf.read_text() == "new"
    st = conf.stat()
    assert st.st_ino != inode  # renamed over, never written in place
    assert (st.st_uid, st.st_gid, mode(conf)) == (4242, 4343, "0440")
    out = run(capsys, files=[{"path": str(conf), "content": "new", "mode": "0440",
                              "owner": "4444", "group": "4545"}])
    assert out["changed"] and (conf.stat().st_uid, conf.stat().st_gid) == (4444, 4545)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ([{"path": "/x", "content": "", "mode": "rw-r--r--"}], "mode must be an octal string"),
        ([{"path": "NEST/missing/dir/f", "content": "", "mode": "0600"}], "does not exist"),
        ([{"path": "NEST", "content": "", "mode": "0600"}], "is not a regular file"),
    ],
)
def test_bad_input_fails_naming_the_path(tmp_path: Path, capsys, files, message) -> None:
    for f in files:
        f["path"] = f["path"].replace("NEST", str(tmp_path))
    out = run(capsys, files=files)
    assert out.get("failed") and message in out["msg"], out


def test_stat_reports_existence_and_sha256_before_writing(tmp_path: Path, capsys) -> None:
    present, missing = tmp_path / "ca.crt", tmp_path / "tls.key"
    present.write_bytes(b"PEM\n")
    out = run(capsys, stat=[str(present), str(missing), str(tmp_path)],
              files=[{"path": str(missing), "content": "k", "mode": "0600"}])
    assert out["stat"][str(present)] == {
        "exists": True, "isreg": True, "isdir": False, "issock": False,
        "uid": os.getuid(), "gid": os.getgid(),
        "checksum": hashlib.sha256(b"PEM\n").hexdigest()}
    assert out["stat"][str(missing)] == {"exists": False, "checksum": None, "isreg": False,
                                         "isdir": False, "issock": False}
    assert out["stat"][str(tmp_path)]["isreg"] is False
    assert out["stat"][str(tmp_path)]["isdir"] is True
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock"))
    out = run(capsys, stat=[str(tmp_path / "sock")])
    sock.close()
    assert out["stat"][str(tmp_path / "sock")]["issock"] is True
    assert out["stat"][str(tmp_path / "sock")]["checksum"] is None
    assert missing.read_text() == "k"  # written after the stat


def test_stat_checksum_sha1_as_the_stat_module_computes(tmp_path: Path, capsys) -> None:
    present = tmp_path / "ca-certificates.crt"
    present.write_bytes(b"PEM\n")
    out = run(capsys, stat=[str(present)], stat_checksum="sha1")
    assert out["stat"][str(present)]["checksum"] == hashlib.sha1(b"PEM\n").hexdigest()  # noqa: S324
    assert out["changed"] is False
