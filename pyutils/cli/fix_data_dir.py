"""Make a Kaldi data dir consistent, like utils/fix_data_dir.sh.

    python -m pyutils.cli.fix_data_dir DIR

Keeps the utterances present in every table, C-sorts everything and
regenerates spk2utt; originals go to DIR/.backup.  Removals are logged.
"""
import sys

from pyutils.cli.tool import run_tool, tool_parser
from pyutils.data.fix import fix_data_dir

PROG = "fix_data_dir"


def main(argv=None) -> int:
    parser = tool_parser(PROG, __doc__)
    parser.add_argument("data_dir")
    return run_tool(PROG, parser, argv, lambda args: fix_data_dir(args.data_dir))


if __name__ == "__main__":
    sys.exit(main())
