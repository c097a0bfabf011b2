#!/usr/bin/env bash
# Kaldi-named wrapper: Copy part of a data dir: --utt-list/--spk-list FILE SRC DST, or --per-spk/--first/--shortest SRC NUM DST.
# Runs python -m pyutils.cli.subset_data_dir from the project this script lives in.
set -euo pipefail
ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
PYTHON="$ROOT/.venv/bin/python"
[ -x "$PYTHON" ] || PYTHON=python3
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" exec "$PYTHON" -m pyutils.cli.subset_data_dir "$@"
