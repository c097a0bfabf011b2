"""One job of steps/make_mfcc_vad.sh: MFCC (or fbank) and energy VAD for a (split) data dir.

The features are those of :class:`~pyutils.features.pipeline.FeaturePipeline`
(what training on the fly and the deployed package compute too).

    python -m pyutils.cli.compute_mfcc_vad --mfcc-config conf/mfcc.conf \\
        --vad-config conf/vad.conf data/train/split2/1 mfcc/raw_mfcc_train.1 mfcc/vad_train.1

Writes FEATS.{ark,scp,utt2num_frames}, VAD.{ark,scp} and FEATS.skipped.
With --fbank-config the features written are Kaldi fbank; the VAD still
comes from the MFCC's log energy, on the same frame grid (the two configs
must frame the audio alike; a mismatch is an error).

As Kaldi's compute-mfcc-feats, an utterance that cannot be used is skipped
with a warning naming it and its audio, counted by reason, and listed in
FEATS.skipped (``utt reason`` lines); the summary line reads e.g.
``done 10 of 14 utterances (4 failed: 2 unreadable, 1 too short, 1 wrong
sample rate)``.  The job fails only if no utterance succeeds.  Reasons:
missing file, unreadable, not audio, truncated, command failed (a wav.scp
pipe), empty audio, too short (no frame, or under --min-duration), wrong
sample rate, multi-channel, non-finite samples / features, bad segment.

Options of compute-mfcc-feats read from the MFCC config besides the feature
options: --allow-downsample / --allow-upsample (default false: audio at
another rate than --sample-frequency is refused; true: it is resampled),
--channel=N (default -1: multi-channel audio is refused; N picks channel N,
0-based) and --min-duration=SECONDS (default 0).  Dither noise is seeded
from the utterance id, so features do not depend on --nj.  Skips the job
when FEATS.done records the same inputs (data dir files, configs).
"""
import argparse
import logging
import os
import sys
import time

from pyutils.data.audio import AudioError, AudioReader
from pyutils.data.datadir import DataDir
from pyutils.data.skipped_items import Skips
from pyutils.features.pipeline import FeaturePipeline, NonFiniteFeatures
from pyutils.utils.arkio import ArkScpWriter
from pyutils.utils.fileio import TableError, write_lines
from pyutils.utils.log import setup_logging
from pyutils.utils.markers import fingerprint, job_done
from pyutils.utils.progress import progress

logger = logging.getLogger("compute_mfcc_vad")
NON_FINITE_FEATS = "non-finite features"


def compute(data_dir: str, mfcc_conf: str, vad_conf: str, feats_prefix: str,
            vad_prefix: str, fbank_conf: str = "") -> dict:
    pipeline = FeaturePipeline("fbank" if fbank_conf else "mfcc", fbank_conf or mfcc_conf,
                               vad_conf, vad_feat_conf=mfcc_conf).load(cmn=False)
    data = DataDir(data_dir)
    reader = AudioReader(data, expected_rate=None, channel=pipeline.channel)
    utts = data.utts
    skips = Skips(logger, what="utterances", verb="failed")
    lengths, seconds, start = {}, 0.0, time.time()
    with ArkScpWriter(feats_prefix + ".ark", feats_prefix + ".scp") as feats_out, \
            ArkScpWriter(vad_prefix + ".ark", vad_prefix + ".scp") as vad_out:
        for utt in progress(utts, desc="features", unit="utt"):
            try:
                samples, rate = reader.read(utt)
                waveform = pipeline.checked_waveform(samples, rate, _where(data, utt))
                feats, vad = pipeline.utterance(waveform, utt)
            except NonFiniteFeatures as err:
                skips.skip(utt, NON_FINITE_FEATS, f"{_where(data, utt)}: {err}")
                continue
            except AudioError as err:
                skips.skip(utt, err.reason, str(err))
                continue
            vad_out.write(utt, vad)
            feats_out.write(utt, feats)
            lengths[utt] = feats.shape[0]
            seconds += len(samples) / rate
    write_lines(feats_prefix + ".utt2num_frames", (f"{u} {n}" for u, n in sorted(lengths.items())))
    skips.write(feats_prefix + ".skipped")
    elapsed = time.time() - start
    logger.info("%s; %.1f s of audio in %.1f s (%.0fx real time)",
                skips.summary(len(lengths), len(utts)), seconds, elapsed,
                seconds / max(elapsed, 1e-9))
    if not lengths:
        raise ValueError(f"{data_dir}: no utterance could be processed ({skips.describe()}); "
                         f"the warnings above name each one")
    return {"done": len(lengths), "failed": len(skips), "reasons": skips.counts()}


def _where(data: DataDir, utt: str) -> str:
    """The wav.scp entry (and segment) an utterance comes from, for messages."""
    segment = data.segments.get(utt) if data.segments is not None else None
    recording = segment.recording if segment else utt
    where = data.wav_scp.get(recording, "?")
    return f"{where} [{segment.start}-{segment.end}s]" if segment else where


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mfcc-config", required=True)
    parser.add_argument("--vad-config", required=True)
    parser.add_argument("--fbank-config", default="",
                        help="write fbank features with this config (VAD still from the MFCC)")
    parser.add_argument("--stamp-extra", action="append", default=[],
                        help="more inputs for the job's marker (a file: its bytes; repeatable), "
                             "e.g. the upstream stage's marker")
    parser.add_argument("data_dir")
    parser.add_argument("feats_prefix")
    parser.add_argument("vad_prefix")
    args = parser.parse_args(argv)
    setup_logging()
    stamp = fingerprint(*(os.path.join(args.data_dir, f) for f in ("wav.scp", "utt2spk", "segments")),
                        args.mfcc_config, args.vad_config, args.fbank_config or "mfcc",
                        os.path.abspath(args.vad_prefix), *args.stamp_extra)
    if job_done(args.feats_prefix + ".done", stamp) \
            and os.path.isfile(args.feats_prefix + ".skipped"):
        logger.info("%s.done matches the inputs; job already done", args.feats_prefix)
        return
    try:
        counts = compute(args.data_dir, args.mfcc_config, args.vad_config,
                         args.feats_prefix, args.vad_prefix, args.fbank_config)
    except (TableError, ValueError) as err:
        sys.exit(f"compute_mfcc_vad: {err}")
    reasons = " ".join(f"{r.replace(' ', '_')}={n}" for r, n in counts["reasons"].items())
    write_lines(args.feats_prefix + ".done",
                [stamp, f"done={counts['done']} failed={counts['failed']} {reasons}".rstrip()])


if __name__ == "__main__":
    main()
