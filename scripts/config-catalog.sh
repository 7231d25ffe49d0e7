#!/usr/bin/env bash
# Regenerates plugins/filter/catalog/{postgresql15,redis7}.json from the service images
# (what the static config checks of the Kubernetes render know about each setting).
# Needs the images built by `make deploy`: kailash/postgresql:15-bookworm, kailash/redis:7.0-bookworm.
set -euo pipefail
cd "$(dirname "$0")/.."
out=plugins/filter/catalog
q="select json_object_agg(name, json_build_object('type', vartype, 'unit', unit, 'min', min_val,
   'max', max_val, 'enum', enumvals) order by name) from pg_settings"
docker run --rm --network none --user 70:70 --tmpfs /var/run/postgresql:uid=70,gid=70 \
  -e Q="$q" --entrypoint sh kailash/postgresql:15-bookworm -c \
  'initdb -D /tmp/d -A trust -U postgres --no-sync >/dev/null 2>&1 &&
   pg_ctl -D /tmp/d -w -l /tmp/log -o "-c listen_addresses=" start >/dev/null &&
   psql -h /var/run/postgresql -U postgres -AtX -c "$Q"' > /tmp/pg_settings.json
docker run --rm --network none --entrypoint sh kailash/redis:7.0-bookworm -c \
  'redis-server --port 0 --unixsocket /tmp/r.sock --daemonize yes --dir /tmp --logfile /tmp/l >/dev/null;
   sleep 0.5; redis-cli -s /tmp/r.sock config get "*"' \
  > /tmp/redis_config.txt
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
pg = json.load(open("/tmp/pg_settings.json"))
json.dump({"_source": "pg_settings of PostgreSQL 15 in kailash/postgresql:15-bookworm (name, vartype, unit, "
           "min_val, max_val, enumvals); regenerate with scripts/config-catalog.sh",
           "settings": {k: {a: b for a, b in v.items() if b is not None} for k, v in sorted(pg.items())}},
          open(f"{out}/postgresql15.json", "w"), indent=1, sort_keys=True)
lines = open("/tmp/redis_config.txt").read().splitlines()
d = dict(zip(lines[0::2], lines[1::2]))
json.dump({"_source": "CONFIG GET * of Redis 7.0 in kailash/redis:7.0-bookworm (name -> default); "
           "regenerate with scripts/config-catalog.sh", "defaults": dict(sorted(d.items()))},
          open(f"{out}/redis7.json", "w"), indent=1, sort_keys=True)
PY
echo "wrote $out/postgresql15.json $out/redis7.json"
