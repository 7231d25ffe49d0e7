#!/usr/bin/env bash
# Puts promtool, amtool, prometheus, alertmanager and the Debian bookworm exporters
# into .tools/monitoring/bin (gitignored) without installing anything: each pinned
# package is fetched with `apt-get download` from whatever apt mirror this machine is
# configured with and unpacked with `dpkg-deb -x` (no maintainer scripts, no services).
# Idempotent: nothing is fetched while every binary and the version stamp match.
#   scripts/monitoring-tools.sh                   fetch if needed, print the bin directory
#   MONITORING_TOOLS_DIR=/path scripts/monitoring-tools.sh   another location
# The binaries are Debian's Go builds (they need only libc), so they run on the host.
set -euo pipefail
cd "$(dirname "$0")/.."

# The pins, in one place: Debian bookworm's versions (`apt-cache madison <package>`).
# Metric names differ between exporter releases; the rules' tests and the metric
# fixtures (tests/monitoring/) are taken with exactly these.
PACKAGES=(
  "prometheus=2.42.0+ds-5+deb12u1"
  "prometheus-alertmanager=0.25.0-1+b4"
  "prometheus-postgres-exporter=0.11.1-3+b5"
  "prometheus-redis-exporter=1.45.0-2+b4"
  "prometheus-nginx-exporter=0.11.0-1+b4"
  "prometheus-node-exporter=1.5.0-1+b6"
  "prometheus-blackbox-exporter=0.23.0-4+b4"
  "mtail=3.0.0~rc50-1+b6"
)
# binary name in bin/ <- path inside the package
BINARIES=(
  "prometheus:usr/bin/prometheus"
  "promtool:usr/bin/promtool"
  "alertmanager:usr/bin/prometheus-alertmanager"
  "amtool:usr/bin/amtool"
  "postgres_exporter:usr/bin/prometheus-postgres-exporter"
  "redis_exporter:usr/bin/prometheus-redis-exporter"
  "nginx_exporter:usr/bin/prometheus-nginx-exporter"
  "node_exporter:usr/bin/prometheus-node-exporter"
  "blackbox_exporter:usr/bin/prometheus-blackbox-exporter"
  "mtail:usr/bin/mtail"
)

dest="${MONITORING_TOOLS_DIR:-$PWD/.tools/monitoring}"
bin="$dest/bin"
stamp="$dest/VERSIONS"
want="$(printf '%s\n' "${PACKAGES[@]}")"

complete() {
  [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] || return 1
  local entry
  for entry in "${BINARIES[@]}"; do
    [ -x "$bin/${entry%%:*}" ] || return 1
  done
}

if complete; then
  echo "$bin"
  exit 0
fi

command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || {
  echo "monitoring-tools: apt-get and dpkg-deb are needed (a Debian machine)" >&2
  exit 1
}

echo "monitoring-tools: fetching ${#PACKAGES[@]} pinned Debian packages into $dest" >&2
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# apt downloads as its sandbox user _apt when it can write the directory (else it warns)
if [ "$(id -u)" = 0 ] && id _apt >/dev/null 2>&1; then chown _apt "$work"; fi
if ! (cd "$work" && apt-get download -q "${PACKAGES[@]}" >&2); then
  # a machine whose package lists are missing or stale: refresh them once (root only)
  if [ "$(id -u)" = 0 ]; then
    echo "monitoring-tools: apt-get download failed; apt-get update and retry" >&2
    apt-get update -q >&2
    (cd "$work" && apt-get download -q "${PACKAGES[@]}" >&2)
  else
    echo "monitoring-tools: apt-get download failed (and not root, so no apt-get update);" \
      "the versions pinned here must be in the configured apt sources: ${PACKAGES[*]}" >&2
    exit 1
  fi
fi

mkdir -p "$work/root"
for deb in "$work"/*.deb; do
  dpkg-deb -x "$deb" "$work/root"
done

rm -rf "$bin"
mkdir -p "$bin"
for entry in "${BINARIES[@]}"; do
  name="${entry%%:*}"
  src="$work/root/${entry#*:}"
  [ -x "$src" ] || {
    echo "monitoring-tools: $src missing from the packages" >&2
    exit 1
  }
  install -m 0755 "$src" "$bin/$name"
done
# blackbox_exporter's example config is handy for probes; keep Debian's defaults too
mkdir -p "$dest/etc"
cp -a "$work/root/etc/." "$dest/etc/" 2>/dev/null || true
printf '%s\n' "$want" > "$stamp"
echo "$bin"
