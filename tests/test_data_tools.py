"""Kaldi data-dir tools in utils/: combine_data.sh, copy_data_dir.sh,
subset_data_dir.sh (--utt-list/--spk-list/--per-spk/--first/--shortest),
split_data.sh and data/get_utt2dur.sh, run as a Kaldi user types them."""
import os
import subprocess

import numpy as np
import pytest
import soundfile as sf

from pyutils.data.validate import check_data_dir
from tests.conftest import ROOT


def sh(*args, ok=True):
    result = subprocess.run([os.path.join(ROOT, args[0]), *map(str, args[1:])],
                            capture_output=True, text=True)
    if ok:
        assert result.returncode == 0, result.stderr
    return result


def write(d, name, lines):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "w") as out:
        out.write("".join(line + "\n" for line in lines))


def lines(d, name):
    with open(os.path.join(d, name)) as handle:
        return handle.read().splitlines()


def make_dir(d, spk_utts, audio_dir=None, frames=None):
    """A data dir: speakers -> number of utterances; 0.1 s * (index+1) audio if audio_dir."""
    utts = [(f"{s}-u{i}", s) for s, n in sorted(spk_utts.items()) for i in range(n)]
    write(d, "utt2spk", [f"{u} {s}" for u, s in utts])
    write(d, "spk2utt", [f"{s} " + " ".join(f"{s}-u{i}" for i in range(n))
                         for s, n in sorted(spk_utts.items())])
    wav = []
    for k, (u, _) in enumerate(utts):
        path = f"/nonexistent/{u}.wav"
        if audio_dir:
            path = os.path.join(audio_dir, f"{u}.wav")
            sf.write(path, np.zeros(1600 * (k + 1), dtype=np.float32), 16000)
        wav.append(f"{u} {path}")
    write(d, "wav.scp", wav)
    if frames:
        write(d, "utt2num_frames", [f"{u} {frames[k]}" for k, (u, _) in enumerate(utts)])
    return [u for u, _ in utts]


def test_combine_data_unions_and_regenerates_spk2utt(tmp_path):
    make_dir(tmp_path / "a", {"s1": 2, "s3": 1})
    make_dir(tmp_path / "b", {"s2": 2}, frames=[10, 20])
    sh("utils/combine_data.sh", tmp_path / "c", tmp_path / "a", tmp_path / "b")
    c = tmp_path / "c"
    assert [l.split()[0] for l in lines(c, "utt2spk")] == ["s1-u0", "s1-u1", "s2-u0", "s2-u1", "s3-u0"]
    assert lines(c, "spk2utt") == ["s1 s1-u0 s1-u1", "s2 s2-u0 s2-u1", "s3 s3-u0"]
    assert not (c / "utt2num_frames").exists()  # not in every source: dropped, as Kaldi
    assert check_data_dir(str(c)) == []


def test_combine_data_refuses_a_repeated_utterance(tmp_path):
    make_dir(tmp_path / "a", {"s1": 2})
    make_dir(tmp_path / "b", {"s1": 1})
    result = sh("utils/combine_data.sh", tmp_path / "c", tmp_path / "a", tmp_path / "b", ok=False)
    assert result.returncode == 1 and "'s1-u0' is in" in result.stderr and "--utt-prefix" in result.stderr


def test_copy_data_dir_prefixes_and_combines_with_the_clean_set(tmp_path):
    make_dir(tmp_path / "clean", {"s1": 2, "s2": 1})
    write(tmp_path / "clean", "trials", ["s1-u0 s2-u0 nontarget"])
    sh("utils/copy_data_dir.sh", "--utt-prefix", "rev-", "--spk-prefix", "rev-",
       tmp_path / "clean", tmp_path / "rev")
    rev = tmp_path / "rev"
    assert lines(rev, "utt2spk") == ["rev-s1-u0 rev-s1", "rev-s1-u1 rev-s1", "rev-s2-u0 rev-s2"]
    assert lines(rev, "wav.scp")[0] == "rev-s1-u0 /nonexistent/s1-u0.wav"
    assert lines(rev, "trials") == ["rev-s1-u0 rev-s2-u0 nontarget"]
    assert check_data_dir(str(rev)) == []
    # suffixed utterances keep their speakers: Kaldi's augmentation recipe
    sh("utils/copy_data_dir.sh", "--utt-suffix", "-reverb", tmp_path / "clean", tmp_path / "aug")
    os.unlink(tmp_path / "clean" / "trials")
    os.unlink(tmp_path / "aug" / "trials")
    sh("utils/combine_data.sh", tmp_path / "all", tmp_path / "clean", tmp_path / "aug")
    assert lines(tmp_path / "all", "spk2utt")[0] == "s1 s1-u0 s1-u0-reverb s1-u1 s1-u1-reverb"
    assert check_data_dir(str(tmp_path / "all")) == []


def test_subset_first_per_spk_shortest_and_lists(tmp_path):
    src = tmp_path / "src"
    make_dir(src, {"s1": 3, "s2": 1, "s3": 2}, frames=[50, 10, 40, 30, 20, 60])
    sh("utils/subset_data_dir.sh", "--first", src, 2, tmp_path / "first")
    assert [l.split()[0] for l in lines(tmp_path / "first", "utt2spk")] == ["s1-u0", "s1-u1"]
    sh("utils/subset_data_dir.sh", "--per-spk", src, 2, tmp_path / "per")
    assert lines(tmp_path / "per", "spk2utt") == ["s1 s1-u0 s1-u1", "s2 s2-u0", "s3 s3-u0 s3-u1"]
    sh("utils/subset_data_dir.sh", "--shortest", src, 3, tmp_path / "short")
    assert lines(tmp_path / "short", "utt2num_frames") == ["s1-u1 10", "s2-u0 30", "s3-u0 20"]
    write(tmp_path, "spks", ["s3"])
    sh("utils/subset_data_dir.sh", "--spk-list", tmp_path / "spks", src, tmp_path / "s3")
    assert lines(tmp_path / "s3", "spk2utt") == ["s3 s3-u0 s3-u1"]
    write(tmp_path, "utts", ["s1-u2", "s3-u1"])
    sh("utils/subset_data_dir.sh", "--utt-list", tmp_path / "utts", src, tmp_path / "u")
    assert lines(tmp_path / "u", "wav.scp") == ["s1-u2 /nonexistent/s1-u2.wav",
                                                "s3-u1 /nonexistent/s3-u1.wav"]
    for d in ("first", "per", "short", "s3", "u"):
        assert check_data_dir(str(tmp_path / d)) == []
    result = sh("utils/subset_data_dir.sh", "--first", src, 7, tmp_path / "x", ok=False)
    assert result.returncode == 1 and "first 7 of 6" in result.stderr


def test_shortest_without_lengths_says_how_to_get_them(tmp_path):
    make_dir(tmp_path / "src", {"s1": 2})
    result = sh("utils/subset_data_dir.sh", "--shortest", tmp_path / "src", 1, tmp_path / "x",
                ok=False)
    assert result.returncode == 1 and "get_utt2dur.sh" in result.stderr


def test_get_utt2dur_from_audio_and_segments(tmp_path):
    audio = tmp_path / "audio"
    os.makedirs(audio)
    make_dir(tmp_path / "d", {"s1": 2, "s2": 1}, audio_dir=str(audio))
    sh("utils/data/get_utt2dur.sh", tmp_path / "d")
    assert lines(tmp_path / "d", "utt2dur") == ["s1-u0 0.1", "s1-u1 0.2", "s2-u0 0.3"]
    # a pipe is run; with segments the durations are end - start
    write(tmp_path / "d", "wav.scp", [f"s1-u0 cat {audio}/s1-u1.wav |",
                                      f"s1-u1 {audio}/s1-u1.wav", f"s2-u0 {audio}/s2-u0.wav"])
    sh("utils/data/get_utt2dur.sh", tmp_path / "d")
    assert lines(tmp_path / "d", "utt2dur")[0] == "s1-u0 0.2"
    seg = tmp_path / "seg"
    write(seg, "utt2spk", ["s1-a s1", "s1-b s1"])
    write(seg, "spk2utt", ["s1 s1-a s1-b"])
    write(seg, "segments", ["s1-a rec 0.0 1.5", "s1-b rec 1.5 4.0"])
    write(seg, "wav.scp", ["rec /nonexistent.wav"])
    sh("utils/data/get_utt2dur.sh", seg)
    assert lines(seg, "utt2dur") == ["s1-a 1.5", "s1-b 2.5"]


def test_split_data_per_speaker_keeps_speakers_whole(tmp_path):
    make_dir(tmp_path / "d", {"s1": 3, "s2": 1, "s3": 2})
    sh("utils/split_data.sh", tmp_path / "d", 2)
    parts = [lines(tmp_path / "d" / "split2" / str(j), "spk2utt") for j in (1, 2)]
    assert parts == [["s1 s1-u0 s1-u1 s1-u2"], ["s2 s2-u0", "s3 s3-u0 s3-u1"]]


def test_copy_and_combine_with_segments_keep_recording_ids(tmp_path):
    seg = tmp_path / "seg"
    write(seg, "utt2spk", ["s1-a s1", "s1-b s1"])
    write(seg, "spk2utt", ["s1 s1-a s1-b"])
    write(seg, "segments", ["s1-a rec1 0.0 1.5", "s1-b rec1 1.5 4.0"])
    write(seg, "wav.scp", ["rec1 /audio/rec1.wav"])
    sh("utils/copy_data_dir.sh", "--utt-suffix", "-noise", seg, tmp_path / "noise")
    assert lines(tmp_path / "noise", "segments") == ["s1-a-noise rec1 0.0 1.5",
                                                     "s1-b-noise rec1 1.5 4.0"]
    assert lines(tmp_path / "noise", "wav.scp") == ["rec1 /audio/rec1.wav"]
    sh("utils/combine_data.sh", tmp_path / "all", seg, tmp_path / "noise")
    assert lines(tmp_path / "all", "wav.scp") == ["rec1 /audio/rec1.wav"]  # shared, once
    assert len(lines(tmp_path / "all", "segments")) == 4
    assert check_data_dir(str(tmp_path / "all")) == []
