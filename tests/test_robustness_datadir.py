"""Broken data dirs through the real tools: utils/validate_data_dir.sh names file and
line for every defect; steps/make_mfcc_vad.sh refuses the dir before any job runs
(as Kaldi's make_mfcc.sh validates first); utils/fix_data_dir.sh repairs it and
counts every removal by reason."""
import os
import subprocess

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import ROOT

GOOD = {"utt2spk": "a-1 a\na-2 a\nb-1 b\n", "spk2utt": "a a-1 a-2\nb b-1\n",
        "wav.scp": "a-1 /x/a1.wav\na-2 /x/a2.wav\nb-1 /x/b1.wav\n"}

# defect name -> (file contents overriding GOOD, expected problem lines (file:line: message))
DEFECTS = {
    "duplicate id": ({"utt2spk": "a-1 a\na-1 a\na-2 a\nb-1 b\n"},
                     ["utt2spk:2: duplicate key 'a-1' (first on line 1)"]),
    "unsorted": ({"utt2spk": "a-2 a\na-1 a\nb-1 b\n"},
                 ["utt2spk:2: not in C sort order: 'a-1' comes after 'a-2'",
                  "spk2utt:1: speaker 'a' disagrees with utt2spk: utterances are not in "
                  "utt2spk order"]),
    "id with a space": ({"utt2spk": "a 1 a\na-2 a\nb-1 b\n",
                         "wav.scp": "a 1 /x/a1.wav\na-2 /x/a2.wav\nb-1 /x/b1.wav\n"},
                        ["utt2spk:1: expected 2 fields, got 3",
                         "spk2utt:1: speaker 'a' disagrees with utt2spk: lists 'a-1' which "
                         "utt2spk does not give to 'a'"]),
    "wav.scp id with a space": ({"wav.scp": "a 1 /x/a1.wav\na-2 /x/a2.wav\nb-1 /x/b1.wav\n"},
                                ["wav.scp:1: utterance 'a' is not in utt2spk",
                                 "wav.scp: no line for utterance 'a-1' (from {data}/utt2spk:1)"]),
    "utt2spk and spk2utt disagree": ({"spk2utt": "a a-1\nb a-2 b-1\n"},
                                     ["spk2utt:1: speaker 'a' disagrees with utt2spk: missing "
                                      "'a-2' (in utt2spk)",
                                      "spk2utt:2: speaker 'b' disagrees with utt2spk: lists "
                                      "'a-2' which utt2spk does not give to 'b'"]),
    "trials with unknown utterances": ({"trials": "a-1 b-1 nontarget\na-1 c-9 nontarget\n"},
                                       ["trials:2: unknown utterance 'c-9' (not in utt2spk)"]),
}


def make_dir(path, overrides):
    os.makedirs(path)
    for name, text in {**GOOD, **overrides}.items():
        with open(os.path.join(path, name), "w") as out:
            out.write(text)
    return str(path)


def run(*args):
    return subprocess.run([os.path.join(ROOT, *args[0].split("/")), *map(str, args[1:])],
                          cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_validate_names_file_and_line(tmp_path, defect):
    overrides, expected = DEFECTS[defect]
    data = make_dir(tmp_path / "data", overrides)
    result = run("utils/validate_data_dir.sh", "--no-feats", data)
    assert result.returncode == 1
    problems = [line[len("validate_data_dir: "):] for line in result.stderr.splitlines()
                if line.startswith("validate_data_dir: ")]
    for message in expected:
        message = os.path.join(data, message.format(data=data))
        assert message in problems, (message, result.stderr)
    assert f"{len(expected)} problem(s) in {data}" in problems[-1], result.stderr
    if "space" in defect and "utt2spk" in overrides:
        assert "Kaldi ids cannot contain whitespace" in result.stderr


def test_make_mfcc_vad_refuses_an_invalid_dir_before_any_job(tmp_path):
    audio = tmp_path / "a.wav"
    sf.write(audio, np.zeros(16000, np.int16), 16000)
    data = make_dir(tmp_path / "data", {
        "utt2spk": "a-1 a\na-1 a\nb-1 b\n", "spk2utt": "a a-1\nb b-1\n",
        "wav.scp": f"a-1 {audio}\nb-1 {audio}\n"})
    result = run("steps/make_mfcc_vad.sh", "--nj", "1", data, tmp_path / "log", tmp_path / "mfcc")
    assert result.returncode == 1
    assert f"{data}/utt2spk:2: duplicate key 'a-1' (first on line 1)" in result.stderr
    assert f"{data} is not a valid data dir" in result.stderr
    assert not (tmp_path / "log").exists()


def test_fix_data_dir_repairs_and_counts_every_removal(tmp_path):
    data = make_dir(tmp_path / "data", {
        "utt2spk": "b-1 b\na-1 a\na-1 a\na 2 a\nc-1 c\n",        # unsorted, dup, space
        "spk2utt": "a a-1\nb b-1 a-1\n",                          # disagrees
        "wav.scp": "a-1 /x/a1.wav\nb-1 /x/b1.wav\na 2 /x/a2.wav\n",  # c-1 has no audio
        "trials": "a-1 b-1 nontarget\na-1 c-9 nontarget\na-1 c-1 nontarget\n"})
    result = run("utils/fix_data_dir.sh", data)
    assert result.returncode == 0, result.stderr
    log = result.stderr
    assert f"{data}/utt2spk:3: dropping repeated key 'a-1'" in log
    assert (f"{data}/utt2spk:4: dropping line: expected 2 fields, got 3 (an id containing "
            f"whitespace?") in log
    assert "a: removed (malformed utt2spk line)" in log
    assert "c-1: removed (not in wav.scp)" in log
    assert "kept 2 of 4 utterances (2 removed: 1 malformed utt2spk line, 1 not in wav.scp)" in log
    assert f"{data}/trials:2: removed (unknown utterance): 'c-9'" in log
    assert "kept 1 of 3 trials (2 removed: 2 unknown utterance)" in log
    with open(os.path.join(data, "utt2spk")) as handle:
        assert handle.read() == "a-1 a\nb-1 b\n"
    with open(os.path.join(data, "spk2utt")) as handle:
        assert handle.read() == "a a-1\nb b-1\n"
    assert run("utils/validate_data_dir.sh", "--no-feats", data).returncode == 0
