"""Progress of long loops: a live tqdm bar on a terminal, plain lines in logs.

Jobs run by utils/run.py or utils/slurm.py write stderr to their log file,
where a tqdm bar would become hundreds of characters of carriage-return
updates on one line.  There, :func:`progress` writes a plain line every
``interval`` seconds instead (and one at the end):

    2026-12-01 22:40:01 progress extract: 120/360 utt (33%), 11.8 utt/s, 10 s elapsed, eta 20 s

The runner follows these lines and shows them on the terminal while the job
runs (utils/follow_logs.py); ``interval`` defaults to $SV_PROGRESS_INTERVAL
(30 s; the runner lowers it to 2 s for its jobs when a terminal watches).
"""
from __future__ import annotations

import os
import sys
import time
from typing import Iterable, Iterator, Optional

from tqdm import tqdm


def progress(iterable: Iterable, total: Optional[int] = None, desc: str = "", unit: str = "it",
             interval: Optional[float] = None, stream=None, **tqdm_options):
    """Wrap ``iterable``: tqdm on a terminal, :class:`PlainProgress` otherwise."""
    stream = sys.stderr if stream is None else stream
    interval = default_interval() if interval is None else interval
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    if getattr(stream, "isatty", lambda: False)():
        return tqdm(iterable, total=total, desc=desc or None, unit=unit, file=stream,
                    mininterval=1.0, **tqdm_options)
    return PlainProgress(iterable, total, desc, unit, interval, stream)


def default_interval() -> float:
    """Seconds between plain progress lines: $SV_PROGRESS_INTERVAL, else 30."""
    value = os.environ.get("SV_PROGRESS_INTERVAL", "")
    try:
        return max(0.0, float(value)) if value else 30.0
    except ValueError:
        raise ValueError(f"SV_PROGRESS_INTERVAL must be a number of seconds, got '{value}'")


class PlainProgress:
    """An iterator that logs ``n/total`` with throughput every ``interval`` s."""

    def __init__(self, iterable: Iterable, total: Optional[int], desc: str, unit: str,
                 interval: float, stream):
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.interval, self.stream = interval, stream
        self.n = self._written = 0
        self.postfix = ""
        self._start = self._last = time.monotonic()
        self._closed = False

    def __len__(self) -> int:
        return self.total if self.total is not None else len(self.iterable)

    def __iter__(self) -> Iterator:
        try:
            for item in self.iterable:
                yield item
                self.n += 1
                if time.monotonic() - self._last >= self.interval:
                    self._write()
        finally:
            self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        if time.monotonic() - self._last >= self.interval:
            self._write()

    def set_postfix(self, ordered_dict=None, refresh: bool = True, **values) -> None:
        """Values shown after the counts, as tqdm's ``set_postfix``."""
        items = dict(ordered_dict or {}, **values)
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self.n and self.n != self._written:     # the last count, once
                self._write()

    def _write(self) -> None:
        now = time.monotonic()
        self._last, self._written = now, self.n
        elapsed = now - self._start
        rate = self.n / elapsed if elapsed > 0 else 0.0
        done = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        parts = [f"{done} {self.unit}"]
        if self.total:
            parts[0] += f" ({100.0 * self.n / self.total:.0f}%)"
        parts.append(f"{rate:.1f} {self.unit}/s")
        parts.append(f"{elapsed:.0f} s elapsed")
        if self.total and rate > 0 and self.n < self.total:
            parts.append(f"eta {(self.total - self.n) / rate:.0f} s")
        if self.postfix:
            parts.append(self.postfix)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        label = f" {self.desc}:" if self.desc else ""
        self.stream.write(f"{stamp} progress{label} {', '.join(parts)}\n")
        self.stream.flush()
