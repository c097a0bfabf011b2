"""Combine Kaldi data dirs into one, like utils/combine_data.sh.

    python -m pyutils.cli.combine_data DEST SRC1 SRC2 ...

Tables that every source has are concatenated and C-sorted; spk2utt is
regenerated; an utterance id in two sources is an error.
"""
import argparse
import logging
import sys

from pyutils.data.subsets import combine_data

PROG = "combine_data"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("--skip-fix", default="false", help="accepted for Kaldi compatibility")
    parser.add_argument("dest")
    parser.add_argument("srcs", nargs="+")
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:
        return 0 if stop.code == 0 else 1
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        combine_data(args.dest, args.srcs)
    except (OSError, ValueError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
