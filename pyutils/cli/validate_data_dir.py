"""Check a Kaldi data dir like utils/validate_data_dir.sh, listing every problem.

    python -m pyutils.cli.validate_data_dir [--no-feats] [--no-wav] [--no-spk-sort] DIR

As in Kaldi, feats.scp is required unless --no-feats and wav.scp unless
--no-wav; --no-text is accepted and ignored (text is never required here).
Each problem is printed on its own line (file:line: message), then the
count; exit status 1.  Checked: field counts (a line with extra fields is
usually an id holding whitespace), C sort order, duplicate keys,
utt2spk/spk2utt agreement, every table's keys against utt2spk, segments and
wav.scp, and trials (known utterances, labels, no repeated pair).
"""
import re
import sys

from pyutils.cli.tool import run_tool, tool_parser
from pyutils.data.validate import check_data_dir

PROG = "validate_data_dir"


def main(argv=None) -> int:
    parser = tool_parser(PROG, __doc__)
    parser.add_argument("--no-feats", action="store_true", help="feats.scp is optional")
    parser.add_argument("--no-wav", action="store_true", help="wav.scp is optional")
    parser.add_argument("--no-spk-sort", action="store_true",
                        help="utt2spk need not also be sorted by speaker")
    parser.add_argument("--no-text", action="store_true", help="ignored (Kaldi compatibility)")
    parser.add_argument("data_dir")
    return run_tool(PROG, parser, argv, _validate, errors=(OSError,))


def _validate(args) -> int:
    problems = check_data_dir(args.data_dir, no_feats=args.no_feats, no_wav=args.no_wav,
                              no_spk_sort=args.no_spk_sort)
    for problem in problems:
        print(f"{PROG}: {problem}", file=sys.stderr)
    if any(re.search(r"expected \d+(-\d+)? fields, got", p) for p in problems):
        print(f"{PROG}: note: a line with more fields than expected usually holds an id "
              f"containing whitespace; Kaldi ids cannot contain whitespace", file=sys.stderr)
    if problems:
        print(f"{PROG}: {len(problems)} problem(s) in {args.data_dir}", file=sys.stderr)
        return 1
    print(f"{PROG}: successfully validated data-directory {args.data_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
