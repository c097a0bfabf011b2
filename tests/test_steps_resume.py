"""Feature and extraction steps: a job interrupted before publishing is redone,
finished jobs are not, and stale markers (other inputs) are not trusted."""
import os
import subprocess

import numpy as np
import soundfile as sf

from pyutils.utils.arkio import load_scp_dict
from pyutils.utils.fileio import write_lines
from tests.conftest import ROOT


def make_data(tmp_path, num_spk=4, utts=2):
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    wav, utt2spk = [], []
    for s in range(num_spk):
        for u in range(utts):
            utt = f"spk{s}-utt{u}"
            path = tmp_path / "audio" / f"{utt}.wav"
            os.makedirs(path.parent, exist_ok=True)
            tone = 8000 * np.sin(np.arange(16000) * 0.05 * (s + 1)) * (np.arange(16000) > 4000)
            sf.write(path, (tone + rng.normal(0, 30, 16000)).astype(np.int16), 16000)
            wav.append(f"{utt} {path}")
            utt2spk.append(f"{utt} spk{s}")
    write_lines(str(data / "wav.scp"), wav)
    write_lines(str(data / "utt2spk"), utt2spk)
    write_lines(str(data / "spk2utt"), (f"spk{s} " + " ".join(f"spk{s}-utt{u}" for u in range(utts))
                                        for s in range(num_spk)))
    return data


def make_mfcc(data, tmp_path):
    return subprocess.run([os.path.join(ROOT, "steps", "make_mfcc_vad.sh"), "--nj", "2",
                           str(data), str(tmp_path / "log"), str(tmp_path / "mfcc")],
                          cwd=ROOT, capture_output=True, text=True)


def test_interrupted_feature_job_is_redone_and_finished_ones_are_kept(tmp_path):
    data = make_data(tmp_path)
    first = make_mfcc(data, tmp_path)
    assert first.returncode == 0, first.stderr
    reference = load_scp_dict(str(data / "feats.scp"))
    assert len(reference) == 8
    # simulate a SIGKILL of job 2 while it wrote its ark: marker and scp not yet
    # published, the ark half written; the step's own marker absent
    mfcc = tmp_path / "mfcc"
    os.remove(mfcc / "raw_mfcc_data.2.done")
    os.remove(mfcc / "raw_mfcc_data.2.scp")
    with open(mfcc / "raw_mfcc_data.2.ark", "r+b") as ark:
        ark.truncate(100)
    os.remove(data / ".mfcc_vad.done")
    second = make_mfcc(data, tmp_path)
    assert second.returncode == 0, second.stderr
    assert "job already done" in (tmp_path / "log" / "make_mfcc_vad_data.1.log").read_text()
    assert "job already done" not in (tmp_path / "log" / "make_mfcc_vad_data.2.log").read_text()
    again = load_scp_dict(str(data / "feats.scp"))
    assert sorted(again) == sorted(reference)
    assert all(np.array_equal(again[k], reference[k]) for k in reference)
    # and a finished step is skipped as a whole
    third = make_mfcc(data, tmp_path)
    assert "already has features" in third.stdout


def test_marker_of_other_inputs_is_not_trusted(tmp_path):
    data = make_data(tmp_path)
    assert make_mfcc(data, tmp_path).returncode == 0
    before = load_scp_dict(str(data / "feats.scp"))
    # same data dir, one recording of job 1 replaced: job 1's marker must not vouch for it
    table = dict(line.split(" ", 1) for line in open(data / "wav.scp").read().splitlines())
    table["spk0-utt0"] = table["spk3-utt0"]
    write_lines(str(data / "wav.scp"), (f"{k} {v}" for k, v in sorted(table.items())))
    result = make_mfcc(data, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "job already done" not in (tmp_path / "log" / "make_mfcc_vad_data.1.log").read_text()
    assert "job already done" in (tmp_path / "log" / "make_mfcc_vad_data.2.log").read_text()
    after = load_scp_dict(str(data / "feats.scp"))
    assert not np.allclose(after["spk0-utt0"], before["spk0-utt0"])
    assert np.array_equal(after["spk3-utt1"], before["spk3-utt1"])
