"""Every audio reader takes what libsndfile reads: Ogg Opus/Vorbis, MP3, upper-case .WAV.

The files are written here with soundfile (formats this libsndfile cannot write
are skipped, by name).  Before, utils/folder_to_data_dir.sh took only
*.{wav,flac}: on speechocean762/WAVE (Ogg Opus) it found nothing.
"""
import os
import subprocess
import sys

import kaldiio
import numpy as np
import pytest
import soundfile as sf

from pyutils.cli.sv.common import list_inputs
from pyutils.data.audio import audio_extensions, is_audio_file, read_wav_scp_entry
from pyutils.data.validate import check_data_dir
from tests.conftest import ROOT

RATE = 16000
FORMATS = [("ogg", "OGG", "OPUS"), ("oga", "OGG", "VORBIS"), ("mp3", "MP3", "MPEG_LAYER_III"),
           ("WAV", "WAV", "PCM_16"), ("flac", "FLAC", "PCM_16")]


def writable(fmt, subtype):
    return fmt in sf.available_formats() and subtype in sf.available_subtypes(fmt)


AVAILABLE = [f for f in FORMATS if writable(f[1], f[2])]
MISSING = [f[0] for f in FORMATS if f not in AVAILABLE]


def tone(seconds=0.5, freq=300.0):
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_corpus(root):
    """<root>/<speaker>/<n>.<ext>: one speaker per format, two files each."""
    paths = []
    for ext, fmt, subtype in AVAILABLE:
        for n in range(2):
            path = root / f"spk_{ext.lower()}" / f"{n}.{ext}"
            os.makedirs(path.parent, exist_ok=True)
            sf.write(path, tone(freq=200.0 + 100 * n), RATE, format=fmt, subtype=subtype)
            paths.append(path)
    return paths


def test_the_formats_this_libsndfile_lacks_are_named():
    # not an assertion about the machine: says in the log which formats were not tested
    print("formats not writable here:", MISSING or "none")
    assert "ogg" in audio_extensions() and "wav" in audio_extensions()
    assert is_audio_file("000010011.WAV") and is_audio_file("a.opus")
    assert not is_audio_file("notes.txt")


@pytest.mark.parametrize("ext,fmt,subtype", AVAILABLE)
def test_reader_decodes_each_format_from_a_file_and_a_pipe(tmp_path, ext, fmt, subtype):
    path = tmp_path / f"a.{ext}"
    sf.write(path, tone(), RATE, format=fmt, subtype=subtype)
    for value in (str(path), f"cat {path} |"):
        samples, rate = read_wav_scp_entry(value, RATE)
        assert rate == RATE and abs(len(samples) - RATE // 2) <= 1152   # mp3 may pad a frame
        # the int16 scale, the tone's amplitude (lossy codecs stay close)
        assert 0.2 * 32768 < np.max(np.abs(samples)) < 0.45 * 32768


def test_folder_tool_takes_every_format_by_default(tmp_path):
    write_corpus(tmp_path / "audio")
    (tmp_path / "audio" / "spk_ogg" / "notes.txt").write_text("x")
    out = tmp_path / "data"
    result = subprocess.run([os.path.join(ROOT, "utils", "folder_to_data_dir.sh"), "--trials",
                             str(tmp_path / "audio"), str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    utts = [line.split()[0] for line in open(out / "utt2spk")]
    assert len(utts) == 2 * len(AVAILABLE)
    assert check_data_dir(str(out)) == []
    assert "notes.txt" in (out / ".unused").read_text()
    # --ext still narrows it
    result = subprocess.run([os.path.join(ROOT, "utils", "folder_to_data_dir.sh"), "--ext", "ogg",
                             str(tmp_path / "audio"), str(tmp_path / "ogg_only")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert [line.split()[1] for line in open(tmp_path / "ogg_only" / "utt2spk")] == ["spk_ogg"] * 2


def test_stage_1_features_of_every_format(tmp_path):
    write_corpus(tmp_path / "audio")
    data = tmp_path / "data"
    subprocess.run([os.path.join(ROOT, "utils", "folder_to_data_dir.sh"), str(tmp_path / "audio"),
                    str(data)], check=True, capture_output=True)
    result = subprocess.run([sys.executable, "-m", "pyutils.cli.compute_mfcc_vad",
                             "--mfcc-config", "conf/mfcc.conf", "--vad-config", "conf/vad.conf",
                             str(data), str(tmp_path / "raw_mfcc"), str(tmp_path / "vad")],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    feats = dict(kaldiio.load_scp(str(tmp_path / "raw_mfcc.scp")))
    assert len(feats) == 2 * len(AVAILABLE)
    assert all(48 <= m.shape[0] <= 60 for m in feats.values())   # 0.5 s at a 10 ms shift
    assert (tmp_path / "raw_mfcc.skipped").read_text().strip() == ""


def test_sv_lists_a_folder_of_any_format(tmp_path):
    write_corpus(tmp_path / "audio")
    items = list_inputs([str(tmp_path / "audio")])
    assert len(items) == 2 * len(AVAILABLE)
    assert {os.path.splitext(v)[1].lstrip(".") for _, v in items} == {e for e, _, _ in AVAILABLE}
