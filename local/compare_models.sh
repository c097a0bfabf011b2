#!/usr/bin/env bash
# Train and evaluate several networks on the same ASC data, then print the
# table comparing them (exp/asc/results.md: EER, minDCF, parameters, training
# time, chunks/s per system and back-end). Data prep and features are shared:
# run.sh skips every stage whose completion marker matches.
#
#   local/compare_models.sh                          # the four networks
#   local/compare_models.sh --models "xvector ecapa_c512"
set -euo pipefail
models="xvector ecapa_c512 resnet34 wav2spk"   # conf/<model>.yaml each
exp=exp/asc
help_message="Usage: $0 [--models LIST] [--exp DIR] (other options: edit conf/<model>.yaml)"
cd "$(dirname "$0")/.."
. ./path.sh
. utils/parse_options.sh
for model in $models; do
  echo "$0: === $model ==="
  ./run.sh --model "$model" --exp "$exp"
done
cat "$exp/results.md"
