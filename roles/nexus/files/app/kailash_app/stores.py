"""Datastore clients: PostgreSQL (psycopg + DataFlow), Redis, ChromaDB (HTTP v2), Neo4j.

Clients are created lazily, once per process (Celery children create their own
after the fork).  Every call has a short timeout so that readiness checks and
requests fail fast instead of hanging on a dead store.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from kailash_app import embedding, taxonomy
from kailash_app.config import Settings

log = logging.getLogger("kailash_app.stores")

SEED_LOCK_KEY = 7_220_001  # pg_advisory_lock key guarding the taxonomy seed
JOB_CHANNEL = "kailash:jobs:{job_id}"
CACHE_KEY = "kailash:classify:v1:{digest}"

_lock = threading.RLock()
_clients: dict[str, Any] = {}


def settings() -> Settings:
    with _lock:
        if "settings" not in _clients:
            _clients["settings"] = Settings.from_env()
        return _clients["settings"]


# --------------------------------------------------------------------------- PostgreSQL
# A secret rotation (playbooks/rotate_secrets.yml) changes the password with ALTER ROLE and
# then rewrites the secret file in place; meanwhile PostgreSQL refuses the old one. Calls
# wait up to this many seconds for the file to hold the new one (config.current_pg_password).
PG_PASSWORD_WAIT = 15.0


def _pg_retrying(fn):
    """``fn()``; while PostgreSQL refuses the password, again with the file's current one."""
    deadline = time.monotonic() + PG_PASSWORD_WAIT
    while True:
        try:
            return fn()
        except Exception as exc:
            if "password authentication failed" not in str(exc) or time.monotonic() > deadline:
                raise
            # DataFlow keeps the password it was built with: build a new one (the old one is
            # left to other threads' requests in flight; the rotation replaces this process)
            with _lock:
                stale = _clients.get("dataflow_password", "") != settings().current_pg_password()
                if stale and _clients.pop("dataflow", None) is not None:
                    log.warning("PostgreSQL password changed: reconnecting")
            time.sleep(0.5)


def pg_connect():
    import psycopg

    return _pg_retrying(lambda: psycopg.connect(**settings().pg_conninfo(), autocommit=True))


SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS kailash_categories (
    code text PRIMARY KEY, title text NOT NULL, level text NOT NULL,
    parent text, description text NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS kailash_batch_jobs (
    job_id text PRIMARY KEY, state text NOT NULL, total integer NOT NULL,
    done integer NOT NULL DEFAULT 0, error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now());
"""


def dataflow():
    """The DataFlow instance with the ClassificationResult model (results table)."""
    with _lock:
        if "dataflow" in _clients:
            return _clients["dataflow"]
        from dataflow import DataFlow

        s = settings()
        _clients["dataflow_password"] = s.current_pg_password()
        db = DataFlow(
            s.pg_url(), pool_size=s.pool_size, pool_max_overflow=0,
            cache_enabled=False, monitoring=False,
        )

        @db.model
        class ClassificationResult:
            id: str
            description: str
            code: str
            title: str
            score: float
            cached: bool = False
            job_id: str = ""

        _clients["dataflow"] = db
        return db


def save_results(rows: list[dict], wait: bool = True) -> None:
    """Store classification results through DataFlow (one bulk insert).

    ``wait=False`` (the API's classify; settings().results_write_behind): hand the rows to
    the background writer, which stores what concurrent requests queued in one bulk insert
    (batching.WriteBehind). Batch jobs always wait: job_status reads their rows back.
    """
    if not rows:
        return
    if not wait and settings().results_write_behind:
        results_writer().put(rows)
        return
    _save_results_now(rows)


def results_writer():
    """The process's background writer of classification results (flushed at exit)."""
    with _lock:
        if "results_writer" not in _clients:
            import atexit

            from kailash_app import batching

            writer = batching.WriteBehind("results-writer", _copy_results)
            atexit.register(writer.flush, 10.0)
            _clients["results_writer"] = writer
        return _clients["results_writer"]


RESULT_COLUMNS = ("id", "description", "code", "title", "score", "cached", "job_id")


def _copy_results(rows: list[dict]) -> None:
    """The background writer's bulk insert: COPY into DataFlow's ClassificationResult table
    on the writer's own connection. DataFlow's bulk_create validated and log-masked every
    value (measured: about a fifth of nexus-api's CPU per classify); the table, its schema
    and its migrations stay DataFlow's, and created_at/updated_at keep their defaults."""
    def copy() -> None:
        conn = _clients.get("results_conn")
        if conn is None or conn.closed:
            conn = _clients["results_conn"] = pg_connect()
        try:
            with conn.cursor() as cur, cur.copy(
                    f"COPY classification_results ({', '.join(RESULT_COLUMNS)}) FROM STDIN"
            ) as cp:
                for row in rows:
                    cp.write_row([row[c] for c in RESULT_COLUMNS])
        except Exception:
            _clients.pop("results_conn", None)
            with contextlib.suppress(Exception):
                conn.close()
            raise

    dataflow()  # the table exists (DataFlow creates it on first use)
    _pg_retrying(copy)


def _save_results_now(rows: list[dict]) -> None:
    def save() -> None:
        express = dataflow().express_sync
        if len(rows) == 1:
            express.create("ClassificationResult", rows[0])
        else:
            express.bulk_create("ClassificationResult", rows)

    _pg_retrying(save)


def job_results(job_id: str, limit: int) -> list[dict]:
    rows = _pg_retrying(lambda: dataflow().express_sync.list(
        "ClassificationResult", filter={"job_id": job_id}, limit=max(limit, 1)
    ))
    return [{k: r.get(k) for k in ("description", "code", "title", "score", "cached")}
            for r in rows]


# --------------------------------------------------------------------------- Redis
def redis_client(db: int | None = None):
    import redis

    s = settings()
    db = s.redis_cache_db if db is None else db
    key = f"redis{db}"
    with _lock:
        if key not in _clients:
            _clients[key] = redis.Redis(
                host=s.redis_host, port=s.redis_port, db=db,
                username="default" if s.redis_password else None,
                password=s.redis_password or None,
                socket_connect_timeout=3, socket_timeout=5, health_check_interval=30,
                decode_responses=True,
            )
        return _clients[key]


def publish_progress(job_id: str, done: int, total: int, state: str) -> None:
    event = {"job_id": job_id, "done": done, "total": total, "state": state}
    redis_client().publish(JOB_CHANNEL.format(job_id=job_id), json.dumps(event))


# --------------------------------------------------------------------------- ChromaDB
class Chroma:
    """Minimal ChromaDB v2 HTTP client (bearer token for the nginx gate)."""

    def __init__(self, s: Settings):
        import httpx

        headers = {"Authorization": f"Bearer {s.chroma_token}"} if s.chroma_token else {}
        self.http = httpx.Client(base_url=s.chroma_url, headers=headers, timeout=10.0)
        self.base = "/api/v2/tenants/default_tenant/databases/default_database"
        self.name = s.chroma_collection
        self._cid: str | None = None
        # queries (the request path) go over plain http.client keep-alive connections, one
        # per thread: httpx's request building was most of the client's CPU per query
        self._url = urlsplit(s.chroma_url)
        self._headers = {"Content-Type": "application/json", **headers}
        self._local = threading.local()

    def heartbeat(self) -> None:
        self.http.get("/api/v2/heartbeat", timeout=3.0).raise_for_status()

    def collection_id(self) -> str:
        if self._cid is None:
            r = self.http.post(f"{self.base}/collections",
                               json={"name": self.name, "get_or_create": True})
            r.raise_for_status()
            self._cid = r.json()["id"]
        return self._cid

    def count(self) -> int:
        r = self.http.get(f"{self.base}/collections/{self.collection_id()}/count")
        r.raise_for_status()
        return int(r.json())

    def upsert(self, ids, embeddings, metadatas, documents) -> None:
        r = self.http.post(
            f"{self.base}/collections/{self.collection_id()}/upsert",
            json={"ids": ids, "embeddings": embeddings, "metadatas": metadatas,
                  "documents": documents},
        )
        r.raise_for_status()

    def _post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """POST on this thread's keep-alive connection; once more on a fresh one when the
        kept one was closed by the server (idle timeout) or broke."""
        import http.client

        for attempt in (1, 2):
            conn = getattr(self._local, "conn", None)
            if conn is None:
                conn = self._local.conn = http.client.HTTPConnection(
                    self._url.hostname, self._url.port or 80, timeout=10.0)
            try:
                conn.request("POST", path, body, self._headers)
                resp = conn.getresponse()
                return resp.status, resp.read()
            except (http.client.HTTPException, OSError):
                conn.close()
                self._local.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def query(self, vectors: list[list[float]], n: int = 1) -> list[list[tuple[dict, float]]]:
        status, raw = self._post(
            f"{self.base}/collections/{self.collection_id()}/query",
            json.dumps({"query_embeddings": vectors, "n_results": n,
                        "include": ["metadatas", "distances"]}).encode(),
        )
        if status == 404:  # collection recreated under us: look it up again
            self._cid = None
            return self.query(vectors, n)
        if status != 200:
            raise RuntimeError(f"ChromaDB query: HTTP {status}: {raw[:200]!r}")
        body = json.loads(raw)
        return [list(zip(m, d, strict=False))
                for m, d in zip(body["metadatas"], body["distances"], strict=False)]


def chroma() -> Chroma:
    with _lock:
        if "chroma" not in _clients:
            _clients["chroma"] = Chroma(settings())
        return _clients["chroma"]


def chroma_nearest(vector: list[float]) -> list[tuple[dict, float]]:
    """The nearest neighbour of one vector; concurrent callers of this process share one
    ChromaDB query (batching.Coalescer, settings().chroma_query_batch at most)."""
    s = settings()
    if s.chroma_query_batch <= 1:
        return chroma().query([vector], n=1)[0]
    with _lock:
        if "chroma_coalescer" not in _clients:
            from kailash_app import batching

            _clients["chroma_coalescer"] = batching.Coalescer(
                "chroma-query", lambda vectors: chroma().query(vectors, n=1),
                workers=2, max_batch=s.chroma_query_batch)
        coalescer = _clients["chroma_coalescer"]
    return coalescer(vector)


# --------------------------------------------------------------------------- Neo4j
def neo4j_driver():
    s = settings()
    if not s.neo4j_url:
        return None
    with _lock:
        if "neo4j" not in _clients:
            from neo4j import GraphDatabase

            _clients["neo4j"] = GraphDatabase.driver(
                s.neo4j_url, auth=(s.neo4j_user, s.neo4j_password),
                connection_timeout=5, connection_acquisition_timeout=10,
                max_transaction_retry_time=5,
            )
        return _clients["neo4j"]


def neo4j_related(code: str, limit: int = 10) -> list[dict] | None:
    query = (
        "MATCH (c:Category {code: $code}) "
        "OPTIONAL MATCH (p:Category)-[:PARENT_OF]->(c) "
        "OPTIONAL MATCH (p)-[:PARENT_OF]->(s:Category) WHERE s.code <> $code "
        "OPTIONAL MATCH (c)-[:PARENT_OF]->(k:Category) "
        "RETURN c.code AS code, p.code AS parent, p.title AS ptitle, p.level AS plevel, "
        "collect(DISTINCT [s.code, s.title, s.level]) AS siblings, "
        "collect(DISTINCT [k.code, k.title, k.level]) AS children"
    )
    with neo4j_driver().session() as session:
        record = session.run(query, code=code).single()
    if record is None:
        return None
    out = []
    if record["parent"]:
        out.append({"code": record["parent"], "title": record["ptitle"],
                    "level": record["plevel"], "relation": "parent"})
    for rel, key in (("sibling", "siblings"), ("child", "children")):
        for c, t, lv in sorted(x for x in record[key] if x[0]):
            out.append({"code": c, "title": t, "level": lv, "relation": rel})
    return out[:limit]


# --------------------------------------------------------------------------- readiness
def check_all() -> dict[str, dict]:
    """Probe every configured datastore concurrently; {store: {ok, detail/ms}}."""
    from concurrent.futures import ThreadPoolExecutor

    def pg():
        import psycopg

        with psycopg.connect(**{**settings().pg_conninfo(), "connect_timeout": 3}) as c:
            c.execute("SELECT 1")

    def rd():
        redis_client().ping()

    def ch():
        chroma().heartbeat()

    def n4():
        neo4j_driver().verify_connectivity()

    probes = {"postgresql": pg, "redis": rd, "chromadb": ch}
    if settings().neo4j_url:
        probes["neo4j"] = n4

    def run(fn):
        t0 = time.monotonic()
        try:
            fn()
            return {"ok": True, "ms": round((time.monotonic() - t0) * 1000, 1)}
        except Exception as exc:  # noqa: BLE001 - readiness reports any failure
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}

    with ThreadPoolExecutor(max_workers=len(probes)) as pool:
        futures = {name: pool.submit(run, fn) for name, fn in probes.items()}
        return {name: f.result() for name, f in futures.items()}


# --------------------------------------------------------------------------- seeding
def seed(timeout: float = 180.0) -> dict:
    """Load the taxonomy into PostgreSQL, ChromaDB and Neo4j, idempotently.

    Replicas serialise on a PostgreSQL advisory lock; each store is skipped when
    it already holds the full taxonomy (count check).  Retries until the stores
    answer or ``timeout`` passes.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return _seed_once()
        except Exception as exc:  # noqa: BLE001 - datastores may still be starting
            if time.monotonic() > deadline:
                raise
            log.warning("seeding failed (%s), retrying in 3 s", exc)
            time.sleep(3)


def _seed_once() -> dict:
    cats = taxonomy.categories()
    comms = taxonomy.commodities()
    report = {}
    with pg_connect() as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (SEED_LOCK_KEY,))
        try:
            conn.execute(SCHEMA_SQL)
            n = conn.execute("SELECT count(*) FROM kailash_categories").fetchone()[0]
            if n >= len(cats):
                report["postgresql"] = "present"
            else:
                with conn.transaction(), conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO kailash_categories (code, title, level, parent, description)"
                        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (code) DO UPDATE SET"
                        " title = EXCLUDED.title, level = EXCLUDED.level,"
                        " parent = EXCLUDED.parent, description = EXCLUDED.description",
                        [(c["code"], c["title"], c["level"], c["parent"], c["description"])
                         for c in cats],
                    )
                report["postgresql"] = f"loaded {len(cats)}"

            ch = chroma()
            if ch.count() >= len(comms):
                report["chromadb"] = "present"
            else:
                for i in range(0, len(comms), 100):
                    part = comms[i : i + 100]
                    docs = [taxonomy.document(c) for c in part]
                    ch.upsert(
                        ids=[c["code"] for c in part],
                        embeddings=[embedding.embed(d) for d in docs],
                        metadatas=[{"code": c["code"], "title": c["title"]} for c in part],
                        documents=docs,
                    )
                report["chromadb"] = f"loaded {len(comms)}"

            driver = neo4j_driver()
            if driver is not None:
                report["neo4j"] = _seed_neo4j(driver, cats)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (SEED_LOCK_KEY,))
    log.warning("taxonomy seed: %s", report)
    return report


def _seed_neo4j(driver, cats: list[dict]) -> str:
    with driver.session() as session:
        n = session.run("MATCH (c:Category) RETURN count(c) AS n").single()["n"]
        if n >= len(cats):
            return "present"
        with contextlib.suppress(Exception):  # index exists / dialect differences
            session.run("CREATE INDEX FOR (c:Category) ON (c.code)").consume()
        rows = [{"code": c["code"], "title": c["title"], "level": c["level"],
                 "parent": c["parent"] or ""} for c in cats]
        session.run(
            "UNWIND $rows AS r MERGE (c:Category {code: r.code}) "
            "SET c.title = r.title, c.level = r.level",
            rows=rows,
        ).consume()
        session.run(
            "UNWIND $rows AS r MATCH (p:Category {code: r.parent}) "
            "MATCH (c:Category {code: r.code}) MERGE (p)-[:PARENT_OF]->(c)",
            rows=[r for r in rows if r["parent"]],
        ).consume()
    return f"loaded {len(cats)}"
