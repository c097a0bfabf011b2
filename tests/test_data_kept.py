"""The feature stage never loses the user's data dir (issue 7, item 3).

Utterances whose audio fails are left out of the data dir (and trials naming
them), but the lists as given are kept in <data>/.orig: after the audio is
fixed, rerunning the stage brings every utterance and trial back, and a
second fix never overwrites an earlier backup.
"""
import os
import subprocess

import numpy as np
import soundfile as sf

from tests.conftest import ROOT
from tests.test_robustness_audio import RATE, read_lines, tone, write_data_dir


def make_mfcc(data, tmp_path):
    return subprocess.run([os.path.join(ROOT, "steps", "make_mfcc_vad.sh"), "--nj", "2",
                           str(data), str(tmp_path / "log"), str(tmp_path / "mfcc")],
                          cwd=ROOT, capture_output=True, text=True)


def test_fixed_audio_and_rerun_restores_every_utterance_and_trial(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    entries = {}
    for s in range(3):
        for u in range(3):
            path = audio / f"s{s}u{u}.wav"
            sf.write(path, tone(RATE, seed=10 * s + u), RATE)
            entries[f"s{s}-u{u}"] = str(path)
    data = tmp_path / "data"
    write_data_dir(data, entries)
    utts = sorted(entries)
    trials = [f"{a} {b} {'target' if a[:2] == b[:2] else 'nontarget'}"
              for i, a in enumerate(utts) for b in utts[i + 1:]]
    (data / "trials").write_text("".join(t + "\n" for t in trials))
    given = {name: read_lines(data / name) for name in ("wav.scp", "utt2spk", "spk2utt", "trials")}

    # two files break: one too short, one not audio
    sf.write(audio / "s0u1.wav", tone(50), RATE)
    (audio / "s2u2.wav").write_text("not audio\n")
    first = make_mfcc(data, tmp_path)
    assert first.returncode == 0, first.stderr
    assert "rerunning this step after fixing the audio brings them back" in first.stderr
    assert len(read_lines(data / "utt2spk")) == 7
    assert len(read_lines(data / "trials")) == 21          # C(7, 2) of C(9, 2) = 36
    assert {n: read_lines(data / ".orig" / n) for n in given} == given

    # nothing changed: the rerun is skipped and leaves the fixed dir as it is
    again = make_mfcc(data, tmp_path)
    assert "already has features" in again.stdout
    assert len(read_lines(data / "utt2spk")) == 7

    # the user fixes one file: the rerun happens by itself and that one comes back
    sf.write(audio / "s0u1.wav", tone(RATE, seed=1), RATE)
    second = make_mfcc(data, tmp_path)
    assert second.returncode == 0, second.stderr
    assert "already has features" not in second.stdout
    assert len(read_lines(data / "utt2spk")) == 8 and len(read_lines(data / "feats.scp")) == 8
    assert len(read_lines(data / "trials")) == 28
    # and the other: every utterance and trial as given, no .orig left
    sf.write(audio / "s2u2.wav", tone(RATE, seed=22), RATE)
    third = make_mfcc(data, tmp_path)
    assert third.returncode == 0, third.stderr
    assert {n: read_lines(data / n) for n in given} == given
    assert len(read_lines(data / "feats.scp")) == 9
    assert not (data / ".orig").exists()
    # every fix made its own numbered backup; the first still holds the 9 utterances
    backups = sorted(os.listdir(data / ".backup"), key=int)
    fixes = [b for b in backups if (data / ".backup" / b / "utt2spk").exists()]
    assert len(fixes) == 2, backups
    assert len(read_lines(data / ".backup" / fixes[0] / "utt2spk")) == 9
    assert len(read_lines(data / ".backup" / fixes[1] / "utt2spk")) == 9


def test_user_edits_after_a_fix_are_the_new_originals(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    entries = {f"s{s}-u{u}": str(audio / f"s{s}u{u}.wav") for s in range(2) for u in range(2)}
    for i, path in enumerate(entries.values()):
        sf.write(path, tone(RATE, seed=i), RATE)
    sf.write(entries["s1-u1"], np.zeros(0, np.int16), RATE)   # empty audio
    data = tmp_path / "data"
    write_data_dir(data, entries)
    assert make_mfcc(data, tmp_path).returncode == 0
    assert len(read_lines(data / "utt2spk")) == 3
    # the user edits the dir (drops the broken one, adds another): his lists win,
    # the old copy of the originals goes to a backup
    del entries["s1-u1"]
    entries["s1-u2"] = str(audio / "s1u2.wav")
    sf.write(entries["s1-u2"], tone(RATE, seed=9), RATE)
    write_data_dir(data, entries)
    result = make_mfcc(data, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "already has features" not in result.stdout
    assert [l.split()[0] for l in read_lines(data / "utt2spk")] == sorted(entries)
    assert not (data / ".orig").exists()
    assert any((data / ".backup" / b / ".orig" / "utt2spk").exists()
               for b in os.listdir(data / ".backup"))
