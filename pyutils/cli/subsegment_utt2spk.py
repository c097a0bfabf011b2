"""utt2spk for sub-segment keys ``<utt>-<first>-<end>``: each inherits its utterance's speaker.

    python -m pyutils.cli.subsegment_utt2spk data/train/utt2spk DIR/xvector.scp DIR/utt2spk
"""
import argparse
import sys

from pyutils.data.formats import read_scp
from pyutils.utils.fileio import TableError, read_key_value, write_lines


def subsegment_utt2spk(utt2spk: str, scp: str, out: str) -> int:
    speaker_of = read_key_value(utt2spk)
    lines = []
    for lineno, key, _ in read_scp(scp):
        utt = key.rsplit("-", 2)[0]
        if utt not in speaker_of:
            raise TableError(scp, lineno, f"'{key}': utterance '{utt}' is not in {utt2spk}")
        lines.append(f"{key} {speaker_of[utt]}")
    write_lines(out, sorted(lines))
    return len(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("utt2spk")
    parser.add_argument("scp")
    parser.add_argument("out")
    args = parser.parse_args(argv)
    try:
        subsegment_utt2spk(args.utt2spk, args.scp, args.out)
    except TableError as err:
        sys.exit(f"subsegment_utt2spk: {err}")


if __name__ == "__main__":
    main()
