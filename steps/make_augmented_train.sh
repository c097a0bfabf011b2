#!/usr/bin/env bash
# Kaldi's offline augmentation of a training set (egs/voxceleb/v2 stages 2-3):
# one copy of <clean-data> per kind in conf/augment.conf (steps/augment_data_dir.sh;
# ids suffixed -<kind>), features of the copies (steps/make_mfcc_vad.sh), the VAD of
# the clean audio kept for them (noise and reverb keep the time alignment), and
# <out-data> = the clean set + the copies (utils/combine_data.sh).
# <clean-data> must have its features and vad.scp (run.sh stage 1). The marker
# <out-data>/.mfcc_vad.done (features complete) is what stage 2 reads, as for any set.
set -euo pipefail
[ -n "${SV_ROOT:-}" ] || . "$(dirname "$0")/../path.sh"   # $SV_ROOT: the toolkit, from any directory
__conf=conf; [ -d conf ] || __conf=$SV_ROOT/conf   # the recipe's conf/, else the toolkit's
nj=2
cmd=$SV_ROOT/utils/run.py
aug_config=$__conf/augment.conf
fbank_config=
help_message="Usage: $0 [--nj N] [--cmd CMD] [--aug-config F] [--fbank-config F] <clean-data> <out-data> <logdir> <featdir>"
. "$SV_ROOT/utils/parse_options.sh"
check_int nj 1
[ $# -eq 4 ] || { echo -e "$help_message" 1>&2; exit 1; }
clean=$1 out=$2 logdir=$3 featdir=$4
. "$aug_config"
for f in feats.scp vad.scp .mfcc_vad.done; do
  [ -f "$clean/$f" ] || { echo "$0: $clean/$f not found (run the feature stage first)" 1>&2; exit 1; }
done

stamp=("$clean/.mfcc_vad.done" "$clean/feats.scp" "$clean/vad.scp" "$aug_config" "${fbank_config:-mfcc}")
if python -m pyutils.cli.marker check "$out/.mfcc_vad.done" "${stamp[@]}"; then
  echo "$0: $out is complete"; exit 0
fi
name=$(basename "$clean")
work=${out}_parts
rm -rf "$work" "$out"
mkdir -p "$work"
copies=()
for kind in $aug_kinds; do
  opts=(--suffix "-$kind" --seed "$aug_seed")
  case $kind in
    reverb) if [ -n "$aug_rir_dir" ]; then opts+=(--rir-dir "$aug_rir_dir"); else opts+=(--simulate-rir true); fi ;;
    noise|music|babble)
      snrs_var=aug_${kind}_snrs
      opts+=(--noise-dir "$aug_noise_dir" --snrs "${!snrs_var}")
      # a MUSAN root has the categories; a plain folder of noise files is one category
      [ -d "$aug_noise_dir/$kind" ] || [ -d "$aug_noise_dir/speech" ] && opts+=(--category "$kind") ;;
    *) echo "$0: $aug_config: unknown augmentation kind '$kind'" 1>&2; exit 1 ;;
  esac
  "$SV_ROOT/steps/augment_data_dir.sh" "${opts[@]}" "$clean" "$work/${name}_$kind"
  copies+=("$work/${name}_$kind")
done
"$SV_ROOT/utils/combine_data.sh" "$work/${name}_aug" "${copies[@]}"
aug=$work/${name}_aug
cp "$aug/vad.scp" "$aug/vad.clean.scp"        # the clean speech's VAD, by copy id
"$SV_ROOT/steps/make_mfcc_vad.sh" --nj $nj --cmd "$cmd" ${fbank_config:+--fbank-config "$fbank_config"} \
  "$aug" "$logdir" "$featdir"
mv "$aug/vad.clean.scp" "$aug/vad.scp"        # Kaldi: no new VAD for augmented copies
"$SV_ROOT/utils/fix_data_dir.sh" "$aug" > /dev/null       # copies whose features failed go
"$SV_ROOT/utils/combine_data.sh" "$out" "$clean" "$aug"
python -m pyutils.cli.marker write "$out/.mfcc_vad.done" "${stamp[@]}"
echo "$0: $out: $(wc -l < "$out/utt2spk") utterances ($(wc -l < "$clean/utt2spk") clean + copies: $aug_kinds)"
