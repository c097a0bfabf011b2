#!/usr/bin/env bash
# Unsupervised adaptation of a trained back-end to in-domain data (Kaldi sre16/v2):
# the in-domain mean replaces mean.vec, lda.mat is kept, the PLDA is adapted as
# ivector-adapt-plda to the in-domain embeddings (no labels needed).
set -euo pipefail
cmd=utils/run.py
within_covar_scale=0.3    # ivector-adapt-plda defaults
between_covar_scale=0.7
mean_diff_scale=1.0
help_message="Usage: $0 [--within-covar-scale F] [--between-covar-scale F] [--mean-diff-scale F] <backend-dir> <in-domain-embeddings-dir> <dir>"
[ -n "${SV_ROOT:-}" ] || . "$(dirname "$0")/../path.sh"
. utils/parse_options.sh
[ $# -eq 3 ] || { echo -e "$help_message" 1>&2; exit 1; }
backend_dir=$1 embdir=$2 dir=$3

stamp=("$backend_dir/.done" "$backend_dir/mean.vec" "$backend_dir/lda.mat" "$backend_dir/plda"
       "$embdir/xvector.scp" "$embdir/.done" "$within_covar_scale $between_covar_scale $mean_diff_scale"
       "$dir/plda")
if python -m pyutils.cli.marker check "$dir/.done" "${stamp[@]}"; then
  echo "$0: $dir is complete"; exit 0
fi
mkdir -p "$dir/log"
$cmd "$dir/log/adapt_backend.log" python -m pyutils.cli.adapt_backend --backend-dir "$backend_dir" \
  --adapt-scp "$embdir/xvector.scp" --out-dir "$dir" --within-covar-scale $within_covar_scale \
  --between-covar-scale $between_covar_scale --mean-diff-scale $mean_diff_scale
python -m pyutils.cli.marker write "$dir/.done" "${stamp[@]}"
