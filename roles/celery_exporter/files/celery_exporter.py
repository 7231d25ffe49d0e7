"""Prometheus exporter for Celery on a Redis broker (issue #13), the project's own.

What it serves on ``GET /metrics`` (CELERY_EXPORTER_PORT, default 9808):

- ``celery_queue_length{queue_name}``: messages waiting in each configured queue, read
  with LLEN at every scrape (kombu's Redis transport keeps a queue as a list, plus one
  list per priority step: ``<queue>\\x06\\x16<n>``; their sum). Messages a worker has
  already fetched (prefetched or running) are not counted.
- ``celery_exporter_broker_up``: 1 when the broker answered the last scrape's LLENs.
- from Celery's task events (the workers must send them: ``worker_send_task_events``;
  the producer's ``task_send_sent_event`` names the queue of each task):
  ``celery_task_{sent,received,started,succeeded,failed,retried,rejected,revoked}_total``
  with labels ``name`` (task name), ``hostname`` (worker; not on sent) and ``queue_name``
  (from the task-sent event, else CELERY_EXPORTER_DEFAULT_QUEUE); failures also carry
  ``exception`` (the exception's type name only: its message is unbounded);
  ``celery_task_runtime`` (histogram, seconds, succeeded tasks).
- ``celery_worker_up{hostname}`` (1 while the worker's event heartbeats arrive, 0 after;
  the series is dropped CELERY_EXPORTER_WORKER_FORGET seconds after the last heartbeat)
  and ``celery_worker_tasks_active{hostname}`` (from the heartbeats).
- ``celery_exporter_events_total{type}``: events received, by type.

The metric names follow prometheus-exporter-celery (danihodovic/celery-exporter) where it
has one, so its dashboards work. It does not emit ``celery_active_consumer_count``: a Redis
broker has no consumer count (that exporter asks the workers over remote control, which
the Kailash workers have switched off). ``celery_worker_up`` is the liveness signal.

On Redis, Celery's event exchange is a fanout over pub/sub: this process SUBSCRIBEs; no
event is stored while it is not running. It needs no remote control (no broadcast, no
pidbox): an ordinary Redis ACL user with list and pub/sub commands is enough.

Configuration (environment): CELERY_EXPORTER_BROKER_HOST, _BROKER_PORT, _BROKER_DB,
_BROKER_USER, _BROKER_PASSWORD_FILE (or _BROKER_PASSWORD), CELERY_EXPORTER_QUEUES
(comma-separated), CELERY_EXPORTER_DEFAULT_QUEUE, CELERY_EXPORTER_PORT,
CELERY_EXPORTER_WORKER_FORGET, CELERY_EXPORTER_RUNTIME_BUCKETS (comma-separated seconds),
LOG_LEVEL.

    celery-exporter              # serve
    celery-exporter healthcheck  # exit 0 when /metrics answers (Docker healthcheck)
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
import urllib.request
from urllib.parse import quote

log = logging.getLogger("celery_exporter")

PRIORITY_SEP = "\x06\x16"  # kombu.transport.redis: Channel.sep
PRIORITY_STEPS = (0, 3, 6, 9)  # kombu's default priority_steps (0: the queue's own list)
DEFAULT_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
TASK_EVENTS = ("sent", "received", "started", "succeeded", "failed", "retried", "rejected",
               "revoked")
_EXC_TYPE = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(\(|:|$)")


class ConfigError(RuntimeError):
    pass


def env(name: str, default: str = "") -> str:
    return os.environ.get(f"CELERY_EXPORTER_{name}", default)


def env_int(name: str, default: int) -> int:
    raw = env(name)
    try:
        return int(raw) if raw.strip() else default
    except ValueError as exc:
        raise ConfigError(f"CELERY_EXPORTER_{name}={raw!r} is not an integer") from exc


def broker_password() -> str:
    path = env("BROKER_PASSWORD_FILE")
    if path:
        try:
            with open(path, encoding="utf-8") as fh:
                return fh.read().rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(
                f"CELERY_EXPORTER_BROKER_PASSWORD_FILE={path}: {exc.strerror}") from exc
    return env("BROKER_PASSWORD")


def broker_url() -> str:
    user, password = env("BROKER_USER", "default"), broker_password()
    auth = f"{quote(user, safe='')}:{quote(password, safe='')}@" if password else ""
    host, port = env("BROKER_HOST", "redis"), env_int("BROKER_PORT", 6379)
    return f"redis://{auth}{host}:{port}/{env_int('BROKER_DB', 0)}"


def exception_type(text: str | None) -> str:
    """``TypeError`` of ``TypeError("f() missing 1 required ...")``; ``unknown`` otherwise."""
    match = _EXC_TYPE.match(text or "")
    return match.group(1).rsplit(".", 1)[-1] if match else "unknown"


def queue_keys(queue: str) -> list[str]:
    return [queue if step == 0 else f"{queue}{PRIORITY_SEP}{step}" for step in PRIORITY_STEPS]


class Exporter:
    def __init__(self, app, redis_client, queues: list[str], default_queue: str,
                 worker_forget: float, buckets, registry=None):
        from prometheus_client import REGISTRY, Counter, Histogram

        self.app = app
        self.redis = redis_client
        self.queues = queues
        self.default_queue = default_queue
        self.worker_forget = worker_forget
        self.registry = registry or REGISTRY
        self.state = app.events.State(max_tasks_in_memory=10000, max_workers_in_memory=1000)
        self.lock = threading.Lock()
        self.connected = False
        # hostname -> when its last event arrived (a worker-offline event clears the
        # worker's heartbeats in Celery's State, so they cannot date it)
        self.last_seen: dict[str, float] = {}
        labels = ["name", "hostname", "queue_name"]
        self.counters = {}
        for kind in TASK_EVENTS:
            names = ["name", "queue_name"] if kind == "sent" else labels
            if kind == "failed":
                names = [*labels, "exception"]
            self.counters[kind] = Counter(
                f"celery_task_{kind}", f"Celery task-{kind} events received.", names,
                registry=self.registry)
        self.runtime = Histogram(
            "celery_task_runtime", "Runtime of succeeded Celery tasks (task-succeeded events).",
            labels, buckets=buckets, registry=self.registry)
        self.events = Counter("celery_exporter_events", "Celery events received, by type.",
                              ["type"], registry=self.registry)
        self.registry.register(self)

    # --- scrape -----------------------------------------------------------------------
    def describe(self):
        """Nothing up front: the registry must not scrape the broker when registering."""
        return []

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        up = GaugeMetricFamily("celery_exporter_broker_up",
                               "1 when the broker answered this scrape's queue lengths.")
        length = GaugeMetricFamily("celery_queue_length",
                                   "Messages waiting in the broker queue (all priorities).",
                                   labels=["queue_name"])
        try:
            pipe = self.redis.pipeline(transaction=False)
            for queue in self.queues:
                for key in queue_keys(queue):
                    pipe.llen(key)
            counts = pipe.execute()
            steps = len(PRIORITY_STEPS)
            for i, queue in enumerate(self.queues):
                length.add_metric([queue], float(sum(counts[i * steps:(i + 1) * steps])))
            up.add_metric([], 1.0)
        except Exception as exc:  # noqa: BLE001 - reported as celery_exporter_broker_up 0
            log.warning("broker: %s", exc)
            up.add_metric([], 0.0)
        yield up
        yield length
        yield from self._workers()
        connected = GaugeMetricFamily("celery_exporter_events_connected",
                                      "1 while the event receiver is subscribed.")
        connected.add_metric([], 1.0 if self.connected else 0.0)
        yield connected

    def _workers(self):
        from prometheus_client.core import GaugeMetricFamily

        up = GaugeMetricFamily("celery_worker_up",
                               "1 while the worker's event heartbeats arrive.", labels=["hostname"])
        active = GaugeMetricFamily("celery_worker_tasks_active",
                                   "Tasks the worker runs (its last heartbeat).",
                                   labels=["hostname"])
        now = time.time()
        with self.lock:
            workers = list(self.state.workers.items())
        for hostname, worker in workers:
            if now - self.last_seen.get(hostname, now) > self.worker_forget:
                with self.lock:
                    self.state.workers.pop(hostname, None)
                    self.last_seen.pop(hostname, None)
                continue
            alive = worker.alive
            up.add_metric([hostname], 1.0 if alive else 0.0)
            active.add_metric([hostname], float(worker.active or 0) if alive else 0.0)
        yield up
        yield active

    # --- events -----------------------------------------------------------------------
    def on_event(self, event: dict) -> None:
        kind = event.get("type", "")
        self.events.labels(type=kind).inc()
        with self.lock:
            self.state.event(event)
            if event.get("hostname"):
                self.last_seen[event["hostname"]] = time.time()
            task = self.state.tasks.get(event.get("uuid")) if kind.startswith("task-") else None
            if task is None:
                return
            name = task.name or "unknown"
            queue = task.routing_key or self.default_queue
            if kind == "task-sent":
                queue = event.get("queue") or event.get("routing_key") or queue
                task.routing_key = queue
        short = kind[len("task-"):]
        if short not in self.counters:
            return
        if short == "sent":
            self.counters[short].labels(name=name, queue_name=queue).inc()
            return
        labels = {"name": name, "hostname": event.get("hostname") or "unknown",
                  "queue_name": queue}
        if short == "failed":
            self.counters[short].labels(**labels,
                                        exception=exception_type(event.get("exception"))).inc()
        else:
            self.counters[short].labels(**labels).inc()
        if short == "succeeded" and event.get("runtime") is not None:
            self.runtime.labels(**labels).observe(float(event["runtime"]))

    def consume_forever(self) -> None:
        """Subscribe to the events; reconnect after a broker failure."""
        while True:
            try:
                with self.app.connection_for_read() as conn:
                    receiver = self.app.events.Receiver(conn, handlers={"*": self.on_event})
                    self.connected = True
                    log.info("events: subscribed")
                    receiver.capture(limit=None, timeout=None, wakeup=False)
            except Exception as exc:  # noqa: BLE001 - retried
                log.warning("events: %s; reconnecting in 2 s", exc)
            self.connected = False
            time.sleep(2)


def buckets_from_env() -> tuple[float, ...]:
    raw = env("RUNTIME_BUCKETS")
    if not raw.strip():
        return DEFAULT_BUCKETS
    try:
        return tuple(sorted(float(b) for b in raw.split(",") if b.strip()))
    except ValueError as exc:
        raise ConfigError(f"CELERY_EXPORTER_RUNTIME_BUCKETS={raw!r}: not numbers") from exc


def serve() -> None:
    import redis
    from celery import Celery
    from prometheus_client import start_http_server

    queues = [q.strip() for q in env("QUEUES", "celery").split(",") if q.strip()]
    if not queues:
        raise ConfigError("CELERY_EXPORTER_QUEUES names no queue")
    url = broker_url()
    app = Celery("celery_exporter", broker=url)
    app.conf.update(broker_connection_retry_on_startup=True,
                    broker_transport_options={"socket_timeout": 10})
    exporter = Exporter(
        app, redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5), queues,
        env("DEFAULT_QUEUE") or queues[0], float(env_int("WORKER_FORGET", 300)),
        buckets_from_env())
    port = env_int("PORT", 9808)
    start_http_server(port)
    log.info("serving :%d/metrics; queues %s", port, ", ".join(queues))
    exporter.consume_forever()


def healthcheck() -> int:
    url = f"http://127.0.0.1:{env_int('PORT', 9808)}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:  # noqa: S310 - loopback
            return 0 if resp.status == 200 else 1
    except OSError as exc:
        print(f"unhealthy: {url}: {exc}")
        return 1


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=getattr(logging, os.environ.get("LOG_LEVEL", "INFO").upper(),
                                      logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if argv[:1] == ["healthcheck"]:
        sys.exit(healthcheck())
    if argv:
        sys.exit(f"celery-exporter: unknown arguments {argv} (none, or: healthcheck)")
    try:
        serve()
    except ConfigError as exc:
        sys.exit(f"celery-exporter: {exc}")


if __name__ == "__main__":
    main()
