"""Train the x-vector back-end as in Kaldi's egs/voxceleb/v2 (stage 10).

mean.vec: mean of all training embeddings (ivector-mean);
lda.mat:  ivector-compute-lda on mean-subtracted embeddings (dim clipped to
          num_speakers - 1 with a warning);
plda:     ivector-compute-plda on mean-subtracted, LDA-projected,
          length-normalised embeddings (Kaldi text format).
Utterances without a speaker, or speakers' utterances without an embedding,
are skipped with a warning as Kaldi does.  The mean is taken over every
embedding in the scp, as ``ivector-mean scp:xvector.scp`` does.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

import numpy as np

from pyutils.backends.lda import apply_transform, compute_lda
from pyutils.backends.plda import length_normalize, subtract_mean, train_plda, write_matrix, write_vector
from pyutils.backends.scoring import LDA_FILE, MEAN_FILE, PLDA_FILE, stack_embeddings
from pyutils.utils.arkio import load_scp_dict
from pyutils.utils.fileio import TableError, done_marker, mark_done, read_key_value

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
    embeddings = load_scp_dict(train_scp)
    if not embeddings:
        raise ValueError(f"{train_scp}: no embeddings")
    utt2spk = read_key_value(utt2spk_path)
    keys = sorted(embeddings)
    mean = stack_embeddings(embeddings, keys).mean(axis=0)
    used = [k for k in keys if k in utt2spk]
    if len(used) < len(keys):
        log.warning("%d embeddings have no utt2spk entry; skipped", len(keys) - len(used))
    missing = len(utt2spk) - len(used)
    if missing:
        log.warning("%d utt2spk utterances have no embedding; skipped", missing)
    if not used:
        raise ValueError(f"no utterance of {train_scp} is in {utt2spk_path}")
    X = subtract_mean(stack_embeddings(embeddings, used), mean)
    labels = np.array([utt2spk[k] for k in used])
    num_spk = len(set(labels.tolist()))
    log.info("Training on %d utterances of %d speakers, dim %d", len(used), num_spk, X.shape[1])
    if lda_dim > num_spk - 1:
        log.warning("LDA dim %d > num_speakers - 1; using %d", lda_dim, num_spk - 1)
        lda_dim = num_spk - 1
    lda = compute_lda(X, labels, lda_dim)
    plda = train_plda(length_normalize(apply_transform(lda, X)), labels, em_iters)
    os.makedirs(out_dir, exist_ok=True)
    write_vector(os.path.join(out_dir, MEAN_FILE), mean)
    write_matrix(os.path.join(out_dir, LDA_FILE), lda)
    plda.save(os.path.join(out_dir, PLDA_FILE))
    mark_done(out_dir, info=f"lda_dim={lda_dim} speakers={num_spk} utterances={len(used)}")


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
