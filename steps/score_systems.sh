#!/usr/bin/env bash
# Stage 6 of run.sh: score the trials of each evaluation set with each back-end, raw and after
# each score normalisation, and calibrate each such system.  A system is <backend>[_adapt][_<norm>]
# (_adapt: scored with <model-dir>/backend_adapt, with --adapted true).  Calibration trials:
# --calibration-trials (scored on --calibration-embeddings), else every pair (up to
# --max-trials) of the held-out calibration speakers (--calib-data, embeddings_calib), else of
# the training utterances (<train-data>, embeddings_train: over-confident LLRs).
#   steps/score_systems.sh [options] <model-dir> <train-data> <eval-data>...
# Writes <model-dir>/calibration/{trials,<system>,<system>[_<set>].json} and the scores of
# each evaluation set in <model-dir>/scores/<system> (set "eval") or scores_<set>/<system>;
# with --qmf also a QMF calibration (the JSON's qmf entry) and scores*/<system>_qmf.
# Each step skips work whose marker is up to date.
set -euo pipefail
[ -n "${SV_ROOT:-}" ] || . "$(dirname "$0")/../path.sh"   # $SV_ROOT: the toolkit, from any directory
cmd=$SV_ROOT/utils/run.py
backends="cosine plda"      # cosine | plda, each scored
adapted=false               # true: also the systems of backend_adapt/ (<backend>_adapt...)
score_norms=asnorm          # any of znorm tnorm snorm asnorm; empty: raw scores only
cohort=utts                 # normalisation cohort: utts (training embeddings) | speakers (their means)
top_k=100                   # AS-norm: best cohort scores per utterance
cosine_mean=train           # train | none (steps/score_trials.sh)
prior=0.01                  # calibration's effective target prior
qmf=                        # quality measures of a QMF calibration (dur, mag); empty: none
max_trials=100000           # calibration trials drawn from every pair
calibration_trials=         # a labelled trial list instead
calibration_embeddings=     # its embeddings dir (needs --calibration-trials)
calib_data=                 # the held-out calibration speakers' data dir (if it has utt2spk)
help_message="Usage: $0 [--cmd CMD] [--backends 'cosine plda'] [--adapted true|false] [--score-norms 'znorm asnorm'] [--cohort utts|speakers] [--top-k K] [--cosine-mean train|none] [--prior P] [--qmf 'dur mag'] [--max-trials N] [--calibration-trials FILE [--calibration-embeddings DIR]] [--calib-data DIR] <model-dir> <train-data> <eval-data>..."
. "$SV_ROOT/utils/parse_options.sh"
check_int top_k 1; check_int max_trials 0; check_number prior 0 1
[ $# -ge 3 ] || { echo -e "$help_message" 1>&2; exit 1; }
dir=$1 train=$2; shift 2
evals=("$@")
steps=$SV_ROOT/steps

cohort_scp=$dir/embeddings_train/xvector.scp
[ "$cohort" = speakers ] && cohort_scp=$dir/embeddings_train/spk_xvector.scp
cal_trials=${calibration_trials:-$dir/calibration/trials}
cal_data=$train cal_emb=${calibration_embeddings:-$dir/embeddings_train}
if [ -f "$calib_data/utt2spk" ] && [ -z "$calibration_trials" ]; then
  cal_data=$calib_data cal_emb=$dir/embeddings_calib
fi
[ -z "$calibration_embeddings" ] || [ -n "$calibration_trials" ] || {
  echo "$0: calibration_embeddings needs calibration_trials (conf/backend.conf)" 1>&2; exit 1; }
[ -n "$calibration_trials" ] || "$steps/make_trials.sh" --max-trials "$max_trials" \
  "$cal_emb" "$cal_data" "$cal_trials"
variants=(""); [ "$adapted" = true ] && variants+=(_adapt)
for backend in $backends; do
  for variant in "${variants[@]}"; do
  for norm in none $score_norms; do
    system=$backend$variant opts=(--backend "$backend" --cosine-mean "$cosine_mean")
    if [ "$norm" != none ]; then
      system=${backend}${variant}_$norm opts+=(--cohort-scp "$cohort_scp" --norm "$norm" --top-k "$top_k")
    fi
    "$steps/score_trials.sh" --cmd "$cmd" "${opts[@]}" "$dir/backend$variant" \
      "$cal_emb" "$cal_trials" "$dir/calibration/$system"
    for x in "${evals[@]}"; do  # each evaluation set: $dir/scores for the set "eval", else $dir/scores_<set>
      name=$(basename "$x") scores=$dir/scores cal_json=$dir/calibration/$system.json
      [ "$name" = eval ] || scores=$dir/scores_$name
      [ "$x" = "${evals[0]}" ] || cal_json=$dir/calibration/${system}_$name.json
      "$steps/score_trials.sh" --cmd "$cmd" "${opts[@]}" "$dir/backend$variant" \
        "$dir/embeddings_$name" "$x/trials" "$scores/$system"
      "$steps/calibrate.sh" --cmd "$cmd" --prior "$prior" --system "$system" \
        --qmf "$qmf" --cal-quality "$cal_emb" --eval-quality "$dir/embeddings_$name" \
        "$cal_trials" "$dir/calibration/$system" "$scores/$system" "$cal_json"
    done
  done
  done
done
