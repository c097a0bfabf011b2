"""Move training speakers into a calibration set (any corpus; run.sh stage 0).

    python -m pyutils.cli.hold_out_speakers --num N [--eval DIR ...] TRAIN CALIB
    python -m pyutils.cli.hold_out_speakers --speakers ID,ID|FILE [--eval DIR ...] TRAIN CALIB

--num N takes N speakers spread evenly over the C-sorted training speakers
(index floor((i + 0.5) * S / N), i = 0..N-1); --speakers a comma list of
speaker ids or a file whose first column lists them.  TRAIN is rewritten
without them and CALIB holds them; a speaker or utterance CALIB shares with
TRAIN or an --eval dir is an error.  Prints the held-out speakers.
"""
import os
import sys

from pyutils.cli.tool import run_tool, tool_parser
from pyutils.data.corpus import CorpusError
from pyutils.data.formats import read_id_list
from pyutils.data.holdout import hold_out_speakers
from pyutils.utils.fileio import TableError

PROG = "hold_out_speakers"


def speaker_list(spec: str):
    """A file (first column) or a comma list of speaker ids."""
    if os.path.isfile(spec):
        return read_id_list(spec)
    return [s for s in spec.split(",") if s]


def main(argv=None) -> int:
    parser = tool_parser(PROG, __doc__)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--num", type=int, help="hold out N speakers spread over the list")
    which.add_argument("--speakers", help="comma list of speaker ids, or a file listing them")
    parser.add_argument("--eval", action="append", default=[], help="evaluation data dir "
                        "that must share nothing with the calibration set (repeatable)")
    parser.add_argument("train")
    parser.add_argument("calib")

    def run(args):
        if args.num is not None and args.num < 1:
            parser.error(f"--num must be at least 1, got {args.num}")
        held = hold_out_speakers(args.train, args.calib, args.num or 0,
                                 None if args.speakers is None else speaker_list(args.speakers),
                                 args.eval)
        print(" ".join(held))

    return run_tool(PROG, parser, argv, run, (OSError, ValueError, CorpusError, TableError))


if __name__ == "__main__":
    sys.exit(main())
