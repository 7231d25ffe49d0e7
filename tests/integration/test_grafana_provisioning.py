"""roles/grafana_dashboards (playbooks/dashboards.yml) against a STAND-IN for Grafana's HTTP
API. Grafana cannot be installed on these machines by any route (../shared/ENVIRONMENT.md,
"Monitoring"), so this module serves the few endpoints the role uses from a small Python
HTTP server, with the request and response shapes of Grafana's HTTP API documentation
(Folder API, Dashboard API):

- GET /api/folders/<uid> (200 folder / 404), POST /api/folders (create), PUT
  /api/folders/<uid> (rename);
- GET /api/dashboards/uid/<uid> (200 {"dashboard", "meta": {"folderUid", ...}} / 404);
- POST /api/dashboards/db ({"dashboard", "folderUid", "overwrite", "message"} -> {"id",
  "uid", "url", "status": "success", "version", "slug"}); like Grafana, it stores the JSON
  as posted and sets id and version itself;
- every request needs `Authorization: Bearer <token>` (401 {"message": "invalid API key"}).

Exercised: the real role and playbook with ansible-playbook: a first run creates the folder
and posts the five dashboards (the stored JSON equals the committed files), a second run
changes nothing and posts nothing; a dashboard edited in "Grafana" is posted again alone;
check mode reads, reports the changes and writes nothing; an empty grafana_api_token is
refused before any request, naming the variable; a refused token gives a readable error and
the token never appears in the output; the file-provisioning directory (provider YAML,
datasource YAML, the JSON; stale files removed; idempotent).

Not exercised: a real Grafana (its schema migrations on load, its permission model, nested
folders, how it renders the panels), TLS to Grafana.
"""

from __future__ import annotations

import copy
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from kailash_testlib import run_playbook

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "roles" / "grafana_dashboards" / "files" / "generated"
TOKEN = "glsa_standin_0123456789abcdef"
PLAYBOOK = "playbooks/dashboards.yml"


class FakeGrafana:
    """State and request log of the stand-in."""

    def __init__(self) -> None:
        self.folders: dict[str, dict] = {}
        self.dashboards: dict[str, dict] = {}  # uid -> {"dashboard": ..., "folderUid": ...}
        self.requests: list[tuple[str, str]] = []
        self.next_id = 1
        self.lock = threading.Lock()

    def writes(self) -> list[tuple[str, str]]:
        return [r for r in self.requests if r[0] != "GET"]


def make_handler(state: FakeGrafana):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def reply(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def body(self) -> dict:
            length = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(length) or b"{}")

        def handle_any(self, method: str) -> None:
            with state.lock:
                state.requests.append((method, self.path))
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self.reply(401, {"message": "invalid API key"})
                parts = self.path.strip("/").split("/")
                if parts[:2] == ["api", "folders"]:
                    return self.folders(method, parts[2:])
                if parts[:3] == ["api", "dashboards", "uid"] and method == "GET":
                    return self.get_dashboard(parts[3])
                if parts[:3] == ["api", "dashboards", "db"] and method == "POST":
                    return self.post_dashboard(self.body())
                return self.reply(404, {"message": "Not found"})

        def folder_json(self, folder: dict) -> dict:
            return {**folder, "url": f"/dashboards/f/{folder['uid']}/", "hasAcl": False,
                    "canSave": True, "canEdit": True, "canAdmin": True}  # fmt: skip

        def folders(self, method: str, rest: list[str]) -> None:
            if method == "GET" and len(rest) == 1:
                folder = state.folders.get(rest[0])
                if folder is None:
                    return self.reply(404, {"message": "folder not found", "status": "not-found"})
                return self.reply(200, self.folder_json(folder))
            if method == "POST" and not rest:
                body = self.body()
                if body.get("uid") in state.folders:
                    return self.reply(409, {"message": "a folder with the same uid already exists"})
                folder = {"id": state.next_id, "uid": body["uid"], "title": body["title"],
                          "version": 1}  # fmt: skip
                state.next_id += 1
                state.folders[folder["uid"]] = folder
                return self.reply(200, self.folder_json(folder))
            if method == "PUT" and len(rest) == 1 and rest[0] in state.folders:
                body = self.body()
                folder = state.folders[rest[0]]
                folder["title"] = body["title"]
                folder["version"] += 1
                return self.reply(200, self.folder_json(folder))
            return self.reply(404, {"message": "folder not found"})

        def get_dashboard(self, uid: str) -> None:
            stored = state.dashboards.get(uid)
            if stored is None:
                return self.reply(404, {"message": "Dashboard not found"})
            board = stored["dashboard"]
            folder = state.folders[stored["folderUid"]]
            meta = {"type": "db", "canSave": True, "canEdit": True, "slug": uid,
                    "url": f"/d/{uid}/{uid}", "version": board["version"],
                    "folderId": folder["id"], "folderUid": folder["uid"],
                    "folderTitle": folder["title"], "provisioned": False}  # fmt: skip
            return self.reply(200, {"dashboard": board, "meta": meta})

        def post_dashboard(self, body: dict) -> None:
            board = copy.deepcopy(body.get("dashboard") or {})
            uid, folder_uid = board.get("uid"), body.get("folderUid", "")
            if not uid or not board.get("title"):
                return self.reply(400, {"message": "Dashboard title cannot be empty"})
            if folder_uid not in state.folders:
                return self.reply(400, {"message": "folder not found"})
            existing = state.dashboards.get(uid)
            if existing and not body.get("overwrite"):
                return self.reply(412, {"message": "The dashboard has been changed by someone "
                                        "else", "status": "version-mismatch"})  # fmt: skip
            if board.get("id") is not None and (
                not existing or existing["dashboard"]["id"] != board["id"]
            ):
                return self.reply(404, {"message": "Dashboard not found", "status": "not-found"})
            board["id"] = existing["dashboard"]["id"] if existing else state.next_id
            state.next_id += 0 if existing else 1
            board["version"] = existing["dashboard"]["version"] + 1 if existing else 1
            state.dashboards[uid] = {"dashboard": board, "folderUid": folder_uid}
            return self.reply(200, {"id": board["id"], "uid": uid, "url": f"/d/{uid}/{uid}",
                                    "status": "success", "version": board["version"],
                                    "slug": uid})  # fmt: skip

        def do_GET(self):
            self.handle_any("GET")

        def do_POST(self):
            self.handle_any("POST")

        def do_PUT(self):
            self.handle_any("PUT")

    return Handler


@pytest.fixture
def grafana():
    state = FakeGrafana()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def inventory(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("inv") / "hosts.yml"
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    path.write_text(
        yaml.safe_dump({"all": {"children": {"docker_hosts": {"hosts": {"localhost": host}}}}})
    )
    return str(path)


def committed() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(GENERATED.glob("*.json"))}


def play(inventory: str, *args: str, **extra):
    token_file = Path(inventory).parent / "token.yml"
    token_file.write_text(yaml.safe_dump({"grafana_api_token": extra.pop("token", TOKEN)}))
    run = run_playbook(PLAYBOOK, *args, "-e", f"@{token_file}",
                       extra={"kailash_become": False, **extra}, inventory=inventory,
                       timeout=300)  # fmt: skip
    assert TOKEN not in run.output, "the token was printed"
    return run


def test_api_provisions_once_then_changes_nothing(grafana, inventory, tmp_path):
    prov = tmp_path / "provisioning"
    stale = prov / "dashboards" / "kailash" / "gone.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    extra = {"grafana_url": grafana.url, "grafana_provisioning_dir": str(prov),
             "grafana_prometheus_url": "http://prometheus:9090"}  # fmt: skip

    first = play(inventory, **extra)
    assert first.rc == 0, first.output
    assert first.recap()["changed"] > 0 and first.recap()["failed"] == 0
    boards = committed()
    assert grafana.folders["kailash"]["title"] == "Kailash"
    assert set(grafana.dashboards) == set(boards)
    for uid, stored in grafana.dashboards.items():
        assert stored["folderUid"] == "kailash"
        mine = {k: v for k, v in stored["dashboard"].items() if k not in ("id", "version")}
        theirs = {k: v for k, v in boards[uid].items() if k not in ("id", "version")}
        assert mine == theirs, uid
    posts = [r for r in grafana.writes() if r == ("POST", "/api/dashboards/db")]
    assert len(posts) == len(boards)

    # the file-provisioning directory, written by the same run
    provider = yaml.safe_load((prov / "dashboards" / "kailash.yaml").read_text())
    entry = provider["providers"][0]
    assert entry["folderUid"] == "kailash" and entry["type"] == "file"
    assert entry["options"]["path"] == "/etc/grafana/provisioning/dashboards/kailash"
    ds = yaml.safe_load((prov / "datasources" / "kailash.yaml").read_text())["datasources"][0]
    assert ds["type"] == "prometheus" and ds["url"] == "http://prometheus:9090"
    files = {p.stem: json.loads(p.read_text()) for p in (prov / "dashboards" / "kailash").iterdir()}
    assert files == boards, "stale file kept or JSON differs"

    before = list(grafana.requests)
    second = play(inventory, **extra)
    assert second.rc == 0, second.output
    assert second.recap()["changed"] == 0, second.output
    assert not [r for r in grafana.requests[len(before):] if r[0] != "GET"]

    # someone edits one dashboard in Grafana: only that one is posted again
    grafana.dashboards["kailash-api"]["dashboard"]["title"] = "edited in the UI"
    grafana.folders["kailash"]["title"] = "Renamed"
    before = list(grafana.requests)
    third = play(inventory, **extra)
    assert third.rc == 0, third.output
    writes = [r for r in grafana.requests[len(before):] if r[0] != "GET"]
    assert writes == [("PUT", "/api/folders/kailash"), ("POST", "/api/dashboards/db")], writes
    assert grafana.dashboards["kailash-api"]["dashboard"]["title"] == "Kailash / API"
    assert grafana.folders["kailash"]["title"] == "Kailash"


def test_check_mode_reads_and_writes_nothing(grafana, inventory):
    run = play(inventory, "--check", grafana_url=grafana.url)
    assert run.rc == 0, run.output
    assert run.recap()["changed"] > 0, run.output
    assert "Would create folder kailash and post 5 dashboard(s)" in run.output
    assert grafana.requests and not grafana.writes(), grafana.requests
    assert not grafana.dashboards and not grafana.folders


def test_empty_token_refused_before_any_request(grafana, inventory):
    run = play(inventory, grafana_url=grafana.url, token="  ")
    assert run.rc != 0
    assert "grafana_api_token is empty but grafana_url is set" in run.output, run.output
    assert not grafana.requests


def test_refused_token_named_without_printing_it(grafana, inventory):
    wrong = "glsa_wrong_token_value_987"
    run = play(inventory, grafana_url=grafana.url, token=wrong)
    assert run.rc != 0
    assert "answered HTTP 401: invalid API key" in run.output, run.output
    assert "check grafana_api_token" in run.output
    assert wrong not in run.output, "the token was printed"
    assert not grafana.writes()


def test_nothing_to_do_is_refused(inventory):
    run = play(inventory)
    assert run.rc != 0
    assert "Set grafana_url" in run.output and "grafana_provisioning_dir" in run.output
