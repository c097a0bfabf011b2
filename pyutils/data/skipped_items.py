"""Skip + count + log: the one helper every stage uses to drop an item.

When a stage's documented behaviour is to go on without an item it cannot
use (an utterance whose audio is unreadable, an embedding without a speaker,
a speaker left without utterances, ...), it calls :meth:`Skips.skip` with the
item's key, a short *reason* and a message naming the file.  The skip is
logged (WARNING) and counted per reason, and the stage's summary line gives
the counts, so nothing is dropped silently::

    done 10 of 14 utterances (4 failed: 2 unreadable, 1 too short, 1 wrong sample rate)

:meth:`Skips.write` saves ``key reason`` lines; a step script merges its
jobs' lists and prints the same summary for the whole step with::

    python -m pyutils.data.skipped_items --total 14 --done 10 --what utterances --verb failed LIST

which also fails if ``done + skipped != total`` (an item lost without a
reason).
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from typing import Dict, Iterable, List, Optional, Tuple

from pyutils.utils.fileio import TableError, read_table, write_lines

_log = logging.getLogger(__name__)


class Skips:
    """Items a stage skipped, with their reasons; logs each one as it is added.

    ``what`` names the items in summaries (``utterances``), ``verb`` says
    what happened to them (``failed``, ``skipped``, ``removed``).  With
    ``max_logged``, only that many skips are logged one by one (the rest are
    still counted, and the summary says how many went unlogged).
    """

    def __init__(self, logger: Optional[logging.Logger] = None, what: str = "utterances",
                 verb: str = "skipped", max_logged: Optional[int] = None):
        self.logger = logger or _log
        self.what = what
        self.verb = verb
        self.max_logged = max_logged
        self.items: List[Tuple[str, str]] = []

    def skip(self, key: str, reason: str, message: str = "",
             level: int = logging.WARNING) -> None:
        """Record that ``key`` was dropped for ``reason`` and log ``message``."""
        if not reason or any(c in reason for c in "\n\t"):
            raise ValueError(f"bad skip reason {reason!r}")
        self.items.append((key, reason))
        if self.max_logged is None or len(self.items) <= self.max_logged:
            self.logger.log(level, "%s: %s (%s)%s", key, self.verb, reason,
                            f": {message}" if message else "")
        elif len(self.items) == self.max_logged + 1:
            self.logger.log(level, "more %s %s; only counted from here on", self.what, self.verb)

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, key: str) -> bool:
        return any(k == key for k, _ in self.items)

    @property
    def keys(self) -> List[str]:
        return [k for k, _ in self.items]

    def counts(self) -> Dict[str, int]:
        """``{reason: count}``, most frequent first (ties by reason)."""
        return dict(sorted(Counter(r for _, r in self.items).items(),
                           key=lambda item: (-item[1], item[0])))

    def breakdown(self) -> str:
        """``'2 unreadable, 1 too short'`` (empty when nothing was skipped)."""
        return ", ".join(f"{n} {reason}" for reason, n in self.counts().items())

    def describe(self) -> str:
        """``'3 failed: 2 unreadable, 1 too short'`` or ``'0 failed'``."""
        return f"{len(self)} {self.verb}" + (f": {self.breakdown()}" if self.items else "")

    def summary(self, done: int, total: int) -> str:
        """``'done 10 of 14 utterances (4 failed: 2 unreadable, ...)'``."""
        return f"done {done} of {total} {self.what} ({self.describe()})"

    def write(self, path: str) -> None:
        """Atomically write ``key reason`` lines, C-sorted by key."""
        write_lines(path, (f"{k} {r}" for k, r in sorted(self.items)))

    def extend(self, items: Iterable[Tuple[str, str]]) -> None:
        """Add already-logged ``(key, reason)`` pairs (e.g. read from job lists)."""
        self.items.extend(items)


def read_skips(paths: Iterable[str], what: str = "utterances", verb: str = "skipped") -> Skips:
    """Merge ``key reason`` lists written by :meth:`Skips.write`; keys must be unique."""
    skips = Skips(what=what, verb=verb)
    seen: Dict[str, str] = {}
    for path in paths:
        for lineno, fields in read_table(path, min_fields=2):
            if fields[0] in seen:
                raise TableError(path, lineno, f"'{fields[0]}' is also listed in {seen[fields[0]]}")
            seen[fields[0]] = path
            skips.items.append((fields[0], " ".join(fields[1:])))
    return skips


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pyutils.data.skipped_items",
        description="Print a step's summary from its jobs' skip lists; fail if items are "
                    "unaccounted for (done + skipped != total).")
    parser.add_argument("--total", type=int, required=True, help="items the step was given")
    parser.add_argument("--done", type=int, required=True, help="items the step produced")
    parser.add_argument("--what", default="utterances")
    parser.add_argument("--verb", default="skipped")
    parser.add_argument("lists", nargs="+", help="key reason lists (Skips.write)")
    args = parser.parse_args(argv)
    try:
        skips = read_skips(args.lists, args.what, args.verb)
    except TableError as err:
        print(f"skipped_items: error: {err}", file=sys.stderr)
        return 1
    print(skips.summary(args.done, args.total))
    if args.done + len(skips) != args.total:
        print(f"skipped_items: error: {args.done} done + {len(skips)} {args.verb} != {args.total} "
              f"{args.what}: {args.total - args.done - len(skips)} lost without a reason",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
