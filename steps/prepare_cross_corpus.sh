#!/usr/bin/env bash
# Stage 0 of a cross-corpus run (run.sh --eval-corpus C): the evaluation corpus's sets for
# a network trained on another corpus.  <eval-data> is C's prepared data dir (prepared here
# with C's defaults when it has no eval/trials); its eval set (trials and subgroup lists
# included) and, with --adapt-data, the unlabelled in-domain set are copied without their
# features into <xdata>/eval and <xdata>/adapt, so that stage 1 makes this network's
# features there and C's own data dirs stay as C's recipe left them.
#   steps/prepare_cross_corpus.sh [--corpus-root DIR] [--adapt-data DIR] <eval-corpus> <eval-data> <xdata>
set -euo pipefail
[ -n "${SV_ROOT:-}" ] || . ./path.sh
corpus_root=
adapt_data=         # an unlabelled data dir of the evaluation domain (e.g. <eval-data>/train)
help_message="Usage: $0 [--corpus-root DIR] [--adapt-data DIR] <eval-corpus> <eval-data> <xdata>"
. utils/parse_options.sh
[ $# -eq 3 ] || { echo -e "$help_message" 1>&2; exit 1; }
eval_corpus=$1 eval_data=$2 xdata=$3

if [ ! -f "$eval_data/eval/trials" ]; then
  echo "$0: $eval_data/eval/trials not found: preparing $eval_corpus with its defaults"
  steps/prepare_data.sh --corpus "$eval_corpus" --corpus-root "$corpus_root" "$eval_data"
fi
[ -z "$adapt_data" ] || [ -f "$adapt_data/utt2spk" ] || {
  echo "$0: --adapt-data $adapt_data: no utt2spk (a prepared data dir is needed)" 1>&2; exit 1; }
[ "$(cd "$adapt_data" 2>/dev/null && pwd)" != "$(cd "$eval_data/eval" && pwd)" ] || {
  echo "$0: --adapt-data $adapt_data is the evaluation set itself; adapt to other data of the" \
    "domain (e.g. $eval_data/train)" 1>&2; exit 1; }
mkdir -p "$xdata"
python -m pyutils.data.original_lists copy-lists "$eval_data/eval" "$xdata/eval"
[ -z "$adapt_data" ] || python -m pyutils.data.original_lists copy-lists "$adapt_data" "$xdata/adapt"
for x in "$xdata/eval" ${adapt_data:+"$xdata/adapt"}; do
  utils/validate_data_dir.sh --no-feats "$x"
done
echo "$0: $eval_corpus evaluation set $eval_data/eval -> $xdata/eval${adapt_data:+; in-domain set $adapt_data -> $xdata/adapt}"
