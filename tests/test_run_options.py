"""run.sh refuses bad options with a clear error and a non-zero exit (issue 7,
item 8), before doing any work."""
import os
import subprocess

import pytest

from tests.conftest import ROOT


def run(tmp_path, *args):
    return subprocess.run(["./run.sh", "--data", str(tmp_path / "data"),
                           "--exp", str(tmp_path / "exp"), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, message", [
    (["--stage", "abc"], "--stage takes a number, got 'abc'"),
    (["--stop-stage", "2x"], "--stop-stage takes a number, got '2x'"),
    (["--stage", "9"], "--stage 9: the stages are 0-8"),
    (["--stage", "5", "--stop-stage", "2"], "--stop-stage 2 is before --stage 5"),
    (["--nj", "0"], "--nj must be at least 1"),
    (["--force", "maybe"], "option --force takes true or false, got 'maybe'"),
    (["--force=yes"], "option --force takes true or false, got 'yes'"),
    (["--no-such-option", "1"], "invalid option --no-such-option"),
    (["stray"], "unexpected argument 'stray'"),
])
def test_bad_options_are_errors(tmp_path, args, message):
    result = run(tmp_path, *args)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert "line " not in result.stderr          # no shell error messages
    assert not (tmp_path / "data").exists() and not (tmp_path / "exp").exists()


def test_overlapping_speaker_sets_are_refused(tmp_path, asc_root):
    result = run(tmp_path, "--corpus-root", asc_root, "--stop-stage", "0",
                 "--train-speakers", "1-6", "--eval-speakers", "5-8")
    assert result.returncode != 0
    assert "--train-speakers and --eval-speakers overlap: 2 speaker(s) in both, e.g. 5" \
        in result.stderr, result.stderr
    bad = run(tmp_path, "--corpus-root", asc_root, "--stop-stage", "0", "--eval-speakers", "30-19")
    assert bad.returncode != 0 and "speaker range '30-19'" in bad.stderr
