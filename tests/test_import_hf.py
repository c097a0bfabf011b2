"""``import_model --from hf``: the transformers *ForXVector conversion behind the same command
(WavLM here; wav2vec 2.0 in test_ssl_encoder; UniSpeech-SAT, both layer-norm layouts, here)."""
import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file
from torch import nn

from pyutils.cli import import_model
from pyutils.extraction.extract import load_embedding_model
from pyutils.models.ssl import SSLSpeakerModel
from pyutils.models.ssl.hf_convert import load_xvector_checkpoint
from tests.test_ssl_encoder import TDNN, build_tiny, hf_inputs, transformers, waveforms


def test_import_model_from_hf_equals_transformers(tmp_path, capsys):
    path = build_tiny("wavlm", tmp_path / "hf", xvector=True)
    assert import_model.main(["--from", "hf", path, str(tmp_path / "out" / "final.pt")]) == 0
    assert (tmp_path / "out" / ".done").exists()
    model = load_embedding_model(str(tmp_path / "out" / "final.pt"))
    x = waveforms(1, 12000, seed=4)
    hf = transformers.WavLMForXVector.from_pretrained(path).eval()
    with torch.no_grad():
        ours, theirs = model(x)[0].numpy(), hf(hf_inputs(x)).embeddings[0].numpy()
    assert np.abs(ours - theirs).max() < 1e-5
    assert import_model.main(["--from", "hf", path, str(tmp_path / "o2"),
                              "--checkpoint", "x.pt"]) == 1
    assert "do not apply to --from hf" in capsys.readouterr().err


def build_unispeech_sat(path, stable, head=True, seed=1):
    """A random UniSpeechSatForXVector (hidden 32, 2 layers, test_ssl_encoder's TDNN) saved
    in ``path``.  ``stable``: the large models' layout (``do_stable_layer_norm``: pre-LN
    encoder, layer-norm CNN, padding mask, normalised input); else the base models' (post-LN,
    group-norm CNN, raw input).  ``head=False``: the pretraining model (quantizer, speaker
    projection, no x-vector head).  Every weight random, layer norms and layer weights too."""
    torch.manual_seed(seed)
    norm = "layer" if stable else "group"
    config = transformers.UniSpeechSatConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(32,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
        feat_extract_norm=norm, do_stable_layer_norm=stable, layerdrop=0.0, mask_time_prob=0.0,
        xvector_output_dim=40, use_weighted_layer_sum=True, num_labels=5, codevector_dim=16,
        proj_codevector_dim=16, num_clusters=8, **TDNN)
    cls = transformers.UniSpeechSatForXVector if head else transformers.UniSpeechSatForPreTraining
    model = cls(config)
    with torch.no_grad():   # PyTorch's default init: outputs of order 1, not transformers' 0.02
        for module in model.modules():
            if (isinstance(module, (nn.Linear, nn.Conv1d))
                    and not nn.utils.parametrize.is_parametrized(module)):
                module.reset_parameters()
            if isinstance(module, (nn.LayerNorm, nn.GroupNorm)):
                module.weight.normal_(1.0, 0.2)
                module.bias.normal_(0.0, 0.2)
        if head:
            model.layer_weights.copy_(torch.randn(3))
    model.save_pretrained(path)
    transformers.Wav2Vec2FeatureExtractor(do_normalize=stable, return_attention_mask=stable
                                          ).save_pretrained(path)
    return str(path)


@pytest.mark.parametrize("stable", [False, True], ids=["post_ln", "stable_layer_norm"])
def test_import_unispeech_sat_xvector_equals_transformers(tmp_path, stable):
    path = build_unispeech_sat(tmp_path / "hf", stable)
    out = tmp_path / "out"
    assert import_model.main(["--from", "hf", path, str(out)]) == 0
    config = yaml.safe_load(open(out / "config.yaml"))["model"]
    assert config["frontend"]["type"] == "unispeech_sat" and config["frontend"]["layer_weights"]
    model = load_embedding_model(str(out / "final.pt"))
    assert model.frontend.use_padding_mask is stable and model.frontend.do_normalize is stable
    hf = transformers.UniSpeechSatForXVector.from_pretrained(path).eval()
    x = waveforms(2, 12000, seed=5)
    with torch.no_grad():
        theirs = hf(hf_inputs(x, do_normalize=stable))
        ours = model(x)
        logits = model.head(ours)
    scale = theirs.embeddings.abs().max().item()
    assert scale > 0.05                                        # not a vanishing output
    assert (ours - theirs.embeddings).abs().max().item() < 1e-4 * scale
    assert (logits - theirs.logits).abs().max().item() < 1e-4 * theirs.logits.abs().max().item()
    # a model package's network: built from the inline config.json, no directory, same output
    packaged = model.self_contained_config(config)
    assert "path" not in packaged["frontend"]
    rebuilt = SSLSpeakerModel(frontend=packaged["frontend"], head=packaged["head"])
    rebuilt.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(x), ours)


def test_unispeech_sat_in_the_2021_layout_imports_the_same(tmp_path):
    """The released checkpoints (microsoft/unispeech-sat-base-plus-sv) are a pytorch_model.bin
    whose positional convolution is weight_g/weight_v: transformers renames them on load."""
    path = build_unispeech_sat(tmp_path / "hf", stable=False)
    hf = transformers.UniSpeechSatForXVector.from_pretrained(path).eval()
    weights = load_file(f"{path}/model.safetensors")
    conv = "unispeech_sat.encoder.pos_conv_embed.conv."
    weights[conv + "weight_g"] = weights.pop(conv + "parametrizations.weight.original0")
    weights[conv + "weight_v"] = weights.pop(conv + "parametrizations.weight.original1")
    (tmp_path / "hf" / "model.safetensors").unlink()
    torch.save(weights, f"{path}/pytorch_model.bin")
    model, _ = load_xvector_checkpoint(path)
    x = waveforms(1, 12000, seed=6)
    with torch.no_grad():
        theirs = hf(hf_inputs(x, do_normalize=False)).embeddings
        assert (model(x) - theirs).abs().max().item() < 1e-4 * theirs.abs().max().item()


def test_unispeech_sat_checkpoint_that_does_not_fit_is_one_line_naming_key_and_shapes(
        tmp_path, capsys):
    path = build_unispeech_sat(tmp_path / "hf", stable=False)
    weights = load_file(f"{path}/model.safetensors")
    weights["projector.weight"] = weights["projector.weight"][:, :16].contiguous()
    save_file(weights, f"{path}/model.safetensors", metadata={"format": "pt"})
    capsys.readouterr()                           # the builders' progress bars
    assert import_model.main(["--from", "hf", path, str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "key 'projector.weight' has shape (48, 16)" in err and "expects (48, 32)" in err
    # the pretraining model (quantizer, speaker projection): no x-vector head to import
    base = build_unispeech_sat(tmp_path / "base", stable=False, head=False)
    capsys.readouterr()
    assert import_model.main(["--from", "hf", base, str(tmp_path / "out2")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "key 'classifier.bias' (40,) is missing" in err
    assert "not a complete UniSpeechSatForXVector checkpoint" in err
    assert not (tmp_path / "out2" / "final.pt").exists()
