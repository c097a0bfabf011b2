"""Combine Kaldi data dirs into one, like utils/combine_data.sh.

    python -m pyutils.cli.combine_data DEST SRC1 SRC2 ...

Tables that every source has are concatenated and C-sorted; spk2utt is
regenerated; an utterance id in two sources is an error.
"""
import sys

from pyutils.cli.tool import run_tool, tool_parser
from pyutils.data.subsets import combine_data

PROG = "combine_data"


def main(argv=None) -> int:
    parser = tool_parser(PROG, __doc__)
    parser.add_argument("--skip-fix", default="false", help="accepted for Kaldi compatibility")
    parser.add_argument("dest")
    parser.add_argument("srcs", nargs="+")
    return run_tool(PROG, parser, argv, lambda args: combine_data(args.dest, args.srcs))


if __name__ == "__main__":
    sys.exit(main())
