"""The frame every small data-dir command shares: parse, log, run, one error line.

Kaldi's utils/*.sh tools exit non-zero with a one-line message; so do ours:
a usage error is argparse's message and status 1, a bad input (an error of
one of ``errors``) is ``PROG: error: ...`` and status 1, never a traceback.
"""
import argparse
import sys
from typing import Callable, Optional, Sequence, Tuple, Type

from pyutils.utils.log import setup_logging


def tool_parser(prog: str, doc: str) -> argparse.ArgumentParser:
    """An argument parser whose description is the first line of ``doc``."""
    return argparse.ArgumentParser(prog=prog, description=doc.split("\n")[0])


def run_tool(prog: str, parser: argparse.ArgumentParser, argv: Optional[Sequence[str]],
             action: Callable[[argparse.Namespace], Optional[int]],
             errors: Tuple[Type[BaseException], ...] = (OSError, ValueError)) -> int:
    """Parse ``argv``, set up logging, run ``action(args)``; return the exit status.

    ``action`` may call ``parser.error`` for checks argparse cannot express.
    An int it returns is the status; anything else (None, or the result of
    the library call it wraps) means success.
    """
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:
        return 0 if stop.code == 0 else 1
    setup_logging()
    try:
        status = action(args)
    except SystemExit as stop:
        return 0 if stop.code == 0 else 1
    except errors as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 1
    return status if type(status) is int else 0
