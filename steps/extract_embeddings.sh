#!/usr/bin/env bash
# Embeddings of every utterance of a data dir (Kaldi extract_xvectors.sh):
# the training CMN and voiced-frame selection, chunks of at most --chunk-size
# frames averaged; writes <dir>/xvector.{ark,scp} per job merged into
# <dir>/xvector.scp, speaker means <dir>/spk_xvector.{ark,scp} and the QMF quality
# measures <dir>/utt2speech_dur, <dir>/utt2magnitude.
set -euo pipefail
[ -n "${SV_ROOT:-}" ] || . "$(dirname "$0")/../path.sh"   # $SV_ROOT: the toolkit, from any directory
__conf=conf; [ -d conf ] || __conf=$SV_ROOT/conf   # the recipe's conf/, else the toolkit's
nj=4
cmd=$SV_ROOT/utils/run.py
cmvn_config=$__conf/cmvn.conf
chunk_size=10000
min_chunk_size=25
window=0            # >0: one embedding per window of this many voiced frames
window_shift=0      # (sub-segment ids <utt>-<first>-<end>; writes <dir>/utt2spk)
num_threads=1       # torch threads per job (results do not depend on it)
input=feats         # feats: feats.scp + vad.scp (CMN, voiced frames); waveform: wav.scp audio
device=cpu          # auto, cpu, cuda or cuda:N (embeddings agree across devices to float rounding)
engine=torch        # torch | compiled (torch.compile) | onnx (ONNX Runtime; exported once per model)
batch_size=1        # >1: equal-length windows of one utterance share a forward pass (float rounding ~1e-6)
bucket=0            # >1: equal-length inputs of this many consecutive utterances share batches (length buckets)
help_message="Usage: $0 [--nj N] [--cmd CMD] [--input feats|waveform] [--num-threads T] [--device D] [--engine torch|compiled|onnx] [--batch-size N] [--bucket U] [--chunk-size F] [--window F --window-shift F] <model.pt> <data> <dir>"
. "$SV_ROOT/utils/parse_options.sh"
for opt in nj chunk_size min_chunk_size num_threads batch_size; do check_int $opt 1; done
check_int window 0; check_int window_shift 0; check_int bucket 0
[ $# -eq 3 ] || { echo -e "$help_message" 1>&2; exit 1; }
model=$1 data=$2 dir=$3

case $input in
  feats) inputs=("$data/feats.scp" "$data/vad.scp" "$data/.mfcc_vad.done" "$cmvn_config") ;;
  waveform) inputs=("$data/wav.scp" "$data/segments") ;;   # a missing file hashes its name
  *) echo "$0: --input must be feats or waveform, got '$input'" 1>&2; exit 1 ;;
esac
case $engine in
  torch|compiled|onnx) ;;
  *) echo "$0: --engine must be torch, compiled or onnx, got '$engine'" 1>&2; exit 1 ;;
esac
batching="engine=$engine batch=$batch_size"; [ $bucket -le 1 ] || batching+=" bucket=$bucket"
# upstream markers (features, training) change whenever those stages reran
stamp=("$model" "$(dirname "$model")/.done" "${inputs[@]}" "$data/spk2utt" "$input"
       "$chunk_size $min_chunk_size $window $window_shift" "$batching" "$dir/xvector.scp")
# QMF quality measures beside the embeddings (utt2speech_dur, utt2magnitude; cheap,
# remade when older than xvector.scp; windows get none)
quality_measures() {
  [ $window -eq 0 ] || return 0
  [ "$dir/utt2magnitude" -nt "$dir/xvector.scp" ] && return 0
  local src=(--data-dir "$data"); [ $input = feats ] && src=(--vad-scp "$data/vad.scp")
  python -m pyutils.cli.quality_measures "${src[@]}" "$dir" 2> "$dir/log/quality_measures.log" || {
    cat "$dir/log/quality_measures.log" 1>&2; exit 1; }
}
if python -m pyutils.cli.marker check "$dir/.done" "${stamp[@]}"; then
  quality_measures
  echo "$0: $dir is complete"; exit 0
fi
mkdir -p "$dir/log"
# Temp files of jobs killed before publishing (finished jobs keep their
# xvector.N.{ark,scp} and per-job marker, and are skipped below).
rm -f "$dir"/.*.tmp
"$SV_ROOT/utils/split_data.sh" "$data" $nj
sdata=$data/split$nj
upstream=(--stamp-extra "$(dirname "$model")/.done")   # job markers see reruns upstream too
[ $input = feats ] && upstream+=(--stamp-extra "$data/.mfcc_vad.done")
if [ $input = feats ]; then
  job_inputs=(--cmvn-config "$cmvn_config" --feats-scp "$sdata/JOB/feats.scp" --vad-scp "$sdata/JOB/vad.scp")
else
  job_inputs=(--data-dir "$sdata/JOB")
fi
engine_opts=(--engine $engine --batch-size $batch_size --bucket $bucket)
if [ $engine = onnx ]; then
  # One export per model, shared by every data set and job; a network that does
  # not export leaves no file and the jobs extract with PyTorch (logged).
  onnx=$(dirname "$model")/extract/embedding.onnx
  python -m pyutils.cli.export_onnx --model "$model" --out "$onnx" \
    --min-chunk-size $min_chunk_size --stamp-extra "$(dirname "$model")/.done" \
    2> "$dir/log/export_onnx.log" || { tail -n 5 "$dir/log/export_onnx.log" 1>&2; exit 1; }
  if [ -f "$onnx" ]; then
    engine_opts+=(--onnx-path "$onnx")
  else
    echo "$0: warning: the network did not export to ONNX ($dir/log/export_onnx.log); extracting with PyTorch" 1>&2
    engine_opts=(--engine torch --batch-size $batch_size --bucket $bucket)
  fi
fi
echo "$0: embeddings of $data in $nj jobs; progress in $dir/log/extract.*.log"
$cmd --num-threads $num_threads JOB=1:$nj "$dir/log/extract.JOB.log" \
  python -m pyutils.cli.extract_embeddings --model "$model" "${job_inputs[@]}" \
    --num-threads $num_threads --device $device "${engine_opts[@]}" "${upstream[@]}" \
    --chunk-size $chunk_size --min-chunk-size $min_chunk_size \
    --window $window --window-shift $window_shift \
    --ark "$dir/xvector.JOB.ark" --scp "$dir/xvector.JOB.scp"
python -m pyutils.cli.merge_tables "$dir/xvector.scp" --nj $nj "$dir/xvector.JOB.scp"
if [ $window -gt 0 ]; then
  # speaker of each window = speaker of its utterance (strip -<first>-<end>)
  python -m pyutils.cli.subsegment_utt2spk "$data/utt2spk" "$dir/xvector.scp" "$dir/utt2spk"
else
  python -m pyutils.cli.compute_speaker_means "$data/spk2utt" "$dir/xvector.scp" "$dir" 2> "$dir/log/compute_speaker_means.log"
fi
quality_measures
python -m pyutils.cli.marker write "$dir/.done" "${stamp[@]}"
# the jobs' counts (their markers' second line: done=N skipped=N padded=N)
read -r padded skipped < <(awk '{for (i = 1; i <= NF; i++) { split($i, kv, "=");
    if (kv[1] == "padded") p += kv[2]; if (kv[1] == "skipped") s += kv[2] } }
  END { print p + 0, s + 0 }' $(seq -f "$dir/xvector.%g.scp.done" $nj))
echo "$0: $(wc -l < "$dir/xvector.scp") embeddings in $dir; $padded padded (fewer voiced frames" \
  "than --min-chunk-size $min_chunk_size), $skipped skipped (no voiced frames): named in $dir/log/extract.*.log"
