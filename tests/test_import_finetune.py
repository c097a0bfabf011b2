"""Starting from a trained model: large-margin fine-tuning (``training.init_head: keep``) and
adaptation with a fresh classifier and a frozen encoder (``training.freeze_encoder_epochs``);
``python -m pyutils.cli.import_model adapt-config`` writes the config that continues a model."""
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
