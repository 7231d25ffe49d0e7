"""``kailash-app api``: the Nexus app (HTTP on NEXUS_API_PORT, MCP WebSocket on NEXUS_MCP_PORT).

Workflows (all channels: HTTP ``POST /workflows/<name>/execute``, CLI, MCP tools/call):
classify, recommend, submit_batch, job_status.  Each returns ``{"result": {...}}``
(the shape ``python -m nexus.cli`` prints as ``key: value`` lines).
"""


import asyncio
import base64
import hashlib
import logging
import os

from kailash_app import config

log = logging.getLogger("kailash_app.api")

MAX_BATCH = 10_000
_POOL = None


def _in_pool(fn, *args):
    """Run a blocking datastore call in the API's own thread pool (settings().api_threads:
    asyncio's default pool has cores + 4 threads, 6 on a 2-core host, which queued
    concurrent classify requests behind each other's round trips)."""
    global _POOL
    if _POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        from kailash_app import stores

        _POOL = ThreadPoolExecutor(stores.settings().api_threads, thread_name_prefix="api")
    return asyncio.get_running_loop().run_in_executor(_POOL, fn, *args)


class BasicToBearer:
    """Accept ``Authorization: Basic base64(<any user>:<JWT>)`` as ``Bearer <JWT>``.

    ``python -m nexus.cli`` sends no headers of its own, but ``requests`` applies
    credentials from a netrc file (``$NETRC`` or ``~/.netrc``) as Basic auth:
    ``machine <api host> login token password <JWT>``.  Anything else passes through
    unchanged, so Nexus's JWT middleware still decides.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            headers = scope.get("headers") or []
            for i, (name, value) in enumerate(headers):
                if name == b"authorization" and value[:6].lower() == b"basic ":
                    try:
                        _, _, token = base64.b64decode(value[6:]).decode().partition(":")
                    except (ValueError, UnicodeDecodeError):
                        break
                    if token.count(".") == 2:
                        headers = list(headers)
                        headers[i] = (name, b"Bearer " + token.encode())
                        scope = dict(scope, headers=headers)
                    break
        await self.app(scope, receive, send)


async def classify(description: str) -> dict:
    """Classify a product description into the taxonomy (nearest commodity)."""
    from kailash_app import classifier

    description = str(description or "").strip()
    if not description:
        raise ValueError("description must be a non-empty string")
    results = await _in_pool(classifier.classify_many, [description])
    return {"result": results[0]}


async def recommend(code: str) -> dict:
    """Related categories of a taxonomy code (Neo4j graph when deployed, else the tree)."""
    from kailash_app import stores, taxonomy

    code = str(code or "").strip()
    if stores.settings().neo4j_url:
        related = await _in_pool(stores.neo4j_related, code)
        source = "neo4j"
    else:
        related = taxonomy.related(code)
        source = "taxonomy (neo4j not deployed)"
    cat = taxonomy.load()["by_code"].get(code)
    return {"result": {
        "code": code, "title": cat["title"] if cat else None, "found": related is not None,
        "related": related or [], "source": source,
    }}


async def submit_batch(items: list) -> dict:
    """Queue a batch classification job for the workers; returns its job_id."""
    from kailash_app import classifier, worker

    if isinstance(items, str):
        items = [items]
    items = [str(i).strip() for i in (items or []) if str(i).strip()]
    if len(items) > MAX_BATCH:
        raise ValueError(f"at most {MAX_BATCH} items per batch")
    job_id = await asyncio.to_thread(classifier.create_job, len(items))
    tasks = await asyncio.to_thread(worker.enqueue, job_id, items)
    return {"result": {"job_id": job_id, "total": len(items), "tasks": tasks}}


async def job_status(job_id: str) -> dict:
    """State of a batch job: state, done, total (and results once completed)."""
    from kailash_app import classifier

    snap = await asyncio.to_thread(classifier.job_status, str(job_id or "").strip())
    if snap is None:
        return {"result": {"job_id": job_id, "state": "unknown", "done": 0, "total": 0}}
    return {"result": snap}


async def readyz():
    from starlette.responses import JSONResponse

    from kailash_app import stores

    checks = await asyncio.to_thread(stores.check_all)
    failing = sorted(name for name, c in checks.items() if not c["ok"])
    body = {"status": "unavailable" if failing else "ready", "failing": failing,
            "checks": checks}
    return JSONResponse(body, status_code=503 if failing else 200)


def build_app():
    """Configure the environment for Nexus, then import it and register everything."""
    secret = config.jwt_secret()
    os.environ["NEXUS_JWT_SECRET"] = secret
    os.environ.setdefault(
        "KAILASH_ENCRYPTION_KEY",
        hashlib.sha256(b"kailash-app-encryption:" + secret.encode()).hexdigest(),
    )
    exempt = [p for p in os.environ.get("NEXUS_AUTH_EXEMPT_PATHS", "").split(",") if p]
    os.environ["NEXUS_AUTH_EXEMPT_PATHS"] = ",".join(dict.fromkeys([*exempt, "/readyz"]))

    from nexus import Nexus

    from kailash_app import stores, tokens

    s = stores.settings()
    app = Nexus(
        api_port=s.api_port, mcp_port=s.mcp_port, enable_durability=False,
        rate_limit=s.rate_limit if s.rate_limit > 0 else None,
    )
    # Nexus's JWT check without BaseHTTPMiddleware's per-request cost (fastauth.py)
    from kailash_app import fastauth

    if s.plain_jwt_middleware:
        fastauth.install(app._http_transport.gateway.app)
    # tokens of the previous JWT secret during a rotation's grace period (tokens.py)
    app.add_middleware(tokens.AcceptPreviousSecrets)
    app.add_middleware(BasicToBearer)
    app.register_handler("classify", classify)
    app.register_handler("recommend", recommend)
    app.register_handler("submit_batch", submit_batch)
    app.register_handler("job_status", job_status)
    app.register_endpoint("/readyz", ["GET"], readyz)
    # MCP: a schema-conformant initialize, so standard MCP clients connect (mcp_conform.py)
    from kailash_app import mcp_conform

    mcp_conform.conform_initialize(app)
    # the API's Prometheus metrics on a port of their own (metrics.py); added last, its
    # request middleware is the outermost one
    if s.metrics_port:
        from kailash_app import metrics

        metrics.enable(app, s.metrics_port)
    return app


def run() -> None:
    from kailash_app import stores

    config.chdir_workdir()
    report = stores.seed()
    stores.dataflow().express_sync.count("ClassificationResult")  # migrate + warm the pool
    with stores.pg_connect() as conn:
        conn.execute("CREATE INDEX IF NOT EXISTS classification_results_job_id_idx"
                     " ON classification_results (job_id)")
    log.info("seed: %s", report)
    app = build_app()
    app.start()
