#!/usr/bin/env bash
# The test command: creates .venv on first use, then runs the pytest suite
# (unit tests with known answers + an end-to-end run of the recipe on a
# slice of ASC). Extra arguments go to pytest, e.g. tests/run.sh -k plda.
set -euo pipefail
cd "$(dirname "$0")/.."
. ./path.sh
exec python -m pytest -q -p no:cacheprovider "$@" tests
