"""Split a Kaldi data dir into NJ parts, like utils/split_data.sh.

    python -m pyutils.cli.split_data [--per-utt|--per-spk] DIR NJ

Per speaker by default (DIR/splitNJ/1..NJ, each speaker in one part), as in
Kaldi; --per-utt ignores speakers (DIR/splitNJutt/1..NJ).  Nothing is redone
when the parts are newer than DIR's tables.
"""
import argparse
import logging
import sys

from pyutils.data.subsets import split_data

PROG = "split_data"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--per-utt", dest="per_spk", action="store_false",
                      help="split by utterance into DIR/splitNJutt")
    mode.add_argument("--per-spk", dest="per_spk", action="store_true",
                      help="keep each speaker in one part (default)")
    parser.set_defaults(per_spk=True)
    parser.add_argument("data_dir")
    parser.add_argument("nj", type=int)
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:
        return 0 if stop.code == 0 else 1
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        split_data(args.data_dir, args.nj, per_spk=args.per_spk)
    except (OSError, ValueError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
