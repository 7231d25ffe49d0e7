#!/usr/bin/env python3
"""The ADR's latency targets measured with external load generators (issue #14).

The same commands as the issue's table, through the NGINX TLS edge of a deployed stack,
with the generator on the same machine, plus the stack's CPU per request per Compose
service (the load-independent figure that shows the next lever):

1. ``/health``: ``hey -z 20s -c 50 -q 20`` (50 workers paced at 20 req/s each: 1000
   req/s open-ish loop); target p99 < 100 ms.
2. classify: ``wrk -t2 -c100 -d20s`` closed loop, no think time, every description
   unique (cache misses; bench/app_wrk_classify.lua); target p95 < 500 ms.
3. classify, repeated descriptions (cache hits): the same with a hot set of 200.
4. recommend: ``wrk -t2 -c100`` with codes from the taxonomy; target p95 < 2 s.
5. ``/health`` capacity: ``wrk -t2 -c50`` closed loop. The edge's per-client rate
   limit (``edge_rate_limit``, 2000 r/s per client address by design) answers the
   excess with 429: that is the edge doing its job, reported as such.

Baseline in the same run: the same hey/wrk command straight at one API replica (plain
HTTP on its bridge address), so ``ratio`` = via edge / direct.

Batch throughput and failover stay in bench/app_load.py (``--only batch,failover``):
they need a client that polls jobs and kills a replica mid-run.

    python3 bench/app_external.py [--project kailash] [--url https://127.0.0.1:8443]
        [--only health,classify,hits,recommend,capacity] [--duration 20]

Writes reports/bench-app-external.json. Figures only: nothing is asserted.
hey skips TLS verification (it has no CA option); wrk does not verify either.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import app_load  # noqa: E402  (the stack helpers: CPU sampling, token, containers)

ROOT = Path(__file__).resolve().parents[1]
LUA = ROOT / "bench" / "app_wrk_classify.lua"
HEALTH_LUA = ROOT / "bench" / "app_wrk.lua"
HTTP_PATH = ("edge", "docker-proxy", "nexus-api")
DATA_PATH = (*HTTP_PATH, "chromadb", "chromadb-server", "redis", "postgresql", "pgbouncer")


def need(tool: str) -> str:
    path = shutil.which(tool)
    if not path:
        sys.exit(f"bench/app_external.py: `{tool}` is not installed (apt-get install {tool})")
    return path


def parse_hey(out: str) -> dict:
    res: dict = {"tool": "hey"}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else None
    for pct, val in re.findall(r"(\d+)%+ in ([\d.]+) secs", out):
        res[f"p{pct}_ms"] = round(float(val) * 1000.0, 2)
    m = re.search(r"Slowest:\s+([\d.]+) secs", out)
    res["max_ms"] = round(float(m.group(1)) * 1000.0, 2) if m else None
    statuses = {k: int(v) for k, v in re.findall(r"\[(\d{3})\]\s+(\d+) responses", out)}
    res["statuses"] = statuses
    res["requests"] = sum(statuses.values())
    errs = re.search(r"Error distribution:(.*)", out, re.S)
    res["errors"] = (sum(int(n) for n in re.findall(r"\[(\d+)\]", errs.group(1)))
                     if errs else 0)
    return res


def parse_wrk(out: str) -> dict:
    line = next((ln for ln in out.splitlines() if ln.startswith("JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no JSON line:\n{out[-2000:]}")
    res = json.loads(line[5:])
    res["errors"] = (res.get("connect_errors", 0) + res.get("read_errors", 0)
                     + res.get("write_errors", 0) + res.get("timeouts", 0)
                     + res.get("non_2xx_3xx", 0))
    return res


def measured(cmd: list[str], env: dict, cpu: app_load.StackCpu, parse) -> dict:
    c0 = cpu.sample()
    with app_load.HostMeter() as meter:
        t0 = time.monotonic()
        out = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True,
                             text=True, timeout=600, check=False)
        wall = time.monotonic() - t0
    used = app_load.StackCpu.delta(c0, cpu.sample())
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {out.returncode}: {out.stderr[-2000:]}")
    res = parse(out.stdout)
    res.update({"command": " ".join(c for c in cmd), "wall_s": round(wall, 1),
                "stack_cpu_s": used,
                "stack_cpu_ms_per_request": app_load.cpu_per_request(used, res["requests"]),
                **meter.stats})
    return res


def cpu_line(res: dict, services: tuple[str, ...]) -> str:
    per = {k: v for k, v in res["stack_cpu_ms_per_request"].items() if k in services}
    total = sum(per.values())
    parts = ", ".join(f"{k} {v:g}" for k, v in sorted(per.items(), key=lambda kv: -kv[1]))
    return f"{total:.2f} ms CPU/req ({parts})" if per else "n/a"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--project", default="kailash")
    p.add_argument("--url", default="https://127.0.0.1:8443")
    p.add_argument("--only", default="health,classify,hits,recommend,capacity")
    p.add_argument("--duration", type=int, default=20)
    p.add_argument("--baseline-duration", type=int, default=10)
    p.add_argument("--no-baseline", action="store_true",
                   help="skip the direct-to-replica runs")
    p.add_argument("--json", default=str(ROOT / "reports" / "bench-app-external.json"))
    a = p.parse_args(argv)
    only = set(a.only.split(","))
    hey, wrk = need("hey"), need("wrk")

    api = app_load.containers(a.project, "nexus-api")
    if not api:
        sys.exit(f"no running nexus-api containers in project {a.project!r}: deploy it first")
    info = app_load.inspect(api[0])
    direct = f"http://{app_load.container_ip(info)}:{app_load.api_port(info)}"
    token = app_load.get_token(api[0])
    edge_port = int(a.url.rsplit(":", 1)[1].split("/")[0]) if a.url.count(":") > 1 else 443
    cpu = app_load.StackCpu(a.project, edge_port)
    words = ":".join(d.replace(":", " ").replace('"', " ")
                     for d in app_load.descriptions_source()[:400])
    tax = json.loads(app_load.TAXONOMY.read_text(encoding="utf-8"))
    codes = ":".join(c["code"] for c in tax["categories"]
                     if c.get("level") not in ("segment", "family"))[:60000].rsplit(":", 1)[0]
    results: dict = {"project": a.project, "url": a.url, "direct": direct,
                     "replicas": len(api), "cores": os.cpu_count(), "runs": {}}
    rows: list[tuple] = []

    def run(name: str, target: str, cmd: list[str], env: dict, parse, path, services):
        app_load.log(f"{name}: {' '.join(cmd)}")
        res = measured(cmd, env, cpu, parse)
        results["runs"][name] = res
        keys = ("rps", "p50_ms", "p95_ms", "p99_ms", "max_ms", "errors", "statuses")
        app_load.log(f"  -> {json.dumps({k: res.get(k) for k in keys})}")
        return res

    def both(name, url_path, make_cmd, env, parse, services, metric, target, limit):
        via = run(name, "edge", make_cmd(a.url + url_path, a.duration), env, parse, url_path,
                  services)
        base = None
        if not a.no_baseline:
            base = run(name + "_direct", "direct",
                       make_cmd(direct + url_path, a.baseline_duration), env, parse,
                       url_path, services)
        value = via.get(metric)
        verdict = ("n/a" if value is None or limit is None else
                   "meets" if value < limit else "MISSES")
        ratio = (round(value / base[metric], 2) if base and base.get(metric) and value
                 else None)
        rows.append((name, f"{metric.replace('_ms', '')} {value} ms", target,
                     base.get(metric) if base else "-", ratio, via.get("rps"),
                     via.get("errors"), verdict, cpu_line(via, services),
                     via.get("loadavg_before")))

    wrk_env = {"WRK_TOKEN": token, "WRK_WORDS": words, "WRK_CODES": codes}
    if "health" in only:
        # warm-up: TLS sessions and keep-alive pools
        subprocess.run([hey, "-z", "3s", "-c", "20", "-q", "10", a.url + "/health"],
                       capture_output=True, check=False)
        both("health", "/health",
             lambda url, d: [hey, "-z", f"{d}s", "-c", "50", "-q", "20", url],
             {}, parse_hey, HTTP_PATH, "p99_ms", "p99 < 100 ms @1000/s", 100.0)
    if "classify" in only:
        env = {**wrk_env, "WRK_WORKFLOW": "classify", "WRK_NONCE": secrets.token_hex(4)}
        both("classify_unique", "",
             lambda url, d: [wrk, "-t2", "-c100", f"-d{d}s", "--timeout", "10s", "-s",
                             str(LUA), url],
             env, parse_wrk, DATA_PATH, "p95_ms", "p95 < 500 ms, 100 users", 500.0)
    if "hits" in only:
        hot = ":".join(f"{w} hot" for w in words.split(":")[:200])
        # the hot set is sent as it is (WRK_FIXED): a 3 s warm-up caches it
        env = {**wrk_env, "WRK_WORKFLOW": "classify", "WRK_WORDS": hot, "WRK_FIXED": "1"}
        cmd = [wrk, "-t2", "-c100", "-d3s", "-s", str(LUA), a.url]
        subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, check=False)
        both("classify_cached", "",
             lambda url, d: [wrk, "-t2", "-c100", f"-d{d}s", "--timeout", "10s", "-s",
                             str(LUA), url],
             env, parse_wrk, DATA_PATH, "p95_ms", "p95 < 500 ms (cache hits)", 500.0)
    if "recommend" in only:
        env = {**wrk_env, "WRK_WORKFLOW": "recommend"}
        both("recommend", "",
             lambda url, d: [wrk, "-t2", "-c100", f"-d{d}s", "--timeout", "10s", "-s",
                             str(LUA), url],
             env, parse_wrk, DATA_PATH, "p95_ms", "p95 < 2 s, 100 users", 2000.0)
    if "capacity" in only:
        both("health_capacity", "/health",
             lambda url, d: [wrk, "-t2", "-c50", f"-d{d}s", "-s", str(HEALTH_LUA), url],
             {}, parse_wrk, HTTP_PATH, "p99_ms", "capacity (closed loop)", None)
        st = results["runs"]["health_capacity"].get("non_2xx_3xx", 0)
        if st:
            rows[-1] = (*rows[-1][:7], f"{st} non-2xx: the edge's per-client rate limit "
                        "(edge_rate_limit) answering 429 by design", *rows[-1][8:])

    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    head = ("scenario", "measured", "target", "direct", "ratio", "req/s", "errors",
            "verdict", "stack CPU per request (via edge)", "load before")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join("" if v is None else str(v) for v in r) + " |")
    print(f"\nfull figures: {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
