"""Completion markers that record their inputs (used by run.sh and steps/).

    python -m pyutils.cli.marker check DIR/.done ITEM...   # exit 0 iff it matches
    python -m pyutils.cli.marker write DIR/.done ITEM...

An ITEM is a file (its path and bytes count) or any string (an option value).
A stage is finished only if its marker exists *and* records the same inputs,
so a marker never vouches for outputs of other data, models or options.

One mechanism for every stage: a stage lists as ITEMs the configs it reads
and the markers of the upstream stages whose outputs it reads.  A marker's
second line is a new run id each time the stage runs, so whenever an
upstream stage reran (a changed config, removed outputs) the markers of the
stages after it no longer match and they rerun too, even when the rewritten
archives keep their byte offsets and the scp files their bytes.  Where each
marker lives and the markers of older versions: :mod:`pyutils.utils.markers`.
"""
import sys

from pyutils.utils.markers import matches, write


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2 or args[0] not in ("check", "write"):
        sys.exit(__doc__)
    action, marker, items = args[0], args[1], args[2:]
    if action == "check":
        sys.exit(0 if matches(marker, items) else 1)
    write(marker, items)


if __name__ == "__main__":
    main()
