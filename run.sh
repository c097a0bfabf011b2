#!/usr/bin/env bash
# Speaker verification recipe on the ASC demo corpus (protocol asc-v1):
# MFCC + energy VAD -> x-vector TDNN -> cosine and LDA+PLDA -> EER / minDCF.
# Modelled on Kaldi egs/voxceleb/v2/run.sh and WeSpeaker examples/voxceleb/v2.
#
#   ./run.sh                          # every stage
#   ./run.sh --stage 4 --stop-stage 6 # only some stages
#   ./run.sh --help                   # every option, with its default
#
# Each stage is idempotent: it skips work whose completion marker exists, and
# resumes half-done work (per-job markers, epoch checkpoints).
set -euo pipefail
cd "$(dirname "$0")"
. ./path.sh
. ./cmd.sh                  # where jobs run: $cpu_cmd, $cuda_cmd (SV_LAUNCHER=local|slurm)

# Options: each default below is also --name value (utils/parse_options.sh).
stage=0                     # first stage to run: 0 data, 1 features, 2 training features, 3 training,
                            # 4 embeddings, 5 back-end, 6 scoring, 7 metrics, 8 package
stop_stage=8                # last stage to run (a larger number: to the end)
nj=2                        # parallel jobs for features / extraction
corpus=asc                  # asc | speechocean762 | voxceleb | cnceleb | librispeech | folder
                            # (conf/corpora/); a comma list (asc,speechocean762) trains on the union
corpus_root=${SV_CORPUS_ROOT:-$(cd .. && pwd)/shared/corpora}  # where the corpora are
data=                       # data dirs: $data/train, $data/eval, ... (default data/$corpus)
exp=                        # outputs: $exp/$model/..., $exp/results.md (default exp/$corpus)
eval_corpus=                # cross-corpus: evaluate the network of --corpus ($exp/$model, trained)
                            # on this corpus's eval set and trials; back-end and calibration from
                            # --corpus, outputs in ${exp}_on_<eval_corpus> (docs/backends.md)
eval_data=                  # --eval-corpus's prepared data dir (default data/<eval_corpus>)
model=xvector               # network name: names $exp/$model and the default config
train_config=               # training YAML (default conf/$model.yaml)
init_from=                  # stage 3: start from this final.pt (trained or imported; docs/pretrained.md)
train_overrides=            # training config values changed, "KEY=VALUE ..." (e.g. "training.seed=2")
aug=false                   # true: the network trains on the training set + augmented copies (conf/augment.conf)
unlabelled_data=            # stage 3, label-free configs (ssl:): more data dirs of audio, DIR[,DIR]
force=false                 # true: retrain even if the model is complete
# Stage 3 on several processes or nodes (torchrun; cmd.sh and docs/clusters.md say where jobs run):
nproc_per_node=1            # training processes per node (one per GPU)
nnodes=1                    # nodes (run run.sh --stage 3 on each with its --node-rank)
node_rank=0                 # this node's rank, 0..nnodes-1
rdzv_endpoint=              # HOST:PORT of node 0 (needed with --nnodes > 1)
. ./conf/corpora/options.conf  # Corpus options (conf/corpora/options.conf)
. ./conf/train_filters.conf  # Stage 2, training-data filters (conf/train_filters.conf)
. ./conf/extract.conf       # Stage 4, extraction (conf/extract.conf)
. ./conf/backend.conf       # Stages 4-8, back-ends, normalisation, calibration (conf/backend.conf)
. utils/options_help.sh
help_message="Usage: $0 [--option value]... (or --option=value; --config FILE sources FILE first)
Stages 0-7 prepare, train, score and evaluate; stage 8 packages the model for the sv command.
Options, with their current values:
$(options_help run.sh)"
. utils/parse_options.sh
[ $# -eq 0 ] || { echo "$0: unexpected argument '$1' (options are --name value; --help)" 1>&2; exit 1; }
# Every number, once, before any work: the options' and the conf files' (check_int, check_number).
check_int stage 0; check_int stop_stage 0    # a large --stop-stage means "to the end"
[ "$stage" -le 8 ] || { echo "$0: --stage $stage: the stages are 0-8" 1>&2; exit 1; }
[ "$stop_stage" -ge "$stage" ] || {
  echo "$0: --stop-stage $stop_stage is before --stage $stage: nothing would run" 1>&2; exit 1; }
for opt in nj nproc_per_node nnodes; do check_int $opt 1; done
check_int node_rank 0 $((10#$nnodes - 1))
[ "$nnodes" -eq 1 ] || [ -n "$rdzv_endpoint" ] || {
  echo "$0: --nnodes $nnodes needs --rdzv-endpoint HOST:PORT (node 0's)" 1>&2; exit 1; }
check_int min_len 0 "" conf/train_filters.conf; check_int min_num_utts 1 "" conf/train_filters.conf
for opt in lda_dim plda_em_iters asnorm_top_k; do check_int $opt 1 "" conf/backend.conf; done
for opt in backend_window calibration_max_trials; do check_int $opt 0 "" conf/backend.conf; done
[ "$backend_window" -eq 0 ] || check_int backend_window_shift 1 "" conf/backend.conf
check_number calibration_prior 0 1 conf/backend.conf
for t in $threshold_targets; do [[ $t =~ ^(far|frr)=(0|0?\.[0-9]+)$ ]] || {
  echo "$0: threshold_targets: '$t' is not far=RATE or frr=RATE, 0 <= RATE < 1 (conf/backend.conf)" 1>&2
  exit 1; }; done
[ -z "$eval_corpus" ] || [ "$(realpath -m "${eval_data:-data/$eval_corpus}")" != \
    "$(realpath -m "${data:-data/${corpus//,/+}}")" ] || {
  echo "$0: --eval-data is the data dir of --corpus itself: a cross-corpus run needs another" 1>&2
  exit 1; }
export SV_CORPUS_ROOT=$corpus_root   # configs may name $SV_CORPUS_ROOT (augmentation noise)
data=${data:-data/${corpus//,/+}}
exp=${exp:-exp/${corpus//,/+}}
src_dir=$exp/$model         # the network (a cross-corpus run reads it, never writes it)
xdata=                      # cross-corpus: the evaluation corpus's sets, copied for this network
if [ -n "$eval_corpus" ]; then
  eval_data=${eval_data:-data/$eval_corpus} xdata=${data}_on_$eval_corpus exp=${exp}_on_$eval_corpus
fi
dir=$exp/$model             # the network's outputs
mfccdir=$exp/mfcc           # feature archives (the scp files in the data dirs point here)
corpus_opts=(--corpus "$corpus" --corpus-root "$corpus_root")
for opt in $(sed -n 's/^\([a-z_]*\)=.*/\1/p' conf/corpora/options.conf); do
  corpus_opts+=("--${opt//_/-}" "${!opt}")
done
# What each stage reads and writes, resolved once from the corpora and the training config:
# train_config, min_len, feat_type, feat_conf, on_the_fly, data_format, input, the sets
# (train, evals, calib, adapt), their feature dirs (ftrain, fevals, fcalib, fadapt), nntrain
# and train_data (stage 3's), shards; eval_corpora and eval_protocols (steps/resolve_data.sh).
adapt_data=$plda_adapt_data; [ -z "$xdata" ] || [ -z "$adapt_data" ] || adapt_data=$xdata/adapt
# cross-corpus: the network's own training config (its features), unless --train-config
[ -z "$eval_corpus" ] || [ -n "$train_config" ] || [ ! -f "$src_dir/config.yaml" ] ||
  train_config=$src_dir/config.yaml
plan=$(steps/resolve_data.sh "${corpus_opts[@]}" --aug "$aug" --adapt-data "$adapt_data" \
  --min-len "$min_len" --init-from "$init_from" --overrides "$train_overrides" \
  --eval-corpus "$eval_corpus" --eval-data "$xdata" \
  --prog "$0" "${train_config:-conf/$model.yaml}" "$data" "$exp" "$dir")
. <(printf '%s\n' "$plan")
if_calib() { [ -f "$calib/utt2spk" ] && echo "$1" || true; }   # prints $1 if stage 0 held out $calib
adapted=false; [ -z "$adapt" ] || adapted=true   # back-end adapted to $plda_adapt_data
trains=true; [ -z "$eval_corpus" ] || trains=false   # cross-corpus: stages 2-3 and 8 are the source's

# Stage 0: the corpus's data dirs (local/prepare_<corpus>.py; conf/corpora/<corpus>.conf);
# cross-corpus: the evaluation corpus's eval set (+ the in-domain set) copied into $xdata.
if [ $stage -le 0 ] && [ $stop_stage -ge 0 ]; then
  if [ $trains = true ]; then
    steps/prepare_data.sh "${corpus_opts[@]}" "$data"
  else
    steps/prepare_cross_corpus.sh --corpus-root "$corpus_root" --adapt-data "$plda_adapt_data" \
      "$eval_corpus" "$eval_data" "$xdata"
  fi
fi

# Stage 1: features and energy VAD (MFCC, or fbank with VAD from MFCC energy), --nj jobs;
# with --aug true also Kaldi-style augmented copies of the training set.
if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  sets=("$train" "${evals[@]}" $(if_calib "$calib") $adapt)
  [ $trains = true ] || sets=("${evals[@]}" $adapt)   # cross-corpus: the source's sets have theirs
  steps/make_features.sh --nj $nj --cmd "$cpu_cmd" --type $feat_type --fbank-config "$feat_conf" \
    "$exp" "$mfccdir" "${sets[@]}"
  if [ "$aug" = true ] && [ $trains = true ]; then
    aug_opts=(); [ $feat_type = fbank ] && aug_opts=(--fbank-config "$feat_conf")
    steps/make_augmented_train.sh --nj $nj --cmd "$cpu_cmd" "${aug_opts[@]}" \
      "$ftrain" "$nntrain" "$exp/make_aug" "$mfccdir"
  fi
fi

# Stage 2: training features: sliding CMN, voiced frames, drop short utterances
# (data.format: shard: also pack the training audio into tar shards).
if [ $stage -le 2 ] && [ $stop_stage -ge 2 ] && [ $trains = true ]; then
  [ "$data_format" != shard ] ||
    steps/make_shards.sh --cmd "$cpu_cmd" --utts-per-shard $utts_per_shard "$ftrain" "$shards"
  [ "$make_train_feats" != true ] ||
    steps/prepare_feats_for_egs.sh --nj $nj --cmd "$cpu_cmd" --min-len $min_len \
      --min-num-utts $min_num_utts "$nntrain" "${nntrain}_no_sil" "$exp/prepare_feats" "$mfccdir"
fi

# Stage 3: train the embedding network (resumes from the last epoch checkpoint).
if [ $stage -le 3 ] && [ $stop_stage -ge 3 ] && [ $trains = true ]; then
  steps/train.sh --cmd "$cuda_cmd" --force $force --nproc-per-node $nproc_per_node \
    --nnodes $nnodes --node-rank $node_rank --rdzv-endpoint "$rdzv_endpoint" \
    --unlabelled-data "$unlabelled_data" "$train_config" "$train_data" "$dir"
  # machine, date and commit of the training run, for the results page (kept on a rerun)
  python -m pyutils.cli.run_info --newer-than "$dir/train_summary.json" "$dir/train_info.json" \
    "corpus=$corpus" "train_data=$train_data"
fi

# Stage 4: embeddings of train and eval utterances (+ windowed train ones for the back-end,
# + the in-domain set of plda_adapt_data); cross-corpus: of the eval (and in-domain) set,
# the source's network and train/calib embeddings linked (steps/link_model.sh).
if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  opts=(--nj $nj --cmd "$cpu_cmd" --input $input --engine $extract_engine
        --batch-size $extract_batch_size --bucket $extract_bucket)
  sets=("$ftrain" "${fevals[@]}" $(if_calib "$fcalib"))
  [ $trains = true ] || { steps/link_model.sh "$src_dir" "$dir"; sets=("${fevals[@]}"); }
  for x in "${sets[@]}"; do
    steps/extract_embeddings.sh "${opts[@]}" "$src_dir/final.pt" "$x" "$dir/embeddings_$(basename "${x%_fbank}")"
  done
  [ $backend_window -eq 0 ] || [ $trains = false ] || steps/extract_embeddings.sh "${opts[@]}" \
    --window $backend_window --window-shift $backend_window_shift \
    "$src_dir/final.pt" "$ftrain" "$dir/embeddings_train_windows"
  [ -z "$adapt" ] || steps/extract_embeddings.sh "${opts[@]}" "$src_dir/final.pt" "$fadapt" "$dir/embeddings_adapt"
fi

# Stage 5: back-end training: global mean, LDA, PLDA on the training embeddings
# (+ backend_adapt/: unsupervised adaptation to the in-domain set).
if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  backend_train=$dir/embeddings_train
  [ $backend_window -eq 0 ] || backend_train=$dir/embeddings_train_windows
  steps/train_backend.sh --cmd "$cpu_cmd" --lda-dim $lda_dim --plda-em-iters $plda_em_iters \
    "$backend_train" "$train" "$dir/backend"
  [ -z "$adapt" ] || steps/adapt_backend.sh --cmd "$cpu_cmd" \
    --within-covar-scale $plda_adapt_within_covar_scale \
    --between-covar-scale $plda_adapt_between_covar_scale \
    --mean-diff-scale $plda_adapt_mean_diff_scale \
    "$dir/backend" "$dir/embeddings_adapt" "$dir/backend_adapt"
fi

# Stage 6: score the trials with each back-end, raw and after each of $score_norms, and
# calibrate each system on trials of the held-out calibration speakers, else of the
# training utterances (steps/score_systems.sh).
if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
  steps/score_systems.sh --cmd "$cpu_cmd" --backends "$backends" --adapted $adapted \
    --score-norms "$score_norms" --cohort $score_norm_cohort --top-k $asnorm_top_k \
    --cosine-mean $cosine_mean --prior $calibration_prior --qmf "$qmf_measures" \
    --max-trials $calibration_max_trials --calibration-trials "$calibration_trials" \
    --calibration-embeddings "$calibration_embeddings" --calib-data "$(if_calib "$calib")" \
    "$dir" "$train" "${evals[@]}"
fi

# Stage 7: EER, minDCF, Cllr per system with speaker-bootstrap CIs, DET curve,
# results table, the calibration's thresholds on the eval trials (threshold_targets);
# then the table and DET plot of every system trained under $exp.
if [ $stage -le 7 ] && [ $stop_stage -ge 7 ]; then
  calibration="training utterances (over-confident)" calibration_data=$train
  [ ! -f "$calib/utt2spk" ] ||
    calibration="$(wc -l < "$calib/spk2utt") held-out speakers ($calib)" calibration_data=$calib
  [ -z "$calibration_trials" ] || calibration="$calibration_trials" calibration_data=$calibration_trials
  steps/evaluate_systems.sh --system "$model" --backends "$backends" --adapted $adapted \
    --score-norms "$score_norms" --qmf "$qmf_measures" --corpora "${eval_corpora[*]}" \
    --protocols "${eval_protocols[*]}" --train-data "$train" --calibration "$calibration" \
    --train-corpus "$corpus" --model-dir "$src_dir" --backend-data "$train" \
    --plda-adapt-data "$plda_adapt_data" --calibration-data "$calibration_data" \
    --threshold-targets "$threshold_targets" "$exp" "$dir" "${evals[@]}"
fi

# Stage 8: package the model for use outside the recipe (sv embed/verify/score/eval):
# weights, feature configs, back-end, calibration and thresholds, ONNX + TorchScript.
if [ $stage -le 8 ] && [ $stop_stage -ge 8 ] && [ $trains = true ]; then
  steps/package_model.sh --cmd "$cpu_cmd" --fbank-config "$feat_conf" --cosine-mean "$cosine_mean" \
    "$dir" "$dir/package"
fi
