"""Dev/prod parity: the Kubernetes ConfigMaps and Secrets carry exactly the configs the
Docker dev stack renders (its plan phase, tests/k8s/dev_plan.yml, same inventory), and
the containers use the dev stack's environment variable names."""

from __future__ import annotations

import base64
import re

from conftest import Session

APP_ENV_NAMES = {
    "NEXUS_ENV",
    "NEXUS_JWT_SECRET_FILE",
    "LOG_LEVEL",
    "NEXUS_API_PORT",
    "NEXUS_MCP_PORT",
    "NEXUS_WEBSOCKET_PORT",
    "POSTGRES_HOST",
    "POSTGRES_PORT",
    "POSTGRES_DB",
    "POSTGRES_USER",
    "POSTGRES_PASSWORD_FILE",
    "DATAFLOW_POOL_SIZE",
    "REDIS_HOST",
    "REDIS_PORT",
    "REDIS_PASSWORD_FILE",
    "NEXUS_REDIS_CACHE_DB",
    "NEXUS_REDIS_BROKER_DB",
    "NEXUS_CACHE_TTL",
    "CHROMADB_URL",
    "CHROMADB_TOKEN_FILE",
    "NEO4J_URL",
    "NEO4J_USER",
    "NEO4J_PASSWORD_FILE",
    "NEXUS_WORKER_CONCURRENCY",
}


def _settings(text: str, sep: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(sep)
            out[key.strip()] = value.strip()
    return out


def _env(text: str) -> dict[str, str]:
    return {k: v.strip("'") for k, v in _settings(text, "=").items()}


def _secret(k8s: Session, prefix: str, key: str) -> str:
    data = k8s.renders["production"].generated("Secret", prefix)["data"][key]
    return base64.b64decode(data).decode()


def test_postgresql_conf_is_the_dev_stacks(k8s: Session, prod) -> None:
    dev = k8s.dev_plan
    cm = prod.generated("ConfigMap", "postgresql-config")["data"]
    assert cm["postgresql.conf"].rstrip("\n") == dev["postgresql.conf"].rstrip("\n")
    assert cm["pg_hba.conf"].rstrip("\n") == dev["pg_hba.conf"].rstrip("\n")
    settings = _settings(cm["postgresql.conf"], "=")
    # ADR-002 at its sizes (4Gi request / 8Gi limit)
    assert settings["shared_buffers"] == "'1GB'"
    assert settings["effective_cache_size"] == "'4GB'"
    assert settings["maintenance_work_mem"] == "'256MB'"
    assert settings["max_connections"] == "200"


def test_redis_conf_is_the_dev_stacks(k8s: Session, prod) -> None:
    dev_lines = k8s.dev_plan["redis.conf"].rstrip("\n").splitlines()
    cm_lines = (
        prod.generated("ConfigMap", "redis-config")["data"]["redis.conf"].rstrip("\n").splitlines()
    )
    users = _secret(k8s, "redis-users", "users.conf").rstrip("\n").splitlines()
    assert cm_lines[-1] == "include /etc/redis/users/users.conf"
    k8s_lines = [line for line in cm_lines[:-2]] + users
    assert sorted(k8s_lines) == sorted(dev_lines)
    assert not any(line.startswith("user ") for line in cm_lines), "passwords in the ConfigMap"
    settings = _settings("\n".join(cm_lines), " ")
    assert settings["maxmemory"] == "1gb"
    assert settings["maxmemory-policy"] == "allkeys-lru"
    assert settings["save"] == "900 1 300 10 60 10000"


def test_chromadb_configs_are_the_dev_stacks(k8s: Session, prod) -> None:
    cm = prod.generated("ConfigMap", "chromadb-config")["data"]
    assert cm["config.yaml"].rstrip("\n") == k8s.dev_plan["chromadb/config.yaml"].rstrip("\n")
    assert cm["nginx.conf"].rstrip("\n") == k8s.dev_plan["chromadb/nginx.conf"].rstrip("\n")
    token = _secret(k8s, "chromadb-gate-token", "chromadb_gate_token")
    assert token.rstrip("\n") == k8s.dev_plan["chromadb/token"].rstrip("\n")
    # the gate includes the token map from where the Secret is mounted
    assert "include /run/secrets/chromadb_gate_token;" in cm["nginx.conf"]


def test_pgbouncer_ini_and_userlist_are_the_dev_stacks(k8s: Session, prod) -> None:
    cm = prod.generated("ConfigMap", "pgbouncer-config")["data"]
    assert cm["pgbouncer.ini"].rstrip("\n") == k8s.dev_plan["pgbouncer.ini"].rstrip("\n")
    users = _secret(k8s, "pgbouncer-userlist", "userlist.txt")
    assert users.rstrip("\n") == k8s.dev_plan["pgbouncer/userlist.txt"].rstrip("\n")
    settings = _settings(cm["pgbouncer.ini"], "=")
    # production: 2 replicas within max_connections 200 - 3 superuser slots - 10 for admin
    assert settings["pool_mode"] == "session"
    assert settings["auth_type"] == "scram-sha-256"
    assert int(settings["default_pool_size"]) == 84 and int(settings["reserve_pool_size"]) == 9
    assert 2 * int(settings["max_db_connections"]) <= 200 - 3 - 10
    # the app reaches PostgreSQL through it; PostgreSQL admits PgBouncer, not the app
    env = prod.generated("ConfigMap", "nexus-config")["data"]
    assert (env["POSTGRES_HOST"], env["POSTGRES_PORT"]) == ("pgbouncer", "6432")
    policy = prod.get("NetworkPolicy", "postgresql-ingress")["spec"]["ingress"][0]["from"]
    assert {"app.kubernetes.io/name": "pgbouncer"}.items() <= policy[0]["podSelector"][
        "matchLabels"
    ].items()
    assert not any(
        f.get("podSelector", {}).get("matchLabels", {}).get("kailash.io/tier") == "app"
        for f in policy
    )
    pgb = prod.get("NetworkPolicy", "pgbouncer-ingress")["spec"]["ingress"]
    assert pgb == [{"from": [{"podSelector": {"matchLabels": {"kailash.io/tier": "app"}}}],
                    "ports": [{"protocol": "TCP", "port": 6432}]}]


def test_neo4j_settings_are_the_dev_stacks(k8s: Session, prod) -> None:
    cm = prod.generated("ConfigMap", "neo4j-env")["data"]
    dev = _env(k8s.dev_plan["neo4j.env"])
    assert cm == dev
    assert cm["NEO4J_server_memory_heap_initial__size"] == "2g"
    assert cm["NEO4J_server_memory_heap_max__size"] == "4g"
    assert cm["NEO4J_server_memory_pagecache_size"] == "2g"
    dev_env = k8s.dev_plan["compose"]["neo4j"]["services"]["neo4j"]["environment"]
    container = prod.get("StatefulSet", "neo4j")["spec"]["template"]["spec"]["containers"][0]
    assert set(dev_env) <= {e["name"] for e in container["env"]}


def test_postgresql_container_env_names_are_the_dev_stacks(k8s: Session, prod) -> None:
    dev_env = k8s.dev_plan["compose"]["postgresql"]["services"]["postgresql"]["environment"]
    container = prod.get("StatefulSet", "postgresql")["spec"]["template"]["spec"]["containers"][0]
    k8s_env = {e["name"]: e["value"] for e in container["env"]}
    assert set(dev_env) == set(k8s_env)
    for name in ("POSTGRES_USER", "POSTGRES_DB", "POSTGRES_PASSWORD_FILE"):
        assert k8s_env[name] == dev_env[name]
    assert (
        container["args"]
        == k8s.dev_plan["compose"]["postgresql"]["services"]["postgresql"]["command"]
    )


def test_app_environment_is_the_dev_stacks(k8s: Session, prod) -> None:
    """The app's ConfigMap is the dev stack's environment: with the cluster's monitoring
    (kailash_k8s_monitoring plain, the default) the dev stack's with a Prometheus and the
    Celery exporter planned (the app's metrics port and task events on); without it (none)
    the dev stack's of the same inventory."""
    cm = prod.generated("ConfigMap", "nexus-config")["data"]
    dev_services = k8s.dev_plan_monitored["compose"]["nexus"]["services"]
    assert set(dev_services) == {"nexus-api", "nexus-websocket", "nexus-worker"}
    plain_dev = k8s.dev_plan["compose"]["nexus"]["services"]
    none = k8s.renders["none"].generated("ConfigMap", "nexus-config")["data"]
    for name, svc in plain_dev.items():
        assert none == {k: str(v) for k, v in svc["environment"].items()}, name
    assert {"NEXUS_METRICS_PORT", "NEXUS_CELERY_EVENTS"} <= set(cm) - set(none)
    for name, svc in dev_services.items():
        assert cm == {k: str(v) for k, v in svc["environment"].items()}, name
        dep = prod.get("Deployment", name)
        container = dep["spec"]["template"]["spec"]["containers"][0]
        assert container["envFrom"][0]["configMapRef"]["name"].startswith("nexus-config-")
        assert container["args"] == svc["command"]
        assert dep["spec"]["replicas"] == svc["deploy"]["replicas"]
    assert set(cm) >= APP_ENV_NAMES


def test_app_secret_files_exist_where_the_env_points(prod) -> None:
    cm = prod.generated("ConfigMap", "nexus-config")["data"]
    files = {v for k, v in cm.items() if k.endswith("_FILE") and v}
    for name in ("nexus-api", "nexus-websocket", "nexus-worker"):
        spec = prod.get("Deployment", name)["spec"]["template"]["spec"]
        mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "secrets")
        items = next(v for v in spec["volumes"] if v["name"] == "secrets")["secret"]["items"]
        mounted = {f"{mount['mountPath']}/{i['path']}" for i in items}
        assert files <= mounted, files - mounted
        secret = prod.generated("Secret", "kailash-secrets")["data"]
        assert {i["key"] for i in items} <= set(secret)


def test_memory_limits_are_the_dev_stacks(k8s: Session, prod) -> None:
    """The dev stack's mem_limit/mem_reservation (bytes) equal the pods' limits/requests."""
    factor = {"Gi": 2**30, "Mi": 2**20}

    def to_bytes(q: str) -> int:
        m = re.fullmatch(r"(\d+)(Gi|Mi)", q)
        assert m, q
        return int(m.group(1)) * factor[m.group(2)]

    pairs = [
        ("postgresql", "postgresql", "StatefulSet", "postgresql"),
        ("redis", "redis", "StatefulSet", "redis"),
        ("neo4j", "neo4j", "StatefulSet", "neo4j"),
        ("chromadb", "chromadb-server", "StatefulSet", "server"),
        ("chromadb", "chromadb", "StatefulSet", "gate"),
        ("nexus", "nexus-api", "Deployment", "api"),
    ]
    for role, service, kind, container in pairs:
        dev = k8s.dev_plan["compose"][role]["services"][service]
        name = role if role != "nexus" else service
        spec = prod.get(kind, name)["spec"]["template"]["spec"]
        res = next(c for c in spec["containers"] if c["name"] == container)["resources"]
        assert to_bytes(res["limits"]["memory"]) == dev["mem_limit"], service
        assert to_bytes(res["requests"]["memory"]) == dev["mem_reservation"], service
