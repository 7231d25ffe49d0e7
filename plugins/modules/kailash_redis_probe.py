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


# The probe itself lives in the package module_utils/kailash_probe_kinds/ (kind "redis",
# its redis.py), shared with kailash_probes, which runs several probes in one module run.
from ansible.module_utils.kailash_probe import run_probe  # noqa: E402,F401 (for the tests)
from ansible.module_utils.kailash_probe_kinds import KINDS, probe_main  # noqa: E402

ARGUMENT_SPEC = KINDS["redis"].spec
FACTS = KINDS["redis"].facts
make_check = KINDS["redis"].make_check


def main() -> None:
    probe_main("redis")


if __name__ == "__main__":
    main()
