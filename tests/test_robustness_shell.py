"""Trust boundary: no file name reaches a shell unquoted.

A data dir whose audio paths, and whose own, log and feature dir names, hold
spaces, quotes, ';', '$(...)', backticks, '|', '&' and '>' runs through
steps/make_mfcc_vad.sh end to end, and none of the commands hidden in those
names runs.  A static scan lists every place in pyutils/ and steps/ that hands
a string to a shell; the only one allowed is the wav.scp ``cmd |`` pipe, which
Kaldi also runs through /bin/sh (the documented trust boundary).
"""
import os
import re
import shlex
import subprocess
import sys

import kaldiio
import numpy as np
import pytest
import soundfile as sf

from pyutils.data.formats import read_scp
from tests.conftest import ROOT

HOSTILE = ["a b", "it's", 'say "hi"', "x;touch {c}", "$(touch {c})", "`touch {c}`",
           "p|touch {c}", "q&touch {c}", "r>{c}"]


def canaries(root):
    """Files called CANARY* directly in ``root`` (where the hidden commands write)."""
    return sorted(f for f in os.listdir(root) if f.startswith("CANARY"))


def test_hostile_names_run_through_make_mfcc_vad_and_inject_nothing(tmp_path):
    sandbox = tmp_path / "work"  # where a relative 'touch CANARYn' would land
    sandbox.mkdir()
    canary = str(sandbox / "CANARY")
    entries = []
    rng = np.random.default_rng(0)
    for i, pattern in enumerate(HOSTILE):
        name = pattern.format(c=f"{canary}{i}")
        folder = tmp_path / f"au dio;{name}"  # a '/' in the name makes sub-folders
        path = folder / f"{name}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        t = np.arange(16000) / 16000
        sf.write(path, (3000 * np.sin(2 * np.pi * 200 * (i + 1) * t)
                        + rng.normal(0, 30, 16000)).astype(np.int16), 16000)
        spk = f"s{i % 2}"
        # plain paths (the rest of the line) and quoted pipes, as Kaldi allows both
        value = str(path) if i % 2 == 0 else f"cat {shlex.quote(str(path))} |"
        entries.append((f"{spk}-u{i}", spk, value))
    entries.sort()
    data = tmp_path / f"da ta;'x\"&touch {canary}D"
    data.mkdir(parents=True)
    (data / "wav.scp").write_text("".join(f"{u} {v}\n" for u, _, v in entries))
    (data / "utt2spk").write_text("".join(f"{u} {s}\n" for u, s, _ in entries))
    spk2utt = {}
    for u, s, _ in entries:
        spk2utt.setdefault(s, []).append(u)
    (data / "spk2utt").write_text("".join(f"{s} {' '.join(us)}\n"
                                          for s, us in sorted(spk2utt.items())))
    logdir = tmp_path / f"lo g;$(touch {canary}L)"
    featdir = tmp_path / f"mf cc;`touch {canary}F`"
    result = subprocess.run([os.path.join(ROOT, "steps", "make_mfcc_vad.sh"), "--nj", "2",
                             str(data), str(logdir), str(featdir)],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"done {len(entries)} of {len(entries)} utterances (0 failed)" in result.stdout
    # scp values are the rest of the line (the feature dir holds spaces), as in Kaldi
    feats = {key: kaldiio.load_mat(value) for _, key, value in read_scp(str(data / "feats.scp"))}
    assert sorted(feats) == [u for u, _, _ in entries]
    assert all(m.shape == (100, 30) for m in feats.values())
    assert canaries(sandbox) == [] and canaries(ROOT) == []
    # and the next stage's job reads them so too
    prep = subprocess.run([sys.executable, "-m", "pyutils.cli.prepare_feats", "--cmvn-config",
                           os.path.join(ROOT, "conf", "cmvn.conf"), str(data / "feats.scp"),
                           str(data / "vad.scp"), str(featdir / "prep")],
                          cwd=ROOT, capture_output=True, text=True)
    assert prep.returncode == 0, prep.stderr
    assert len(read_scp(str(featdir / "prep.scp"))) == len(entries)


# Places that hand a string to a shell.  The wav.scp pipe is Kaldi's rxfilename
# semantics (docs/robustness.md: "Trust boundary"); anything else must be reviewed and added here.
ALLOWED_SHELL = {("pyutils/data/audio.py", "proc = subprocess.run(command, shell=True, "
                  "stdout=subprocess.PIPE, stderr=subprocess.PIPE)")}
PY_SHELL = re.compile(r"shell\s*=\s*True|os\.system\s*\(|os\.popen\s*\(|subprocess\.getoutput|"
                      r"subprocess\.getstatusoutput|commands\.getoutput|pty\.spawn")
# eval, bash -c, sh -c in command position (not an array element: sets=(eval)), or $($x)
SH_SHELL = re.compile(r"(^|[;&|]\s*|(?<!=)\(\s*)(eval|bash\s+-c|sh\s+-c)\b|\$\(\s*\$")


def test_no_unreviewed_shell_commands_in_pyutils_or_steps():
    found = set()
    for top in ("pyutils", "steps"):
        for folder, _, files in os.walk(os.path.join(ROOT, top)):
            for name in files:
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, ROOT)
                if name.endswith(".py"):
                    pattern = PY_SHELL
                elif name.endswith(".sh"):
                    pattern = SH_SHELL
                else:
                    continue
                with open(path, encoding="utf-8") as handle:
                    for line in handle:
                        if pattern.search(line) and not line.lstrip().startswith("#"):
                            found.add((rel, line.strip()))
    assert found <= ALLOWED_SHELL, sorted(found - ALLOWED_SHELL)


def test_job_runner_does_not_run_a_command_hidden_in_a_file_name(tmp_path):
    # what steps/make_mfcc_vad.sh does with a data dir named 'd&touch' (no space):
    # "$sdata/JOB" becomes a command word of utils/run.py
    subprocess.run([sys.executable, os.path.join(ROOT, "utils", "run.py"),
                    str(tmp_path / "log"), "echo", "d&touch", "CANARY"],
                   cwd=tmp_path, capture_output=True, text=True)
    assert canaries(tmp_path) == []
