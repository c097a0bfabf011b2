#!/usr/bin/env bash
# Kaldi-named wrapper: Write DIR/utt2dur from segments or the audio of wav.scp.
# Runs python -m pyutils.cli.get_utt2dur from the project this script lives in.
set -euo pipefail
ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)"
PYTHON="$ROOT/.venv/bin/python"
[ -x "$PYTHON" ] || PYTHON=python3
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" exec "$PYTHON" -m pyutils.cli.get_utt2dur "$@"
