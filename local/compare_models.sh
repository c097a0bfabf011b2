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
fuse=                # systems whose scores are fused (equal weights), per back-end; empty: none
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
  # Fusion: the mean of the systems' scores for each back-end (AS-norm scores are
  # standard scores, so equal weights need no training on the evaluation trials).
  name=fusion_$(echo $fuse | tr ' ' '+')
  set -- $fuse
  scored=$(cd "$exp/$1/scores" && ls -d */ | tr -d /)   # what stage 6 scored (+ _asnorm)
  for backend in $scored; do
    files=()
    for system in $fuse; do files+=("$exp/$system/scores/$backend/scores"); done
    mkdir -p "$exp/$name/scores/$backend"
    python -m pyutils.cli.fuse_scores --out "$exp/$name/scores/$backend/scores" "${files[@]}"
  done
  steps/compute_metrics.sh --system "$name" --backends "$scored" \
    "$data/eval/trials" "$exp/$name/scores" "$exp/$name"
  python -m pyutils.cli.compare_systems --out "$exp/results.md" "$exp"/*/ > /dev/null
fi
cat "$exp/results.md"
