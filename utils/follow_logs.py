"""Live progress of running jobs on the terminal, read from their logs.

A job run by utils/run.py or utils/slurm.py writes to its log only; its long
loops write plain progress lines there (pyutils/utils/progress.py):

    2026-12-06 15:40:01 progress epoch 3/10: 120/360 batch (33%), ..., eta 113 s, loss=1.234

The runner follows the logs of its running jobs and shows the newest of these
lines on its stderr: on a terminal one line redrawn in place (a new line when
the description before ':' changes, e.g. at each epoch), otherwise the line
every SV_PROGRESS_INTERVAL seconds (default 30; nothing for a job shorter than
that) in the log's own format.  For a job array the line shows how many jobs
have ended and the least advanced running job.  When the description counts
rounds ("epoch 3/10"), the line ends with the ETA of all of them, estimated from
this round's time ("| total eta 9m30s").  The logs are only read.
"""
import os
import re
import sys
import threading
import time

# a launcher may put its own prefix before a worker's line ("[rank0]:")
PROGRESS = re.compile(r"(?:^|[\s:])\d{4}-\d\d-\d\d \d\d:\d\d:\d\d progress (.*)$")
PERCENT = re.compile(r"\((\d+)%\)")
ROUNDS = re.compile(r"(\d+)/(\d+)$")         # the description's "epoch 3/10"
ELAPSED, ETA = re.compile(r", (\d+) s elapsed"), re.compile(r", eta (\d+) s")
TTY_JOB_INTERVAL = 2.0     # seconds between a job's progress lines when a terminal watches


def plain_interval() -> float:
    """Seconds between plain progress lines ($SV_PROGRESS_INTERVAL, default 30)."""
    value = os.environ.get("SV_PROGRESS_INTERVAL", "30")
    try:
        return max(0.0, float(value))
    except ValueError:
        sys.exit(f"SV_PROGRESS_INTERVAL must be a number of seconds, got '{value}'")


def job_interval(tty: bool) -> str:
    """$SV_PROGRESS_INTERVAL for the jobs: often enough for a live line on a terminal."""
    interval = plain_interval()
    return f"{min(interval, TTY_JOB_INTERVAL) if tty else interval:g}"


class _Log:
    """One job's log: where we are in it and its newest progress line."""

    def __init__(self, path, label, skip_unchanged):
        self.path, self.label = path, label
        self.pos, self.partial = 0, b""
        self.status = self.percent = None
        self.running, self.updated = True, 0.0
        self.finished = False           # the runner saw the job end: one last read
        self.baseline = _stat(path) if skip_unchanged else None
        self.ended_status = []          # statuses whose description was followed by another

    def read(self):
        """Take in the lines written since the last call."""
        if self.baseline is not None:   # an earlier run's log: wait until the job rewrites it
            if _stat(self.path) == self.baseline:
                return
            self.baseline = None
        try:
            with open(self.path, "rb") as f:
                if os.fstat(f.fileno()).st_size < self.pos:     # rewritten from the start
                    self.pos, self.partial = 0, b""
                f.seek(self.pos)
                data = f.read()
        except OSError:                 # not there yet (a queued Slurm task)
            return
        self.pos += len(data)
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        for raw in lines:
            line = raw.decode(errors="replace").split("\r")[-1].rstrip()
            match = PROGRESS.search(line)
            if match:
                self._progress(match.group(1))
            elif line.startswith("# Ended (code "):     # the runners' last line of a job
                self.running = False

    def _progress(self, status):
        if self.status is not None and _desc(status) != _desc(self.status):
            self.ended_status.append(self.status)
        percent = PERCENT.search(status)
        self.status, self.percent = status, int(percent.group(1)) if percent else None
        self.updated = time.monotonic()


def _stat(path):
    try:
        st = os.stat(path)
    except OSError:
        return ()
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _desc(status):
    return status.split(": ", 1)[0] if ": " in status else ""


def with_total_eta(status):
    """``status`` + the ETA of all rounds when its description counts them (epoch 3/10):
    this round's ETA plus, for each round left, this round's elapsed time + ETA."""
    rounds, elapsed = ROUNDS.search(_desc(status)), ELAPSED.search(status)
    if not rounds or not elapsed or int(rounds.group(2)) < 2:
        return status
    eta = ETA.search(status)
    if eta is None and "(100%)" not in status:
        return status
    left = int(eta.group(1)) if eta else 0
    total = left + (int(rounds.group(2)) - int(rounds.group(1))) * (int(elapsed.group(1)) + left)
    return f"{status} | total eta {_duration(total)}"


def _duration(seconds):
    hours, rest = divmod(int(seconds), 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s" if minutes \
        else f"{seconds} s"


class Follower:
    """Follow job logs in a thread and show their progress on ``stream`` (stderr)."""

    def __init__(self, total_jobs=1, stream=None, poll=0.5):
        self.stream = sys.stderr if stream is None else stream
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self.total, self.poll, self.interval = total_jobs, poll, plain_interval()
        self.logs = {}
        self.lock = threading.RLock()
        self.stopping = threading.Event()
        self.start_time = self.last_print = time.monotonic()
        self.shown = ""           # the terminal's current line
        self.printed = None       # the last plain line written (None: none yet)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    # add() and finish() never wait for the display (a stalled stderr must not stall a job)
    def add(self, path, label=None, skip_unchanged=False):
        """Follow ``path`` from now on; ``skip_unchanged``: ignore it until it changes
        (it may be an earlier run's log that the job will overwrite)."""
        self.logs[path] = _Log(path, label, skip_unchanged)

    def finish(self, path):
        """The job of ``path`` has ended (its last lines are read at the next poll)."""
        log = self.logs.get(path)
        if log is not None:
            log.finished = True

    def close(self):
        """Last read and display; end the terminal's line."""
        self.stopping.set()
        if threading.current_thread() is not self.thread:
            self.thread.join(timeout=5)
        with self.lock:
            for log in list(self.logs.values()):
                log.read()
                log.running = False
            self._show(final=True)
            if self.shown:
                self._write("\n")
                self.shown = ""

    def end_line(self):
        """Before another message (Ctrl-C): finish the terminal's line, stop showing."""
        self.stopping.set()
        if self.lock.acquire(timeout=1):     # not held up by a display stuck in a write
            try:
                if self.shown:
                    self._write("\n")
            finally:
                self.lock.release()
        self.shown, self.tty, self.interval = "", False, float("inf")

    def _run(self):
        while not self.stopping.wait(self.poll):
            with self.lock:
                for log in list(self.logs.values()):
                    if log.running:
                        finished = log.finished     # before the read, which then has it all
                        log.read()
                        log.running = log.running and not finished
                self._show()

    def _current(self):
        """The line to show now: the least advanced running job's progress."""
        logs = [log for log in list(self.logs.values()) if log.status is not None]
        running = [log for log in logs if log.running] or logs
        if not running:
            return ""
        log = min(running, key=lambda g: (g.percent if g.percent is not None else 101,
                                          -g.updated))
        return self._line(log, log.status)

    def _line(self, log, status):
        """What is shown of one of ``log``'s progress lines."""
        status = with_total_eta(status)
        if self.total == 1:
            return status
        ended = sum(not g.running for g in list(self.logs.values()))
        return f"[{ended}/{self.total} jobs done] job {log.label}: {status}"

    def _show(self, final=False):
        logs = list(self.logs.values())
        ended = [self._line(log, s) for log in logs for s in log.ended_status]
        for log in logs:
            log.ended_status = []
        now = time.monotonic()
        text = self._current()
        if self.tty:
            for status in ended:     # a finished description keeps its own line
                self._write("\n" if status == self.shown else f"\r{self._fit(status)}\x1b[K\n")
                self.shown = ""
            if text and text != self.shown:
                self._write(f"\r{self._fit(text)}\x1b[K")
                self.shown = text
            return
        started = self.printed is not None or now - self.start_time >= self.interval
        if not started or not text:
            return
        for status in ended:
            if status != self.printed:
                self._plain(status)
        if text != self.printed and (final or now - self.last_print >= self.interval):
            self._plain(text)
            self.last_print = now

    def _plain(self, text):
        self._write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} progress {text}\n")
        self.printed = text

    def _fit(self, text):
        try:
            width = os.get_terminal_size(self.stream.fileno()).columns or 100
        except (OSError, ValueError, AttributeError):
            width = 100
        return text if len(text) < width else text[:max(10, width - 2)] + "..."

    def _write(self, text):
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):     # a closed terminal costs the display only
            self.tty, self.interval = False, float("inf")
