#!/usr/bin/env bash
# Kaldi-named wrapper: Combine data dirs: combine_data.sh DEST SRC1 SRC2 ...
# Runs python -m pyutils.cli.combine_data from the project this script lives in.
set -euo pipefail
ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
PYTHON="$ROOT/.venv/bin/python"
[ -x "$PYTHON" ] || PYTHON=python3
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" exec "$PYTHON" -m pyutils.cli.combine_data "$@"
