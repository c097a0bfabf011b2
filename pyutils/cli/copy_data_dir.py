"""Copy a Kaldi data dir renaming its ids, like utils/copy_data_dir.sh.

    python -m pyutils.cli.copy_data_dir [--utt-prefix P] [--spk-prefix P]
        [--utt-suffix S] [--spk-suffix S] SRC DST

Utterance and speaker ids get the prefixes/suffixes in every table (so
augmented copies combine with the clean set); recordings keep their ids
when there is a segments file.
"""
import sys

from pyutils.cli.tool import run_tool, tool_parser
from pyutils.data.subsets import copy_data_dir

PROG = "copy_data_dir"
OPTIONS = ("--utt-prefix", "--spk-prefix", "--utt-suffix", "--spk-suffix", "--validate-opts")


def main(argv=None) -> int:
    parser = tool_parser(PROG, __doc__)
    for name in ("utt-prefix", "spk-prefix", "utt-suffix", "spk-suffix"):
        parser.add_argument(f"--{name}", default="")
    parser.add_argument("--validate-opts", default="", help="accepted for Kaldi compatibility")
    parser.add_argument("src")
    parser.add_argument("dst")
    argv = list(sys.argv[1:] if argv is None else argv)
    for i in range(len(argv) - 1, -1, -1):  # '--utt-suffix -reverb': a value may start with '-'
        if argv[i] in OPTIONS and i + 1 < len(argv):
            argv[i:i + 2] = [f"{argv[i]}={argv[i + 1]}"]
    return run_tool(PROG, parser, argv, lambda args: copy_data_dir(
        args.src, args.dst, args.utt_prefix, args.spk_prefix, args.utt_suffix, args.spk_suffix))


if __name__ == "__main__":
    sys.exit(main())
