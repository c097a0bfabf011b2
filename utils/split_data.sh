#!/usr/bin/env bash
# Kaldi-named wrapper: Split a data dir into NJ parts (DIR/splitNJ or DIR/splitNJutt).
# Runs python -m pyutils.cli.split_data from the project this script lives in.
set -euo pipefail
ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
PYTHON="$ROOT/.venv/bin/python"
[ -x "$PYTHON" ] || PYTHON=python3
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" exec "$PYTHON" -m pyutils.cli.split_data "$@"
