"""utils/fetch_resemblyzer.sh offline: a local mirror works, and without one the error says
what to do instead (a download helper must accept a local mirror; docs/pretrained.md)."""
import os
import subprocess
import sys
import zipfile

from tests.conftest import ROOT


def fake_wheel(folder):
    """A wheel named like resemblyzer 0.1.4's, holding a stand-in pretrained.pt."""
    folder.mkdir()
    info = "resemblyzer-0.1.4.dist-info/"
    with zipfile.ZipFile(folder / "resemblyzer-0.1.4-py3-none-any.whl", "w") as whl:
        whl.writestr("resemblyzer/__init__.py", "")
        whl.writestr("resemblyzer/pretrained.pt", b"stand-in weights")
        whl.writestr(info + "METADATA", "Metadata-Version: 2.1\nName: resemblyzer\nVersion: 0.1.4\n")
        whl.writestr(info + "WHEEL", "Wheel-Version: 1.0\nGenerator: test\n"
                                     "Root-Is-Purelib: true\nTag: py3-none-any\n")
        whl.writestr(info + "RECORD", "")


def fetch(*args):
    return subprocess.run(["utils/fetch_resemblyzer.sh", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, "PYTHON": sys.executable})


def test_local_mirror_installs_and_a_missing_one_says_what_to_do(tmp_path):
    fake_wheel(tmp_path / "mirror")
    result = fetch("--mirror", tmp_path / "mirror", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    weights = tmp_path / "out" / "resemblyzer" / "pretrained.pt"
    assert result.stdout.strip() == str(weights) and weights.read_bytes() == b"stand-in weights"
    assert fetch("--mirror", tmp_path / "nothing", tmp_path / "out").returncode == 0  # there
    (tmp_path / "empty").mkdir()
    result = fetch("--mirror", tmp_path / "empty", tmp_path / "out2")
    assert result.returncode == 1
    message = result.stderr.strip().splitlines()[-1]
    assert "could not install resemblyzer==0.1.4 from " + str(tmp_path / "empty") in message
    assert "--mirror" in message and "pretrained.pt" in message
