"""Copy part of a Kaldi data dir, like utils/subset_data_dir.sh --utt-list/--spk-list.

    python -m pyutils.cli.subset_data_dir --utt-list FILE | --spk-list FILE SRC DST

Only the first field of each list line is used (as filter_scp.pl does).
"""
import argparse
import logging
import sys

from pyutils.data.datadir import read_id_list, subset_data_dir

PROG = "subset_data_dir"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--utt-list", help="file whose first column lists utterances to keep")
    which.add_argument("--spk-list", help="file whose first column lists speakers to keep")
    parser.add_argument("src")
    parser.add_argument("dst")
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:
        return 0 if stop.code == 0 else 1
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        if args.utt_list:
            subset_data_dir(args.src, args.dst, utt_list=read_id_list(args.utt_list))
        else:
            subset_data_dir(args.src, args.dst, spk_list=read_id_list(args.spk_list))
    except (OSError, ValueError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
