"""utils/run.py (Kaldi run.pl conventions) and utils/parse_options.sh."""
import os
import subprocess
import sys

from tests.conftest import ROOT

RUN = os.path.join(ROOT, "utils", "run.py")


def test_job_array_writes_one_log_per_job(tmp_path):
    log = tmp_path / "log" / "x.JOB.log"
    result = subprocess.run([sys.executable, RUN, "JOB=1:3", str(log), "echo", "job", "JOB"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for j in (1, 2, 3):
        text = (tmp_path / "log" / f"x.{j}.log").read_text()
        assert f"job {j}\n" in text and "# Ended (code 0)" in text


def test_failing_job_makes_the_array_fail_and_names_its_log(tmp_path):
    log = tmp_path / "f.JOB.log"
    result = subprocess.run([sys.executable, RUN, "JOB=1:3", str(log), "test", "JOB", "-ne", "2"],
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert "1 / 3 failed" in result.stderr and "f.2.log" in result.stderr
    assert "# Ended (code 1)" in (tmp_path / "f.2.log").read_text()


def test_arguments_with_spaces_quotes_and_semicolons_reach_the_command_unchanged(tmp_path):
    name = tmp_path / "a b'c;touch pwned"
    result = subprocess.run([sys.executable, RUN, str(tmp_path / "log"), "touch", str(name)],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert name.exists() and not (tmp_path / "pwned").exists()


def parse(*args):
    script = ('nj=4; model=xvector; stop_stage=7; '
              f'. {ROOT}/utils/parse_options.sh; echo "$nj|$model|$stop_stage|$*"')
    return subprocess.run(["bash", "-c", script, "prog", *args], capture_output=True, text=True)


def test_parse_options_kaldi_semantics():
    result = parse("--nj", "8", "--stop-stage=3", "pos1", "pos2")
    assert result.stdout.strip() == "8|xvector|3|pos1 pos2"
    bad = parse("--no-such-option", "1")
    assert bad.returncode != 0 and "invalid option --no-such-option" in bad.stderr


FAKE_SBATCH = """#!/usr/bin/env bash
# stands in for sbatch --wait: runs the array's tasks one after the other
for a in "$@"; do case $a in --array=*) array=${a#--array=};; --*) ;; *) script=$a;; esac; done
range=${array%%%*}
echo 4242   # the job id, as sbatch --parsable prints
for ((i=${range%-*}; i<=${range#*-}; i++)); do SLURM_ARRAY_TASK_ID=$i bash "$script"; done
"""


def test_slurm_launcher_quotes_names_and_reports_failed_tasks(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(FAKE_SBATCH)
    (bin_dir / "sbatch").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    logdir = tmp_path / "log dir;x"
    slurm = os.path.join(ROOT, "utils", "slurm.py")
    ok = subprocess.run([sys.executable, slurm, "--mem", "2G", "JOB=1:3", str(logdir / "t.JOB.log"),
                         "echo", "a b;touch pwned", "JOB"], env=env, cwd=tmp_path,
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "a b;touch pwned 2\n" in (logdir / "t.2.log").read_text()
    assert not (tmp_path / "pwned").exists()
    bad = subprocess.run([sys.executable, slurm, "JOB=1:3", str(logdir / "f.JOB.log"),
                          "test", "JOB", "-ne", "3"], env=env, cwd=tmp_path,
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "1 / 3 failed" in bad.stderr and "f.3.log" in bad.stderr


def test_accounting_line_reports_the_jobs_peak_memory(tmp_path):
    """Like run.pl's '# Accounting:' line, plus the job's peak RSS (here ~200 MB vs ~10 MB)."""
    import re
    big = "b = bytearray(200 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096])"
    for name, code in (("big", big), ("small", "pass")):
        subprocess.run([RUN, str(tmp_path / f"{name}.log"), sys.executable, "-c", code], check=True)
    peaks = {}
    for name in ("big", "small"):
        match = re.search(r"^# Accounting: time=\d+ threads=1 peak_rss_mb=(\d+)$",
                          (tmp_path / f"{name}.log").read_text(), re.M)
        assert match, name
        peaks[name] = int(match.group(1))
    assert 200 <= peaks["big"] < 260 and peaks["small"] < 60, peaks


def test_failing_job_shows_the_end_of_its_log_without_progress_bars(tmp_path):
    """issue 7 item 6: the error itself reaches the terminal, tqdm redraws do not."""
    script = ("import sys; print('step one'); sys.stdout.write('10%|#\\r50%|#####\\r'); print();"
              " print('ValueError: bad input in feats.scp line 3'); sys.exit(2)")
    result = subprocess.run([sys.executable, RUN, str(tmp_path / "e.log"), sys.executable, "-c",
                             script], capture_output=True, text=True)
    assert result.returncode == 1
    assert "ValueError: bad input in feats.scp line 3" in result.stderr
    assert "step one" in result.stderr and "50%" not in result.stderr
    assert "Started at" not in result.stderr


def test_ctrl_c_kills_the_jobs_and_exits_130_without_traceback(tmp_path):
    """issue 7 item 9: SIGINT stops every job (and its children) and says so in one line."""
    import signal
    import time
    pids = tmp_path / "pid"
    # SIGINT as a terminal delivers it: a runner started from a background shell job
    # (nohup ... &) inherits SIGINT ignored, as it should, and would never see it
    proc = subprocess.Popen([sys.executable, RUN, "JOB=1:2", str(tmp_path / "s.JOB.log"),
                             "sh", "-c", f"echo $$ > {pids}.JOB; exec sleep 60"],
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 60
    while not all(os.path.exists(f"{pids}.{j}") and open(f"{pids}.{j}").read().strip()
                  for j in (1, 2)):
        assert time.time() < deadline
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and "interrupted" in err
    time.sleep(0.5)
    for j in (1, 2):
        pid = int(open(f"{pids}.{j}").read())
        try:
            state = open(f"/proc/{pid}/stat").read().split(")")[-1].split()[0]
        except FileNotFoundError:
            state = "gone"
        assert state in ("gone", "Z"), (pid, state)


def test_killing_the_runner_with_sigkill_also_stops_its_jobs(tmp_path):
    """A step killed with its whole process group (kill -9 of run.sh, a node's OOM
    killer) leaves no job running on: a late job would write into the rerun's files."""
    import signal
    import time
    pid_file = tmp_path / "pid"
    proc = subprocess.Popen([sys.executable, RUN, str(tmp_path / "s.log"), "sh", "-c",
                             f"sleep 60 & echo $! > {pid_file}; wait"], start_new_session=True)
    deadline = time.time() + 20
    while not (pid_file.exists() and pid_file.read_text().strip()):
        assert time.time() < deadline
        time.sleep(0.05)
    grandchild = int(pid_file.read_text())
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    state = "running"
    while state not in ("gone", "Z") and time.time() < deadline:
        time.sleep(0.05)
        try:
            state = open(f"/proc/{grandchild}/stat").read().split(")")[-1].split()[0]
        except FileNotFoundError:
            state = "gone"
    assert state in ("gone", "Z"), (grandchild, state)


def test_a_dead_watchdog_costs_only_its_protection(tmp_path):
    """The watchdog killed on its own: the jobs still run, are logged and succeed."""
    import signal
    import time
    started = tmp_path / "started"
    proc = subprocess.Popen([sys.executable, RUN, "JOB=1:2", str(tmp_path / "s.JOB.log"),
                             "sh", "-c", f"touch {started}.JOB; sleep 2; echo done"])
    deadline = time.time() + 60
    while not (os.path.exists(f"{started}.1") and os.path.exists(f"{started}.2")):
        assert time.time() < deadline
        time.sleep(0.05)
    watchdogs = [int(p) for p in os.listdir("/proc") if p.isdigit()
                 and _cmdline(p)[-1:] == ["--watchdog"] and _parent(p) == proc.pid]
    assert len(watchdogs) == 1
    os.kill(watchdogs[0], signal.SIGKILL)
    assert proc.wait(timeout=60) == 0
    assert all("done" in (tmp_path / f"s.{j}.log").read_text() for j in (1, 2))


def _cmdline(pid):
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read().decode().split("\0")[:-1]
    except OSError:
        return []


def _parent(pid):
    try:
        return int(open(f"/proc/{pid}/stat").read().split(")")[-1].split()[1])
    except OSError:
        return -1


def fake_sbatch(tmp_path, body):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "sbatch").write_text("#!/usr/bin/env bash\n" + body)
    (bin_dir / "sbatch").chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_slurm_rerun_with_failing_sbatch_fails_despite_old_status_files(tmp_path):
    """issue 9: status files of a successful run must not pass for a failed rerun."""
    slurm = os.path.join(ROOT, "utils", "slurm.py")
    log = str(tmp_path / "log" / "r.JOB.log")
    env = fake_sbatch(tmp_path, FAKE_SBATCH)
    ok = subprocess.run([sys.executable, slurm, "JOB=1:2", log, "true"], env=env, cwd=tmp_path,
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    env = fake_sbatch(tmp_path, "echo 'sbatch: error: Batch job submission failed' >&2; exit 1\n")
    bad = subprocess.run([sys.executable, slurm, "JOB=1:2", log, "false"], env=env, cwd=tmp_path,
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "sbatch failed" in bad.stderr
    assert "submission failed" in bad.stderr


def test_slurm_single_job_without_range_succeeds_and_logs_kaldi_format(tmp_path):
    slurm = os.path.join(ROOT, "utils", "slurm.py")
    env = fake_sbatch(tmp_path, FAKE_SBATCH)
    result = subprocess.run([sys.executable, slurm, str(tmp_path / "one.log"), "echo", "hello"],
                            env=env, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "one.log").read_text()
    assert text.startswith("# echo hello\n# Started at ") and "\nhello\n" in text
    assert "# Accounting: time=" in text and "threads=1" in text and "# Ended (code 0) at" in text


def test_slurm_missing_sbatch_is_a_message_not_a_traceback(tmp_path):
    slurm = os.path.join(ROOT, "utils", "slurm.py")
    env = {**os.environ, "PATH": str(tmp_path)}
    result = subprocess.run([sys.executable, slurm, str(tmp_path / "x.log"), "true"], env=env,
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "'sbatch' not found" in result.stderr


def test_slurm_options_go_through_the_config_file(tmp_path):
    """slurm.pl's config format: exact values first, '*' with $0, defaults, unknown refused."""
    slurm = os.path.join(ROOT, "utils", "slurm.py")
    env = fake_sbatch(tmp_path, 'echo "$@" > ' + str(tmp_path / "args") + "\n" + FAKE_SBATCH)
    conf = tmp_path / "s.conf"
    conf.write_text("command sbatch --export=PATH -p cpu\noption mem=* --mem-per-cpu $0\n"
                    "default gpu=0\noption gpu=0\noption gpu=* -p gpu --gres=gpu:$0  # GPUs\n"
                    "option max_jobs_run=*\noption time=* --time $0\n")
    result = subprocess.run([sys.executable, slurm, "--config", str(conf), "--gpu", "2",
                             "--mem", "3G", "--max-jobs-run", "1", "JOB=1:2",
                             str(tmp_path / "g.JOB.log"), "true"], env=env, cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    args = (tmp_path / "args").read_text()
    assert "--export=PATH -p cpu" in args and "-p gpu --gres=gpu:2" in args
    assert "--mem-per-cpu 3G" in args and "--array=1-2%1" in args
    bad = subprocess.run([sys.executable, slurm, "--config", str(conf), "--num-threads", "4",
                          str(tmp_path / "n.log"), "true"], env=env, cwd=tmp_path,
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "--num-threads" in bad.stderr and "Traceback" not in bad.stderr
