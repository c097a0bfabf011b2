#!/usr/bin/env bash
# Kaldi-named wrapper: Copy a data dir renaming ids (--utt-prefix/--spk-prefix/--utt-suffix/--spk-suffix).
# Runs python -m pyutils.cli.copy_data_dir from the project this script lives in.
set -euo pipefail
ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
PYTHON="$ROOT/.venv/bin/python"
[ -x "$PYTHON" ] || PYTHON=python3
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" exec "$PYTHON" -m pyutils.cli.copy_data_dir "$@"
