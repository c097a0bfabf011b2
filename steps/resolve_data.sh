#!/usr/bin/env bash
# What run.sh's stages read and write, resolved once; run.sh sources what this prints.
#   steps/resolve_data.sh [corpus options] [--aug true|false] [--adapt-data DIR]
#     [--min-len N] [--init-from FINAL_PT] [--overrides "KEY=VALUE ..."]
#     [--eval-corpus C --eval-data DIR] [--prog NAME]
#     <train-config> <data> <exp> <model-dir>
# The corpora (--corpus a,b: conf/corpora/<c>.conf, local/prepare_<c>.py) and their
# settings: min_len lowered to a corpus's corpus_min_len, each evaluation set's corpus and
# protocol; then the network's data needs from its training config (features, on the fly or
# precomputed, raw or shards, the data dirs of each stage, the training set:
# pyutils/cli/recipe_plan.py).  With --eval-corpus (cross-corpus evaluation), the one
# evaluation set is <eval-data>/eval, of corpus C and C's protocol.  With --init-from, the
# training config is <model-dir>/init_config.yaml: <train-config> with the checkpoint's
# model and front-end; with --overrides, <model-dir>/override_config.yaml: that config with
# the values changed.
# Run from the recipe's directory (its conf/); every error is one line naming --prog.
set -euo pipefail
[ -n "${SV_ROOT:-}" ] || . ./path.sh
corpus=asc
corpus_root=
aug=false
adapt_data=           # the back-end's in-domain data dir (conf/backend.conf's plda_adapt_data)
min_len=400           # conf/train_filters.conf's; a corpus's corpus_min_len may lower it
init_from=
eval_corpus=          # cross-corpus: the evaluation set's corpus (run.sh --eval-corpus)
eval_data=            # and the data dir holding it as eval (default <data>)
overrides=            # "KEY=VALUE ..." set in the training config (pyutils/cli/config_set.py)
prog=$0               # the name in error messages (run.sh's)
. conf/corpora/options.conf
help_message="Usage: $0 [--corpus C[,C]] [--corpus-root DIR] [corpus options of conf/corpora/options.conf] [--aug true|false] [--adapt-data DIR] [--min-len N] [--init-from FINAL_PT] [--overrides 'KEY=VALUE ...'] [--eval-corpus C --eval-data DIR] [--prog NAME] <train-config> <data> <exp> <model-dir>"
. utils/parse_options.sh
[ $# -eq 4 ] || { echo -e "$help_message" 1>&2; exit 1; }
train_config=$1 data=$2 exp=$3 dir=$4
fail() { echo "$prog: $*" 1>&2; exit 1; }

IFS=, read -r -a corpora <<< "$corpus"
[ ${#corpora[@]} -gt 0 ] || fail "--corpus is empty"
eval_sets=(eval) eval_corpora=("$corpus") eval_protocols=()
[ ${#corpora[@]} -eq 1 ] || eval_sets=("${corpora[@]/#/eval_}") eval_corpora=("${corpora[@]}")
for c in "${corpora[@]}"; do
  [ -f "conf/corpora/$c.conf" ] && [ -f "local/prepare_$c.py" ] ||
    fail "--corpus $corpus: no conf/corpora/$c.conf or local/prepare_$c.py"
  # a corpus of short utterances may lower stage 2's min_len (conf/train_filters.conf): corpus_min_len
  corpus_min_len= corpus_protocol=$c
  . "conf/corpora/$c.conf"
  [ -z "$corpus_min_len" ] || [ "$corpus_min_len" -ge "$min_len" ] || min_len=$corpus_min_len
  eval_protocols+=("$corpus_protocol")     # the results page's name of its protocol
done
if [ -n "$eval_corpus" ]; then   # cross-corpus: one evaluation set, of another corpus
  [ -f "conf/corpora/$eval_corpus.conf" ] ||
    fail "--eval-corpus $eval_corpus: no conf/corpora/$eval_corpus.conf"
  eval_sets=(eval) eval_corpora=("$eval_corpus")
  eval_protocols=("$(corpus_protocol=$eval_corpus; . "conf/corpora/$eval_corpus.conf"
                     echo "$corpus_protocol")")
fi
[ ${#corpora[@]} -eq 1 ] || [ -z "$calib_holdout_list" ] ||
  fail "--calib-holdout-list names one corpus's speakers; with several corpora use --calib-holdout N"

[ -f "$train_config" ] || fail "no training config $train_config (--model/--train-config)"
if [ -n "$init_from" ]; then   # the config with the model and front-end of --init-from
  python -m pyutils.models.convert.adapt "$train_config" "$init_from" "$dir/init_config.yaml"
  train_config=$dir/init_config.yaml
fi
if [ -n "$overrides" ]; then   # the config with --train-overrides' values
  read -r -a override_list <<< "$overrides"
  python -m pyutils.cli.config_set "$train_config" "$dir/override_config.yaml" \
    "${override_list[@]}" || fail "--train-overrides '$overrides': see the error above"
  train_config=$dir/override_config.yaml
fi
plan=$(python -m pyutils.cli.recipe_plan --prog "$prog" --aug "$aug" --adapt "$adapt_data" \
  --eval-data "${eval_data:-$data}" \
  "${eval_sets[@]/#/--eval-set=}" "$train_config" "$data" "$exp")
printf 'min_len=%q\n' "$min_len"
printf 'train_config=%q\n' "$train_config"
printf 'corpora=(%s)\n' "$(printf '%q ' "${corpora[@]}")"
printf 'eval_corpora=(%s)\n' "$(printf '%q ' "${eval_corpora[@]}")"
printf 'eval_protocols=(%s)\n' "$(printf '%q ' "${eval_protocols[@]}")"
echo "$plan"
