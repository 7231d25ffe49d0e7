"""The backup and restore-drill CronJobs (roles/kailash_k8s/templates/base/ops.yaml.j2): the
ConfigMap kailash-backup-config (config.json), its mounts, the Secret keys it reads, the
Services it names and the NetworkPolicies on its way, over the built manifests (offline;
that the image and config work against real datastores is tests/backup/test_ops_image.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import REPO, Render, Session
from kailash_testlib import load_backup_core

ENVS = ["production", "staging"]
JOBS = ["kailash-backup", "kailash-restore-drill"]
CONFIG_DIR = "/etc/kailash-backup"


@pytest.fixture(params=ENVS)
def render(request, k8s: Session) -> Render:
    return k8s.renders[request.param]


def pod_spec(job: dict[str, Any]) -> dict[str, Any]:
    return job["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def config(render: Render) -> dict[str, Any]:
    cm = render.generated("ConfigMap", "kailash-backup-config")
    assert set(cm["data"]) == {"config.json"}
    return json.loads(cm["data"]["config.json"])


def secret_files(cfg: dict[str, Any]) -> list[str]:
    files = [cfg["encryption_key_file"]]
    for conf in cfg["datastores"].values():
        files += [v for k, v in conf.items() if k.endswith("_file")]
    return files


def test_config_map_holds_a_valid_network_config(render: Render, tmp_path: Path) -> None:
    """config.json passes the core's own validation (kailash_backup.load_config), with its
    secret files replaced by dummies; backend local, every datastore by host."""
    cfg = config(render)
    assert cfg["backend"] == "local"
    assert cfg["services"] == ["postgresql", "redis", "chromadb"]
    assert cfg["backup_root"].startswith("/backups/")
    assert cfg["report_dir"].startswith("/backups/") and cfg["encryption_key_file"]
    text = json.dumps(cfg)
    for i, path in enumerate(secret_files(cfg)):
        dummy = tmp_path / f"s{i}"
        dummy.write_text("dummy-secret-value\n")
        text = text.replace(json.dumps(path), json.dumps(str(dummy)))
    loaded = load_backup_core().load_config(json.loads(text), "config.json")
    assert loaded["encryption_key"] == "dummy-secret-value"
    assert loaded["datastores"]["postgresql"]["password"] == "dummy-secret-value"
    assert loaded["datastores"]["chromadb"]["token"] == "dummy-secret-value"


def test_both_cronjobs_mount_the_config_map(render: Render) -> None:
    name = render.generated("ConfigMap", "kailash-backup-config")["metadata"]["name"]
    for job_name in JOBS:
        job = render.get("CronJob", job_name)
        spec = pod_spec(job)
        container = spec["containers"][0]
        assert "--config" in container["command"]
        assert container["command"][container["command"].index("--config") + 1] == (
            f"{CONFIG_DIR}/config.json"
        )
        mount = next(m for m in container["volumeMounts"] if m["mountPath"] == CONFIG_DIR)
        volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
        assert volume["configMap"]["name"] == name, job_name
        assert mount.get("readOnly") is True


def test_every_secret_file_is_a_mounted_secret_key(render: Render) -> None:
    cfg = config(render)
    secret = render.generated("Secret", "kailash-secrets")["data"]
    for job_name in JOBS:
        spec = pod_spec(render.get("CronJob", job_name))
        container = spec["containers"][0]
        mounted: dict[str, str] = {}
        for mount in container["volumeMounts"]:
            volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
            if "secret" in volume:
                for item in volume["secret"]["items"]:
                    mounted[f"{mount['mountPath']}/{item['path']}"] = item["key"]
        for path in secret_files(cfg):
            assert path in mounted, f"{job_name}: {path} is not a mounted Secret key"
            assert mounted[path] in secret, f"{mounted[path]} is not a key of kailash-secrets"
        # only what the config reads
        assert sorted(mounted) == sorted(set(secret_files(cfg)))


def _container_port(render: Render, service: dict[str, Any], port: dict[str, Any]) -> int:
    target = port.get("targetPort", port["port"])
    if isinstance(target, int):
        return target
    selector = service["spec"]["selector"]
    for doc in render.objects("StatefulSet") + render.objects("Deployment"):
        labels = doc["spec"]["template"]["metadata"]["labels"]
        if selector.items() <= labels.items():
            for c in doc["spec"]["template"]["spec"]["containers"]:
                for p in c.get("ports", []):
                    if p.get("name") == target:
                        return p["containerPort"]
    raise AssertionError(f"Service {service['metadata']['name']}: no pod port {target}")


def _pods_of(render: Render, service: dict[str, Any]) -> dict[str, str]:
    selector = service["spec"]["selector"]
    for doc in render.objects("StatefulSet") + render.objects("Deployment"):
        labels = doc["spec"]["template"]["metadata"]["labels"]
        if selector.items() <= labels.items():
            return labels
    raise AssertionError(f"Service {service['metadata']['name']} selects no pod")


def _egress_allowed(render: Render, src: dict[str, str], dst: dict[str, str], port: int) -> bool:
    for pol in render.objects("NetworkPolicy"):
        if not pol["spec"]["podSelector"].get("matchLabels", {}).items() <= src.items():
            continue
        for rule in pol["spec"].get("egress", []):
            ports = {p["port"] for p in rule.get("ports", [])}
            for to in rule.get("to", []):
                sel = to.get("podSelector", {}).get("matchLabels")
                if sel is not None and sel.items() <= dst.items() and port in ports:
                    return True
    return False


def _ingress_allowed(render: Render, src: dict[str, str], dst: dict[str, str], port: int) -> bool:
    for pol in render.objects("NetworkPolicy"):
        if not pol["spec"]["podSelector"].get("matchLabels", {}).items() <= dst.items():
            continue
        for rule in pol["spec"].get("ingress", []):
            ports = {p["port"] for p in rule.get("ports", [])}
            for frm in rule.get("from", []):
                sel = frm.get("podSelector", {}).get("matchLabels")
                if sel is not None and sel.items() <= src.items() and port in ports:
                    return True
    return False


def test_hosts_are_services_of_the_tree_and_policies_let_the_jobs_in(render: Render) -> None:
    """Each datastore host is a Service name of this namespace with the configured port;
    the ops pods may leave towards its pods on that port, and its pods let them in."""
    cfg = config(render)
    for svc, conf in cfg["datastores"].items():
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", conf["host"]), conf["host"]
        service = render.get("Service", conf["host"])
        port = next((p for p in service["spec"]["ports"] if p["port"] == conf["port"]), None)
        assert port is not None, f"{svc}: Service {conf['host']} has no port {conf['port']}"
        pod_port = _container_port(render, service, port)
        dst = _pods_of(render, service)
        for job_name in JOBS:
            src = render.get("CronJob", job_name)["spec"]["jobTemplate"]["spec"]["template"][
                "metadata"
            ]["labels"]
            assert _egress_allowed(render, src, dst, pod_port), (job_name, svc)
            assert _ingress_allowed(render, src, dst, pod_port), (job_name, svc)


def test_ops_image_user_and_name_match_the_role(render: Render) -> None:
    """The CronJobs run the image playbooks/ops_image.yml builds, as the uid it creates."""
    dockerfile = (REPO / "roles/kailash_backup/files/ops/Dockerfile").read_text()
    k8s_vars = yaml.safe_load((REPO / "roles/kailash_k8s/vars/main.yml").read_text())
    platform = yaml.safe_load((REPO / "roles/kailash/defaults/main.yml").read_text())
    uid = k8s_vars["kailash_k8s__ops_uid"]
    assert f"--uid {uid} " in dockerfile and f"USER {uid}:{uid}" in dockerfile
    images = render.built_text
    for job_name in JOBS:
        spec = pod_spec(render.get("CronJob", job_name))
        assert spec["securityContext"]["runAsUser"] == uid
        image = spec["containers"][0]["image"]
        name = platform["kailash_ops_image"].rsplit(":", 1)[0]
        assert image.startswith(name + (":" if render.name == "production" else "@")), image
        assert spec["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
        assert any(m["mountPath"] == "/tmp" for m in spec["containers"][0]["volumeMounts"])
    assert "NOT YET PROVIDED" not in images
