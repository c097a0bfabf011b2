#!/usr/bin/env bash
# Kaldi-named wrapper: utt2spk (file argument or stdin) to spk2utt on stdout.
# Runs python -m pyutils.cli.utt2spk_to_spk2utt from the project this script lives in.
set -euo pipefail
ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
PYTHON="$ROOT/.venv/bin/python"
[ -x "$PYTHON" ] || PYTHON=python3
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" exec "$PYTHON" -m pyutils.cli.utt2spk_to_spk2utt "$@"
