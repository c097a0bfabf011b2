#!/usr/bin/env bash
# Back-end training on training-set embeddings, as Kaldi egs/voxceleb/v2:
# global mean, LDA (--lda-dim, at most speakers-1), length norm, PLDA by EM.
set -euo pipefail
[ -n "${SV_ROOT:-}" ] || . "$(dirname "$0")/../path.sh"   # $SV_ROOT: the toolkit, from any directory
cmd=$SV_ROOT/utils/run.py
lda_dim=200
plda_em_iters=10
help_message="Usage: $0 [--lda-dim D] [--plda-em-iters N] <train-embeddings-dir> <train-data> <dir>
The speakers come from <train-embeddings-dir>/utt2spk when it exists (windowed
embeddings), else from <train-data>/utt2spk."
. "$SV_ROOT/utils/parse_options.sh"
check_int lda_dim 1; check_int plda_em_iters 1
[ $# -eq 3 ] || { echo -e "$help_message" 1>&2; exit 1; }
embdir=$1 data=$2 dir=$3

utt2spk=$data/utt2spk
[ -f "$embdir/utt2spk" ] && utt2spk=$embdir/utt2spk
# the extraction marker names the model: a retrain rewrites the arks at the same
# offsets (an identical xvector.scp), so the scp alone would not show it
stamp=("$embdir/xvector.scp" "$embdir/.done" "$utt2spk" "$lda_dim $plda_em_iters" "$dir/plda")
if python -m pyutils.cli.marker check "$dir/.done" "${stamp[@]}"; then
  echo "$0: $dir is complete"; exit 0
fi
mkdir -p "$dir/log"
$cmd "$dir/log/train_backend.log" python -m pyutils.cli.train_backend \
  --train-scp "$embdir/xvector.scp" --utt2spk "$utt2spk" \
  --lda-dim $lda_dim --plda-em-iters $plda_em_iters --out-dir "$dir"
python -m pyutils.cli.marker write "$dir/.done" "${stamp[@]}"
