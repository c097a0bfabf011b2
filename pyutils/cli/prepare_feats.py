"""One job of steps/prepare_feats_for_egs.sh: sliding CMN, then voiced frames.

    python -m pyutils.cli.prepare_feats --cmvn-config conf/cmvn.conf \\
        split/1/feats.scp split/1/vad.scp featdir/xvector_feats_train.1

Writes PREFIX.{ark,scp,utt2num_frames}; utterances without a voiced frame are
skipped, logged and counted (Kaldi select-voiced-frames does the same) and
listed in PREFIX.skipped.  A feature or VAD matrix that cannot be read, holds
NaN/inf values, or disagrees in length is an error naming the scp file, line
and utterance (such input is corrupt, not merely unusable).
Skips the job when PREFIX.done records the same inputs.
"""
import argparse
import logging
import os
import sys

import kaldiio
import numpy as np

from pyutils.data.skipped_items import Skips
from pyutils.features.pipeline import cmn_options, cmn_voiced
from pyutils.utils.arkio import ArkScpWriter
from pyutils.data.formats import read_scp
from pyutils.utils.fileio import TableError, write_lines
from pyutils.utils.log import setup_logging
from pyutils.utils.markers import fingerprint, job_done
from pyutils.utils.progress import progress

logger = logging.getLogger("prepare_feats")
NO_VOICED = "no voiced frames"


def _load(scp: str, lineno: int, utt: str, location: str, what: str) -> np.ndarray:
    """One matrix or vector of an scp; errors name the scp line and the utterance."""
    try:
        array = np.asarray(kaldiio.load_mat(location))
    except Exception as err:  # kaldiio raises many types
        raise TableError(scp, lineno, f"utterance '{utt}': cannot read {what} "
                                      f"'{location}': {err}") from None
    bad = int(np.count_nonzero(~np.isfinite(array))) if array.dtype.kind == "f" else 0
    if bad:
        raise TableError(scp, lineno, f"utterance '{utt}': {what} at '{location}' hold {bad} "
                                      f"NaN/inf value(s)")
    return array


def prepare(feats_scp: str, vad_scp: str, prefix: str, cmn: dict) -> dict:
    vad_entries = read_scp(vad_scp)
    vad_of = {utt: location for _, utt, location in vad_entries}
    vad_line = {utt: lineno for lineno, utt, _ in vad_entries}
    entries = read_scp(feats_scp)
    lengths, skips = {}, Skips(logger, what="utterances", verb="skipped")
    with ArkScpWriter(prefix + ".ark", prefix + ".scp") as writer:
        for lineno, utt, location in progress(entries, desc="cmn+vad", unit="utt"):
            if utt not in vad_of:
                raise TableError(feats_scp, lineno, f"utterance '{utt}' has no entry in {vad_scp}")
            feats = _load(feats_scp, lineno, utt, location, "features").astype(np.float32)
            vad = _load(vad_scp, vad_line[utt], utt, vad_of[utt], "VAD decisions")
            if feats.ndim != 2 or vad.ndim != 1 or feats.shape[0] != vad.shape[0]:
                raise TableError(feats_scp, lineno, f"utterance '{utt}': features of shape "
                                 f"{feats.shape} but VAD of shape {vad.shape} (from {vad_scp})")
            voiced = cmn_voiced(feats, vad, cmn)
            if voiced.shape[0] == 0:
                skips.skip(utt, NO_VOICED, f"{feats.shape[0]} frames, none voiced")
                continue
            writer.write(utt, voiced)
            lengths[utt] = voiced.shape[0]
    write_lines(prefix + ".utt2num_frames", (f"{u} {n}" for u, n in sorted(lengths.items())))
    skips.write(prefix + ".skipped")
    logger.info(skips.summary(len(lengths), len(entries)))
    return {"done": len(lengths), "skipped": len(skips)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cmvn-config", required=True)
    parser.add_argument("--stamp-extra", action="append", default=[],
                        help="more inputs for the job's marker (a file: its bytes; repeatable), "
                             "e.g. the upstream stage's marker")
    parser.add_argument("feats_scp")
    parser.add_argument("vad_scp")
    parser.add_argument("prefix", help="output PREFIX.{ark,scp,utt2num_frames}")
    args = parser.parse_args(argv)
    setup_logging()
    stamp = fingerprint(args.feats_scp, args.vad_scp, args.cmvn_config, *args.stamp_extra)
    if job_done(args.prefix + ".done", stamp) and os.path.isfile(args.prefix + ".skipped"):
        logger.info("%s.done matches the inputs; job already done", args.prefix)
        return
    try:
        counts = prepare(args.feats_scp, args.vad_scp, args.prefix, cmn_options(args.cmvn_config))
    except (TableError, ValueError) as err:
        sys.exit(f"prepare_feats: {err}")
    write_lines(args.prefix + ".done", [stamp, f"done={counts['done']} skipped={counts['skipped']}"])


if __name__ == "__main__":
    main()
