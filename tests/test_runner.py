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
