"""Split a Kaldi data dir into NJ parts, like utils/split_data.sh.

    python -m pyutils.cli.split_data [--per-utt|--per-spk] DIR NJ

Per speaker by default (DIR/splitNJ/1..NJ, each speaker in one part), as in
Kaldi; --per-utt ignores speakers (DIR/splitNJutt/1..NJ).  Nothing is redone
when the parts are newer than DIR's tables.
"""
import sys

from pyutils.cli.tool import run_tool, tool_parser
from pyutils.data.subsets import split_data

PROG = "split_data"


def main(argv=None) -> int:
    parser = tool_parser(PROG, __doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--per-utt", dest="per_spk", action="store_false",
                      help="split by utterance into DIR/splitNJutt")
    mode.add_argument("--per-spk", dest="per_spk", action="store_true",
                      help="keep each speaker in one part (default)")
    parser.set_defaults(per_spk=True)
    parser.add_argument("data_dir")
    parser.add_argument("nj", type=int)
    return run_tool(PROG, parser, argv,
                    lambda args: split_data(args.data_dir, args.nj, per_spk=args.per_spk))


if __name__ == "__main__":
    sys.exit(main())
