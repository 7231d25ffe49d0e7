"""Encryption of the artefacts: chunked AES-256-GCM with an HKDF-derived key."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

from .common import CHUNK, BackupError

ENC_MAGIC = b"KAILASH-BK-AESGCM1\n"


def derive_key(secret: str) -> bytes:
    """256-bit AES key from the stored secret string (HKDF-SHA256)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"kailash-backup", info=b"aes-256-gcm v1"
    ).derive(secret.encode("utf-8"))


def key_id(secret: str) -> str:
    """Public fingerprint of a key (never the key): tells a wrong key before any change."""
    return hashlib.sha256(b"kailash-backup-key-id:" + secret.encode("utf-8")).hexdigest()[:16]


class _Encryptor:
    """Chunked AES-256-GCM: each 1 MiB chunk sealed on its own (nonce = prefix + index),
    the last one marked in the associated data, so truncation and reordering fail."""

    def __init__(self, secret: str) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self.aead = AESGCM(derive_key(secret))
        self.prefix = os.urandom(8)
        self.index = 0
        self.buf = bytearray()
        self.started = False

    def _seal(self, data: bytes, last: bool) -> bytes:
        nonce = self.prefix + self.index.to_bytes(4, "big")
        aad = ENC_MAGIC + self.index.to_bytes(4, "big") + (b"L" if last else b"C")
        self.index += 1
        sealed = self.aead.encrypt(nonce, bytes(data), aad)
        return len(sealed).to_bytes(4, "big") + (b"L" if last else b"C") + sealed

    def update(self, data: bytes) -> bytes:
        out = bytearray()
        if not self.started:
            out += ENC_MAGIC + self.prefix
            self.started = True
        self.buf += data
        while len(self.buf) > CHUNK:
            out += self._seal(self.buf[:CHUNK], False)
            del self.buf[:CHUNK]
        return bytes(out)

    def finish(self) -> bytes:
        out = bytearray()
        if not self.started:
            out += ENC_MAGIC + self.prefix
            self.started = True
        out += self._seal(self.buf, True)
        self.buf = bytearray()
        return bytes(out)


def _decrypt_stream(chunks: Iterator[bytes], secret: str, name: str) -> Iterator[bytes]:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aead = AESGCM(derive_key(secret))
    buf = bytearray()
    source = iter(chunks)

    def need(n: int) -> bytes:
        while len(buf) < n:
            try:
                buf.extend(next(source))
            except StopIteration:
                raise BackupError(f"{name}: truncated encrypted file") from None
        out = bytes(buf[:n])
        del buf[:n]
        return out

    if need(len(ENC_MAGIC)) != ENC_MAGIC:
        raise BackupError(f"{name}: not an encrypted kailash backup file")
    prefix = need(8)
    index = 0
    while True:
        length = int.from_bytes(need(4), "big")
        flag = need(1)
        sealed = need(length)
        nonce = prefix + index.to_bytes(4, "big")
        aad = ENC_MAGIC + index.to_bytes(4, "big") + flag
        try:
            plain = aead.decrypt(nonce, sealed, aad)
        except InvalidTag:
            raise BackupError(
                f"{name}: decryption failed (wrong key or corrupted chunk {index})"
            ) from None
        index += 1
        yield plain
        if flag == b"L":
            break
