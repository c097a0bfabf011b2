#!/usr/bin/env bash
# Compute MFCC features and energy VAD decisions for a data dir in --nj jobs
# (Kaldi steps/make_mfcc.sh and sid/compute_vad_decision.sh in one pass).
# With --fbank-config F the features are Kaldi fbank (steps/make_fbank.sh) and
# the VAD still comes from the MFCC energy on the same frames.
# Writes <featdir>/raw_mfcc_<name>.JOB.{ark,scp}, vad_<name>.JOB.{ark,scp} and
# <data>/{feats.scp,vad.scp,utt2num_frames}.
#
# The data dir is validated first (utils/validate_data_dir.sh --no-feats):
# duplicate or unsorted ids, malformed lines, utt2spk/spk2utt disagreements
# and trials naming unknown utterances stop the step, naming file and line.
# Utterances whose audio cannot be used (missing, unreadable, not audio,
# truncated, failing pipe, empty, too short, wrong sample rate, multi-channel,
# NaN samples; see pyutils/cli/compute_mfcc_vad.py) are skipped, logged and
# counted by reason; they are listed in <logdir>/skipped_<name> and removed
# from <data> by utils/fix_data_dir.sh (backup in <data>/.backup). The last
# line gives the counts, e.g.
#   done 10 of 14 utterances (4 failed: 2 unreadable, 1 too short, 1 wrong sample rate)
# Audio at another rate than conf/mfcc.conf's --sample-frequency is refused
# unless --allow-downsample/--allow-upsample=true is set there (then resampled).
set -euo pipefail
nj=4
cmd=utils/run.py
mfcc_config=conf/mfcc.conf
vad_config=conf/vad.conf
fbank_config=
help_message="Usage: $0 [--nj N] [--cmd CMD] [--mfcc-config F] [--vad-config F] [--fbank-config F] <data> <logdir> <featdir>"
[ -n "${SV_ROOT:-}" ] || . "$(dirname "$0")/../path.sh"
. utils/parse_options.sh
[ $# -eq 3 ] || { echo -e "$help_message" 1>&2; exit 1; }
data=$1 logdir=$2 featdir=$3
name=$(basename "$data")

stamp=("$data/wav.scp" "$data/utt2spk" "$data/feats.scp" "$data/vad.scp" "$mfcc_config" "$vad_config"
       "${fbank_config:-mfcc}")
kind=mfcc; [ -n "$fbank_config" ] && kind=fbank
if python -m pyutils.cli.stamp check "$data/.mfcc_vad.done" "${stamp[@]}"; then
  echo "$0: $data already has features (remove $data/.mfcc_vad.done to redo)"; exit 0
fi
for f in "$mfcc_config" "$vad_config" "$data/wav.scp"; do
  [ -f "$f" ] || { echo "$0: no such file $f" 1>&2; exit 1; }
done
# Outputs of an earlier run would be checked against the (maybe new) utt2spk:
# move them aside first, as Kaldi's make_mfcc.sh does.
for f in feats.scp vad.scp utt2num_frames; do
  if [ -f "$data/$f" ]; then mkdir -p "$data/.backup"; mv "$data/$f" "$data/.backup/$f"; fi
done
utils/validate_data_dir.sh --no-feats "$data" > /dev/null || {
  echo "$0: $data is not a valid data dir (problems above); utils/fix_data_dir.sh repairs most" 1>&2
  exit 1; }
mkdir -p "$logdir" "$featdir"
featdir=$(cd "$featdir" && pwd)
utils/split_data.sh "$data" $nj
sdata=$data/split$nj
total=$(wc -l < "$data/utt2spk")

if ! $cmd JOB=1:$nj "$logdir/make_mfcc_vad_$name.JOB.log" \
  python -m pyutils.cli.compute_mfcc_vad --mfcc-config "$mfcc_config" --vad-config "$vad_config" \
    ${fbank_config:+--fbank-config "$fbank_config"} \
    "$sdata/JOB" "$featdir/raw_${kind}_$name.JOB" "$featdir/vad_$name.JOB"; then
  for j in $(seq $nj); do
    log=$logdir/make_mfcc_vad_$name.$j.log
    if [ -f "$log" ] && ! grep -q "^# Ended (code 0)" "$log"; then
      echo "$0: job $j failed; the end of $log:" 1>&2
      grep -v "^#" "$log" | tr '\r' '\n' | grep -v "utt/s\]$" | grep -v '^[[:space:]]*$' | tail -n 5 | sed 's/^/    /' 1>&2
    fi
  done
  exit 1
fi

python -m pyutils.cli.merge_tables "$data/feats.scp" --nj $nj "$featdir/raw_${kind}_$name.JOB.scp"
python -m pyutils.cli.merge_tables "$data/vad.scp" --nj $nj "$featdir/vad_$name.JOB.scp"
python -m pyutils.cli.merge_tables "$data/utt2num_frames" --nj $nj "$featdir/raw_${kind}_$name.JOB.utt2num_frames"
python -m pyutils.cli.merge_tables "$logdir/skipped_$name" --nj $nj "$featdir/raw_${kind}_$name.JOB.skipped"
summary=$(python -m pyutils.data.skips --total "$total" --done "$(wc -l < "$data/feats.scp")" \
  --what utterances --verb failed "$logdir/skipped_$name")
if [ -s "$logdir/skipped_$name" ]; then
  echo "$0: $data: $summary; the failed utterances are listed in $logdir/skipped_$name" \
    "and their reasons in the job logs; they are removed from $data" 1>&2
fi
utils/fix_data_dir.sh "$data"
python -m pyutils.cli.stamp write "$data/.mfcc_vad.done" "${stamp[@]}"
echo "$0: features for $data: $summary; logs in $logdir"
