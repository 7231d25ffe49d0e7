#!/usr/bin/env python3
"""Performance of the deployed Kailash Nexus app through the NGINX TLS edge (issue #4).

Run from the repository root against a running stack (default: the main local stack of
`make deploy`, project kailash, https://127.0.0.1:8443):

    python3 bench/app_load.py [--project kailash] [--url https://127.0.0.1:8443]
                              [--ca .secrets/local/edge/ca.crt] [--only health,classify,...]

Standard library only (Python >= 3.11: the host's python3 or .venv/bin/python); the
optional `--wrk` cross-check installs Debian's wrk with apt-get when it is missing.
The JWT comes from `docker exec <project>-nexus-api-1 kailash-app token --sub bench`.

Load generator (this file, asyncio, HTTP/1.1 keep-alive, TLS verified against --ca):

- open loop ("constant rate"): request i is due at t0 + i/rate whatever happened to the
  ones before; its latency runs from that due time (coordinated omission corrected:
  time spent waiting for a free connection in the generator counts). Requests still
  unsent at the end are reported as "unsent" (the rate was not achieved);
- closed loop ("N users"): N connections, each sending its next request as soon as the
  previous answer arrived (plus --think seconds).

Scenarios (each compared with a baseline in the same run, ratio = through NGINX / baseline):

1. health     GET /health at --health-rate req/s (open loop) through NGINX+TLS, vs the
              same rate in plain HTTP straight to the API replicas' bridge addresses.
2. classify   POST /workflows/classify/execute, --users users, a mix of repeated
              (cache hit) and unique (miss) descriptions (--hit-share); p95 overall and
              by the answer's `cached` flag; same users straight to the replicas; plus a
              paced variant (--think-paced s between requests of a user).
3. recommend  POST /workflows/recommend/execute with codes from the classify answers.
4. batch      submit_batch of --batch-items unique items, job_status polled until
              completed: items/minute end to end, vs the API's classify rate measured in 2.
5. failover   open-loop /health + classify through NGINX; one API replica is killed
              (--failover-method crash: SIGKILL of its main process, which the restart
              policy restarts; docker-kill: `docker kill`, which Docker treats as a
              manual stop: no restart, the script starts it after a while); failed
              requests, latency while it is down, and the times until the error rate is
              0 again, the replica is healthy again, and NGINX serves from it again (the
              edge's access log names the upstream address).

Prints a table (measured | ADR target | baseline | ratio | load average) and writes
reports/bench-app.json. Figures only, never assertions. The load generator runs on the
same (2-core) machine as the stack and takes CPU from it: the generator's own CPU share
and the host's CPU busy share are printed with every run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import math
import os
import random
import re
import shutil
import ssl
import string
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
TAXONOMY = ROOT / "roles" / "nexus" / "files" / "app" / "kailash_app" / "data" / "taxonomy.json"
TARGETS = {
    "health_p99_ms": 100.0,
    "classify_p95_ms": 500.0,
    "recommend_p95_ms": 2000.0,
    "batch_items_per_min": 5000.0,  # issue #14 (ADR-002 asked for 1000)
    "failover_s": 30.0,
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- host stats
def loadavg() -> list[float]:
    with open("/proc/loadavg", encoding="ascii") as fh:
        return [float(x) for x in fh.read().split()[:3]]


def cpu_times() -> tuple[float, float]:
    with open("/proc/stat", encoding="ascii") as fh:
        vals = [float(x) for x in fh.readline().split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0.0)
    return sum(vals), idle


class HostMeter:
    """Load average, host CPU busy share and this process's CPU share over a run
    (children included: the wrk runs)."""

    @staticmethod
    def _cpu() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def __enter__(self) -> HostMeter:
        self.load_before = loadavg()
        self.cpu0 = cpu_times()
        self.proc0 = self._cpu()
        self.wall0 = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        total, idle = cpu_times()
        dt, di = total - self.cpu0[0], idle - self.cpu0[1]
        wall = time.monotonic() - self.wall0
        self.stats = {
            "loadavg_before": self.load_before,
            "loadavg_after": loadavg(),
            "host_cpu_busy_pct": round(100.0 * (dt - di) / dt, 1) if dt > 0 else None,
            "generator_cpu_pct_of_one_core": round(
                100.0 * (self._cpu() - self.proc0) / wall, 1) if wall > 0 else None,
            "cores": os.cpu_count(),
        }


class StackCpu:
    """CPU seconds used by each Compose service of the project over a run, from
    /proc/<pid>/stat of the containers' processes (utime+stime+cutime+cstime of each
    process `docker top` lists): independent of how busy the rest of the host is, so
    `cpu ms per request` is the load-independent figure to size the stack with."""

    TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def __init__(self, project: str, host_port: int | None = None) -> None:
        self.project = project
        self.host_port = host_port

    def sample(self) -> dict[str, float]:
        out: dict[str, float] = {}
        try:
            names = sh("docker", "ps", "--filter",
                       f"label=com.docker.compose.project={self.project}", "--format",
                       '{{.Names}} {{.Label "com.docker.compose.service"}}')
        except (RuntimeError, OSError, subprocess.SubprocessError):
            return out
        for line in names.splitlines():
            name, _, service = line.partition(" ")
            try:
                pids = [int(x) for x in sh("docker", "top", name, "-eo", "pid",
                                           check=False).split()[1:] if x.isdigit()]
            except (OSError, subprocess.SubprocessError):
                continue
            for pid in pids:
                try:
                    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
                        f = fh.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                out[service] = out.get(service, 0.0) + sum(int(x) for x in f[11:15]) / self.TICK
        # Docker's userland proxy copies every byte of loopback connections to the
        # published edge port: part of the path, outside the containers
        if self.host_port:
            procs = sh("ps", "-C", "docker-proxy", "-o", "pid=,args=", check=False)
            for line in procs.splitlines():
                if f"-host-port {self.host_port} " in line + " ":
                    try:
                        with open(f"/proc/{line.split()[0]}/stat", encoding="ascii") as fh:
                            f = fh.read().rsplit(")", 1)[1].split()
                        out["docker-proxy"] = out.get("docker-proxy", 0.0) + \
                            sum(int(x) for x in f[11:15]) / self.TICK
                    except (OSError, IndexError):
                        pass
        return out

    @staticmethod
    def delta(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
        return {k: round(b.get(k, 0.0) - a.get(k, 0.0), 2) for k in sorted(set(a) | set(b))
                if b.get(k, 0.0) - a.get(k, 0.0) > 0.005}


def cpu_per_request(cpu: dict[str, float], requests: int) -> dict[str, float]:
    if not requests:
        return {}
    return {k: round(v * 1000.0 / requests, 2) for k, v in cpu.items()}


# --------------------------------------------------------------------------- HTTP client
@dataclass
class Target:
    host: str
    port: int
    sslctx: ssl.SSLContext | None
    sni: str | None
    hostheader: str
    label: str


class HttpError(Exception):
    pass


class Conn:
    """One HTTP/1.1 keep-alive connection (TLS when the target has a context)."""

    def __init__(self, target: Target) -> None:
        self.t = target
        self.r: asyncio.StreamReader | None = None
        self.w: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.r, self.w = await asyncio.open_connection(
            self.t.host, self.t.port, ssl=self.t.sslctx,
            server_hostname=self.t.sni if self.t.sslctx else None, limit=1 << 24)

    def close(self) -> None:
        if self.w is not None:
            with contextlib.suppress(Exception):
                self.w.close()
        self.r = self.w = None

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self.w is None:
            await self.open()
        assert self.r is not None and self.w is not None
        self.w.write(raw)
        head = await self.r.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise HttpError(f"bad status line {lines[0][:80]!r}")
        status = int(parts[1])
        length, chunked, close = None, False, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                close = True
        if chunked:
            body = bytearray()
            while True:
                size_line = await self.r.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    await self.r.readuntil(b"\r\n")
                    break
                body += await self.r.readexactly(size + 2)
                del body[-2:]
            data = bytes(body)
        elif length is not None:
            data = await self.r.readexactly(length) if length else b""
        else:
            data = await self.r.read()
            close = True
        if close:
            self.close()
        return status, data


def build_request(t: Target, method: str, path: str, token: str | None,
                  body: Any = None) -> bytes:
    payload = b"" if body is None else json.dumps(body).encode()
    head = [f"{method} {path} HTTP/1.1", f"Host: {t.hostheader}", "Accept: application/json"]
    if token:
        head.append(f"Authorization: Bearer {token}")
    if body is not None or method == "POST":
        head += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + payload


@dataclass
class Rec:
    sched: float       # due time (open loop) or send time (closed loop), monotonic
    start: float       # actual send time
    end: float
    status: int        # 0 = connection error / timeout
    tag: str = ""
    err: str = ""
    body: bytes = b""


@dataclass
class Spec:
    """What to send: `make(i)` -> (target, raw request, tag); `keep_body` keeps answers."""
    make: Any
    keep_body: bool = False


async def one(conn: Conn, raw: bytes, timeout: float) -> tuple[int, bytes, str]:
    try:
        status, body = await asyncio.wait_for(conn.request(raw), timeout)
        return status, body, ""
    except TimeoutError:
        conn.close()
        return 0, b"", "timeout"
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, HttpError,
            ValueError, ssl.SSLError) as exc:
        conn.close()
        return 0, b"", type(exc).__name__


async def open_loop(targets: list[Target], spec: Spec, rate: float, duration: float,
                    conns: int, timeout: float = 10.0, drain: float = 10.0,
                    t0: float | None = None, stop: asyncio.Event | None = None) -> dict:
    """Constant-rate load: request i due at t0 + i/rate; latency from the due time."""
    queue: asyncio.Queue[tuple[int, float]] = asyncio.Queue()
    recs: list[Rec] = []
    pool = [Conn(targets[i % len(targets)]) for i in range(conns)]
    # open the connections before the clock starts (TLS handshakes are not the subject)
    await asyncio.gather(*(c.open() for c in pool), return_exceptions=True)
    start = (t0 or time.monotonic()) + 0.05
    total = int(rate * duration)

    async def producer() -> None:
        i = 0
        while i < total and not (stop and stop.is_set()):
            now = time.monotonic()
            while i < total and start + i / rate <= now:
                queue.put_nowait((i, start + i / rate))
                i += 1
            if i < total:
                await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))

    async def worker(conn: Conn) -> None:
        while True:
            i, due = await queue.get()
            raw, tag = spec.make(i, conn.t)
            t_send = time.monotonic()
            status, body, err = await one(conn, raw, timeout)
            recs.append(Rec(due, t_send, time.monotonic(), status, tag, err,
                            body if (spec.keep_body or status == 0 or status >= 400) else b""))
            queue.task_done()

    workers = [asyncio.create_task(worker(c)) for c in pool]
    await producer()
    deadline = time.monotonic() + drain
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(queue.join(), max(0.1, deadline - time.monotonic()))
    unsent = queue.qsize()
    for w in workers:
        w.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    for c in pool:
        c.close()
    return {"recs": recs, "t0": start, "duration": duration, "planned": total,
            "stopped_at": time.monotonic(),
            "unsent": unsent, "rate": rate, "conns": conns}


async def closed_loop(targets: list[Target], spec: Spec, users: int, duration: float,
                      think: float = 0.0, timeout: float = 30.0) -> dict:
    """`users` connections, each sending its next request when the last one answered."""
    recs: list[Rec] = []
    pool = [Conn(targets[i % len(targets)]) for i in range(users)]
    await asyncio.gather(*(c.open() for c in pool), return_exceptions=True)
    start = time.monotonic() + 0.05
    stop = start + duration
    counter = iter(range(10**9))

    async def user(u: int, conn: Conn) -> None:
        rnd = random.Random(u)
        if think:
            await asyncio.sleep(max(0.0, start - time.monotonic()) + rnd.uniform(0, think))
        else:
            await asyncio.sleep(max(0.0, start - time.monotonic()))
        while time.monotonic() < stop:
            raw, tag = spec.make(next(counter), conn.t)
            t_send = time.monotonic()
            status, body, err = await one(conn, raw, timeout)
            recs.append(Rec(t_send, t_send, time.monotonic(), status, tag, err,
                            body if (spec.keep_body or status == 0 or status >= 400) else b""))
            if think:
                await asyncio.sleep(rnd.uniform(0.5 * think, 1.5 * think))

    await asyncio.gather(*(user(u, c) for u, c in enumerate(pool)))
    for c in pool:
        c.close()
    return {"recs": recs, "t0": start, "duration": duration, "users": users, "think": think}


# --------------------------------------------------------------------------- statistics
def pct(sorted_vals: list[float], p: float) -> float | None:
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, math.ceil(p / 100.0 * len(sorted_vals)) - 1))
    return sorted_vals[k]


def summarise(recs: list[Rec], wall: float, *, from_sched: bool = True,
              ok=lambda r: 200 <= r.status < 300) -> dict:
    lat = sorted(((r.end - (r.sched if from_sched else r.start)) * 1000.0) for r in recs)
    svc = sorted(((r.end - r.start) * 1000.0) for r in recs)
    errors: dict[str, int] = {}
    for r in recs:
        if not ok(r):
            key = r.err or f"HTTP {r.status}"
            errors[key] = errors.get(key, 0) + 1
    out = {
        "requests": len(recs),
        "achieved_rps": round(len(recs) / wall, 1) if wall > 0 else None,
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "p50_ms": pct(lat, 50), "p95_ms": pct(lat, 95), "p99_ms": pct(lat, 99),
        "max_ms": lat[-1] if lat else None,
        "service_p99_ms": pct(svc, 99),
    }
    return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in out.items()}


def first_error_bodies(recs: list[Rec], n: int = 3) -> list[str]:
    out = []
    for r in recs:
        if r.status == 0 or r.status >= 400:
            out.append(f"{r.status} {r.err} {r.body[:200]!r}")
            if len(out) >= n:
                break
    return out


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 2)


# --------------------------------------------------------------------------- the stack
def sh(*cmd: str, check: bool = True, timeout: float = 60) -> str:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: rc={res.returncode}: {res.stderr.strip()[-400:]}")
    return res.stdout


def containers(project: str, service: str) -> list[str]:
    out = sh("docker", "ps", "-a", "--filter", f"label=com.docker.compose.project={project}",
             "--filter", f"label=com.docker.compose.service={service}",
             "--format", "{{.Names}}")
    return sorted(n for n in out.split() if n)


def inspect(name: str) -> dict:
    return json.loads(sh("docker", "inspect", name))[0]


def container_ip(info: dict, prefer: str = "_edge") -> str | None:
    nets = (info.get("NetworkSettings") or {}).get("Networks") or {}
    ips = [(n, v.get("IPAddress")) for n, v in nets.items() if v.get("IPAddress")]
    ips.sort(key=lambda nv: (not nv[0].endswith(prefer), nv[0]))
    return ips[0][1] if ips else None


def api_port(info: dict) -> int:
    for item in (info.get("Config") or {}).get("Env") or []:
        if item.startswith("NEXUS_API_PORT="):
            return int(item.split("=", 1)[1])
    return 8000


def get_token(api_container: str) -> str:
    out = sh("docker", "exec", api_container, "kailash-app", "token", "--sub", "bench",
             "--ttl", "7200").strip().splitlines()
    tok = [line for line in out if line.count(".") == 2]
    if not tok:
        raise RuntimeError(f"no JWT from {api_container}: {out!r}")
    return tok[-1]


def find_values(obj: Any, key: str) -> list[Any]:
    """Every value of `key` anywhere in a JSON document (the answer's exact nesting
    depends on the Nexus version: {"result": {...}} or wrapped in outputs)."""
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == key:
                out.append(v)
            out.extend(find_values(v, key))
    elif isinstance(obj, list):
        for v in obj:
            out.extend(find_values(v, key))
    return out


def find_dict_with(obj: Any, *keys: str) -> dict | None:
    if isinstance(obj, dict):
        if all(k in obj for k in keys):
            return obj
        for v in obj.values():
            found = find_dict_with(v, *keys)
            if found is not None:
                return found
    elif isinstance(obj, list):
        for v in obj:
            found = find_dict_with(v, *keys)
            if found is not None:
                return found
    return None


# --------------------------------------------------------------------------- payloads
WORDS = ["industrial", "compact", "heavy-duty", "professional", "premium", "steel",
         "stainless", "plastic", "aluminium", "ergonomic", "portable", "wireless",
         "rechargeable", "blue", "black", "red", "grey", "large", "small", "medium", "12v",
         "18v", "230v", "500ml", "1l", "5kg", "10mm", "25mm"]


def descriptions_source() -> list[str]:
    try:
        data = json.loads(TAXONOMY.read_text(encoding="utf-8"))
        out = [c["description"] for c in data["categories"]
               if c.get("level") not in ("segment", "family") and c.get("description")]
        if out:
            return out
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return ["battery cordless drill driver 18v", "office paper a4 80gsm", "nitrile gloves",
            "led bulb e27 9w", "stainless steel bolt m8", "laptop computer 14 inch",
            "printer toner cartridge black", "safety helmet white", "copy paper ream"]


_NONCE = random.SystemRandom()


class Descriptions:
    """A hot set (repeats: cache hits once seen) and unique ones (misses)."""

    def __init__(self, hit_share: float, hot: int = 200, seed: int = 4) -> None:
        self.rnd = random.Random(seed)
        src = descriptions_source()
        self.hot = [self._vary(self.rnd.choice(src)) for _ in range(hot)]
        self.src = src
        self.hit_share = hit_share
        self.n = 0

    def _vary(self, base: str) -> str:
        words = base.split()
        extra = self.rnd.sample(WORDS, 2)
        return " ".join([extra[0], *words, extra[1]])

    def unique(self) -> str:
        self.n += 1
        # the nonce is random across runs: a seeded one would repeat the previous run's
        # "unique" descriptions, cached in Redis for nexus_cache_ttl
        nonce = "".join(_NONCE.choices(string.ascii_lowercase + string.digits, k=10))
        return f"{self._vary(self.rnd.choice(self.src))} ref {nonce}{self.n}"

    def next(self) -> tuple[str, str]:
        if self.rnd.random() < self.hit_share:
            return self.rnd.choice(self.hot), "hot"
        return self.unique(), "unique"


# --------------------------------------------------------------------------- scenarios
@dataclass
class Ctx:
    args: argparse.Namespace
    edge: Target
    direct: list[Target]
    token: str
    api_containers: list[str]
    results: dict = field(default_factory=dict)
    rows: list = field(default_factory=list)
    codes: list = field(default_factory=list)
    classify_miss_rpm: float | None = None


def edge_target(url: str, ca: str) -> Target:
    u = urlsplit(url)
    ctx = ssl.create_default_context(cafile=ca)
    ctx.set_alpn_protocols(["http/1.1"])
    host = u.hostname or "127.0.0.1"
    port = u.port or 443
    return Target(host, port, ctx, host, f"{host}:{port}", "nginx+tls")


def row(ctx: Ctx, scenario: str, metric: str, value: Any, target: str, baseline: Any,
        rat: Any, meter: dict | None, note: str = "") -> None:
    ctx.rows.append({"scenario": scenario, "metric": metric, "value": value,
                     "target": target, "baseline": baseline, "ratio": rat,
                     "loadavg": (meter or {}).get("loadavg_before"), "note": note})


HTTP_PATH = ("nexus-api", "edge", "docker-proxy")
DATA_PATH = ("nexus-api", "edge", "docker-proxy", "chromadb", "chromadb-server", "redis",
             "postgresql")
BATCH_PATH = ("nexus-worker", "chromadb", "chromadb-server", "redis", "postgresql")


def cpu_note(s: dict, unit: str = "req", services: tuple[str, ...] = DATA_PATH) -> str:
    per = s.get("stack_cpu_ms_per_request") or s.get("stack_cpu_ms_per_item") or {}
    per = {k: v for k, v in per.items() if k in services}
    if not per:
        return ""
    total = sum(per.values())
    top = ", ".join(f"{k} {v:g}" for k, v in sorted(per.items(), key=lambda kv: -kv[1])[:4])
    return (f"stack CPU {total:.2f} ms/{unit} ({top}) = ~{1000.0 / total:.0f} {unit}/s per "
            "dedicated core" if total > 0 else "")


def secs(v: float | None) -> str:
    return "never (within the run)" if v is None else f"{v:g}s"


def verdict(value: float | None, target: float, lower_is_better: bool = True) -> str:
    if value is None:
        return "n/a"
    ok = value < target if lower_is_better else value >= target
    return "meets" if ok else "MISSES"


STACK_CPU: StackCpu | None = None


async def stack_cpu() -> dict[str, float]:
    return await asyncio.to_thread(STACK_CPU.sample) if STACK_CPU else {}


async def run_open(targets: list[Target], spec: Spec, rate: float, duration: float,
                   conns: int) -> tuple[dict, dict]:
    c0 = await stack_cpu()
    with HostMeter() as m:
        res = await open_loop(targets, spec, rate, duration, conns)
    cpu = StackCpu.delta(c0, await stack_cpu())
    s = summarise(res["recs"], duration)
    s["stack_cpu_s"] = cpu
    s["stack_cpu_ms_per_request"] = cpu_per_request(cpu, s["requests"])
    s.update({"target_rps": rate, "unsent": res["unsent"], "connections": conns,
              "duration_s": duration, **m.stats})
    if s["errors"]:
        s["error_samples"] = first_error_bodies(res["recs"])
    return s, res


async def run_closed(targets: list[Target], spec: Spec, users: int, duration: float,
                     think: float) -> tuple[dict, dict]:
    c0 = await stack_cpu()
    with HostMeter() as m:
        res = await closed_loop(targets, spec, users, duration, think)
    cpu = StackCpu.delta(c0, await stack_cpu())
    s = summarise(res["recs"], duration, from_sched=False)
    s["stack_cpu_s"] = cpu
    s["stack_cpu_ms_per_request"] = cpu_per_request(cpu, s["requests"])
    s.update({"users": users, "think_s": think, "duration_s": duration, **m.stats})
    if s["errors"]:
        s["error_samples"] = first_error_bodies(res["recs"])
    return s, res


def health_spec(path: str) -> Spec:
    cache: dict[int, bytes] = {}

    def make(i: int, t: Target) -> tuple[bytes, str]:
        raw = cache.get(id(t))
        if raw is None:
            raw = cache[id(t)] = build_request(t, "GET", path, None)
        return raw, ""
    return Spec(make)


async def sc_health(ctx: Ctx) -> None:
    a = ctx.args
    log(f"health: warm-up, then {a.health_rate:g} req/s for {a.duration:g}s direct and via NGINX")
    await open_loop([ctx.edge], health_spec(a.health_path), 200, 2, 16)
    await open_loop(ctx.direct, health_spec(a.health_path), 200, 2, 16)
    base, _ = await run_open(ctx.direct, health_spec(a.health_path), a.health_rate,
                             a.baseline_duration, a.health_conns)
    log(f"  direct: {base}")
    edge, _ = await run_open([ctx.edge], health_spec(a.health_path), a.health_rate,
                             a.duration, a.health_conns)
    log(f"  nginx:  {edge}")
    ctx.results["health"] = {"nginx_tls": edge, "direct_http": base,
                             "direct_targets": [f"{t.host}:{t.port}" for t in ctx.direct]}
    r = ratio(edge["p99_ms"], base["p99_ms"])
    row(ctx, f"1 /health @{a.health_rate:g}/s", "p99 ms", edge["p99_ms"], "< 100 ms",
        base["p99_ms"], r, edge, verdict(edge["p99_ms"], TARGETS["health_p99_ms"]) + "; " +
        cpu_note(edge, services=HTTP_PATH) + f"; direct: {cpu_note(base, services=HTTP_PATH)}")
    for k in ("p50_ms", "p95_ms", "max_ms"):
        row(ctx, "", k.replace("_ms", " ms"), edge[k], "", base[k], ratio(edge[k], base[k]), None)
    row(ctx, "", "achieved req/s", edge["achieved_rps"], f"{a.health_rate:g}",
        base["achieved_rps"], ratio(edge["achieved_rps"], base["achieved_rps"]), None,
        f"unsent {edge['unsent']}/{base['unsent']}")
    row(ctx, "", "errors", edge["errors"], "0", base["errors"], None, None,
        ", ".join(f"{k}: {v}" for k, v in edge["error_kinds"].items()))


def classify_spec(ctx: Ctx, desc: Descriptions) -> Spec:
    def make(i: int, t: Target) -> tuple[bytes, str]:
        text, kind = desc.next()
        return build_request(t, "POST", "/workflows/classify/execute", ctx.token,
                             {"inputs": {"description": text}}), kind
    return Spec(make, keep_body=True)


def split_by_cached(recs: list[Rec], wall: float, from_sched: bool) -> tuple[dict, dict, list]:
    hits, misses, codes = [], [], []
    for r in recs:
        if not 200 <= r.status < 300:
            continue
        try:
            doc = json.loads(r.body)
        except ValueError:
            continue
        d = find_dict_with(doc, "code", "cached")
        if d is None:
            continue
        codes.append(d["code"])
        (hits if d["cached"] else misses).append(r)
    return (summarise(hits, wall, from_sched=from_sched),
            summarise(misses, wall, from_sched=from_sched), codes)


async def sc_classify(ctx: Ctx) -> None:
    a = ctx.args
    log(f"classify: {a.users} users, think {a.think:g}s, {a.duration:g}s via NGINX, "
        f"{a.baseline_duration:g}s direct; hit share {a.hit_share:g}")
    desc = Descriptions(a.hit_share)
    # warm the hot set once (so "hot" requests are cache hits from the start)
    await closed_loop([ctx.edge], Spec(lambda i, t: (build_request(
        t, "POST", "/workflows/classify/execute", ctx.token,
        {"inputs": {"description": desc.hot[i % len(desc.hot)]}}), "hot")),
        20, max(2.0, len(desc.hot) / 100.0))
    out = {}
    for label, targets, dur in (("direct_http", ctx.direct, a.baseline_duration),
                                ("nginx_tls", [ctx.edge], a.duration)):
        s, res = await run_closed(targets, classify_spec(ctx, desc), a.users, dur, a.think)
        hit, miss, codes = split_by_cached(res["recs"], dur, False)
        s["cache_hits"], s["cache_misses"] = hit, miss
        ctx.codes.extend(codes)
        out[label] = s
        log(f"  {label}: {s}")
    if a.think_paced > 0:
        s, res = await run_closed([ctx.edge], classify_spec(ctx, desc), a.users, a.duration,
                                  a.think_paced)
        hit, miss, codes = split_by_cached(res["recs"], a.duration, False)
        s["cache_hits"], s["cache_misses"] = hit, miss
        ctx.codes.extend(codes)
        out["nginx_tls_paced"] = s
        log(f"  paced: {s}")
    ctx.results["classify"] = out
    e, b = out["nginx_tls"], out["direct_http"]
    ctx.classify_miss_rpm = (e["cache_misses"]["requests"] / a.duration * 60.0
                             if e["cache_misses"]["requests"] else None)
    sc = f"2 classify {a.users} users"
    row(ctx, sc + (f" think {a.think:g}s" if a.think else " (no think)"), "p95 ms",
        e["p95_ms"], "< 500 ms", b["p95_ms"], ratio(e["p95_ms"], b["p95_ms"]), e,
        verdict(e["p95_ms"], TARGETS["classify_p95_ms"]) + "; " + cpu_note(e))
    row(ctx, "", "p95 ms, misses only", e["cache_misses"]["p95_ms"], "< 500 ms",
        b["cache_misses"]["p95_ms"], ratio(e["cache_misses"]["p95_ms"],
                                           b["cache_misses"]["p95_ms"]), None,
        f"{e['cache_misses']['requests']} misses, {e['cache_hits']['requests']} hits")
    row(ctx, "", "p95 ms, hits only", e["cache_hits"]["p95_ms"], "", b["cache_hits"]["p95_ms"],
        ratio(e["cache_hits"]["p95_ms"], b["cache_hits"]["p95_ms"]), None)
    row(ctx, "", "p50 / p99 ms", f"{e['p50_ms']} / {e['p99_ms']}", "",
        f"{b['p50_ms']} / {b['p99_ms']}", ratio(e["p99_ms"], b["p99_ms"]), None)
    row(ctx, "", "req/s", e["achieved_rps"], "", b["achieved_rps"],
        ratio(e["achieved_rps"], b["achieved_rps"]), None,
        f"errors {e['errors']}/{b['errors']}")
    if "nginx_tls_paced" in out:
        p = out["nginx_tls_paced"]
        row(ctx, f"2b classify {a.users} users think ~{a.think_paced:g}s", "p95 ms",
            p["p95_ms"], "< 500 ms", e["p95_ms"], ratio(p["p95_ms"], e["p95_ms"]), p,
            verdict(p["p95_ms"], TARGETS["classify_p95_ms"]) +
            f"; {p['achieved_rps']} req/s; baseline = no-think run; miss p95 "
            f"{p['cache_misses']['p95_ms']}; errors {p['errors']}")


async def sc_recommend(ctx: Ctx) -> None:
    a = ctx.args
    codes = sorted(set(ctx.codes))
    if not codes:
        # no classify run (or no answers): ask for a few codes now
        desc = Descriptions(0.0, seed=7)
        res = await closed_loop([ctx.edge], classify_spec(ctx, desc), 10, 3.0)
        _, _, got = split_by_cached(res["recs"], 3.0, False)
        codes = sorted(set(got))
    if not codes:
        log("recommend: no codes from classify answers; skipped")
        ctx.results["recommend"] = {"skipped": "no codes from classify"}
        return
    log(f"recommend: {len(codes)} codes, {a.users} users, {a.duration:g}s via NGINX")
    rnd = random.Random(11)

    def make(i: int, t: Target) -> tuple[bytes, str]:
        return build_request(t, "POST", "/workflows/recommend/execute", ctx.token,
                             {"inputs": {"code": rnd.choice(codes)}}), ""
    out = {}
    for label, targets, dur in (("direct_http", ctx.direct, a.baseline_duration),
                                ("nginx_tls", [ctx.edge], a.duration)):
        s, res = await run_closed(targets, Spec(make, keep_body=True), a.users, dur, a.think)
        found = sum(1 for r in res["recs"] if 200 <= r.status < 300 and b'"found": true' in
                    r.body.replace(b'"found":true', b'"found": true'))
        s["answers_found_true"] = found
        s["sources"] = sorted({str(v) for r in res["recs"][:50] if r.status == 200
                               for v in find_values(json.loads(r.body or b"{}"), "source")})
        out[label] = s
        log(f"  {label}: {s}")
    out["codes"] = len(codes)
    ctx.results["recommend"] = out
    e, b = out["nginx_tls"], out["direct_http"]
    row(ctx, f"3 recommend {a.users} users", "p95 ms", e["p95_ms"], "< 2000 ms", b["p95_ms"],
        ratio(e["p95_ms"], b["p95_ms"]), e,
        verdict(e["p95_ms"], TARGETS["recommend_p95_ms"]) +
        f"; {e['achieved_rps']} req/s; errors {e['errors']}; source {','.join(e['sources'])}; "
        + cpu_note(e))


async def post_json(t: Target, path: str, token: str, body: Any,
                    timeout: float = 120.0) -> tuple[int, Any]:
    c = Conn(t)
    try:
        status, data = await asyncio.wait_for(
            c.request(build_request(t, "POST", path, token, body)), timeout)
    finally:
        c.close()
    try:
        return status, json.loads(data)
    except ValueError:
        return status, data[:300]


async def run_batch(ctx: Ctx, items: list[str], poll: float) -> dict:
    t = ctx.edge
    t_submit = time.monotonic()
    status, doc = await post_json(t, "/workflows/submit_batch/execute", ctx.token,
                                  {"inputs": {"items": items}})
    t_accepted = time.monotonic()
    job_ids = find_values(doc, "job_id")
    if status != 200 or not job_ids:
        return {"error": f"submit_batch: HTTP {status}: {str(doc)[:300]}"}
    job_id = job_ids[0]
    progress = []
    state, done = "?", 0
    t_first = None
    deadline = t_submit + ctx.args.batch_timeout
    conn = Conn(t)
    raw = build_request(t, "POST", "/workflows/job_status/execute", ctx.token,
                        {"inputs": {"job_id": job_id}})
    while time.monotonic() < deadline:
        st, body, err = await one(conn, raw, 60.0)
        now = time.monotonic()
        if st == 200:
            try:
                snap = find_dict_with(json.loads(body), "state", "done") or {}
            except ValueError:
                snap = {}
            state, done = snap.get("state", "?"), int(snap.get("done") or 0)
            progress.append((round(now - t_submit, 2), done))
            if done and t_first is None:
                t_first = now
            if state in ("completed", "failed"):
                break
        await asyncio.sleep(poll)
    conn.close()
    t_end = time.monotonic()
    wall = t_end - t_submit
    out = {"job_id": job_id, "items": len(items), "state": state, "done": done,
           "submit_s": round(t_accepted - t_submit, 3), "wall_s": round(wall, 2),
           "items_per_min": round(done / wall * 60.0, 1) if wall > 0 else None,
           "first_progress_s": round(t_first - t_submit, 2) if t_first else None,
           "progress": progress[:: max(1, len(progress) // 20)]}
    if t_first and t_end > t_first and len(progress) > 2:
        # steady rate: from the first finished chunk to completion
        d0 = next(d for _, d in progress if d)
        out["steady_items_per_min"] = round((done - d0) / (t_end - t_first) * 60.0, 1)
    return out


async def sc_batch(ctx: Ctx) -> None:
    a = ctx.args
    workers = containers(a.project, "nexus-worker")
    log(f"batch: {a.batch_items} unique items, {len(workers)} worker replicas")
    desc = Descriptions(0.0, seed=int(time.time()))
    # warm-up: the first tasks of fresh worker processes pay their start-up (imports,
    # connections); a small batch first, reported separately
    warm = await run_batch(ctx, [desc.unique() for _ in range(4 * 50)], a.batch_poll)
    log(f"  warm-up batch (200 items): {warm.get('state')} in {warm.get('wall_s')}s, "
        f"first progress {warm.get('first_progress_s')}s")
    c0 = await stack_cpu()
    with HostMeter() as m:
        res = await run_batch(ctx, [desc.unique() for _ in range(a.batch_items)],
                              a.batch_poll)
    res.update(m.stats)
    res["stack_cpu_s"] = StackCpu.delta(c0, await stack_cpu())
    res["stack_cpu_ms_per_item"] = cpu_per_request(res["stack_cpu_s"], res.get("done") or 0)
    res["worker_replicas"] = len(workers)
    log(f"  {res}")
    # baseline: a batch of hot (cached) items, i.e. the same path without the classify work
    with HostMeter() as m:
        hot_desc = Descriptions(1.0, hot=200)
        cached = await run_batch(ctx, [hot_desc.next()[0] for _ in range(a.batch_items)],
                                 a.batch_poll)
    cached.update(m.stats)
    log(f"  cached items: {cached}")
    ctx.results["batch"] = {"warm_up_200_items": warm, "unique_items": res,
                            "cached_items": cached,
                            "api_classify_miss_items_per_min": ctx.classify_miss_rpm}
    v = res.get("items_per_min")
    row(ctx, f"4 batch {a.batch_items} items ({len(workers)} workers)", "items/min", v,
        f">= {TARGETS['batch_items_per_min']:g}/min", ctx.classify_miss_rpm,
        ratio(v, ctx.classify_miss_rpm), res,
        verdict(v, TARGETS["batch_items_per_min"], lower_is_better=False) +
        f"; {res.get('state')} {res.get('done')}/{a.batch_items} in {res.get('wall_s')}s;"
        " baseline = API classify misses/min (scenario 2); " + cpu_note(res, "item", BATCH_PATH) + (
            f"; {res['error']}" if "error" in res else ""))
    row(ctx, "", "items/min, cached items", cached.get("items_per_min"), "", v,
        ratio(cached.get("items_per_min"), v), None, "ratio vs unique items")


async def sc_failover(ctx: Ctx) -> None:
    a = ctx.args
    victim = f"{a.project}-nexus-api-1"
    if victim not in ctx.api_containers:
        victim = ctx.api_containers[0]
    info = inspect(victim)
    old_ip, port = container_ip(info), api_port(info)
    edges = containers(a.project, "edge")
    how = "SIGKILL of the main process of" if a.failover_method == "crash" else "docker kill"
    log(f"failover: {a.failover_health_rate:g}/s /health + {a.failover_classify_rate:g}/s "
        f"classify via NGINX; {how} {victim} ({old_ip}) at t={a.failover_kill_at:g}s")
    desc = Descriptions(0.5, seed=99)
    total = a.failover_max
    t0 = time.monotonic() + 1.0
    events: dict[str, float | None] = {"kill": None, "running": None, "direct_ok": None,
                                       "healthy": None}
    new_ip: list[str | None] = [None]
    health_seen: list[str] = []

    async def killer_and_watch() -> None:
        await asyncio.sleep(max(0.0, t0 + a.failover_kill_at - time.monotonic()))
        kill_wall = time.time()
        events["kill"] = time.monotonic()
        events["kill_wall"] = kill_wall
        if a.failover_method == "crash":
            # SIGKILL the container's main process from the host, as an OOM kill or a
            # crash would: the restart policy applies (`docker kill` counts as a manual
            # stop, after which Docker does not restart an unless-stopped container)
            pid = (await asyncio.to_thread(inspect, victim))["State"]["Pid"]
            os.kill(int(pid), 9)
        else:
            await asyncio.to_thread(sh, "docker", "kill", victim)
        probe_conn: Conn | None = None
        while time.monotonic() - events["kill"] < total - a.failover_kill_at:
            try:
                st = (await asyncio.to_thread(inspect, victim))["State"]
            except (RuntimeError, ValueError, IndexError):
                await asyncio.sleep(0.25)
                continue
            h = (st.get("Health") or {}).get("Status", "")
            if not health_seen or health_seen[-1] != f"{st['Status']}/{h}":
                health_seen.append(f"{st['Status']}/{h}")
            if st.get("Running") and events["running"] is None and \
                    st.get("StartedAt", "") > info["State"].get("StartedAt", ""):
                events["running"] = time.monotonic()
            if events["running"] and new_ip[0] is None:
                new_ip[0] = container_ip(await asyncio.to_thread(inspect, victim))
            if new_ip[0] and events["direct_ok"] is None:
                t = Target(new_ip[0], port, None, None, f"{new_ip[0]}:{port}", "probe")
                probe_conn = probe_conn or Conn(t)
                s, _, _ = await one(probe_conn, build_request(t, "GET", a.health_path, None), 1.0)
                if s == 200:
                    events["direct_ok"] = time.monotonic()
                probe_conn.close()
                probe_conn = None
            if events["running"] is None and not st.get("Running") and \
                    time.monotonic() - events["kill"] > a.failover_start_after and \
                    "docker_start" not in events:
                # the restart policy did not bring it back: start it, and say so
                events["docker_start"] = time.monotonic()
                await asyncio.to_thread(sh, "docker", "start", victim, check=False)
            if h == "healthy" and events["running"]:
                events["healthy"] = time.monotonic()
                return
            await asyncio.sleep(0.25)

    stop = asyncio.Event()
    watch = asyncio.create_task(killer_and_watch())
    hl = asyncio.create_task(open_loop([ctx.edge], health_spec(a.health_path),
                                       a.failover_health_rate, total, a.health_conns,
                                       timeout=15.0, drain=15.0, t0=t0, stop=stop))
    cl = asyncio.create_task(open_loop([ctx.edge], classify_spec(ctx, desc),
                                       a.failover_classify_rate, total, 32, timeout=15.0,
                                       drain=15.0, t0=t0, stop=stop))
    with HostMeter() as m:
        await watch
        # keep the load on while NGINX starts to use the replica again, then stop it
        await asyncio.sleep(a.failover_settle)
        stop.set()
        stop_at = time.monotonic()
        hres, cres = await asyncio.gather(hl, cl)
    res: dict[str, Any] = {"victim": victim, "method": a.failover_method,
                           "old_ip": old_ip, "new_ip": new_ip[0],
                           "states_seen": health_seen, **m.stats}
    kill = events["kill"]
    rel = {k: (round(v - kill, 2) if v else None)
           for k, v in events.items() if k not in ("kill", "kill_wall")}
    res["since_kill_s"] = rel
    ctx.results["failover"] = res
    await _failover_finish(ctx, res, hres, cres, kill, events, edges, new_ip[0] or old_ip,
                           port, stop_at)


async def _failover_finish(ctx: Ctx, res: dict, hres: dict | None, cres: dict | None,
                           kill: float, events: dict, edges: list[str], ip: str | None,
                           port: int, stop_at: float) -> None:
    all_recs: list[Rec] = []
    for name, r in (("health", hres), ("classify", cres)):
        if r is None:
            continue
        recs = [x for x in r["recs"] if x.sched <= stop_at]
        all_recs += recs
        wall = stop_at - r["t0"]
        s = summarise(recs, wall)
        after = [x for x in recs if x.sched >= kill]
        s["after_kill"] = summarise(after, max(0.001, stop_at - kill))
        if s["errors"]:
            s["error_samples"] = first_error_bodies(recs)
        res[name] = s
    errs = sorted(x.sched - kill for x in all_recs if not 200 <= x.status < 300)
    res["failed_requests"] = len(errs)
    res["first_error_s"] = round(errs[0], 2) if errs else None
    res["error_rate_zero_after_s"] = round(max(0.0, errs[-1]), 2) if errs else 0.0
    # when did NGINX route to the restarted replica again? the access log names it
    served_at = None
    if edges and ip and events.get("kill_wall"):
        await asyncio.sleep(6.0)  # access_log buffer flush=5s
        since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(events["kill_wall"] - 1))
        logs = ""
        for e in edges:
            logs += sh("docker", "logs", "--since", since, e, check=False, timeout=60)
        # ... [2026-11-26T14:01:11+00:00] "GET /health" 200 15 0.003 10.x.x.x:8000 200
        pat = re.compile(r"\[([^\]]+)\] \"[A-Z]+ [^\"]*\" (\d{3}) \S+ \S+ (.+?) ([\d, :-]+)$")
        killed_ts = events["kill_wall"]
        seen_after = []
        for line in logs.splitlines():
            mm = pat.search(line.strip())
            if not mm:
                continue
            addrs = [x.strip() for x in mm.group(3).split(",")]
            stats = [x.strip() for x in mm.group(4).split(",")]
            if addrs and addrs[-1] == f"{ip}:{port}" and stats and stats[-1] == "200":
                try:
                    ts = datetime.datetime.fromisoformat(mm.group(1)).timestamp()
                except ValueError:
                    continue
                if events.get("running") and ts >= killed_ts + (events["running"] - kill) - 1:
                    seen_after.append(ts)
        if seen_after:
            served_at = min(seen_after) - killed_ts
        res["nginx_served_by_replica_again_s"] = (round(served_at, 1) if served_at is not None
                                                   else None)
        res["nginx_served_note"] = ("access-log time, 1 s resolution" if served_at is not None
                                    else f"no 200 from {ip}:{port} in the edge access log after "
                                         "the restart (edge_access_log off, or NGINX kept the "
                                         "old address: it resolves nexus-api only at start)")
    rel = res["since_kill_s"]
    full = None
    if rel.get("healthy") is not None and served_at is not None:
        full = round(max(rel["healthy"], served_at), 1)
    res["time_to_full_service_s"] = full
    h = res.get("health", {})
    c = res.get("classify", {})
    row(ctx, f"5 failover ({res['method']} {res['victim']})", "time to full service s", full,
        "< 30 s", None, None, res,
        verdict(full, TARGETS["failover_s"]) +
        f"; running again {secs(rel.get('running'))}, answers directly "
        f"{secs(rel.get('direct_ok'))}, healthy {secs(rel.get('healthy'))}, NGINX serves "
        f"from it {secs(res.get('nginx_served_by_replica_again_s'))}" + (
            f"; NOT restarted by Docker: docker start at {rel['docker_start']}s"
            if rel.get("docker_start") else ""))
    row(ctx, "", "failed requests", res["failed_requests"], "0 (aim)", None, None, None,
        f"health {h.get('errors')}/{h.get('requests')}, classify {c.get('errors')}/"
        f"{c.get('requests')}; error rate 0 again after {res['error_rate_zero_after_s']}s")
    ha, ca_ = h.get("after_kill", {}), c.get("after_kill", {})
    row(ctx, "", "p99 / max ms after kill", f"{ha.get('p99_ms')} / {ha.get('max_ms')}",
        "", None, None, None,
        f"/health; classify p99 {ca_.get('p99_ms')} max {ca_.get('max_ms')}")
    brief = {k: v for k, v in res.items() if k not in ("health", "classify")}
    log(f"  failover: {json.dumps(brief)}")


# --------------------------------------------------------------------------- wrk (optional)
def ensure_wrk() -> str | None:
    path = shutil.which("wrk")
    if path:
        return path
    log("wrk missing: apt-get install -y wrk")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "install", "-y", "--no-install-recommends", "wrk"],
                ["sh", "-c", "apt-get update -qq && "
                 "apt-get install -y --no-install-recommends wrk"]):
        if subprocess.run(cmd, env=env, capture_output=True).returncode == 0:
            break
    return shutil.which("wrk")


def sc_wrk(ctx: Ctx) -> None:
    a = ctx.args
    wrk = ensure_wrk()
    if not wrk:
        ctx.results["wrk"] = {"skipped": "wrk could not be installed"}
        return
    out = {}
    lua = str(ROOT / "bench" / "app_wrk.lua")
    direct = ctx.direct[0]
    for label, url in (("direct_http", f"http://{direct.host}:{direct.port}{a.health_path}"),
                       ("nginx_tls", a.url.rstrip("/") + a.health_path)):
        with HostMeter() as m:
            res = subprocess.run([wrk, "-t1", f"-c{a.wrk_conns}", f"-d{int(a.baseline_duration)}s",
                                  "--timeout", "5s", "-s", lua, url],
                                 capture_output=True, text=True, timeout=a.baseline_duration + 60)
        doc = {}
        for line in res.stdout.splitlines():
            if line.startswith("JSON "):
                doc = json.loads(line[5:])
        doc.update(m.stats)
        out[label] = doc
        log(f"  wrk {label}: {doc}")
    ctx.results["wrk_health_closed_loop"] = out
    e, b = out.get("nginx_tls", {}), out.get("direct_http", {})
    row(ctx, f"1b /health max rate (wrk, {a.wrk_conns} conns, closed loop)", "req/s",
        e.get("rps"), "(capacity)", b.get("rps"), ratio(e.get("rps"), b.get("rps")), e,
        f"p99 {e.get('p99_ms')} ms vs {b.get('p99_ms')} ms direct; errors {e.get('errors')}")


# --------------------------------------------------------------------------- main
def print_table(rows: list[dict]) -> None:
    cols = ["scenario", "metric", "value", "target", "baseline", "ratio", "loadavg", "note"]
    head = {"value": "measured", "baseline": "baseline", "ratio": "ratio", "loadavg": "load 1m"}

    def fmt(c: str, v: Any) -> str:
        if v is None:
            return "-" if c != "note" else ""
        if c == "loadavg" and isinstance(v, list):
            return f"{v[0]:.2f}"
        if isinstance(v, float):
            return f"{v:g}"
        return str(v)
    table = [[head.get(c, c) for c in cols]] + [[fmt(c, r.get(c)) for c in cols] for r in rows]
    widths = [min(60, max(len(t[i]) for t in table)) for i in range(len(cols) - 1)]
    for t in table:
        print("  ".join(t[i].ljust(widths[i]) for i in range(len(cols) - 1)) + "  " + t[-1])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--project", default="kailash")
    p.add_argument("--url", default="https://127.0.0.1:8443")
    p.add_argument("--ca", default=str(ROOT / ".secrets" / "local" / "edge" / "ca.crt"))
    p.add_argument("--only", default="health,classify,recommend,batch,failover",
                   help="comma-separated scenarios (health, classify, recommend, batch, "
                        "failover, wrk)")
    p.add_argument("--wrk", action="store_true", help="also the wrk closed-loop /health run")
    p.add_argument("--duration", type=float, default=20.0, help="seconds per run via NGINX")
    p.add_argument("--baseline-duration", type=float, default=10.0,
                   help="seconds per baseline run (direct)")
    p.add_argument("--health-path", default="/health")
    p.add_argument("--health-rate", type=float, default=1000.0)
    p.add_argument("--health-conns", type=int, default=64)
    p.add_argument("--users", type=int, default=100)
    p.add_argument("--think", type=float, default=0.0,
                   help="seconds between a user's requests in the main runs (0 = saturate)")
    p.add_argument("--think-paced", type=float, default=1.0,
                   help="think time of the extra paced classify run (0 = skip it)")
    p.add_argument("--hit-share", type=float, default=0.5,
                   help="share of classify requests drawn from a repeated (cached) set")
    p.add_argument("--batch-items", type=int, default=3000)
    p.add_argument("--batch-poll", type=float, default=0.5)
    p.add_argument("--batch-timeout", type=float, default=600.0)
    p.add_argument("--failover-method", choices=["crash", "docker-kill"], default="crash",
                   help="crash: SIGKILL the replica's main process from the host (the "
                        "restart policy restarts it); docker-kill: `docker kill` (Docker "
                        "treats it as a manual stop: no restart, the script starts it "
                        "after --failover-start-after s)")
    p.add_argument("--failover-health-rate", type=float, default=50.0,
                   help="keep the failover loads under what one replica serves, so that "
                        "failed requests are the failover's, not overload's")
    p.add_argument("--failover-classify-rate", type=float, default=5.0)
    p.add_argument("--failover-kill-at", type=float, default=5.0)
    p.add_argument("--failover-settle", type=float, default=10.0,
                   help="seconds of load after the replica is healthy again")
    p.add_argument("--failover-max", type=float, default=240.0,
                   help="longest the failover load runs (the replica's restart included)")
    p.add_argument("--failover-start-after", type=float, default=45.0,
                   help="docker start the victim if the restart policy has not restarted "
                        "it after this many seconds (reported)")
    p.add_argument("--wrk-conns", type=int, default=50)
    p.add_argument("--json", default=str(ROOT / "reports" / "bench-app.json"))
    return p.parse_args(argv)


async def amain(args: argparse.Namespace) -> int:
    if not Path(args.ca).is_file():
        print(f"CA certificate {args.ca} not found (--ca)", file=sys.stderr)
        return 2
    apis = [n for n in containers(args.project, "nexus-api")]
    if not apis:
        print(f"no nexus-api containers in project {args.project} (--project)", file=sys.stderr)
        return 2
    direct = []
    for n in apis:
        info = inspect(n)
        ip = container_ip(info)
        if ip and info["State"].get("Running"):
            direct.append(Target(ip, api_port(info), None, None, f"{ip}:{api_port(info)}", n))
    ctx = Ctx(args, edge_target(args.url, args.ca), direct, get_token(apis[0]), apis)
    global STACK_CPU
    STACK_CPU = StackCpu(args.project, urlsplit(args.url).port or 443)
    # sanity: one request each way
    st, body = await post_json(ctx.edge, "/workflows/classify/execute", ctx.token,
                               {"inputs": {"description": "cordless drill 18v"}})
    log(f"stack {args.project}: {len(apis)} API replicas {[t.host for t in direct]}, "
        f"classify via NGINX -> HTTP {st} {str(body)[:200]}")
    if st != 200:
        print(f"classify through {args.url} answered HTTP {st}: {str(body)[:300]}",
              file=sys.stderr)
        return 1
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    if args.wrk and "wrk" not in only:
        only.insert(1 if "health" in only else 0, "wrk")
    for name in only:
        try:
            if name == "wrk":
                await asyncio.to_thread(sc_wrk, ctx)
            else:
                await {"health": sc_health, "classify": sc_classify, "recommend": sc_recommend,
                       "batch": sc_batch, "failover": sc_failover}[name](ctx)
        except Exception as exc:  # noqa: BLE001 - report and go on with the next scenario
            log(f"{name}: failed: {type(exc).__name__}: {exc}")
            ctx.results[name] = {"failed": f"{type(exc).__name__}: {exc}"}
    report = {
        "started": started, "project": args.project, "url": args.url,
        "api_replicas": apis, "worker_replicas": containers(args.project, "nexus-worker"),
        "cores": os.cpu_count(), "loadavg_end": loadavg(),
        "generator": "bench/app_load.py (asyncio, same host, loopback; competes for CPU)",
        "settings": {k: v for k, v in vars(args).items() if k not in ("json",)},
        "targets": TARGETS, "rows": ctx.rows, "results": ctx.results,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=1, default=str) + "\n", encoding="utf-8")
    print()
    print(f"Kailash app through NGINX+TLS ({args.url}, project {args.project}); "
          f"load generator on the same {os.cpu_count()}-core host (it competes with the "
          f"stack for CPU); baseline = plain HTTP straight to the API replicas unless noted; "
          f"ratio = measured / baseline")
    print_table(ctx.rows)
    print(f"\nload average at the end: {loadavg()}; JSON: {args.json}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not os.path.isabs(args.ca):
        args.ca = str((Path.cwd() / args.ca).resolve())
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
