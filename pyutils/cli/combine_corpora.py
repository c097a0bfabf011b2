"""Combine the prepared data dirs of several corpora (run.sh --corpus a,b stage 0).

    python -m pyutils.cli.combine_corpora OUT NAME=DIR NAME=DIR [...]

Each DIR holds a corpus's train, eval (with trials) and maybe calib; OUT gets
train and calib (the union, ids prefixed with ``NAME-``) and one eval_NAME per
corpus with its own trials (see pyutils.data.combine_corpora).
"""
import sys

from pyutils.cli.tool import run_tool, tool_parser
from pyutils.data.combine_corpora import combine_corpora
from pyutils.utils.fileio import TableError

PROG = "combine_corpora"


def main(argv=None) -> int:
    parser = tool_parser(PROG, __doc__)
    parser.add_argument("out")
    parser.add_argument("corpora", nargs="+", metavar="NAME=DIR")

    def run(args):
        pairs = [spec.partition("=")[::2] for spec in args.corpora]
        bad = [spec for spec, (name, path) in zip(args.corpora, pairs) if not name or not path]
        if bad:
            parser.error(f"expected NAME=DIR, got '{bad[0]}'")
        combine_corpora(args.out, pairs)

    return run_tool(PROG, parser, argv, run, (OSError, ValueError, TableError))


if __name__ == "__main__":
    sys.exit(main())
