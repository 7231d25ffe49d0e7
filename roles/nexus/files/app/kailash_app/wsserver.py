"""``kailash-app websocket``: job progress streams on NEXUS_WEBSOCKET_PORT.

``GET /health`` (no auth).  ``WS /ws/jobs/<job_id>`` needs a JWT (``Authorization:
Bearer`` header or ``?token=``; otherwise the handshake is refused with 403).  It
sends a snapshot ``{"job_id","done","total","state"}``, then every progress event the
workers publish on Redis channel ``kailash:jobs:<job_id>``, and closes (1000) once
the state is completed or failed.  The snapshot is re-read every few seconds, so a
missed event only delays the stream.
"""

from __future__ import annotations

import asyncio
import json
import logging

from kailash_app import config

log = logging.getLogger("kailash_app.websocket")
POLL_SECONDS = 3.0
MAX_STREAM_SECONDS = 3600.0


def build_app():
    import jwt
    import redis.asyncio as aioredis
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket

    from kailash_app import classifier, stores, tokens

    secret = config.jwt_secret()
    s = stores.settings()
    rds = aioredis.Redis(
        host=s.redis_host, port=s.redis_port, db=s.redis_cache_db,
        username="default" if s.redis_password else None, password=s.redis_password or None,
        socket_connect_timeout=3, decode_responses=True,
    )

    async def health(_request):
        return JSONResponse({"status": "healthy", "service": "websocket"})

    def token_of(ws: WebSocket) -> str:
        auth = ws.headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            return auth[7:].strip()
        return ws.query_params.get("token", "")

    async def snapshot(job_id: str) -> dict | None:
        return await asyncio.to_thread(classifier.job_snapshot, job_id)

    async def job_stream(ws: WebSocket):
        job_id = ws.path_params["job_id"]
        try:
            claims = tokens.verify(token_of(ws), secret)
        except jwt.InvalidTokenError:
            await ws.close(code=1008)  # before accept: the handshake gets HTTP 403
            return
        await ws.accept()
        log.info("stream %s for %s", job_id, claims.get("sub"))
        pubsub = rds.pubsub()
        await pubsub.subscribe(stores.JOB_CHANNEL.format(job_id=job_id))
        try:
            snap = await snapshot(job_id)
            if snap is None:
                await ws.send_json({"job_id": job_id, "state": "unknown", "done": 0,
                                    "total": 0, "error": "no such job"})
                await ws.close(code=1000)
                return
            await ws.send_json(snap)
            last = (snap["done"], snap["state"])
            loop = asyncio.get_running_loop()
            deadline = loop.time() + MAX_STREAM_SECONDS
            next_poll = loop.time() + POLL_SECONDS
            while snap["state"] not in classifier.TERMINAL and loop.time() < deadline:
                msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if msg and msg.get("type") == "message":
                    event = json.loads(msg["data"])
                    if (event["done"], event["state"]) != last and event["done"] >= last[0]:
                        snap = event
                        last = (snap["done"], snap["state"])
                        await ws.send_json(snap)
                elif loop.time() >= next_poll:
                    next_poll = loop.time() + POLL_SECONDS
                    fresh = await snapshot(job_id)
                    if fresh and (fresh["done"], fresh["state"]) != last:
                        snap = fresh
                        last = (snap["done"], snap["state"])
                        await ws.send_json(snap)
            await ws.close(code=1000)
        finally:
            await pubsub.unsubscribe()
            await pubsub.aclose()

    return Starlette(routes=[
        Route("/health", health),
        WebSocketRoute("/ws/jobs/{job_id}", job_stream),
    ])


def run() -> None:
    import uvicorn

    from kailash_app import stores

    config.chdir_workdir()
    app = build_app()
    uvicorn.run(app, host="0.0.0.0", port=stores.settings().websocket_port,
                log_level=config.os.environ.get("LOG_LEVEL", "warning").lower(),
                access_log=False, ws="websockets", ws_ping_interval=20)
