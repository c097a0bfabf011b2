"""Write DIR/utt2dur (seconds per utterance), like utils/data/get_utt2dur.sh.

    python -m pyutils.cli.get_utt2dur DIR

From segments if present, else from the audio of wav.scp (file headers;
pipes are run).
"""
import sys

from pyutils.cli.tool import run_tool, tool_parser
from pyutils.data.audio import compute_utt2dur

PROG = "get_utt2dur"


def main(argv=None) -> int:
    parser = tool_parser(PROG, __doc__)
    parser.add_argument("--nj", default="1", help="accepted for Kaldi compatibility")
    parser.add_argument("data_dir")
    return run_tool(PROG, parser, argv, lambda args: compute_utt2dur(args.data_dir),
                    errors=(OSError, ValueError, RuntimeError))


if __name__ == "__main__":
    sys.exit(main())
