# Sourced by run.sh and every steps/ script: the project's environment.
# Creates .venv on first use (utils/setup_venv.sh), activates it, puts the
# project on PYTHONPATH and fixes the C locale so sorting matches Kaldi.
export SV_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
"$SV_ROOT/utils/setup_venv.sh"
# shellcheck disable=SC1091
. "$SV_ROOT/.venv/bin/activate"
export PYTHONPATH="$SV_ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PATH="$SV_ROOT/utils:$SV_ROOT/steps:$PATH"
export LC_ALL=C
export PYTHONUNBUFFERED=1
