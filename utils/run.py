#!/usr/bin/env python3
"""Run a command locally as one job or a JOB=1:N array, with Kaldi run.pl conventions.

    utils/run.py [--max-jobs-run K] [JOB=1:N] LOG command [args...]

Every "JOB" in LOG and in the command is replaced by the job index; each job
writes its own log (command, start/end times, exit code, as run.pl does,
plus the job's peak resident memory on the "# Accounting:" line).
While they run, the progress lines the jobs write into their logs are shown
on stderr (utils/follow_logs.py: one live line on a terminal, a plain line
every 30 s otherwise).  Exit status is non-zero if any job failed.
Options that only matter on a cluster (--mem, --num-threads, --gpu,
--time) are accepted and ignored, so the same line works with utils/slurm.py.
Arguments are shell-quoted, so a file name holding spaces, quotes or ';'
reaches the command unchanged.
"""
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from follow_logs import Follower, job_interval  # noqa: E402  (shared with utils/slurm.py)

IGNORED_OPTIONS = {"--mem", "--num-threads", "--gpu", "--time", "--config"}


def parse_args(argv):
    """Split argv into (options, job range, log path, command words)."""
    max_jobs = os.cpu_count() or 1
    while argv and argv[0].startswith("--"):
        opt = argv[0].split("=", 1)
        name, value = (opt[0], opt[1]) if len(opt) == 2 else (opt[0], None)
        consumed = 1 if value is not None else 2
        if value is None:
            if len(argv) < 2:
                sys.exit(f"{sys.argv[0]}: option {name} needs a value")
            value = argv[1]
        if name == "--max-jobs-run":
            max_jobs = int(value)
        elif name not in IGNORED_OPTIONS:
            sys.exit(f"{sys.argv[0]}: unknown option {name}")
        argv = argv[consumed:]
    job_range = None
    if argv and re.fullmatch(r"[A-Za-z]+=\d+:\d+", argv[0]):
        var, span = argv[0].split("=")
        first, last = (int(x) for x in span.split(":"))
        if last < first:
            sys.exit(f"{sys.argv[0]}: empty job range {argv[0]}")
        job_range = (var, first, last)
        argv = argv[1:]
    if len(argv) < 2:
        sys.exit(f"usage: {sys.argv[0]} [--max-jobs-run K] [JOB=1:N] LOG command ...")
    return max_jobs, job_range, argv[0], argv[1:]


# Words passed alone that are meant as shell syntax (as with run.pl, where a
# caller writes: $cmd log a \| b).  Every other word is quoted, so a file name
# can never inject a command, whatever characters it holds.
OPERATORS = {"|", "||", "&&", ";", ">", ">>", "<", "2>", "2>&1", "&>"}


def to_shell(words):
    """Join words into one shell line, quoting every word but lone operators."""
    return " ".join(w if w in OPERATORS else shlex.quote(w) for w in words)


def log_tail(path, lines=10):
    """The last ``lines`` lines of a job's log that are neither progress bars
    (tqdm redraws joined by carriage returns) nor the runner's '#' header/footer."""
    try:
        with open(path, errors="replace", newline="") as f:
            text = f.read()
    except OSError as e:
        return [f"(cannot read {path}: {e.strerror})"]
    kept = [line for line in text.split("\n")
            if "\r" not in line and line.strip() and not line.startswith("#")]
    return kept[-lines:]


def report_failure(prog, failed_ids, total, first_log):
    """Name the failed jobs and show the end of the first failing log on stderr."""
    ids = ",".join(str(j) for j in failed_ids)
    print(f"{prog}: {len(failed_ids)} / {total} failed (job {ids}), log is in {first_log}",
          file=sys.stderr)
    tail = log_tail(first_log)
    if tail:
        print(f"{prog}: last lines of {first_log}:", file=sys.stderr)
        for line in tail:
            print(f"    {line}", file=sys.stderr)


RUNNING = set()          # Popen objects of the jobs still running (killed on Ctrl-C)
RUNNING_LOCK = threading.Lock()
WATCHDOG = None          # the process that stops the jobs if this runner dies


def watchdog():
    """Read "+PGID"/"-PGID" lines from stdin; at end of file (the runner has
    exited, even by SIGKILL), SIGTERM every process group still registered.

    Jobs run in their own sessions (so Ctrl-C can stop a job's children), which
    also puts them beyond a kill of the runner's group; this closes that gap."""
    groups = set()
    for line in sys.stdin:
        pgid = int(line[1:])
        if line[0] == "+":
            groups.add(pgid)
        else:
            groups.discard(pgid)
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def start_watchdog():
    """Start the watchdog in its own session, so a kill of ours does not reach it."""
    global WATCHDOG
    # its output goes nowhere: it must not hold our stderr open after we exit (a caller
    # reading our stderr to the end would wait for the watchdog too)
    WATCHDOG = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--watchdog"],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, text=True, start_new_session=True)


def tell_watchdog(line):
    """Register (+) or release (-) a job's process group; a watchdog that is gone
    (killed on its own) only costs that protection, never the jobs."""
    global WATCHDOG
    with RUNNING_LOCK:
        if WATCHDOG is None:
            return
        try:
            WATCHDOG.stdin.write(line + "\n")
            WATCHDOG.stdin.flush()
        except OSError:           # BrokenPipeError: it died
            WATCHDOG = None


def stop_watchdog():
    """Close its pipe (it finds no group left to stop) and wait for it."""
    with RUNNING_LOCK:
        watchdog = WATCHDOG
    if watchdog is not None:
        try:
            watchdog.stdin.close()
        except OSError:
            pass
        watchdog.wait()


def kill_running():
    """Stop every running job with its whole process group."""
    with RUNNING_LOCK:
        children = list(RUNNING)
    for child in children:
        try:
            os.killpg(child.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def run_one(command, log_path, follower=None, label=None):
    """Run one job with its own log (followed by ``follower``); return its exit code."""
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    start = time.time()
    with open(log_path, "w") as log:
        log.write(f"# {command}\n# Started at {time.ctime()}\n#\n")
        log.flush()
        if follower is not None:
            follower.add(log_path, label)
        # its own process group, so that Ctrl-C kills the job and all its children
        child = subprocess.Popen(["bash", "-c", "set -o pipefail; " + command],
                                 stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        with RUNNING_LOCK:
            RUNNING.add(child)
        tell_watchdog(f"+{child.pid}")
        try:
            _, status, usage = os.wait4(child.pid, 0)
        finally:
            with RUNNING_LOCK:
                RUNNING.discard(child)
            tell_watchdog(f"-{child.pid}")
            if follower is not None:
                follower.finish(log_path)
        code = child.returncode = os.waitstatus_to_exitcode(status)
        # peak RSS: the largest process of the job (Linux reports KiB)
        log.write(f"# Accounting: time={int(time.time() - start)} threads=1 "
                  f"peak_rss_mb={usage.ru_maxrss // 1024}\n")
        log.write(f"# Ended (code {code}) at {time.ctime()}, elapsed time "
                  f"{int(time.time() - start)} seconds\n")
    return code


def main():
    if sys.argv[1:] == ["--watchdog"]:
        return watchdog()
    max_jobs, job_range, log, words = parse_args(sys.argv[1:])
    start_watchdog()
    if job_range is None:
        jobs = [(None, to_shell(words), log)]
    else:
        var, first, last = job_range
        pattern = re.compile(rf"\b{var}\b")
        jobs = [(j, to_shell([pattern.sub(str(j), w) for w in words]),
                 pattern.sub(str(j), log)) for j in range(first, last + 1)]
    follower = Follower(total_jobs=len(jobs))
    # the jobs' progress lines come often enough for a live line when a terminal watches
    os.environ["SV_PROGRESS_INTERVAL"] = job_interval(follower.tty)
    pool = ThreadPoolExecutor(max_workers=max(1, max_jobs))
    try:
        codes = list(pool.map(lambda job: run_one(job[1], job[2], follower, job[0]), jobs))
    except KeyboardInterrupt:
        kill_running()
        follower.end_line()
        print(f"{sys.argv[0]}: interrupted; stopped the running jobs (logs in "
              f"{os.path.dirname(os.path.abspath(log))})", file=sys.stderr)
        os._exit(130)   # the pool's threads are still waiting on their (killed) jobs
    pool.shutdown()
    follower.close()
    stop_watchdog()
    failed = [(job or 1, where) for (job, _, where), code in zip(jobs, codes) if code != 0]
    if failed:
        report_failure(sys.argv[0], [j for j, _ in failed], len(jobs), failed[0][1])
        sys.exit(1)


if __name__ == "__main__":
    main()
