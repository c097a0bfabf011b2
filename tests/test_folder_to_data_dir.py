"""utils/folder_to_data_dir.sh: a folder of speakers' audio becomes a valid data dir."""
import os
import subprocess

import numpy as np
import soundfile as sf

from pyutils.data.datadir import validate_data_dir
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


def test_whitespace_in_a_name_is_a_clear_error(tmp_path):
    os.makedirs(tmp_path / "audio" / "spk 1")
    sf.write(tmp_path / "audio" / "spk 1" / "a.wav", np.zeros(160, dtype=np.int16), 16000)
    result = subprocess.run([os.path.join(ROOT, "utils", "folder_to_data_dir.sh"),
                             str(tmp_path / "audio"), str(tmp_path / "data")],
                            capture_output=True, text=True)
    assert result.returncode == 1 and "spk 1/a.wav" in result.stderr and "rename" in result.stderr
