"""Crash-safe file I/O shared by every stage.

Everything the toolkit writes goes through :func:`atomic_output` (temp file in
the same directory, fsync, rename) so a killed job never leaves a half-written
file that a rerun would trust.  Kaldi-style text tables are read with
:func:`read_table`, whose errors name the file and the line.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from typing import IO, Dict, Iterable, Iterator, List, Optional, Tuple


class TableError(ValueError):
    """A malformed line in a Kaldi-style text table (names file and line)."""

    def __init__(self, path: str, lineno: Optional[int], message: str):
        where = f"{path}:{lineno}" if lineno is not None else str(path)
        super().__init__(f"{where}: {message}")
        self.path = path
        self.lineno = lineno


class DiskFullError(OSError):
    """No space left on the file system of a file being written."""

    def __init__(self, path: str, free: Optional[int] = None):
        if free is None:
            free = _free_bytes(os.path.dirname(os.path.abspath(path)))
        where = _mount_point(os.path.abspath(path))
        super().__init__(errno.ENOSPC, f"no space left on {where} ({free / 1e6:.1f} MB free) "
                                       f"while writing {path}; free some space and rerun "
                                       f"(the stage resumes)")


def _free_bytes(directory: str) -> int:
    try:
        info = os.statvfs(directory)
    except OSError:
        return -1
    return info.f_bavail * info.f_frsize


def _mount_point(path: str) -> str:
    path = os.path.dirname(path)
    while not os.path.ismount(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def _disk_full(err: BaseException, path: str) -> bool:
    """True if ``err`` (an OSError, or a library's own error such as torch's
    'file write failed') came from a full file system."""
    cause = err
    while cause is not None:      # torch wraps the OSError in its own RuntimeError
        if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        cause = cause.__cause__ or cause.__context__
    free = _free_bytes(os.path.dirname(os.path.abspath(path)))
    return 0 <= free < (1 << 20)


def current_umask() -> int:
    """The process umask, read without changing it (Linux: /proc/self/status)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe)
    os.umask(mask)
    return mask


def create_temp(path: str) -> Tuple[int, str]:
    """Open a temp file beside ``path`` that will be renamed onto it.

    Temp files of an earlier writer of ``path`` that was killed (they are
    named ``.<name>.<random>.tmp``) are removed first, and the new one gets
    the mode a plain ``open()`` would give (0666 less the umask), so files
    renamed into place are readable by the group where the umask says so.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    prefix = "." + os.path.basename(path) + "."
    remove_stale_temps(directory, prefix)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=directory)
    os.fchmod(fd, 0o666 & ~current_umask())
    return fd, tmp


def remove_stale_temps(directory: str, prefix: str) -> int:
    """Delete ``<prefix>*.tmp`` files in ``directory``; return how many."""
    removed = 0
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(directory):
            if name.startswith(prefix) and name.endswith(".tmp"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(directory, name))
                    removed += 1
    return removed


@contextlib.contextmanager
def atomic_output(path: str, mode: str = "w") -> Iterator[IO]:
    """Open ``path`` for writing via a temp file that is renamed on success.

    On any exception the temp file is removed and ``path`` is left untouched.
    """
    path = os.fspath(path)
    fd, tmp = create_temp(path)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        full = isinstance(err, Exception) and _disk_full(err, path)
        free = _free_bytes(os.path.dirname(os.path.abspath(path)))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if full:
            raise DiskFullError(path, free) from err
        raise


def write_lines(path: str, lines: Iterable[str]) -> None:
    """Atomically write ``lines`` (without newlines) to ``path``."""
    with atomic_output(path) as out:
        for line in lines:
            out.write(line + "\n")


def write_text_if_changed(path: str, text: str) -> bool:
    """Write ``text`` to ``path`` atomically unless it already holds exactly that (a generated
    config keeps its mtime and the stamps that read it); True when it wrote."""
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            if handle.read() == text:
                return False
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_output(path) as out:
        out.write(text)
    return True


def read_json(path: str):
    """The JSON value in ``path``; invalid JSON is a ValueError naming the file."""
    with open(path, encoding="utf-8") as handle:
        try:
            return json.load(handle)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err})") from None


def read_table(path: str, min_fields: int = 1,
               max_fields: Optional[int] = None) -> Iterator[Tuple[int, List[str]]]:
    """Yield ``(lineno, fields)`` for each line of a whitespace-separated table.

    Blank lines and lines with the wrong number of fields raise
    :class:`TableError` naming the file and line.
    """
    for lineno, fields, _ in _iter_lines(path):
        if len(fields) < min_fields:
            raise TableError(path, lineno,
                             f"expected at least {min_fields} fields, got {len(fields)}")
        if max_fields is not None and len(fields) > max_fields:
            raise TableError(path, lineno,
                             f"expected at most {max_fields} fields, got {len(fields)}")
        yield lineno, fields


def read_key_value(path: str, single_value: bool = True) -> Dict[str, str]:
    """Read ``key value`` lines into a dict; duplicate keys are an error.

    With ``single_value=False`` the value is the rest of the line, spacing
    kept (as for ``wav.scp``, whose value may be a command with spaces).
    """
    table: Dict[str, str] = {}
    for lineno, fields, line in _iter_lines(path):
        if len(fields) < 2 or (single_value and len(fields) > 2):
            expected = "2 fields" if single_value else "a key and a value"
            raise TableError(path, lineno, f"expected {expected}, got {len(fields)} field(s)")
        key = fields[0]
        if key in table:
            raise TableError(path, lineno, f"duplicate key '{key}'")
        table[key] = fields[1] if single_value else line.strip()[len(key):].strip()
    return table


def _iter_lines(path: str) -> Iterator[Tuple[int, List[str], str]]:
    """Yield ``(lineno, fields, raw_line)``; empty lines raise TableError."""
    try:
        handle = open(path, encoding="utf-8")
    except FileNotFoundError:
        raise TableError(path, None, "file not found") from None
    with handle:
        for lineno, line in enumerate(handle, 1):
            fields = line.split()
            if not fields:
                raise TableError(path, lineno, "empty line")
            yield lineno, fields, line
