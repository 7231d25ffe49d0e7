#!/usr/bin/env bash
# Create .venv for the control node: the newest Python >= 3.12 found (ansible-core
# 2.21 needs it), else Python 3.11 with the newest ansible-core that runs there.
# Then check that requirements.yml's collections are satisfied (by the ansible
# bundle, offline) and install them from Galaxy only when they are not.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

usable() {  # prints the version of a python >= 3.11, fails otherwise
  "$1" -c 'import sys; assert sys.version_info >= (3, 11); print("%d.%d" % sys.version_info[:2])' 2>/dev/null
}

pick_python() {
  local cand best="" bestv=""
  local -a cands=()
  [ -n "${PYTHON:-}" ] && cands+=("$PYTHON")
  cands+=(python3.13 python3.12)
  # pyenv shims fail unless a version is selected: look at the installs directly
  for d in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[2-9]*/bin; do
    [ -d "$d" ] && cands+=("$d/python3")
  done
  cands+=(python3)
  for cand in "${cands[@]}"; do
    command -v "$cand" >/dev/null 2>&1 || [ -x "$cand" ] || continue
    v=$(usable "$cand") || continue
    if [ -z "$best" ] || [ "$(printf '%s\n%s\n' "$bestv" "$v" | sort -V | tail -1)" != "$bestv" ]; then
      best=$cand; bestv=$v
    fi
    [ -n "${PYTHON:-}" ] && [ "$cand" = "$PYTHON" ] && break
  done
  [ -n "$best" ] || { echo "bootstrap: no Python >= 3.11 found (set PYTHON=/path/to/python3.12)" >&2; exit 1; }
  # make puts $VENV/bin first on PATH: never build the new venv from the one about to be
  # removed; use the interpreter a venv was made from (sys._base_executable)
  "$best" -c 'import sys; print(getattr(sys, "_base_executable", None) or sys.executable)'
}

stamp=$VENV/.kailash-stamp
want=$(cat requirements.txt requirements.lock | sha1sum | cut -c1-12)
if [ -x "$VENV/bin/ansible-playbook" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  :
else
  py=$(pick_python)
  pyv=$(usable "$py")
  echo "bootstrap: creating $VENV with $py (Python $pyv)"
  if ! "$py" -m venv --help >/dev/null 2>&1; then
    echo "bootstrap: $py has no venv module: apt-get install python3-venv" >&2; exit 1
  fi
  rm -rf "$VENV"
  "$py" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip 2>&1 | { grep -v "is ignored: it is neither" || true; } >&2
  constraints=()
  if [ "$(printf '%s\n3.12\n' "$pyv" | sort -V | head -1)" = "3.12" ]; then
    constraints=(-c requirements.lock)
  else
    echo "bootstrap: Python $pyv < 3.12: installing the newest ansible-core that runs on it" >&2
  fi
  "$VENV/bin/pip" install -q -r requirements.txt "${constraints[@]}" 2>&1 | { grep -v "is ignored: it is neither" || true; } >&2
  echo "$want" > "$stamp"
fi

# Collections: "Nothing to do" offline when the ansible bundle meets requirements.yml.
# Checked once per venv and requirements.yml (ansible-galaxy takes a second or two, and
# `make deploy` runs this every time).
cstamp=$VENV/.kailash-collections
cwant=$(cat "$stamp" requirements.yml | sha1sum | cut -c1-12)
if [ "$(cat "$cstamp" 2>/dev/null)" = "$cwant" ] && [ -d .ansible/collections ]; then
  echo "bootstrap: $VENV and collections as checked before (requirements unchanged)"
else
  "$VENV/bin/ansible-galaxy" collection install -r requirements.yml -p .ansible/collections >/dev/null \
    || { echo "bootstrap: requirements.yml collections are not satisfied by the ansible bundle and Galaxy is unreachable" >&2; exit 1; }
  mkdir -p .ansible/collections
  echo "$cwant" > "$cstamp"
  echo "bootstrap: $("$VENV/bin/ansible" --version | sed -n 1p), collections satisfied"
fi
