#!/usr/bin/env bash
# Train and evaluate several networks on the same ASC data, fuse their scores,
# and print the table comparing them (exp/asc/results.md: EER, minDCF,
# parameters, training time, chunks/s per system and back-end). Data prep and
# features are shared: run.sh skips every stage whose completion marker matches.
#
#   local/compare_models.sh                          # the four networks
#   local/compare_models.sh --models "xvector ecapa_c512" --fuse "ecapa_c512 wav2spk"
set -euo pipefail
models="xvector ecapa_c512 resnet34 wav2spk"   # conf/<model>.yaml each
fuse=                # systems fused per back-end (logistic regression trained on the calibration trials); empty: none
exp=exp/asc
data=data/asc
help_message="Usage: $0 [--models LIST] [--fuse LIST] [--exp DIR] [--data DIR]"
cd "$(dirname "$0")/.."
. ./path.sh
. utils/parse_options.sh
for model in $models; do
  echo "$0: === $model ==="
  ./run.sh --model "$model" --exp "$exp" --data "$data"
done
if [ -n "$fuse" ]; then
  # Fusion per back-end: logistic regression trained on the systems' scores of the
  # calibration trials (stage 6; the same list for every system), never on the
  # evaluation trials; the fused scores are LLRs (also written as llr for Cllr).
  name=fusion_$(echo $fuse | tr ' ' '+')
  set -- $fuse
  cal_trials=$exp/$1/calibration/trials
  for system in $fuse; do
    cmp -s "$cal_trials" "$exp/$system/calibration/trials" || {
      echo "$0: $exp/$system/calibration/trials differs from $cal_trials: fusion needs one calibration list" 1>&2; exit 1; }
  done
  scored=$(cd "$exp/$1/scores" && ls -d */ | tr -d /)   # what stage 6 scored (+ _<norm>)
  for backend in $scored; do
    files=() cal=()
    for system in $fuse; do
      files+=("$exp/$system/scores/$backend/scores") cal+=("$exp/$system/calibration/$backend/scores")
    done
    mkdir -p "$exp/$name/scores/$backend" "$exp/$name/calibration"
    python -m pyutils.cli.fuse_scores --out "$exp/$name/scores/$backend/scores" \
      --trials "$cal_trials" --cal-scores "${cal[@]}" \
      --calibration "$exp/$name/calibration/$backend.json" "${files[@]}"
    cp "$exp/$name/scores/$backend/scores" "$exp/$name/scores/$backend/llr"
  done
  steps/compute_metrics.sh --system "$name" --backends "$scored" \
    "$data/eval/trials" "$exp/$name/scores" "$exp/$name"
  python -m pyutils.cli.compare_systems --out "$exp/results.md" "$exp"/*/ > /dev/null
fi
cat "$exp/results.md"
