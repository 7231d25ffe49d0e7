#!/usr/bin/env bash
# Installs the Kubernetes validation tools (requirements-k8s.txt: kubectl for
# `kubectl kustomize`, kubernetes-validate, checkov) into their own venv,
# .cache/k8s-tools, when missing or when requirements-k8s.txt changed; then prints
# the venv's bin directory. Separate from .venv: checkov pins many libraries.
#   scripts/k8s-tools.sh            install if needed, print the bin directory
#   K8S_TOOLS_VENV=/path scripts/k8s-tools.sh   another location
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${K8S_TOOLS_VENV:-$PWD/.cache/k8s-tools}"
req="$PWD/requirements-k8s.txt"
stamp="$venv/.requirements.sha256"
want="$(sha256sum "$req" | cut -d' ' -f1)"

# Any Python >= 3.9 will do (checkov's range); prefer the default python3.
python="${K8S_TOOLS_PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 9))' 2>/dev/null; then
  echo "k8s-tools: $python is missing or older than 3.9" >&2
  exit 1
fi

if [ ! -x "$venv/bin/checkov" ] || [ ! -x "$venv/bin/kubectl" ] || [ ! -x "$venv/bin/kubernetes-validate" ] \
   || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "k8s-tools: installing $(grep -c '==' "$req") pinned tools into $venv (about 90 s)" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req" >&2
  echo "$want" > "$stamp"
fi
echo "$venv/bin"
