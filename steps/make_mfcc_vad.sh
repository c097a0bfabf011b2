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
# from <data> by utils/fix_data_dir.sh. The lists as given are kept in
# <data>/.orig: a rerun starts from them, and reruns by itself once the audio
# of a failed utterance changes, so fixed audio comes back (pyutils/data/
# original_lists.py). Backups go to <data>/.backup/N, never overwritten. The last
# line gives the counts, e.g.
#   done 10 of 14 utterances (4 failed: 2 unreadable, 1 too short, 1 wrong sample rate)
# Audio at another rate than conf/mfcc.conf's --sample-frequency is refused
# unless --allow-downsample/--allow-upsample=true is set there (then resampled).
set -euo pipefail
[ -n "${SV_ROOT:-}" ] || . "$(dirname "$0")/../path.sh"   # $SV_ROOT: the toolkit, from any directory
__conf=conf; [ -d conf ] || __conf=$SV_ROOT/conf   # the recipe's conf/, else the toolkit's
nj=4
cmd=$SV_ROOT/utils/run.py
mfcc_config=$__conf/mfcc.conf
vad_config=$__conf/vad.conf
fbank_config=
help_message="Usage: $0 [--nj N] [--cmd CMD] [--mfcc-config F] [--vad-config F] [--fbank-config F] <data> <logdir> <featdir>"
. "$SV_ROOT/utils/parse_options.sh"
check_int nj 1
[ $# -eq 3 ] || { echo -e "$help_message" 1>&2; exit 1; }
data=$1 logdir=$2 featdir=$3
name=$(basename "$data")

for f in "$mfcc_config" "$vad_config" "$data/wav.scp"; do
  [ -f "$f" ] || { echo "$0: no such file $f" 1>&2; exit 1; }
done
kind=mfcc; [ -n "$fbank_config" ] && kind=fbank
skipped=$logdir/skipped_$name
# The marker covers the user's lists as given (kept in $data/.orig when a run
# dropped utterances), the configs, and the audio files of the utterances
# that failed last time: replacing a broken file reruns the stage.
stamp_of_inputs() {
  stamp=("$(python -m pyutils.data.original_lists digest "$data" --failed "$skipped")"
         "$data/feats.scp" "$data/vad.scp" "$mfcc_config" "$vad_config" "${fbank_config:-mfcc}")
}
stamp_of_inputs
if python -m pyutils.cli.marker check "$data/.mfcc_vad.done" "${stamp[@]}"; then
  echo "$0: $data already has features (remove $data/.mfcc_vad.done to redo)"; exit 0
fi
# Start from the user's lists (every utterance, also those a run dropped), and
# move the outputs of an earlier run aside (numbered backup), as Kaldi's
# make_mfcc.sh does.
python -m pyutils.data.original_lists restore "$data"
python -m pyutils.data.original_lists backup "$data" feats.scp vad.scp utt2num_frames > /dev/null
rm -f "$data/.mfcc_vad.done"
"$SV_ROOT/utils/validate_data_dir.sh" --no-feats "$data" > /dev/null || {
  echo "$0: $data is not a valid data dir (problems above); utils/fix_data_dir.sh repairs most" 1>&2
  exit 1; }
mkdir -p "$logdir" "$featdir"
featdir=$(cd "$featdir" && pwd)
"$SV_ROOT/utils/split_data.sh" "$data" $nj
sdata=$data/split$nj
total=$(wc -l < "$data/utt2spk")

echo "$0: $kind features and VAD of $total utterances of $data in $nj jobs;" \
  "progress in $logdir/make_mfcc_vad_$name.*.log"
if ! $cmd JOB=1:$nj "$logdir/make_mfcc_vad_$name.JOB.log" \
  python -m pyutils.cli.compute_mfcc_vad --mfcc-config "$mfcc_config" --vad-config "$vad_config" \
    ${fbank_config:+--fbank-config "$fbank_config"} --stamp-extra "failed-audio ${stamp[0]#*-}" \
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
summary=$(python -m pyutils.data.skipped_items --total "$total" --done "$(wc -l < "$data/feats.scp")" \
  --what utterances --verb failed "$skipped")
if [ -s "$skipped" ]; then
  echo "$0: $data: $summary; the failed utterances are listed in $skipped" \
    "and their reasons in the job logs. They are left out of $data until their audio" \
    "is fixed: the full lists are kept in $data/.orig, and rerunning this step after" \
    "fixing the audio brings them back" 1>&2
fi
python -m pyutils.data.original_lists keep "$data" --skipped "$skipped"
"$SV_ROOT/utils/fix_data_dir.sh" "$data"
python -m pyutils.data.original_lists record "$data"
stamp_of_inputs
python -m pyutils.cli.marker write "$data/.mfcc_vad.done" "${stamp[@]}"
echo "$0: features for $data: $summary; logs in $logdir"
