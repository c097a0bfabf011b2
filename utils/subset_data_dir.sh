#!/usr/bin/env bash
# Kaldi-named wrapper: Copy the part of a data dir given by --utt-list or --spk-list.
# Runs python -m pyutils.cli.subset_data_dir from the project this script lives in.
set -euo pipefail
ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
PYTHON="$ROOT/.venv/bin/python"
[ -x "$PYTHON" ] || PYTHON=python3
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" exec "$PYTHON" -m pyutils.cli.subset_data_dir "$@"
