#!/usr/bin/env bash
# Training features, as Kaldi's local/nnet3/xvector/prepare_feats_for_egs.sh:
# sliding-window CMN (conf/cmvn.conf) over all frames, then voiced frames only;
# then utterances with fewer than --min-len frames and speakers with fewer than
# --min-num-utts utterances are removed (logged and counted, like run.sh does
# in Kaldi's recipe).
set -euo pipefail
[ -n "${SV_ROOT:-}" ] || . "$(dirname "$0")/../path.sh"   # $SV_ROOT: the toolkit, from any directory
__conf=conf; [ -d conf ] || __conf=$SV_ROOT/conf   # the recipe's conf/, else the toolkit's
nj=4
cmd=$SV_ROOT/utils/run.py
cmvn_config=$__conf/cmvn.conf
min_len=400         # frames after VAD (Kaldi voxceleb v2: 400)
min_num_utts=8      # Kaldi voxceleb v2: 8
help_message="Usage: $0 [--nj N] [--cmd CMD] [--min-len F] [--min-num-utts N] <in-data> <out-data> <logdir> <featdir>"
. "$SV_ROOT/utils/parse_options.sh"
check_int nj 1; check_int min_len 0; check_int min_num_utts 1
[ $# -eq 4 ] || { echo -e "$help_message" 1>&2; exit 1; }
data=$1 out=$2 logdir=$3 featdir=$4
name=$(basename "$out")

# the feature stage's marker changes whenever it reran (a changed MFCC/VAD
# config rewrites the arks at the same offsets: feats.scp alone would not show it)
stamp=("$data/feats.scp" "$data/vad.scp" "$data/.mfcc_vad.done" "$data/utt2spk"
       "$out/feats.scp" "$out/utt2spk" "$cmvn_config" "$min_len $min_num_utts")
if python -m pyutils.cli.marker check "$out/.done" "${stamp[@]}"; then
  echo "$0: $out is complete (remove $out/.done to redo)"; exit 0
fi
mkdir -p "$logdir" "$featdir" "$out"
featdir=$(cd "$featdir" && pwd)
"$SV_ROOT/utils/split_data.sh" "$data" $nj
sdata=$data/split$nj

$cmd JOB=1:$nj "$logdir/prepare_feats_$name.JOB.log" \
  python -m pyutils.cli.prepare_feats --cmvn-config "$cmvn_config" --stamp-extra "$data/.mfcc_vad.done" \
    "$sdata/JOB/feats.scp" "$sdata/JOB/vad.scp" "$featdir/xvector_feats_$name.JOB"

for f in utt2spk spk2utt wav.scp; do cp "$data/$f" "$out/$f"; done
python -m pyutils.cli.merge_tables "$out/feats.scp" --nj $nj "$featdir/xvector_feats_$name.JOB.scp"
python -m pyutils.cli.merge_tables "$out/utt2num_frames" --nj $nj "$featdir/xvector_feats_$name.JOB.utt2num_frames"
python -m pyutils.cli.filter_short --min-len $min_len --min-num-utts $min_num_utts "$out"
"$SV_ROOT/utils/fix_data_dir.sh" "$out"
python -m pyutils.cli.marker write "$out/.done" "${stamp[@]}"
echo "$0: $out: $(wc -l < "$out/utt2spk") utterances of $(wc -l < "$out/spk2utt") speakers"
