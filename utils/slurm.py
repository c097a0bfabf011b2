#!/usr/bin/env python3
"""Run a command as a Slurm job array, with the interface of utils/run.py and
the semantics of Kaldi's utils/parallel/slurm.pl.

    utils/slurm.py [--config conf/slurm.conf] [--max-jobs-run K] [--mem 4G]
                   [--num-threads T] [--gpu G] [--time HH:MM:SS]
                   [JOB=1:N] LOG command [args...]

Each option is translated into sbatch flags by the config file (Kaldi's
format, default conf/slurm.conf, see that file), so partitions, accounts and
time limits are set per cluster without editing code.  ``JOB=1:N`` is one
job array submitted with ``sbatch --wait``; each task writes its log in
Kaldi's format (``# command``, ``# Started at``, ``# Accounting:``,
``# Ended (code N) at``) and its exit code to LOGDIR/q/done.<log>.<task>.
Status files of an earlier run are removed before submission, so a task that
never ran (cancelled, timed out, sbatch failed) counts as failed; the exit
status is non-zero if any task failed, and the message names the failed
tasks and shows the end of the first failed log.  Extra sbatch flags can also
come from $SLURM_EXTRA_ARGS.  While the tasks run, the progress lines they
write into their logs (on the shared file system) are shown on stderr, as
utils/run.py does.
"""
import os
import re
import shlex
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import OPERATORS, report_failure  # noqa: E402  (shared with the local runner)
from follow_logs import Follower, job_interval  # noqa: E402

PROG = "utils/slurm.py"

# Kaldi slurm.pl's built-in configuration, used when no config file exists.
DEFAULT_CONFIG = """\
command sbatch --export=ALL --ntasks-per-node=1
option time=* --time $0
option mem=* --mem-per-cpu $0
option mem=0
option num_threads=* --cpus-per-task $0 --ntasks-per-node=1
option num_threads=1 --cpus-per-task 1 --ntasks-per-node=1
option max_jobs_run=*
default gpu=0
option gpu=0
option gpu=* --gres=gpu:$0
"""


def die(message):
    print(f"{PROG}: {message}", file=sys.stderr)
    sys.exit(1)


def read_config(text, where):
    """Parse slurm.pl's format into (command words, defaults, {(name, value): flags}).

    ``value`` is the literal value or "*" (any value; "$0" in the flags is
    replaced by it).  Comments start with '#'."""
    command, defaults, options = None, {}, {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        key, _, rest = line.partition(" ")
        rest = rest.strip()
        if key == "command":
            command = shlex.split(rest)
        elif key in ("option", "default"):
            spec, _, flags = rest.partition(" ")
            name, eq, value = spec.partition("=")
            if not eq:
                die(f"{where}:{number}: expected '{key} name=value ...', got '{raw}'")
            if key == "default":
                defaults[name] = value
            else:
                options[(name, value)] = flags.strip()
        else:
            die(f"{where}:{number}: unknown line '{raw}' (command|option|default)")
    if not command:
        die(f"{where}: no 'command sbatch ...' line")
    return command, defaults, options


def option_flags(name, value, options, where):
    """The sbatch flags of one option: an exact 'option name=value' line first,
    else 'option name=*' with $0 replaced by the value."""
    if (name, value) in options:
        return shlex.split(options[(name, value)])
    if (name, "*") in options:
        return shlex.split(options[(name, "*")].replace("$0", value))
    die(f"option --{name.replace('_', '-')} {value} is not configured in {where}")


def parse_args(argv):
    """Return ({option: value}, config path, job range, log, words)."""
    opts, config = {}, None
    while argv and argv[0].startswith("--"):
        name, eq, value = argv[0][2:].partition("=")
        step = 1
        if not eq:
            if len(argv) < 2:
                die(f"option --{name} needs a value")
            value, step = argv[1], 2
        if name == "config":
            config = value
        else:
            opts[name.replace("-", "_")] = value
        argv = argv[step:]
    var, first, last, ranged = "JOB", 1, 1, False
    if argv and re.fullmatch(r"[A-Za-z]+=\d+:\d+", argv[0]):
        var, span = argv[0].split("=")
        first, last = (int(x) for x in span.split(":"))
        if last < first:
            die(f"empty job range {argv[0]}")
        ranged, argv = True, argv[1:]
    if len(argv) < 2:
        die("usage: utils/slurm.py [options] [JOB=1:N] LOG command ...")
    return opts, config, (var, first, last, ranged), argv[0], argv[1:]


def sbatch_command(opts, config):
    """The sbatch words (command line, options through the config) and max jobs."""
    where = config or "conf/slurm.conf"
    if os.path.exists(where):
        with open(where) as f:
            text = f.read()
    elif config:
        die(f"no config file {config}")
    else:
        text, where = DEFAULT_CONFIG, "the built-in slurm.pl config"
    command, defaults, options = read_config(text, where)
    values = {**defaults, **opts}
    words, max_jobs = list(command), None
    for name, value in values.items():
        if name == "max_jobs_run":
            if not value.isdigit():
                die(f"--max-jobs-run takes a number, got '{value}'")
            max_jobs = int(value)
            continue
        if not any(n == name for n, _ in options):
            die(f"unknown option --{name.replace('_', '-')} (not in {where})")
        words += option_flags(name, value, options, where)
    return words, max_jobs, values.get("num_threads", "1")


def write_script(script, words, var, ranged, log, status_prefix, threads, interval="30"):
    """The batch script: one task runs the command with its index, logging as Kaldi does."""
    task = '"${SLURM_ARRAY_TASK_ID}"'

    def with_task(text):
        """Shell-quote ``text`` with each JOB replaced by the (quoted) array index."""
        if not ranged:
            return shlex.quote(text)
        return task.join(shlex.quote(part) for part in re.split(rf"\b{var}\b", text))
    command = " ".join(w if w in OPERATORS else with_task(w) for w in words)
    task_log = with_task(os.path.abspath(log))
    with open(script, "w") as out:
        out.write("#!/usr/bin/env bash\n")
        out.write(f"cd {shlex.quote(os.getcwd())}\n")
        # how often the task's progress lines come (what the runner shows; --export may drop it)
        out.write(f"export SV_PROGRESS_INTERVAL={shlex.quote(interval)}\n")
        out.write(f"mkdir -p \"$(dirname {task_log})\"\nstart=$(date +%s)\n")
        out.write(f"( echo '# '{with_task(' '.join(words))}; echo \"# Started at $(date)\"; "
                  "echo '#'\n")
        out.write(f"  set -o pipefail; {command} ) > {task_log} 2>&1\n")
        out.write("code=$?\nend=$(date +%s)\n")
        out.write(f"echo \"# Accounting: time=$((end - start)) threads={threads}\" >> {task_log}\n")
        out.write(f"echo \"# Ended (code $code) at $(date), elapsed time $((end - start)) "
                  f"seconds\" >> {task_log}\n")
        out.write(f"echo $code > {shlex.quote(status_prefix)}.\"${{SLURM_ARRAY_TASK_ID}}\"\n")
        out.write("exit $code\n")


def main():
    opts, config, (var, first, last, ranged), log, words = parse_args(sys.argv[1:])
    sbatch, max_jobs, threads = sbatch_command(opts, config)
    logdir = os.path.dirname(os.path.abspath(log))
    qdir = os.path.join(logdir, "q")
    os.makedirs(qdir, exist_ok=True)
    base = re.sub(rf"\b{var}\b", "array", os.path.basename(log))
    script = os.path.join(qdir, base + ".sh")
    status_prefix = os.path.join(qdir, f"done.{base}")
    task_ids = range(first, last + 1)
    task_log = {j: re.sub(rf"\b{var}\b", str(j), log) if ranged else log for j in task_ids}
    for j in task_ids:   # stale status of an earlier run would pass for this one's
        for stale in (f"{status_prefix}.{j}",):
            if os.path.exists(stale):
                os.remove(stale)
    follower = Follower(total_jobs=len(task_ids))
    write_script(script, words, var, ranged, log, status_prefix, threads,
                 job_interval(follower.tty))
    array = f"{first}-{last}" + (f"%{max_jobs}" if max_jobs else "")
    extra = shlex.split(os.environ.get("SLURM_EXTRA_ARGS", ""))
    cmd = [*sbatch, "--wait", "--parsable", f"--array={array}", f"--job-name={base}",
           f"--output={os.path.join(qdir, base + '.%a.out')}", *extra, script]
    for j in task_ids:   # an earlier run's log is shown only once the task rewrites it
        follower.add(os.path.abspath(task_log[j]), j, skip_unchanged=True)
    try:
        result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except FileNotFoundError:
        follower.end_line()
        die(f"'{cmd[0]}' not found: Slurm's client is not installed or not on PATH "
            "(use the local runner: SV_LAUNCHER=local, see cmd.sh)")
    except KeyboardInterrupt:
        follower.end_line()
        die("interrupted; cancel the job array with: scancel --name=" + base)
    follower.close()
    failed, missing = [], []
    for j in task_ids:
        path = f"{status_prefix}.{j}"
        code = open(path).read().strip() if os.path.exists(path) else None
        if code is None:
            missing.append(j)
        if code != "0":
            failed.append(j)
    submitted = re.match(r"\d+", result.stdout.strip())   # --parsable prints the job id
    if result.returncode != 0 and not submitted:
        print(f"{PROG}: sbatch failed (exit {result.returncode}): "
              f"{result.stderr.strip() or result.stdout.strip()}", file=sys.stderr)
        print(f"{PROG}: {' '.join(shlex.quote(w) for w in cmd)}", file=sys.stderr)
        sys.exit(1)
    if failed:
        if missing:
            print(f"{PROG}: task {','.join(map(str, missing))} wrote no exit status "
                  f"(cancelled, timed out or killed; Slurm's output is in {qdir})",
                  file=sys.stderr)
        report_failure(PROG, failed, len(task_ids), task_log[failed[0]])
        sys.exit(1)


if __name__ == "__main__":
    main()
