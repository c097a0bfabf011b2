#!/usr/bin/env bash
# Package a trained model for use outside the recipe (the sv command): its weights,
# the feature configs it was trained with, the back-end (mean, LDA, PLDA), the
# calibration and thresholds (when stage 6 made them), ONNX and TorchScript exports
# checked against PyTorch, and manifest.json (what each file is, its sha256, versions).
set -euo pipefail
[ -n "${SV_ROOT:-}" ] || . "$(dirname "$0")/../path.sh"   # $SV_ROOT: the toolkit, from any directory
__conf=conf; [ -d conf ] || __conf=$SV_ROOT/conf   # the recipe's conf/, else the toolkit's
cmd=$SV_ROOT/utils/run.py
mfcc_config=$__conf/mfcc.conf
fbank_config=       # fbank models: their features.conf (default: the training config's)
vad_config=$__conf/vad.conf
cmvn_config=$__conf/cmvn.conf
backend_dir=        # default: <model-dir>/backend
calibration_dir=    # <backend>.json calibrations (default: <model-dir>/calibration; none: uncalibrated)
cosine_mean=train   # conf/backend.conf's: train (centre by mean.vec) | none (Kaldi's cosine)
export=true         # false: no ONNX / TorchScript (sv --runtime torch only)
archive=false       # true: also <package-dir>.tar.gz
help_message="Usage: $0 [--cmd CMD] [--mfcc-config F] [--fbank-config F] [--vad-config F] [--cmvn-config F]
  [--backend-dir DIR] [--calibration-dir DIR] [--cosine-mean train|none] [--export true|false]
  [--archive true|false] <model-dir> <package-dir>
<model-dir> holds final.pt (stage 3) and backend/ (stage 5); <package-dir> is usually <model-dir>/package."
. "$SV_ROOT/utils/parse_options.sh"
[ $# -eq 2 ] || { echo -e "$help_message" 1>&2; exit 1; }
model_dir=$1 pkg=$2
backend_dir=${backend_dir:-$model_dir/backend}
calibration_dir=${calibration_dir:-$model_dir/calibration}
for f in "$model_dir/final.pt" "$backend_dir/mean.vec"; do
  [ -f "$f" ] || { echo "$0: no $f (train the model and its back-end first: run.sh stages 3-5)" 1>&2; exit 1; }
done
opts=(--model "$model_dir/final.pt" --backend-dir "$backend_dir" --mfcc-config "$mfcc_config"
      --vad-config "$vad_config" --cmvn-config "$cmvn_config" --cosine-mean "$cosine_mean")
[ -n "$fbank_config" ] && opts+=(--fbank-config "$fbank_config")
[ -d "$calibration_dir" ] && opts+=(--calibration-dir "$calibration_dir")
[ "$export" = true ] || opts+=(--no-export)
[ "$archive" = true ] && opts+=(--archive)
# upstream markers (training, back-end, each calibration) change whenever those stages reran
calibrations=()
[ -d "$calibration_dir" ] && calibrations=($(ls "$calibration_dir"/*.json "$calibration_dir"/*.done 2>/dev/null || true))
# the exporter's version too (which export path runs is decided by final.pt, stamped already)
exporter=none
[ "$export" = true ] && exporter=$(python -c 'from pyutils.deploy.export import exporter_version; print(exporter_version())')
stamp=("$model_dir/final.pt" "$model_dir/.done" "$backend_dir/.done" "$mfcc_config" "$vad_config"
       "$cmvn_config" "${fbank_config:-none}" "${calibrations[@]}" "${opts[*]}" "$exporter"
       "$pkg/manifest.json")
if python -m pyutils.cli.marker check "$pkg.done" "${stamp[@]}"; then
  echo "$0: $pkg is up to date"; exit 0
fi
mkdir -p "$model_dir/log"
echo "$0: packaging $model_dir into $pkg (ONNX/TorchScript export: $export); log in $model_dir/log/package.log"
$cmd "$model_dir/log/package.log" python -m pyutils.cli.sv package "${opts[@]}" "$pkg"
python -m pyutils.cli.marker write "$pkg.done" "${stamp[@]}"
echo "$0: $pkg: $(python -c 'import json,sys; from pyutils.deploy.package import export_summary; m=json.load(open(sys.argv[1])); print(m["model"]["name"], "| back-ends:", " ".join(m["backends"]) or "none", "| calibrated:", " ".join(m["calibration"]) or "none", "| exports:", export_summary(m))' "$pkg/manifest.json")"
