"""Write DIR/utt2dur (seconds per utterance), like utils/data/get_utt2dur.sh.

    python -m pyutils.cli.get_utt2dur DIR

From segments if present, else from the audio of wav.scp (file headers;
pipes are run).
"""
import argparse
import logging
import sys

from pyutils.data.subsets import compute_utt2dur

PROG = "get_utt2dur"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("--nj", default="1", help="accepted for Kaldi compatibility")
    parser.add_argument("data_dir")
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:
        return 0 if stop.code == 0 else 1
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        compute_utt2dur(args.data_dir)
    except (OSError, ValueError, RuntimeError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
