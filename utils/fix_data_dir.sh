#!/usr/bin/env bash
# Kaldi-named wrapper: Sort and filter a data dir to its consistent part; originals go to DIR/.backup.
# Runs python -m pyutils.cli.fix_data_dir from the project this script lives in.
set -euo pipefail
ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
PYTHON="$ROOT/.venv/bin/python"
[ -x "$PYTHON" ] || PYTHON=python3
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" exec "$PYTHON" -m pyutils.cli.fix_data_dir "$@"
