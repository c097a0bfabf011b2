#!/usr/bin/env bash
# A cross-corpus run's model dir: relative links to what the source run made and this run
# only reads -- the network (final.pt, its config and training records) and the embeddings
# of its training and calibration sets (embeddings_train, embeddings_train_windows,
# embeddings_calib) -- so stages 5-7 train the back-end on the source corpus, calibrate
# on its calibration trials and write everything else in <dir>.  Nothing under
# <source-dir> is written.
#   steps/link_model.sh <source-dir> <dir>
set -euo pipefail
[ $# -eq 2 ] || { echo "Usage: $0 <source-dir> <dir>" 1>&2; exit 1; }
src=$1 dir=$2
for need in final.pt embeddings_train/.done; do
  [ -f "$src/$need" ] || { echo "$0: $src/$need not found: run the source corpus's recipe" \
    "through stage 4 first (./run.sh --corpus ... --model ... --stop-stage 4)" 1>&2; exit 1; }
done
mkdir -p "$dir"
[ "$(cd "$src" && pwd -P)" != "$(cd "$dir" && pwd -P)" ] || {
  echo "$0: the source dir and the cross-corpus dir are one ($dir)" 1>&2; exit 1; }
for name in final.pt config.yaml inputs.json train_summary.json train_info.json \
    embeddings_train embeddings_train_windows embeddings_calib; do
  [ -e "$src/$name" ] || continue
  if [ -e "$dir/$name" ] && [ ! -L "$dir/$name" ]; then
    echo "$0: $dir/$name exists and is not a link; remove it to link $src/$name" 1>&2; exit 1
  fi
  ln -sfn "$(realpath --relative-to="$dir" "$src/$name")" "$dir/$name"
done
echo "$0: $dir links the network and the training/calibration embeddings of $src"
