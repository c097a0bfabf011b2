#!/usr/bin/env bash
# Embeddings of every utterance of a data dir (Kaldi extract_xvectors.sh):
# the training CMN and voiced-frame selection, chunks of at most --chunk-size
# frames averaged; writes <dir>/xvector.{ark,scp} per job merged into
# <dir>/xvector.scp, and speaker means <dir>/spk_xvector.{ark,scp}.
set -euo pipefail
nj=4
cmd=utils/run.py
cmvn_config=conf/cmvn.conf
chunk_size=10000
min_chunk_size=25
window=0            # >0: one embedding per window of this many voiced frames
window_shift=0      # (sub-segment ids <utt>-<first>-<end>; writes <dir>/utt2spk)
help_message="Usage: $0 [--nj N] [--cmd CMD] [--chunk-size F] [--window F --window-shift F] <model.pt> <data> <dir>"
[ -n "${SV_ROOT:-}" ] || . "$(dirname "$0")/../path.sh"
. utils/parse_options.sh
[ $# -eq 3 ] || { echo -e "$help_message" 1>&2; exit 1; }
model=$1 data=$2 dir=$3

stamp=("$model" "$data/feats.scp" "$data/vad.scp" "$data/spk2utt" "$cmvn_config"
       "$chunk_size $min_chunk_size $window $window_shift" "$dir/xvector.scp")
if python -m pyutils.cli.stamp check "$dir/.done" "${stamp[@]}"; then
  echo "$0: $dir is complete"; exit 0
fi
mkdir -p "$dir/log"
utils/split_data.sh "$data" $nj
sdata=$data/split$nj
$cmd JOB=1:$nj "$dir/log/extract.JOB.log" \
  python -m pyutils.cli.extract_embeddings --model "$model" --cmvn-config "$cmvn_config" \
    --feats-scp "$sdata/JOB/feats.scp" --vad-scp "$sdata/JOB/vad.scp" \
    --chunk-size $chunk_size --min-chunk-size $min_chunk_size \
    --window $window --window-shift $window_shift \
    --ark "$dir/xvector.JOB.ark" --scp "$dir/xvector.JOB.scp"
python -m pyutils.cli.merge_tables "$dir/xvector.scp" --nj $nj "$dir/xvector.JOB.scp"
if [ $window -gt 0 ]; then
  # speaker of each window = speaker of its utterance (strip -<first>-<end>)
  python -m pyutils.cli.subsegment_utt2spk "$data/utt2spk" "$dir/xvector.scp" "$dir/utt2spk"
else
  python -m pyutils.cli.speaker_mean "$data/spk2utt" "$dir/xvector.scp" "$dir" 2> "$dir/log/speaker_mean.log"
fi
python -m pyutils.cli.stamp write "$dir/.done" "${stamp[@]}"
echo "$0: $(wc -l < "$dir/xvector.scp") embeddings in $dir"
