#!/usr/bin/python
"""Ansible module kailash_redis_probe: is a Redis server up, loading, or a broken replica?"""

from __future__ import annotations

DOCUMENTATION = r"""
module: kailash_redis_probe
short_description: Probe a Redis server (AUTH, PING, INFO) and report up, degraded or down
description:
  - Opens one connection to a Redis server, authenticates (C(AUTH user password) for an
    ACL user, C(AUTH password) otherwise), sends C(PING) and C(INFO), and reports the
    server's state as data.
  - RV(status=degraded) when the server answers but cannot serve yet or is a replica
    without a working master link, namely when it is loading its dataset (C(loading:1)
    in C(INFO), or a C(-LOADING) error reply), when it is a replica whose
    C(master_link_status) is not C(up), or when a full sync with its master is in
    progress. RV(error) then says why.
  - RV(status=down) when it cannot be reached, does not answer within O(timeout),
    refuses the credentials, or answers C(PING) with another error.
  - Speaks the Redis protocol (RESP2) itself over a TCP socket, so no Python library is
    needed on the host that runs it.
version_added: "0.1.0"
author:
  - Kailash platform team
options:
  host:
    description: Host name or IP address of the server.
    type: str
    default: localhost
    aliases: [login_host]
  port:
    description: TCP port of the server.
    type: int
    default: 6379
    aliases: [login_port]
  user:
    description:
      - ACL user name. When set, the probe sends C(AUTH user password); when not set
        and O(password) is set, C(AUTH password) (the C(default) user).
    type: str
    aliases: [login_user]
  password:
    description: Password for C(AUTH). No C(AUTH) is sent when not set.
    type: str
    aliases: [login_password]
extends_documentation_fragment:
  - kailash_probe
  - action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
seealso:
  - module: community.general.redis_info
"""

EXAMPLES = r"""
- name: Probe the stack's Redis through its published port
  kailash_redis_probe:
    host: 127.0.0.1
    port: "{{ redis_host_port }}"
    user: kailash
    password: "{{ redis_password }}"
    timeout: 2
    retries: 3
    backoff: 0.5
  register: redis_probe
  failed_when: redis_probe.status == 'down'

- name: Wait until Redis has loaded its dataset
  kailash_redis_probe:
    port: 6379
    password: "{{ redis_password }}"
  register: redis_probe
  until: redis_probe.status == 'up'
  retries: 30
  delay: 2

- name: Warn when Redis memory is nearly full
  ansible.builtin.debug:
    msg: "Redis uses {{ (redis_probe.memory_ratio * 100) | round(1) }}% of maxmemory"
  when: redis_probe.memory_ratio is not none and redis_probe.memory_ratio > 0.9
"""

RETURN = r"""
status:
  description:
    - V(up), V(degraded) (loading, replica link down, replica sync in progress) or
      V(down).
  returned: always
  type: str
  sample: up
latency_ms:
  description: Milliseconds the reported attempt took (connect, AUTH, PING, INFO).
  returned: always
  type: float
  sample: 1.482
version:
  description: C(redis_version) from C(INFO); null when down.
  returned: always
  type: str
  sample: 7.0.15
error:
  description:
    - Why the server is not up (connection error, authentication error, the
      C(-LOADING) reply, the replica link state); null when up.
  returned: always
  type: str
  sample: "authentication failed: WRONGPASS invalid username-password pair or user is disabled."
attempts:
  description: Attempts made (1 + the retries used).
  returned: always
  type: int
  sample: 1
role:
  description: C(master) or C(slave) (a replica); null when unknown.
  returned: always
  type: str
  sample: master
loading:
  description: Whether the server is loading its dataset; null when unknown.
  returned: always
  type: bool
  sample: false
master_link_status:
  description: For a replica, C(up) or C(down); null otherwise.
  returned: always
  type: str
  sample: null
connected_clients:
  description: Client connections, including this one.
  returned: always
  type: int
  sample: 3
memory_used:
  description: C(used_memory) in bytes.
  returned: always
  type: int
  sample: 1052640
maxmemory:
  description: C(maxmemory) in bytes; V(0) means no limit.
  returned: always
  type: int
  sample: 268435456
maxmemory_policy:
  description: The eviction policy.
  returned: always
  type: str
  sample: allkeys-lru
memory_ratio:
  description: RV(memory_used) / RV(maxmemory); null without a limit.
  returned: always
  type: float
  sample: 0.0039
"""

from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.kailash_probe import (  # noqa: E402
    DEGRADED,
    DOWN,
    UP,
    Deadline,
    Outcome,
    open_tcp,
    probe_argument_spec,
    probe_param_errors,
    ratio,
    run_probe,
)
from ansible.module_utils.kailash_resp import (  # noqa: E402
    RespClient,
    RespReplyError,
    parse_info,
    redis_facts,
    redis_health,
)

ARGUMENT_SPEC = probe_argument_spec({
    "host": {"type": "str", "default": "localhost", "aliases": ["login_host"]},
    "port": {"type": "int", "default": 6379, "aliases": ["login_port"]},
    "user": {"type": "str", "aliases": ["login_user"]},
    "password": {"type": "str", "no_log": True, "aliases": ["login_password"]},
})

FACTS: dict[str, Any] = {
    "role": None, "loading": None, "master_link_status": None, "connected_clients": None,
    "memory_used": None, "maxmemory": None, "maxmemory_policy": None, "memory_ratio": None,
}


def make_check(params: dict[str, Any]) -> Callable[[Deadline], Outcome]:
    def check(deadline: Deadline) -> Outcome:
        sock = open_tcp(params["host"], params["port"], deadline)
        try:
            client = RespClient(sock, deadline)
            if params["password"] is not None:
                auth = ["AUTH", params["password"]]
                if params["user"]:
                    auth.insert(1, params["user"])
                try:
                    client.command(*auth)
                except RespReplyError as exc:
                    return Outcome(DOWN, error=f"authentication failed: {exc.text}")
            loading = False
            try:
                client.command("PING")
            except RespReplyError as exc:
                if exc.code != "LOADING":
                    prefix = "authentication required" if exc.code == "NOAUTH" else "PING failed"
                    return Outcome(DOWN, error=f"{prefix}: {exc.text}")
                loading = True
            try:
                info = parse_info(client.command("INFO"))
            except RespReplyError as exc:
                if loading or exc.code == "LOADING":
                    return Outcome(DEGRADED, error=exc.text, facts={"loading": True})
                # PING works, INFO is refused (an ACL without +info): up, nothing more known
                return Outcome(UP, error=f"INFO refused: {exc.text}")
            status, reason = redis_health(info, ping_loading=loading)
            facts = redis_facts(info, loading=loading)
            facts["memory_ratio"] = ratio(facts["memory_used"], facts["maxmemory"])
            return Outcome(status, version=info.get("redis_version"), error=reason, facts=facts)
        finally:
            sock.close()

    return check


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    errors = probe_param_errors(module.params)
    if not 0 < module.params["port"] < 65536:
        errors.append(f"port must be 1-65535, got {module.params['port']}")
    if module.params["user"] and module.params["password"] is None:
        errors.append("user needs password (AUTH user password)")
    if errors:
        module.fail_json(msg="; ".join(errors))
    module.exit_json(**run_probe(make_check(module.params), module.params, FACTS))


if __name__ == "__main__":
    main()
