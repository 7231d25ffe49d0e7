"""ChromaDB: the persistent dir (docker backend) or a logical export over the HTTP API."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ..artefacts import Ctx, read_artefact
from ..common import BackupError, iso, one_line, utcnow, version_tuple
from ..targets import DockerTarget, Target, _wait
from .base import Datastore

if TYPE_CHECKING:
    from ..drills import Drill, LocalDrill

CHROMA_EXPORT = """
chromadb/export.jsonl: one JSON object per line (kind chroma-export, method "logical export")
  {"type": "header", "format": "kailash-chroma-export", "version": 1, "server_version": ...}
  {"type": "collection", "tenant", "database", "name", "id", "metadata", "configuration",
   "dimension"}                                 then that collection's records, in pages:
  {"type": "records", "tenant", "database", "collection", "ids", "embeddings",
   "documents", "metadatas", "uris"}
  {"type": "end", "collections": N, "records": M}   (a file without it is truncated)
"""
CHROMA_INCLUDE = ["embeddings", "documents", "metadatas", "uris"]


def _json_lines(chunks: Iterable[bytes], name: str) -> Iterator[dict[str, Any]]:
    buf = b""
    for block in chunks:
        buf += block
        *lines, buf = buf.split(b"\n")
        for line in lines:
            if line.strip():
                try:
                    yield json.loads(line)
                except ValueError:
                    raise BackupError(f"{name}: not a JSON line ({one_line(line, 80)})") from None
    if buf.strip():
        raise BackupError(f"{name}: truncated (no newline at the end)")


def chroma_export_counts(lines: Iterable[dict[str, Any]], name: str) -> dict[str, int]:
    """Records per collection of an export (keys as Chroma.counts), checking its framing."""
    counts: dict[str, int] = {}
    current = None
    header = end = None
    for obj in lines:
        kind = obj.get("type")
        if header is None:
            if kind != "header" or obj.get("format") != "kailash-chroma-export":
                raise BackupError(f"{name}: not a kailash Chroma export")
            header = obj
        elif kind == "collection":
            current = Chroma.key(obj["tenant"], obj["database"], obj["name"])
            counts[current] = 0
        elif kind == "records":
            key = Chroma.key(obj["tenant"], obj["database"], obj["collection"])
            if key != current:
                raise BackupError(f"{name}: records of {key} outside their collection")
            ids = obj.get("ids") or []
            for field_name in ("embeddings", "documents", "metadatas", "uris"):
                value = obj.get(field_name)
                if value is not None and len(value) != len(ids):
                    raise BackupError(f"{name}: {key}: {field_name} do not match the ids")
            counts[key] += len(ids)
        elif kind == "end":
            end = obj
        else:
            raise BackupError(f"{name}: unexpected line type {kind!r}")
    if end is None:
        raise BackupError(f"{name}: truncated export (no end line)")
    if end.get("collections") != len(counts) or end.get("records") != sum(counts.values()):
        raise BackupError(f"{name}: the end line does not match the records in the file")
    return counts


def _pack_f32(vector: list[float]) -> str:
    import base64
    import struct

    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


class Chroma(Datastore):
    """Docker backend: stop the server, tar its persistent dir (SQLite + segment files),
    start it again. Network mode: a logical export over the HTTP API v2 (CHROMA_EXPORT)."""

    service = "chromadb"
    data_service = "chromadb-server"  # the server, not the gate
    cli_flags = (
        (
            "--replace-collections",
            "replace_collections",
            "restore: delete and re-create Chroma collections that exist and hold records",
        ),
    )

    @staticmethod
    def key(tenant: str, database: str, collection: str) -> str:
        prefix = "" if tenant == "default_tenant" else f"{tenant}/"
        return f"{prefix}{database}/{collection}"

    def _http(self, method: str, path: str, body: Any = None, timeout: float = 120) -> Any:
        """One API call to the server (or its token gate) at host:port, token in a header."""
        scheme = self.conf.get("scheme", "http")
        url = f"{scheme}://{self.conf['host']}:{self.conf.get('port', 8000)}"
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(url + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.conf.get("token"):
            req.add_header("X-Chroma-Token", self.conf["token"])
        # in-cluster traffic: no proxy from the environment
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(req, timeout=timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = one_line(exc.read() or b"", 300)
            raise BackupError(f"chromadb: {method} {path}: HTTP {exc.code} {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise BackupError(f"chromadb: {method} {path} at {url}: {reason}") from None
        return json.loads(raw) if raw.strip() else None

    def api(self, path: str) -> Any:
        if self.network:
            return self._http("GET", path)
        url = f"http://127.0.0.1:{self.conf.get('port', 8001)}{path}"
        res = self.t.run(["curl", "-fsS", "-m", "20", url], timeout=30, what=f"GET {path}")
        return json.loads(res.stdout or b"null")

    def versions(self):
        tool = (
            {"kailash_backup": "logical export over the HTTP API v2"}
            if self.network
            else {"tar": "GNU tar (helper container of the server image)"}
        )
        return {"server_version": str(self.api("/api/v2/version")), "tool_versions": tool}

    def tenants(self) -> list[str]:
        return list(self.conf.get("tenants") or ["default_tenant"])

    def databases(self, tenant: str) -> list[str]:
        out = self.api(f"/api/v2/tenants/{tenant}/databases") or []
        names = [db["name"] for db in out] or (
            ["default_database"] if tenant == "default_tenant" else []
        )
        return sorted(names)

    def collections(self, tenant: str, database: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        page = 1000
        while True:
            got = self.api(
                f"/api/v2/tenants/{tenant}/databases/{database}/collections"
                f"?limit={page}&offset={len(out)}"
            )
            out.extend(got or [])
            if len(got or []) < page:
                break
        return sorted(out, key=lambda c: c["name"])

    def counts(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for tenant in self.tenants() if self.network else ["default_tenant"]:
            base = f"/api/v2/tenants/{tenant}/databases"
            for dbname in self.databases(tenant):
                for coll in self.collections(tenant, dbname):
                    count = self.api(f"{base}/{dbname}/collections/{coll['id']}/count")
                    out[self.key(tenant, dbname, coll["name"])] = int(count)
        return out

    def __init__(self, target: Target, conf: dict[str, Any]) -> None:
        super().__init__(target, conf)
        if isinstance(target, DockerTarget):
            target.stop_signal = (
                "SIGINT"  # Chroma's server ignores SIGTERM (killed after the timeout)
            )

    @staticmethod
    def _line(obj: dict[str, Any]) -> bytes:
        return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode("utf-8") + b"\n"

    def _export_collection(
        self, w: Callable[[bytes], None], tenant: str, db: str, coll: dict[str, Any], page: int
    ) -> int:
        """One collection's line and its records, paged with /get; the records written."""
        base = f"/api/v2/tenants/{tenant}/databases/{db}/collections"
        w(
            self._line(
                {
                    "type": "collection",
                    "tenant": tenant,
                    "database": db,
                    "name": coll["name"],
                    "id": coll["id"],
                    "metadata": coll.get("metadata"),
                    "configuration": coll.get("configuration_json"),
                    "schema": coll.get("schema"),
                    "dimension": coll.get("dimension"),
                }
            )
        )
        done = 0
        while True:
            got = self._http(
                "POST",
                f"{base}/{coll['id']}/get",
                {"limit": page, "offset": done, "include": CHROMA_INCLUDE},
                timeout=600,
            )
            ids = got.get("ids") or []
            if not ids:
                break
            w(
                self._line(
                    {
                        "type": "records",
                        "tenant": tenant,
                        "database": db,
                        "collection": coll["name"],
                        "ids": ids,
                        **{f: got.get(f) for f in CHROMA_INCLUDE},
                    }
                )
            )
            done += len(ids)
            if len(ids) < page:
                break
        return done

    def _export(self, ctx: Ctx) -> dict[str, Any]:
        """Every collection of every database of the configured tenants, paged with /get."""
        before = self.counts()
        page = int(self.conf.get("page_size", 300))
        exported: dict[str, int] = {}
        version = str(self.api("/api/v2/version"))

        def produce(w: Callable[[bytes], None]) -> None:
            w(
                self._line(
                    {
                        "type": "header",
                        "format": "kailash-chroma-export",
                        "version": 1,
                        "server_version": version,
                        "created_at": iso(utcnow()),
                    }
                )
            )
            for tenant in self.tenants():
                for db in self.databases(tenant):
                    for coll in self.collections(tenant, db):
                        key = self.key(tenant, db, coll["name"])
                        exported[key] = self._export_collection(w, tenant, db, coll, page)
            w(
                self._line(
                    {"type": "end", "collections": len(exported), "records": sum(exported.values())}
                )
            )

        ctx.write_stream("chromadb/export.jsonl", "chroma-export", produce)
        return {
            "counts": exported,
            # written to while it was exported: counts (and records) may be off
            "counts_exact": before == exported,
            "method": "logical export over the HTTP API v2 (server kept running)",
            "format": "export-jsonl",
            "tenants": self.tenants(),
            "host": self.conf["host"],
        }

    def backup(self, ctx: Ctx) -> dict[str, Any]:
        if self.network:
            return self._export(ctx)
        counts = self.counts()
        path = self.conf.get("data_path", "/data")
        self.t.stop()
        try:
            ctx.write_stream(
                "chromadb/data.tar",
                "tar",
                lambda w: self.t.run_offline(
                    ["tar", "-C", path, "-cf", "-", "."], sink=w, what=f"tar of {path}"
                ),
            )
        finally:
            self.t.start()
        self.wait_ready()
        return {
            "counts": counts,
            "method": "server stopped, persistent dir archived",
            "data_path": path,
        }

    def ready(self) -> bool:
        self.api("/api/v2/heartbeat")
        return True

    @staticmethod
    def export_entry(section: dict[str, Any]) -> dict[str, Any] | None:
        return next((e for e in section["files"] if e.get("kind") == "chroma-export"), None)

    def restore(self, set_dir, section, secret):
        if self.export_entry(section) is not None:
            return self._import(set_dir, section, secret)
        path = section["details"].get("data_path", "/data")
        entry = section["files"][0]
        self.t.stop()
        try:
            self.t.run_offline(
                ["sh", "-c", f'find "{path}" -mindepth 1 -delete && tar -C "{path}" -xf -'],
                stdin=read_artefact(set_dir, entry, secret),
                what=f"untar into {path}",
            )
        finally:
            self.t.start()
        return {}

    def _import(self, set_dir, section, secret) -> dict[str, Any]:
        """Create each collection (name, metadata, configuration) and add its records in
        batches. A collection that exists and holds records is refused before any change,
        unless conf replace_collections (then it is deleted and created again)."""
        if not self.network:
            raise BackupError("chromadb: an export is restored over the API: give a host")
        entry = self.export_entry(section)
        name = entry["path"]
        replace = bool(self.conf.get("replace_collections"))
        wanted = [
            obj
            for obj in _json_lines(read_artefact(set_dir, entry, secret), name)
            if obj.get("type") == "collection"
        ]
        existing: dict[str, dict[str, Any]] = {}
        blocked = []
        for obj in wanted:
            tenant, db = obj["tenant"], obj["database"]
            if db not in self._databases_or_none(tenant):
                continue
            for coll in self.collections(tenant, db):
                if coll["name"] == obj["name"]:
                    key = self.key(tenant, db, obj["name"])
                    base = f"/api/v2/tenants/{tenant}/databases/{db}/collections"
                    count = int(self.api(f"{base}/{coll['id']}/count"))
                    existing[key] = {"count": count, "id": coll["id"]}
                    if count and not replace:
                        blocked.append(f"{key} ({count} records)")
        if blocked:
            raise BackupError(
                "chromadb: these collections exist and hold records: "
                + ", ".join(blocked)
                + " (refused; set replace_collections to delete and re-create them)"
            )
        created: dict[str, int] = {}
        ids_of: dict[str, str] = {}
        # embeddings as packed little-endian float32 (what Chroma's own client sends): the
        # exported decimals go back to the very same float32 values, bit for bit (the
        # server's own decimal parsing is off by one unit in the last place now and then)
        try:
            base64_ok = bool(
                (self.api("/api/v2/pre-flight-checks") or {}).get("supports_base64_encoding")
            )
        except BackupError:
            base64_ok = False
        for obj in _json_lines(read_artefact(set_dir, entry, secret), name):
            kind = obj.get("type")
            if kind == "collection":
                tenant, db = obj["tenant"], obj["database"]
                self._ensure_database(tenant, db)
                key = self.key(tenant, db, obj["name"])
                base = f"/api/v2/tenants/{tenant}/databases/{db}/collections"
                if key in existing:
                    self._http("DELETE", f"{base}/{obj['name']}")
                body: dict[str, Any] = {"name": obj["name"], "get_or_create": False}
                if obj.get("metadata"):
                    body["metadata"] = obj["metadata"]
                config = self._create_configuration(obj.get("configuration"))
                if config:
                    body["configuration"] = config
                coll = self._http("POST", base, body)
                ids_of[key] = coll["id"]
                created[key] = 0
            elif kind == "records":
                key = self.key(obj["tenant"], obj["database"], obj["collection"])
                base = f"/api/v2/tenants/{obj['tenant']}/databases/{obj['database']}/collections"
                body = {"ids": obj["ids"]}
                for f in CHROMA_INCLUDE:
                    values = obj.get(f)
                    if values is not None and any(v is not None for v in values):
                        if f == "embeddings" and base64_ok:
                            values = [None if v is None else _pack_f32(v) for v in values]
                        body[f] = values
                self._http("POST", f"{base}/{ids_of[key]}/add", body, timeout=600)
                created[key] += len(obj["ids"])
        return {"collections": created, "replaced": sorted(existing)}

    @staticmethod
    def _create_configuration(config: Any) -> dict[str, Any] | None:
        """The index settings of an exported configuration that a create accepts (the
        embedding function is the client's business: records carry their embeddings)."""
        if not isinstance(config, dict):
            return None
        out = {k: config[k] for k in ("hnsw", "spann") if config.get(k)}
        return out or None

    def _databases_or_none(self, tenant: str) -> list[str]:
        try:
            return self.databases(tenant)
        except BackupError:
            return []

    def _ensure_database(self, tenant: str, db: str) -> None:
        try:
            self.api(f"/api/v2/tenants/{tenant}")
        except BackupError:
            self._http("POST", "/api/v2/tenants", {"name": tenant})
        if db not in self._databases_or_none(tenant):
            self._http("POST", f"/api/v2/tenants/{tenant}/databases", {"name": db})

    def check_compatible(self, section):
        export = self.export_entry(section) is not None
        if export and not self.network:
            raise BackupError(
                "chromadb: the set holds a logical export (export.jsonl): restore it with "
                "backend local and the server's host"
            )
        if not export and self.network:
            raise BackupError(
                "chromadb: the set holds the persistent dir (data.tar, docker backend): it "
                "cannot be restored over the network"
            )
        have = version_tuple(self.versions()["server_version"])
        want = version_tuple(section.get("server_version"))
        if have[:2] != want[:2] and have < want:
            raise BackupError(
                f"chromadb: set made with {section.get('server_version')}, "
                f"server is older ({'.'.join(map(str, have))})"
            )

    @classmethod
    def drill_docker(
        cls, drill: Drill, section: dict[str, Any], conf: dict[str, Any], image: str
    ) -> Datastore | dict[str, Any]:
        """The persistent dir untarred into a throwaway container, ``chroma run`` on it; a
        set of the network mode (Kubernetes) is checked, not loaded (as the local drill)."""
        if cls.export_entry(section) is not None:
            return drill_chroma_export(drill.set_dir, section, drill.s.encryption_key)
        conf.update(port=8000)
        target = drill.container(cls.service, image, ["sleep", "infinity"], entrypoint="")
        entry = section["files"][0]
        target.run(
            ["tar", "-C", "/data", "-xf", "-"],
            stdin=read_artefact(drill.set_dir, entry, drill.s.encryption_key),
            what="untar",
        )
        target.run(
            [
                "sh",
                "-c",
                "nohup chroma run --path /data --host 127.0.0.1 --port 8000 "
                ">/tmp/chroma.log 2>&1 &",
            ],
            what="chroma run",
        )
        handler = cls(target, conf)
        _wait(
            lambda: (
                target.run(
                    ["curl", "-fsS", "http://127.0.0.1:8000/api/v2/heartbeat"], check=False
                ).rc
                == 0
            ),
            120,
            "drill ChromaDB did not start",
        )
        return handler

    @classmethod
    def drill_local(
        cls, drill: LocalDrill, section: dict[str, Any], conf: dict[str, Any]
    ) -> dict[str, Any]:
        """The export parsed, its framing checked, its records counted: not loaded."""
        if cls.export_entry(section) is None:
            raise BackupError(
                "chromadb: the set holds the persistent dir (data.tar): the local drill "
                "checks logical exports only (use the docker drill)"
            )
        return drill_chroma_export(drill.set_dir, section, drill.s.encryption_key)


def drill_chroma_export(set_dir: str, section: dict[str, Any], secret: str | None) -> dict:
    """The drill of a Chroma logical export (either backend): decode it, check its framing,
    count the records per collection and compare with the manifest. Not loaded anywhere."""
    entry = Chroma.export_entry(section)
    counts = chroma_export_counts(
        _json_lines(read_artefact(set_dir, entry, secret), entry["path"]), entry["path"]
    )
    diffs = Chroma.compare_counts(section["counts"], counts, True)
    return {
        "counts": counts,
        "differences": diffs,
        "passed": not diffs,
        "method": "export checksummed, decoded and its records counted; "
        "not loaded into a Chroma server",
    }
