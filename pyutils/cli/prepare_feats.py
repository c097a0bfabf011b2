"""One job of steps/prepare_feats_for_egs.sh: sliding CMN, then voiced frames.

    python -m pyutils.cli.prepare_feats --cmvn-config conf/cmvn.conf \\
        split/1/feats.scp split/1/vad.scp featdir/xvector_feats_train.1

Writes PREFIX.{ark,scp,utt2num_frames}; utterances without a voiced frame are
skipped, logged and counted (Kaldi select-voiced-frames does the same).
Skips the job when PREFIX.done records the same inputs.
"""
import argparse
import logging
import os
import sys

import kaldiio
import numpy as np
from tqdm import tqdm

from pyutils.features.pipeline import cmn_options, cmn_voiced
from pyutils.utils.arkio import ArkScpWriter
from pyutils.utils.fileio import (TableError, fingerprint, job_done, read_key_value, read_table,
                                  write_lines)
from pyutils.utils.log import setup_logging

logger = logging.getLogger("prepare_feats")


def prepare(feats_scp: str, vad_scp: str, prefix: str, cmn: dict) -> dict:
    vad_of = read_key_value(vad_scp)
    entries = list(read_table(feats_scp, 2, 2))
    lengths, skipped = {}, 0
    with ArkScpWriter(prefix + ".ark", prefix + ".scp") as writer:
        for lineno, (utt, location) in tqdm(entries, unit="utt", file=sys.stderr, mininterval=5):
            if utt not in vad_of:
                raise TableError(feats_scp, lineno, f"utterance '{utt}' has no entry in {vad_scp}")
            feats = np.asarray(kaldiio.load_mat(location), dtype=np.float32)
            voiced = cmn_voiced(feats, kaldiio.load_mat(vad_of[utt]), cmn)
            if voiced.shape[0] == 0:
                logger.warning("%s: no voiced frames; skipped", utt)
                skipped += 1
                continue
            writer.write(utt, voiced)
            lengths[utt] = voiced.shape[0]
    write_lines(prefix + ".utt2num_frames", (f"{u} {n}" for u, n in sorted(lengths.items())))
    logger.info("%d utterances written, %d skipped (no voiced frames)", len(lengths), skipped)
    return {"done": len(lengths), "skipped": skipped}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cmvn-config", required=True)
    parser.add_argument("feats_scp")
    parser.add_argument("vad_scp")
    parser.add_argument("prefix", help="output PREFIX.{ark,scp,utt2num_frames}")
    args = parser.parse_args(argv)
    setup_logging()
    stamp = fingerprint(args.feats_scp, args.vad_scp, args.cmvn_config)
    if job_done(args.prefix + ".done", stamp):
        logger.info("%s.done matches the inputs; job already done", args.prefix)
        return
    try:
        counts = prepare(args.feats_scp, args.vad_scp, args.prefix, cmn_options(args.cmvn_config))
    except (TableError, ValueError) as err:
        sys.exit(f"prepare_feats: {err}")
    write_lines(args.prefix + ".done", [stamp, f"done={counts['done']} skipped={counts['skipped']}"])


if __name__ == "__main__":
    main()
