#!/usr/bin/env bash
# Pack a data dir into tar shards in WeSpeaker's layout (shards_%09d.tar of
# --utts-per-shard utterances, members <key>.spk and <key>.wav/.flac) and
# <shard-dir>/shard.list, for training with `data.format: shard`.
# Skipped when <shard-dir>/.done records the same inputs (the data dir's
# tables and completion marker, and these options).
#   steps/make_shards.sh --utts-per-shard 1000 data/voxceleb/train exp/voxceleb/shards/train
set -euo pipefail
[ -n "${SV_ROOT:-}" ] || . "$(dirname "$0")/../path.sh"   # $SV_ROOT: the toolkit, from any directory
cmd=$SV_ROOT/utils/run.py
utts_per_shard=1000
shuffle=true
seed=777
help_message="Usage: $0 [--utts-per-shard N] [--shuffle true|false] [--seed N] <data> <shard-dir>"
. "$SV_ROOT/utils/parse_options.sh"
check_int utts_per_shard 1; check_int seed 0
[ $# -eq 2 ] || { echo -e "$help_message" 1>&2; exit 1; }
data=$1 dir=$2

stamp=("$data/utt2spk" "$data/wav.scp" "utts_per_shard=$utts_per_shard shuffle=$shuffle seed=$seed")
# upstream markers: a rerun of the stage that wrote the data dir repacks
for f in segments .done .mfcc_vad.done; do [ -f "$data/$f" ] && stamp+=("$data/$f"); done
if python -m pyutils.cli.marker check "$dir/.done" "${stamp[@]}"; then
  echo "$0: $dir is complete"; exit 0
fi
mkdir -p "$dir/log"
$cmd "$dir/log/make_shards.log" python -m pyutils.cli.make_shards \
  --utts-per-shard $utts_per_shard --shuffle $shuffle --seed $seed "$data" "$dir"
python -m pyutils.cli.marker write "$dir/.done" "${stamp[@]}"
echo "$0: $(wc -l < "$dir/shard.list") shards in $dir/shard.list"
