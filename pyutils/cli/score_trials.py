"""Score a trial list with a trained back-end (cosine, PLDA or any registered one).

cosine: subtract the training mean (mean.vec; --cosine-mean none: no centring,
        as Kaldi's cosine_scoring.sh), cosine similarity.
plda:   subtract mean.vec -> lda.mat -> length norm -> PLDA log-likelihood
        ratio with --normalize-length=true and one enrolment utterance, as
        ivector-plda-scoring in Kaldi's egs/voxceleb/v2.
Either can be followed by a score normalisation against a cohort
(--cohort-scp, --norm znorm|tnorm|snorm|asnorm).
With --enroll-num-utts the utt1 side are speaker models (stage 4's
spk_xvector.scp, or an sv enroll store's) scored with their counts, as
ivector-plda-scoring --num-utts (pyutils.backends.speakers, the code sv uses).
"""
from __future__ import annotations

import argparse
import logging
import sys

from pyutils.backends.base import load_backend
from pyutils.backends.cosine import COSINE_MEANS
from pyutils.backends.embeddings import load_embeddings
from pyutils.backends.norm import NORMS
from pyutils.backends.scoring import BACKENDS, DEFAULT_BLOCK_SIZE, score_trials
from pyutils.utils.fileio import TableError
from pyutils.utils.log import setup_logging

log = logging.getLogger("score_trials")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=BACKENDS, required=True)
    parser.add_argument("--backend-dir", required=True, help="output dir of train_backend")
    parser.add_argument("--enroll-scp", required=True)
    parser.add_argument("--test-scp", required=True)
    parser.add_argument("--trials", required=True, help="utt1 utt2 [label] lines")
    parser.add_argument("--out", required=True, help="output scores (utt1 utt2 score)")
    parser.add_argument("--block-size", type=int, default=DEFAULT_BLOCK_SIZE,
                        help="trials read, scored and written at a time (bounds the memory)")
    parser.add_argument("--num-threads", type=int, default=1,
                        help="blocks processed at once (numpy threads; output order is kept)")
    parser.add_argument("--double", action="store_true",
                        help="cosine dot products in double precision (default: single, as "
                             "Kaldi's ivector-compute-dot-products; PLDA is always double)")
    parser.add_argument("--cohort-scp", help="score-normalisation cohort embeddings (e.g. the "
                        "training set's xvector.scp or spk_xvector.scp); without it scores "
                        "are not normalised")
    parser.add_argument("--norm", choices=NORMS, default="asnorm",
                        help="normalisation with --cohort-scp (default asnorm)")
    parser.add_argument("--top-k", type=int, default=300,
                        help="AS-norm: cohort scores averaged per utterance (WeSpeaker: 300)")
    parser.add_argument("--cosine-mean", choices=COSINE_MEANS, default="train",
                        help="cosine: centre on the training mean (train, WeSpeaker) or not "
                             "(none, Kaldi's cosine_scoring.sh)")
    parser.add_argument("--plda-smoothing", type=float, default=0.0,
                        help="ivector-copy-plda --smoothing (recipe: 0.0)")
    parser.add_argument("--enroll-num-utts", help="num_utts.ark: --enroll-scp holds speaker "
                        "models (mean embeddings) of that many utterances each")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    setup_logging()
    args = parse_args(argv)
    try:
        backend = load_backend(args.backend, args.backend_dir, args.plda_smoothing,
                               cosine_mean=args.cosine_mean)
        enroll = load_embeddings(args.enroll_scp)
        test = enroll if args.test_scp == args.enroll_scp else load_embeddings(args.test_scp)
        if args.enroll_num_utts:
            if args.cohort_scp:
                raise ValueError("--enroll-num-utts scores speaker models without "
                                 "normalisation; drop --cohort-scp")
            from pyutils.backends.speakers import score_model_trials
            from pyutils.utils.fileio import read_key_value
            counts = {k: int(v) for k, v in read_key_value(args.enroll_num_utts).items()}
            score_model_trials(args.trials, enroll, counts, test, backend, args.out)
            return 0
        cohort = load_embeddings(args.cohort_scp) if args.cohort_scp else None
        score_trials(args.trials, enroll, test, backend, args.out, args.block_size,
                     args.num_threads, args.double, cohort, args.top_k, args.norm)
    except (TableError, ValueError, OSError) as err:
        print(f"score_trials: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
