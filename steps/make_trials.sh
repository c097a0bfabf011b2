#!/usr/bin/env bash
# A trial list over every pair of the utterances of <data> that have an
# embedding in <embeddings-dir>/xvector.scp (stage 6's calibration trials over
# the training utterances): writes <trials> as "utt1 utt2 target|nontarget".
set -euo pipefail
[ -n "${SV_ROOT:-}" ] || . "$(dirname "$0")/../path.sh"   # $SV_ROOT: the toolkit, from any directory
max_trials=0        # >0: a fixed-seed sample of that many pairs
seed=0
help_message="Usage: $0 [--max-trials N] [--seed S] <embeddings-dir> <data> <trials>"
. "$SV_ROOT/utils/parse_options.sh"
check_int max_trials 0; check_int seed 0
[ $# -eq 3 ] || { echo -e "$help_message" 1>&2; exit 1; }
embdir=$1 data=$2 trials=$3

marker=$trials.done
stamp=("$data/utt2spk" "$embdir/xvector.scp" "$embdir/.done" "max_trials=$max_trials seed=$seed" "$trials")
if python -m pyutils.cli.marker check "$marker" "${stamp[@]}"; then
  echo "$0: $trials was made from the same inputs; kept"; exit 0
fi
mkdir -p "$(dirname "$trials")"
python -m pyutils.cli.make_trials --utt2spk "$data/utt2spk" --keys-scp "$embdir/xvector.scp" \
  --max-trials $max_trials --seed $seed --out "$trials"
python -m pyutils.cli.marker write "$marker" "${stamp[@]}"
