#!/usr/bin/env bash
# Stage 0 of run.sh: the data dirs of --corpus (conf/corpora/<c>.conf, local/prepare_<c>.py):
# train, eval with trials, and the held-out calibration speakers (calib), validated.
# With several corpora (--corpus a,b) each is prepared on its own under <data>/corpora/<c>,
# then ids are prefixed and the sets combined: <data>/train, <data>/eval_<c>, <data>/calib.
#   steps/prepare_data.sh [--corpus C[,C]] [--corpus-root DIR] [corpus options] <data>
# Skipped when <data>/.done records the same corpus, settings and code.
set -euo pipefail
[ -n "${SV_ROOT:-}" ] || . ./path.sh
corpus=asc
corpus_root=
. conf/corpora/options.conf
help_message="Usage: $0 [--corpus C[,C]] [--corpus-root DIR] [corpus options of conf/corpora/options.conf] <data>"
. utils/parse_options.sh
[ $# -eq 1 ] || { echo -e "$help_message" 1>&2; exit 1; }
data=$1
IFS=, read -r -a corpora <<< "$corpus"

# One corpus into a data dir: train + eval with trials, then calib.  prepare_corpus CORPUS DIR
prepare_corpus() {
  local c=$1 d=$2 holdout stamp held x
  corpus_calib_holdout= prepare_opts=()
  . "conf/corpora/$c.conf"
  holdout=${calib_holdout:-${corpus_calib_holdout:-0}}
  [ -n "$calib_holdout_list" ] && holdout=list
  [ "$holdout" = 0 ] || [ -z "$calib_speakers" ] || {
    echo "$0: --calib-speakers and --calib-holdout(-list) both choose calibration speakers; give one" \
      "(or --calib-holdout 0)" 1>&2; exit 1; }
  stamp=("$c" "$corpus_root" "conf/corpora/$c.conf" "local/prepare_$c.py" pyutils/data/corpus.py
    pyutils/data/holdout.py "calib_holdout=$holdout" "$calib_holdout_list" "${prepare_opts[@]}")
  python -m pyutils.cli.marker check "$d/.done" "${stamp[@]}" && return 0
  rm -rf "$d/calib"
  python "local/prepare_$c.py" --corpus-root "$corpus_root" "${prepare_opts[@]}" "$d"
  if [ "$holdout" != 0 ]; then
    held=(--num "$holdout"); [ "$holdout" = list ] && held=(--speakers "$calib_holdout_list")
    python -m pyutils.cli.hold_out_speakers "${held[@]}" --eval "$d/eval" "$d/train" "$d/calib" \
      > "$d/calib_speakers"
    echo "$0: $c: calibration speakers (held out of training): $(cat "$d/calib_speakers")"
  fi
  x=; [ -d "$d/calib" ] && x=$d/calib
  for x in "$d/train" "$d/eval" $x; do utils/validate_data_dir.sh --no-feats "$x"; done
  python -m pyutils.cli.marker write "$d/.done" "${stamp[@]}"
}

if [ ${#corpora[@]} -eq 1 ]; then
  prepare_corpus "$corpus" "$data"
  exit 0
fi
parts=() done_markers=() sets=("$data/train")
for c in "${corpora[@]}"; do
  prepare_corpus "$c" "$data/corpora/$c"
  parts+=("$c=$data/corpora/$c") done_markers+=("$data/corpora/$c/.done") sets+=("$data/eval_$c")
done
stamp=("${parts[@]}" "${done_markers[@]}" pyutils/data/combine_corpora.py)
if ! python -m pyutils.cli.marker check "$data/.done" "${stamp[@]}"; then
  python -m pyutils.cli.combine_corpora "$data" "${parts[@]}"
  [ -f "$data/calib/utt2spk" ] && sets+=("$data/calib")
  for x in "${sets[@]}"; do utils/validate_data_dir.sh --no-feats "$x"; done
  python -m pyutils.cli.marker write "$data/.done" "${stamp[@]}"
fi
