"""The training stamp (issue 17, items 1 and 2): it fingerprints the parsed config
less the runtime-only keys (a comment, the key order or ``data.num_workers`` never
retrains), and every file that decides the training input, for each input kind:
the feature, VAD and CMN configs that training reads, named or by default, the
augmentation's noise files, and the data dir's tables and upstream markers.
No training here: the stamps are computed as steps/train.sh computes them."""
import os
import shutil

import pytest
import yaml

from pyutils.training.inputs import RUNTIME_KEYS, changed_keys, training_inputs
from pyutils.training.selfsup.inputs import label_free_inputs
from pyutils.utils.markers import fingerprint
from tests.conftest import ROOT

CONFS = ("mfcc.conf", "fbank.conf", "cmvn.conf", "vad.conf")
BASE = {
    "model": {"name": "xvector", "embed_dim": 8},
    "loss": {"name": "softmax"},
    "data": {"min_chunk_frames": 40, "max_chunk_frames": 60, "batch_size": 8,
             "chunks_per_epoch": 16},
    "optimizer": {"name": "sgd", "lr": 0.05},
    "training": {"epochs": 1, "seed": 3},
}
# input kind -> (config sections over BASE, the conf files training itself reads)
KINDS = {
    "precomputed": ({"features": {"type": "fbank", "conf": "conf/fbank.conf"}},
                    {"fbank.conf", "cmvn.conf", "vad.conf", "mfcc.conf"}),
    "precomputed_mfcc": ({}, {"cmvn.conf", "vad.conf", "mfcc.conf"}),
    "on_the_fly": ({"features": {"type": "fbank", "conf": "conf/fbank.conf", "on_the_fly": True}},
                   {"fbank.conf", "cmvn.conf", "vad.conf", "mfcc.conf"}),
    "on_the_fly_mfcc": ({"features": {"type": "mfcc", "on_the_fly": True}},
                        {"cmvn.conf", "vad.conf", "mfcc.conf"}),
    "waveform": ({"features": {"type": "waveform"}, "model": {"name": "wav2spk"}}, set()),
    "shards": ({"features": {"type": "mfcc", "conf": "conf/mfcc.conf", "on_the_fly": True},
                "data": {**BASE["data"], "format": "shard"}},
               {"cmvn.conf", "vad.conf", "mfcc.conf"}),
    "label_free": ({"features": {"type": "fbank", "conf": "conf/fbank.conf",
                                 "cmvn_conf": "conf/cmvn.conf"},
                    "ssl": {"method": "moco"}},
                   {"fbank.conf", "cmvn.conf", "vad.conf", "mfcc.conf"}),
}


@pytest.fixture
def recipe(tmp_path, monkeypatch):
    """A recipe dir (the cwd, as run.sh's) with conf/ copies and a data dir."""
    os.makedirs(tmp_path / "conf")
    for name in CONFS:
        shutil.copy(os.path.join(ROOT, "conf", name), tmp_path / "conf" / name)
    data = tmp_path / "data"
    data.mkdir()
    for name in ("utt2spk", "wav.scp", "feats.scp", ".done"):
        (data / name).write_text(f"{name} of run A\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def stamp_of(config_path, data="data"):
    config = yaml.safe_load(open(config_path))
    if config.get("ssl"):
        return fingerprint(*label_free_inputs(str(config_path), [data]))
    return fingerprint(*training_inputs(str(config_path), data))


def write(path, config, header=""):
    path.write_text(header + yaml.safe_dump(config, sort_keys=True))


def test_a_comment_the_key_order_or_a_runtime_key_keep_the_stamp(recipe):
    config = recipe / "c.yaml"
    write(config, BASE)
    before = stamp_of(config)
    runtime = {**BASE, "data": {**BASE["data"], "num_workers": 2, "prefetch_factor": 4,
                                "worker_nice": 5, "in_memory": False},
               "training": {**BASE["training"], "num_threads": 8, "device": "cpu"}}
    config.write_text("# a comment\n" + yaml.safe_dump(runtime, sort_keys=False))
    assert stamp_of(config) == before
    # a real change does change it, and the refusal names it old -> new
    changed = {**BASE, "optimizer": {"name": "sgd", "lr": 0.1}}
    write(config, changed)
    assert stamp_of(config) != before
    assert changed_keys(runtime, changed) == ["optimizer.lr"]


def test_runtime_keys_are_one_list_and_the_docs_name_them():
    from pyutils.training.inputs import config_item, label
    docs = open(os.path.join(ROOT, "docs", "networks.md"), encoding="utf-8").read()
    for key in RUNTIME_KEYS:
        assert f"`{key}`" in docs, key
    item = config_item({**BASE, "data": {**BASE["data"], "num_workers": 3}})
    assert "num_workers" not in item and label(item) == "config"


def test_num_workers_decides_the_batches_of_shards(recipe):
    """Shards are dealt to the loader workers (README), so there it is no runtime key."""
    config = recipe / "c.yaml"
    shard = {**BASE, "data": {**BASE["data"], "format": "shard", "num_workers": 1}}
    write(config, shard)
    before = stamp_of(config)
    write(config, {**shard, "data": {**shard["data"], "num_workers": 2}})
    assert stamp_of(config) != before
    assert changed_keys(shard, {**shard, "data": {**shard["data"], "num_workers": 2}}) == [
        "data.num_workers"]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_file_that_decides_the_training_input_is_in_the_stamp(recipe, kind):
    sections, reads = KINDS[kind]
    config = recipe / "c.yaml"
    write(config, {**BASE, **sections})
    for name in CONFS:
        before = stamp_of(config)
        path = recipe / "conf" / name
        path.write_text(path.read_text() + "--dither=0.5\n")
        assert (stamp_of(config) != before) == (name in reads), (kind, name)
    # the data dir's tables and the upstream stage's marker, for every kind
    before = stamp_of(config)
    (recipe / "data" / ".done").write_text("stage 2 run B\n")
    assert stamp_of(config) != before


def test_augmentation_noise_files_are_in_the_stamp(recipe, monkeypatch):
    noise = recipe / "corpora" / "noise"
    noise.mkdir(parents=True)
    (noise / "a.wav").write_bytes(b"RIFF1")
    monkeypatch.setenv("SV_CORPUS_ROOT", str(recipe / "corpora"))
    config = recipe / "c.yaml"
    write(config, {**BASE, "features": {"type": "fbank", "conf": "conf/fbank.conf",
                                        "on_the_fly": True},
                   "augmentation": {"noise": {"prob": 0.5, "dirs": ["$SV_CORPUS_ROOT/noise"]}}})
    before = stamp_of(config)
    (noise / "b.wav").write_bytes(b"RIFF2")                  # one noise file more
    second = stamp_of(config)
    assert second != before
    (noise / "b.wav").write_bytes(b"RIFF22")                 # a replaced one
    assert stamp_of(config) != second
    other = recipe / "other" / "noise"                        # another corpus root
    shutil.copytree(noise, other)
    monkeypatch.setenv("SV_CORPUS_ROOT", str(recipe / "other"))
    assert stamp_of(config) != second
