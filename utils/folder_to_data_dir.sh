#!/usr/bin/env bash
# Kaldi-named wrapper: Make a data dir from <root>/<speaker>/.../<file>.wav; see python -m pyutils.cli.folder_to_data_dir --help.
# Runs python -m pyutils.cli.folder_to_data_dir from the project this script lives in.
set -euo pipefail
ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
PYTHON="$ROOT/.venv/bin/python"
[ -x "$PYTHON" ] || PYTHON=python3
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" exec "$PYTHON" -m pyutils.cli.folder_to_data_dir "$@"
