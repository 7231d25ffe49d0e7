"""Classification (shared by the API's ``classify`` workflow and the batch worker).

Per batch: one Redis MGET for cached answers, one ChromaDB query for the rest,
one Redis pipeline to cache them, one DataFlow bulk insert of every result.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid

from kailash_app import embedding, stores

log = logging.getLogger("kailash_app.classifier")


def cache_key(description: str) -> str:
    digest = hashlib.sha256(embedding.normalise(description).encode("utf-8")).hexdigest()
    return stores.CACHE_KEY.format(digest=digest[:40])


def classify_many(descriptions: list[str], job_id: str = "") -> list[dict]:
    """Classify descriptions; returns [{"code","title","score","cached"}] in order."""
    if not descriptions:
        return []
    s = stores.settings()
    rds = stores.redis_client()
    keys = [cache_key(d) for d in descriptions]
    results: list[dict | None] = [None] * len(descriptions)
    try:
        cached = rds.mget(keys)
    except Exception as exc:  # noqa: BLE001 - the cache is an optimisation only
        log.warning("redis cache read failed: %s", exc)
        cached = [None] * len(keys)
    misses = []
    for i, raw in enumerate(cached):
        if raw:
            results[i] = {**json.loads(raw), "cached": True}
        else:
            misses.append(i)

    if misses:
        vectors = [embedding.embed(descriptions[i]) for i in misses]
        if len(vectors) == 1 and not job_id:  # one API request: share a query under load
            hits = [stores.chroma_nearest(vectors[0])]
        else:
            hits = stores.chroma().query(vectors, n=1)
        fresh = {}
        for i, neighbours in zip(misses, hits, strict=True):
            meta, distance = neighbours[0]
            # embeddings are unit vectors: squared L2 distance = 2 - 2 cos
            score = round(max(0.0, 1.0 - float(distance) / 2.0), 4)
            value = {"code": meta["code"], "title": meta["title"], "score": score}
            results[i] = {**value, "cached": False}
            fresh[keys[i]] = json.dumps(value)
        try:
            pipe = rds.pipeline(transaction=False)
            for key, value in fresh.items():
                pipe.set(key, value, ex=s.cache_ttl)
            pipe.execute()
        except Exception as exc:  # noqa: BLE001
            log.warning("redis cache write failed: %s", exc)

    stores.save_results([
        {"id": uuid.uuid4().hex, "description": d[:2000], "code": r["code"],
         "title": r["title"], "score": r["score"], "cached": r["cached"], "job_id": job_id}
        for d, r in zip(descriptions, results, strict=True)
    ], wait=bool(job_id))
    return results  # type: ignore[return-value]


# --------------------------------------------------------------------------- batch jobs
TERMINAL = ("completed", "failed")


def create_job(total: int) -> str:
    job_id = uuid.uuid4().hex
    with stores.pg_connect() as conn:
        conn.execute(
            "INSERT INTO kailash_batch_jobs (job_id, state, total) VALUES (%s, %s, %s)",
            (job_id, "queued" if total else "completed", total),
        )
    return job_id


def advance_job(job_id: str, n: int) -> tuple[int, int, str]:
    """Add ``n`` finished items; completes the job when all are done."""
    with stores.pg_connect() as conn:
        row = conn.execute(
            "UPDATE kailash_batch_jobs SET done = done + %s,"
            " state = CASE WHEN done + %s >= total THEN 'completed' ELSE 'running' END,"
            " updated_at = now() WHERE job_id = %s RETURNING done, total, state",
            (n, n, job_id),
        ).fetchone()
    if row is None:
        raise LookupError(f"unknown job {job_id}")
    done, total, state = row
    stores.publish_progress(job_id, done, total, state)
    return done, total, state


def fail_job(job_id: str, error: str) -> None:
    with stores.pg_connect() as conn:
        row = conn.execute(
            "UPDATE kailash_batch_jobs SET state = 'failed', error = %s, updated_at = now()"
            " WHERE job_id = %s RETURNING done, total",
            (error[:1000], job_id),
        ).fetchone()
    if row:
        stores.publish_progress(job_id, row[0], row[1], "failed")


def job_snapshot(job_id: str) -> dict | None:
    with stores.pg_connect() as conn:
        row = conn.execute(
            "SELECT state, done, total, error FROM kailash_batch_jobs WHERE job_id = %s",
            (job_id,),
        ).fetchone()
    if row is None:
        return None
    state, done, total, error = row
    snap = {"job_id": job_id, "state": state, "done": done, "total": total}
    if error:
        snap["error"] = error
    return snap


def job_status(job_id: str, with_results: bool = True) -> dict | None:
    snap = job_snapshot(job_id)
    if snap is not None and with_results and snap["state"] == "completed":
        snap["results"] = stores.job_results(job_id, snap["total"])
    return snap
