"""Make a Kaldi data dir consistent, like utils/fix_data_dir.sh.

    python -m pyutils.cli.fix_data_dir DIR

Keeps the utterances present in every table, C-sorts everything and
regenerates spk2utt; originals go to DIR/.backup.  Removals are logged.
"""
import argparse
import logging
import sys

from pyutils.data.fix import fix_data_dir

PROG = "fix_data_dir"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("data_dir")
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:
        return 0 if stop.code == 0 else 1
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        fix_data_dir(args.data_dir)
    except (OSError, ValueError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
