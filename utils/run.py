#!/usr/bin/env python3
"""Run a command locally as one job or a JOB=1:N array, with Kaldi run.pl conventions.

    utils/run.py [--max-jobs-run K] [JOB=1:N] LOG command [args...]

Every "JOB" in LOG and in the command is replaced by the job index; each job
writes its own log (command, start/end times, exit code, as run.pl does,
plus the job's peak resident memory on the "# Accounting:" line).
Exit status is non-zero if any job failed.  Options that only matter on a
cluster (--mem, --num-threads, --gpu, --time) are accepted and ignored, so
the same line works with utils/slurm.py.  Arguments are shell-quoted, so a
file name holding spaces, quotes or ';' reaches the command unchanged.
"""
import os
import re
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

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


def run_one(command, log_path):
    """Run one job with its own log; return its exit code."""
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    start = time.time()
    with open(log_path, "w") as log:
        log.write(f"# {command}\n# Started at {time.ctime()}\n#\n")
        log.flush()
        child = subprocess.Popen(["bash", "-c", "set -o pipefail; " + command],
                                 stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
        code = child.returncode = os.waitstatus_to_exitcode(status)
        # peak RSS: the largest process of the job (Linux reports KiB)
        log.write(f"# Accounting: time={int(time.time() - start)} threads=1 "
                  f"peak_rss_mb={usage.ru_maxrss // 1024}\n")
        log.write(f"# Ended (code {code}) at {time.ctime()}, elapsed time "
                  f"{int(time.time() - start)} seconds\n")
    return code


def main():
    max_jobs, job_range, log, words = parse_args(sys.argv[1:])
    if job_range is None:
        jobs = [(None, to_shell(words), log)]
    else:
        var, first, last = job_range
        pattern = re.compile(rf"\b{var}\b")
        jobs = [(j, to_shell([pattern.sub(str(j), w) for w in words]),
                 pattern.sub(str(j), log)) for j in range(first, last + 1)]
    with ThreadPoolExecutor(max_workers=max(1, max_jobs)) as pool:
        codes = list(pool.map(lambda job: run_one(job[1], job[2]), jobs))
    failed = [job for job, code in zip(jobs, codes) if code != 0]
    if failed:
        where = failed[0][2]
        print(f"{sys.argv[0]}: {len(failed)} / {len(jobs)} failed, log is in {where}",
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
