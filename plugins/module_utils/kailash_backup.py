"""Backup, restore and restore drills of the Kailash datastores: the core, plain Python.

Used three ways, with the same code:

* by the Ansible modules ``kailash_backup``, ``kailash_restore`` and
  ``kailash_restore_drill`` (imported as ``ansible.module_utils.kailash_backup``);
* as a script (``python3 -m kailash_backup backup --config cfg.json``), e.g. by the
  Kubernetes CronJobs of roles/kailash_k8s in the ops image (roles/kailash_backup/files/ops):
  the ``local`` exec backend with a ``host`` per datastore reaches every server over the
  network only (see "Network mode" below);
* by the tests and ``bench/backup_bench.py`` (``import kailash_backup``).

Exec backends: every command of a datastore runs through a ``Target``.
``DockerTarget`` runs it with ``docker exec`` in the service's container (so the tools
always match the server's version) and, for work on stopped data (restore, offline
dumps), in a helper container of the same image with ``--volumes-from`` the service
container. ``LocalTarget`` runs the same argv as a local process (in the pod) and can
stop/start the service with configured commands (e.g. ``kubectl scale``).

Network mode (backend ``local`` and ``host`` set for a datastore; what the pod uses, whose
datastores live in other pods on ReadWriteOnce volumes):

* PostgreSQL: ``pg_dumpall --globals-only`` / ``pg_dump -Fc`` / ``pg_restore`` over TCP to
  ``host:port`` (password from ``password_file``, given to the tools as PGPASSWORD in their
  environment, never on a command line);
* Redis: ``redis-cli --rdb`` as the admin ACL user (REDISCLI_AUTH in the environment):
  the server forks and streams a fresh RDB, stored as the same ``redis/dump.rdb``;
  restoring an RDB needs the server's volume, so it is refused over the network;
* ChromaDB: a logical export over the HTTP API v2 (token header from ``token_file``):
  ``chromadb/export.jsonl`` (kind ``chroma-export``), restored by creating the
  collections and adding the records in batches;
* drills (``LocalDrill``): throwaway processes in the pod (initdb + pg_ctl, redis-server
  on a Unix socket), the Chroma export checked by parsing it (never loaded).

Backup set layout (one directory per run under the backup root)::

    <root>/20261126T141502Z/            promoted (renamed) only when every part succeeded
        manifest.json                   see MANIFEST_SCHEMA below
        postgresql/globals.sql[.gz][.enc]
        postgresql/<database>.dump[.enc]
        redis/dump.rdb[.gz][.enc]
        chromadb/data.tar[.gz][.enc]         (docker backend: the persistent dir)
        chromadb/export.jsonl[.gz][.enc]     (network mode: logical export, see CHROMA_EXPORT)
        neo4j/<database>.dump[.enc]
    <root>/.partial-20261126T141502Z-<pid>/   a run in progress (removed when it fails)

Standard library only, except ``cryptography`` for encrypted sets.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

FORMAT_VERSION = 1
CHUNK = 1 << 20
SERVICES = ("postgresql", "redis", "chromadb", "neo4j")
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


# --------------------------------------------------------------------------- encryption

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


# --------------------------------------------------------------------------- artefacts


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


# --------------------------------------------------------------------------- exec backends


@dataclass
class Result:
    rc: int
    stdout: bytes
    stderr: bytes

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")


class CommandFailed(BackupError):
    pass


def _run_process(
    argv: list[str],
    env: dict[str, str] | None,
    stdin: Iterable[bytes] | None,
    sink: Callable[[bytes], None] | None,
    timeout: float | None,
    what: str,
    check: bool,
) -> Result:
    """Run argv; stream stdout into ``sink`` (or collect it); stdin from an iterable."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    deadline = None if timeout is None else time.monotonic() + timeout
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out_file:
        proc = subprocess.Popen(  # noqa: S603 - argv list, no shell
            argv,
            env=full_env,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE if sink is not None else out_file,
            stderr=err,
        )
        try:
            if stdin is not None:
                try:
                    for block in stdin:
                        proc.stdin.write(block)
                        if deadline and time.monotonic() > deadline:
                            raise CommandFailed(f"{what}: timed out after {timeout:g} s")
                except BrokenPipeError:
                    pass
                finally:
                    with contextlib.suppress(BrokenPipeError):
                        proc.stdin.close()
            if sink is not None:
                while True:
                    block = proc.stdout.read(CHUNK)
                    if not block:
                        break
                    sink(block)
                    if deadline and time.monotonic() > deadline:
                        raise CommandFailed(f"{what}: timed out after {timeout:g} s")
            rc = proc.wait(
                timeout=None if deadline is None else max(1, deadline - time.monotonic())
            )
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        err.seek(0)
        stderr = err.read()
        out_file.seek(0)
        stdout = out_file.read() if sink is None else b""
    if check and rc != 0:
        raise CommandFailed(f"{what} failed (exit {rc}): {one_line(stderr or stdout)}")
    return Result(rc, stdout, stderr)


class Target:
    """Where one datastore's commands run. Subclasses: DockerTarget, LocalTarget."""

    backend = "abstract"
    name = "?"

    def run(
        self,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        stdin: Iterable[bytes] | None = None,
        sink: Callable[[bytes], None] | None = None,
        timeout: float | None = None,
        what: str | None = None,
        check: bool = True,
    ) -> Result:
        raise NotImplementedError

    def run_offline(
        self,
        argv: list[str],
        *,
        env: dict[str, str] | None = None,
        stdin: Iterable[bytes] | None = None,
        sink: Callable[[bytes], None] | None = None,
        timeout: float | None = None,
        what: str | None = None,
        check: bool = True,
    ) -> Result:
        """Run argv with the service's data present but the service stopped."""
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        raise NotImplementedError

    def wait_healthy(self, timeout: float) -> None:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"backend": self.backend, "name": self.name}


class DockerTarget(Target):
    """A datastore in a Docker container (Compose service or a drill's throwaway)."""

    backend = "docker"

    def __init__(self, container: str, docker: str = "docker") -> None:
        self.name = container
        self.docker = docker
        self._inspect: dict[str, Any] | None = None

    @classmethod
    def find(cls, project: str, service: str, docker: str = "docker") -> DockerTarget | None:
        res = _run_process(
            [
                docker,
                "ps",
                "-a",
                "--filter",
                f"label=com.docker.compose.project={project}",
                "--filter",
                f"label=com.docker.compose.service={service}",
                "--format",
                "{{.Names}}",
            ],
            None,
            None,
            None,
            30,
            f"docker ps ({project}/{service})",
            True,
        )
        names = sorted(res.text.split())
        return cls(names[0], docker) if names else None

    def inspect(self, refresh: bool = False) -> dict[str, Any]:
        if self._inspect is None or refresh:
            res = _run_process(
                [self.docker, "inspect", self.name],
                None,
                None,
                None,
                30,
                f"docker inspect {self.name}",
                True,
            )
            self._inspect = json.loads(res.stdout)[0]
        return self._inspect

    @property
    def image(self) -> str:
        return self.inspect()["Config"]["Image"]

    @property
    def user(self) -> str:
        return self.inspect()["Config"].get("User") or ""

    def running(self) -> bool:
        return bool(self.inspect(refresh=True)["State"].get("Running"))

    def address(self, network_suffix: str = "_data") -> str | None:
        nets = (self.inspect(refresh=True).get("NetworkSettings") or {}).get("Networks") or {}
        for name, net in nets.items():
            if name.endswith(network_suffix) and net.get("IPAddress"):
                return net["IPAddress"]
        return next((n.get("IPAddress") for n in nets.values() if n.get("IPAddress")), None)

    def run(self, argv, *, env=None, stdin=None, sink=None, timeout=None, what=None, check=True):
        cmd = [self.docker, "exec"] + (["-i"] if stdin is not None else [])
        for key in env or {}:
            cmd += ["-e", key]  # value from our environment: never on a command line
        cmd += [self.name, *argv]
        return _run_process(
            cmd, env, stdin, sink, timeout, what or f"{argv[0]} in {self.name}", check
        )

    def run_offline(
        self,
        argv,
        *,
        env=None,
        stdin=None,
        sink=None,
        timeout=None,
        what=None,
        check=True,
        extra: list[str] | None = None,
    ):
        helper = f"{self.name}-bk-helper-{uuid.uuid4().hex[:8]}"
        cmd = [
            self.docker,
            "run",
            "--rm",
            "--name",
            helper,
            "--network",
            "none",
            "--volumes-from",
            self.name,
            "--entrypoint",
            argv[0],
        ]
        if stdin is not None:
            cmd.append("-i")
        if self.user:
            cmd += ["--user", self.user]
        for key in env or {}:
            cmd += ["-e", key]
        cmd += list(extra or [])
        cmd += [self.image, *argv[1:]]
        return _run_process(
            cmd, env, stdin, sink, timeout, what or f"{argv[0]} (helper of {self.name})", check
        )

    stop_signal: str | None = None
    _policy: str | None = None

    def stop(self) -> None:
        if self.stop_signal:
            # a server that ignores SIGTERM (Chroma's) gets its own signal; the restart
            # policy is off meanwhile, or Docker would start it again at once
            policy = (self.inspect(refresh=True)["HostConfig"].get("RestartPolicy") or {}).get(
                "Name"
            )
            if policy and policy != "no":
                _run_process(
                    [self.docker, "update", "--restart", "no", self.name],
                    None,
                    None,
                    None,
                    60,
                    f"docker update {self.name}",
                    True,
                )
                self._policy = policy
            _run_process(
                [self.docker, "kill", "-s", self.stop_signal, self.name],
                None,
                None,
                None,
                60,
                f"docker kill -s {self.stop_signal} {self.name}",
                False,
            )
            with contextlib.suppress(CommandFailed, subprocess.TimeoutExpired):
                _run_process(
                    [self.docker, "wait", self.name],
                    None,
                    None,
                    None,
                    60,
                    f"docker wait {self.name}",
                    True,
                )
        _run_process(
            [self.docker, "stop", "-t", "60", self.name],
            None,
            None,
            None,
            180,
            f"docker stop {self.name}",
            True,
        )

    def start(self) -> None:
        if self._policy:
            _run_process(
                [self.docker, "update", "--restart", self._policy, self.name],
                None,
                None,
                None,
                60,
                f"docker update {self.name}",
                True,
            )
            self._policy = None
        _run_process(
            [self.docker, "start", self.name],
            None,
            None,
            None,
            120,
            f"docker start {self.name}",
            True,
        )

    def wait_healthy(self, timeout: float, running_only: bool = False) -> None:
        deadline = time.monotonic() + timeout
        while True:
            state = self.inspect(refresh=True)["State"]
            health = (state.get("Health") or {}).get("Status")
            if state.get("Running") and (running_only or health in (None, "healthy")):
                return
            if time.monotonic() > deadline:
                raise BackupError(
                    f"{self.name} not healthy after {timeout:g} s "
                    f"(state {state.get('Status')}, health {health})"
                )
            time.sleep(0.5)

    def describe(self):
        return {"backend": self.backend, "name": self.name, "image": self.image}


class LocalTarget(Target):
    """The tools run here, as local processes (a Kubernetes pod / CronJob next to the data).

    Stopping and starting the service (restore, Neo4j's offline dump) is delegated to
    ``stop_command`` / ``start_command`` (e.g. ``kubectl scale --replicas=0 ...``) and
    health to ``health_command``; without them those operations are refused.
    """

    backend = "local"

    def __init__(
        self,
        name: str,
        stop_command: list[str] | None = None,
        start_command: list[str] | None = None,
        health_command: list[str] | None = None,
        address: str | None = None,
    ) -> None:
        self.name = name
        self.stop_command = stop_command
        self.start_command = start_command
        self.health_command = health_command
        self.address = address  # network mode: the server's host (None: tools next to the data)

    def describe(self) -> dict[str, Any]:
        out = {"backend": self.backend, "name": self.name}
        if self.address:
            out["host"] = self.address
        return out

    def run(self, argv, *, env=None, stdin=None, sink=None, timeout=None, what=None, check=True):
        return _run_process(list(argv), env, stdin, sink, timeout, what or argv[0], check)

    run_offline = run

    def _hook(self, cmd: list[str] | None, what: str) -> None:
        if not cmd:
            raise BackupError(
                f"{self.name}: the local backend needs a {what}_command to {what} "
                "the service (e.g. kubectl scale)"
            )
        _run_process(cmd, None, None, None, 600, f"{what} {self.name}", True)

    def stop(self) -> None:
        self._hook(self.stop_command, "stop")

    def start(self) -> None:
        self._hook(self.start_command, "start")

    def wait_healthy(self, timeout: float) -> None:
        if not self.health_command:
            return
        deadline = time.monotonic() + timeout
        while _run_process(self.health_command, None, None, None, 30, "health", False).rc != 0:
            if time.monotonic() > deadline:
                raise BackupError(f"{self.name} not healthy after {timeout:g} s")
            time.sleep(1)


# --------------------------------------------------------------------------- datastores


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


class Datastore:
    service = "?"

    def __init__(self, target: Target, conf: dict[str, Any]) -> None:
        self.t = target
        self.conf = conf

    @property
    def network(self) -> bool:
        """Network mode: local tools talk to a server elsewhere (conf ``host``)."""
        return isinstance(self.t, LocalTarget) and bool(self.conf.get("host"))

    # each returns plain data for the manifest
    def versions(self) -> dict[str, Any]:
        raise NotImplementedError

    def counts(self) -> dict[str, Any]:
        raise NotImplementedError

    def backup(self, ctx: Ctx) -> dict[str, Any]:
        raise NotImplementedError

    def check_compatible(self, section: dict[str, Any]) -> None:
        """Refuse (BackupError) a set this server cannot take."""
        have = version_tuple(self.versions().get("server_version"))
        want = version_tuple(section.get("server_version"))
        if have[:1] != want[:1] or have < want[:2]:
            raise BackupError(
                f"{self.service}: set made with server {section.get('server_version')}, "
                f"this server is {self.versions().get('server_version')} (incompatible)"
            )

    def restore(self, set_dir: str, section: dict[str, Any], secret: str | None) -> dict[str, Any]:
        raise NotImplementedError

    def ready(self) -> bool:
        """The service answers (its own check, quicker than Docker's health interval)."""
        return True

    def wait_ready(self, timeout: float = 120) -> None:
        if isinstance(self.t, DockerTarget):
            self.t.wait_healthy(timeout, running_only=True)
        else:
            self.t.wait_healthy(timeout)
        _wait(
            self.ready,
            timeout,
            f"{self.service} did not answer within {timeout:g} s after the start",
        )


# ---- PostgreSQL


class Postgres(Datastore):
    """pg_dump -Fc per database + pg_dumpall --globals-only, pg_restore: in the server's
    container (same version)."""

    service = "postgresql"

    def _env(self) -> dict[str, str]:
        return {"PGPASSWORD": self.conf.get("password") or ""}

    def _conn(self, db: str | None = None) -> list[str]:
        args = [
            "-h",
            self.conf.get("host") or self.conf.get("socket_dir", "/var/run/postgresql"),
            "-p",
            str(self.conf.get("port", 5432)),
            "-U",
            self.conf.get("user", "postgres"),
        ]
        return args + (["-d", db] if db else [])

    def psql(self, sql: str, db: str | None = None, check: bool = True) -> str:
        res = self.t.run(
            [
                "psql",
                "-X",
                "-qAt",
                "-v",
                "ON_ERROR_STOP=1",
                *self._conn(db or self.conf.get("database", "postgres")),
                "-c",
                sql,
            ],
            env=self._env(),
            timeout=600,
            what="psql",
            check=check,
        )
        return res.text.strip()

    def ready(self) -> bool:
        return self.psql("SELECT 1", "postgres", check=False) == "1"

    def databases(self) -> list[str]:
        out = self.psql(
            "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate "
            "AND datname <> 'postgres' ORDER BY 1"
        )
        wanted = self.conf.get("databases") or []
        dbs = [d for d in out.splitlines() if d]
        return [d for d in dbs if not wanted or d in wanted]

    def versions(self) -> dict[str, Any]:
        server = self.psql("SHOW server_version")
        tool = self.t.run(["pg_dump", "--version"], timeout=30).text.strip()
        return {
            "server_version": server.split()[0],
            "server_version_full": server,
            "tool_versions": {"pg_dump": tool},
        }

    def table_counts(self, db: str) -> dict[str, int]:
        tables = self.psql(
            "SELECT format('%I.%I', schemaname, relname) FROM pg_stat_user_tables ORDER BY 1", db
        )
        names = [t for t in tables.splitlines() if t]
        if not names:
            return {}
        sql = " UNION ALL ".join(
            f"SELECT '{n.replace(chr(39), chr(39) * 2)}', count(*) FROM {n}" for n in names
        )
        out = self.psql(sql, db)
        return {
            line.rsplit("|", 1)[0]: int(line.rsplit("|", 1)[1]) for line in out.splitlines() if line
        }

    def counts(self) -> dict[str, Any]:
        return {db: self.table_counts(db) for db in self.databases()}

    def backup(self, ctx: Ctx) -> dict[str, Any]:
        conn = self._conn()
        ctx.write_stream(
            "postgresql/globals.sql",
            "globals",
            lambda w: self.t.run(
                ["pg_dumpall", "--globals-only", *conn],
                env=self._env(),
                sink=w,
                what="pg_dumpall --globals-only",
            ),
        )
        dbs = self.databases()
        if not dbs:
            raise BackupError("postgresql: no database to back up")
        counts = {}
        for db in dbs:
            counts[db] = self.table_counts(db)
            ctx.write_stream(
                f"postgresql/{db}.dump",
                "pg_dump",
                lambda w, db=db: self.t.run(
                    ["pg_dump", "-Fc", *self._conn(db)],
                    env=self._env(),
                    sink=w,
                    what=f"pg_dump of {db}",
                ),
                compress=False,
            )  # -Fc is compressed already
        return {"counts": counts, "databases": dbs}

    def restore(self, set_dir, section, secret):
        env = self._env()
        details = {}
        for entry in section["files"]:
            if entry["kind"] == "globals" and self.conf.get("restore_globals", True):
                # existing roles report "already exists" and are kept: no ON_ERROR_STOP here.
                # The role we log in as keeps this deployment's password (its secrets may
                # differ from the set's): its CREATE/ALTER ROLE lines are left out.
                text = b"".join(read_artefact(set_dir, entry, secret)).decode("utf-8")
                me = self.conf.get("user", "postgres")
                names = {me, '"' + me.replace('"', '""') + '"'}
                kept = [
                    line
                    for line in text.splitlines()
                    if not any(
                        line.startswith(f"{verb} ROLE {n} ") or line.startswith(f"{verb} ROLE {n};")
                        for verb in ("CREATE", "ALTER")
                        for n in names
                    )
                ]
                self.t.run(
                    ["psql", "-X", "-q", *self._conn("postgres")],
                    env=env,
                    stdin=["\n".join(kept).encode("utf-8") + b"\n"],
                    what="psql (globals)",
                )
        for db in section["details"]["databases"]:
            entry = next(
                e for e in section["files"] if e["path"].startswith(f"postgresql/{db}.dump")
            )
            quoted = '"' + db.replace('"', '""') + '"'
            self.psql(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)", "postgres")
            self.t.run(
                [
                    "pg_restore",
                    "--create",
                    "--exit-on-error",
                    "--no-password",
                    *self._conn("postgres"),
                ],
                env=env,
                stdin=read_artefact(set_dir, entry, secret),
                what=f"pg_restore of {db}",
            )
            # no ANALYZE here (pg_restore does none either): autovacuum analyzes the new tables
            details[db] = "restored"
        return details


# ---- Redis


def info_fields(text: str) -> dict[str, str]:
    """Redis ``INFO`` output as {field: value}; section headers and other lines dropped."""
    return {
        name: value.strip()
        for name, sep, value in (line.partition(":") for line in text.splitlines())
        if sep and not name.startswith("#")
    }


def redis_loaded(cli: Callable[..., str]) -> bool:
    """True once a Redis server has loaded its whole dataset (RDB or AOF) and serves
    commands; ``cli(*args)`` runs one redis-cli command without raising and returns its output.

    * ``loading`` must read exactly 0: Redis 7.0 prints ``async_loading:0`` next to
      ``loading:1`` while it loads, so a substring test for "loading:0" passes in the middle
      of a load (the drill then counted 95030 of 107594 keys in db0 and none in db1/db3);
    * PING must answer PONG. A starting server handles clients only while it loads (between
      chunks of the file: INFO answers, PING gets -LOADING) or once it runs its normal event
      loop, i.e. after the load: a server that is not listening yet (connection refused,
      empty INFO), that answers -LOADING, or has not reached its event loop is not ready.
    """
    info = info_fields(cli("INFO", "persistence"))
    if info.get("loading") != "0" or info.get("async_loading", "0") != "0":
        return False
    return cli("PING") == "PONG"


class Redis(Datastore):
    """BGSAVE as the admin ACL user, copy the RDB; restore offline (AOF handled)."""

    service = "redis"

    def cli(
        self, *args: str, check: bool = True, target: Target | None = None, auth: bool = True
    ) -> str:
        cmd = ["redis-cli", *self._where()]
        env = None
        if auth and self.conf.get("password"):
            cmd += ["--user", self.conf.get("user", "kailash-admin"), "--no-auth-warning"]
            env = {"REDISCLI_AUTH": self.conf["password"]}
        res = (target or self.t).run(
            [*cmd, *args], env=env, timeout=60, what=f"redis-cli {args[0]}", check=check
        )
        out = res.text.strip()
        # LOADING: a server still loading its dataset refuses most commands
        if check and out.startswith(("ERR", "NOPERM", "WRONGPASS", "LOADING")):
            raise BackupError(f"redis: {args[0]} refused: {one_line(out)}")
        return out

    def _where(self) -> list[str]:
        if self.conf.get("socket"):
            return ["-s", self.conf["socket"]]
        host = ["-h", self.conf["host"]] if self.conf.get("host") else []
        return [*host, "-p", str(self.conf.get("port", 6379))]

    def ready(self) -> bool:
        """The dataset is loaded and the server serves commands (redis_loaded)."""
        return redis_loaded(lambda *args: self.cli(*args, check=False))

    def check_compatible(self, section: dict[str, Any]) -> None:
        if self.network:
            raise BackupError(
                "redis: an RDB can only be restored onto the server's data volume (stop the "
                "server, place dump.rdb, start it); over the network (backend local with a "
                "host) that is not possible: follow the Kubernetes restore procedure of "
                "docs/kubernetes.md"
            )
        super().check_compatible(section)

    def _backup_network(self, ctx: Ctx) -> dict[str, Any]:
        """``redis-cli --rdb``: the server forks (as for a replica's full sync, needs the
        admin ACL user: SYNC/REPLCONF) and streams a fresh RDB, staged in the partial set
        directory, then stored like a BGSAVE's dump.rdb."""
        before = self.counts()
        tmp = os.path.join(ctx.set_dir, f".redis-rdb-{os.getpid()}.tmp")
        env = None
        cmd = ["redis-cli", *self._where()]
        if self.conf.get("password"):
            cmd += ["--user", self.conf.get("user", "kailash-admin"), "--no-auth-warning"]
            env = {"REDISCLI_AUTH": self.conf["password"]}
        try:
            res = self.t.run(
                [*cmd, "--rdb", tmp],
                env=env,
                timeout=float(self.conf.get("save_timeout", 3600)),
                what="redis-cli --rdb",
                check=False,
            )
            if res.rc != 0 or not os.path.isfile(tmp) or os.path.getsize(tmp) == 0:
                raise BackupError(
                    f"redis: redis-cli --rdb failed (exit {res.rc}): "
                    f"{one_line(res.stderr + res.stdout, 400)} (needs the admin ACL user, "
                    "allowed SYNC and REPLCONF)"
                )
            with open(tmp, "rb") as fh:
                if fh.read(5) != b"REDIS":
                    raise BackupError("redis: redis-cli --rdb did not write an RDB file")

            def produce(w: Callable[[bytes], None]) -> None:
                with open(tmp, "rb") as fh:
                    while True:
                        block = fh.read(CHUNK)
                        if not block:
                            return
                        w(block)

            ctx.write_stream("redis/dump.rdb", "rdb", produce)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        after = self.counts()
        return {
            "counts": after,
            "counts_exact": before == after,
            "method": "redis-cli --rdb over the network (replication snapshot)",
            "host": self.conf["host"],
        }

    def info(self, section: str, **kw: Any) -> dict[str, str]:
        return info_fields(self.cli("INFO", section, **kw))

    def config(self, name: str) -> str:
        lines = self.cli("CONFIG", "GET", name).splitlines()
        return lines[1] if len(lines) > 1 else ""

    def versions(self):
        server = self.info("server")
        return {
            "server_version": server.get("redis_version", "").strip(),
            "tool_versions": {
                "redis-cli": self.t.run(["redis-cli", "--version"], timeout=30).text.strip()
            },
            "rdb_format": "RDB",
        }

    def counts(self, **kw: Any) -> dict[str, Any]:
        space = self.info("keyspace", **kw)
        out = {}
        for db, value in space.items():
            fields = dict(part.split("=") for part in value.strip().split(","))
            out[db] = {"keys": int(fields["keys"]), "expires": int(fields.get("expires", 0))}
        return out

    def backup(self, ctx: Ctx) -> dict[str, Any]:
        if self.network:
            return self._backup_network(ctx)
        before = self.counts()
        last = int(self.cli("LASTSAVE"))
        # Redis >= 7.0 counts completed saves (rdb_saves): no need to wait for LASTSAVE,
        # which has one-second resolution, to move
        saves = self.info("persistence").get("rdb_saves", "").strip()
        saves_before = int(saves) if saves.isdigit() else None
        if saves_before is None and int(time.time()) <= last:
            time.sleep(1.1)
        reply = self.cli("BGSAVE", "SCHEDULE", check=False)
        if "ERR" in reply or "NOPERM" in reply:
            raise BackupError(
                f"redis: BGSAVE refused: {one_line(reply)} "
                f"(needs the admin ACL user, not the application user)"
            )
        deadline = time.monotonic() + float(self.conf.get("save_timeout", 600))
        while True:
            pers = self.info("persistence")
            done = pers.get("rdb_bgsave_in_progress", "1").strip() == "0"
            if done and saves_before is not None:
                if int(pers.get("rdb_saves", "0").strip() or 0) > saves_before:
                    break
            elif done and int(self.cli("LASTSAVE")) > last:
                break
            if (
                pers.get("rdb_bgsave_in_progress", "").strip() == "0"
                and pers.get("rdb_last_bgsave_status", "").strip() == "err"
            ):
                raise BackupError("redis: BGSAVE failed (rdb_last_bgsave_status:err)")
            if time.monotonic() > deadline:
                raise BackupError("redis: BGSAVE did not finish in time")
            time.sleep(0.1)
        if self.info("persistence").get("rdb_last_bgsave_status", "").strip() != "ok":
            raise BackupError("redis: BGSAVE failed (rdb_last_bgsave_status not ok)")
        after = self.counts()
        path = os.path.join(self.config("dir") or "/data", self.config("dbfilename") or "dump.rdb")
        ctx.write_stream(
            "redis/dump.rdb",
            "rdb",
            lambda w: self.t.run(["cat", path], sink=w, what=f"copy of {path}"),
        )
        return {
            "counts": after,
            "counts_exact": before == after,
            "rdb_path": path,
            "appendonly": self.config("appendonly"),
        }

    def restore(self, set_dir, section, secret):
        data_dir = self.config("dir") or "/data"
        dbfile = self.config("dbfilename") or "dump.rdb"
        aof = self.config("appendonly") == "yes"
        aof_dir = self.config("appenddirname") or "appendonlydir"
        entry = section["files"][0]
        self.t.stop()
        try:
            self.t.run_offline(
                [
                    "sh",
                    "-c",
                    f'cat > "{data_dir}/.restore.rdb" && '
                    f'mv -f "{data_dir}/.restore.rdb" "{data_dir}/{dbfile}" && '
                    f'if [ -d "{data_dir}/{aof_dir}" ]; then '
                    f'rm -rf "{data_dir}/{aof_dir}.before-restore"; '
                    f'mv "{data_dir}/{aof_dir}" "{data_dir}/{aof_dir}.before-restore"; fi',
                ],
                stdin=read_artefact(set_dir, entry, secret),
                what="placing the RDB",
            )
            if aof:
                self._rebuild_aof(data_dir, dbfile)
        finally:
            self.t.start()
        return {"appendonly": aof}

    def _rebuild_aof(self, data_dir: str, dbfile: str) -> None:
        """An enabled AOF wins over the RDB at start: load the RDB with AOF off in a
        temporary server, turn AOF on there (it writes a fresh AOF from memory, i.e. a
        BGREWRITEAOF), shut it down, then the real server starts from that AOF."""
        if not isinstance(self.t, DockerTarget):
            raise BackupError(
                "redis: AOF rebuild on the local backend: start redis-server with "
                "--appendonly no, CONFIG SET appendonly yes, wait for the rewrite"
            )
        tmp = f"{self.t.name}-bk-aof-{uuid.uuid4().hex[:8]}"
        cmd = [
            self.t.docker,
            "run",
            "-d",
            "--rm",
            "--name",
            tmp,
            "--network",
            "none",
            "--volumes-from",
            self.t.name,
        ]
        if self.t.user:
            cmd += ["--user", self.t.user]
        cmd += [
            self.t.image,
            "redis-server",
            "--dir",
            data_dir,
            "--dbfilename",
            dbfile,
            "--appendonly",
            "no",
            "--save",
            "",
            "--port",
            "6379",
        ]
        _run_process(cmd, None, None, None, 60, "temporary redis-server", True)
        helper = DockerTarget(tmp, self.t.docker)
        temp = Redis(helper, {"port": 6379})
        try:
            deadline = time.monotonic() + 600
            # the whole RDB in memory first: the AOF is written from what is loaded
            _wait(temp.ready, 600, "redis: temporary server did not load the RDB", helper)
            temp.cli("CONFIG", "SET", "appendonly", "yes")
            while True:
                pers = temp.info("persistence")
                if pers.get("aof_last_bgrewrite_status") == "err":
                    raise BackupError("redis: AOF rewrite failed (aof_last_bgrewrite_status:err)")
                if (
                    pers.get("aof_rewrite_in_progress") == "0"
                    and pers.get("aof_rewrite_scheduled") == "0"
                    and pers.get("aof_enabled") == "1"
                ):
                    break
                if time.monotonic() > deadline:
                    raise BackupError("redis: AOF rewrite did not finish")
                time.sleep(0.3)
            helper.run(["redis-cli", "SHUTDOWN", "SAVE"], timeout=120, check=False)
        finally:
            _run_process([self.t.docker, "rm", "-f", tmp], None, None, None, 60, "rm", False)


# ---- ChromaDB


CHROMA_EXPORT = """
chromadb/export.jsonl: one JSON object per line (kind chroma-export, method "logical export")
  {"type": "header", "format": "kailash-chroma-export", "version": 1, "server_version": ...}
  {"type": "collection", "tenant", "database", "name", "id", "metadata", "configuration",
   "dimension"}                                 then that collection's records, in pages:
  {"type": "records", "tenant", "database", "collection", "ids", "embeddings",
   "documents", "metadatas", "uris"}
  {"type": "end", "collections": N, "records": M}   (a file without it is truncated)
"""
CHROMA_INCLUDE = ["embeddings", "documents", "metadatas", "uris"]


def _json_lines(chunks: Iterable[bytes], name: str) -> Iterator[dict[str, Any]]:
    buf = b""
    for block in chunks:
        buf += block
        *lines, buf = buf.split(b"\n")
        for line in lines:
            if line.strip():
                try:
                    yield json.loads(line)
                except ValueError:
                    raise BackupError(f"{name}: not a JSON line ({one_line(line, 80)})") from None
    if buf.strip():
        raise BackupError(f"{name}: truncated (no newline at the end)")


def chroma_export_counts(lines: Iterable[dict[str, Any]], name: str) -> dict[str, int]:
    """Records per collection of an export (keys as Chroma.counts), checking its framing."""
    counts: dict[str, int] = {}
    current = None
    header = end = None
    for obj in lines:
        kind = obj.get("type")
        if header is None:
            if kind != "header" or obj.get("format") != "kailash-chroma-export":
                raise BackupError(f"{name}: not a kailash Chroma export")
            header = obj
        elif kind == "collection":
            current = Chroma.key(obj["tenant"], obj["database"], obj["name"])
            counts[current] = 0
        elif kind == "records":
            key = Chroma.key(obj["tenant"], obj["database"], obj["collection"])
            if key != current:
                raise BackupError(f"{name}: records of {key} outside their collection")
            ids = obj.get("ids") or []
            for field_name in ("embeddings", "documents", "metadatas", "uris"):
                value = obj.get(field_name)
                if value is not None and len(value) != len(ids):
                    raise BackupError(f"{name}: {key}: {field_name} do not match the ids")
            counts[key] += len(ids)
        elif kind == "end":
            end = obj
        else:
            raise BackupError(f"{name}: unexpected line type {kind!r}")
    if end is None:
        raise BackupError(f"{name}: truncated export (no end line)")
    if end.get("collections") != len(counts) or end.get("records") != sum(counts.values()):
        raise BackupError(f"{name}: the end line does not match the records in the file")
    return counts


def _pack_f32(vector: list[float]) -> str:
    import base64
    import struct

    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


class Chroma(Datastore):
    """Docker backend: stop the server, tar its persistent dir (SQLite + segment files),
    start it again. Network mode: a logical export over the HTTP API v2 (CHROMA_EXPORT)."""

    service = "chromadb"

    @staticmethod
    def key(tenant: str, database: str, collection: str) -> str:
        prefix = "" if tenant == "default_tenant" else f"{tenant}/"
        return f"{prefix}{database}/{collection}"

    def _http(self, method: str, path: str, body: Any = None, timeout: float = 120) -> Any:
        """One API call to the server (or its token gate) at host:port, token in a header."""
        scheme = self.conf.get("scheme", "http")
        url = f"{scheme}://{self.conf['host']}:{self.conf.get('port', 8000)}"
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(url + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.conf.get("token"):
            req.add_header("X-Chroma-Token", self.conf["token"])
        # in-cluster traffic: no proxy from the environment
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(req, timeout=timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = one_line(exc.read() or b"", 300)
            raise BackupError(f"chromadb: {method} {path}: HTTP {exc.code} {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise BackupError(f"chromadb: {method} {path} at {url}: {reason}") from None
        return json.loads(raw) if raw.strip() else None

    def api(self, path: str) -> Any:
        if self.network:
            return self._http("GET", path)
        url = f"http://127.0.0.1:{self.conf.get('port', 8001)}{path}"
        res = self.t.run(["curl", "-fsS", "-m", "20", url], timeout=30, what=f"GET {path}")
        return json.loads(res.stdout or b"null")

    def versions(self):
        tool = (
            {"kailash_backup": "logical export over the HTTP API v2"}
            if self.network
            else {"tar": "GNU tar (helper container of the server image)"}
        )
        return {"server_version": str(self.api("/api/v2/version")), "tool_versions": tool}

    def tenants(self) -> list[str]:
        return list(self.conf.get("tenants") or ["default_tenant"])

    def databases(self, tenant: str) -> list[str]:
        out = self.api(f"/api/v2/tenants/{tenant}/databases") or []
        names = [db["name"] for db in out] or (
            ["default_database"] if tenant == "default_tenant" else []
        )
        return sorted(names)

    def collections(self, tenant: str, database: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        page = 1000
        while True:
            got = self.api(
                f"/api/v2/tenants/{tenant}/databases/{database}/collections"
                f"?limit={page}&offset={len(out)}"
            )
            out.extend(got or [])
            if len(got or []) < page:
                break
        return sorted(out, key=lambda c: c["name"])

    def counts(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for tenant in self.tenants() if self.network else ["default_tenant"]:
            base = f"/api/v2/tenants/{tenant}/databases"
            for dbname in self.databases(tenant):
                for coll in self.collections(tenant, dbname):
                    count = self.api(f"{base}/{dbname}/collections/{coll['id']}/count")
                    out[self.key(tenant, dbname, coll["name"])] = int(count)
        return out

    def __init__(self, target: Target, conf: dict[str, Any]) -> None:
        super().__init__(target, conf)
        if isinstance(target, DockerTarget):
            target.stop_signal = (
                "SIGINT"  # Chroma's server ignores SIGTERM (killed after the timeout)
            )

    def _export(self, ctx: Ctx) -> dict[str, Any]:
        """Every collection of every database of the configured tenants, paged with /get."""
        before = self.counts()
        page = int(self.conf.get("page_size", 300))
        exported: dict[str, int] = {}
        version = str(self.api("/api/v2/version"))

        def line(obj: dict[str, Any]) -> bytes:
            return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode("utf-8") + b"\n"

        def produce(w: Callable[[bytes], None]) -> None:
            w(
                line(
                    {
                        "type": "header",
                        "format": "kailash-chroma-export",
                        "version": 1,
                        "server_version": version,
                        "created_at": iso(utcnow()),
                    }
                )
            )
            for tenant in self.tenants():
                for db in self.databases(tenant):
                    base = f"/api/v2/tenants/{tenant}/databases/{db}/collections"
                    for coll in self.collections(tenant, db):
                        key = self.key(tenant, db, coll["name"])
                        w(
                            line(
                                {
                                    "type": "collection",
                                    "tenant": tenant,
                                    "database": db,
                                    "name": coll["name"],
                                    "id": coll["id"],
                                    "metadata": coll.get("metadata"),
                                    "configuration": coll.get("configuration_json"),
                                    "schema": coll.get("schema"),
                                    "dimension": coll.get("dimension"),
                                }
                            )
                        )
                        exported[key] = 0
                        while True:
                            got = self._http(
                                "POST",
                                f"{base}/{coll['id']}/get",
                                {"limit": page, "offset": exported[key], "include": CHROMA_INCLUDE},
                                timeout=600,
                            )
                            ids = got.get("ids") or []
                            if not ids:
                                break
                            w(
                                line(
                                    {
                                        "type": "records",
                                        "tenant": tenant,
                                        "database": db,
                                        "collection": coll["name"],
                                        "ids": ids,
                                        **{f: got.get(f) for f in CHROMA_INCLUDE},
                                    }
                                )
                            )
                            exported[key] += len(ids)
                            if len(ids) < page:
                                break
            w(
                line(
                    {"type": "end", "collections": len(exported), "records": sum(exported.values())}
                )
            )

        ctx.write_stream("chromadb/export.jsonl", "chroma-export", produce)
        return {
            "counts": exported,
            # written to while it was exported: counts (and records) may be off
            "counts_exact": before == exported,
            "method": "logical export over the HTTP API v2 (server kept running)",
            "format": "export-jsonl",
            "tenants": self.tenants(),
            "host": self.conf["host"],
        }

    def backup(self, ctx: Ctx) -> dict[str, Any]:
        if self.network:
            return self._export(ctx)
        counts = self.counts()
        path = self.conf.get("data_path", "/data")
        self.t.stop()
        try:
            ctx.write_stream(
                "chromadb/data.tar",
                "tar",
                lambda w: self.t.run_offline(
                    ["tar", "-C", path, "-cf", "-", "."], sink=w, what=f"tar of {path}"
                ),
            )
        finally:
            self.t.start()
        self.wait_ready()
        return {
            "counts": counts,
            "method": "server stopped, persistent dir archived",
            "data_path": path,
        }

    def ready(self) -> bool:
        self.api("/api/v2/heartbeat")
        return True

    @staticmethod
    def export_entry(section: dict[str, Any]) -> dict[str, Any] | None:
        return next((e for e in section["files"] if e.get("kind") == "chroma-export"), None)

    def restore(self, set_dir, section, secret):
        if self.export_entry(section) is not None:
            return self._import(set_dir, section, secret)
        path = section["details"].get("data_path", "/data")
        entry = section["files"][0]
        self.t.stop()
        try:
            self.t.run_offline(
                ["sh", "-c", f'find "{path}" -mindepth 1 -delete && tar -C "{path}" -xf -'],
                stdin=read_artefact(set_dir, entry, secret),
                what=f"untar into {path}",
            )
        finally:
            self.t.start()
        return {}

    def _import(self, set_dir, section, secret) -> dict[str, Any]:
        """Create each collection (name, metadata, configuration) and add its records in
        batches. A collection that exists and holds records is refused before any change,
        unless conf replace_collections (then it is deleted and created again)."""
        if not self.network:
            raise BackupError("chromadb: an export is restored over the API: give a host")
        entry = self.export_entry(section)
        name = entry["path"]
        replace = bool(self.conf.get("replace_collections"))
        wanted = [
            obj
            for obj in _json_lines(read_artefact(set_dir, entry, secret), name)
            if obj.get("type") == "collection"
        ]
        existing: dict[str, dict[str, Any]] = {}
        blocked = []
        for obj in wanted:
            tenant, db = obj["tenant"], obj["database"]
            if db not in self._databases_or_none(tenant):
                continue
            for coll in self.collections(tenant, db):
                if coll["name"] == obj["name"]:
                    key = self.key(tenant, db, obj["name"])
                    base = f"/api/v2/tenants/{tenant}/databases/{db}/collections"
                    count = int(self.api(f"{base}/{coll['id']}/count"))
                    existing[key] = {"count": count, "id": coll["id"]}
                    if count and not replace:
                        blocked.append(f"{key} ({count} records)")
        if blocked:
            raise BackupError(
                "chromadb: these collections exist and hold records: "
                + ", ".join(blocked)
                + " (refused; set replace_collections to delete and re-create them)"
            )
        created: dict[str, int] = {}
        ids_of: dict[str, str] = {}
        # embeddings as packed little-endian float32 (what Chroma's own client sends): the
        # exported decimals go back to the very same float32 values, bit for bit (the
        # server's own decimal parsing is off by one unit in the last place now and then)
        try:
            base64_ok = bool(
                (self.api("/api/v2/pre-flight-checks") or {}).get("supports_base64_encoding")
            )
        except BackupError:
            base64_ok = False
        for obj in _json_lines(read_artefact(set_dir, entry, secret), name):
            kind = obj.get("type")
            if kind == "collection":
                tenant, db = obj["tenant"], obj["database"]
                self._ensure_database(tenant, db)
                key = self.key(tenant, db, obj["name"])
                base = f"/api/v2/tenants/{tenant}/databases/{db}/collections"
                if key in existing:
                    self._http("DELETE", f"{base}/{obj['name']}")
                body: dict[str, Any] = {"name": obj["name"], "get_or_create": False}
                if obj.get("metadata"):
                    body["metadata"] = obj["metadata"]
                config = self._create_configuration(obj.get("configuration"))
                if config:
                    body["configuration"] = config
                coll = self._http("POST", base, body)
                ids_of[key] = coll["id"]
                created[key] = 0
            elif kind == "records":
                key = self.key(obj["tenant"], obj["database"], obj["collection"])
                base = f"/api/v2/tenants/{obj['tenant']}/databases/{obj['database']}/collections"
                body = {"ids": obj["ids"]}
                for f in CHROMA_INCLUDE:
                    values = obj.get(f)
                    if values is not None and any(v is not None for v in values):
                        if f == "embeddings" and base64_ok:
                            values = [None if v is None else _pack_f32(v) for v in values]
                        body[f] = values
                self._http("POST", f"{base}/{ids_of[key]}/add", body, timeout=600)
                created[key] += len(obj["ids"])
        return {"collections": created, "replaced": sorted(existing)}

    @staticmethod
    def _create_configuration(config: Any) -> dict[str, Any] | None:
        """The index settings of an exported configuration that a create accepts (the
        embedding function is the client's business: records carry their embeddings)."""
        if not isinstance(config, dict):
            return None
        out = {k: config[k] for k in ("hnsw", "spann") if config.get(k)}
        return out or None

    def _databases_or_none(self, tenant: str) -> list[str]:
        try:
            return self.databases(tenant)
        except BackupError:
            return []

    def _ensure_database(self, tenant: str, db: str) -> None:
        try:
            self.api(f"/api/v2/tenants/{tenant}")
        except BackupError:
            self._http("POST", "/api/v2/tenants", {"name": tenant})
        if db not in self._databases_or_none(tenant):
            self._http("POST", f"/api/v2/tenants/{tenant}/databases", {"name": db})

    def check_compatible(self, section):
        export = self.export_entry(section) is not None
        if export and not self.network:
            raise BackupError(
                "chromadb: the set holds a logical export (export.jsonl): restore it with "
                "backend local and the server's host"
            )
        if not export and self.network:
            raise BackupError(
                "chromadb: the set holds the persistent dir (data.tar, docker backend): it "
                "cannot be restored over the network"
            )
        have = version_tuple(self.versions()["server_version"])
        want = version_tuple(section.get("server_version"))
        if have[:2] != want[:2] and have < want:
            raise BackupError(
                f"chromadb: set made with {section.get('server_version')}, "
                f"server is older ({'.'.join(map(str, have))})"
            )


# ---- Neo4j


class Neo4j(Datastore):
    """neo4j-admin database dump (offline: maintenance window), load on restore.

    Neo4j 5 community has no online backup: the server is stopped, each database is
    dumped to stdout by neo4j-admin in a helper container of the same image with the
    same volumes, then the server is started again and health-checked. Not exercised
    here (no Neo4j image can be obtained offline)."""

    service = "neo4j"

    def cypher(self, query: str) -> str:
        res = self.t.run(
            [
                "cypher-shell",
                "-a",
                f"bolt://127.0.0.1:{self.conf.get('port', 7687)}",
                "-u",
                self.conf.get("user", "neo4j"),
                "--format",
                "plain",
                query,
            ],
            env={"NEO4J_PASSWORD": self.conf.get("password") or ""},
            timeout=120,
            what="cypher-shell",
        )
        return res.text.strip()

    def versions(self):
        out = self.cypher("CALL dbms.components() YIELD versions RETURN versions[0]")
        return {
            "server_version": out.splitlines()[-1].strip('"'),
            "tool_versions": {"neo4j-admin": "same image (helper container)"},
        }

    def counts(self):
        nodes = self.cypher("MATCH (n) RETURN count(n)").splitlines()[-1]
        rels = self.cypher("MATCH ()-[r]->() RETURN count(r)").splitlines()[-1]
        return {"neo4j": {"nodes": int(nodes), "relationships": int(rels)}}

    def backup(self, ctx):
        counts = self.counts()
        dbs = self.conf.get("databases") or ["neo4j", "system"]
        self.t.stop()
        try:
            for db in dbs:
                ctx.write_stream(
                    f"neo4j/{db}.dump",
                    "neo4j-dump",
                    lambda w, db=db: self.t.run_offline(
                        ["neo4j-admin", "database", "dump", db, "--to-stdout"],
                        sink=w,
                        what=f"neo4j-admin database dump {db}",
                    ),
                )
        finally:
            self.t.start()
        self.wait_ready(float(self.conf.get("start_timeout", 300)))
        return {"counts": counts, "databases": dbs, "method": "offline dump (maintenance window)"}

    def ready(self) -> bool:
        self.cypher("RETURN 1")
        return True

    def restore(self, set_dir, section, secret):
        self.t.stop()
        try:
            for db in section["details"]["databases"]:
                entry = next(
                    e for e in section["files"] if e["path"].startswith(f"neo4j/{db}.dump")
                )
                self.t.run_offline(
                    [
                        "neo4j-admin",
                        "database",
                        "load",
                        db,
                        "--from-stdin",
                        "--overwrite-destination=true",
                    ],
                    stdin=read_artefact(set_dir, entry, secret),
                    what=f"neo4j-admin database load {db}",
                )
        finally:
            self.t.start()
        return {}


HANDLERS: dict[str, type[Datastore]] = {
    "postgresql": Postgres,
    "redis": Redis,
    "chromadb": Chroma,
    "neo4j": Neo4j,
}
# Compose service that holds the data (chromadb: the server, not the gate)
DATA_SERVICE = {
    "postgresql": "postgresql",
    "redis": "redis",
    "chromadb": "chromadb-server",
    "neo4j": "neo4j",
}


def make_target(
    service: str, conf: dict[str, Any], backend: str, project: str | None, docker: str = "docker"
) -> Target | None:
    """The target of one service, or None when it is not deployed."""
    if backend == "local":
        return LocalTarget(
            service,
            conf.get("stop_command"),
            conf.get("start_command"),
            conf.get("health_command"),
            address=conf.get("host"),
        )
    if conf.get("container"):
        return DockerTarget(conf["container"], docker)
    return DockerTarget.find(project or "kailash", DATA_SERVICE[service], docker)


# --------------------------------------------------------------------------- sets


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


def compare_counts(expected: Any, actual: Any, service: str, exact: bool = True) -> list[str]:
    """Differences between the counts recorded in the manifest and those found."""
    diffs: list[str] = []
    if service == "redis":
        for db, want in (expected or {}).items():
            have = (actual or {}).get(db, {"keys": 0})
            # keys with a TTL may expire between backup and restore
            low = want["keys"] - want.get("expires", 0)
            if not low <= have["keys"] <= want["keys"] or (
                exact and not want.get("expires") and have["keys"] != want["keys"]
            ):
                diffs.append(f"redis {db}: {have['keys']} keys, manifest {want['keys']}")
        for db in set(actual or {}) - set(expected or {}):
            diffs.append(f"redis {db}: {actual[db]['keys']} keys, not in the manifest")
        return diffs

    def walk(prefix: str, want: Any, have: Any) -> None:
        if isinstance(want, dict):
            have = have if isinstance(have, dict) else {}
            for key in sorted(set(want) | set(have)):
                walk(f"{prefix}/{key}", want.get(key), have.get(key))
        elif want != have:
            diffs.append(f"{prefix}: {have}, manifest {want}")

    walk(service, expected, actual)
    return diffs


# --------------------------------------------------------------------------- runs


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
        if svc not in HANDLERS:
            raise BackupError(f"unknown service {svc!r} (known: {', '.join(SERVICES)})")
        target = make_target(svc, s.datastores.get(svc) or {}, s.backend, s.project, s.docker)
        if target is None:
            missing.append(svc)
        else:
            targets[svc] = target
    if missing and not s.skip_missing:
        raise BackupError(f"not deployed: {', '.join(missing)}")
    return targets, missing


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
    manifest: dict[str, Any] = {
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
    t0 = time.monotonic()
    try:
        for svc, target in targets.items():
            handler = HANDLERS[svc](target, s.datastores.get(svc) or {})
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
            manifest["services"][svc] = section
        # every file re-read from disk and compared with what was hashed while writing
        for section in manifest["services"].values():
            for entry in section["files"]:
                size, digest = sha256_file(os.path.join(partial, entry["path"]))
                if (size, digest) != (entry["size"], entry["sha256"]):
                    raise BackupError(f"{entry['path']}: changed on disk while the set was written")
        manifest["finished_at"] = iso(utcnow())
        manifest["duration_s"] = round(time.monotonic() - t0, 3)
        files = [e for sec in manifest["services"].values() for e in sec["files"]]
        manifest["totals"] = {"files": len(files), "bytes": sum(e["size"] for e in files)}
        mtmp = os.path.join(partial, "manifest.json.tmp")
        with open(mtmp, "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, indent=2, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.rename(mtmp, os.path.join(partial, "manifest.json"))
        for dirpath, _dirs, _files in os.walk(partial):
            fsync_dir(dirpath)
        os.rename(partial, final)  # atomic promotion (same filesystem)
        fsync_dir(s.backup_root)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    deleted = []
    for old in retention_plan(list_sets(s.backup_root), s.keep_last, s.keep_daily, s.keep_weekly):
        if old != name:
            shutil.rmtree(os.path.join(s.backup_root, old))
            deleted.append(old)
    result.update(
        manifest=manifest,
        deleted=deleted,
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
    handlers = {svc: HANDLERS[svc](targets[svc], s.datastores.get(svc) or {}) for svc in wanted}
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


# --------------------------------------------------------------------------- drills


class Drill:
    """Restore a set into throwaway containers (<project>-drill-<service>), never the stack."""

    def __init__(
        self, s: Settings, set_dir: str, manifest: dict[str, Any], log: Callable[[str], None]
    ) -> None:
        self.s = s
        self.set_dir = set_dir
        self.manifest = manifest
        self.log = log
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
        secret = self.s.encryption_key
        if svc == "postgresql":
            conf.update(
                user=conf.get("user", "kailash_user"),
                password="drill-" + uuid.uuid4().hex,
                database="postgres",
                restore_globals=False,
            )
            # explicit server options: the built image's entrypoint needs at least one
            target = self.container(
                svc,
                image,
                ["postgres", "-c", "max_connections=50"],
                env={
                    "POSTGRES_USER": conf["user"],
                    "POSTGRES_PASSWORD": conf["password"],
                    "POSTGRES_DB": "postgres",
                    "PGDATA": "/var/lib/postgresql/data/pgdata",
                },
                user="70:70",
                volume_path="/var/lib/postgresql/data",
                tmpfs=["/var/run/postgresql:uid=70,gid=70,mode=0775"],
            )
            handler: Datastore = Postgres(target, conf)
            # the entrypoint's socket-only init server (listen_addresses '') stops once:
            # ready = the final server answers (as the role's healthcheck decides)
            _wait(
                lambda: (
                    handler.psql(
                        "SELECT 1 WHERE current_setting('listen_addresses') <> ''",
                        "postgres",
                        check=False,
                    )
                    == "1"
                ),
                120,
                "drill PostgreSQL did not start",
                target,
            )
            handler.restore(self.set_dir, section, secret)
        elif svc == "redis":
            conf.update(password=None, port=6379)
            target = self.container(
                svc, image, ["sleep", "infinity"], user="999:999", entrypoint=""
            )
            entry = section["files"][0]
            target.run(
                ["sh", "-c", "cat > /data/dump.rdb"],
                stdin=read_artefact(self.set_dir, entry, secret),
                what="placing the RDB",
            )
            target.run(
                [
                    "redis-server",
                    "--dir",
                    "/data",
                    "--dbfilename",
                    "dump.rdb",
                    "--appendonly",
                    "no",
                    "--save",
                    "",
                    "--port",
                    "6379",
                    "--daemonize",
                    "yes",
                ],
                what="redis-server",
            )
            handler = Redis(target, conf)
            _wait(handler.ready, 300, "drill Redis did not load the RDB", target)
        elif svc == "chromadb" and Chroma.export_entry(section) is not None:
            # a set of the network mode (Kubernetes): checked, not loaded (as LocalDrill)
            return {**drill_chroma_export(self.set_dir, section, secret), "image": image}
        elif svc == "chromadb":
            conf.update(port=8000)
            target = self.container(svc, image, ["sleep", "infinity"], entrypoint="")
            entry = section["files"][0]
            target.run(
                ["tar", "-C", "/data", "-xf", "-"],
                stdin=read_artefact(self.set_dir, entry, secret),
                what="untar",
            )
            target.run(
                [
                    "sh",
                    "-c",
                    "nohup chroma run --path /data --host 127.0.0.1 --port 8000 "
                    ">/tmp/chroma.log 2>&1 &",
                ],
                what="chroma run",
            )
            handler = Chroma(target, conf)
            _wait(
                lambda: (
                    target.run(
                        ["curl", "-fsS", "http://127.0.0.1:8000/api/v2/heartbeat"], check=False
                    ).rc
                    == 0
                ),
                120,
                "drill ChromaDB did not start",
            )
        else:
            target = self.container(
                svc,
                image,
                ["sleep", "infinity"],
                entrypoint="",
                env={"NEO4J_AUTH": "neo4j/" + (conf.get("password") or "drill-pass-1")},
            )
            for db in section["details"]["databases"]:
                entry = next(
                    e for e in section["files"] if e["path"].startswith(f"neo4j/{db}.dump")
                )
                target.run(
                    [
                        "neo4j-admin",
                        "database",
                        "load",
                        db,
                        "--from-stdin",
                        "--overwrite-destination=true",
                    ],
                    stdin=read_artefact(self.set_dir, entry, secret),
                    what=f"load {db}",
                )
            target.run(
                ["sh", "-c", "nohup /startup/docker-entrypoint.sh neo4j >/tmp/neo4j.log 2>&1 &"]
            )
            handler = Neo4j(target, conf)
            handler.wait_ready(300)
        counts = handler.counts()
        diffs = compare_counts(section["counts"], counts, svc, section.get("counts_exact", True))
        return {"counts": counts, "differences": diffs, "passed": not diffs, "image": image}


class LocalDrill:
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
        self.s = s
        self.set_dir = set_dir
        self.manifest = manifest
        self.log = log
        base = s.work_dir or None
        if base:
            os.makedirs(base, mode=0o700, exist_ok=True)
        self.work = tempfile.mkdtemp(prefix=f"{s.project}-drill-", dir=base)
        # sockets in a short private path (sun_path holds 107 bytes)
        self.sockets = tempfile.mkdtemp(prefix="kbd-")
        self.procs: list[subprocess.Popen[bytes]] = []
        self.pg_stop: list[str] | None = None

    def run_service(self, svc: str) -> dict[str, Any]:
        section = self.manifest["services"][svc]
        if svc == "postgresql":
            handler: Datastore = self._postgres(section)
        elif svc == "redis":
            handler = self._redis(section)
        elif svc == "chromadb":
            return self._chroma(section)
        else:
            raise BackupError(f"{svc}: the local drill cannot restore it (use the docker drill)")
        counts = handler.counts()
        diffs = compare_counts(section["counts"], counts, svc, section.get("counts_exact", True))
        return {
            "counts": counts,
            "differences": diffs,
            "passed": not diffs,
            "method": "restored into a throwaway process in this pod/container",
        }

    @staticmethod
    def _pg_bin(conf: dict[str, Any]) -> str:
        if conf.get("pg_bin_dir"):
            return conf["pg_bin_dir"]
        found = shutil.which("initdb")
        if found:
            return os.path.dirname(found)
        import glob

        dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version_tuple)
        if not dirs:
            raise BackupError("postgresql: no initdb/pg_ctl (postgresql server package) here")
        return os.path.dirname(dirs[-1])

    def _postgres(self, section: dict[str, Any]) -> Datastore:
        conf = dict(self.s.datastores.get("postgresql") or {})
        user = conf.get("user", "kailash_user")
        bindir = self._pg_bin(conf)
        data = os.path.join(self.work, "pgdata")
        sock = os.path.join(self.sockets, "pg")
        os.makedirs(sock, mode=0o700)
        target = LocalTarget("drill-postgresql")
        target.run(
            [
                os.path.join(bindir, "initdb"),
                "-D",
                data,
                "-U",
                user,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ],
            env={"LC_ALL": "C.UTF-8"},
            timeout=300,
            what="initdb (drill)",
        )
        opts = (
            f"-c listen_addresses='' -k {sock} -p 5432 -c max_connections=20 "
            "-c shared_buffers=32MB -c fsync=off -c full_page_writes=off"
        )
        ctl = os.path.join(bindir, "pg_ctl")
        # set before the start: a start that fails half-way may leave a postmaster behind
        self.pg_stop = [ctl, "-D", data, "-m", "immediate", "-w", "stop"]
        target.run(
            [
                ctl,
                "-D",
                data,
                "-o",
                opts,
                "-l",
                os.path.join(self.work, "pg.log"),
                "-w",
                "-t",
                "120",
                "start",
            ],
            timeout=180,
            what="pg_ctl start (drill)",
        )
        handler = Postgres(
            target,
            {
                **{k: v for k, v in conf.items() if k in ("databases",)},
                "host": sock,
                "port": 5432,
                "user": user,
                "database": "postgres",
                "restore_globals": False,
            },
        )
        handler.restore(self.set_dir, section, self.s.encryption_key)
        return handler

    def _redis(self, section: dict[str, Any]) -> Datastore:
        rdir = os.path.join(self.work, "redis")
        os.makedirs(rdir, mode=0o700)
        entry = section["files"][0]
        with open(os.path.join(rdir, "dump.rdb"), "wb") as fh:
            for block in read_artefact(self.set_dir, entry, self.s.encryption_key):
                fh.write(block)
        sock = os.path.join(self.sockets, "redis.sock")
        log = open(os.path.join(self.work, "redis.log"), "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(  # noqa: S603 - argv list
            [
                "redis-server",
                "--port",
                "0",
                "--unixsocket",
                sock,
                "--unixsocketperm",
                "700",
                "--dir",
                rdir,
                "--dbfilename",
                "dump.rdb",
                "--appendonly",
                "no",
                "--save",
                "",
                "--daemonize",
                "no",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        self.procs.append(proc)
        handler = Redis(LocalTarget("drill-redis"), {"socket": sock})

        def loaded() -> bool:
            if proc.poll() is not None:
                with open(os.path.join(self.work, "redis.log"), "rb") as fh:
                    tail = fh.read()[-400:]
                raise BackupError(f"drill redis-server exited: {one_line(tail, 400)}")
            return os.path.exists(sock) and handler.ready()

        deadline = time.monotonic() + 600
        while True:
            try:
                if loaded():
                    break
            except CommandFailed:
                pass
            if time.monotonic() > deadline:
                raise BackupError("drill Redis did not load the RDB")
            time.sleep(0.3)
        return handler

    def _chroma(self, section: dict[str, Any]) -> dict[str, Any]:
        if Chroma.export_entry(section) is None:
            raise BackupError(
                "chromadb: the set holds the persistent dir (data.tar): the local drill "
                "checks logical exports only (use the docker drill)"
            )
        return drill_chroma_export(self.set_dir, section, self.s.encryption_key)

    def cleanup(self) -> None:
        if self.pg_stop:
            with contextlib.suppress(BackupError, subprocess.TimeoutExpired):
                _run_process(self.pg_stop, None, None, None, 120, "pg_ctl stop", False)
        for proc in self.procs:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(30)
        shutil.rmtree(self.work, ignore_errors=True)
        shutil.rmtree(self.sockets, ignore_errors=True)


def drill_chroma_export(set_dir: str, section: dict[str, Any], secret: str | None) -> dict:
    """The drill of a Chroma logical export (either backend): decode it, check its framing,
    count the records per collection and compare with the manifest. Not loaded anywhere."""
    entry = Chroma.export_entry(section)
    counts = chroma_export_counts(
        _json_lines(read_artefact(set_dir, entry, secret), entry["path"]), entry["path"]
    )
    diffs = compare_counts(section["counts"], counts, "chromadb", True)
    return {
        "counts": counts,
        "differences": diffs,
        "passed": not diffs,
        "method": "export checksummed, decoded and its records counted; "
        "not loaded into a Chroma server",
    }


def _wait(cond: Callable[[], bool], timeout: float, msg: str, target: Target | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if isinstance(target, DockerTarget) and not target.running():
            logs = _run_process(
                [target.docker, "logs", "--tail", "5", target.name],
                None,
                None,
                None,
                30,
                "docker logs",
                False,
            )
            raise BackupError(
                f"{msg}: container {target.name} exited: {one_line(logs.stderr + logs.stdout, 400)}"
            )
        try:
            if cond():
                return
        except BackupError:
            pass
        if time.monotonic() > deadline:
            raise BackupError(msg)
        time.sleep(0.5)


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


# --------------------------------------------------------------------------- CLI


CONFIG_TOP = {
    "backup_root": "absolute path of the sets (in the pod: /backups/sets)",
    "project": "name in the manifest and the drill records",
    "backend": "docker | local",
    "services": "datastores to act on",
    "datastores": "per service: host, port, user, password_file, ...",
    "compress": "gzip the artefacts",
    "encryption_key_file": "file holding the encryption key (a mounted Secret key)",
    "encryption_key": "the key itself (prefer encryption_key_file)",
    "label": "free text in the manifest",
    "keep_last": "retention",
    "keep_daily": "retention",
    "keep_weekly": "retention",
    "report_dir": "drill: directory of restore-drill-<project>.json",
    "textfile_dir": "drill: directory of the Prometheus textfile",
    "work_dir": "local drill: scratch space",
    "skip_missing": "skip services that are not deployed",
    "docker": "docker client (backend docker)",
}
CONFIG_DATASTORE = {
    "host", "port", "user", "password", "password_file", "token", "token_file", "scheme",
    "database", "databases", "socket_dir", "socket", "restore_globals", "data_path",
    "start_timeout", "save_timeout", "container", "image", "stop_command", "start_command",
    "health_command", "tenants", "page_size", "replace_collections", "pg_bin_dir",
}  # fmt: skip
# network mode: the datastores a pod can back up without their volumes
NETWORK_SERVICES = ("postgresql", "redis", "chromadb")


def _read_secret_file(path: Any, field_name: str) -> str:
    if not isinstance(path, str) or not os.path.isabs(path):
        raise BackupError(f"{field_name}: must be an absolute path, got {path!r}")
    try:
        with open(path, encoding="utf-8") as fh:
            value = fh.read().rstrip("\r\n")
    except OSError as exc:
        raise BackupError(f"{field_name}: cannot read {path} ({exc.strerror})") from None
    if not value:
        raise BackupError(f"{field_name}: {path} is empty")
    return value


def load_config(data: Any, where: str = "config") -> dict[str, Any]:
    """Validate the CLI's JSON config and resolve its *_file secrets into a new dict (the
    Settings fields + report_dir/textfile_dir). Errors name the field; never a value."""
    if not isinstance(data, dict):
        raise BackupError(f"{where}: must be a JSON object")
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key.startswith("_"):
            continue  # comments
        if key not in CONFIG_TOP:
            raise BackupError(f"{where}: unknown field {key!r} (known: {', '.join(CONFIG_TOP)})")
        out[key] = value
    root = out.get("backup_root")
    if not isinstance(root, str) or not os.path.isabs(root):
        raise BackupError(f"{where}: backup_root: required, an absolute path, got {root!r}")
    backend = out.setdefault("backend", "docker")
    if backend not in ("docker", "local"):
        raise BackupError(f"{where}: backend: docker or local, got {backend!r}")
    services = out.setdefault("services", list(SERVICES))
    if not isinstance(services, list) or not services:
        raise BackupError(f"{where}: services: a non-empty list of {', '.join(SERVICES)}")
    for svc in services:
        if svc not in SERVICES:
            raise BackupError(f"{where}: services: unknown {svc!r} (known: {', '.join(SERVICES)})")
    for key in ("compress", "skip_missing"):
        if key in out and not isinstance(out[key], bool):
            raise BackupError(f"{where}: {key}: true or false, got {out[key]!r}")
    for key, low in (("keep_last", 1), ("keep_daily", 0), ("keep_weekly", 0)):
        if key in out and (
            not isinstance(out[key], int) or isinstance(out[key], bool) or out[key] < low
        ):
            raise BackupError(f"{where}: {key}: a whole number >= {low}, got {out[key]!r}")
    for key in ("report_dir", "textfile_dir", "work_dir"):
        if out.get(key) is not None and (
            not isinstance(out[key], str) or not os.path.isabs(out[key])
        ):
            raise BackupError(f"{where}: {key}: an absolute path, got {out[key]!r}")
    if "encryption_key_file" in out:
        out["encryption_key"] = _read_secret_file(
            out.pop("encryption_key_file"), f"{where}: encryption_key_file"
        )
    stores = out.get("datastores") or {}
    if not isinstance(stores, dict):
        raise BackupError(f"{where}: datastores: an object per service")
    resolved: dict[str, dict[str, Any]] = {}
    for svc, conf in stores.items():
        name = f"{where}: datastores.{svc}"
        if svc not in SERVICES:
            raise BackupError(f"{name}: unknown service (known: {', '.join(SERVICES)})")
        if not isinstance(conf, dict):
            raise BackupError(f"{name}: must be an object")
        conf = dict(conf)
        for key in conf:
            if key not in CONFIG_DATASTORE and not key.startswith("_"):
                raise BackupError(f"{name}: unknown field {key!r}")
        if "port" in conf and (
            not isinstance(conf["port"], int)
            or isinstance(conf["port"], bool)
            or not 0 < conf["port"] < 65536
        ):
            raise BackupError(f"{name}.port: a TCP port number, got {conf['port']!r}")
        if "host" in conf and (not isinstance(conf["host"], str) or not conf["host"]):
            raise BackupError(f"{name}.host: a host name or address, got {conf['host']!r}")
        if "password_file" in conf:
            conf["password"] = _read_secret_file(conf.pop("password_file"), f"{name}.password_file")
        if "token_file" in conf:
            conf["token"] = _read_secret_file(conf.pop("token_file"), f"{name}.token_file")
        resolved[svc] = conf
    if backend == "local":
        for svc in services:
            if svc not in NETWORK_SERVICES:
                raise BackupError(
                    f"{where}: services: {svc} cannot be backed up over the network (Neo4j 5 "
                    "community dumps offline, next to its volume): remove it"
                )
            if not (resolved.get(svc) or {}).get("host"):
                raise BackupError(
                    f"{where}: datastores.{svc}.host: required with backend local (the "
                    "server's address, e.g. its Kubernetes Service name)"
                )
    out["datastores"] = resolved
    return out


def main(argv: list[str] | None = None) -> int:
    """python3 -m kailash_backup {backup|restore|verify|drill} --config settings.json

    The JSON holds the Settings fields (backup_root, backend, services, datastores, ...,
    see CONFIG_TOP); secrets come from files: encryption_key_file,
    datastores.<service>.password_file / token_file (e.g. mounted Kubernetes Secret keys).
    Fallbacks from the environment: KAILASH_BACKUP_ENCRYPTION_KEY,
    KAILASH_<SERVICE>_PASSWORD."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("action", choices=["backup", "restore", "verify", "drill", "extract"])
    parser.add_argument("--config", required=True)
    parser.add_argument("--set", default="latest")
    parser.add_argument("--check", action="store_true")
    parser.add_argument(
        "--services",
        help="comma-separated subset of the config's services (e.g. restore postgresql,chromadb)",
    )
    parser.add_argument("--file", help="extract: path of the artefact in the set (redis/dump.rdb)")
    parser.add_argument("--out", help="extract: where to write its decoded bytes")
    parser.add_argument(
        "--replace-collections",
        action="store_true",
        help="restore: delete and re-create Chroma collections that exist and hold records",
    )
    args = parser.parse_args(argv)
    try:
        try:
            with open(args.config, encoding="utf-8") as fh:
                raw = json.load(fh)
        except OSError as exc:
            raise BackupError(f"{args.config}: cannot read ({exc.strerror})") from None
        except ValueError as exc:
            raise BackupError(f"{args.config}: not valid JSON ({exc})") from None
        data = load_config(raw, args.config)
        if not data.get("encryption_key"):
            data["encryption_key"] = os.environ.get("KAILASH_BACKUP_ENCRYPTION_KEY")
        for svc in SERVICES:
            pw = os.environ.get(f"KAILASH_{svc.upper()}_PASSWORD")
            store = data["datastores"].setdefault(svc, {})
            if pw and not store.get("password"):
                store["password"] = pw
        if args.replace_collections:
            data["datastores"].setdefault("chromadb", {})["replace_collections"] = True
        if args.services:
            subset = [s for s in args.services.split(",") if s]
            extra = [s for s in subset if s not in data["services"]]
            if extra:
                raise BackupError(f"--services: {', '.join(extra)} not in the config's services")
            data["services"] = subset
        if args.action == "extract" and not (args.file and args.out):
            raise BackupError("extract needs --file (e.g. redis/dump.rdb) and --out")
        settings = Settings.from_dict(data)
    except BackupError as exc:
        print(json.dumps({"failed": True, "msg": str(exc)}))
        return 2

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        if args.action == "backup":
            out = backup(settings, check_mode=args.check, log=log)
            out.pop("manifest", None)
        elif args.action == "restore":
            out = restore(settings, args.set, check_mode=args.check, log=log)
        elif args.action == "verify":
            out = restore(settings, args.set, verify_only=True, log=log)
        elif args.action == "extract":
            out = extract(settings, args.set, args.file, args.out)
        else:
            out = drill(
                settings,
                args.set,
                data.get("report_dir"),
                data.get("textfile_dir"),
                check_mode=args.check,
                log=log,
            )
    except BackupError as exc:
        print(json.dumps({"failed": True, "msg": str(exc)}))
        return 1
    print(json.dumps(out, indent=2, default=str))
    return 0 if out.get("ok", out.get("passed", True)) is not False else 1


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "BackupError",
    "Settings",
    "backup",
    "restore",
    "drill",
    "verify_set",
    "list_sets",
    "retention_plan",
    "DockerTarget",
    "LocalTarget",
    "LocalDrill",
    "load_config",
]


# --------------------------------------------------------------------------- Ansible glue

_CONN = {
    "container": {"type": "str"},
    "host": {"type": "str"},
    "token": {"type": "str", "no_log": True},
    "replace_collections": {"type": "bool"},
    "image": {"type": "str"},
    "user": {"type": "str"},
    "password": {"type": "str", "no_log": True},
    "port": {"type": "int"},
    "stop_command": {"type": "list", "elements": "str"},
    "start_command": {"type": "list", "elements": "str"},
    "health_command": {"type": "list", "elements": "str"},
    "database": {"type": "str"},
    "databases": {"type": "list", "elements": "str"},
    "socket_dir": {"type": "str"},
    "restore_globals": {"type": "bool"},
    "data_path": {"type": "str"},
    "start_timeout": {"type": "float"},
}

# Shared options; documented in plugins/doc_fragments/kailash_backup.py.
BACKUP_ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "backup_root": {"type": "path", "required": True},
    "project": {"type": "str", "default": "kailash"},
    "backend": {"type": "str", "default": "docker", "choices": ["docker", "local"]},
    "services": {"type": "list", "elements": "str", "default": list(SERVICES)},
    "encryption_key": {"type": "str", "no_log": True},
    "docker_cli": {"type": "str", "default": "docker"},
    # one set of sub-options for every service (each reads the keys it knows)
    **{svc: {"type": "dict", "default": {}, "options": _CONN} for svc in SERVICES},
}


def backup_argument_spec(specific: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The module's own options plus the shared ones (deep enough copies)."""
    spec = json.loads(json.dumps(BACKUP_ARGUMENT_SPEC))
    spec.update(json.loads(json.dumps(specific)))
    return spec


def settings_from_params(params: dict[str, Any], **extra: Any) -> Settings:
    """Settings from module parameters (None sub-options dropped: handler defaults apply)."""
    datastores = {
        svc: {k: v for k, v in (params.get(svc) or {}).items() if v is not None} for svc in SERVICES
    }
    unknown = [svc for svc in params["services"] if svc not in SERVICES]
    if unknown:
        raise BackupError(f"services: unknown {', '.join(unknown)} (known: {', '.join(SERVICES)})")
    return Settings(
        backup_root=params["backup_root"],
        project=params["project"],
        backend=params["backend"],
        services=list(params["services"]),
        datastores=datastores,
        encryption_key=params.get("encryption_key") or None,
        docker=params["docker_cli"],
        **extra,
    )
