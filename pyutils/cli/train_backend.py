"""Train the x-vector back-end as in Kaldi's egs/voxceleb/v2 (stage 10).

mean.vec: mean of all training embeddings (ivector-mean);
lda.mat:  ivector-compute-lda on mean-subtracted embeddings (dim clipped to
          num_speakers - 1 with a warning);
plda:     ivector-compute-plda on mean-subtracted, LDA-projected,
          length-normalised embeddings (Kaldi text format).
Embeddings without a speaker in utt2spk, and utt2spk utterances or
speakers without an embedding, are skipped as Kaldi does, but logged and
counted in the summary line.  The mean is taken over every embedding in the
scp, as ``ivector-mean scp:xvector.scp`` does.

Errors (exit status 1, naming file, line and key): an embedding that cannot
be read, holds NaN/inf, or has another dimension than the first; fewer than
2 speakers; too little data for LDA.  The LDA dimension, which is also the
PLDA dimension, is at most num_speakers - 1 (the rank of the between-speaker
scatter): a larger --lda-dim is clipped with a warning saying so, and the
dimension used is recorded in the done marker.
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import sys

import numpy as np

from pyutils.backends.base import LDA_FILE, MEAN_FILE, PLDA_FILE
from pyutils.backends.embeddings import load_embeddings, stack_embeddings
from pyutils.backends.lda import apply_transform, compute_lda
from pyutils.backends.plda import length_normalize, subtract_mean, train_plda, write_matrix, write_vector
from pyutils.data.skipped_items import Skips
from pyutils.utils.fileio import TableError, read_key_value
from pyutils.utils.markers import done_marker, mark_done

log = logging.getLogger("train_backend")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-scp", required=True, help="training embeddings (scp)")
    parser.add_argument("--utt2spk", required=True, help="utt2spk of the training data")
    parser.add_argument("--lda-dim", type=int, default=200)
    parser.add_argument("--plda-em-iters", type=int, default=10)
    parser.add_argument("--out-dir", required=True)
    return parser.parse_args(argv)


def train(train_scp: str, utt2spk_path: str, lda_dim: int, em_iters: int, out_dir: str) -> None:
    """Write mean.vec, lda.mat and plda into ``out_dir``, then its done marker."""
    if os.path.exists(done_marker(out_dir)):
        os.remove(done_marker(out_dir))  # a rerun that dies must not look complete
    embeddings = load_embeddings(train_scp)
    if not embeddings:
        raise ValueError(f"{train_scp}: no embeddings")
    utt2spk = read_key_value(utt2spk_path)
    keys = sorted(embeddings)
    mean = stack_embeddings(embeddings, keys).mean(axis=0)
    skips = Skips(log, what="embeddings", verb="skipped", max_logged=10)
    for key in keys:
        if key not in utt2spk:
            skips.skip(key, "no speaker", f"not in {utt2spk_path}")
    used = [k for k in keys if k in utt2spk]
    no_embedding = sorted(u for u in utt2spk if u not in embeddings)
    all_speakers = set(utt2spk.values())
    if no_embedding:
        log.warning("%d utterance(s) of %s have no embedding in %s, e.g. '%s'; skipped",
                    len(no_embedding), utt2spk_path, train_scp, no_embedding[0])
    if not used:
        raise ValueError(f"no embedding of {train_scp} has a speaker in {utt2spk_path} "
                         f"(do the keys match?)")
    X = subtract_mean(stack_embeddings(embeddings, used), mean)
    labels = np.array([utt2spk[k] for k in used])
    speakers = set(labels.tolist())
    lost = sorted(all_speakers - speakers)
    if lost:
        log.warning("%d speaker(s) of %s have no embedding at all, e.g. '%s'; skipped",
                    len(lost), utt2spk_path, lost[0])
    num_spk = len(speakers)
    log.info("Training on %d of %d embeddings (%s), dim %d; %d of %d utterances and %d of %d "
             "speakers of utt2spk have an embedding", len(used), len(keys), skips.describe(),
             X.shape[1], len(used), len(utt2spk), num_spk, len(all_speakers))
    if num_spk < 2:
        raise ValueError(f"{train_scp}: the embeddings with a speaker in {utt2spk_path} "
                         f"come from {num_spk} speaker; LDA and PLDA need at least 2")
    if lda_dim > num_spk - 1:
        log.warning("LDA dim %d > num_speakers - 1; using %d: with %d training speakers the "
                    "between-speaker scatter has rank %d, so LDA, and the PLDA trained on its "
                    "output, get %d dimensions (--lda-dim / lda_dim in conf/backend.conf)",
                    lda_dim, num_spk - 1, num_spk, num_spk - 1, num_spk - 1)
        lda_dim = num_spk - 1
    try:
        lda = compute_lda(X, labels, lda_dim)
        plda = train_plda(length_normalize(apply_transform(lda, X)), labels, em_iters)
    except np.linalg.LinAlgError as err:
        raise ValueError(f"{train_scp}: LDA/PLDA training failed ({err}) on {len(used)} "
                         f"embeddings of {num_spk} speakers") from None
    except ValueError as err:
        hint = _too_little_data_hint(used, len(used), X.shape[1]) \
            if "too little data" in str(err) else ""
        raise ValueError(f"{train_scp}: {err}{hint}") from None
    os.makedirs(out_dir, exist_ok=True)
    write_vector(os.path.join(out_dir, MEAN_FILE), mean)
    write_matrix(os.path.join(out_dir, LDA_FILE), lda)
    plda.save(os.path.join(out_dir, PLDA_FILE))
    mark_done(out_dir, info=f"lda_dim={lda_dim} plda_dim={plda.dim} speakers={num_spk} "
                            f"utterances={len(used)} skipped={len(skips)}")


WINDOW_KEY = re.compile(r".+-\d{7}-\d{7}")   # <utt>-<first>-<end>, as stage 4 names windows


def _too_little_data_hint(keys, num_vectors: int, dim: int) -> str:
    """What to change when LDA has fewer training vectors than dimensions."""
    windowed = all(WINDOW_KEY.fullmatch(k) for k in keys)
    window = ("these are windowed embeddings already: a smaller backend_window_shift (or "
              "backend_window) in conf/backend.conf gives more of them" if windowed else
              "windowed embeddings (backend_window > 0 in conf/backend.conf) give several "
              "vectors per utterance")
    return (f". ivector-compute-lda needs more training vectors than the {dim} dimensions of "
            f"the embeddings, and has {num_vectors}. Change one of: more training data; {window}; "
            f"a network with a smaller embed_dim (its training config). lda_dim does not help: "
            f"it is the output dimension; nor does backends=\"cosine\": stage 5 trains the "
            f"mean, LDA and PLDA whatever stage 6 scores with")


def main(argv=None) -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = parse_args(argv)
    try:
        train(args.train_scp, args.utt2spk, args.lda_dim, args.plda_em_iters, args.out_dir)
    except (TableError, ValueError, OSError) as err:
        print(f"train_backend: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
