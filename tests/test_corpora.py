"""Corpus recipes (run.sh --corpus ... stage 0) on small layout fixtures made here.

Each fixture copies a published layout with a few 50 ms files (never committed
audio); VoxCeleb's lists and paths are in tests/fixtures/voxceleb (its README
says where each line comes from).  The official VoxCeleb1 lists (their published
counts; the cleaned lists are what the recipe uses, and what
local/prepare_voxceleb.py's line-count check compares with):

  list                       trials   target   nontarget   first line
  veri_test2.txt   (Vox1-O)   37,611   18,802   18,809      1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav
  list_test_all2.txt (Vox1-E) 579,818   289,921   289,897   same format: label, two spk/video/n.wav paths
  list_test_hard2.txt (Vox1-H) 550,894   275,488   275,406  same format

Kaldi's trials of that first line: ``id10270-x6uYqmx31kE-00001 id10270-8jEAjG6SegY-00008
target`` (make_voxceleb1_v2.pl ids).  The fixture's lists run through the
conversion everywhere; when the real lists are under $SV_CORPUS_ROOT/voxceleb1/meta,
test_official_vox1_lists also checks these counts on them.
"""
import hashlib
import http.server
import importlib.util
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading

import numpy as np
import pytest
import soundfile as sf

from pyutils.data.corpus import convert_vox_trials, path_to_utt, sampled_trials
from pyutils.data.validate import check_data_dir
from pyutils.data.download import DownloadError, fetch
from tests.conftest import ROOT, corpus_root



def _load_local(name):
    """A local/ script as a module (local/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "local", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_vox = _load_local("prepare_voxceleb")
OFFICIAL_COUNTS, check_official_count = _vox.OFFICIAL_COUNTS, _vox.check_official_count

VOX1_O_FIRST = "1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav"


def audio(path, fmt=None, value=0.1):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sf.write(path, np.full(800, value, dtype=np.float32), 16000, format=fmt)


def stage0(corpus, root, data, *extra):
    env = {**os.environ, "SV_CORPUS_ROOT": str(root)}
    result = subprocess.run(["./run.sh", "--corpus", corpus, "--stage", "0", "--stop-stage", "0",
                             "--corpus-root", str(root), "--data", str(data),
                             "--exp", str(data) + "_exp", *extra],
                            cwd=ROOT, capture_output=True, text=True, env=env)
    return result


def table(path):
    with open(path) as handle:
        return [line.split() for line in handle]


# -------------------------------------------------------------------- VoxCeleb

VOX_FIXTURE = os.path.join(ROOT, "tests", "fixtures", "voxceleb")
VOX_LISTS = ("veri_test2.txt", "list_test_all2.txt", "list_test_hard2.txt")


def make_voxceleb(root):
    """tests/fixtures/voxceleb: its lists, and a 50 ms file for each of its audio paths."""
    with open(os.path.join(VOX_FIXTURE, "audio_files.txt")) as handle:
        for rel in handle.read().split():
            path = root / rel
            if rel.endswith(".wav"):
                audio(str(path))
            else:
                os.makedirs(path.parent, exist_ok=True)
                path.write_bytes(b"not decoded by the test")
    shutil.copytree(os.path.join(VOX_FIXTURE, "voxceleb1", "meta"), root / "voxceleb1" / "meta")


def prepare_voxceleb(root, out, *options):
    return subprocess.run([sys.executable, "local/prepare_voxceleb.py", "--corpus-root",
                           str(root), *options, str(out)], cwd=ROOT, capture_output=True,
                          text=True)


def test_vox_fixture_lists_have_the_published_format():
    """Every fixture line is '<1|0> spk/video/n.wav spk/video/n.wav' with single
    spaces and LF ends, as the published lists; veri_test2.txt starts as the real one."""
    line = re.compile(r"[01] (id1\d{4}/[\w-]{11}/\d{5}\.wav) (?!\1)id1\d{4}/[\w-]{11}/\d{5}\.wav\n")
    for name in VOX_LISTS:
        with open(os.path.join(VOX_FIXTURE, "voxceleb1", "meta", name), "rb") as handle:
            text = handle.read().decode("ascii")
        lines = text.splitlines(keepends=True)
        assert lines and all(line.fullmatch(x) for x in lines), name
        for x in lines:   # the label says whether the speakers are the same
            label, a, b = x.split()
            assert (label == "1") == (a.split("/")[0] == b.split("/")[0]), (name, x)
    first = open(os.path.join(VOX_FIXTURE, "voxceleb1", "meta", "veri_test2.txt")).readline()
    assert first.rstrip("\n") == VOX1_O_FIRST


def test_vox1_trial_conversion_keeps_count_order_and_labels(tmp_path):
    make_voxceleb(tmp_path)
    trials = convert_vox_trials(str(tmp_path / "voxceleb1" / "meta" / "veri_test2.txt"))
    assert len(trials) == 4
    assert trials[0] == ("id10270-x6uYqmx31kE-00001", "id10270-8jEAjG6SegY-00008", "target")
    assert [t[2] for t in trials] == ["target", "nontarget", "target", "nontarget"]
    assert path_to_utt("id10271/1gtz-CUIygI/00001.wav") == "id10271-1gtz-CUIygI-00001"


def test_vox1_trial_conversion_names_a_bad_line(tmp_path):
    bad = tmp_path / "list.txt"
    bad.write_text(VOX1_O_FIRST + "\ntarget id10270/a/1.wav id10270/b/2.wav\n")
    with pytest.raises(ValueError, match=r"list.txt:2: expected"):
        convert_vox_trials(str(bad))


@pytest.mark.parametrize("which,name,expected", [
    ("O", "veri_test2.txt", ["id10270-x6uYqmx31kE-00001 id10270-8jEAjG6SegY-00008 target",
                             "id10270-x6uYqmx31kE-00001 id10300-ize_eiCFEg0-00003 nontarget",
                             "id10271-37nktPRUJ58-00002 id10271-1gtz-CUIygI-00001 target",
                             "id10271-37nktPRUJ58-00002 id10270-8jEAjG6SegY-00008 nontarget"]),
    ("E", "list_test_all2.txt", ["id10001-Y8hIVOBuels-00001 id10001-1zcIwhmdeo4-00001 target",
                                 "id10001-Y8hIVOBuels-00001 id10943-vNCVj7yLWPU-00005 nontarget",
                                 "id10001-Y8hIVOBuels-00001 id10001-7w0IBEWc9Qw-00004 target",
                                 "id10001-Y8hIVOBuels-00001 id10999-G5R2-Hl7YX8-00008 nontarget",
                                 "id10270-x6uYqmx31kE-00001 id10001-1zcIwhmdeo4-00001 nontarget"]),
    ("H", "list_test_hard2.txt", ["id10001-Y8hIVOBuels-00001 id10001-7w0IBEWc9Qw-00004 target",
                                  "id10001-Y8hIVOBuels-00001 id10999-G5R2-Hl7YX8-00008 nontarget",
                                  "id10270-x6uYqmx31kE-00001 id10270-8jEAjG6SegY-00008 target",
                                  "id10270-x6uYqmx31kE-00001 id10300-ize_eiCFEg0-00003 nontarget"]),
])
def test_voxceleb_lists_o_e_h_converted_with_the_count_check(tmp_path, which, name, expected):
    """Each official list of the fixture becomes Kaldi trials, line for line, and
    eval holds exactly the utterances it names; its count is not the published
    one, so the conversion warns with both counts."""
    root = tmp_path / "corpora"
    make_voxceleb(root)
    result = prepare_voxceleb(root, tmp_path / "d", "--trials", which)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "d" / "eval" / "trials").read_text().splitlines() == expected
    named = sorted({u for x in expected for u in x.split()[:2]})
    assert [u for u, _ in table(tmp_path / "d" / "eval" / "utt2spk")] == named
    official = OFFICIAL_COUNTS[name]
    targets = sum(x.endswith(" target") for x in expected)
    assert (f"{name}: {len(expected)} trials ({targets} target), the published {name} has "
            f"{official[0]:,} ({official[1]:,} target)") in result.stderr
    assert f"{len(expected)} trials (Vox1-{which})" in result.stderr


def test_voxceleb_official_counts_are_documented_and_checked(tmp_path):
    """The published counts (the module docstring of test_corpora.py lists them) are
    the ones checked; a list of the official size passes the check silently (Vox1-O
    at full size: the fixture's lines repeated to 37,611, 18,802 of them targets)."""
    assert OFFICIAL_COUNTS == {"veri_test2.txt": (37611, 18802),
                               "list_test_all2.txt": (579818, 289921),
                               "list_test_hard2.txt": (550894, 275488)}
    for name, (lines, target) in OFFICIAL_COUNTS.items():
        assert f"{lines:,}   {target:,}   {lines - target:,}" in __doc__, name
    with open(os.path.join(VOX_FIXTURE, "voxceleb1", "meta", "veri_test2.txt")) as handle:
        fixture = handle.read().splitlines()
    same = [x for x in fixture if x.startswith("1 ")]
    other = [x for x in fixture if x.startswith("0 ")]
    full = tmp_path / "veri_test2.txt"
    full.write_text("".join(same[i % len(same)] + "\n" for i in range(18802))
                    + "".join(other[i % len(other)] + "\n" for i in range(37611 - 18802)))
    trials = convert_vox_trials(str(full))
    assert len(trials) == 37611 and check_official_count(str(full), trials) == ""
    assert check_official_count(str(full), trials[:-1]).startswith(
        f"{full}: 37,610 trials (18,802 target), the published veri_test2.txt has 37,611")
    other_name = tmp_path / "my_list.txt"   # only the official names are checked
    assert check_official_count(str(other_name), trials[:3]) == ""


def test_voxceleb_recipe_vox1_o(tmp_path):
    make_voxceleb(tmp_path / "corpora")
    data = tmp_path / "data"
    result = stage0("voxceleb", tmp_path / "corpora", data)
    assert result.returncode == 0, result.stderr
    assert check_data_dir(str(data / "train")) == [] and check_data_dir(str(data / "eval")) == []
    trials = (data / "eval" / "trials").read_text().splitlines()
    assert trials[0] == "id10270-x6uYqmx31kE-00001 id10270-8jEAjG6SegY-00008 target"
    assert len(trials) == 4
    # training = VoxCeleb2 dev, m4a decoded by an ffmpeg pipe (make_voxceleb2.pl)
    wav = dict(line.split(" ", 1) for line in (data / "train" / "wav.scp").read_text().splitlines())
    assert sorted(wav) == ["id00012-21Uxsk56VDQ-00001", "id00012-2DLq_Kkc1r8-00001",
                           "id00015-0fijmz4vTVU-00001"]
    assert wav["id00015-0fijmz4vTVU-00001"].startswith("ffmpeg -v 8 -i ")
    assert wav["id00015-0fijmz4vTVU-00001"].endswith("-f wav -acodec pcm_s16le - |")
    assert [u for u, _ in table(data / "eval" / "utt2spk")] == [
        "id10270-8jEAjG6SegY-00008", "id10270-x6uYqmx31kE-00001",
        "id10271-1gtz-CUIygI-00001", "id10271-37nktPRUJ58-00002", "id10300-ize_eiCFEg0-00003"]


def test_voxceleb_recipe_kaldi_v2_sets_and_vox1_e(tmp_path):
    root = tmp_path / "corpora"
    make_voxceleb(root)
    # train on vox2 dev + vox1 dev (Kaldi v2): the Vox1-O speakers stay out of training
    result = prepare_voxceleb(root, tmp_path / "d1", "--train-sets", "vox2_dev,vox1_dev")
    assert result.returncode == 0, result.stderr
    spks = {s for _, s in table(tmp_path / "d1" / "train" / "utt2spk")}
    assert spks == {"id00012", "id00015", "id10001", "id10002", "id10943", "id10999"}
    # Vox1-E scores all of VoxCeleb1, so vox1_dev cannot train
    result = prepare_voxceleb(root, tmp_path / "d2", "--trials", "E",
                              "--train-sets", "vox2_dev,vox1_dev")
    assert result.returncode != 0 and "vox1_dev" in result.stderr
    result = prepare_voxceleb(root, tmp_path / "d3", "--trials", "E")
    assert result.returncode == 0, result.stderr
    assert table(tmp_path / "d3" / "eval" / "trials")[1] == [
        "id10001-Y8hIVOBuels-00001", "id10943-vNCVj7yLWPU-00005", "nontarget"]


def test_voxceleb_missing_audio_of_a_trial_is_named(tmp_path):
    root = tmp_path / "corpora"
    make_voxceleb(root)
    os.unlink(root / "voxceleb1" / "wav" / "id10271" / "37nktPRUJ58" / "00002.wav")
    result = stage0("voxceleb", root, tmp_path / "data")
    assert result.returncode != 0
    assert "veri_test2.txt: 1 utterance(s)" in result.stderr
    assert "id10271-37nktPRUJ58-00002" in result.stderr


def test_official_vox1_lists():
    """The real lists, where $SV_CORPUS_ROOT/voxceleb1/meta holds them (the fixture
    tests above run everywhere): the published counts, no warning, Kaldi's first trial."""
    meta = os.path.join(corpus_root(), "voxceleb1", "meta")
    present = [n for n in OFFICIAL_COUNTS if os.path.isfile(os.path.join(meta, n))]
    if not present:
        pytest.skip(f"official VoxCeleb1 lists not under {meta} (the fixture tests ran)")
    for name in present:
        trials = convert_vox_trials(os.path.join(meta, name))
        assert (len(trials), sum(t[2] == "target" for t in trials)) == OFFICIAL_COUNTS[name]
        assert check_official_count(os.path.join(meta, name), trials) == ""
    if "veri_test2.txt" in present:
        assert convert_vox_trials(os.path.join(meta, "veri_test2.txt"))[0] == (
            "id10270-x6uYqmx31kE-00001", "id10270-8jEAjG6SegY-00008", "target")


# -------------------------------------------------------------------- CN-Celeb

def make_cnceleb(root):
    c1 = root / "CN-Celeb_flac"
    for spk, name in [("id00000", "singing-01-001"), ("id00000", "speech-02-003"),
                      ("id00001", "interview-01-001")]:
        audio(str(c1 / "data" / spk / f"{name}.flac"), "FLAC")
    os.makedirs(c1 / "dev")
    (c1 / "dev" / "dev.lst").write_text("id00000\nid00001\n")
    for name in ["id00800-enroll", "id00801-enroll"]:
        audio(str(c1 / "eval" / "enroll" / f"{name}.flac"), "FLAC")
    for name in ["id00800-singing-01-001", "id00800-vlog-01-002", "id00801-drama-01-001"]:
        audio(str(c1 / "eval" / "test" / f"{name}.flac"), "FLAC")
    lists = c1 / "eval" / "lists"
    os.makedirs(lists)
    # the lists name .wav files although the release is .flac
    (lists / "enroll.lst").write_text("id00800-enroll enroll/id00800-enroll.wav\n"
                                      "id00801-enroll enroll/id00801-enroll.wav\n")
    (lists / "trials.lst").write_text(
        "id00800-enroll test/id00800-singing-01-001.wav 1\n"
        "id00800-enroll test/id00801-drama-01-001.wav 0\n"
        "id00801-enroll test/id00800-vlog-01-002.wav 0\n"
        "id00801-enroll test/id00801-drama-01-001.wav 1\n")
    audio(str(root / "CN-Celeb2_flac" / "data" / "id10000" / "live_broadcast-01-001.flac"), "FLAC")


def test_cnceleb_recipe_speaker_models(tmp_path):
    make_cnceleb(tmp_path / "corpora")
    data = tmp_path / "data"
    result = stage0("cnceleb", tmp_path / "corpora", data)
    assert result.returncode == 0, result.stderr
    assert check_data_dir(str(data / "train")) == [] and check_data_dir(str(data / "eval")) == []
    assert [u for u, _ in table(data / "train" / "utt2spk")] == [
        "id00000-singing-01-001", "id00000-speech-02-003", "id00001-interview-01-001",
        "id10000-live_broadcast-01-001"]
    assert table(data / "eval" / "trials") == [
        ["id00800-enroll", "id00800-singing-01-001", "target"],
        ["id00800-enroll", "id00801-drama-01-001", "nontarget"],
        ["id00801-enroll", "id00800-vlog-01-002", "nontarget"],
        ["id00801-enroll", "id00801-drama-01-001", "target"]]
    # each model is an utterance of its speaker, whose audio is the enrolment file
    u2s = dict(table(data / "eval" / "utt2spk"))
    assert u2s["id00800-enroll"] == "id00800" and u2s["id00801-drama-01-001"] == "id00801"
    wav = dict(line.split(" ", 1) for line in (data / "eval" / "wav.scp").read_text().splitlines())
    assert wav["id00800-enroll"].endswith("eval/enroll/id00800-enroll.flac")


def test_cnceleb_model_with_several_enrolment_files_is_concatenated(tmp_path):
    root = tmp_path / "corpora"
    make_cnceleb(root)
    audio(str(root / "CN-Celeb_flac" / "eval" / "enroll" / "id00800-enroll-2.flac"), "FLAC", 0.2)
    lists = root / "CN-Celeb_flac" / "eval" / "lists"
    with open(lists / "enroll.lst", "a") as out:
        out.write("id00800-enroll enroll/id00800-enroll-2.wav\n")
    result = subprocess.run([sys.executable, "local/prepare_cnceleb.py", "--corpus-root", str(root),
                             "--train-sets", "cnceleb1_dev", "--python", sys.executable,
                             str(tmp_path / "data")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    wav = dict(line.split(" ", 1) for line in
               (tmp_path / "data" / "eval" / "wav.scp").read_text().splitlines())
    pipe = wav["id00800-enroll"]
    assert "pyutils.cli.concat_audio" in pipe and pipe.endswith(" |")
    samples, rate = sf.read(io.BytesIO(subprocess.run(
        pipe[:-2], shell=True, capture_output=True, check=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT}).stdout))
    assert rate == 16000 and len(samples) == 1600  # the two 800-sample files


def test_cnceleb_trial_naming_an_unknown_model_is_an_error(tmp_path):
    root = tmp_path / "corpora"
    make_cnceleb(root)
    with open(root / "CN-Celeb_flac" / "eval" / "lists" / "trials.lst", "a") as out:
        out.write("id00999-enroll test/id00800-singing-01-001.wav 1\n")
    result = stage0("cnceleb", root, tmp_path / "data")
    assert result.returncode != 0 and "trials.lst:5: model 'id00999-enroll'" in result.stderr


# ------------------------------------------------------------------ LibriSpeech

def make_librispeech(root, subset, speakers):
    for spk in speakers:
        for chapter in ("1240", "1241"):
            for n in range(2):
                audio(str(root / "LibriSpeech" / subset / spk / chapter
                          / f"{spk}-{chapter}-{n:04d}.flac"), "FLAC")


def test_librispeech_recipe(tmp_path):
    root = tmp_path / "corpora"
    make_librispeech(root, "train-clean-100", ["103", "1034"])
    make_librispeech(root, "test-clean", ["61", "121", "237"])
    data = tmp_path / "data"
    result = stage0("librispeech", root, data)
    assert result.returncode == 0, result.stderr
    assert check_data_dir(str(data / "train")) == [] and check_data_dir(str(data / "eval")) == []
    assert table(data / "train" / "utt2spk")[0] == ["103-1240-0000", "103"]
    trials = table(data / "eval" / "trials")
    # 12 test utterances of 3 speakers: each has 3 same-speaker partners (all taken)
    # and 10 drawn other-speaker ones; pairs unordered and unique
    assert sum(t[2] == "target" for t in trials) == 3 * (4 * 3 // 2)
    assert all(a < b for a, b, _ in trials) and len({(a, b) for a, b, _ in trials}) == len(trials)
    assert all((t[2] == "target") == (t[0].split("-")[0] == t[1].split("-")[0]) for t in trials)


def test_sampled_trials_are_a_function_of_the_seed():
    utts = {f"{s}-1-{n}": (str(s), "") for s in range(10, 20) for n in range(5)}
    assert sampled_trials(utts, 3, 1) == sampled_trials(utts, 3, 1)
    assert sampled_trials(utts, 3, 1) != sampled_trials(utts, 3, 2)


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files with HTTP Range support (resumed downloads); counts bytes sent."""
    sent = []

    def do_GET(self):
        path = self.translate_path(self.path)
        data = open(path, "rb").read()
        start = 0
        if "Range" in self.headers:
            start = int(self.headers["Range"].split("=")[1].rstrip("-"))
            self.send_response(206)
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        # counted before sending: the client may assert as soon as its last byte arrives
        RangeHandler.sent.append(len(data) - start)
        self.wfile.write(data[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    served = tmp_path / "served"
    os.makedirs(served)
    handler = lambda *a, **k: RangeHandler(*a, directory=str(served), **k)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    RangeHandler.sent = []
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_fetch_resumes_and_checks_the_checksum(tmp_path, server):
    served, url = server
    payload = bytes(range(256)) * 400
    (served / "a.bin").write_bytes(payload)
    sha = hashlib.sha256(payload).hexdigest()
    dest = tmp_path / "dl" / "a.bin"
    os.makedirs(dest.parent)
    (tmp_path / "dl" / "a.bin.part").write_bytes(payload[:1000])  # an interrupted download
    fetch(f"{url}/a.bin", str(dest), f"sha256:{sha}")
    assert dest.read_bytes() == payload and RangeHandler.sent == [len(payload) - 1000]
    assert not (tmp_path / "dl" / "a.bin.part").exists()
    with pytest.raises(DownloadError, match="md5 is .* expected 0000"):
        fetch(f"{url}/a.bin", str(tmp_path / "b.bin"), "md5:" + "0" * 32)
    assert not (tmp_path / "b.bin").exists() and not (tmp_path / "b.bin.part").exists()


def test_librispeech_download_offline_says_where(tmp_path):
    result = subprocess.run(
        [sys.executable, "local/prepare_librispeech.py", "--corpus-root", str(tmp_path),
         "--download", "true", "--url-base", "http://127.0.0.1:9", str(tmp_path / "data")],
        cwd=ROOT, capture_output=True, text=True)
    assert result.returncode != 0
    assert "offline" in result.stderr and "train-clean-100.tar.gz" in result.stderr


def test_librispeech_download_from_a_mirror(tmp_path, server):
    served, url = server
    staging = tmp_path / "staging"
    make_librispeech(staging, "test-clean", ["61", "121"])
    make_librispeech(staging, "train-clean-100", ["103"])
    sums = []
    for subset in ("test-clean", "train-clean-100"):
        with tarfile.open(served / f"{subset}.tar.gz", "w:gz") as tar:
            tar.add(staging / "LibriSpeech" / subset, arcname=f"LibriSpeech/{subset}")
        sums.append(f"{subset}:sha256:"
                    + hashlib.sha256((served / f"{subset}.tar.gz").read_bytes()).hexdigest())
    root = tmp_path / "corpora"
    result = subprocess.run(
        [sys.executable, "local/prepare_librispeech.py", "--corpus-root", str(root),
         "--download", "true", "--url-base", url, "--checksums", ",".join(sums),
         str(tmp_path / "data")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert len(table(tmp_path / "data" / "eval" / "utt2spk")) == 8


# ----------------------------------------------------------------------- folder

def test_folder_recipe(tmp_path):
    root = tmp_path / "corpora"
    for part, spks in (("train", ["alice", "bob"]), ("eval", ["carol", "dave"])):
        for spk in spks:
            for n in range(2):
                audio(str(root / "my_corpus" / part / spk / "session1" / f"{n}.wav"))
    data = tmp_path / "data"
    result = stage0("folder", root, data)
    assert result.returncode == 0, result.stderr
    assert check_data_dir(str(data / "train")) == [] and check_data_dir(str(data / "eval")) == []
    trials = table(data / "eval" / "trials")
    assert len(trials) == 6 and sum(t[2] == "target" for t in trials) == 2
    assert trials[0] == ["carol-session1-0", "carol-session1-1", "target"]
