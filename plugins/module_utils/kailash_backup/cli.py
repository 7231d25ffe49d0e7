"""The command line: ``python3 -m kailash_backup {backup|restore|verify|drill|extract}
--config settings.json`` (the ops image's CronJobs), its JSON config validated."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from .common import BackupError
from .datastores import REGISTRY, SERVICES
from .drills import drill
from .runs import Settings, backup, extract, restore

CONFIG_TOP = {
    "backup_root": "absolute path of the sets (in the pod: /backups/sets)",
    "project": "name in the manifest and the drill records",
    "backend": "docker | local",
    "services": "datastores to act on",
    "datastores": "per service: host, port, user, password_file, ...",
    "compress": "gzip the artefacts",
    "encryption_key_file": "file holding the encryption key (a mounted Secret key)",
    "encryption_key": "the key itself (prefer encryption_key_file)",
    "label": "free text in the manifest",
    "keep_last": "retention",
    "keep_daily": "retention",
    "keep_weekly": "retention",
    "report_dir": "drill: directory of restore-drill-<project>.json",
    "textfile_dir": "drill: directory of the Prometheus textfile",
    "work_dir": "local drill: scratch space",
    "skip_missing": "skip services that are not deployed",
    "docker": "docker client (backend docker)",
}
CONFIG_DATASTORE = {
    "host", "port", "user", "password", "password_file", "token", "token_file", "scheme",
    "database", "databases", "socket_dir", "socket", "restore_globals", "data_path",
    "start_timeout", "save_timeout", "container", "image", "stop_command", "start_command",
    "health_command", "tenants", "page_size", "replace_collections", "pg_bin_dir",
}  # fmt: skip


def _read_secret_file(path: Any, field_name: str) -> str:
    if not isinstance(path, str) or not os.path.isabs(path):
        raise BackupError(f"{field_name}: must be an absolute path, got {path!r}")
    try:
        with open(path, encoding="utf-8") as fh:
            value = fh.read().rstrip("\r\n")
    except OSError as exc:
        raise BackupError(f"{field_name}: cannot read {path} ({exc.strerror})") from None
    if not value:
        raise BackupError(f"{field_name}: {path} is empty")
    return value


def load_config(data: Any, where: str = "config") -> dict[str, Any]:
    """Validate the CLI's JSON config and resolve its *_file secrets into a new dict (the
    Settings fields + report_dir/textfile_dir). Errors name the field; never a value."""
    if not isinstance(data, dict):
        raise BackupError(f"{where}: must be a JSON object")
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key.startswith("_"):
            continue  # comments
        if key not in CONFIG_TOP:
            raise BackupError(f"{where}: unknown field {key!r} (known: {', '.join(CONFIG_TOP)})")
        out[key] = value
    root = out.get("backup_root")
    if not isinstance(root, str) or not os.path.isabs(root):
        raise BackupError(f"{where}: backup_root: required, an absolute path, got {root!r}")
    backend = out.setdefault("backend", "docker")
    if backend not in ("docker", "local"):
        raise BackupError(f"{where}: backend: docker or local, got {backend!r}")
    services = out.setdefault("services", list(SERVICES))
    if not isinstance(services, list) or not services:
        raise BackupError(f"{where}: services: a non-empty list of {', '.join(SERVICES)}")
    for svc in services:
        if svc not in SERVICES:
            raise BackupError(f"{where}: services: unknown {svc!r} (known: {', '.join(SERVICES)})")
    for key in ("compress", "skip_missing"):
        if key in out and not isinstance(out[key], bool):
            raise BackupError(f"{where}: {key}: true or false, got {out[key]!r}")
    for key, low in (("keep_last", 1), ("keep_daily", 0), ("keep_weekly", 0)):
        if key in out and (
            not isinstance(out[key], int) or isinstance(out[key], bool) or out[key] < low
        ):
            raise BackupError(f"{where}: {key}: a whole number >= {low}, got {out[key]!r}")
    for key in ("report_dir", "textfile_dir", "work_dir"):
        if out.get(key) is not None and (
            not isinstance(out[key], str) or not os.path.isabs(out[key])
        ):
            raise BackupError(f"{where}: {key}: an absolute path, got {out[key]!r}")
    if "encryption_key_file" in out:
        out["encryption_key"] = _read_secret_file(
            out.pop("encryption_key_file"), f"{where}: encryption_key_file"
        )
    stores = out.get("datastores") or {}
    if not isinstance(stores, dict):
        raise BackupError(f"{where}: datastores: an object per service")
    resolved = {
        svc: _datastore_conf(conf, f"{where}: datastores.{svc}", svc)
        for svc, conf in stores.items()
    }
    if backend == "local":
        _check_network(services, resolved, where)
    out["datastores"] = resolved
    return out


def _datastore_conf(conf: Any, name: str, svc: str) -> dict[str, Any]:
    """One datastore's config checked, its *_file secrets read."""
    if svc not in SERVICES:
        raise BackupError(f"{name}: unknown service (known: {', '.join(SERVICES)})")
    if not isinstance(conf, dict):
        raise BackupError(f"{name}: must be an object")
    conf = dict(conf)
    for key in conf:
        if key not in CONFIG_DATASTORE and not key.startswith("_"):
            raise BackupError(f"{name}: unknown field {key!r}")
    if "port" in conf and (
        not isinstance(conf["port"], int)
        or isinstance(conf["port"], bool)
        or not 0 < conf["port"] < 65536
    ):
        raise BackupError(f"{name}.port: a TCP port number, got {conf['port']!r}")
    if "host" in conf and (not isinstance(conf["host"], str) or not conf["host"]):
        raise BackupError(f"{name}.host: a host name or address, got {conf['host']!r}")
    if "password_file" in conf:
        conf["password"] = _read_secret_file(conf.pop("password_file"), f"{name}.password_file")
    if "token_file" in conf:
        conf["token"] = _read_secret_file(conf.pop("token_file"), f"{name}.token_file")
    return conf


def _check_network(services: list[str], resolved: dict[str, Any], where: str) -> None:
    """Backend local (network mode): every service can be reached over the network."""
    for svc in services:
        refusal = REGISTRY[svc].network_refusal
        if refusal is not None:
            raise BackupError(
                f"{where}: services: {svc} cannot be backed up over the network ({refusal}): "
                "remove it"
            )
        if not (resolved.get(svc) or {}).get("host"):
            raise BackupError(
                f"{where}: datastores.{svc}.host: required with backend local (the "
                "server's address, e.g. its Kubernetes Service name)"
            )


def _parser(description: str | None, prog: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("action", choices=["backup", "restore", "verify", "drill", "extract"])
    parser.add_argument("--config", required=True)
    parser.add_argument("--set", default="latest")
    parser.add_argument("--check", action="store_true")
    parser.add_argument(
        "--services",
        help="comma-separated subset of the config's services"
        f" (e.g. restore {','.join(SERVICES[:2])})",
    )
    parser.add_argument(
        "--file", help="extract: path of the artefact in the set, as its manifest.json lists it"
    )
    parser.add_argument("--out", help="extract: where to write its decoded bytes")
    for cls in REGISTRY.values():  # the datastores' own switches
        for flag, _key, text in cls.cli_flags:
            parser.add_argument(flag, action="store_true", help=text)
    return parser


def _settings(args: argparse.Namespace) -> tuple[dict[str, Any], Settings]:
    """The config file validated, the command line and environment applied."""
    try:
        with open(args.config, encoding="utf-8") as fh:
            raw = json.load(fh)
    except OSError as exc:
        raise BackupError(f"{args.config}: cannot read ({exc.strerror})") from None
    except ValueError as exc:
        raise BackupError(f"{args.config}: not valid JSON ({exc})") from None
    data = load_config(raw, args.config)
    if not data.get("encryption_key"):
        data["encryption_key"] = os.environ.get("KAILASH_BACKUP_ENCRYPTION_KEY")
    for svc in SERVICES:
        pw = os.environ.get(f"KAILASH_{svc.upper()}_PASSWORD")
        store = data["datastores"].setdefault(svc, {})
        if pw and not store.get("password"):
            store["password"] = pw
    for svc, cls in REGISTRY.items():
        for flag, key, _text in cls.cli_flags:
            if getattr(args, flag.lstrip("-").replace("-", "_")):
                data["datastores"].setdefault(svc, {})[key] = True
    if args.services:
        subset = [s for s in args.services.split(",") if s]
        extra = [s for s in subset if s not in data["services"]]
        if extra:
            raise BackupError(f"--services: {', '.join(extra)} not in the config's services")
        data["services"] = subset
    if args.action == "extract" and not (args.file and args.out):
        raise BackupError("extract needs --file (an artefact's path in manifest.json) and --out")
    return data, Settings.from_dict(data)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """python3 -m kailash_backup {backup|restore|verify|drill} --config settings.json

    The JSON holds the Settings fields (backup_root, backend, services, datastores, ...,
    see CONFIG_TOP); secrets come from files: encryption_key_file,
    datastores.<service>.password_file / token_file (e.g. mounted Kubernetes Secret keys).
    Fallbacks from the environment: KAILASH_BACKUP_ENCRYPTION_KEY,
    KAILASH_<SERVICE>_PASSWORD."""
    args = _parser(main.__doc__, prog).parse_args(argv)
    try:
        data, settings = _settings(args)
    except BackupError as exc:
        print(json.dumps({"failed": True, "msg": str(exc)}))
        return 2

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        if args.action == "backup":
            out = backup(settings, check_mode=args.check, log=log)
            out.pop("manifest", None)
        elif args.action == "restore":
            out = restore(settings, args.set, check_mode=args.check, log=log)
        elif args.action == "verify":
            out = restore(settings, args.set, verify_only=True, log=log)
        elif args.action == "extract":
            out = extract(settings, args.set, args.file, args.out)
        else:
            out = drill(
                settings,
                args.set,
                data.get("report_dir"),
                data.get("textfile_dir"),
                check_mode=args.check,
                log=log,
            )
    except BackupError as exc:
        print(json.dumps({"failed": True, "msg": str(exc)}))
        return 1
    print(json.dumps(out, indent=2, default=str))
    return 0 if out.get("ok", out.get("passed", True)) is not False else 1
