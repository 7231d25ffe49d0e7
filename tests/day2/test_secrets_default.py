"""Issue #11 item 5: secrets of a deployed stack are never replaced silently, and a
deliberate rotation (playbooks/rotate_secrets.yml) changes them with the stack up.

All on the default project (``kailash``, inventories/local), as a user runs things:

* a second clone of the repository (no ``.secrets/``) deploys the running stack: it finds
  the secrets and the edge CA kept with the stack on the Docker host and the stack stays
  healthy with them. On the code before the fix the clone generated new secrets (and a new
  CA): the test watches the clone's secrets store while its playbook runs and stops it as
  soon as it differs, before it touches the stack;
* refusals before any change: two stores that disagree (both paths named), and a project
  whose volumes exist while no store has its secrets (the volume and the paths named);
* a rotation of every secret under authenticated load through the edge: no failed request;
  afterwards the old passwords are refused and the new ones work, tokens signed with the
  old JWT secret are still accepted (grace period) and new tokens work; --check changes
  nothing, and the next plain deploy keeps the app containers it started.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import requests
import yaml

from day2lib import (
    PROJECT,
    SECRETS_DIR,
    STACK_DIR,
    all_healthy,
    container_state,
    containers,
    deploy,
    docker,
    secrets,
)
from kailash_testlib import BIN, ROOT, PlaybookRun

pytestmark = pytest.mark.usefixtures("default_stack")

CLONE = Path("/tmp/kailash-clone2")
HOST_STORE = STACK_DIR / "secret-store"
URL = "https://127.0.0.1:8443"
CA = SECRETS_DIR / "edge" / "ca.crt"
EDGE_FILES = ("edge/ca.key", "edge/ca.crt", "edge/tls.key", "edge/tls.crt")
ROTATED = ("postgresql_password", "redis_password", "redis_admin_password", "chromadb_token",
           "nexus_jwt_secret")


def values(data: dict) -> dict:
    return {k: v for k, v in data.items() if k != "kailash_rotation"}


def datastores() -> dict[str, str]:
    return {r["Name"]: container_state(r["Name"])["id"] for r in containers()
            if r["Service"] in ("postgresql", "redis", "chromadb-server")}


def clone_playbook(*args: str, watch: bool = False, timeout: int = 1500) -> PlaybookRun:
    """playbooks/dev_stack.yml run from the clone, with this checkout's venv.

    ``watch``: fail (and stop the run) as soon as the clone's secrets store or CA differs
    from the stack's, i.e. before the run replaces anything on the Docker host with them."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(CLONE / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0", PATH=f"{BIN}:{os.environ.get('PATH', '')}")
    log = CLONE.parent / "kailash-clone2.log"
    want = values(secrets())
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(BIN / "ansible-playbook"), "-i", "inventories/local", "playbooks/dev_stack.yml",
             *args], cwd=CLONE, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        try:
            while proc.poll() is None:
                if watch:
                    mine = CLONE / ".secrets" / "local" / "secrets.yml"
                    if mine.exists():
                        got = values(yaml.safe_load(mine.read_text()) or {})
                        differ = sorted(k for k in want if k in got and got[k] != want[k])
                        assert not differ, (
                            f"the clone made new secrets for the running stack: {differ}")
                    for name in EDGE_FILES:
                        theirs = CLONE / ".secrets" / "local" / name
                        if theirs.exists() and theirs.stat().st_size:
                            assert theirs.read_bytes() == (SECRETS_DIR / name).read_bytes(), (
                                f"the clone made a new {name}")
                assert time.monotonic() < deadline, "the clone's run timed out"
                time.sleep(0.5)
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(60)
    return PlaybookRun(proc.returncode, log.read_text())


@pytest.fixture(scope="module")
def clone():
    """A second clone of this repository (a new laptop, a CI runner): nothing of .secrets."""
    shutil.rmtree(CLONE, ignore_errors=True)
    subprocess.run(["git", "clone", "-q", str(ROOT), str(CLONE)], check=True)
    assert not (CLONE / ".secrets").exists()
    yield CLONE
    shutil.rmtree(CLONE, ignore_errors=True)


def readyz() -> requests.Response:
    return requests.get(f"{URL}/readyz", verify=str(CA), timeout=30)


# ------------------------------------------------------------------ a second clone
def test_second_clone_finds_the_stack_secrets_and_keeps_it_healthy(clone, healthy_after):
    before = values(secrets())
    ca = {name: (SECRETS_DIR / name).read_bytes() for name in EDGE_FILES}
    assert HOST_STORE.is_dir() and (HOST_STORE.stat().st_mode & 0o777) == 0o700

    run = clone_playbook(watch=True)
    assert run.rc == 0, run.output[-4000:]

    mine = clone / ".secrets" / "local"
    # (booleans: a failed comparison must not print secrets)
    same = values(yaml.safe_load((mine / "secrets.yml").read_text())) == before
    assert same, "the clone's secrets differ from the stack's"
    assert ((mine / "secrets.yml").stat().st_mode & 0o777) == 0o600
    same = {name: (mine / name).read_bytes() for name in EDGE_FILES} == ca
    assert same, "the clone's CA or certificate differ from the stack's"
    same = values(secrets()) == before
    assert same, "this checkout's store changed"
    assert all_healthy(), containers()
    answer = readyz()  # the app reaches every datastore with the secrets it was given
    assert answer.status_code == 200, answer.text
    for value in before.values():
        assert value not in run.output


def test_host_store_is_root_only_and_matches(clone):
    store = HOST_STORE / "secrets.yml"
    assert (store.stat().st_mode & 0o777) == 0o600 and store.stat().st_uid == 0
    same = values(yaml.safe_load(store.read_text())) == values(secrets())
    assert same, "the copy with the stack differs from the control node's store"
    for name in EDGE_FILES:
        same = (HOST_STORE / name).read_bytes() == (SECRETS_DIR / name).read_bytes()
        assert same, f"{name} differs"
        assert ((HOST_STORE / name).stat().st_mode & 0o777) == 0o600


# ------------------------------------------------------------------ refusals
def test_stores_that_disagree_are_refused_naming_both(clone, healthy_after):
    mine = clone / ".secrets" / "local"
    shutil.rmtree(mine, ignore_errors=True)
    mine.mkdir(parents=True)
    wrong = dict(values(secrets()), postgresql_password="x" * 32)
    (mine / "secrets.yml").write_text(yaml.safe_dump(wrong))
    before = datastores()
    try:
        run = clone_playbook()
        assert run.rc != 0
        text = " ".join(run.output.split())
        assert str(mine / "secrets.yml") in text and str(HOST_STORE / "secrets.yml") in text, \
            run.output[-3000:]
        assert "postgresql_password" in text and "x" * 32 not in run.output
        assert run.recap().get("changed", 0) == 0, run.output[-3000:]
        assert datastores() == before
    finally:
        shutil.rmtree(mine, ignore_errors=True)


def test_data_without_any_store_is_refused_naming_the_volume(clone, healthy_after):
    mine = clone / ".secrets" / "local"
    shutil.rmtree(clone / ".secrets", ignore_errors=True)
    moved = STACK_DIR / "secret-store.moved-by-test"
    before = datastores()
    HOST_STORE.rename(moved)
    try:
        run = clone_playbook()
    finally:
        moved.rename(HOST_STORE)
    assert run.rc != 0
    text = " ".join(run.output.split())
    assert f"{PROJECT}_postgresql-data" in text, run.output[-3000:]
    assert str(mine / "secrets.yml") in text and str(HOST_STORE / "secrets.yml") in text
    assert run.recap().get("changed", 0) == 0, run.output[-3000:]
    assert not (mine / "secrets.yml").exists()
    assert datastores() == before


# ------------------------------------------------------------------ rotation under load
class Load:
    """Authenticated requests through the edge (health and a workflow), in the background.

    The client retries a request once when the edge closed its kept-alive connection without
    answering (RemoteDisconnected), as HTTP clients do for a request that cannot have been
    applied (RFC 9112, 9.3.1.1; classify is a read-only workflow). Every graceful NGINX reload
    of the rotation closes the old workers' idle keep-alive connections, and a request sent
    at that instant meets the close: reproduced with 60 reloads under this load, 3 such
    closes (issue #14 notes). Such retries are counted apart and bounded by the test; any
    other error, a second close, or a non-200 answer is a lost request.
    """

    def __init__(self, token: str, threads: int = 3):
        self.token, self.stop = token, threading.Event()
        self.counts: Counter = Counter()
        self.failures: list[tuple] = []
        self.retried: list[tuple] = []
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]

    @staticmethod
    def closed_unanswered(exc: requests.RequestException) -> bool:
        text = repr(exc)
        return isinstance(exc, requests.ConnectionError) and "RemoteDisconnected" in text

    def request(self, s: requests.Session, n: int) -> requests.Response:
        if n % 2:
            return s.get(f"{URL}/health", verify=str(CA), timeout=60)
        return s.post(f"{URL}/workflows/classify/execute", verify=str(CA), timeout=60,
                      json={"inputs": {"description": f"cordless drill {n % 50} V"}})

    def run(self) -> None:
        s = requests.Session()
        s.headers["Authorization"] = f"Bearer {self.token}"
        n = 0
        while not self.stop.is_set():
            n += 1
            path = "/health" if n % 2 else "/workflows/classify/execute"
            try:
                try:
                    r = self.request(s, n)
                except requests.RequestException as exc:
                    if not self.closed_unanswered(exc):
                        raise
                    self.retried.append((time.strftime("%T"), path, str(exc)[:200]))
                    r = self.request(s, n)
                self.counts[r.status_code] += 1
                if r.status_code != 200:
                    self.failures.append((time.strftime("%T"), path, r.status_code, r.text[:300]))
            except requests.RequestException as exc:
                self.counts["error"] += 1
                self.failures.append((time.strftime("%T"), path, "error", str(exc)[:300]))
            time.sleep(0.1)

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(90)


def token(sub: str) -> str:
    return docker("exec", f"{PROJECT}-nexus-api-1", "kailash-app", "token", "--sub", sub)


def classify(tok: str) -> int:
    return requests.post(f"{URL}/workflows/classify/execute", verify=str(CA), timeout=60,
                         headers={"Authorization": f"Bearer {tok}"},
                         json={"inputs": {"description": "office chair"}}).status_code


def psql_ok(password: str) -> bool:
    proc = subprocess.run(
        ["docker", "exec", "-e", f"PGPASSWORD={password}", f"{PROJECT}-postgresql-1", "psql",
         "-h", "/var/run/postgresql", "-U", "kailash_user", "-d", "kailash", "-Atc", "select 1"],
        capture_output=True, text=True, check=False)
    return proc.returncode == 0 and proc.stdout.strip() == "1"


def redis_ok(user: str, password: str) -> bool:
    proc = subprocess.run(
        ["docker", "exec", "-e", f"REDISCLI_AUTH={password}", f"{PROJECT}-redis-1", "redis-cli",
         "--no-auth-warning", "--user", user, "PING"],
        capture_output=True, text=True, check=False)
    return proc.stdout.strip() == "PONG"


def app_ids() -> dict[str, str]:
    """The app's containers and PgBouncer's (its user list is reloaded, not recreated)."""
    return {r["Name"]: container_state(r["Name"])["id"] for r in containers()
            if r["Service"].startswith("nexus-") or r["Service"] == "pgbouncer"}


def test_rotation_under_load_loses_no_request(healthy_after):
    # the stack as this checkout deploys it (the rotation refuses app containers of an older image)
    run = deploy()
    assert run.rc == 0, run.output[-4000:]
    old = secrets()
    old_token = token("rotation-old")
    assert classify(old_token) == 200

    # --check: shows what would change, changes nothing
    ids = {**app_ids(), **datastores()}
    check = deploy("--check", playbook="playbooks/rotate_secrets.yml")
    assert check.rc == 0, check.output[-4000:]
    assert "Would rotate chromadb_token, nexus_jwt_secret, postgresql_password" in check.output
    unchanged = secrets() == old
    assert unchanged, "--check changed the secrets"
    assert {**app_ids(), **datastores()} == ids

    with Load(old_token) as load:
        time.sleep(5)
        run = deploy(playbook="playbooks/rotate_secrets.yml")
        time.sleep(5)
    assert run.rc == 0, run.output[-4000:]
    assert sum(load.counts.values()) > 100, load.counts
    assert load.failures == [], (load.counts, load.failures[:20])
    # at most one close per client connection and edge reload (each reload closes the old
    # workers' idle connections once)
    # (the app role's task since issue #12: "TASK [nexus : Reload the edge's NGINX ...]")
    reloads = run.output.count("Reload the edge's NGINX (graceful)]")
    assert reloads > 0, "the rotation did not reload the edge"
    assert len(load.retried) <= reloads * len(load.threads), (reloads, load.retried)
    print(f"rotation under load: {load.counts}, {reloads} edge reloads, "
          f"{len(load.retried)} requests resent after an idle close: {load.retried}")

    new = secrets()
    assert {k for k in values(old) if new[k] != old[k]} == set(ROTATED)
    assert "pending" not in new.get("kailash_rotation", {})
    # the old JWT secret stays accepted for the grace period (an earlier rotation's too, until
    # its own grace ends); never the current one
    grace = {e["secret"]: e["until"] for e in new["kailash_rotation"]["jwt_previous"]}
    assert grace.get(old["nexus_jwt_secret"], 0) > time.time() + 3600, "old JWT secret not in grace"
    assert new["nexus_jwt_secret"] not in grace, "the current JWT secret listed as previous"
    same = yaml.safe_load((HOST_STORE / "secrets.yml").read_text()) == new
    assert same, "the copy with the stack differs from the control node's store"
    for value in list(values(new).values()) + list(values(old).values()):
        assert value not in run.output

    assert psql_ok(new["postgresql_password"]) and not psql_ok(old["postgresql_password"])
    assert redis_ok("default", new["redis_password"])
    assert not redis_ok("default", old["redis_password"])
    assert redis_ok("kailash-admin", new["redis_admin_password"])
    assert not redis_ok("kailash-admin", old["redis_admin_password"])
    assert classify(old_token) == 200  # signed with the old secret: accepted during the grace
    assert classify(token("rotation-new")) == 200
    assert classify(old_token[:-4] + "AAAA") == 401
    assert all_healthy(), containers()

    # the next plain deploy keeps the app containers the rotation started (same definitions)
    # and the PgBouncer that reloaded its user list
    ids = app_ids()
    assert any("pgbouncer" in name for name in ids), ids
    run = deploy()
    assert run.rc == 0, run.output[-4000:]
    assert app_ids() == ids
    assert all_healthy(), containers()
    assert classify(old_token) == 200
