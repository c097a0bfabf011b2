"""One job of steps/make_mfcc_vad.sh: MFCC and energy VAD for a (split) data dir.

    python -m pyutils.cli.compute_mfcc_vad --mfcc-config conf/mfcc.conf \\
        --vad-config conf/vad.conf data/train/split2/1 mfcc/raw_mfcc_train.1 mfcc/vad_train.1

Writes FEATS.{ark,scp,utt2num_frames} and VAD.{ark,scp}.  As Kaldi's
compute-mfcc-feats, an utterance whose audio cannot be read is skipped with a
warning and counted; the job fails only if no utterance succeeds.  Dither
noise is seeded from the utterance id, so features do not depend on --nj.
Skips the job when FEATS.done records the same inputs (data dir files, configs).
"""
import argparse
import logging
import os
import sys
import time
import zlib

import numpy as np
from tqdm import tqdm

from pyutils.data.audio import AudioError, AudioReader
from pyutils.data.datadir import DataDir
from pyutils.features.kaldi_conf import read_kaldi_conf
from pyutils.features.mfcc import MfccComputer
from pyutils.features.vad import compute_vad_energy, vad_options_from_conf
from pyutils.utils.arkio import ArkScpWriter
from pyutils.utils.fileio import TableError, fingerprint, job_done, write_lines
from pyutils.utils.log import setup_logging

logger = logging.getLogger("compute_mfcc_vad")


def compute(data_dir: str, mfcc_conf: str, vad_conf: str, feats_prefix: str,
            vad_prefix: str) -> dict:
    mfcc = MfccComputer(read_kaldi_conf(mfcc_conf))
    vad_options = vad_options_from_conf(read_kaldi_conf(vad_conf))
    rate = int(mfcc.options["sample-frequency"])
    reader = AudioReader(DataDir(data_dir), expected_rate=rate)
    utts = DataDir(data_dir).utts
    lengths, failed, seconds, start = {}, 0, 0.0, time.time()
    with ArkScpWriter(feats_prefix + ".ark", feats_prefix + ".scp") as feats_out, \
            ArkScpWriter(vad_prefix + ".ark", vad_prefix + ".scp") as vad_out:
        for utt in tqdm(utts, unit="utt", file=sys.stderr, mininterval=5):
            try:
                samples, _ = reader.read(utt)
                if mfcc.num_frames(len(samples)) == 0:
                    raise AudioError(f"{len(samples)} samples give no frame")
            except AudioError as err:
                logger.warning("%s: skipped: %s", utt, err)
                failed += 1
                continue
            feats = mfcc.compute(samples, np.random.default_rng(zlib.crc32(utt.encode())))
            feats_out.write(utt, feats)
            vad_out.write(utt, compute_vad_energy(feats, **vad_options))
            lengths[utt] = feats.shape[0]
            seconds += len(samples) / rate
    write_lines(feats_prefix + ".utt2num_frames", (f"{u} {n}" for u, n in sorted(lengths.items())))
    elapsed = time.time() - start
    logger.info("done %d of %d utterances (%d failed); %.1f s of audio in %.1f s (%.0fx real time)",
                len(lengths), len(utts), failed, seconds, elapsed, seconds / max(elapsed, 1e-9))
    if not lengths:
        raise ValueError(f"{data_dir}: no utterance could be processed")
    return {"done": len(lengths), "failed": failed}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mfcc-config", required=True)
    parser.add_argument("--vad-config", required=True)
    parser.add_argument("data_dir")
    parser.add_argument("feats_prefix")
    parser.add_argument("vad_prefix")
    args = parser.parse_args(argv)
    setup_logging()
    stamp = fingerprint(*(os.path.join(args.data_dir, f) for f in ("wav.scp", "utt2spk", "segments")),
                        args.mfcc_config, args.vad_config, os.path.abspath(args.vad_prefix))
    if job_done(args.feats_prefix + ".done", stamp):
        logger.info("%s.done matches the inputs; job already done", args.feats_prefix)
        return
    try:
        counts = compute(args.data_dir, args.mfcc_config, args.vad_config,
                         args.feats_prefix, args.vad_prefix)
    except (TableError, ValueError) as err:
        sys.exit(f"compute_mfcc_vad: {err}")
    write_lines(args.feats_prefix + ".done", [stamp, f"done={counts['done']} failed={counts['failed']}"])


if __name__ == "__main__":
    main()
