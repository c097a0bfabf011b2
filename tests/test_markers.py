"""One marker helper and one name scheme (issue 18): where a marker lives, what
it records, and the markers of older versions read once instead of redoing a stage."""
import glob
import os
import re
import subprocess

from pyutils.utils.markers import legacy_paths, marker_path, matches, write, write_marker
from tests.conftest import ROOT


def test_a_marker_is_named_after_its_output(tmp_path):
    (tmp_path / "embeddings").mkdir()
    (tmp_path / "trials").write_text("a b target\n")
    assert marker_path(str(tmp_path / "embeddings")) == str(tmp_path / "embeddings" / ".done")
    assert marker_path(str(tmp_path / "trials")) == str(tmp_path / "trials.done")
    assert marker_path(str(tmp_path / "cosine.json")) == str(tmp_path / "cosine.json.done")
    assert marker_path(str(tmp_path / "data"), step="mfcc_vad") == \
        str(tmp_path / "data" / ".mfcc_vad.done")
    assert marker_path(str(tmp_path / "scores"), directory=True) == \
        str(tmp_path / "scores" / ".done")                 # before the stage made it
    assert marker_path(str(tmp_path / "package"), directory=False) == str(tmp_path / "package.done")


def test_a_marker_matches_only_the_same_inputs_and_each_write_is_a_new_run(tmp_path):
    conf = tmp_path / "a.conf"
    conf.write_text("--x=1\n")
    marker = str(tmp_path / ".done")
    assert not matches(marker, [str(conf), "opt=1"])
    write(marker, [str(conf), "opt=1"])
    first = open(marker).read()
    assert matches(marker, [str(conf), "opt=1"])
    assert not matches(marker, [str(conf), "opt=2"])
    conf.write_text("--x=2\n")                       # a file item counts by its bytes
    assert not matches(marker, [str(conf), "opt=1"])
    write(marker, [str(conf), "opt=1"])
    second = open(marker).read()
    assert first.splitlines()[0] != second.splitlines()[0]
    write(marker, [str(conf), "opt=1"])              # same inputs, a new run id
    third = open(marker).read()
    assert third.splitlines()[0] == second.splitlines()[0] and third != second


def test_markers_of_older_versions_are_read_once_under_their_new_name(tmp_path):
    items = ["lda_dim=2"]
    backend = tmp_path / "backend"
    backend.mkdir()
    (backend / ".done").write_text("done\nrun 1\n")   # what train_backend.py itself writes
    write(str(backend / ".stamp"), items)
    recorded = (backend / ".stamp").read_text()
    assert matches(str(backend / ".done"), items)
    assert (backend / ".done").read_text() == recorded and not (backend / ".stamp").exists()

    write(str(tmp_path / "cosine.done"), items)
    assert matches(str(tmp_path / "cosine.json.done"), items)
    write(str(tmp_path / ".trials.done"), items)
    assert matches(str(tmp_path / "trials.done"), items)
    assert sorted(os.listdir(tmp_path)) == ["backend", "cosine.json.done", "trials.done"]

    write_marker(str(tmp_path / "other.done"), "another fingerprint")   # other inputs: redone
    assert not matches(str(tmp_path / "other.json.done"), items)
    assert (tmp_path / "other.done").exists()
    assert legacy_paths(str(tmp_path / ".mfcc_vad.done")) == []


def test_make_trials_keeps_trials_made_under_the_old_marker_name(tmp_path):
    """End to end through a step script: a trial list made by the previous version
    (its marker .trials.done) is kept, not remade."""
    emb, data, cal = tmp_path / "emb", tmp_path / "data", tmp_path / "calibration"
    for d in (emb, data, cal):
        d.mkdir()
    (data / "utt2spk").write_text("a1 a\na2 a\nb1 b\n")
    (emb / "xvector.scp").write_text("a1 x.ark:1\na2 x.ark:2\nb1 x.ark:3\n")
    (emb / ".done").write_text("stamp\nrun 1\n")
    trials = cal / "trials"
    trials.write_text("made by the previous version\n")
    items = [str(data / "utt2spk"), str(emb / "xvector.scp"), str(emb / ".done"),
             "max_trials=0 seed=0", str(trials)]
    write(str(cal / ".trials.done"), items)
    result = subprocess.run([os.path.join(ROOT, "steps", "make_trials.sh"), str(emb), str(data),
                             str(trials)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "kept" in result.stdout
    assert trials.read_text() == "made by the previous version\n"
    assert (cal / "trials.done").exists() and not (cal / ".trials.done").exists()


def test_every_step_names_its_markers_by_the_scheme():
    """No marker outside the scheme (a .stamp, a name stripped of its output's suffix)."""
    call = re.compile(r'pyutils\.cli\.marker (?:check|write) "([^"]+)"')
    named = re.compile(r'^marker=(.*)$', re.M)
    scripts = sorted(glob.glob(os.path.join(ROOT, "steps", "*.sh"))) + [os.path.join(ROOT, "run.sh")]
    seen = 0
    for script in scripts:
        text = open(script).read()
        for target in call.findall(text):
            seen += 1
            if target == "$marker":
                (target,) = named.findall(text)
            assert target.endswith(".done"), (script, target)
            assert "%" not in target, (script, target)   # ${json%.json}.done: not the output's name
    assert seen >= 20
