"""Options shared by the kailash_*_probe modules (see plugins/module_utils/kailash_probe.py).

Found by ansible-doc and ansible-lint through ansible.cfg
``doc_fragment_plugins = plugins/doc_fragments`` (or ANSIBLE_DOC_FRAGMENT_PLUGINS).
"""

from __future__ import annotations


class ModuleDocFragment:
    # timeout / retries / backoff: every probe
    DOCUMENTATION = r"""
options:
  timeout:
    description:
      - Seconds one attempt may take, connect, handshake, authentication and query
        together.
      - A service that accepts the connection but never answers is reported as
        RV(status=down) after this time, not later.
    type: float
    default: 5.0
  retries:
    description:
      - How many more attempts to make after an attempt that found the service down.
      - A V(degraded) answer is an answer and is not retried.
    type: int
    default: 0
  backoff:
    description:
      - Seconds to wait before the first retry; the wait doubles before each
        further retry (V(0.5), V(1), V(2), ...).
    type: float
    default: 0.5
notes:
  - The probe is read-only, so it runs in check mode too and always returns
    C(changed=false).
  - An unreachable, failing or slow service is reported as data (RV(status),
    RV(error)), not as a task failure; decide in the play with C(failed_when)
    or C(until). The module fails only for bad arguments or a missing Python library.
"""

    # validate_certs / ca_path: probes that speak HTTPS
    TLS = r"""
options:
  validate_certs:
    description:
      - Verify the server certificate (chain and host name) when the URL is C(https).
      - A failed verification is reported as RV(status=down) with the TLS reason
        (expired certificate, unknown CA, host name mismatch) in RV(error).
    type: bool
    default: true
  ca_path:
    description:
      - PEM file (or C(c_rehash) directory) of the CA certificates to trust instead of
        the system store.
    type: path
"""
