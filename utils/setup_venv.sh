#!/usr/bin/env bash
# Create .venv beside this checkout and install the pinned requirements.
# Idempotent: reinstalls only when requirements.txt changed since the last
# successful install (stamp file inside .venv).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.venv"
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$root/requirements.txt" | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "$0: installing pinned dependencies into $venv (first use) ..." 1>&2
python=${PYTHON:-python3}
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip 1>&2 || true
"$venv/bin/python" -m pip install --quiet -r "$root/requirements.txt" 1>&2
echo "$want" > "$stamp.tmp" && mv "$stamp.tmp" "$stamp"
echo "$0: done" 1>&2
