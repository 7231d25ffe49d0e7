"""Neo4j 5 community: neo4j-admin database dump/load, offline (maintenance window)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..artefacts import read_artefact
from .base import Datastore

if TYPE_CHECKING:
    from ..drills import Drill


class Neo4j(Datastore):
    """neo4j-admin database dump (offline: maintenance window), load on restore.

    Neo4j 5 community has no online backup: the server is stopped, each database is
    dumped to stdout by neo4j-admin in a helper container of the same image with the
    same volumes, then the server is started again and health-checked. Not exercised
    here (no Neo4j image can be obtained offline)."""

    service = "neo4j"
    data_service = "neo4j"
    network_refusal = "Neo4j 5 community dumps offline, next to its volume"

    def cypher(self, query: str) -> str:
        res = self.t.run(
            [
                "cypher-shell",
                "-a",
                f"bolt://127.0.0.1:{self.conf.get('port', 7687)}",
                "-u",
                self.conf.get("user", "neo4j"),
                "--format",
                "plain",
                query,
            ],
            env={"NEO4J_PASSWORD": self.conf.get("password") or ""},
            timeout=120,
            what="cypher-shell",
        )
        return res.text.strip()

    def versions(self):
        out = self.cypher("CALL dbms.components() YIELD versions RETURN versions[0]")
        return {
            "server_version": out.splitlines()[-1].strip('"'),
            "tool_versions": {"neo4j-admin": "same image (helper container)"},
        }

    def counts(self):
        nodes = self.cypher("MATCH (n) RETURN count(n)").splitlines()[-1]
        rels = self.cypher("MATCH ()-[r]->() RETURN count(r)").splitlines()[-1]
        return {"neo4j": {"nodes": int(nodes), "relationships": int(rels)}}

    def backup(self, ctx):
        counts = self.counts()
        dbs = self.conf.get("databases") or ["neo4j", "system"]
        self.t.stop()
        try:
            for db in dbs:
                ctx.write_stream(
                    f"neo4j/{db}.dump",
                    "neo4j-dump",
                    lambda w, db=db: self.t.run_offline(
                        ["neo4j-admin", "database", "dump", db, "--to-stdout"],
                        sink=w,
                        what=f"neo4j-admin database dump {db}",
                    ),
                )
        finally:
            self.t.start()
        self.wait_ready(float(self.conf.get("start_timeout", 300)))
        return {"counts": counts, "databases": dbs, "method": "offline dump (maintenance window)"}

    def ready(self) -> bool:
        self.cypher("RETURN 1")
        return True

    @staticmethod
    def _load(
        run: Any, section: dict[str, Any], set_dir: str, secret: str | None, what: str
    ) -> None:
        """``neo4j-admin database load`` of every database of the set, through ``run``
        (a Target's run or run_offline); ``what`` names the step, {db} its database."""
        for db in section["details"]["databases"]:
            entry = next(e for e in section["files"] if e["path"].startswith(f"neo4j/{db}.dump"))
            run(
                [
                    "neo4j-admin",
                    "database",
                    "load",
                    db,
                    "--from-stdin",
                    "--overwrite-destination=true",
                ],
                stdin=read_artefact(set_dir, entry, secret),
                what=what.format(db=db),
            )

    def restore(self, set_dir, section, secret):
        self.t.stop()
        try:
            self._load(
                self.t.run_offline, section, set_dir, secret, "neo4j-admin database load {db}"
            )
        finally:
            self.t.start()
        return {}

    @classmethod
    def drill_docker(
        cls, drill: Drill, section: dict[str, Any], conf: dict[str, Any], image: str
    ) -> Datastore:
        """The dumps loaded into a throwaway container of the image, then its server."""
        target = drill.container(
            cls.service,
            image,
            ["sleep", "infinity"],
            entrypoint="",
            env={"NEO4J_AUTH": "neo4j/" + (conf.get("password") or "drill-pass-1")},
        )
        cls._load(target.run, section, drill.set_dir, drill.s.encryption_key, "load {db}")
        target.run(["sh", "-c", "nohup /startup/docker-entrypoint.sh neo4j >/tmp/neo4j.log 2>&1 &"])
        handler = cls(target, conf)
        handler.wait_ready(300)
        return handler
