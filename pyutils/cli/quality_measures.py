"""Per-utterance quality measures beside the embeddings, for QMF calibration (stage 4).

    python -m pyutils.cli.quality_measures --vad-scp data/eval/vad.scp exp/asc/xvector/embeddings_eval
    python -m pyutils.cli.quality_measures --data-dir data/eval exp/.../embeddings_eval   # waveform models

Writes ``<dir>/utt2speech_dur``: seconds of speech the network saw (voiced
frames of the energy VAD times the frame shift; waveform models: the audio's
duration, from utt2dur) and ``<dir>/utt2magnitude``: the L2 norm of each raw
embedding of ``<dir>/xvector.scp``.  ``sv`` computes the same two numbers for
the clips it embeds (pyutils.backends.qmf).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

import numpy as np

from pyutils.backends.embeddings import load_embeddings
from pyutils.backends.qmf import write_quality
from pyutils.utils.fileio import TableError, read_key_value
from pyutils.utils.log import setup_logging

log = logging.getLogger("quality_measures")


def speech_durations_from_vad(vad_scp: str, frame_shift: float) -> dict:
    """Voiced frames of each utterance times ``frame_shift`` seconds."""
    from pyutils.utils.arkio import read_scp
    return {utt: float(np.count_nonzero(np.asarray(vad).ravel() > 0.5)) * frame_shift
            for utt, vad in read_scp(vad_scp)}


def audio_durations(data_dir: str) -> dict:
    """utt2dur of a data dir (computed and written when missing)."""
    path = os.path.join(data_dir, "utt2dur")
    if os.path.isfile(path):
        return {k: float(v) for k, v in read_key_value(path).items()}
    from pyutils.data.audio import compute_utt2dur
    return compute_utt2dur(data_dir)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("emb_dir", help="stage-4 embeddings dir (xvector.scp)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--vad-scp", help="energy VAD decisions (feature models)")
    source.add_argument("--data-dir", help="data dir of the audio (waveform models)")
    parser.add_argument("--frame-shift-ms", type=float, default=10.0,
                        help="frame shift of the VAD frames (conf/mfcc.conf's, default 10)")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        embeddings = load_embeddings(os.path.join(args.emb_dir, "xvector.scp"))
        durations = (speech_durations_from_vad(args.vad_scp, args.frame_shift_ms / 1000.0)
                     if args.vad_scp else audio_durations(args.data_dir))
        missing = sorted(set(embeddings) - set(durations))
        if missing:
            raise ValueError(f"{len(missing)} embedded utterance(s) have no duration in "
                             f"{args.vad_scp or args.data_dir}, e.g. '{missing[0]}'")
        write_quality(args.emb_dir, "dur", {u: durations[u] for u in embeddings})
        write_quality(args.emb_dir, "mag", {u: float(np.linalg.norm(v))
                                            for u, v in embeddings.items()})
    except (TableError, ValueError, OSError) as err:
        print(f"quality_measures: error: {err}", file=sys.stderr)
        return 1
    log.info("%s: utt2speech_dur and utt2magnitude of %d utterances", args.emb_dir,
             len(embeddings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
