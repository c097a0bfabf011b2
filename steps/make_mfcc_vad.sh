#!/usr/bin/env bash
# Compute MFCC features and energy VAD decisions for a data dir in --nj jobs
# (Kaldi steps/make_mfcc.sh and sid/compute_vad_decision.sh in one pass).
# Writes <featdir>/raw_mfcc_<name>.JOB.{ark,scp}, vad_<name>.JOB.{ark,scp} and
# <data>/{feats.scp,vad.scp,utt2num_frames}; utterances whose audio cannot be
# read are skipped, logged and counted, and removed from <data> (backup kept).
set -euo pipefail
nj=4
cmd=utils/run.py
mfcc_config=conf/mfcc.conf
vad_config=conf/vad.conf
help_message="Usage: $0 [--nj N] [--cmd CMD] <data> <logdir> <featdir>"
[ -n "${SV_ROOT:-}" ] || . "$(dirname "$0")/../path.sh"
. utils/parse_options.sh
[ $# -eq 3 ] || { echo -e "$help_message" 1>&2; exit 1; }
data=$1 logdir=$2 featdir=$3
name=$(basename "$data")

stamp=("$data/wav.scp" "$data/utt2spk" "$data/feats.scp" "$data/vad.scp" "$mfcc_config" "$vad_config")
if python -m pyutils.cli.stamp check "$data/.mfcc_vad.done" "${stamp[@]}"; then
  echo "$0: $data already has features (remove $data/.mfcc_vad.done to redo)"; exit 0
fi
mkdir -p "$logdir" "$featdir"
featdir=$(cd "$featdir" && pwd)
utils/split_data.sh "$data" $nj
sdata=$data/split$nj

$cmd JOB=1:$nj "$logdir/make_mfcc_vad_$name.JOB.log" \
  python -m pyutils.cli.compute_mfcc_vad --mfcc-config "$mfcc_config" --vad-config "$vad_config" \
    "$sdata/JOB" "$featdir/raw_mfcc_$name.JOB" "$featdir/vad_$name.JOB"

python -m pyutils.cli.merge_tables "$data/feats.scp" --nj $nj "$featdir/raw_mfcc_$name.JOB.scp"
python -m pyutils.cli.merge_tables "$data/vad.scp" --nj $nj "$featdir/vad_$name.JOB.scp"
python -m pyutils.cli.merge_tables "$data/utt2num_frames" --nj $nj "$featdir/raw_mfcc_$name.JOB.utt2num_frames"
utils/fix_data_dir.sh "$data"
python -m pyutils.cli.stamp write "$data/.mfcc_vad.done" "${stamp[@]}"
echo "$0: features for $data: $(wc -l < "$data/feats.scp") utterances; logs in $logdir"
