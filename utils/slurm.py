#!/usr/bin/env python3
"""Run a command as a Slurm job array, with the same interface as utils/run.py.

    utils/slurm.py [--max-jobs-run K] [--mem 4G] [--num-threads T] [--gpu G]
                   [--time HH:MM:SS] [JOB=1:N] LOG command [args...]

Like Kaldi's slurm.pl: writes a batch script next to the logs (LOGDIR/q/),
submits it with ``sbatch --wait --array=1-N%K``, and each task writes its
log and an exit-code file; the launcher exits non-zero if any task failed.
Extra sbatch flags (partition, account, ...) come from $SLURM_EXTRA_ARGS
(set it in cmd.sh).
"""
import os
import re
import shlex
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import OPERATORS  # noqa: E402  (same quoting rules as the local runner)


def parse_args(argv):
    """Return (sbatch flags, max jobs, job range, log, words)."""
    flags, max_jobs = [], None
    while argv and argv[0].startswith("--"):
        name, _, value = argv[0].partition("=")
        step = 1
        if not _:
            if len(argv) < 2:
                sys.exit(f"{sys.argv[0]}: option {name} needs a value")
            value, step = argv[1], 2
        if name == "--max-jobs-run":
            max_jobs = int(value)
        elif name == "--mem":
            flags.append(f"--mem-per-cpu={value}")
        elif name == "--num-threads":
            flags.append(f"--cpus-per-task={value}")
        elif name == "--gpu":
            if int(value) > 0:
                flags.append(f"--gres=gpu:{value}")
        elif name == "--time":
            flags.append(f"--time={value}")
        elif name != "--config":
            sys.exit(f"{sys.argv[0]}: unknown option {name}")
        argv = argv[step:]
    var, first, last = "JOB", 1, 1
    ranged = bool(argv) and re.fullmatch(r"[A-Za-z]+=\d+:\d+", argv[0])
    if ranged:
        var, span = argv[0].split("=")
        first, last = (int(x) for x in span.split(":"))
        argv = argv[1:]
    if len(argv) < 2:
        sys.exit(f"usage: {sys.argv[0]} [options] [JOB=1:N] LOG command ...")
    return flags, max_jobs, (var, first, last, ranged), argv[0], argv[1:]


def main():
    flags, max_jobs, (var, first, last, ranged), log, words = parse_args(sys.argv[1:])
    logdir = os.path.dirname(os.path.abspath(log))
    qdir = os.path.join(logdir, "q")
    os.makedirs(qdir, exist_ok=True)
    base = re.sub(rf"\b{var}\b", "array", os.path.basename(log))
    script = os.path.join(qdir, base + ".sh")
    task = '"${SLURM_ARRAY_TASK_ID}"'

    def with_task(text):
        """Shell-quote ``text`` with each JOB replaced by the (quoted) array index."""
        if not ranged:
            return shlex.quote(text)
        return task.join(shlex.quote(part) for part in re.split(rf"\b{var}\b", text))
    command = " ".join(w if w in OPERATORS else with_task(w) for w in words)
    task_log = with_task(os.path.abspath(log))
    status_file = os.path.join(qdir, f"done.{base}.{var}")
    status = with_task(status_file)
    with open(script, "w") as out:
        out.write("#!/usr/bin/env bash\n")
        out.write(f"cd {shlex.quote(os.getcwd())}\n")
        out.write(f"( echo '# '{shlex.quote(command)}; echo \"# Started at $(date)\"\n")
        out.write(f"  set -o pipefail; {command} ) > {task_log} 2>&1\n")
        out.write(f"code=$?\necho \"# Ended (code $code) at $(date)\" >> {task_log}\n")
        out.write(f"echo $code > {status}\nexit $code\n")
    array = f"{first}-{last}" + (f"%{max_jobs}" if max_jobs else "")
    extra = shlex.split(os.environ.get("SLURM_EXTRA_ARGS", ""))
    sbatch = ["sbatch", "--wait", "--parsable", f"--array={array}",
              f"--output={os.path.join(qdir, base + '.%a.out')}", *flags, *extra, script]
    subprocess.call(sbatch, stdout=subprocess.DEVNULL)
    failed = []
    for j in range(first, last + 1):
        path = re.sub(rf"\b{var}\b", str(j), status_file)
        code = open(path).read().strip() if os.path.exists(path) else "missing"
        if code != "0":
            failed.append(re.sub(rf"\b{var}\b", str(j), log) if ranged else log)
    if failed:
        print(f"{sys.argv[0]}: {len(failed)} / {last - first + 1} failed, log is in {failed[0]}",
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
