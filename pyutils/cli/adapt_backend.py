"""Adapt a trained back-end to a new domain with unlabelled in-domain embeddings (stage 5).

    python -m pyutils.cli.adapt_backend --backend-dir exp/asc/xvector/backend \
        --adapt-scp exp/asc/xvector/embeddings_adapt/xvector.scp --out-dir exp/asc/xvector/backend_adapt

As Kaldi's sre16/v2 recipe: ``mean.vec`` becomes the in-domain mean
(ivector-mean of the in-domain set; scoring subtracts it, as
ivector-subtract-global-mean with that mean), ``lda.mat`` is kept, and the
PLDA is ``ivector-adapt-plda`` (--within-covar-scale 0.3,
--between-covar-scale 0.7, --mean-diff-scale 1.0 by default) on the in-domain
vectors centred by their own mean, LDA-projected and length-normalised.
Needs no labels.  See pyutils.backends.adapt.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from pyutils.backends.adapt import adapt_backend
from pyutils.backends.embeddings import load_embeddings, stack_embeddings
from pyutils.utils.fileio import TableError
from pyutils.utils.log import setup_logging
from pyutils.utils.markers import done_marker, mark_done

log = logging.getLogger("adapt_backend")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend-dir", required=True, help="stage 5's back-end (mean, LDA, PLDA)")
    parser.add_argument("--adapt-scp", required=True, help="in-domain embeddings (no labels)")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--within-covar-scale", type=float, default=0.3)
    parser.add_argument("--between-covar-scale", type=float, default=0.7)
    parser.add_argument("--mean-diff-scale", type=float, default=1.0)
    args = parser.parse_args(argv)
    setup_logging()
    try:
        if os.path.exists(done_marker(args.out_dir)):
            os.remove(done_marker(args.out_dir))
        table = load_embeddings(args.adapt_scp)
        X = stack_embeddings(table, sorted(table)) if table else None
        if X is None:
            raise ValueError(f"{args.adapt_scp}: no embeddings")
        summary = adapt_backend(args.backend_dir, X, args.out_dir, args.within_covar_scale,
                                args.between_covar_scale, args.mean_diff_scale)
    except (TableError, ValueError, OSError) as err:
        print(f"adapt_backend: error: {err}", file=sys.stderr)
        return 1
    mark_done(args.out_dir, info=" ".join(f"{k}={v}" for k, v in summary.items()))
    log.info("%s: adapted to %d in-domain embeddings of %s", args.out_dir,
             summary["adapt_vectors"], args.adapt_scp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
