"""Constants, the operator-facing error and small helpers shared by the whole core."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re

FORMAT_VERSION = 1
CHUNK = 1 << 20
SET_NAME_RE = re.compile(r"^\d{8}T\d{6}Z(-\d+)?$")
PARTIAL_PREFIX = ".partial-"

MANIFEST_SCHEMA = """
format_version      1
name                set directory name (UTC start time, 20261126T141502Z)
project             Compose project / Kubernetes app instance
label               free text given to the run
created_at          ISO 8601 UTC start; finished_at, duration_s
backend             docker | local
compression         none | gzip
encryption          none | aes-256-gcm (+ key_id: sha256 of the key, 16 hex)
tool                {name: kailash_backup, python, host}
services            {<service>: {server_version, tool_versions, started_at, duration_s,
                                 counts, counts_exact, method, details,
                                 files: [{path, size, sha256, plain_size, plain_sha256,
                                          compressed, encrypted, kind}]}}
totals              {files, bytes}
"""


class BackupError(Exception):
    """A failure with a message fit for the operator (names the file / service)."""


# --------------------------------------------------------------------------- helpers


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(ts: dt.datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def set_name(ts: dt.datetime) -> str:
    return ts.strftime("%Y%m%dT%H%M%SZ")


def one_line(text: str | bytes, limit: int = 600) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: str) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while True:
            block = fh.read(CHUNK)
            if not block:
                break
            size += len(block)
            digest.update(block)
    return size, digest.hexdigest()


def version_tuple(text: str | None) -> tuple[int, ...]:
    nums = re.findall(r"\d+", text or "")
    return tuple(int(n) for n in nums[:3])
