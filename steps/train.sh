#!/usr/bin/env bash
# Train an embedding network from a YAML config; resumable (epoch checkpoints).
# Skipped when <dir>/.done records the same config and data (its stamp lists
# the config, the data dir's tables and upstream .done markers); a finished or
# half-done run whose config or data changed is refused, naming the changed
# keys, unless --force true (which starts over).  With --nproc N > 1
# it runs under torchrun (DistributedDataParallel, gloo backend).
set -euo pipefail
cmd=utils/run.py
force=false
nproc=1
help_message="Usage: $0 [--cmd CMD] [--force true|false] [--nproc N] <config.yaml> <train-data> <dir>"
[ -n "${SV_ROOT:-}" ] || . "$(dirname "$0")/../path.sh"
. utils/parse_options.sh
[ $# -eq 3 ] || { echo -e "$help_message" 1>&2; exit 1; }
config=$1 data=$2 dir=$3

mapfile -t stamp < <(python -m pyutils.training.inputs "$config" "$data")
if [ "$force" != true ] && python -m pyutils.cli.stamp check "$dir/.done" "${stamp[@]}"; then
  echo "$0: $dir is trained with this config and data (--force true to retrain)"; exit 0
fi
mkdir -p "$dir/log"
extra=(); [ "$force" = true ] && extra=(--force)
launcher=(python); [ "$nproc" -gt 1 ] && launcher=(torchrun --standalone --nproc_per_node "$nproc")
$cmd "$dir/log/train.log" "${launcher[@]}" -m pyutils.cli.train --config "$config" \
  --data "$data" --exp-dir "$dir" "${extra[@]}"
grep -h "epoch .*chunks/s" "$dir/log/train.log" | tail -n 1 || true
