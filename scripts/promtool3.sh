#!/usr/bin/env bash
# Puts Prometheus 3's promtool (Debian sid's `promtool` package, pinned) into
# .tools/promtool3/bin (gitignored), like scripts/monitoring-tools.sh: `apt-get download`
# from the configured mirror, `dpkg-deb -x`, nothing installed. Debian bookworm's promtool
# 2.42 is built without the Kubernetes service discovery, so it refuses the plain
# Kubernetes scrape configuration (kubernetes_sd_configs, roles/kailash_k8s); this one
# checks it (tests/k8s/test_monitoring.py). Prints the bin directory.
#   PROMTOOL3_DIR=/path scripts/promtool3.sh   another location
set -euo pipefail
cd "$(dirname "$0")/.."
PACKAGE="promtool=3.5.3+ds1-6"
dest="${PROMTOOL3_DIR:-$PWD/.tools/promtool3}"
if [ "$(cat "$dest/VERSION" 2>/dev/null)" = "$PACKAGE" ] && [ -x "$dest/bin/promtool" ]; then
  echo "$dest/bin"
  exit 0
fi
echo "promtool3: fetching $PACKAGE into $dest" >&2
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if [ "$(id -u)" = 0 ] && id _apt >/dev/null 2>&1; then chown _apt "$work"; fi
if ! (cd "$work" && apt-get download -q "$PACKAGE" >&2); then
  if [ "$(id -u)" = 0 ]; then
    echo "promtool3: apt-get download failed; apt-get update and retry" >&2
    apt-get update -q >&2
    (cd "$work" && apt-get download -q "$PACKAGE" >&2) || {
      echo "promtool3: $PACKAGE needs Debian sid in the apt sources (\`make host\` adds it, pinned)" >&2
      exit 1
    }
  else
    echo "promtool3: $PACKAGE is not in the configured apt sources (Debian sid)" >&2
    exit 1
  fi
fi
dpkg-deb -x "$work"/promtool_*.deb "$work/root"
rm -rf "$dest"
mkdir -p "$dest/bin"
install -m 0755 "$work/root/usr/bin/promtool" "$dest/bin/promtool"
printf '%s\n' "$PACKAGE" > "$dest/VERSION"
echo "$dest/bin"
