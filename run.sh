#!/usr/bin/env bash
# Speaker verification recipe on the ASC demo corpus (protocol asc-v1):
# MFCC + energy VAD -> x-vector TDNN -> cosine and LDA+PLDA -> EER / minDCF.
# Modelled on Kaldi egs/voxceleb/v2/run.sh and WeSpeaker examples/voxceleb/v2.
#
#   ./run.sh                          # every stage
#   ./run.sh --stage 4 --stop-stage 6 # only some stages
#
# Each stage is idempotent: it skips work whose completion marker exists, and
# resumes half-done work (per-job markers, epoch checkpoints).
set -euo pipefail

stage=0
stop_stage=8
nj=2                        # parallel jobs for features / extraction
model=xvector               # network name: names $exp/$model and the default config
train_config=               # training YAML (default conf/$model.yaml)
corpus_root=${SV_CORPUS_ROOT:-$(cd "$(dirname "$0")/.." && pwd)/shared/corpora}
corpus=asc                  # asc | speechocean762 | voxceleb | cnceleb | librispeech | folder
                            # (conf/corpora/); a comma list (asc,speechocean762) trains on the union
data=                       # data dirs: $data/train, $data/eval, ... (default data/$corpus)
exp=                        # outputs: $exp/$model/..., $exp/results.md (default exp/$corpus)
reps=                       # asc: e.g. "01,02" to use some repetitions (default: all)
train_speakers=             # asc: e.g. "1-4" to use a slice (default 1-18, asc-v1)
eval_speakers=              # asc: e.g. "19-22" (default 19-30, asc-v1)
calib_speakers=             # asc: held-out speakers whose trials calibrate the scores, e.g. "16-18"
                            # (with --train-speakers 1-15); default none: training-utterance trials
calib_holdout=              # any corpus: N training speakers held out into $data/calib for calibration
                            # (default: the corpus conf's corpus_calib_holdout, so762 15; 0: none)
calib_holdout_list=         # any corpus: the held-out speakers by id instead: ID,ID or a file of ids
force=false                 # true: retrain even if the model is complete
nproc_per_node=1            # stage 3: training processes per node (torchrun; one per GPU)
nnodes=1                    # stage 3: nodes (run run.sh --stage 3 on each with its --node-rank)
node_rank=0                 # stage 3: this node's rank, 0..nnodes-1
rdzv_endpoint=              # stage 3: HOST:PORT of node 0 (needed with --nnodes > 1)
aug=false                   # true: the network trains on the training set + augmented copies (conf/augment.conf)
unlabelled_data=            # stage 3, label-free configs (ssl:): more data dirs of audio, DIR[,DIR]
init_from=                  # stage 3: start from this final.pt (trained or imported; docs/pretrained.md)
help_message="Usage: $0 [--stage N] [--stop-stage N] [--nj N] [--model NAME] [--train-config YAML]
  [--corpus asc|speechocean762|voxceleb|cnceleb|librispeech|folder[,CORPUS...]] [--corpus-root DIR]
  [--data DIR] [--exp DIR] [--reps LIST]
  [--train-speakers RANGES] [--eval-speakers RANGES] [--calib-speakers RANGES]
  [--calib-holdout N] [--calib-holdout-list IDS|FILE]
  [--force true|false] [--aug true|false]
  [--nproc-per-node N] [--nnodes M --node-rank R --rdzv-endpoint HOST:PORT]
  [--unlabelled-data DIR[,DIR]] [--init-from FINAL_PT]
Stages 0-7 prepare, train, score and evaluate; stage 8 packages the model for the sv command."

cd "$(dirname "$0")"
. ./path.sh
. ./cmd.sh
. ./conf/feats.conf
. ./conf/backend.conf
. ./conf/extract.conf
. utils/parse_options.sh
[ $# -eq 0 ] || { echo "$0: unexpected argument '$1' (options are --name value; --help)" 1>&2; exit 1; }
# Every number, once, before any work: the options' and conf/feats.conf's and
# conf/backend.conf's (utils/parse_options.sh: check_int, check_number).
check_int stage 0; check_int stop_stage 0    # a large --stop-stage means "to the end"
[ "$stage" -le 8 ] || { echo "$0: --stage $stage: the stages are 0-8" 1>&2; exit 1; }
[ "$stop_stage" -ge "$stage" ] || {
  echo "$0: --stop-stage $stop_stage is before --stage $stage: nothing would run" 1>&2; exit 1; }
for opt in nj nproc_per_node nnodes; do check_int $opt 1; done
check_int node_rank 0 $((10#$nnodes - 1))
[ "$nnodes" -eq 1 ] || [ -n "$rdzv_endpoint" ] || {
  echo "$0: --nnodes $nnodes needs --rdzv-endpoint HOST:PORT (node 0's)" 1>&2; exit 1; }
check_int min_len 0 "" conf/feats.conf; check_int min_num_utts 1 "" conf/feats.conf
for opt in lda_dim plda_em_iters asnorm_top_k; do check_int $opt 1 "" conf/backend.conf; done
for opt in backend_window calibration_max_trials; do check_int $opt 0 "" conf/backend.conf; done
[ "$backend_window" -eq 0 ] || check_int backend_window_shift 1 "" conf/backend.conf
check_number calibration_prior 0 1 conf/backend.conf
export SV_CORPUS_ROOT=$corpus_root   # configs may name $SV_CORPUS_ROOT (augmentation noise)
# The corpus (or corpora: --corpus a,b): each prepared by local/prepare_<c>.py with the
# settings of conf/corpora/<c>.conf (which sets prepare_opts); only stage 0 reads them.
IFS=, read -r -a corpora <<< "$corpus"
for c in "${corpora[@]}"; do
  [ -f "conf/corpora/$c.conf" ] && [ -f "local/prepare_$c.py" ] || {
    echo "$0: --corpus $corpus: no conf/corpora/$c.conf or local/prepare_$c.py" 1>&2; exit 1; }
  # A corpus of short utterances may lower stage 2's min_len (conf/feats.conf): corpus_min_len.
  corpus_min_len=; . "conf/corpora/$c.conf"
  [ -z "$corpus_min_len" ] || [ "$corpus_min_len" -ge "$min_len" ] || min_len=$corpus_min_len
done
[ ${#corpora[@]} -gt 0 ] || { echo "$0: --corpus is empty" 1>&2; exit 1; }
[ ${#corpora[@]} -eq 1 ] || [ -z "$calib_holdout_list" ] || {
  echo "$0: --calib-holdout-list names one corpus's speakers; with several corpora use --calib-holdout N" 1>&2
  exit 1; }
data=${data:-data/${corpus//,/+}}
exp=${exp:-exp/${corpus//,/+}}

train=$data/train
# Evaluation sets: $data/eval, or with several corpora each one's own $data/eval_<corpus>.
evals=("$data/eval")
[ ${#corpora[@]} -eq 1 ] || evals=("${corpora[@]/#/$data/eval_}")
eval=${evals[0]}
# Held-out speakers for calibration (stage 6): $data/calib when stage 0 made one.
calib_dir() { [ -f "$data/calib/utt2spk" ] && echo "$data/calib" || true; }
calib=$(calib_dir)
adapt=$plda_adapt_data      # unlabelled in-domain data dir (conf/backend.conf), or none
dir=$exp/$model
mfccdir=$exp/mfcc           # feature archives (the scp files in the data dirs point here)
train_config=${train_config:-conf/$model.yaml}
[ -f "$train_config" ] || { echo "$0: no training config $train_config (--model/--train-config)" 1>&2; exit 1; }
if [ -n "$init_from" ]; then   # the config with the model and front-end of --init-from
  python -m pyutils.models.convert.adapt "$train_config" "$init_from" "$exp/$model/init_config.yaml"
  train_config=$exp/$model/init_config.yaml
fi
# The network's input, from its config: mfcc | fbank (precomputed or on the fly) | waveform.
feat_type=$(python -m pyutils.cli.config_get "$train_config" features.type mfcc)
feat_conf=$(python -m pyutils.cli.config_get "$train_config" features.conf conf/mfcc.conf)
on_the_fly=$(python -m pyutils.cli.config_get "$train_config" features.on_the_fly false)
# data.format: raw (the data dir) | shard (tar shards of the training audio, made in stage 2).
data_format=$(python -m pyutils.cli.config_get "$train_config" data.format raw)
utts_per_shard=$(python -m pyutils.cli.config_get "$train_config" data.utts_per_shard 1000)
check_int utts_per_shard 1 "" "$train_config (data.utts_per_shard)"
# Feature data dirs: MFCC features live in the data dirs themselves, fbank
# features in copies named <set>_fbank; waveform models read the audio.
case $feat_type in
  mfcc|waveform) ftrain=$train; fevals=("${evals[@]}"); fcalib=$calib; fadapt=$adapt ;;
  fbank) ftrain=${train}_fbank; fevals=("${evals[@]/%/_fbank}"); fcalib=${calib:+${calib}_fbank}
         fadapt=${adapt:+${adapt}_fbank} ;;
  *) echo "$0: $train_config: unknown features.type '$feat_type'" 1>&2; exit 1 ;;
esac
# What the network trains on: the training set, or with --aug true the set plus
# Kaldi-style augmented copies (made in stage 1; the back-end still uses the clean set).
nntrain=$ftrain
shards=$exp/shards/$(basename "$ftrain")   # data.format: shard: the training data dir (stage 2)
if [ "$aug" = true ]; then
  { [ $feat_type = waveform ] || [ $on_the_fly = true ]; } && {
    echo "$0: --aug true needs precomputed features; $train_config augments online (its augmentation:)" 1>&2; exit 1; }
  nntrain=${ftrain}_combined
fi

# Stage 0 of one corpus into a data dir: train + eval with trials, then the held-out
# calibration speakers (calib), validated.  prepare_corpus CORPUS DIR
prepare_corpus() {
  local c=$1 d=$2 holdout stamp held x
  corpus_calib_holdout= prepare_opts=()
  . "conf/corpora/$c.conf"
  holdout=${calib_holdout:-${corpus_calib_holdout:-0}}
  [ -n "$calib_holdout_list" ] && holdout=list
  [ "$holdout" = 0 ] || [ -z "$calib_speakers" ] || {
    echo "$0: --calib-speakers and --calib-holdout(-list) both choose calibration speakers; give one" \
      "(or --calib-holdout 0)" 1>&2; exit 1; }
  stamp=("$c" "$corpus_root" "conf/corpora/$c.conf" "local/prepare_$c.py" pyutils/data/corpus.py
    pyutils/data/holdout.py "calib_holdout=$holdout" "$calib_holdout_list" "${prepare_opts[@]}")
  python -m pyutils.cli.stamp check "$d/.done" "${stamp[@]}" && return 0
  rm -rf "$d/calib"
  python "local/prepare_$c.py" --corpus-root "$corpus_root" "${prepare_opts[@]}" "$d"
  if [ "$holdout" != 0 ]; then
    held=(--num "$holdout"); [ "$holdout" = list ] && held=(--speakers "$calib_holdout_list")
    python -m pyutils.cli.hold_out_speakers "${held[@]}" --eval "$d/eval" "$d/train" "$d/calib" \
      > "$d/calib_speakers"
    echo "$0: $c: calibration speakers (held out of training): $(cat "$d/calib_speakers")"
  fi
  x=; [ -d "$d/calib" ] && x=$d/calib
  for x in "$d/train" "$d/eval" $x; do utils/validate_data_dir.sh --no-feats "$x"; done
  python -m pyutils.cli.stamp write "$d/.done" "${stamp[@]}"
}
if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  if [ ${#corpora[@]} -eq 1 ]; then
    prepare_corpus "$corpus" "$data"
  else  # each corpus on its own under $data/corpora/, then ids prefixed and sets combined
    parts=() done_markers=()
    for c in "${corpora[@]}"; do
      prepare_corpus "$c" "$data/corpora/$c"
      parts+=("$c=$data/corpora/$c") done_markers+=("$data/corpora/$c/.done")
    done
    stamp=("${parts[@]}" "${done_markers[@]}" pyutils/data/combine_corpora.py)
    if ! python -m pyutils.cli.stamp check "$data/.done" "${stamp[@]}"; then
      python -m pyutils.cli.combine_corpora "$data" "${parts[@]}"
      for x in "$train" "${evals[@]}" $(calib_dir); do utils/validate_data_dir.sh --no-feats "$x"; done
      python -m pyutils.cli.stamp write "$data/.done" "${stamp[@]}"
    fi
  fi
  calib=$(calib_dir)
  case $feat_type in fbank) fcalib=${calib:+${calib}_fbank} ;; *) fcalib=$calib ;; esac
fi

# Stage 1: features and energy VAD (MFCC, or fbank with VAD from MFCC energy), --nj jobs.
if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  for x in "$train" "${evals[@]}" $calib $adapt; do
    name=$(basename "$x")
    if [ $feat_type = fbank ]; then
      python -m pyutils.data.originals copy-lists "$x" "${x}_fbank"
      steps/make_mfcc_vad.sh --nj $nj --cmd "$cpu_cmd" --fbank-config "$feat_conf" \
        "${x}_fbank" "$exp/make_fbank/$name" "$mfccdir"
    elif [ $feat_type = mfcc ]; then
      steps/make_mfcc_vad.sh --nj $nj --cmd "$cpu_cmd" "$x" "$exp/make_mfcc/$name" "$mfccdir"
    fi
  done
  if [ "$aug" = true ]; then
    aug_opts=(); [ $feat_type = fbank ] && aug_opts=(--fbank-config "$feat_conf")
    steps/make_augmented_train.sh --nj $nj --cmd "$cpu_cmd" "${aug_opts[@]}" \
      "$ftrain" "$nntrain" "$exp/make_aug" "$mfccdir"
  fi
fi

# Stage 2: training features: sliding CMN, voiced frames, drop short utterances
# (data.format: shard: pack the training audio into tar shards instead).
if [ $stage -le 2 ] && [ $stop_stage -ge 2 ] && [ "$data_format" = shard ]; then
  steps/make_shards.sh --cmd "$cpu_cmd" --utts-per-shard $utts_per_shard "$ftrain" "$shards"
fi
if [ $stage -le 2 ] && [ $stop_stage -ge 2 ] && [ $feat_type != waveform ] && [ $on_the_fly != true ]; then
  steps/prepare_feats_for_egs.sh --nj $nj --cmd "$cpu_cmd" \
    --min-len $min_len --min-num-utts $min_num_utts \
    "$nntrain" "${nntrain}_no_sil" "$exp/prepare_feats" "$mfccdir"
fi

# Stage 3: train the embedding network (resumes from the last epoch checkpoint).
if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  train_data=${nntrain}_no_sil
  if [ $feat_type = waveform ] || [ $on_the_fly = true ]; then train_data=$ftrain; fi
  [ "$data_format" = shard ] && train_data=$shards
  steps/train.sh --cmd "$cuda_cmd" --force $force --nproc-per-node $nproc_per_node \
    --nnodes $nnodes --node-rank $node_rank --rdzv-endpoint "$rdzv_endpoint" \
    --unlabelled-data "$unlabelled_data" "$train_config" "$train_data" "$dir"
  # machine, date and commit of the training run, for the results page (kept on a rerun)
  python -m pyutils.cli.run_info --newer-than "$dir/train_summary.json" "$dir/train_info.json" \
    "corpus=$corpus" "train_data=$train_data"
fi

# Stage 4: embeddings of train and eval utterances (+ windowed train ones for the back-end).
if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  input=feats; [ $feat_type = waveform ] && input=waveform
  for x in "$ftrain" "${fevals[@]}" $fcalib; do
    steps/extract_embeddings.sh --nj $nj --cmd "$cpu_cmd" --input $input --engine $extract_engine \
      "$dir/final.pt" "$x" "$dir/embeddings_$(basename "${x%_fbank}")"
  done
  if [ $backend_window -gt 0 ]; then
    steps/extract_embeddings.sh --nj $nj --cmd "$cpu_cmd" --input $input --engine $extract_engine \
      --batch-size $extract_batch_size --window $backend_window \
      --window-shift $backend_window_shift "$dir/final.pt" "$ftrain" "$dir/embeddings_train_windows"
  fi
  if [ -n "$adapt" ]; then   # the in-domain set of plda_adapt_data (conf/backend.conf)
    steps/extract_embeddings.sh --nj $nj --cmd "$cpu_cmd" --input $input --engine $extract_engine \
      "$dir/final.pt" "$fadapt" "$dir/embeddings_adapt"
  fi
fi

# Stage 5: back-end training: global mean, LDA, PLDA on the training embeddings.
if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  backend_train=$dir/embeddings_train
  [ $backend_window -gt 0 ] && backend_train=$dir/embeddings_train_windows
  steps/train_backend.sh --cmd "$cpu_cmd" --lda-dim $lda_dim --plda-em-iters $plda_em_iters \
    "$backend_train" "$train" "$dir/backend"
  if [ -n "$adapt" ]; then   # unsupervised adaptation to the in-domain set: backend_adapt/
    steps/adapt_backend.sh --cmd "$cpu_cmd" --within-covar-scale $plda_adapt_within_covar_scale \
      --between-covar-scale $plda_adapt_between_covar_scale --mean-diff-scale $plda_adapt_mean_diff_scale \
      "$dir/backend" "$dir/embeddings_adapt" "$dir/backend_adapt"
  fi
fi

adapt_variant=${adapt:+_adapt}   # stages 6-7: systems <backend>_adapt scored with backend_adapt/

# Stage 6: score the trials with each back-end, raw and after each of $score_norms;
# calibrate each system on trials of the held-out calibration speakers (--calib-speakers)
# or, without them, over the training utterances (eval LLRs beside).
if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
  cohort=$dir/embeddings_train/xvector.scp
  [ "$score_norm_cohort" = speakers ] && cohort=$dir/embeddings_train/spk_xvector.scp
  cal_trials=${calibration_trials:-$dir/calibration/trials}
  cal_data=$train cal_emb=${calibration_embeddings:-$dir/embeddings_train}
  if [ -n "$calib" ] && [ -z "$calibration_trials" ]; then
    cal_data=$calib cal_emb=$dir/embeddings_calib
  fi
  [ -z "$calibration_embeddings" ] || [ -n "$calibration_trials" ] || {
    echo "$0: calibration_embeddings needs calibration_trials (conf/backend.conf)" 1>&2; exit 1; }
  [ -n "$calibration_trials" ] || steps/make_trials.sh --max-trials $calibration_max_trials \
    "$cal_emb" "$cal_data" "$cal_trials"
  for backend in $backends; do
    for variant in "" $adapt_variant; do    # _adapt: back-end adapted to $plda_adapt_data
    for norm in none $score_norms; do
      system=$backend$variant opts=(--backend $backend --cosine-mean $cosine_mean)
      if [ $norm != none ]; then
        system=${backend}${variant}_$norm opts+=(--cohort-scp "$cohort" --norm $norm --top-k $asnorm_top_k)
      fi
      steps/score_trials.sh --cmd "$cpu_cmd" "${opts[@]}" "$dir/backend$variant" \
        "$cal_emb" "$cal_trials" "$dir/calibration/$system"
      for x in "${evals[@]}"; do  # each evaluation set: $dir/scores (eval) or $dir/scores_<set>
        name=$(basename "$x") scores=$dir/scores cal_json=$dir/calibration/$system.json
        [ "$name" = eval ] || scores=$dir/scores_$name
        [ "$x" = "${evals[0]}" ] || cal_json=$dir/calibration/${system}_$name.json
        steps/score_trials.sh --cmd "$cpu_cmd" "${opts[@]}" "$dir/backend$variant" \
          "$dir/embeddings_$name" "$x/trials" "$scores/$system"
        # with qmf_measures: also a QMF calibration (JSON's qmf entry) and <scores>/${system}_qmf
        steps/calibrate.sh --cmd "$cpu_cmd" --prior $calibration_prior --system $system \
          --qmf "$qmf_measures" --cal-quality "$cal_emb" --eval-quality "$dir/embeddings_$name" \
          "$cal_trials" "$dir/calibration/$system" "$scores/$system" "$cal_json"
      done
    done
    done
  done
fi

# Stage 7: EER, minDCF, Cllr per back-end with speaker-bootstrap CIs, DET curve,
# results table; then the table and DET plot of every system trained under $exp.
if [ $stage -le 7 ] && [ $stop_stage -ge 7 ]; then
  scored=$(for b in $backends; do for v in "" $adapt_variant; do for n in none $score_norms; do
    s=$b$v; [ $n = none ] || s=${b}${v}_$n; echo -n "$s "; [ -z "$qmf_measures" ] || echo -n "${s}_qmf "
  done; done; done)
  for x in "${evals[@]}"; do  # results per evaluation set: $dir (eval) or $dir/<set>
    name=$(basename "$x") scores=$dir/scores out=$dir suffix=
    [ "$name" = eval ] || scores=$dir/scores_$name out=$dir/$name suffix=_$name
    # Subgroup trial lists beside the trials (so762-v1: trials_adult-adult, ...): rows of the table too.
    subgroups=$(for t in "$x"/trials_*; do [ -f "$t" ] && echo -n "${t##*/trials_}=$t "; done || true)
    c=$corpus; [ "$name" = eval ] || c=${name#eval_}
    calibration="training utterances (over-confident)"
    [ -n "$calib" ] && calibration="$(wc -l < "$calib/spk2utt") held-out speakers ($calib)"
    [ -z "$calibration_trials" ] || calibration="$calibration_trials"
    python -m pyutils.cli.run_info "$out/run_info.json" "corpus=$c" "eval_set=$name" \
      "protocol=$(corpus_protocol=$c; . "conf/corpora/$c.conf"; echo "$corpus_protocol")" \
      "train_data=$train" "calibration=$calibration" "trials=$x/trials"
    steps/compute_metrics.sh --system "$model" --backends "$scored" --subgroups "$subgroups" \
      "$x/trials" "$scores" "$out"
    cat "$out/results.md"
    mkdir -p "$out/log"
    sets=("$exp"/*/); [ "$name" = eval ] || sets=("$exp"/*/"$name"/)   # after $out exists
    if python -m pyutils.cli.compare_systems --out "$exp/results$suffix.md" \
        --det-png "$exp/det_all$suffix.png" "${sets[@]}" > /dev/null 2> "$out/log/compare_systems.log"; then
      echo "Every system under $exp on $name: $exp/results$suffix.md, DET curves $exp/det_all$suffix.png"
    else
      echo "$0: warning: the comparison table failed; see $out/log/compare_systems.log" 1>&2
    fi
  done
fi

# Stage 8: package the model for use outside the recipe (sv embed/verify/score/eval):
# weights, feature configs, back-end, calibration and thresholds, ONNX + TorchScript.
if [ $stage -le 8 ] && [ $stop_stage -ge 8 ]; then
  steps/package_model.sh --cmd "$cpu_cmd" --fbank-config "$feat_conf" --cosine-mean "$cosine_mean" \
    "$dir" "$dir/package"
fi
