#!/usr/bin/env bash
# Installs the offline schema validation of the prometheus-operator objects
# (tests/k8s/crd: @kubernetes-models/prometheus-operator, pinned by package.json and
# package-lock.json) into .cache/k8s-crd with `npm ci`, when missing or when the lock file
# changed; then prints its node_modules directory. Needs node and npm (the machines have
# Node.js 20; the package declares node >= 22 but runs on 20: npm only warns).
#   scripts/k8s-crd-tools.sh              install if needed, print node_modules
#   K8S_CRD_TOOLS_DIR=/path scripts/k8s-crd-tools.sh   another location
set -euo pipefail
cd "$(dirname "$0")/.."
dest="${K8S_CRD_TOOLS_DIR:-$PWD/.cache/k8s-crd}"
src="$PWD/tests/k8s/crd"
stamp="$dest/.lock.sha256"
want="$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -d' ' -f1)"

for tool in node npm; do
  command -v "$tool" >/dev/null || { echo "k8s-crd-tools: $tool is missing (Node.js >= 20 and npm)" >&2; exit 1; }
done
if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
  echo "k8s-crd-tools: Node.js $(node --version) is older than 20" >&2
  exit 1
fi

if [ ! -d "$dest/node_modules/@kubernetes-models/prometheus-operator" ] \
   || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "k8s-crd-tools: npm ci into $dest (about 5 s)" >&2
  rm -rf "$dest"
  mkdir -p "$dest"
  cp "$src/package.json" "$src/package-lock.json" "$dest/"
  (cd "$dest" && npm ci --no-audit --no-fund --loglevel=error >&2)
  echo "$want" > "$stamp"
fi
echo "$dest/node_modules"
