"""Drop utterances shorter than --min-len frames, then speakers with fewer than
--min-num-utts utterances, from a data dir (Kaldi voxceleb v2 run.sh, stage 4).

    python -m pyutils.cli.filter_short --min-len 400 --min-num-utts 8 data/train_no_sil

Rewrites utt2spk, spk2utt and utt2num_frames; every removal is logged and counted.
"""
import argparse
import logging
import os
import sys
from collections import defaultdict

from pyutils.utils.fileio import TableError, read_key_value, write_lines
from pyutils.utils.log import setup_logging

logger = logging.getLogger("filter_short")


def filter_short(data: str, min_len: int, min_num_utts: int) -> dict:
    """Apply both filters; return counts of what was kept and removed."""
    num_frames = {u: int(n) for u, n in read_key_value(os.path.join(data, "utt2num_frames")).items()}
    utt2spk = read_key_value(os.path.join(data, "utt2spk"))
    short = sorted(u for u in utt2spk if num_frames.get(u, 0) < min_len)
    for utt in short:
        logger.info("removing %s: %d frames < --min-len %d", utt, num_frames.get(utt, 0), min_len)
    kept = {u: s for u, s in utt2spk.items() if u not in set(short)}
    spk2utt = defaultdict(list)
    for utt in sorted(kept):
        spk2utt[kept[utt]].append(utt)
    few = sorted(s for s, utts in spk2utt.items() if len(utts) < min_num_utts)
    for spk in few:
        logger.info("removing speaker %s: %d utterances < --min-num-utts %d",
                    spk, len(spk2utt[spk]), min_num_utts)
        for utt in spk2utt.pop(spk):
            del kept[utt]
    if not kept:
        raise ValueError(f"{data}: no utterance survives --min-len {min_len} and "
                         f"--min-num-utts {min_num_utts}")
    write_lines(os.path.join(data, "utt2spk"), (f"{u} {kept[u]}" for u in sorted(kept)))
    write_lines(os.path.join(data, "spk2utt"),
                (f"{s} {' '.join(spk2utt[s])}" for s in sorted(spk2utt)))
    write_lines(os.path.join(data, "utt2num_frames"),
                (f"{u} {num_frames[u]}" for u in sorted(kept)))
    counts = {"kept_utts": len(kept), "short_utts": len(short), "removed_speakers": len(few),
              "kept_speakers": len(spk2utt)}
    logger.info("%s: kept %d utterances of %d speakers; removed %d short utterances and "
                "%d speakers with too few utterances", data, counts["kept_utts"],
                counts["kept_speakers"], counts["short_utts"], counts["removed_speakers"])
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
