#!/usr/bin/env bash
# Stage 7 of run.sh: for each evaluation set, EER, minDCF and Cllr of each system scored in
# stage 6 (the same <backend>[_adapt][_<norm>][_qmf] list), with speaker-bootstrap CIs, the DET
# curve and the results table (printed; steps/compute_metrics.sh), its run_info.json, and each
# system's calibration thresholds applied to the set (threshold_shift in results.json and
# threshold_shift.md: intended and measured error rates; pyutils/cli/threshold_shift.py);
# then the table and DET plot of every system trained under <exp> on that set.
#   steps/evaluate_systems.sh [options] <exp> <model-dir> <eval-data>...
# Set "eval": <model-dir>/results.md, <exp>/results.md, <exp>/det_all.png; another set S:
# <model-dir>/S/results.md, <exp>/results_S.md, <exp>/det_all_S.png.  The thresholds of the
# first set are stage 6's calibration/<system>.json, of another S calibration/<system>_S.json.  Subgroup trial lists
# beside a set's trials (trials_<group>, e.g. so762-v1's trials_adult-adult) are rows too.
set -euo pipefail
[ -n "${SV_ROOT:-}" ] || . "$(dirname "$0")/../path.sh"   # $SV_ROOT: the toolkit, from any directory
system=                     # the network's name in the tables (default: <model-dir>'s name)
backends="cosine plda"      # as steps/score_systems.sh
adapted=false
score_norms=asnorm
qmf=
corpora=                    # each evaluation set's corpus, in order (run_info.json)
protocols=                  # each evaluation set's protocol, in order (run_info.json)
train_data=                 # recorded in run_info.json
calibration=                # what calibrated the scores, in words (run_info.json)
train_corpus=               # run_info.json: the corpus the network and back-end trained on
model_dir=                  # run_info.json: the trained network's dir (a cross-corpus run's source)
backend_data=               # run_info.json: the back-end's training data
plda_adapt_data=            # run_info.json: the back-end's unlabelled in-domain data (or empty)
calibration_data=           # run_info.json: the calibration data (dir or trial list)
threshold_targets="far=0.01 frr=0.05"   # target rates of the thresholds picked on the calibration trials
help_message="Usage: $0 [--system NAME] [--backends 'cosine plda'] [--adapted true|false] [--score-norms 'asnorm'] [--qmf 'dur'] [--corpora 'C...'] [--protocols 'P...'] [--train-data DIR] [--calibration TEXT] [--train-corpus C] [--model-dir DIR] [--backend-data DIR] [--plda-adapt-data DIR] [--calibration-data PATH] [--threshold-targets 'far=0.01 frr=0.05'] <exp> <model-dir> <eval-data>..."
. "$SV_ROOT/utils/parse_options.sh"
[ $# -ge 3 ] || { echo -e "$help_message" 1>&2; exit 1; }
exp=$1 dir=$2; shift 2
system=${system:-$(basename "$dir")}
read -r -a corpus_of <<< "$corpora"
read -r -a protocol_of <<< "$protocols"

variants=(""); [ "$adapted" = true ] && variants+=(_adapt)
scored=$(for b in $backends; do for v in "${variants[@]}"; do for n in none $score_norms; do
  s=$b$v; [ $n = none ] || s=${b}${v}_$n; echo -n "$s "; [ -z "$qmf" ] || echo -n "${s}_qmf "
done; done; done)
i=0
for x in "$@"; do  # results per evaluation set: $dir for the set "eval", else $dir/<set>
  name=$(basename "$x") scores=$dir/scores out=$dir suffix=
  [ "$name" = eval ] || scores=$dir/scores_$name out=$dir/$name suffix=_$name
  subgroups=$(for t in "$x"/trials_*; do [ -f "$t" ] && echo -n "${t##*/trials_}=$t "; done || true)
  python -m pyutils.cli.run_info "$out/run_info.json" "corpus=${corpus_of[$i]:-}" "eval_set=$name" \
    "protocol=${protocol_of[$i]:-}" "train_data=$train_data" "calibration=$calibration" \
    "trials=$x/trials" "train_corpus=$train_corpus" "eval_corpus=${corpus_of[$i]:-}" \
    "model_dir=$model_dir" "backend_data=$backend_data" "plda_adapt_data=$plda_adapt_data" \
    "calibration_data=$calibration_data"
  cal_suffix=; [ $i -eq 0 ] || cal_suffix=_$name   # stage 6's calibration file names
  i=$((i + 1))
  "$SV_ROOT/steps/compute_metrics.sh" --system "$system" --backends "$scored" \
    --subgroups "$subgroups" "$x/trials" "$scores" "$out"
  cat "$out/results.md"
  mkdir -p "$out/log"
  if ! python -m pyutils.cli.threshold_shift --trials "$x/trials" --scores-dir "$scores" \
      --calibration-dir "$dir/calibration" --suffix "$cal_suffix" --targets "$threshold_targets" \
      --results "$out/results.json" --table "$out/threshold_shift.md" $scored \
      > "$out/log/threshold_shift.log" 2>&1; then
    tail -n 5 "$out/log/threshold_shift.log" 1>&2
    echo "$0: threshold shift failed; log is in $out/log/threshold_shift.log" 1>&2
    exit 1
  fi
  cat "$out/threshold_shift.md"
  sets=("$exp"/*/); [ "$name" = eval ] || sets=("$exp"/*/"$name"/)   # after $out exists
  if python -m pyutils.cli.compare_systems --out "$exp/results$suffix.md" \
      --det-png "$exp/det_all$suffix.png" "${sets[@]}" > /dev/null 2> "$out/log/compare_systems.log"; then
    echo "Every system under $exp on $name: $exp/results$suffix.md, DET curves $exp/det_all$suffix.png"
  else
    echo "$0: warning: the comparison table failed; see $out/log/compare_systems.log" 1>&2
  fi
done
