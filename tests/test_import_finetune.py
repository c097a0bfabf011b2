"""Starting from a trained model: large-margin fine-tuning (``training.init_head: keep``) and
adaptation with a fresh classifier and a frozen encoder (``training.freeze_encoder_epochs``);
``python -m pyutils.cli.import_model adapt-config`` writes the config that continues a model."""
import os

import numpy as np
import pytest
import torch
import yaml

from pyutils.training import checkpoint
from pyutils.training.trainer import train
from pyutils.utils.arkio import write_scp_dict
from pyutils.utils.fileio import write_lines

MODEL = {"name": "xvector", "embed_dim": 16, "frame_dims": [16, 16, 16, 16, 32]}


def data_dir(directory, speakers=3, feat_dim=30):
    rng = np.random.default_rng(0)
    directory.mkdir(parents=True, exist_ok=True)
    feats = {f"spk{s}-u{u}": (rng.normal(size=feat_dim) * 2 + rng.normal(size=(120, feat_dim)))
             .astype(np.float32) for s in range(speakers) for u in range(3)}
    write_scp_dict(str(directory / "feats.ark"), str(directory / "feats.scp"), feats)
    write_lines(str(directory / "utt2spk"), (f"{u} {u.split('-')[0]}" for u in sorted(feats)))
    return str(directory)


def config(path, epochs=1, **training):
    cfg = {"model": dict(MODEL), "loss": {"name": "aam", "scale": 30, "margin": 0.2},
           "data": {"min_chunk_frames": 50, "max_chunk_frames": 50, "batch_size": 4,
                    "chunks_per_epoch": 8},
           "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
           "training": {"epochs": epochs, "seed": 3, "num_threads": 1, **training}}
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("base")
    data = data_dir(root / "data")
    train(config(root / "c.yaml", epochs=2), data, str(root / "exp"))
    return root, data


def test_init_head_keep_continues_the_classifier(base, tmp_path, monkeypatch):
    root, data = base
    final = str(root / "exp" / "final.pt")
    last = checkpoint.load(str(root / "exp" / "models" / "epoch_2.pt"))
    from pyutils.training.selfsup import pretrained
    seen = {}
    original = pretrained.init_classifier

    def spy(model, loss_fn, path):
        original(model, loss_fn, path)
        seen["loss"] = {k: v.clone() for k, v in loss_fn.state_dict().items()}
    monkeypatch.setattr(pretrained, "init_classifier", spy)
    train(config(tmp_path / "lm.yaml", init_from=final, init_head="keep"), data,
          str(tmp_path / "lm"))
    assert seen["loss"] and all(torch.equal(v, last["loss"][k]) for k, v in seen["loss"].items())


def test_init_head_keep_refuses_other_speakers(base, tmp_path):
    root, _ = base
    other = data_dir(tmp_path / "four", speakers=4)
    with pytest.raises(ValueError, match=r"init_head: keep: .*epoch_2.pt: loss '.*' has shape "
                                         r"\(3, 16\), this run's \(4, 16\)"):
        train(config(tmp_path / "lm.yaml", init_from=str(root / "exp" / "final.pt"),
                     init_head="keep"), other, str(tmp_path / "lm"))


def test_frozen_encoder_epochs_train_only_the_classifier(base, tmp_path):
    """Epoch 1 frozen: encoder unchanged, classifier moved; epoch 2: the encoder moves too."""
    root, _ = base
    new_data = data_dir(tmp_path / "new", speakers=4)
    start = checkpoint.load(str(root / "exp" / "final.pt"))["model"]
    train(config(tmp_path / "ad.yaml", epochs=2, init_from=str(root / "exp" / "final.pt"),
                 freeze_encoder_epochs=1), new_data, str(tmp_path / "ad"))
    first = checkpoint.load(str(tmp_path / "ad" / "models" / "epoch_1.pt"))
    second = checkpoint.load(str(tmp_path / "ad" / "models" / "epoch_2.pt"))
    weights = [k for k in start if not k.startswith("head.") and k.endswith("weight")
               and start[k].dim() > 1]
    assert weights and all(torch.equal(first["model"][k], start[k]) for k in weights)
    assert not all(torch.equal(second["model"][k], start[k]) for k in weights)
    assert first["loss"]["weight"].shape[0] == 4       # a fresh classifier of the new speakers


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("family", ["resnet34", "ecapa_c512", "campplus", "eres2net"])
def test_large_margin_configs_continue_their_base(family):
    """conf/<family>_lm.yaml: the base network, ~6 s chunks, a larger margin, a smaller lr,
    fewer epochs, no speed perturbation, the classifier kept."""
    lm = yaml.safe_load(open(os.path.join(ROOT, "conf", f"{family}_lm.yaml")))
    base = yaml.safe_load(open(os.path.join(ROOT, "conf", f"{family}.yaml")))
    assert lm["model"] == base["model"] and lm["features"] == base["features"]
    assert lm["data"]["min_chunk_frames"] == lm["data"]["max_chunk_frames"] == 600
    assert lm["loss"]["margin"] > base["loss"]["margin"]
    assert lm["optimizer"]["lr"] <= base["optimizer"]["lr"] / 100
    assert lm["training"]["epochs"] < base["training"]["epochs"]
    assert lm["training"]["init_head"] == "keep"
    assert lm["training"]["init_from"] == f"exp/asc/{family}/final.pt"
    assert "speed" not in (lm.get("augmentation") or {})


def test_adapt_config_takes_model_and_front_end_from_the_checkpoint(base, tmp_path):
    from pyutils.models.convert import adapt
    root, _ = base
    final = str(root / "exp" / "final.pt")
    out = tmp_path / "init.yaml"
    assert adapt.main([os.path.join(ROOT, "conf", "adapt.yaml"), final, str(out)]) == 0
    cfg = yaml.safe_load(out.read_text())
    assert cfg["model"] == MODEL and cfg["training"]["init_from"] == os.path.abspath(final)
    assert cfg["training"]["freeze_encoder_epochs"] == 2 and cfg["loss"]["margin"] == 0.2
    before = out.stat().st_mtime_ns
    assert adapt.main([os.path.join(ROOT, "conf", "adapt.yaml"), final, str(out)]) == 0
    assert out.stat().st_mtime_ns == before           # unchanged content: not rewritten
    assert adapt.main([os.path.join(ROOT, "conf", "adapt.yaml"), str(tmp_path / "no.pt"),
                       str(tmp_path / "x.yaml")]) == 1


def test_imported_ge2e_adapts_with_a_fresh_classifier(tmp_path):
    """An imported model (Resemblyzer layout, small) through the adaptation recipe:
    conf/adapt.yaml + adapt (model and front-end from the import) + train, the encoder
    frozen for epoch 1; the result reloads for extraction."""
    import soundfile as sf
    from pyutils.cli import import_model
    from pyutils.extraction.extract import load_embedding_model
    from pyutils.models.convert import adapt
    small = os.path.join(ROOT, "tests", "fixtures", "parity", "resemblyzer_small.pt")
    assert import_model.main(["--from", "resemblyzer", small, str(tmp_path / "ge2e")]) == 0
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(1)
    t = np.arange(24000) / 16000
    wav, spk = [], []
    for s in range(3):
        for u in range(2):
            x = np.sin(2 * np.pi * (120 + 60 * s) * t) * 6000 + rng.normal(size=t.size) * 500
            sf.write(str(data / f"s{s}u{u}.wav"), x.astype(np.int16), 16000)
            wav.append(f"s{s}-u{u} {data / f's{s}u{u}.wav'}")
            spk.append(f"s{s}-u{u} s{s}")
    write_lines(str(data / "wav.scp"), wav)
    write_lines(str(data / "utt2spk"), spk)
    base = yaml.safe_load(open(os.path.join(ROOT, "conf", "adapt.yaml")))
    base["data"] = {"min_chunk_frames": 100, "max_chunk_frames": 100, "batch_size": 3,
                    "chunks_per_epoch": 6}
    base["training"].update(epochs=2, freeze_encoder_epochs=1, num_threads=1)
    (tmp_path / "adapt.yaml").write_text(yaml.safe_dump(base))
    final = str(tmp_path / "ge2e" / "final.pt")
    assert adapt.main([str(tmp_path / "adapt.yaml"), final, str(tmp_path / "init.yaml")]) == 0
    features = yaml.safe_load((tmp_path / "init.yaml").read_text())["features"]
    assert features == {"type": "waveform", "prepare": "ge2e"}
    train(str(tmp_path / "init.yaml"), str(data), str(tmp_path / "exp"))
    start = checkpoint.load(final)["model"]
    first = checkpoint.load(str(tmp_path / "exp" / "models" / "epoch_1.pt"))
    second = checkpoint.load(str(tmp_path / "exp" / "models" / "epoch_2.pt"))
    assert torch.equal(first["model"]["lstm.weight_ih_l0"], start["lstm.weight_ih_l0"])
    assert not torch.equal(second["model"]["lstm.weight_ih_l0"], start["lstm.weight_ih_l0"])
    assert first["loss"]["weight"].shape == (3, 16)
    model = load_embedding_model(str(tmp_path / "exp" / "final.pt"))
    with torch.no_grad():
        emb = model(torch.from_numpy(np.asarray(sf.read(str(data / "s0u0.wav"),
                                                        dtype="int16")[0], np.float32))[None])
    assert emb.shape == (1, 16) and torch.isfinite(emb).all()
