#!/usr/bin/env bash
# Resemblyzer's pretrained GE2E weights from the package index: installs the package's own
# files (resemblyzer==0.1.4, the version of tests/fixtures/parity/VERSIONS.json) into DIR and
# prints the path of its pretrained.pt, for `import_model --from resemblyzer` and the
# real-weights parity test (tests/test_import_resemblyzer.py reads $RESEMBLYZER_WEIGHTS).
# Without its dependencies: the weights need none, and its webrtcvad 2.0.10 is a source build
# that fails under setuptools >= 81 (the toolkit's GE2E front-end uses webrtcvad-wheels).
#   utils/fetch_resemblyzer.sh DIR      # e.g. export RESEMBLYZER_WEIGHTS=$(utils/fetch_resemblyzer.sh /tmp/r)
#   utils/fetch_resemblyzer.sh --mirror M DIR   # offline: from a local mirror M (a folder or
#                                               # URL holding resemblyzer-0.1.4's wheel), only
set -euo pipefail
mirror=
[ "${1:-}" != --mirror ] || { mirror=${2:-}; shift 2 || true; }
[ $# -eq 1 ] || { echo "Usage: $0 [--mirror FOLDER_OR_URL] DIR" 1>&2; exit 1; }
dir=$1 version=0.1.4
weights=$dir/resemblyzer/pretrained.pt
if [ ! -f "$weights" ]; then
  python=${PYTHON:-python3}
  source_opts=(); [ -z "$mirror" ] || source_opts=(--no-index --find-links "$mirror")
  "$python" -m pip install --quiet --disable-pip-version-check --no-deps --target "$dir" \
    "${source_opts[@]}" "resemblyzer==$version" 1>&2 ||
    { echo "$0: could not install resemblyzer==$version from ${mirror:-the package index} into" \
        "$dir; offline, give --mirror a folder holding resemblyzer-$version-py3-none-any.whl," \
        "or give import_model an installed resemblyzer directory or its pretrained.pt" 1>&2
      exit 1; }
fi
[ -f "$weights" ] || { echo "$0: resemblyzer==$version installed no $weights" 1>&2; exit 1; }
echo "$weights"
