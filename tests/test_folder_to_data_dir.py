"""utils/folder_to_data_dir.sh: a folder of speakers' audio becomes a valid data dir."""
import os
import subprocess

import numpy as np
import soundfile as sf

from pyutils.data.validate import validate_data_dir
from tests.conftest import ROOT


def test_folder_becomes_a_valid_data_dir_with_trials(tmp_path):
    for spk, video in (("id1", "v1"), ("id1", "v2"), ("id2", "v1")):
        os.makedirs(tmp_path / "audio" / spk / video)
        for n in range(2):
            sf.write(tmp_path / "audio" / spk / video / f"{n:05d}.wav",
                     np.zeros(1600, dtype=np.int16), 16000)
    (tmp_path / "audio" / "id2" / "notes.txt").write_text("not audio")
    out = tmp_path / "data"
    result = subprocess.run([os.path.join(ROOT, "utils", "folder_to_data_dir.sh"), "--trials",
                             str(tmp_path / "audio"), str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    validate_data_dir(str(out), no_feats=True)
    utts = [line.split()[0] for line in open(out / "utt2spk")]
    assert utts[0] == "id1-v1-00000" and len(utts) == 6
    trials = [line.split() for line in open(out / "trials")]
    assert len(trials) == 15 and sum(t[2] == "target" for t in trials) == 6 + 1


def folder_to_data_dir(tmp_path, *extra):
    return subprocess.run([os.path.join(ROOT, "utils", "folder_to_data_dir.sh"), *extra,
                           str(tmp_path / "audio"), str(tmp_path / "data")],
                          capture_output=True, text=True)


def touch_wav(path):
    os.makedirs(path.parent, exist_ok=True)
    sf.write(path, np.zeros(1600, dtype=np.int16), 16000)


def test_odd_names_are_used_and_every_unused_file_is_listed(tmp_path):
    audio = tmp_path / "audio"
    for rel in ("spk 1/a b.wav", "spk2/it's.wav", 'spk2/say "hi".flac', "spk2/x;y.wav"):
        touch_wav(audio / rel)
    (audio / "spk2" / "notes.txt").write_text("not audio")
    touch_wav(audio / "loose.wav")                      # directly under the root: no speaker
    result = folder_to_data_dir(tmp_path)
    assert result.returncode == 0, result.stderr
    validate_data_dir(str(tmp_path / "data"), no_feats=True)
    wav = dict(line.rstrip("\n").split(" ", 1) for line in open(tmp_path / "data" / "wav.scp"))
    assert sorted(wav) == ["spk2-it's", 'spk2-say_"hi"', "spk2-x;y", "spk_1-a_b"]
    assert wav["spk_1-a_b"] == str(audio / "spk 1" / "a b.wav")     # the real path
    unused = dict(line.rstrip("\n").split("\t") for line in open(tmp_path / "data" / ".unused"))
    assert unused == {str(audio / "loose.wav"): "not in a speaker folder",
                      str(audio / "spk2" / "notes.txt"): "not an audio file libsndfile reads"}
    assert "2 file(s) not used" in result.stderr and "loose.wav" in result.stderr


def test_files_that_would_share_an_id_are_an_error_naming_both(tmp_path):
    audio = tmp_path / "audio"
    for rel in ("spk/a.wav", "spk/a.flac", "spk/sub-b.wav", "spk/sub/b.wav", "spk/c.wav",
                "spk/d e.wav", "spk/d_e.wav"):
        touch_wav(audio / rel)
    result = folder_to_data_dir(tmp_path)
    assert result.returncode == 1
    assert "3 utterance id(s) would be shared by two files" in result.stderr
    for first, second, utt in (("a.flac", "a.wav", "spk-a"), ("sub-b.wav", "sub/b.wav", "spk-sub-b"),
                               ("d e.wav", "d_e.wav", "spk-d_e")):
        assert f"{audio / 'spk' / first} and {audio / 'spk' / second} would both be '{utt}'" \
            in result.stderr, result.stderr
    assert not (tmp_path / "data").exists()
