"""Copy part of a Kaldi data dir, like utils/subset_data_dir.sh.

    python -m pyutils.cli.subset_data_dir --utt-list FILE | --spk-list FILE SRC DST
    python -m pyutils.cli.subset_data_dir [--per-spk | --first | --shortest] SRC NUM DST

--utt-list / --spk-list keep the listed utterances / speakers (only the
first field of each list line is used, as filter_scp.pl does).  With NUM:
--per-spk keeps the first NUM utterances of each speaker, --first the first
NUM utterances, --shortest the NUM shortest (by utt2num_frames or utt2dur).
"""
import sys

from pyutils.cli.tool import run_tool, tool_parser
from pyutils.data.formats import read_id_list
from pyutils.data.subsets import subset_data_dir
from pyutils.data.subsets import subset_first, subset_per_spk, subset_shortest

PROG = "subset_data_dir"


def main(argv=None) -> int:
    parser = tool_parser(PROG, __doc__)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--utt-list", help="file whose first column lists utterances to keep")
    which.add_argument("--spk-list", help="file whose first column lists speakers to keep")
    which.add_argument("--per-spk", action="store_true", help="NUM utterances per speaker")
    which.add_argument("--first", action="store_true", help="the first NUM utterances")
    which.add_argument("--shortest", action="store_true", help="the NUM shortest utterances")
    parser.add_argument("args", nargs="+", metavar="SRC [NUM] DST")

    def subset(args):
        counted = args.per_spk or args.first or args.shortest
        if len(args.args) != (3 if counted else 2):
            parser.error("expected SRC NUM DST" if counted else "expected SRC DST")
        if counted and not args.args[1].isdigit():
            parser.error(f"NUM must be a number, got '{args.args[1]}'")
        if args.utt_list:
            subset_data_dir(*args.args, utt_list=read_id_list(args.utt_list))
        elif args.spk_list:
            subset_data_dir(*args.args, spk_list=read_id_list(args.spk_list))
        else:
            src, num, dst = args.args
            func = subset_per_spk if args.per_spk else subset_first if args.first \
                else subset_shortest
            func(src, dst, int(num))

    return run_tool(PROG, parser, argv, subset)


if __name__ == "__main__":
    sys.exit(main())
