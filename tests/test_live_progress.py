"""What a user sees while a long stage runs (issue 18, item 6): the runner
follows its jobs' logs and shows their progress lines on the terminal while
they run (one redrawn line on a terminal, plain periodic lines otherwise);
the log keeps every line."""
import os
import pty
import re
import select
import subprocess
import sys
import time

from tests.conftest import ROOT

RUN = os.path.join(ROOT, "utils", "run.py")
SLURM = os.path.join(ROOT, "utils", "slurm.py")

# A training-like job: two epochs of progress(), waiting in epoch 1 until the
# test has seen its progress on the terminal (so what it saw came mid-run).
JOB = """
import os, sys, time
from pyutils.utils.progress import progress
release, fail = sys.argv[1], sys.argv[2] == "fail"
for epoch in (1, 2):
    bar = progress(range(5), desc=f"epoch {epoch}/2", unit="batch")
    for i in bar:
        time.sleep(0.15)
        bar.set_postfix(loss=f"{2.0 / (epoch * 5 + i):.3f}")
        while epoch == 1 and i == 2 and not os.path.exists(release):
            time.sleep(0.05)
    if fail:
        raise ValueError("bad input in feats.scp line 3")
print("trained")
"""


def env(interval="0.1", **more):
    return {**os.environ, "PYTHONPATH": ROOT, "SV_PROGRESS_INTERVAL": interval, **more}


def job(tmp_path, fail=False):
    script = tmp_path / "job.py"
    script.write_text(JOB)
    return [sys.executable, str(script), str(tmp_path / "release"), "fail" if fail else "ok"]


def read_until(fd, pattern, deadline):
    """Bytes from ``fd`` up to and including the first match of ``pattern``."""
    seen = b""
    while not re.search(pattern, seen):
        assert time.time() < deadline, seen
        if select.select([fd], [], [], 0.2)[0]:
            chunk = os.read(fd, 4096)
            assert chunk, seen        # the runner ended before showing it
            seen += chunk
    return seen


def read_all(fd):
    out = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:               # EIO: the pty's other side is closed
            return out
        if not chunk:
            return out
        out += chunk


def log_statuses(path):
    return re.findall(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d progress (.*)$", path.read_text(), re.M)


def test_plain_lines_reach_a_pipe_while_the_job_runs_and_the_log_keeps_them(tmp_path):
    log = tmp_path / "log" / "train.log"
    proc = subprocess.Popen([sys.executable, RUN, str(log), *job(tmp_path)], env=env(),
                            stderr=subprocess.PIPE)
    early = read_until(proc.stderr.fileno(), rb"progress epoch 1/2: \d/5 batch", time.time() + 60)
    assert proc.poll() is None and not (tmp_path / "release").exists()   # mid-run, not at the end
    (tmp_path / "release").touch()
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 0
    shown = (early + rest).decode()
    assert "\r" not in shown and "\x1b" not in shown
    lines = shown.splitlines()
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d progress epoch [12]/2: ", x)
               for x in lines), lines
    assert "progress epoch 1/2: 5/5 batch (100%)" in shown      # each epoch's last line
    assert lines[-1].split(" progress ")[1].startswith("epoch 2/2: 5/5 batch (100%), ")
    assert "loss=" in lines[-1] and "batch/s" in lines[-1]
    # the ETA of both epochs: epoch 1's (elapsed + eta) counted again for epoch 2
    assert all(x.endswith(" s") and " | total eta " in x for x in lines), lines
    statuses = log_statuses(log)
    assert {x.split(" progress ", 1)[1].split(" | ")[0] for x in lines} <= set(statuses)
    assert len(statuses) >= len(lines) and "trained" in log.read_text()
    # an unchanged log: every line the job wrote, the runner's header and footer
    assert log.read_text().startswith("# ") and "# Ended (code 0)" in log.read_text()


def test_a_terminal_gets_one_line_redrawn_per_epoch(tmp_path):
    log = tmp_path / "train.log"
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, RUN, str(log), *job(tmp_path)], env=env(),
                            stderr=slave)
    os.close(slave)
    early = read_until(master, rb"\repoch 1/2: [1-5]/5 batch", time.time() + 60)
    assert proc.poll() is None
    (tmp_path / "release").touch()
    shown = (early + read_all(master)).decode()
    os.close(master)
    assert proc.wait(timeout=60) == 0
    assert shown.count("\repoch 1/2: ") >= 2 and "\x1b[K" in shown
    lines = [x for x in shown.replace("\r\n", "\n").split("\n") if x]
    assert len(lines) == 2, lines        # epoch 1's line, then epoch 2's
    assert lines[0].split("\r")[-1].startswith("epoch 1/2: 5/5 batch (100%), ")
    assert lines[1].split("\r")[-1].split("\x1b")[0].startswith("epoch 2/2: 5/5 batch (100%), ")
    assert " progress " not in shown     # no log timestamps on a terminal
    assert len(log_statuses(log)) >= 10  # the log has them all (one per step, + ends)


def test_total_eta_counts_the_rounds_left_at_this_rounds_pace():
    sys.path.insert(0, os.path.join(ROOT, "utils"))
    from follow_logs import with_total_eta
    line = "epoch 3/10: 120/360 batch (33%), 2.0 batch/s, 60 s elapsed, eta 120 s, loss=1.2"
    assert with_total_eta(line) == line + " | total eta 23m00s"      # 120 + 7 * 180 s
    end = "epoch 3/10: 360/360 batch (100%), 2.0 batch/s, 180 s elapsed, loss=1.2"
    assert with_total_eta(end) == end + " | total eta 21m00s"
    assert with_total_eta(line.replace("3/10", "10/10")).endswith(" | total eta 2m00s")
    for plain in ("features: 120/360 utt (33%), 2.0 utt/s, 60 s elapsed, eta 120 s",
                  "epoch 1/1: 1/9 batch (11%), 2.0 batch/s, 0 s elapsed, eta 4 s"):
        assert with_total_eta(plain) == plain
    slow = line.replace("3/10", "1/30").replace("eta 120", "eta 7000")
    assert with_total_eta(slow) == slow + " | total eta 58h49m"     # 7000 + 29 * 7060 s


def test_jobs_watched_from_a_terminal_write_progress_every_2_s(monkeypatch):
    """30 s between lines would be no live line; without a terminal the log keeps 30 s."""
    sys.path.insert(0, os.path.join(ROOT, "utils"))
    from follow_logs import job_interval
    monkeypatch.delenv("SV_PROGRESS_INTERVAL", raising=False)
    assert (job_interval(True), job_interval(False)) == ("2", "30")
    monkeypatch.setenv("SV_PROGRESS_INTERVAL", "0.5")
    assert (job_interval(True), job_interval(False)) == ("0.5", "0.5")


def test_a_failing_jobs_error_still_reaches_the_terminal(tmp_path):
    (tmp_path / "release").touch()
    log = tmp_path / "fail.log"
    result = subprocess.run([sys.executable, RUN, str(log), *job(tmp_path, fail=True)],
                            env=env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    progress_at = result.stderr.index("progress epoch 1/2: 5/5 batch (100%)")
    error_at = result.stderr.index("ValueError: bad input in feats.scp line 3")
    assert progress_at < result.stderr.index("1 / 1 failed") < error_at
    assert "ValueError" in log.read_text()


def test_a_job_shorter_than_the_interval_shows_nothing_off_a_terminal(tmp_path):
    (tmp_path / "release").touch()
    result = subprocess.run([sys.executable, RUN, str(tmp_path / "x.log"), *job(tmp_path)],
                            env=env(interval="30"), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr == "" and result.stdout == ""
    assert len(log_statuses(tmp_path / "x.log")) == 2     # one line per epoch, at its end


FAKE_SBATCH = """#!/usr/bin/env bash
for a in "$@"; do case $a in --array=*) array=${a#--array=};; --*) ;; *) script=$a;; esac; done
range=${array%%%*}
echo 4242
for ((i=${range%-*}; i<=${range#*-}; i++)); do SLURM_ARRAY_TASK_ID=$i bash "$script"; done
"""


def test_slurm_shows_the_tasks_progress_not_an_earlier_runs(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(FAKE_SBATCH)
    (bin_dir / "sbatch").chmod(0o755)
    (tmp_path / "release").touch()
    log = tmp_path / "log" / "t.JOB.log"
    log.parent.mkdir()
    for j in (1, 2):    # an earlier run's logs, still there when the array is submitted
        (tmp_path / "log" / f"t.{j}.log").write_text(
            "2026-12-01 10:00:00 progress stale run: 1/9 utt (11%)\n")
    result = subprocess.run([sys.executable, SLURM, "JOB=1:2", str(log), *job(tmp_path)],
                            env=env(PATH=f"{bin_dir}:{os.environ['PATH']}"), cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "stale run" not in result.stderr
    assert re.search(r"progress \[[01]/2 jobs done\] job 1: epoch [12]/2: ", result.stderr)
    assert re.search(r"progress \[1/2 jobs done\] job 2: epoch [12]/2: ", result.stderr)
    last = result.stderr.splitlines()[-1]
    assert "[2/2 jobs done] job 2: epoch 2/2: 5/5 batch (100%)" in last and "loss=0.143" in last
    assert "stale run" not in (tmp_path / "log" / "t.2.log").read_text()


def test_progress_lines_behind_a_launchers_prefix_are_shown(tmp_path, monkeypatch):
    """torchrun may prefix a worker's lines ("[rank0]:"); a job's own text is not progress."""
    import io
    sys.path.insert(0, os.path.join(ROOT, "utils"))
    from follow_logs import Follower
    monkeypatch.setenv("SV_PROGRESS_INTERVAL", "0")
    log = tmp_path / "train.log"
    log.write_text("# header\nprogress epoch 1/1: 9/9 batch (100%), said the job\n"
                   "[rank0]:2026-12-06 15:40:01 progress epoch 1/1: 3/9 batch (33%), 1 s elapsed\n")
    shown = io.StringIO()
    follower = Follower(stream=shown)
    follower.add(str(log))
    follower.close()
    assert shown.getvalue().split(" progress ", 1)[1] == "epoch 1/1: 3/9 batch (33%), 1 s elapsed\n"
