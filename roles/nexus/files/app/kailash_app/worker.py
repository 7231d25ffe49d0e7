"""Celery worker: batch classification jobs from the Redis broker.

The broker user is an ordinary Redis ACL user (no @dangerous commands): remote
control, gossip, mingle and events are off, so kombu needs only list, set,
sorted-set, hash and pub/sub commands.

NEXUS_CELERY_EVENTS=true (the nexus role sets it when the Celery exporter is deployed,
roles/celery_exporter) turns on Celery's task events: task-sent from the API (it names the
queue), task-received/started/succeeded/failed/retried from the workers, and the workers'
event heartbeats. On Redis they are PUBLISHed to a pub/sub channel: nothing is stored
when no exporter listens.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from celery import Celery, signals

from kailash_app import classifier, stores
from kailash_app.config import Settings

log = logging.getLogger("kailash_app.worker")

QUEUE = "kailash-batch"
TASK = "kailash_app.classify_batch"
CHUNK = 50  # items per task
HEARTBEAT = os.environ.get("KAILASH_WORKER_HEARTBEAT", "/tmp/kailash-worker.heartbeat")
HEARTBEAT_EVERY = 5.0


def make_celery(settings: Settings | None = None) -> Celery:
    s = settings or Settings.from_env()
    app = Celery("kailash_app", broker=s.redis_url(s.redis_broker_db))
    app.conf.update(
        task_default_queue=QUEUE,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_enable_remote_control=False,
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": 900, "socket_timeout": 10},
    )
    if s.celery_events:
        app.conf.update(worker_send_task_events=True, task_send_sent_event=True)
    return app


celery_app = make_celery()


@celery_app.task(name=TASK, bind=True, max_retries=3, default_retry_delay=2)
def classify_batch(self, job_id: str, items: list[str]) -> int:
    try:
        classifier.classify_many(items, job_id=job_id)
    except Exception as exc:
        if self.request.retries >= self.max_retries:
            classifier.fail_job(job_id, f"{type(exc).__name__}: {exc}")
            raise
        raise self.retry(exc=exc) from exc
    classifier.advance_job(job_id, len(items))
    return len(items)


def enqueue(job_id: str, items: list[str]) -> int:
    """Split ``items`` into tasks of CHUNK items; returns the number of tasks."""
    chunks = [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]
    for chunk in chunks:
        celery_app.send_task(TASK, args=[job_id, chunk], queue=QUEUE)
    return len(chunks)


def _heartbeat_loop() -> None:
    broker = stores.redis_client(stores.settings().redis_broker_db)
    while True:
        try:
            broker.ping()
            with open(HEARTBEAT, "w", encoding="ascii") as fh:
                fh.write(f"{time.time():.0f}\n")
        except Exception as exc:  # noqa: BLE001 - a stale file is the signal
            log.warning("heartbeat: broker unreachable: %s", exc)
        time.sleep(HEARTBEAT_EVERY)


@signals.worker_ready.connect
def _start_heartbeat(**_kwargs) -> None:
    threading.Thread(target=_heartbeat_loop, name="heartbeat", daemon=True).start()


def run() -> None:
    s = stores.settings()
    level = os.environ.get("LOG_LEVEL", "WARNING").upper()
    # event heartbeats (every 2 s) tell the exporter which workers are alive
    heartbeat = [] if s.celery_events else ["--without-heartbeat"]
    celery_app.worker_main([
        "worker", f"--concurrency={max(1, s.worker_concurrency)}", f"--loglevel={level}",
        f"--queues={QUEUE}", "--without-gossip", "--without-mingle", *heartbeat,
        "--pool=prefork", "--hostname=kailash-worker@%h",
    ])
