"""Opportunistic batching of the API's per-request datastore work (issue #14).

Under load, many classify requests of one replica are in flight at once, each wanting
one ChromaDB query and one PostgreSQL insert. Sent one by one, each pays a full HTTP or
SQL round trip, and most of the CPU goes to that overhead (measured: ChromaDB's server
spends ~2 ms CPU per single-vector query, DataFlow ~1.4 ms per single-row insert).

- ``Coalescer``: a caller hands over one item and waits for its own result. Worker
  threads take *everything queued at that moment* (up to ``max_batch``) and make one
  call for all of it. Nothing waits for a timer: an idle replica sends each request
  alone, as before; only requests that arrive while a call is in flight share the next.
- ``WriteBehind``: ``put`` returns at once; one thread writes what has queued up in one
  call. ``flush`` waits until everything put so far was written (shutdown, tests).

Standard library only, so that tests/unit can exercise it without the app's packages.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

log = logging.getLogger("kailash_app.batching")


def _take(q: queue.SimpleQueue, max_batch: int) -> list:
    """Wait for one item, then take whatever else is queued right now (max_batch in all)."""
    batch = [q.get()]
    while len(batch) < max_batch:
        try:
            batch.append(q.get_nowait())
        except queue.Empty:
            break
    return batch


class Coalescer:
    """``coalescer(item)`` -> ``fn([item, ...])[i]``, concurrent callers sharing calls."""

    def __init__(self, name: str, fn: Callable[[list[Any]], list[Any]], *,
                 workers: int = 2, max_batch: int = 64) -> None:
        if workers < 1 or max_batch < 1:
            raise ValueError(f"{name}: workers and max_batch must be >= 1")
        self.name, self.fn, self.max_batch = name, fn, max_batch
        self.q: queue.SimpleQueue[tuple[Any, Future]] = queue.SimpleQueue()
        self.calls = 0
        self.items = 0
        for i in range(workers):
            threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True).start()

    def __call__(self, item: Any, timeout: float = 30.0) -> Any:
        fut: Future = Future()
        self.q.put((item, fut))
        return fut.result(timeout)

    def _run(self) -> None:
        while True:
            batch = _take(self.q, self.max_batch)
            try:
                results = self.fn([item for item, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"{self.name}: {len(results)} results for "
                                       f"{len(batch)} items")
            except Exception as exc:  # noqa: BLE001 - every caller gets the error
                for _, fut in batch:
                    fut.set_exception(exc)
                continue
            self.calls += 1
            self.items += len(batch)
            for (_, fut), res in zip(batch, results, strict=True):
                fut.set_result(res)


class WriteBehind:
    """``put(rows)`` queues rows; one thread writes them, many puts per ``fn`` call."""

    def __init__(self, name: str, fn: Callable[[list[Any]], None], *,
                 max_batch: int = 500) -> None:
        self.name, self.fn, self.max_batch = name, fn, max_batch
        self.q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.written = 0
        self.lost = 0
        self._pending = 0
        self._cv = threading.Condition()
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def put(self, rows: list[Any]) -> None:
        with self._cv:
            self._pending += len(rows)
        for row in rows:
            self.q.put(row)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every row put so far was written (or given up); True when done."""
        with self._cv:
            return self._cv.wait_for(lambda: self._pending == 0, timeout)

    def _run(self) -> None:
        while True:
            batch = _take(self.q, self.max_batch)
            try:
                self.fn(batch)
                self.written += len(batch)
            except Exception as exc:  # noqa: BLE001 - logged: the requests were answered
                self.lost += len(batch)
                log.error("%s: %d rows not written: %s", self.name, len(batch), exc)
            with self._cv:
                self._pending -= len(batch)
                self._cv.notify_all()
