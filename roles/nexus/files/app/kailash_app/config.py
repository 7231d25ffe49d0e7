"""Settings from the environment; secrets from ``*_FILE`` variables (Docker secrets).

Nothing heavy is imported here: the healthcheck path imports this module too.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from urllib.parse import quote

MIN_JWT_SECRET_BYTES = 32


class ConfigError(RuntimeError):
    """A required setting is missing or invalid."""


def read_secret(name: str, default: str = "") -> str:
    """Value of ``NAME`` or of the file named by ``NAME_FILE`` (stripped of line endings)."""
    path = os.environ.get(f"{name}_FILE", "")
    if path:
        try:
            with open(path, encoding="utf-8") as fh:
                return fh.read().rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"{name}_FILE={path}: {exc.strerror}") from exc
    return os.environ.get(name, default)


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        return int(raw) if raw.strip() else default
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not an integer") from exc


def configure_logging() -> None:
    """Set up logging from LOG_LEVEL.  Must run before ``import nexus``/``dataflow``.

    The Kailash packages set INFO levels on their own loggers, so records below
    LOG_LEVEL are disabled globally, not only filtered at the root.
    """
    level_name = os.environ.get("LOG_LEVEL", "WARNING").upper()
    level = getattr(logging, level_name, logging.WARNING)
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    if level > logging.DEBUG:
        logging.disable(level - 1)


def jwt_secret() -> str:
    """The JWT signing secret (the first line of NEXUS_JWT_SECRET(_FILE)); refuses one
    shorter than 32 bytes."""
    secret = read_secret("NEXUS_JWT_SECRET").split("\n", 1)[0].rstrip("\r")
    if len(secret.encode("utf-8")) < MIN_JWT_SECRET_BYTES:
        raise ConfigError(
            f"NEXUS_JWT_SECRET(_FILE) must be at least {MIN_JWT_SECRET_BYTES} bytes "
            f"(got {len(secret.encode('utf-8'))})"
        )
    return secret


def parse_previous_secrets(text: str) -> list[tuple[str, int]]:
    """``[(secret, until)]`` from lines ``<until> <secret>``: secrets a token may still be
    signed with after a rotation (playbooks/rotate_secrets.yml), accepted until the unix time
    ``until`` (0: no end). Blank lines and lines not of that form are ignored, as are secrets
    shorter than 32 bytes."""
    out = []
    for line in text.splitlines():
        until, _, secret = line.strip().partition(" ")
        secret = secret.strip()
        if until.isdigit() and len(secret.encode("utf-8")) >= MIN_JWT_SECRET_BYTES:
            out.append((secret, int(until)))
    return out


def jwt_previous_secrets() -> list[tuple[str, int]]:
    """Previous JWT secrets still accepted for verification (never for signing): the lines
    after the first of NEXUS_JWT_SECRET(_FILE) and the lines of NEXUS_JWT_PREVIOUS_SECRETS(_FILE),
    each ``<until> <secret>``."""
    rest = read_secret("NEXUS_JWT_SECRET").partition("\n")[2]
    return parse_previous_secrets(rest + "\n" + read_secret("NEXUS_JWT_PREVIOUS_SECRETS"))


@dataclass
class Settings:
    env: str = "production"
    api_port: int = 8000
    mcp_port: int = 3001
    websocket_port: int = 8001
    pg_host: str = "postgresql"
    pg_port: int = 5432
    pg_db: str = "kailash"
    pg_user: str = "kailash"
    pg_password: str = field(default="", repr=False)
    pool_size: int = 5
    redis_host: str = "redis"
    redis_port: int = 6379
    redis_password: str = field(default="", repr=False)
    redis_cache_db: int = 0
    redis_broker_db: int = 1
    cache_ttl: int = 3600
    chroma_url: str = "http://chromadb:8000"
    chroma_token: str = field(default="", repr=False)
    chroma_collection: str = "kailash_taxonomy"
    neo4j_url: str = ""
    neo4j_user: str = "neo4j"
    neo4j_password: str = field(default="", repr=False)
    worker_concurrency: int = 2
    rate_limit: int = 0
    # the API's thread pool for datastore calls (asyncio's default is cores + 4)
    api_threads: int = 32
    # most concurrent requests' ChromaDB queries sent as one (1 = one query each)
    chroma_query_batch: int = 32
    # the API stores classify results from a background writer (batch jobs never do)
    results_write_behind: bool = True
    # Nexus's JWT check as plain ASGI (fastauth.py); false = Nexus's middleware as it is
    plain_jwt_middleware: bool = True
    # the API's Prometheus metrics on this port (metrics.py); 0 = off
    metrics_port: int = 0
    # Celery task events (task-sent from the API, task-* and heartbeats from the workers)
    # for the Celery exporter (roles/celery_exporter); false = no events, as before
    celery_events: bool = False

    @classmethod
    def from_env(cls) -> Settings:
        e = os.environ.get
        return cls(
            env=e("NEXUS_ENV", "production"),
            api_port=env_int("NEXUS_API_PORT", 8000),
            mcp_port=env_int("NEXUS_MCP_PORT", 3001),
            websocket_port=env_int("NEXUS_WEBSOCKET_PORT", 8001),
            pg_host=e("POSTGRES_HOST", "postgresql"),
            pg_port=env_int("POSTGRES_PORT", 5432),
            pg_db=e("POSTGRES_DB", "kailash"),
            pg_user=e("POSTGRES_USER", "kailash"),
            pg_password=read_secret("POSTGRES_PASSWORD"),
            pool_size=env_int("DATAFLOW_POOL_SIZE", 5),
            redis_host=e("REDIS_HOST", "redis"),
            redis_port=env_int("REDIS_PORT", 6379),
            redis_password=read_secret("REDIS_PASSWORD"),
            redis_cache_db=env_int("NEXUS_REDIS_CACHE_DB", 0),
            redis_broker_db=env_int("NEXUS_REDIS_BROKER_DB", 1),
            cache_ttl=env_int("NEXUS_CACHE_TTL", 3600),
            chroma_url=e("CHROMADB_URL", "http://chromadb:8000").rstrip("/"),
            chroma_token=read_secret("CHROMADB_TOKEN"),
            chroma_collection=e("CHROMADB_COLLECTION", "kailash_taxonomy"),
            neo4j_url=e("NEO4J_URL", "").strip(),
            neo4j_user=e("NEO4J_USER", "neo4j"),
            neo4j_password=read_secret("NEO4J_PASSWORD") if e("NEO4J_URL", "").strip() else "",
            worker_concurrency=env_int("NEXUS_WORKER_CONCURRENCY", 2),
            rate_limit=env_int("NEXUS_RATE_LIMIT", 0),
            api_threads=max(1, env_int("NEXUS_API_THREADS", 32)),
            chroma_query_batch=max(1, env_int("NEXUS_CHROMA_QUERY_BATCH", 32)),
            results_write_behind=e("NEXUS_RESULTS_WRITE_BEHIND", "true").lower()
            in ("1", "true", "yes"),
            plain_jwt_middleware=e("NEXUS_PLAIN_JWT_MIDDLEWARE", "true").lower()
            in ("1", "true", "yes"),
            metrics_port=env_int("NEXUS_METRICS_PORT", 0),
            celery_events=e("NEXUS_CELERY_EVENTS", "false").lower() in ("1", "true", "yes"),
        )

    def current_pg_password(self) -> str:
        """The PostgreSQL password as POSTGRES_PASSWORD_FILE says now: a rotation
        (playbooks/rotate_secrets.yml) rewrites that file in place right after ALTER ROLE,
        so a running process picks the new password up for its next connections."""
        if not os.environ.get("POSTGRES_PASSWORD_FILE"):
            return self.pg_password
        try:
            return read_secret("POSTGRES_PASSWORD") or self.pg_password
        except ConfigError:
            return self.pg_password

    def pg_url(self) -> str:
        password = quote(self.current_pg_password(), safe="")
        return (
            f"postgresql://{quote(self.pg_user, safe='')}:{password}"
            f"@{self.pg_host}:{self.pg_port}/{self.pg_db}"
        )

    def pg_conninfo(self) -> dict:
        return {"host": self.pg_host, "port": self.pg_port, "dbname": self.pg_db,
                "user": self.pg_user, "password": self.current_pg_password(),
                "application_name": "kailash-app", "connect_timeout": 5}

    def redis_url(self, db: int) -> str:
        auth = f"default:{quote(self.redis_password, safe='')}@" if self.redis_password else ""
        return f"redis://{auth}{self.redis_host}:{self.redis_port}/{db}"


def chdir_workdir() -> None:
    """DataFlow writes ``migrations/`` into the working directory: use a tmpfs one."""
    workdir = os.environ.get("KAILASH_APP_WORKDIR", "/tmp/app")
    os.makedirs(workdir, exist_ok=True)
    os.chdir(workdir)
