#!/usr/bin/env bash
# Linear logistic-regression calibration of one scored system, trained on its
# scores of calibration trials (never the eval trials): writes <calibration-json>
# (weights, offset, prior, thresholds at the EER/minDCF/Bayes operating points,
# pyutils.backends.calibration.save_calibration) and <eval-scores-dir>/llr, the
# eval scores as log-likelihood ratios; <calibration-json without .json>.cal_scores, the
# calibration trials' scores (sv threshold picks new operating points from them).
# --qmf "dur mag": also a QMF calibration with the trials' quality measures
# (utt2speech_dur, utt2magnitude of --cal-quality / --eval-quality, stage 4) into the
# JSON's qmf entry, and the eval QMF LLRs as a system of their own, <eval-scores-dir>_qmf.
set -euo pipefail
[ -n "${SV_ROOT:-}" ] || . "$(dirname "$0")/../path.sh"   # $SV_ROOT: the toolkit, from any directory
cmd=$SV_ROOT/utils/run.py
prior=0.01          # effective target prior of the fit and of the Bayes threshold
system=             # recorded as "backend" in the JSON
qmf=                # quality measures of a QMF calibration (dur, mag); empty: none
cal_quality=        # --qmf: embeddings dir of the calibration trials' utterances
eval_quality=       # --qmf: embeddings dir of the eval trials' utterances
help_message="Usage: $0 [--cmd CMD] [--prior P] [--system NAME] [--qmf 'dur mag' --cal-quality DIR --eval-quality DIR] <calibration-trials> <calibration-scores-dir> <eval-scores-dir> <calibration-json>"
. "$SV_ROOT/utils/parse_options.sh"
check_number prior 0 1
[ $# -eq 4 ] || { echo -e "$help_message" 1>&2; exit 1; }
trials=$1 caldir=$2 evaldir=$3 json=$4

marker=$json.done
stamp=("$trials" "$caldir/scores" "$caldir/.done" "$evaldir/scores" "$evaldir/.done"
       "prior=$prior system=$system" "$json" "$evaldir/llr" "qmf=$qmf")
qmf_opts=()
if [ -n "$qmf" ]; then
  stamp+=("$cal_quality/utt2speech_dur" "$cal_quality/utt2magnitude" "$eval_quality/utt2speech_dur"
          "$eval_quality/utt2magnitude" "${evaldir}_qmf/llr")
  qmf_opts=(--qmf "$qmf" --cal-quality "$cal_quality" --eval-quality "$eval_quality"
            --qmf-out-dir "${evaldir}_qmf")
fi
if python -m pyutils.cli.marker check "$marker" "${stamp[@]}"; then
  echo "$0: $json is up to date"; exit 0
fi
mkdir -p "$(dirname "$json")/log"
$cmd "$(dirname "$json")/log/calibrate_${system:-system}.log" python -m pyutils.cli.calibrate \
  --trials "$trials" --cal-scores "$caldir/scores" --calibration "$json" \
  --scores "$evaldir/scores" --out-llr "$evaldir/llr" --prior $prior --system "$system" "${qmf_opts[@]}"
python -m pyutils.cli.marker write "$marker" "${stamp[@]}"
