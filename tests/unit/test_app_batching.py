"""Unit tests for the reference app's request batching (roles/nexus/files/app/kailash_app/
batching.py): concurrent callers share calls, each gets its own result or the error, an
idle caller goes alone without waiting, and the write-behind writer loses nothing it can
write. Pure Python threads, no datastore: the deployed stack's tests
(tests/integration/test_app_stack.py) exercise the same code against ChromaDB and
PostgreSQL."""

from __future__ import annotations

import importlib.util
import threading
import time
from pathlib import Path

import pytest

SRC = (Path(__file__).resolve().parents[2] / "roles" / "nexus" / "files" / "app"
       / "kailash_app" / "batching.py")
spec = importlib.util.spec_from_file_location("kailash_app_batching", SRC)
batching = importlib.util.module_from_spec(spec)
spec.loader.exec_module(batching)


def _slow_double(calls: list, gate: threading.Event | None = None):
    def fn(items):
        calls.append(list(items))
        if gate is not None:
            gate.wait(5)
        return [i * 2 for i in items]
    return fn


def test_idle_caller_goes_alone_and_gets_its_result():
    calls: list = []
    co = batching.Coalescer("t", _slow_double(calls), workers=1, max_batch=8)
    t0 = time.monotonic()
    assert co(21) == 42
    assert time.monotonic() - t0 < 1.0  # no timer to fill a batch
    assert calls == [[21]]


def test_concurrent_callers_share_one_call_and_each_gets_its_own_result():
    calls: list = []
    gate = threading.Event()
    co = batching.Coalescer("t", _slow_double(calls, gate), workers=1, max_batch=64)
    results: dict[int, int] = {}

    def call(i):
        results[i] = co(i)

    first = threading.Thread(target=call, args=(0,))
    first.start()
    while not calls:  # the worker is busy with item 0
        time.sleep(0.001)
    rest = [threading.Thread(target=call, args=(i,)) for i in range(1, 21)]
    for t in rest:
        t.start()
    time.sleep(0.2)  # all 20 are queued behind the call in flight
    gate.set()
    for t in [first, *rest]:
        t.join(5)
    assert results == {i: i * 2 for i in range(21)}
    assert calls[0] == [0]
    assert sorted(calls[1]) == list(range(1, 21))  # one call for everything queued
    assert len(calls) == 2


def test_max_batch_caps_a_call():
    calls: list = []
    gate = threading.Event()
    co = batching.Coalescer("t", _slow_double(calls, gate), workers=1, max_batch=5)
    threads = [threading.Thread(target=co, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    gate.set()
    for t in threads:
        t.join(5)
    assert sum(len(c) for c in calls) == 12
    assert max(len(c) for c in calls) <= 5


def test_every_caller_of_a_failed_call_gets_the_error_and_the_worker_survives():
    state = {"fail": True}

    def fn(items):
        if state["fail"]:
            raise ConnectionError("chroma down")
        return items

    co = batching.Coalescer("t", fn, workers=1)
    with pytest.raises(ConnectionError, match="chroma down"):
        co(1)
    state["fail"] = False
    assert co(2) == 2


def test_a_short_answer_is_an_error_not_a_wrong_result():
    co = batching.Coalescer("t", lambda items: items[:-1], workers=1)
    with pytest.raises(RuntimeError, match="0 results for 1 items"):
        co(1)


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="max_batch"):
        batching.Coalescer("t", lambda x: x, max_batch=0)


def test_write_behind_writes_everything_in_fewer_calls_and_flush_waits():
    written: list = []
    gate = threading.Event()

    def fn(rows):
        gate.wait(5)
        written.append(list(rows))

    wb = batching.WriteBehind("w", fn)
    wb.put([0])
    time.sleep(0.05)  # the writer is blocked on row 0
    for i in range(1, 101):
        wb.put([i])
    assert not wb.flush(0.1)  # not written yet: flush says so
    gate.set()
    assert wb.flush(5)
    assert sorted(r for call in written for r in call) == list(range(101))
    assert len(written) == 2
    assert wb.written == 101 and wb.lost == 0


def test_write_behind_counts_and_logs_rows_it_could_not_write(caplog):
    def fn(rows):
        raise OSError("postgres down")

    wb = batching.WriteBehind("w", fn)
    wb.put([1, 2, 3])
    assert wb.flush(5)
    assert wb.lost == 3
    assert "3 rows not written: postgres down" in caplog.text
