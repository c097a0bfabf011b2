#!/usr/bin/env bash
# Stage 1 of run.sh: the features and energy VAD of each data dir, --nj jobs each
# (steps/make_mfcc_vad.sh).  --type mfcc: MFCC in the data dir itself; fbank: Kaldi fbank
# (--fbank-config) in a copy of it named <dir>_fbank, with the VAD from the MFCC energy;
# waveform: nothing (the network reads the audio).  Logs in <exp>/make_<type>/<set>/,
# archives in <featdir>.
#   steps/make_features.sh [--nj N] [--cmd CMD] [--type mfcc|fbank|waveform]
#     [--fbank-config CONF] <exp> <featdir> <data-dir>...
set -euo pipefail
[ -n "${SV_ROOT:-}" ] || . "$(dirname "$0")/../path.sh"   # $SV_ROOT: the toolkit, from any directory
nj=4
cmd=$SV_ROOT/utils/run.py
type=mfcc            # mfcc | fbank | waveform (the training config's features.type)
fbank_config=        # --type fbank: the fbank conf (the training config's features.conf)
help_message="Usage: $0 [--nj N] [--cmd CMD] [--type mfcc|fbank|waveform] [--fbank-config CONF] <exp> <featdir> <data-dir>..."
. "$SV_ROOT/utils/parse_options.sh"
check_int nj 1
[ $# -ge 2 ] || { echo -e "$help_message" 1>&2; exit 1; }
exp=$1 featdir=$2; shift 2
case $type in mfcc|fbank|waveform) ;;
  *) echo "$0: --type $type: expected mfcc, fbank or waveform" 1>&2; exit 1 ;; esac
[ "$type" != fbank ] || [ -n "$fbank_config" ] || { echo "$0: --type fbank needs --fbank-config" 1>&2; exit 1; }

for x in "$@"; do
  name=$(basename "$x")
  if [ "$type" = fbank ]; then
    python -m pyutils.data.original_lists copy-lists "$x" "${x}_fbank"
    "$SV_ROOT/steps/make_mfcc_vad.sh" --nj "$nj" --cmd "$cmd" --fbank-config "$fbank_config" \
      "${x}_fbank" "$exp/make_fbank/$name" "$featdir"
  elif [ "$type" = mfcc ]; then
    "$SV_ROOT/steps/make_mfcc_vad.sh" --nj "$nj" --cmd "$cmd" "$x" "$exp/make_mfcc/$name" "$featdir"
  fi
done
