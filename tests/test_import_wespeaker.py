"""WeSpeaker and 3D-Speaker checkpoints imported: parity with the sources' own model code.

References: tests/fixtures/parity/{wespeaker,3dspeaker}_*.npz, made by
``tools/make_parity_fixtures.py wespeaker|3dspeaker --src CHECKOUT`` (versions and commits in
VERSIONS.json): the source network's key names and shapes, the seed of its random weights
(tools/parity_weights.py), a fixed fbank input and the source's embedding of it.
"""
import glob
import json
import os
import sys

import numpy as np
import pytest
import torch
import yaml

from pyutils.models.convert import wespeaker
from pyutils.models.convert.common import ConversionError, write_model_dir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures", "parity")
sys.path.insert(0, os.path.join(ROOT, "tools"))
from parity_weights import random_state  # noqa: E402

CASES = sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(FIX, "wespeaker_*.npz")))


def source_checkpoint(case, directory, extra=None):
    """The case's checkpoint in WeSpeaker's layout: avg_model.pt + config.yaml."""
    data = np.load(os.path.join(FIX, case + ".npz"))
    keys = json.loads(str(data["keys"]))
    state = {k: torch.from_numpy(v) for k, v in random_state(keys, int(data["seed"])).items()}
    state["projection.weight"] = torch.zeros(7, 3)     # the training speakers' classifier
    state.update(extra or {})
    os.makedirs(directory, exist_ok=True)
    torch.save(state, os.path.join(directory, "avg_model.pt"))
    config = json.loads(str(data["config"]))
    config["dataset_args"] = {"fbank_args": {"num_mel_bins": 80, "frame_shift": 10,
                                             "frame_length": 25, "dither": 1.0}}
    with open(os.path.join(directory, "config.yaml"), "w") as out:
        yaml.safe_dump(config, out)
    return data


@pytest.mark.parametrize("case", CASES)
def test_wespeaker_parity(case, tmp_path):
    data = source_checkpoint(case, str(tmp_path / "src"))
    model, config, sources = wespeaker.convert(str(tmp_path / "src"))
    with torch.no_grad():
        ours = model(torch.from_numpy(data["feats"])[None])
        ours = model.head(ours) if config["model"].get("two_emb_layer") else ours
    ref = data["embedding"]
    assert np.linalg.norm(ours[0].numpy() - ref) / np.linalg.norm(ref) < 1e-4


def test_written_model_dir_has_the_wespeaker_front_end(tmp_path):
    from pyutils.extraction.extract import load_embedding_model
    from pyutils.features.kaldi_conf import read_kaldi_conf
    data = source_checkpoint("wespeaker_resnet34", str(tmp_path / "src"))
    model, config, sources = wespeaker.convert(str(tmp_path / "src"))
    final = write_model_dir(model, config, str(tmp_path / "out"), sources, "test")
    saved = yaml.safe_load(open(tmp_path / "out" / "config.yaml"))
    assert saved["features"]["type"] == "fbank"
    options = read_kaldi_conf(saved["features"]["conf"])
    assert options["window-type"] == "hamming" and float(options["dither"]) == 0.0
    assert int(options["num-mel-bins"]) == 80
    from pyutils.features.fbank import FbankComputer
    computer = FbankComputer(options)                  # stage 1 takes it as it is
    wave = np.random.default_rng(0).normal(0, 1000, 16000)
    feats = computer.compute(wave)
    assert feats.shape == (100, 80)
    assert np.array_equal(feats, computer.compute(wave, rng=np.random.default_rng(5)))  # dither 0
    reloaded = load_embedding_model(final)
    with torch.no_grad():
        emb = reloaded(torch.from_numpy(data["feats"])[None])[0].numpy()
    assert np.linalg.norm(emb - data["embedding"]) / np.linalg.norm(data["embedding"]) < 1e-4


def test_mismatch_is_one_line_naming_key_and_shapes(tmp_path):
    source_checkpoint("wespeaker_resnet34", str(tmp_path / "src"),
                      extra={"layer2.0.conv1.weight": torch.zeros(16, 8, 5, 3)})
    with pytest.raises(ConversionError) as err:
        wespeaker.convert(str(tmp_path / "src"))
    message = str(err.value)
    assert "\n" not in message and "layer2.0.conv1.weight" in message
    assert "(16, 8, 5, 3)" in message and "(16, 8, 3, 3)" in message


def test_unsupported_architecture_is_refused(tmp_path):
    source_checkpoint("wespeaker_resnet34", str(tmp_path / "src"))
    path = tmp_path / "src" / "config.yaml"
    config = yaml.safe_load(open(path))
    config["model"] = "RepVGG_TINY_A0"
    yaml.safe_dump(config, open(path, "w"))
    with pytest.raises(ConversionError, match="RepVGG_TINY_A0.*not importable.*ResNet293"):
        wespeaker.convert(str(tmp_path / "src"))


def declared_as(case, model, directory):
    """The case's checkpoint with ``model:`` in its config.yaml replaced."""
    source_checkpoint(case, directory)
    path = os.path.join(directory, "config.yaml")
    config = yaml.safe_load(open(path))
    config["model"] = model
    yaml.safe_dump(config, open(path, "w"))


def test_bottleneck_config_with_basic_block_weights_names_key_and_both_shapes(tmp_path):
    declared_as("wespeaker_resnet34", "ResNet50", str(tmp_path / "src"))
    with pytest.raises(ConversionError) as err:
        wespeaker.convert(str(tmp_path / "src"))
    message = str(err.value)     # a BasicBlock's 3x3 conv1 where the Bottleneck has a 1x1
    assert "\n" not in message and "'layer1.0.conv1.weight'" in message
    assert "(8, 8, 3, 3)" in message and "(8, 8, 1, 1)" in message


def test_bottleneck_wrong_shape_and_wrong_depth_are_one_line(tmp_path):
    source_checkpoint("wespeaker_resnet101_m8_two_emb", str(tmp_path / "shape"),
                      extra={"layer3.20.conv3.weight": torch.zeros(128, 32, 3, 1)})
    with pytest.raises(ConversionError) as err:
        wespeaker.convert(str(tmp_path / "shape"))
    message = str(err.value)
    assert "\n" not in message and "'layer3.20.conv3.weight'" in message
    assert "(128, 32, 3, 1)" in message and "(128, 32, 1, 1)" in message
    declared_as("wespeaker_resnet101_m8_two_emb", "ResNet50", str(tmp_path / "depth"))
    with pytest.raises(ConversionError, match=r"unexpected key 'layer3\.6\.conv1\.weight'"):
        wespeaker.convert(str(tmp_path / "depth"))


def test_imported_bottleneck_reloads_as_a_registered_network(tmp_path):
    """The written final.pt names ``resnet50``; the stages' loader rebuilds it from the config."""
    from pyutils.extraction.extract import load_embedding_model
    data = source_checkpoint("wespeaker_resnet50_m8", str(tmp_path / "src"))
    model, config, sources = wespeaker.convert(str(tmp_path / "src"))
    assert config["model"] == {"name": "resnet50", "embed_dim": 32, "m_channels": 8,
                               "two_emb_layer": False, "pooling": "tstp"}
    final = write_model_dir(model, config, str(tmp_path / "out"), sources, "test")
    reloaded = load_embedding_model(final)
    assert type(reloaded).__name__ == "ResNet50"
    with torch.no_grad():
        emb = reloaded(torch.from_numpy(data["feats"])[None])[0].numpy()
    assert np.linalg.norm(emb - data["embedding"]) / np.linalg.norm(data["embedding"]) < 1e-4


THREED = sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(FIX, "3dspeaker_*.npz")))


def threed_checkpoint(case, directory):
    """The case's weights as ModelScope ships them (one .bin) + the recipe's yaml."""
    data = np.load(os.path.join(FIX, case + ".npz"))
    keys = json.loads(str(data["keys"]))
    state = {k: torch.from_numpy(v) for k, v in random_state(keys, int(data["seed"])).items()}
    os.makedirs(directory, exist_ok=True)
    torch.save(state, os.path.join(directory, "model.bin"))
    with open(os.path.join(directory, "config.yaml"), "w") as out:
        yaml.safe_dump(json.loads(str(data["config"])), out)
    return data


@pytest.mark.parametrize("case", THREED)
def test_3dspeaker_parity(case, tmp_path):
    from pyutils.models.convert import threedspeaker
    data = threed_checkpoint(case, str(tmp_path / "src"))
    model, config, sources = threedspeaker.convert(str(tmp_path / "src"))
    assert config["model"]["name"] == case.split("_", 1)[1]
    assert sources[-1].endswith("config.yaml")
    with torch.no_grad():
        ours = model(torch.from_numpy(data["feats"])[None])[0].numpy()
    ref = data["embedding"]
    assert np.linalg.norm(ours - ref) / np.linalg.norm(ref) < 1e-4


def test_3dspeaker_unknown_weights_refused(tmp_path):
    from pyutils.models.convert import threedspeaker
    (tmp_path / "src").mkdir()
    torch.save({"conv.weight": torch.zeros(2, 2)}, tmp_path / "src" / "x.bin")
    with pytest.raises(ConversionError, match="not an importable 3D-Speaker model"):
        threedspeaker.convert(str(tmp_path / "src"))
