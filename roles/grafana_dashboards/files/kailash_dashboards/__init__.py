"""Kailash's Grafana dashboards as code (issue #13), built with grafanalib.

Each module in ``boards/`` is one dashboard: it defines ``UID`` and ``build()``, returning a
grafanalib ``Dashboard``. The builder (``python -m kailash_dashboards``, run from
``roles/grafana_dashboards/files``) discovers the board modules, gives their panels ids and
writes one JSON file per dashboard; nothing here lists the boards or the services. The
generated JSON is committed under ``roles/grafana_dashboards/files/generated`` so that the
role and its users never run Python; tests/unit/test_dashboards.py checks that a rebuild is
byte-identical.
"""
