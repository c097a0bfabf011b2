#!/usr/bin/env bash
# Score a trials file with one back-end (cosine, plda or any registered one),
# optionally followed by a score normalisation against a cohort (znorm, tnorm,
# snorm, asnorm): writes <dir>/scores as "utt1 utt2 score" lines, in trial order.
set -euo pipefail
[ -n "${SV_ROOT:-}" ] || . "$(dirname "$0")/../path.sh"   # $SV_ROOT: the toolkit, from any directory
cmd=$SV_ROOT/utils/run.py
backend=plda
num_threads=1       # blocks of trials processed at once (the output does not depend on it)
cohort_scp=         # normalisation cohort embeddings (e.g. the training set's xvector.scp); empty: none
norm=asnorm         # with --cohort-scp: znorm | tnorm | snorm | asnorm
top_k=300           # AS-norm: best cohort scores per utterance
cosine_mean=train   # cosine: train (centre on mean.vec, WeSpeaker) | none (Kaldi cosine_scoring.sh)
help_message="Usage: $0 [--backend cosine|plda] [--num-threads N] [--cosine-mean train|none] [--cohort-scp SCP [--norm znorm|tnorm|snorm|asnorm] [--top-k K]] <backend-dir> <embeddings-dir> <trials> <dir>"
. "$SV_ROOT/utils/parse_options.sh"
check_int num_threads 1; check_int top_k 1
[ $# -eq 4 ] || { echo -e "$help_message" 1>&2; exit 1; }
backend_dir=$1 embdir=$2 trials=$3 dir=$4

# extraction markers name the model (a retrain can leave xvector.scp byte-identical)
stamp=("$backend" "$backend_dir/.done" "$backend_dir/mean.vec" "$backend_dir/lda.mat" "$backend_dir/plda"
       "$embdir/xvector.scp" "$embdir/.done" "$trials" "${cohort_scp:-no-cohort}"
       "${cohort_scp:+$(dirname "$cohort_scp")/.done}" "$top_k" "${cohort_scp:+norm=$norm}"
       "cosine_mean=$cosine_mean" "$dir/scores")
if python -m pyutils.cli.marker check "$dir/.done" "${stamp[@]}"; then
  echo "$0: $dir/scores is up to date"; exit 0
fi
mkdir -p "$dir/log"
$cmd "$dir/log/score.log" python -m pyutils.cli.score_trials --backend $backend \
  --backend-dir "$backend_dir" --enroll-scp "$embdir/xvector.scp" --test-scp "$embdir/xvector.scp" \
  --trials "$trials" --out "$dir/scores" --num-threads $num_threads --cosine-mean $cosine_mean \
  ${cohort_scp:+--cohort-scp "$cohort_scp" --norm $norm --top-k $top_k}
python -m pyutils.cli.marker write "$dir/.done" "${stamp[@]}"
