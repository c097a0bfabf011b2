#!/usr/bin/env bash
# EER (Kaldi compute-eer) and minDCF at p_target 0.01 and 0.001
# (sid/compute_min_dcf.py, C_miss = C_fa = 1) per back-end; minCllr, and Cllr and
# the actual DCF of <scores-dir>/<backend>/llr where stage 6 calibrated it; a DET
# curve and <dir>/results.md with one row per back-end, and one per back-end and
# subgroup trial list (--subgroups "adult-adult=<list> ...": subsets of <trials>).
set -euo pipefail
[ -n "${SV_ROOT:-}" ] || . "$(dirname "$0")/../path.sh"   # $SV_ROOT: the toolkit, from any directory
system=xvector
backends="cosine plda"
subgroups=
help_message="Usage: $0 [--system NAME] [--backends LIST] [--subgroups 'NAME=TRIALS ...'] <trials> <scores-dir> <dir>"
. "$SV_ROOT/utils/parse_options.sh"
[ $# -eq 3 ] || { echo -e "$help_message" 1>&2; exit 1; }
trials=$1 scores=$2 dir=$3

args=() llrs=()
for b in $backends; do
  args+=("$b=$scores/$b/scores")
  [ -f "$scores/$b/llr" ] && llrs+=("$b=$scores/$b/llr")
done
[ ${#llrs[@]} -gt 0 ] && args+=(--llr "${llrs[@]}")
for s in $subgroups; do args+=(--subgroup "$s"); done
mkdir -p "$dir/log"
# Speaker-bootstrap 95% CIs and minCllr when the eval utt2spk is beside the trials.
[ -f "$(dirname "$trials")/utt2spk" ] && args+=(--utt2spk "$(dirname "$trials")/utt2spk")
if ! python -m pyutils.cli.compute_metrics --trials "$trials" --system "$system" \
    --det-png "$dir/det.png" --results-md "$dir/results.md" --scores "${args[@]}" \
    > "$dir/log/compute_metrics.log" 2>&1; then
  tail -n 5 "$dir/log/compute_metrics.log" 1>&2
  echo "$0: failed; log is in $dir/log/compute_metrics.log" 1>&2
  exit 1
fi
