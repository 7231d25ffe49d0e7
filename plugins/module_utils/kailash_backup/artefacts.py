"""The files of a set: written through [gzip] -> [AES-GCM] with their hashes, read back
decoded and checked against the manifest; ``Ctx``, what a datastore writes a run through."""

from __future__ import annotations

import contextlib
import hashlib
import os
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .common import CHUNK, BackupError
from .crypto import _decrypt_stream, _Encryptor


class ArtefactWriter:
    """Writes one file of a set: [gzip] -> [AES-GCM] -> disk, hashing plain and stored bytes."""

    def __init__(
        self, set_dir: str, relpath: str, compress: bool, secret: str | None, kind: str
    ) -> None:
        self.relpath = relpath + (".gz" if compress else "") + (".enc" if secret else "")
        self.path = os.path.join(set_dir, self.relpath)
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        # 0600: a set holds every datastore's data
        self.fh = os.fdopen(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")
        self.comp = zlib.compressobj(1, zlib.DEFLATED, 31) if compress else None
        self.enc = _Encryptor(secret) if secret else None
        self.plain = hashlib.sha256()
        self.stored = hashlib.sha256()
        self.plain_size = 0
        self.size = 0
        self.kind = kind
        self.compress = compress

    def _out(self, data: bytes) -> None:
        if self.enc is not None:
            data = self.enc.update(data)
        if data:
            self.stored.update(data)
            self.size += len(data)
            self.fh.write(data)

    def write(self, data: bytes) -> None:
        self.plain.update(data)
        self.plain_size += len(data)
        self._out(self.comp.compress(data) if self.comp is not None else data)

    def close(self) -> dict[str, Any]:
        if self.comp is not None:
            self._out(self.comp.flush())
        if self.enc is not None:
            tail = self.enc.finish()
            self.stored.update(tail)
            self.size += len(tail)
            self.fh.write(tail)
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()
        return {
            "path": self.relpath,
            "size": self.size,
            "sha256": self.stored.hexdigest(),
            "plain_size": self.plain_size,
            "plain_sha256": self.plain.hexdigest(),
            "compressed": self.compress,
            "encrypted": self.enc is not None,
            "kind": self.kind,
        }

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self.fh.close()


def read_artefact(set_dir: str, entry: dict[str, Any], secret: str | None) -> Iterator[bytes]:
    """The plain bytes of one file of a set, checking its plain sha256 at the end."""
    path = os.path.join(set_dir, entry["path"])

    def raw() -> Iterator[bytes]:
        with open(path, "rb") as fh:
            while True:
                block = fh.read(CHUNK)
                if not block:
                    return
                yield block

    stream: Iterator[bytes] = raw()
    if entry.get("encrypted"):
        if not secret:
            raise BackupError(f"{entry['path']}: the set is encrypted and no key was given")
        stream = _decrypt_stream(stream, secret, entry["path"])
    if entry.get("compressed"):
        stream = _gunzip(stream, entry["path"])
    digest = hashlib.sha256()
    size = 0
    for block in stream:
        digest.update(block)
        size += len(block)
        yield block
    if size != entry["plain_size"] or digest.hexdigest() != entry["plain_sha256"]:
        raise BackupError(f"{entry['path']}: content does not match the manifest after decoding")


def _gunzip(chunks: Iterator[bytes], name: str) -> Iterator[bytes]:
    dec = zlib.decompressobj(31)
    for block in chunks:
        try:
            out = dec.decompress(block)
        except zlib.error as exc:
            raise BackupError(f"{name}: corrupt gzip data ({exc})") from None
        if out:
            yield out
    tail = dec.flush()
    if tail:
        yield tail
    if not dec.eof:
        raise BackupError(f"{name}: truncated gzip data")


@dataclass
class Ctx:
    """What a datastore handler needs for one run."""

    set_dir: str
    compress: bool
    secret: str | None
    log: Callable[[str], None] = lambda _msg: None
    files: list[dict[str, Any]] = field(default_factory=list)

    def write_stream(
        self,
        relpath: str,
        kind: str,
        produce: Callable[[Callable[[bytes], None]], Any],
        compress: bool | None = None,
    ) -> dict[str, Any]:
        writer = ArtefactWriter(
            self.set_dir,
            relpath,
            self.compress if compress is None else compress,
            self.secret,
            kind,
        )
        try:
            produce(writer.write)
        except BaseException:
            writer.abort()
            raise
        entry = writer.close()
        if entry["plain_size"] == 0:
            raise BackupError(f"{entry['path']}: the tool wrote nothing")
        self.files.append(entry)
        return entry
