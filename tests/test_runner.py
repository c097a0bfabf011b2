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
