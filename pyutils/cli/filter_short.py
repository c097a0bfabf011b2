"""Drop utterances shorter than --min-len frames, then speakers with fewer than
--min-num-utts utterances, from a data dir (Kaldi voxceleb v2 run.sh, stage 4).

    python -m pyutils.cli.filter_short --min-len 400 --min-num-utts 8 data/train_no_sil

Rewrites utt2spk, spk2utt and utt2num_frames; every removal is logged and
counted by reason.  Utterances: "no features" (in utt2spk but not in
utt2num_frames: an earlier job skipped it, e.g. no voiced frames; its log
says why) and "too short".  Speakers: "no utterances left" (every utterance
removed) and "too few utterances" (their utterances count as "speaker
removed").  Summary, e.g.: kept 10 of 16 utterances (6 removed: 3 too short,
2 speaker removed, 1 no features); kept 3 of 5 speakers (2 removed: 1 no
utterances left, 1 too few utterances).
An empty result is an error.
"""
import argparse
import logging
import os
import sys
from collections import defaultdict

from pyutils.data.skipped_items import Skips
from pyutils.utils.fileio import TableError, read_key_value, write_lines
from pyutils.utils.log import setup_logging

logger = logging.getLogger("filter_short")


def filter_short(data: str, min_len: int, min_num_utts: int) -> dict:
    """Apply both filters; return counts of what was kept and removed."""
    frames_path = os.path.join(data, "utt2num_frames")
    num_frames = {}
    for utt, n in read_key_value(frames_path).items():
        try:
            num_frames[utt] = int(n)
        except ValueError:
            raise TableError(frames_path, None,
                             f"utterance '{utt}': '{n}' is not a frame count") from None
    utt2spk = read_key_value(os.path.join(data, "utt2spk"))
    all_speakers = sorted(set(utt2spk.values()))
    utt_skips = Skips(logger, what="utterances", verb="removed")
    for utt in sorted(utt2spk):
        if utt not in num_frames:
            utt_skips.skip(utt, "no features", f"not in {frames_path} (skipped by an earlier "
                           f"stage; its log says why)", level=logging.INFO)
        elif num_frames[utt] < min_len:
            utt_skips.skip(utt, "too short", f"{num_frames[utt]} frames < --min-len {min_len}",
                           level=logging.INFO)
    removed = set(utt_skips.keys)
    kept = {u: s for u, s in utt2spk.items() if u not in removed}
    spk2utt = defaultdict(list)
    for utt in sorted(kept):
        spk2utt[kept[utt]].append(utt)
    spk_skips = Skips(logger, what="speakers", verb="removed")
    for spk in all_speakers:
        if spk not in spk2utt:
            spk_skips.skip(spk, "no utterances left", "every utterance was removed",
                           level=logging.INFO)
        elif len(spk2utt[spk]) < min_num_utts:
            spk_skips.skip(spk, "too few utterances", f"{len(spk2utt[spk])} utterances < "
                           f"--min-num-utts {min_num_utts}", level=logging.INFO)
            for utt in spk2utt.pop(spk):
                del kept[utt]
                utt_skips.skip(utt, "speaker removed", f"speaker '{spk}' has too few utterances",
                               level=logging.DEBUG)
    summary = (f"kept {len(kept)} of {len(utt2spk)} utterances ({utt_skips.describe()}); "
               f"kept {len(spk2utt)} of {len(all_speakers)} speakers ({spk_skips.describe()})")
    if not kept:
        raise ValueError(f"{data}: no utterance survives --min-len {min_len} and "
                         f"--min-num-utts {min_num_utts}: {summary}")
    write_lines(os.path.join(data, "utt2spk"), (f"{u} {kept[u]}" for u in sorted(kept)))
    write_lines(os.path.join(data, "spk2utt"),
                (f"{s} {' '.join(spk2utt[s])}" for s in sorted(spk2utt)))
    write_lines(os.path.join(data, "utt2num_frames"),
                (f"{u} {num_frames[u]}" for u in sorted(kept)))
    counts = {"kept_utts": len(kept), "short_utts": utt_skips.counts().get("too short", 0),
              "no_feats_utts": utt_skips.counts().get("no features", 0),
              "removed_speakers": len(spk_skips), "kept_speakers": len(spk2utt)}
    logger.info("%s: %s", data, summary)
    return counts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--min-len", type=int, required=True)
    parser.add_argument("--min-num-utts", type=int, required=True)
    parser.add_argument("data")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        filter_short(args.data, args.min_len, args.min_num_utts)
    except (TableError, ValueError) as err:
        sys.exit(f"filter_short: {err}")


if __name__ == "__main__":
    main()
