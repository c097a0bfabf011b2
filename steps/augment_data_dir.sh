#!/usr/bin/env bash
# Kaldi-style offline augmentation (steps/data/augment_data_dir.py and
# reverberate_data_dir.py): write <dst-data>, a copy of <src-data> whose
# wav.scp entries are pipes that add noise and/or reverberation on read
# (python -m pyutils.cli.augment_audio), utterance ids suffixed, speakers kept.
# Cheap and deterministic (same inputs and --seed give the same files), so it
# simply reruns. Examples (egs/voxceleb/v2 stage 2):
#   steps/augment_data_dir.sh --rir-dir RIRS_NOISES --suffix -reverb data/train data/train_reverb
#   steps/augment_data_dir.sh --noise-dir musan --category noise --snrs 0,5,10,15 --suffix -noise data/train data/train_noise
#   steps/augment_data_dir.sh --noise-dir musan --category music --snrs 5,8,10,15 --suffix -music data/train data/train_music
#   steps/augment_data_dir.sh --noise-dir musan --category babble --snrs 13,15,17,20 --suffix -babble data/train data/train_babble
set -euo pipefail
[ -n "${SV_ROOT:-}" ] || . "$(dirname "$0")/../path.sh"   # $SV_ROOT: the toolkit, from any directory
noise_dir=
category=
snrs=
rir_dir=
simulate_rir=false
suffix=-aug
seed=123
sample_rate=16000
help_message="Usage: $0 [options] <src-data> <dst-data>
  --noise-dir DIR     noise folder or file (a MUSAN root gives categories noise/music/babble)
  --category NAME     only this noise category
  --snrs LIST         SNRs in dB to draw from, e.g. 0,5,10,15 (default: the category's range)
  --rir-dir DIR       RIR folder (an RIRS_NOISES root gives smallroom/mediumroom/...)
  --simulate-rir BOOL simulate a room per recording with pyroomacoustics (default false)
  --suffix SUFFIX     appended to utterance ids (default -aug)
  --seed N            random seed (default 123)
  --sample-rate HZ    rate of the speech (default 16000)"
. "$SV_ROOT/utils/parse_options.sh"
check_int seed 0; check_int sample_rate 1
[ $# -eq 2 ] || { echo -e "$help_message" 1>&2; exit 1; }
src=$1 dst=$2

args=(--suffix "$suffix" --seed "$seed" --sample-rate "$sample_rate")
[ -z "$noise_dir" ] || args+=(--noise-dir "$noise_dir")
[ -z "$category" ] || args+=(--category "$category")
[ -z "$snrs" ] || args+=(--snrs "$snrs")
[ -z "$rir_dir" ] || args+=(--rir-dir "$rir_dir")
case "$simulate_rir" in
  true) args+=(--simulate-rir) ;;
  false) ;;
  *) echo "$0: --simulate-rir must be true or false, got '$simulate_rir'" 1>&2; exit 1 ;;
esac

python -m pyutils.cli.augment_data_dir "${args[@]}" "$src" "$dst"
echo "$0: $dst: $(wc -l < "$dst/utt2spk") augmented utterances from $src"
