"""speechocean762 (protocol so762-v1), held-out calibration speakers, combined corpora.

The fixtures copy the corpus's layout (train/ and test/ Kaldi lists, WAVE/SPEAKERnnnn/)
with a few 50 ms files, in either layout: the shared Ogg Opus copy (.ogg) or the
original download (.WAV).  The real corpus's counts (2,500 eval utterances,
3,123,750 trials, 23,750 target) are checked when it is under $SV_CORPUS_ROOT.
"""
import hashlib
import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest
import soundfile as sf

from pyutils.data.corpus import CorpusError, pair_trials, spaced_speakers
from pyutils.data.validate import check_data_dir
from pyutils.data.holdout import hold_out_speakers
from tests.conftest import ROOT, corpus_root

PREPARE = os.path.join(ROOT, "local", "prepare_speechocean762.py")
# speaker: (age, gender); 0001-0018 train, 0101-0104 test (two children, two women)
TRAIN = {f"{i:04d}": (8 if i % 3 == 0 else 30, "f" if i % 2 else "m") for i in range(1, 19)}
TEST = {"0101": (7, "f"), "0102": (9, "m"), "0103": (25, "f"), "0104": (40, "m")}
UTTS_PER_SPK = 3


def utt_id(spk: str, n: int) -> str:
    """The corpus's scheme: 5-digit speaker then 4 digits (speaker 0001 -> 00001nnnn)."""
    return f"{int(spk):05d}{n:04d}"


def make_corpus(root, layout="ogg", speakers=None):
    """<root>/speechocean762 in the shared (.ogg, Opus) or original (.WAV) layout."""
    corpus = root / "speechocean762"
    for split, spks in (("train", TRAIN), ("test", TEST)):
        spks = speakers.get(split, spks) if speakers else spks
        os.makedirs(corpus / split, exist_ok=True)
        wav, u2s, ages, genders = [], [], [], []
        for spk, (age, gender) in sorted(spks.items()):
            ages.append(f"{spk}\t{age}")
            genders.append(f"{spk}\t{gender}")
            for n in range(UTTS_PER_SPK):
                utt = utt_id(spk, n)
                rel = f"WAVE/SPEAKER{spk}/{utt}.{'ogg' if layout == 'ogg' else 'WAV'}"
                os.makedirs(corpus / os.path.dirname(rel), exist_ok=True)
                tone = 0.1 * np.sin(np.arange(800) * (0.05 + 0.01 * int(spk) % 7))
                if layout == "ogg":
                    sf.write(corpus / rel, tone, 16000, format="OGG", subtype="OPUS")
                else:
                    sf.write(corpus / rel, tone, 16000, subtype="PCM_16", format="WAV")
                wav.append(f"{utt}\t{rel}")
                u2s.append(f"{utt} {spk}")
        for name, lines in (("wav.scp", wav), ("utt2spk", u2s), ("spk2age", ages),
                            ("spk2gender", genders)):
            (corpus / split / name).write_text("\n".join(lines) + "\n")
    return corpus


def prepare(root, out, *extra):
    return subprocess.run([sys.executable, PREPARE, "--corpus-root", str(root), *extra, str(out)],
                          capture_output=True, text=True, cwd=ROOT)


def stage0(corpus, root, data, *extra):
    env = {**os.environ, "SV_CORPUS_ROOT": str(root)}
    return subprocess.run(["./run.sh", "--corpus", corpus, "--stage", "0", "--stop-stage", "0",
                           "--corpus-root", str(root), "--data", str(data),
                           "--exp", str(data) + "_exp", *extra],
                          cwd=ROOT, capture_output=True, text=True, env=env)


def table(path):
    with open(path) as handle:
        return [line.split() for line in handle]


def speakers_of(data_dir):
    return sorted({spk for _, spk in table(os.path.join(data_dir, "utt2spk"))})


# ------------------------------------------------------------- preparation

@pytest.mark.parametrize("layout", ["ogg", "WAV"])
def test_so762_v1_protocol_from_either_layout(tmp_path, layout):
    make_corpus(tmp_path, layout)
    result = prepare(tmp_path, tmp_path / "data")
    assert result.returncode == 0, result.stderr
    data = tmp_path / "data"
    assert check_data_dir(str(data / "train")) == [] and check_data_dir(str(data / "eval")) == []
    # ids are the corpus's own, the audio is the layout's
    assert table(data / "eval" / "utt2spk")[0] == ["001010000", "0101"]
    assert table(data / "eval" / "wav.scp")[0][1].endswith(f"SPEAKER0101/001010000.{layout}")
    assert len(table(data / "train" / "utt2spk")) == 18 * UTTS_PER_SPK
    trials = table(data / "eval" / "trials")
    n = 4 * UTTS_PER_SPK
    assert len(trials) == n * (n - 1) // 2                          # every unordered pair
    assert sum(t[2] == "target" for t in trials) == 4 * 3           # C(3,2) per speaker
    assert all(a < b for a, b, _ in trials) and trials == sorted(trials)
    assert len({(a, b) for a, b, _ in trials}) == len(trials)
    assert table(data / "eval" / "spk2gender") == [["0101", "f"], ["0102", "m"],
                                                    ["0103", "f"], ["0104", "m"]]


def test_subgroup_lists_hold_the_pairs_of_the_group_only(tmp_path):
    make_corpus(tmp_path)
    assert prepare(tmp_path, tmp_path / "data").returncode == 0
    eval_dir = tmp_path / "data" / "eval"
    full = {(a, b): label for a, b, label in table(eval_dir / "trials")}
    expected = {"child-child": {"0101", "0102"}, "adult-adult": {"0103", "0104"},
                "female-female": {"0101", "0103"}, "male-male": {"0102", "0104"}}
    for group, members in expected.items():
        rows = table(eval_dir / f"trials_{group}")
        assert len(rows) == 15 and sum(r[2] == "target" for r in rows) == 6  # 6 utts: C(6,2)
        for a, b, label in rows:
            assert full[(a, b)] == label
            assert {a[1:5], b[1:5]} <= members   # 00101nnnn -> speaker 0101


def test_a_wav_scp_line_naming_the_other_layout_is_resolved_and_a_missing_file_named(tmp_path):
    corpus = make_corpus(tmp_path, "ogg")
    scp = corpus / "test" / "wav.scp"
    scp.write_text(scp.read_text().replace(".ogg", ".WAV"))   # an original list, re-encoded audio
    assert prepare(tmp_path, tmp_path / "data").returncode == 0
    assert table(tmp_path / "data" / "eval" / "wav.scp")[0][1].endswith(".ogg")
    os.unlink(corpus / "WAVE" / "SPEAKER0102" / "001020001.ogg")
    result = prepare(tmp_path, tmp_path / "data")
    assert result.returncode != 0
    assert "test/wav.scp:5" in result.stderr and "001020001" in result.stderr


def test_missing_corpus_offline_says_where_and_a_mirror_download_works(tmp_path):
    result = prepare(tmp_path / "nothing", tmp_path / "data")
    assert result.returncode != 0 and "speechocean762 not found at" in result.stderr
    assert "speechocean762_download=true" in result.stderr
    result = prepare(tmp_path / "nothing", tmp_path / "data", "--download", "true",
                     "--url", "http://127.0.0.1:9/speechocean762.tar.gz")
    assert result.returncode != 0 and "offline" in result.stderr
    # a local mirror of the archive, with its checksum
    make_corpus(tmp_path / "src")
    archive = tmp_path / "mirror.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "speechocean762", arcname="speechocean762")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    result = prepare(tmp_path / "dl", tmp_path / "data", "--download", "true", "--url",
                     str(archive), "--checksum", f"sha256:{'0' * 64}")
    assert result.returncode != 0 and "sha256" in result.stderr
    result = prepare(tmp_path / "dl", tmp_path / "data", "--download", "true", "--url",
                     str(archive), "--checksum", f"sha256:{digest}")
    assert result.returncode == 0, result.stderr
    assert len(table(tmp_path / "data" / "eval" / "trials")) == 66


def test_pair_trials_and_spaced_speakers_known_answers():
    utts = {"a1": ("a", ""), "a2": ("a", ""), "b1": ("b", "")}
    assert list(pair_trials(utts)) == ["a1 a2 target", "a1 b1 nontarget", "a2 b1 nontarget"]
    assert list(pair_trials(utts, lambda s, t: s == t)) == ["a1 a2 target"]
    speakers = [f"{i:02d}" for i in range(10)]
    assert spaced_speakers(speakers, 3) == ["01", "05", "08"]   # floor((i + .5) * 10 / 3)
    with pytest.raises(CorpusError):
        spaced_speakers(speakers, 10)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(os.path.join(corpus_root(), "speechocean762", "test")),
                    reason="speechocean762 not under $SV_CORPUS_ROOT")
def test_real_corpus_counts(tmp_path):
    result = prepare(corpus_root(), tmp_path / "data")
    assert result.returncode == 0, result.stderr
    eval_dir = tmp_path / "data" / "eval"
    assert sum(1 for _ in open(eval_dir / "utt2spk")) == 2500
    assert sum(1 for _ in open(tmp_path / "data" / "train" / "utt2spk")) == 2500
    with open(eval_dir / "trials") as handle:
        labels = [line.rsplit(None, 1)[1] for line in handle]
    assert len(labels) == 3_123_750 and labels.count("target") == 23_750
    # the subgroup lists and the calibration hold-out of docs/corpora.md and the README
    for group, (trials, targets) in {"adult-adult": (1_065_070, 13_870),
                                     "child-child": (540_280, 9_880),
                                     "female-female": (672_220, 11_020),
                                     "male-male": (897_130, 12_730)}.items():
        with open(eval_dir / f"trials_{group}") as handle:
            labels = [line.rsplit(None, 1)[1] for line in handle]
        assert (len(labels), labels.count("target")) == (trials, targets), group
    train, calib = str(tmp_path / "data" / "train"), str(tmp_path / "data" / "calib")
    held = hold_out_speakers(train, calib, num=15, eval_dirs=[str(eval_dir)])
    assert held == "0036 0104 0739 1064 1372 2034 2208 2427 3021 3636 5418 6912 9600 9615 9639".split()
    assert sum(1 for _ in open(os.path.join(train, "utt2spk"))) == 2200
    assert sum(1 for _ in open(os.path.join(calib, "utt2spk"))) == 300


# ------------------------------------------------------ calibration hold-out

def test_run_sh_holds_out_15_calibration_speakers_by_default(tmp_path):
    make_corpus(tmp_path)
    data = tmp_path / "data"
    result = stage0("speechocean762", tmp_path, data)
    assert result.returncode == 0, result.stderr
    calib, train = speakers_of(data / "calib"), speakers_of(data / "train")
    assert len(calib) == 15 and len(train) == 3 and not set(calib) & set(train)
    assert calib == spaced_speakers(TRAIN, 15)
    assert check_data_dir(str(data / "calib")) == []
    assert (data / "calib_speakers").read_text().split() == calib


@pytest.mark.parametrize("option,expected", [
    (["--calib-holdout", "2"], lambda: spaced_speakers(TRAIN, 2)),
    (["--calib-holdout-list", "0004,0007"], lambda: ["0004", "0007"]),
    (["--calib-holdout", "0"], lambda: None)])
def test_run_sh_calibration_hold_out_options(tmp_path, option, expected):
    make_corpus(tmp_path)
    data = tmp_path / "data"
    result = stage0("speechocean762", tmp_path, data, *option)
    assert result.returncode == 0, result.stderr
    if expected() is None:
        assert not (data / "calib").exists() and len(speakers_of(data / "train")) == 18
    else:
        assert speakers_of(data / "calib") == expected()
        assert len(speakers_of(data / "train")) == 18 - len(expected())


def test_any_corpus_holds_out_calibration_speakers(tmp_path):
    """--calib-holdout is not speechocean762's: the folder corpus (no hold-out by default)."""
    for part, spks in (("train", ["alice", "bob", "carol", "dave"]), ("eval", ["erin", "finn"])):
        for spk in spks:
            for n in range(2):
                path = tmp_path / "my_corpus" / part / spk / f"{n}.wav"
                os.makedirs(path.parent, exist_ok=True)
                sf.write(path, 0.1 * np.sin(np.arange(1600) * 0.05), 16000)
    result = stage0("folder", tmp_path, tmp_path / "none")
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "none" / "calib").exists()
    data = tmp_path / "data"
    result = stage0("folder", tmp_path, data, "--calib-holdout", "2")
    assert result.returncode == 0, result.stderr
    assert speakers_of(data / "calib") == ["bob", "dave"]      # floor((i + .5) * 4 / 2)
    assert speakers_of(data / "train") == ["alice", "carol"]
    assert check_data_dir(str(data / "calib")) == [] and check_data_dir(str(data / "train")) == []


def test_hold_out_refuses_unknown_speakers_and_overlap_with_eval(tmp_path):
    make_corpus(tmp_path)
    assert prepare(tmp_path, tmp_path / "data").returncode == 0
    train, calib = str(tmp_path / "data" / "train"), str(tmp_path / "data" / "calib")
    with pytest.raises(CorpusError, match="'0101' is not a training speaker"):
        hold_out_speakers(train, calib, speakers=["0101"])
    # an eval set that shares a speaker with the calibration set
    bad_eval = tmp_path / "bad_eval"
    os.makedirs(bad_eval)
    (bad_eval / "utt2spk").write_text("000040000 0004\n")
    with pytest.raises(CorpusError, match="share 1 speaker"):
        hold_out_speakers(train, calib, speakers=["0004"], eval_dirs=[str(bad_eval)])
    assert len(speakers_of(train)) == 18      # nothing moved on an error


# ---------------------------------------------------------- combined corpora

def test_two_corpora_combine_with_prefixed_ids_and_their_own_eval_sets(tmp_path):
    make_corpus(tmp_path)
    for part, spks in (("train", ["alice", "bob"]), ("eval", ["carol", "dave"])):
        for spk in spks:
            for n in range(2):
                path = tmp_path / "my_corpus" / part / spk / f"{n}.mp3"
                os.makedirs(path.parent, exist_ok=True)
                sf.write(path, 0.1 * np.sin(np.arange(4000) * 0.05), 16000, format="MP3")
    data = tmp_path / "data"
    result = stage0("folder,speechocean762", tmp_path, data)
    assert result.returncode == 0, result.stderr
    train = table(data / "train" / "utt2spk")
    assert ["folder-alice-0", "folder-alice"] in train
    assert ["speechocean762-000010000", "speechocean762-0001"] not in train   # held out
    assert len(train) == 4 + 3 * UTTS_PER_SPK and check_data_dir(str(data / "train")) == []
    assert len(speakers_of(data / "calib")) == 15
    assert all(s.startswith("speechocean762-") for s in speakers_of(data / "calib"))
    folder_trials = table(data / "eval_folder" / "trials")
    assert folder_trials[0] == ["folder-carol-0", "folder-carol-1", "target"]
    so_trials = table(data / "eval_speechocean762" / "trials")
    assert len(so_trials) == 66 and so_trials[0][0] == "speechocean762-001010000"
    child = table(data / "eval_speechocean762" / "trials_child-child")
    assert len(child) == 15 and child[0][0].startswith("speechocean762-")
    for d in ("eval_folder", "eval_speechocean762", "calib"):
        assert check_data_dir(str(data / d)) == []
    # the corpora were prepared on their own beside it
    assert (data / "corpora" / "speechocean762" / "calib").is_dir()


def test_combined_corpora_refuse_a_calibration_list():
    result = subprocess.run(["./run.sh", "--corpus", "folder,speechocean762", "--stage", "0",
                             "--stop-stage", "0", "--calib-holdout-list", "0001"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode != 0 and "--calib-holdout-list" in result.stderr


def test_calib_speakers_and_calib_holdout_together_are_refused(tmp_path):
    result = stage0("asc", tmp_path, tmp_path / "data", "--calib-speakers", "16-18",
                    "--calib-holdout", "2")
    assert result.returncode != 0
    assert "--calib-speakers and --calib-holdout(-list) both" in result.stderr
