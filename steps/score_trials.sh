#!/usr/bin/env bash
# Score a trials file with one back-end (cosine or plda), optionally followed by
# adaptive s-norm against a cohort: writes <dir>/scores as "utt1 utt2 score"
# lines, in trial order.
set -euo pipefail
cmd=utils/run.py
backend=plda
num_threads=1       # blocks of trials processed at once (the output does not depend on it)
cohort_scp=         # AS-norm cohort embeddings (e.g. the training set's xvector.scp); empty: none
top_k=300           # AS-norm: best cohort scores per utterance
help_message="Usage: $0 [--backend cosine|plda] [--num-threads N] [--cohort-scp SCP --top-k K] <backend-dir> <eval-embeddings-dir> <trials> <dir>"
[ -n "${SV_ROOT:-}" ] || . "$(dirname "$0")/../path.sh"
. utils/parse_options.sh
[ $# -eq 4 ] || { echo -e "$help_message" 1>&2; exit 1; }
backend_dir=$1 embdir=$2 trials=$3 dir=$4

# extraction markers name the model (a retrain can leave xvector.scp byte-identical)
stamp=("$backend" "$backend_dir/.stamp" "$backend_dir/mean.vec" "$backend_dir/lda.mat" "$backend_dir/plda"
       "$embdir/xvector.scp" "$embdir/.done" "$trials" "${cohort_scp:-no-cohort}"
       "${cohort_scp:+$(dirname "$cohort_scp")/.done}" "$top_k" "$dir/scores")
if python -m pyutils.cli.stamp check "$dir/.done" "${stamp[@]}"; then
  echo "$0: $dir/scores is up to date"; exit 0
fi
mkdir -p "$dir/log"
$cmd "$dir/log/score.log" python -m pyutils.cli.score_trials --backend $backend \
  --backend-dir "$backend_dir" --enroll-scp "$embdir/xvector.scp" --test-scp "$embdir/xvector.scp" \
  --trials "$trials" --out "$dir/scores" --num-threads $num_threads \
  ${cohort_scp:+--cohort-scp "$cohort_scp" --top-k $top_k}
python -m pyutils.cli.stamp write "$dir/.done" "${stamp[@]}"
