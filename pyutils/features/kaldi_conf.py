"""Reader for Kaldi option files (``conf/mfcc.conf``, ``conf/vad.conf``...).

Follows Kaldi's ``ParseOptions::ReadConfigFile``: text after ``#`` is a
comment, blank lines are skipped, every other line must be ``--name=value``
(or a bare ``--name``, which Kaldi reads as boolean true), ``_`` in names is
read as ``-`` and a later line overrides an earlier one.  Values are typed
here because the file carries no schema: ``true``/``false`` become bools,
numbers become int or float, anything else stays a string.
"""
from __future__ import annotations

from typing import Dict, Union

from pyutils.utils.fileio import TableError

OptionValue = Union[bool, int, float, str]


def read_kaldi_conf(path: str) -> Dict[str, OptionValue]:
    """Parse a Kaldi option file into ``{dashed-name: typed value}``."""
    try:
        handle = open(path, encoding="utf-8")
    except FileNotFoundError:
        raise TableError(path, None, "file not found") from None
    options: Dict[str, OptionValue] = {}
    with handle:
        for lineno, line in enumerate(handle, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            if not line.startswith("--"):
                raise TableError(path, lineno,
                                 f"expected --name=value, got {line!r}")
            name, has_value, value = line[2:].partition("=")
            if not name or any(c.isspace() for c in name) or name.startswith("-"):
                raise TableError(path, lineno, f"bad option name in {line!r}")
            options[name.replace("_", "-")] = (
                parse_value(value.strip()) if has_value else True)
    return options


def parse_value(text: str) -> OptionValue:
    """Type one option value: bool, int, float, else the string itself."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
