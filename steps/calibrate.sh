#!/usr/bin/env bash
# Linear logistic-regression calibration of one scored system, trained on its
# scores of calibration trials (never the eval trials): writes <calibration-json>
# (weights, offset, prior, thresholds at the EER/minDCF/Bayes operating points,
# pyutils.backends.calibration.save_calibration) and <eval-scores-dir>/llr, the
# eval scores as log-likelihood ratios.
set -euo pipefail
[ -n "${SV_ROOT:-}" ] || . "$(dirname "$0")/../path.sh"   # $SV_ROOT: the toolkit, from any directory
cmd=$SV_ROOT/utils/run.py
prior=0.01          # effective target prior of the fit and of the Bayes threshold
system=             # recorded as "backend" in the JSON
help_message="Usage: $0 [--cmd CMD] [--prior P] [--system NAME] <calibration-trials> <calibration-scores-dir> <eval-scores-dir> <calibration-json>"
. "$SV_ROOT/utils/parse_options.sh"
check_number prior 0 1
[ $# -eq 4 ] || { echo -e "$help_message" 1>&2; exit 1; }
trials=$1 caldir=$2 evaldir=$3 json=$4

marker=${json%.json}.done
stamp=("$trials" "$caldir/scores" "$caldir/.done" "$evaldir/scores" "$evaldir/.done"
       "prior=$prior system=$system" "$json" "$evaldir/llr")
if python -m pyutils.cli.stamp check "$marker" "${stamp[@]}"; then
  echo "$0: $json is up to date"; exit 0
fi
mkdir -p "$(dirname "$json")/log"
$cmd "$(dirname "$json")/log/calibrate_${system:-system}.log" python -m pyutils.cli.calibrate \
  --trials "$trials" --cal-scores "$caldir/scores" --calibration "$json" \
  --scores "$evaldir/scores" --out-llr "$evaldir/llr" --prior $prior --system "$system"
python -m pyutils.cli.stamp write "$marker" "${stamp[@]}"
