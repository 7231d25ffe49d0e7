"""``kailash-app`` entry point.  Heavy imports happen inside the subcommands only, so
``kailash-app healthcheck`` starts fast (stdlib only).

    kailash-app api | websocket | worker
    kailash-app healthcheck api|websocket|worker|URL [--timeout S]
    kailash-app token [--sub NAME] [--ttl SECONDS]
    kailash-app seed
    kailash-app cli [nexus.cli arguments]   # nexus.cli with Bearer $NEXUS_TOKEN
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def healthcheck(target: str, timeout: float) -> int:
    if target == "worker":
        path = os.environ.get("KAILASH_WORKER_HEARTBEAT", "/tmp/kailash-worker.heartbeat")
        max_age = float(os.environ.get("KAILASH_WORKER_HEARTBEAT_MAX_AGE", "30"))
        try:
            age = time.time() - os.stat(path).st_mtime
        except OSError:
            print(f"unhealthy: no heartbeat file {path}")
            return 1
        print(f"{'healthy' if age <= max_age else 'unhealthy'}: heartbeat {age:.0f}s old")
        return 0 if age <= max_age else 1
    if target in ("api", "websocket"):
        var, default = {"api": ("NEXUS_API_PORT", "8000"),
                        "websocket": ("NEXUS_WEBSOCKET_PORT", "8001")}[target]
        target = f"http://127.0.0.1:{os.environ.get(var) or default}/health"
    import urllib.request

    try:
        with urllib.request.urlopen(target, timeout=timeout) as resp:  # noqa: S310
            ok = resp.status == 200
    except Exception as exc:  # noqa: BLE001
        print(f"unhealthy: {target}: {exc}")
        return 1
    print(f"{'healthy' if ok else 'unhealthy'}: {target}")
    return 0 if ok else 1


def nexus_cli(argv: list[str]) -> None:
    """Run ``nexus.cli`` with ``Authorization: Bearer $NEXUS_TOKEN`` on every request."""
    import requests

    token = os.environ.get("NEXUS_TOKEN", "")
    if token:
        send = requests.api.request

        def request(method, url, **kwargs):
            headers = dict(kwargs.pop("headers", None) or {})
            headers.setdefault("Authorization", f"Bearer {token}")
            return send(method, url, headers=headers, **kwargs)

        requests.get = lambda url, params=None, **kw: request("get", url, params=params, **kw)
        requests.post = lambda url, data=None, json=None, **kw: request(
            "post", url, data=data, json=json, **kw)
    from nexus.cli.main import main as nexus_main

    sys.argv = ["nexus.cli", *argv]
    nexus_main()


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="kailash-app", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("api", help="Nexus HTTP API + MCP server")
    sub.add_parser("websocket", help="job progress WebSocket service")
    sub.add_parser("worker", help="Celery batch worker")
    sub.add_parser("seed", help="load the taxonomy into the datastores and exit")
    hc = sub.add_parser("healthcheck", help="exit 0 when healthy (Docker healthcheck)")
    hc.add_argument("target", help="api | websocket | worker | URL")
    hc.add_argument("--timeout", type=float, default=3.0)
    tk = sub.add_parser("token", help="print a JWT for the API, CLI and websocket service")
    tk.add_argument("--sub", default="kailash-user")
    tk.add_argument("--ttl", type=int, default=3600)
    sub.add_parser("cli", help="python -m nexus.cli with Bearer $NEXUS_TOKEN",
                   add_help=False)

    if argv[:1] == ["cli"]:
        return _run("cli", argv[1:])
    args = parser.parse_args(argv)
    if args.command == "healthcheck":
        sys.exit(healthcheck(args.target, args.timeout))
    return _run(args.command, args)


def _run(command: str, args) -> None:
    from kailash_app import config

    config.configure_logging()
    try:
        if command == "token":
            from kailash_app import tokens

            print(tokens.issue(sub=args.sub, ttl=args.ttl))
        elif command == "cli":
            nexus_cli(args)
        elif command == "api":
            from kailash_app import api

            api.run()
        elif command == "websocket":
            from kailash_app import wsserver

            wsserver.run()
        elif command == "worker":
            config.chdir_workdir()
            from kailash_app import worker

            worker.run()
        elif command == "seed":
            config.chdir_workdir()
            from kailash_app import stores

            print(stores.seed())
    except config.ConfigError as exc:
        print(f"kailash-app: configuration error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
