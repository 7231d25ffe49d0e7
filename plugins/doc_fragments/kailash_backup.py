"""Options shared by kailash_backup, kailash_restore and kailash_restore_drill
(see plugins/module_utils/kailash_backup/ansible_glue.py)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  backup_root:
    description:
      - Directory holding the backup sets, one sub-directory per run (C(20261126T141502Z)),
        on the host that runs the module (the Docker host, or the pod's volume).
    type: path
    required: true
  project:
    description:
      - Compose project of the stack; with O(backend=docker) the containers are found by
        their C(com.docker.compose.project) and C(com.docker.compose.service) labels.
      - Also the prefix of a drill's throwaway containers (C(<project>-drill-<service>)).
    type: str
    default: kailash
  backend:
    description:
      - Where the datastores' own tools run.
      - V(docker) runs them with C(docker exec) in the service's container (so they always
        match the server's version), and work on stopped data in a helper container of
        the same image with C(--volumes-from) the service container.
      - V(local) runs the same commands as local processes, for a Kubernetes pod or CronJob
        that has the tools and the data; stopping and starting a service then needs its
        C(stop_command)/C(start_command) (e.g. C(kubectl scale)).
    type: str
    default: docker
    choices: [docker, local]
  services:
    description:
      - Datastores to act on, out of V(postgresql), V(redis), V(chromadb), V(neo4j).
      - A service without a container is skipped by a backup (reported in
        RV(kailash_backup:not_deployed)), and refused by a restore.
    type: list
    elements: str
    default: [postgresql, redis, chromadb, neo4j]
  encryption_key:
    description:
      - Secret string the AES-256-GCM key is derived from (HKDF-SHA256). A backup with it
        encrypts every file; a restore or drill of an encrypted set needs the same key (its
        fingerprint is in the manifest, so a wrong key is refused before any change).
      - Never logged. Needs the C(cryptography) Python library.
    type: str
  docker_cli:
    description: The docker client to run (O(backend=docker)).
    type: str
    default: docker
  datastores:
    description:
      - How to reach each datastore, as one mapping datastore -> settings (the keys of
        O(postgresql); the secrets go in O(datastore_secrets)). This is what the
        playbooks pass (they name no datastore - roles/kailash_backup builds it from each
        datastore role's C(vars/backup.yml)).
      - A datastore's own option (O(postgresql), ...) wins key by key over its entry here.
      - An unknown datastore or key, or a value of the wrong type, fails naming it.
    type: dict
    default: {}
  datastore_secrets:
    description:
      - The secret settings (C(password), C(token)) of O(datastores), as datastore -> settings.
        Never logged.
    type: dict
    default: {}
  postgresql:
    description:
      - How to reach PostgreSQL. Commands run over the Unix socket in the container.
    type: dict
    default: {}
    suboptions: &conn
      container:
        description: Container name (default - found by the Compose labels).
        type: str
      host:
        description:
          - O(backend=local) network mode - the server's host name or address (e.g. its
            Kubernetes Service). PostgreSQL is then dumped over TCP, Redis with
            C(redis-cli --rdb), ChromaDB exported over its HTTP API (C(port) is then the
            token gate's, C(8000)); an RDB cannot be restored this way.
        type: str
      token:
        description: ChromaDB network mode - the API token (header C(X-Chroma-Token)), never logged.
        type: str
      replace_collections:
        description:
          - ChromaDB network mode, restore - delete and re-create collections that exist and
            hold records (default false - such a restore is refused before any change).
        type: bool
      image:
        description:
          - Image for a drill's throwaway container (default - the service container's image).
        type: str
      user:
        description:
          - Login role (PostgreSQL superuser, e.g. C(kailash_user)); for Redis the ACL user
            allowed to BGSAVE and CONFIG (C(kailash-admin); the application user cannot).
        type: str
      password:
        description: Password of O(postgresql.user). Never logged; passed through the environment.
        type: str
      port:
        description: Port inside the container (5432, 6379, Chroma server 8001, Bolt 7687).
        type: int
      database:
        description: PostgreSQL - database to connect to for queries (C(kailash)).
        type: str
      databases:
        description:
          - PostgreSQL / Neo4j - databases to back up (default - every database but templates
            and C(postgres); Neo4j C(neo4j), C(system)).
        type: list
        elements: str
      socket_dir:
        description: PostgreSQL - Unix socket directory (C(/var/run/postgresql)).
        type: str
      restore_globals:
        description:
          - PostgreSQL - replay C(pg_dumpall --globals-only) before the databases (default true).
        type: bool
      data_path:
        description: ChromaDB - persistent directory in the server container (C(/data)).
        type: str
      start_timeout:
        description: Neo4j - seconds to wait for the server after the maintenance window.
        type: float
      stop_command:
        description: O(backend=local) - command (argv) that stops the service.
        type: list
        elements: str
      start_command:
        description: O(backend=local) - command (argv) that starts the service.
        type: list
        elements: str
      health_command:
        description: O(backend=local) - command (argv) that exits 0 when the service is up.
        type: list
        elements: str
  redis:
    description:
      - How to reach Redis (same keys as O(postgresql); O(redis.user) is the admin ACL user).
    type: dict
    default: {}
    suboptions: *conn
  chromadb:
    description:
      - How to reach the Chroma server (the C(chromadb-server) container, not the token gate).
    type: dict
    default: {}
    suboptions: *conn
  neo4j:
    description: How to reach Neo4j (cypher-shell and neo4j-admin of its image).
    type: dict
    default: {}
    suboptions: *conn
requirements:
  - the docker client on the host that runs the module (O(backend=docker))
  - cryptography (only for encrypted sets)
notes:
  - The module runs on the Docker host (C(ansible_connection=local) for the local inventory).
"""
