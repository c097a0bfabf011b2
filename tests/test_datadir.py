"""Data dir validation, fixing, splitting and subsetting (Kaldi semantics)."""
import logging
import os
import subprocess

import pytest

from pyutils.data.datadir import DataDir
from pyutils.data.fix import fix_data_dir
from pyutils.data.formats import DataDirError, filter_scp, spk2utt_to_utt2spk, utt2spk_to_spk2utt
from pyutils.data.subsets import split_data, subset_data_dir
from pyutils.data.validate import check_data_dir, validate_data_dir
from pyutils.utils.fileio import TableError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

UTT2SPK = {"spkA-001": "spkA", "spkA-002": "spkA", "spkA-003": "spkA",
           "spkB-001": "spkB", "spkB-002": "spkB", "spkC-001": "spkC"}


def per_utt(fmt):
    return [fmt.format(u=u) for u in sorted(UTT2SPK)]


def valid_files():
    """A consistent unsegmented data dir as {file name: lines}."""
    spk2utt = utt2spk_to_spk2utt(UTT2SPK)
    return {
        "utt2spk": [f"{u} {s}" for u, s in sorted(UTT2SPK.items())],
        "spk2utt": [f"{s} {' '.join(us)}" for s, us in sorted(spk2utt.items())],
        "wav.scp": per_utt("{u} /audio/{u}.wav"),
        "feats.scp": per_utt("{u} /feats/raw.ark:{u}"),
        "vad.scp": per_utt("{u} /feats/vad.ark:{u}"),
        "utt2num_frames": per_utt("{u} 300"),
        "utt2dur": per_utt("{u} 3.02"),
        "trials": ["spkA-001 spkA-002 target", "spkA-001 spkB-001 nontarget",
                   "spkB-002 spkC-001 nontarget"],
    }


def segmented_files():
    """A consistent segmented data dir: two recordings, five segments."""
    utts = {"recX-0000-0100": "spkA", "recX-0100-0250": "spkA",
            "recY-0000-0120": "spkB", "recY-0200-0300": "spkB", "recY-0300-0400": "spkB"}
    spk2utt = utt2spk_to_spk2utt(utts)
    return {
        "utt2spk": [f"{u} {s}" for u, s in sorted(utts.items())],
        "spk2utt": [f"{s} {' '.join(us)}" for s, us in sorted(spk2utt.items())],
        "segments": ["recX-0000-0100 recX 0.00 1.00", "recX-0100-0250 recX 1.00 2.50",
                     "recY-0000-0120 recY 0 1.2", "recY-0200-0300 recY 2.0 3.0",
                     "recY-0300-0400 recY 3.0 4.0"],
        "wav.scp": ["recX /audio/rec x.wav", "recY sox /audio/y.flac -t wav - |"],
    }


def make_dir(path, files):
    os.makedirs(path, exist_ok=True)
    for name, lines in files.items():
        with open(os.path.join(path, name), "w") as out:
            out.write("".join(line + "\n" for line in lines))
    return str(path)


def read(path, name):
    with open(os.path.join(path, name)) as handle:
        return handle.read().splitlines()


def keys(path, name):
    return [line.split()[0] for line in read(path, name)]


# ---------------------------------------------------------------- validation

def test_valid_dirs_pass(tmp_path):
    plain = make_dir(tmp_path / "plain", valid_files())
    assert check_data_dir(plain, no_feats=False) == []
    validate_data_dir(plain)
    segmented = make_dir(tmp_path / "seg", segmented_files())
    assert check_data_dir(segmented) == []


def _mutate(files, name, index, line):
    """Replace (or with line None, delete; with index None, append) a line."""
    lines = files[name]
    if index is None:
        lines.append(line)
    elif line is None:
        del lines[index]
    else:
        lines[index] = line


DEFECTS = [
    # (file, line index, new line, expected problem prefix, expected text)
    ("utt2spk", 0, "spkA-002 spkA", "utt2spk:2", "duplicate key 'spkA-002'"),
    ("wav.scp", 1, "spkA-001 /audio/other.wav", "wav.scp:2", "duplicate key"),
    ("feats.scp", 3, "spkA-000 /feats/raw.ark:x", "feats.scp:4", "not in C sort order"),
    ("utt2spk", 0, "spkA-001 spkA extra", "utt2spk:1", "expected 2 fields, got 3"),
    ("utt2spk", 3, "spkB-001 spkA", "spk2utt:1", "disagrees with utt2spk"),
    ("spk2utt", 0, "spkA spkA-002 spkA-001 spkA-003", "spk2utt:1", "not in utt2spk order"),
    ("spk2utt", 2, None, "spk2utt", "no line for speaker 'spkC'"),
    ("wav.scp", 5, None, "wav.scp", "no line for utterance 'spkC-001'"),
    ("wav.scp", None, "spkD-001 /audio/x.wav", "wav.scp:7", "utterance 'spkD-001' is not in"),
    ("vad.scp", 2, None, "vad.scp", "no line for utterance 'spkA-003'"),
    ("utt2num_frames", 1, "spkA-002 12.5", "utt2num_frames:2", "not a valid int"),
    ("utt2num_frames", 1, "spkA-002 0", "utt2num_frames:2", "must be > 0"),
    ("utt2dur", 4, "spkB-002 -1", "utt2dur:5", "must be > 0"),
    ("wav.scp", 0, "spkA-001 ~/a.wav", "wav.scp:1", "tilde"),
    ("trials", 1, "spkA-001 spkZ-001 nontarget", "trials:2", "unknown utterance 'spkZ-001'"),
    ("trials", 0, "spkA-001 spkA-002 tgt", "trials:1", "must be target or nontarget"),
    ("trials", 0, "spkA-001 spkA-002", "trials:1", "expected 3 fields, got 2"),
    ("trials", None, "spkA-001 spkB-001 nontarget", "trials:4", "repeated trial"),
    ("utt2dur", 2, "", "utt2dur:3", "empty line"),
]


@pytest.mark.parametrize("name,index,line,where,text", DEFECTS)
def test_each_defect_is_reported_with_file_and_line(tmp_path, name, index, line, where, text):
    files = valid_files()
    _mutate(files, name, index, line)
    path = make_dir(tmp_path, files)
    with pytest.raises(DataDirError) as err:
        validate_data_dir(path)
    expected = os.path.join(path, where) + ":"
    assert any(p.startswith(expected) and text in p for p in err.value.problems), \
        err.value.problems


def test_speaker_sort_rule_and_its_opt_out(tmp_path):
    files = {"utt2spk": ["u1 spkB", "u2 spkA"], "spk2utt": ["spkA u2", "spkB u1"],
             "wav.scp": ["u1 a.wav", "u2 b.wav"]}
    path = make_dir(tmp_path, files)
    problems = check_data_dir(path)
    assert any("utt2spk:2: not sorted by speaker" in p for p in problems)
    assert check_data_dir(path, no_spk_sort=True) == []


def test_segment_and_audio_defects(tmp_path):
    files = segmented_files()
    files["segments"][1] = "recX-0100-0250 recX 2.50 1.00"
    files["segments"][2] = "recY-0000-0120 recY -0.1 1.2"
    files["segments"][3] = "recY-0200-0300 recY 2.0 3.0 1"
    files["segments"][4] = "recY-0300-0400 recZ 3.0 4.0"
    files["wav.scp"].append("recZZ /audio/unused.wav")
    path = make_dir(tmp_path, files)
    problems = check_data_dir(path)
    seg = os.path.join(path, "segments")
    wav = os.path.join(path, "wav.scp")
    for expected in (f"{seg}:2: end time 1.00 is not after start time 2.50",
                     f"{seg}:3: start time -0.1 is negative",
                     f"{seg}:4: expected 4 fields, got 5",
                     f"{wav}: no line for recording 'recZ' (from {seg}:5)",
                     f"{wav}:3: recording 'recZZ' is not in segments"):
        assert expected in problems, problems


def test_missing_files_empty_files_and_newline(tmp_path):
    files = valid_files()
    del files["wav.scp"], files["feats.scp"]
    files["vad.scp"] = []
    path = make_dir(tmp_path, files)
    with open(os.path.join(path, "utt2dur"), "a") as out:
        out.write("spkZ-001 1.0")  # no final newline
    problems = check_data_dir(path, no_feats=False)
    assert f"{path}/wav.scp: no such file (required unless --no-wav)" in problems
    assert f"{path}/feats.scp: no such file (required unless --no-feats)" in problems
    assert f"{path}/vad.scp: empty file" in problems
    assert f"{path}/utt2dur:7: last line does not end in a newline" in problems
    assert not any("wav.scp" in p for p in check_data_dir(path, no_wav=True))
    os.remove(os.path.join(path, "utt2spk"))
    assert f"{path}/utt2spk: no such file (required)" in check_data_dir(path)


def test_all_problems_are_listed_in_one_error(tmp_path):
    files = valid_files()
    files["utt2spk"][0] = "spkA-001 spkA extra"
    files["trials"][0] = "spkA-001 spkA-002 yes"
    del files["wav.scp"][5]
    path = make_dir(tmp_path, files)
    with pytest.raises(DataDirError) as err:
        validate_data_dir(path)
    message = str(err.value)
    assert "utt2spk:1" in message and "trials:1" in message and "spkC-001" in message
    assert len(err.value.problems) >= 3


def test_long_problem_lists_are_capped_per_file(tmp_path):
    lines = [f"u{i:03d} s{i:03d}" for i in range(50)][::-1]
    path = make_dir(tmp_path, {"utt2spk": lines, "spk2utt": [], "wav.scp": []})
    problems = check_data_dir(path, no_spk_sort=True)
    utt2spk = [p for p in problems if p.startswith(f"{path}/utt2spk")]
    assert len(utt2spk) == 21 and utt2spk[-1].endswith("29 more problem(s) not shown")


# ---------------------------------------------------------------- helpers

def test_conversions_and_filter_scp(tmp_path):
    spk2utt = utt2spk_to_spk2utt([("b1", "B"), ("a1", "A"), ("b2", "B")])
    assert spk2utt == {"B": ["b1", "b2"], "A": ["a1"]}
    assert list(spk2utt) == ["B", "A"]  # first appearance, as the Perl script
    assert spk2utt_to_utt2spk(spk2utt) == {"b1": "B", "b2": "B", "a1": "A"}
    scp = make_dir(tmp_path, {"wav.scp": ["a  cmd  x |", "b y.wav", "c z.wav"]})
    assert filter_scp(["c", "a", "q"], os.path.join(scp, "wav.scp")) == ["a  cmd  x |", "c z.wav"]
    assert filter_scp(["a"], os.path.join(scp, "wav.scp"), exclude=True) == ["b y.wav", "c z.wav"]


def test_loader(tmp_path):
    files = segmented_files()
    files["trials"] = ["recX-0000-0100 recY-0000-0120 nontarget"]
    data = DataDir(make_dir(tmp_path, files))
    assert data.utts[0] == "recX-0000-0100" and data.spks == ["spkA", "spkB"]
    assert data.wav_scp["recX"] == "/audio/rec x.wav"
    assert data.wav_scp["recY"] == "sox /audio/y.flac -t wav - |"
    assert data.segments["recX-0100-0250"] == ("recX", 1.0, 2.5)
    assert data.trials[0].target is False and data.trials[0].utt2 == "recY-0000-0120"
    assert data.feats_scp is None and data.utt2num_frames is None
    with open(data.file("utt2num_frames"), "w") as out:
        out.write("recX-0000-0100 100\nrecX-0100-0250 x\n")
    with pytest.raises(TableError, match="utt2num_frames:2: 'x' is not a valid int"):
        DataDir(data.path).utt2num_frames


# ---------------------------------------------------------------- fix_data_dir

def test_fix_keeps_the_sorted_intersection_with_backup(tmp_path, caplog):
    files = valid_files()
    files["utt2spk"] = files["utt2spk"][::-1]           # unsorted
    del files["wav.scp"][1]                               # spkA-002 has no audio
    del files["feats.scp"][4]                             # spkB-002 has no features
    files["vad.scp"].append("spkZ-009 /feats/vad.ark:z")  # unknown utterance
    files["utt2num_frames"].insert(0, files["utt2num_frames"][0])  # repeated key
    files["spk2utt"] = ["spkA spkA-001"]                  # stale
    path = make_dir(tmp_path, files)
    originals = {name: read(path, name) for name in files}
    with caplog.at_level(logging.INFO):
        summary = fix_data_dir(path)

    kept = ["spkA-001", "spkA-003", "spkB-001", "spkC-001"]
    for name in ("utt2spk", "wav.scp", "feats.scp", "vad.scp", "utt2num_frames", "utt2dur"):
        assert keys(path, name) == kept, name
    assert read(path, "spk2utt") == ["spkA spkA-001 spkA-003", "spkB spkB-001", "spkC spkC-001"]
    assert read(path, "trials") == ["spkA-001 spkB-001 nontarget"]
    assert read(path, "wav.scp")[0] == "spkA-001 /audio/spkA-001.wav"
    for name, lines in originals.items():
        assert read(os.path.join(path, ".backup", "1"), name) == lines
    # a second fix that changes something gets its own backup; one that changes nothing none
    with open(os.path.join(path, "vad.scp"), "a") as extra:
        extra.write("spkZ-010 /feats/vad.ark:y\n")
    fix_data_dir(path)
    fix_data_dir(path)
    assert sorted(os.listdir(os.path.join(path, ".backup"))) == ["1", "2"]
    assert read(os.path.join(path, ".backup", "1"), "utt2spk") == originals["utt2spk"]
    assert len(read(os.path.join(path, ".backup", "2"), "vad.scp")) == 5
    assert summary["utt2spk"] == (6, 4) and summary["trials"] == (3, 1)
    assert summary["vad.scp"] == (7, 4) and summary["utt2num_frames"] == (7, 4)
    assert "kept 4 of 6 utterances" in caplog.text
    assert "trials: kept 1 of 3 lines (removed 2)" in caplog.text
    assert "dropping repeated key 'spkA-001'" in caplog.text
    assert check_data_dir(path, no_feats=False) == []


def test_fix_segmented_drops_unusable_recordings(tmp_path):
    files = segmented_files()
    files["wav.scp"] = ["recW /audio/w.wav", "recX /audio/rec x.wav"]  # recY gone, recW unused
    files["segments"][0] = "recX-0000-0100 recX 0.5 0.2"               # bad times: dropped
    path = make_dir(tmp_path, files)
    fix_data_dir(path)
    assert keys(path, "utt2spk") == ["recX-0100-0250"]
    assert read(path, "wav.scp") == ["recX /audio/rec x.wav"]
    assert read(path, "spk2utt") == ["spkA recX-0100-0250"]
    assert check_data_dir(path) == []


def test_fix_refuses_what_it_cannot_fix(tmp_path):
    path = make_dir(tmp_path / "a", {"utt2spk": ["u1 spkB", "u2 spkA"]})
    with pytest.raises(DataDirError, match="not sorted by speaker"):
        fix_data_dir(path)
    assert not os.path.exists(os.path.join(path, ".backup"))
    path = make_dir(tmp_path / "b", {"utt2spk": ["u1 s"], "wav.scp": ["u2 x.wav"]})
    with pytest.raises(DataDirError, match="no utterances remained"):
        fix_data_dir(path)


# ---------------------------------------------------------------- split_data

def _spk_counts_dir(tmp_path, counts):
    utt2spk = {f"spk{s}-{i:02d}": f"spk{s}" for s, n in enumerate(counts) for i in range(n)}
    spk2utt = utt2spk_to_spk2utt(sorted(utt2spk.items()))
    return make_dir(tmp_path, {
        "utt2spk": [f"{u} {s}" for u, s in sorted(utt2spk.items())],
        "spk2utt": [f"{s} {' '.join(us)}" for s, us in spk2utt.items()],
        "wav.scp": [f"{u} /a/{u}.wav" for u in sorted(utt2spk)],
        "utt2num_frames": [f"{u} 100" for u in sorted(utt2spk)],
        "trials": ["spk0-00 spk1-00 nontarget"],
    })


def test_split_per_utt_contiguous_balanced_blocks(tmp_path):
    path = _spk_counts_dir(tmp_path, [4, 3, 2, 1])
    dirs = split_data(path, 3)
    assert dirs == [os.path.join(path, "split3utt", str(j)) for j in (1, 2, 3)]
    blocks = [keys(d, "utt2spk") for d in dirs]
    assert [len(b) for b in blocks] == [4, 3, 3]
    assert sum(blocks, []) == keys(path, "utt2spk")
    for d in dirs:
        assert keys(d, "wav.scp") == keys(d, "utt2num_frames") == keys(d, "utt2spk")
        assert not os.path.exists(os.path.join(d, "trials"))
        assert check_data_dir(d) == []
    with pytest.raises(DataDirError, match="cannot split 10 utterances into 11 parts"):
        split_data(path, 11)


def test_split_per_speaker_keeps_speakers_whole(tmp_path):
    path = _spk_counts_dir(tmp_path, [5, 1, 1, 1, 1, 1])
    dirs = split_data(path, 2, per_spk=True)
    assert dirs[0] == os.path.join(path, "split2", "1")
    # Kaldi's rebalancing moves the light speakers off the heavy one: 5 + 5.
    assert [len(keys(d, "utt2spk")) for d in dirs] == [5, 5]
    seen = set()
    for d in dirs:
        speakers = set(keys(d, "spk2utt"))
        assert not speakers & seen
        seen |= speakers
        assert check_data_dir(d) == []
    with pytest.raises(DataDirError, match="cannot split 6 speakers into 7 parts"):
        split_data(path, 7, per_spk=True)


def test_split_segmented_filters_recordings(tmp_path):
    path = make_dir(tmp_path, segmented_files())
    dirs = split_data(path, 2, per_spk=True)
    assert read(dirs[0], "wav.scp") == ["recX /audio/rec x.wav"]
    assert keys(dirs[1], "segments") == ["recY-0000-0120", "recY-0200-0300", "recY-0300-0400"]
    assert all(check_data_dir(d) == [] for d in dirs)


def test_split_is_skipped_when_newer_than_source(tmp_path):
    path = _spk_counts_dir(tmp_path, [2, 2, 2])
    dirs = split_data(path, 2)
    target = os.path.join(dirs[1], "utt2spk")
    os.utime(target, ns=(1, 10**18))          # split newer than source
    os.utime(os.path.join(path, "utt2spk"), ns=(1, 10**18 - 10))
    split_data(path, 2)
    assert os.stat(target).st_mtime_ns == 10**18       # not rewritten
    os.utime(os.path.join(path, "wav.scp"), ns=(1, 2 * 10**18))  # source changed
    split_data(path, 2)
    assert os.stat(target).st_mtime_ns != 10**18       # redone


# ---------------------------------------------------------------- subset_data_dir

def test_subset_by_utterances_and_speakers(tmp_path, caplog):
    src = make_dir(tmp_path / "src", valid_files())
    dst = str(tmp_path / "by_utt")
    with caplog.at_level(logging.INFO):
        subset_data_dir(src, dst, utt_list=["spkA-001", "spkA-002", "spkC-001", "nobody"])
    assert keys(dst, "utt2spk") == keys(dst, "feats.scp") == ["spkA-001", "spkA-002", "spkC-001"]
    assert read(dst, "trials") == ["spkA-001 spkA-002 target"]
    assert "1 utterance id(s) are not in" in caplog.text
    assert check_data_dir(dst) == []

    dst = str(tmp_path / "by_spk")
    subset_data_dir(src, dst, spk_list=["spkB"])
    assert read(dst, "spk2utt") == ["spkB spkB-001 spkB-002"]
    assert not os.path.exists(os.path.join(dst, "trials"))  # no trial left
    assert check_data_dir(dst) == []
    with pytest.raises(DataDirError, match="no utterances selected"):
        subset_data_dir(src, dst, spk_list=["nobody"])


# ---------------------------------------------------------------- CLIs

def _run(script, *args, stdin=None):
    return subprocess.run([os.path.join(ROOT, "utils", script), *args], input=stdin,
                          capture_output=True, text=True, timeout=60)


def test_shell_wrappers(tmp_path):
    good = make_dir(tmp_path / "good", valid_files())
    proc = _run("validate_data_dir.sh", good)
    assert proc.returncode == 0 and "successfully validated" in proc.stdout
    files = valid_files()
    files["trials"][1] = "spkA-001 spkB-001 maybe"
    bad = make_dir(tmp_path / "bad", files)
    proc = _run("validate_data_dir.sh", "--no-feats", bad)
    assert proc.returncode == 1 and f"{bad}/trials:2: label 'maybe'" in proc.stderr

    proc = _run("split_data.sh", good, "99")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"split_data: error: {good}: cannot split 3 speakers into 99 parts"]
    assert _run("split_data.sh", "--per-utt", good, "2").returncode == 0
    assert os.path.isdir(os.path.join(good, "split2utt", "2"))

    proc = _run("utt2spk_to_spk2utt.sh", stdin="a1 A\nb1 B\na2 A\n")
    assert proc.returncode == 0 and proc.stdout == "A a1 a2\nB b1\n"
    assert _run("utt2spk_to_spk2utt.sh", stdin="a1 A x\n").returncode == 1

    ids = tmp_path / "spk.list"
    ids.write_text("spkB\n")
    assert _run("subset_data_dir.sh", "--spk-list", str(ids), good,
                str(tmp_path / "sub")).returncode == 0
    assert _run("fix_data_dir.sh", str(tmp_path / "sub")).returncode == 0
    assert _run("fix_data_dir.sh", str(tmp_path / "missing")).returncode == 1
