"""SSL front-ends (WavLM, wav2vec 2.0, HuBERT through transformers) and the
WavLMForXVector / Wav2Vec2ForXVector compatibility.

Every model here is a tiny randomly initialised transformers config (hidden
size 32, 2 layers) saved with ``save_pretrained`` into a temp dir: loading,
the layer weighting, frozen / partly frozen / fine-tuned gradients, the
optimiser's front-end learning rate, input normalisation, the x-vector parity
with transformers (in Python and through steps/extract_embeddings.sh), the
dilation-aware TDNN lengths, and the offline errors.
"""
import json
import os
import socket
import subprocess
import sys

import kaldiio
import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

transformers = pytest.importorskip("transformers")

from pyutils.models import build_model                                     # noqa: E402
from pyutils.models.ssl import PretrainedModelMissing, SSLFrontend, SSLSpeakerModel  # noqa: E402
from pyutils.models.ssl.hf_convert import load_xvector_checkpoint, write_model_dir  # noqa: E402
from pyutils.training.scheduler import build_optimizer, build_scheduler    # noqa: E402
from tests.conftest import ROOT                                            # noqa: E402

TDNN = dict(tdnn_dim=[48, 48, 48, 48, 96], tdnn_kernel=[5, 3, 3, 1, 1],
            tdnn_dilation=[1, 2, 3, 1, 1])       # the base-sv card's kernels and dilations


def build_tiny(kind, path, xvector=False, norm="group", do_normalize=True, seed=0):
    """A random transformers model of ``kind`` (hidden 32, 2 layers) saved in ``path``."""
    torch.manual_seed(seed)
    config = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=64, conv_dim=(32,) * 7, num_conv_pos_embeddings=16,
                  num_conv_pos_embedding_groups=4, feat_extract_norm=norm,
                  do_stable_layer_norm=norm == "layer", layerdrop=0.0, mask_time_prob=0.0)
    if kind == "wavlm":
        config.update(num_buckets=16, max_bucket_distance=50)
    if xvector:
        config.update(xvector_output_dim=40, use_weighted_layer_sum=True, num_labels=5, **TDNN)
    names = {"wavlm": ("WavLMConfig", "WavLMForXVector" if xvector else "WavLMModel"),
             "wav2vec2": ("Wav2Vec2Config", "Wav2Vec2ForXVector" if xvector else "Wav2Vec2Model"),
             "hubert": ("HubertConfig", "HubertModel")}[kind]
    model = getattr(transformers, names[1])(getattr(transformers, names[0])(**config))
    with torch.no_grad():   # PyTorch's default init: outputs of order 1, not transformers' 0.02
        for module in model.modules():
            if (isinstance(module, (nn.Linear, nn.Conv1d))
                    and not nn.utils.parametrize.is_parametrized(module)):
                module.reset_parameters()
        if xvector:
            model.layer_weights.copy_(torch.randn(3))
    model.save_pretrained(path)
    transformers.Wav2Vec2FeatureExtractor(
        do_normalize=do_normalize, return_attention_mask=norm == "layer").save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Build each tiny checkpoint once per module: tiny(kind, xvector=..., norm=...)."""
    cache = {}

    def get(kind="wavlm", xvector=False, norm="group", do_normalize=True):
        key = (kind, xvector, norm, do_normalize)
        if key not in cache:
            name = "-".join(map(str, key))
            cache[key] = build_tiny(kind, tmp_path_factory.mktemp(name), xvector, norm,
                                    do_normalize)
        return cache[key]
    return get


def waveforms(batch=2, samples=8000, seed=0):
    """(batch, samples) int16-scale noise, as the toolkit's waveform sources give."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, samples, generator=gen) * 3000.0).round()


def hf_inputs(x, do_normalize=True):
    """What transformers' feature extractor gives for int16-scale x (no padding)."""
    extractor = transformers.Wav2Vec2FeatureExtractor(do_normalize=do_normalize)
    out = extractor([w.numpy() / 32768.0 for w in x], sampling_rate=16000, return_tensors="pt")
    return out.input_values


def ssl_model(path, kind="wavlm", head=None, **frontend):
    return SSLSpeakerModel(frontend={"type": kind, "path": path, **frontend},
                           head=head or {"name": "xvector_hf", "embed_dim": 40, **TDNN})


@pytest.mark.parametrize("kind", ["wavlm", "wav2vec2", "hubert"])
def test_loading_gives_the_encoders_hidden_states(tiny, kind):
    path = tiny(kind)
    model = ssl_model(path, kind).eval()
    encoder = getattr(transformers, {"wavlm": "WavLMModel", "wav2vec2": "Wav2Vec2Model",
                                     "hubert": "HubertModel"}[kind]).from_pretrained(path).eval()
    x = waveforms()
    with torch.no_grad():
        features, frames = model.frontend(x)
        hidden = encoder(hf_inputs(x), output_hidden_states=True).hidden_states
        emb = model(x)
    assert len(hidden) == model.frontend.num_layers == 3 and frames is None
    # uniform initial weights: the plain mean of the 3 hidden states
    assert torch.allclose(features, torch.stack(hidden).mean(dim=0), atol=1e-5)
    assert features.shape == (2, (8000 - 400) // 320 + 1, 32)       # 25 frames of 20 ms
    assert model.frontend.receptive_field == 400 and model.frontend.frame_shift == 320
    assert emb.shape == (2, 40) and model.head(emb).shape == (2, 40)
    assert model.input_type == "waveform" and model.frame_shift == 160   # option unit: 10 ms
    # built by name from a config, as the trainer and extraction do
    built = build_model("ssl", feat_dim=1, frontend={"type": kind, "path": path},
                        head={"name": "xvector", "embed_dim": 24,
                              "frame_dims": [16, 16, 16, 16, 32]})
    assert built.speaker_net.frame_layers[0].affine.in_channels == 32   # hidden size


@pytest.mark.parametrize("head", [
    {"name": "ecapa", "channels": 64, "mfa_channels": 96, "embed_dim": 24,
     "se_bottleneck": 16, "attention_bottleneck": 16},
    {"name": "resnet18", "m_channels": 4, "embed_dim": 24},
    {"name": "xvector", "embed_dim": 24, "frame_dims": [16, 16, 16, 16, 32]}])
def test_any_toolkit_head_and_margin_loss_train_on_the_weighted_features(tiny, head):
    from pyutils.losses import build_loss
    torch.manual_seed(0)
    model = ssl_model(tiny("wavlm"), head=head, freeze="cnn").train()
    loss_fn = build_loss("aam", model.head_dim, 3, scale=30.0, margin=0.2)
    loss, _ = loss_fn(model.head(model(waveforms(batch=4))), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    assert torch.isfinite(loss) and model.frontend.layer_weights.grad.abs().sum() > 0
    assert model.frontend.model.encoder.layers[0].feed_forward.output_dense.weight.grad is not None
    assert model.embed_dim == 24
    with pytest.raises(ValueError, match="takes no padding lengths"):
        model(waveforms(), torch.tensor([8000, 6000]))     # only xvector_hf masks padding
    with pytest.raises(ValueError, match="unknown model.head.name 'wav2spk'"):
        ssl_model(tiny("wavlm"), head={"name": "wav2spk"})     # a waveform network is no head


def test_layer_weights_are_a_softmax_from_uniform_and_learn(tiny):
    model = ssl_model(tiny("wavlm")).train()
    front = model.frontend
    assert torch.equal(front.layer_weights.detach(), torch.zeros(3))       # s3prl: zeros
    assert torch.allclose(front.weights(), torch.full((3,), 1 / 3))
    with torch.no_grad():
        front.layer_weights.copy_(torch.tensor([2.0, -1.0, 0.5]))
    x = waveforms()
    front.eval()
    with torch.no_grad():
        features, _ = front(x)
        hidden = front.model(hf_inputs(x), output_hidden_states=True).hidden_states
    expected = sum(w * h for w, h in zip(torch.softmax(torch.tensor([2.0, -1.0, 0.5]), 0), hidden))
    assert torch.allclose(features, expected, atol=1e-5)
    assert not torch.allclose(features, hidden[-1], atol=1e-3)
    model.train()
    out = model.head(model(x))
    (out * torch.randn_like(out)).sum().backward()
    assert front.layer_weights.grad is not None and front.layer_weights.grad.abs().sum() > 0
    # without layer weights: the last hidden state
    last = SSLFrontend("wavlm", tiny("wavlm"), layer_weights=False).eval()
    with torch.no_grad():
        assert torch.allclose(last(x)[0], hidden[-1], atol=1e-5)
    assert last.layer_weights is None


def _grads(model, x):
    model.zero_grad(set_to_none=True)
    out = model.head(model(x))
    (out * torch.randn_like(out)).sum().backward()
    encoder = model.frontend.model
    has = lambda module: [p.grad is not None and p.grad.abs().sum() > 0
                          for p in module.parameters()]
    return {"cnn": has(encoder.feature_extractor), "layer0": has(encoder.encoder.layers[0]),
            "layer1": has(encoder.encoder.layers[1]),
            "weights": [model.frontend.layer_weights.grad is not None
                        and model.frontend.layer_weights.grad.abs().sum() > 0],
            "head": has(model.speaker_net)}


@pytest.mark.parametrize("freeze,frozen", [("none", set()), ("cnn", {"cnn"}),
                                           ("first_1", {"cnn", "layer0"}),
                                           ("all", {"cnn", "layer0", "layer1"})])
def test_frozen_parts_get_no_gradient_and_the_rest_does(tiny, freeze, frozen):
    torch.manual_seed(0)
    model = ssl_model(tiny("wavlm"), freeze=freeze).train()
    grads = _grads(model, waveforms())
    for part, flags in grads.items():
        if part in frozen:
            assert not any(flags), (freeze, part)
            module = {"cnn": model.frontend.model.feature_extractor,
                      "layer0": model.frontend.model.encoder.layers[0],
                      "layer1": model.frontend.model.encoder.layers[1]}[part]
            assert not any(p.requires_grad for p in module.parameters())
        else:
            assert all(flags), (freeze, part)      # layer weights and head: always trained
    # a fully frozen encoder stays in eval mode (no dropout) while the head trains
    assert model.frontend.model.training == (freeze != "all") and model.speaker_net.training


def test_bad_freeze_value_is_refused(tiny):
    with pytest.raises(ValueError, match="all, cnn, first_N or none"):
        SSLFrontend("wavlm", tiny("wavlm"), freeze="half")
    with pytest.raises(ValueError, match="2 layers"):
        SSLFrontend("wavlm", tiny("wavlm"), freeze="first_3")


def test_optimizer_gives_the_front_end_its_own_learning_rate(tiny):
    model = ssl_model(tiny("wavlm"), freeze="cnn", lr=0.001)
    optimizer = build_optimizer(model, name="sgd", lr=0.1, momentum=0.9)
    head_group, front_group = optimizer.param_groups
    assert (head_group["lr"], front_group["lr"]) == (0.1, 0.001)
    ids = lambda params: {id(p) for p in params}
    encoder = model.frontend.model
    assert ids(front_group["params"]) == ids(p for p in encoder.parameters() if p.requires_grad)
    assert not ids(front_group["params"]) & ids(encoder.feature_extractor.parameters())  # frozen
    assert ids(head_group["params"]) == ids(model.speaker_net.parameters()) | {
        id(model.frontend.layer_weights)}
    scheduler = build_scheduler(optimizer, 100, warmup_steps=10)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.01, 0.0001])
    optimizer.step()
    scheduler.step()
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.02, 0.0002])
    # without frontend.lr: one group; plain parameter lists work as before
    assert len(build_optimizer(ssl_model(tiny("wavlm")), lr=0.1).param_groups) == 1
    assert len(build_optimizer(nn.Linear(2, 2).parameters(), name="adam").param_groups) == 1


@pytest.mark.parametrize("do_normalize", [True, False])
def test_input_normalisation_follows_the_saved_feature_extractor(tiny, do_normalize):
    front = SSLFrontend("wavlm", tiny("wavlm", do_normalize=do_normalize))
    assert front.do_normalize is do_normalize
    x = waveforms(samples=6000)
    assert torch.allclose(front.normalise(x, None), hf_inputs(x, do_normalize), atol=1e-5)
    # padded batch: statistics of the valid samples only, padding zeroed, as transformers
    lengths = torch.tensor([6000, 4500])
    extractor = transformers.Wav2Vec2FeatureExtractor(do_normalize=do_normalize)
    expected = extractor([x[0].numpy() / 32768.0, x[1, :4500].numpy() / 32768.0],
                         sampling_rate=16000, padding=True, return_attention_mask=True,
                         return_tensors="pt").input_values
    padded = x.clone()
    padded[1, 4500:] = 0.0
    assert torch.allclose(front.normalise(padded, lengths), expected, atol=1e-5)


@pytest.mark.parametrize("norm", ["group", "layer"])
def test_padding_mask_only_for_layer_norm_models(tiny, norm):
    front = SSLFrontend("wavlm", tiny("wavlm", norm=norm)).eval()
    seen = []
    encoder_forward = front.model.forward

    def spy(*args, **kwargs):
        seen.append(kwargs.get("attention_mask"))
        return encoder_forward(*args, **kwargs)
    front.model.forward = spy
    x = waveforms(samples=6000)
    x[1, 4000:] = 0.0
    with torch.no_grad():
        _, frames = front(x, torch.tensor([6000, 4000]))
        front(x)
    assert front.use_padding_mask == (norm == "layer")
    if norm == "group":     # zero-padded input, no mask (as transformers documents)
        assert seen == [None, None]
    else:
        assert seen[0].tolist() == [[1] * 6000, [1] * 4000 + [0] * 2000] and seen[1] is None
    assert frames.tolist() == [(6000 - 400) // 320 + 1, (4000 - 400) // 320 + 1]


@pytest.mark.parametrize("kind", ["wavlm", "wav2vec2"])
def test_xvector_embeddings_equal_transformers(tiny, kind):
    path = tiny(kind, xvector=True)
    hf = getattr(transformers, {"wavlm": "WavLMForXVector",
                                "wav2vec2": "Wav2Vec2ForXVector"}[kind]).from_pretrained(path).eval()
    ours, config = load_xvector_checkpoint(path)
    assert config["head"]["tdnn_dilation"] == [1, 2, 3, 1, 1]
    assert config["frontend"]["layer_weights"] is True
    x = waveforms(batch=3, samples=16000, seed=2)
    with torch.no_grad():
        expected = hf(hf_inputs(x)).embeddings
        got = ours(x)
    assert expected.abs().max() > 0.05                        # not a vanishing output
    assert (got - expected).abs().max().item() < 1e-5
    # the classifier layer too (the loss's input), and AM-softmax s=30 m=0.4 is
    # transformers' AMSoftmaxLoss once given its class weights (stored transposed there)
    from pyutils.losses import build_loss
    labels = torch.tensor([0, 3, 1])
    am = build_loss("am", 40, 5, scale=30.0, margin=0.4)
    with torch.no_grad():
        out = hf(hf_inputs(x), labels=labels)
        assert (ours.head(got) - out.logits).abs().max() < 1e-5
        am.weight.copy_(hf.objective.weight.T)
        assert abs(am(ours.head(got), labels)[0].item() - out.loss.item()) < 1e-5


def test_tdnn_lengths_count_the_dilation_and_only_padding_differs(tiny):
    """transformers' _get_tdnn_output_lengths ignores dilation: with padding its
    pooling takes 6 frames computed from padding; ours does not.  The unpadded
    utterance of the same batch comes out identical in both."""
    path = tiny("wavlm", xvector=True, norm="layer")              # takes a padding mask
    hf = transformers.WavLMForXVector.from_pretrained(path).eval()
    ours, _ = load_xvector_checkpoint(path)
    head = ours.speaker_net
    frames = torch.tensor([49, 30])
    assert (hf._get_tdnn_output_lengths(frames) - head.output_lengths(frames)).tolist() == [6, 6]
    assert head.receptive_field == 15 and head.output_lengths(torch.tensor(15)).item() == 1
    x = waveforms(samples=16000, seed=3)
    lengths = torch.tensor([16000, 10000])
    x[1, 10000:] = 0.0
    extractor = transformers.Wav2Vec2FeatureExtractor(do_normalize=True)
    batch = extractor([x[0].numpy() / 32768.0, x[1, :10000].numpy() / 32768.0],
                      sampling_rate=16000, padding=True, return_attention_mask=True,
                      return_tensors="pt")
    with torch.no_grad():
        theirs = hf(batch.input_values, attention_mask=batch.attention_mask).embeddings
        mine = ours(x, lengths)
        alone = ours(x[1:, :10000])
        theirs_alone = hf(hf_inputs(x[1:, :10000])).embeddings
    assert (mine[0] - theirs[0]).abs().max() < 1e-5          # unpadded: the same
    ours_dev = (mine[1] - alone[0]).abs().max()              # measured: 1e-8
    theirs_dev = (theirs[1] - theirs_alone[0]).abs().max()   # measured: 3e-4
    assert ours_dev < 1e-5                                   # ours: padding is invisible
    assert theirs_dev > 1e-4 and theirs_dev > 100 * ours_dev  # transformers': it is not
    assert (alone[0] - theirs_alone[0]).abs().max() < 1e-5   # and alone both agree


def _no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_missing_or_incomplete_checkpoint_is_a_clear_offline_error(tiny, tmp_path, monkeypatch):
    _no_network(monkeypatch)
    missing = tmp_path / "wavlm-base-plus"
    with pytest.raises(PretrainedModelMissing) as err:
        SSLFrontend("wavlm", str(missing))
    message = str(err.value)
    assert str(missing) in message and "no such directory" in message
    assert f"huggingface-cli download microsoft/wavlm-base-plus --local-dir {missing}" in message
    assert "frontend.path" in message
    with pytest.raises(PretrainedModelMissing, match="frontend.path is not set"):
        SSLFrontend("hubert", None)
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    (incomplete / "config.json").write_text('{"model_type": "wavlm"}')
    with pytest.raises(PretrainedModelMissing, match="missing preprocessor_config.json, "
                                                     "model.safetensors"):
        SSLFrontend("wavlm", str(incomplete))
    with pytest.raises(ValueError, match="model_type 'wavlm' is not a hubert model"):
        SSLFrontend("hubert", tiny("wavlm"))
    with pytest.raises(PretrainedModelMissing, match="no such directory .an XVector checkpoint.*"
                       "huggingface-cli download microsoft/wavlm-base-sv --local-dir"):
        load_xvector_checkpoint(str(missing))
    # a complete directory loads with the network refused
    assert SSLFrontend("wavlm", tiny("wavlm")).num_layers == 3


def write_wavs(data_dir, waves):
    """A data dir of 16-bit wav files (one speaker per file pair)."""
    data_dir.mkdir()
    lines, spk = [], []
    for i, wave in enumerate(waves):
        utt = f"spk{i // 2}-u{i}"
        path = data_dir / f"{utt}.wav"
        sf.write(str(path), wave.numpy().astype(np.int16), 16000, subtype="PCM_16")
        lines.append(f"{utt} {path}")
        spk.append(f"{utt} spk{i // 2}")
    (data_dir / "wav.scp").write_text("\n".join(lines) + "\n")
    (data_dir / "utt2spk").write_text("\n".join(spk) + "\n")
    speakers = {}
    for line in spk:
        utt, s = line.split()
        speakers.setdefault(s, []).append(utt)
    (data_dir / "spk2utt").write_text("".join(f"{s} {' '.join(u)}\n" for s, u in speakers.items()))


@pytest.mark.slow       # ~30 s on the shared 2-core CPU: the job's process imports transformers
def test_extraction_step_gives_transformers_embeddings(tiny, tmp_path):
    """A converted WavLMForXVector through steps/extract_embeddings.sh --input waveform."""
    path = tiny("wavlm", xvector=True)
    exp = tmp_path / "exp" / "wavlm_sv"
    final = write_model_dir(path, str(exp))
    assert (exp / ".done").exists() and (exp / "config.yaml").exists()
    waves = [waveforms(1, n, seed=10 + n)[0] for n in (16000, 12000, 20000, 9000)]
    write_wavs(tmp_path / "data", waves)
    out = tmp_path / "emb"
    result = subprocess.run(["steps/extract_embeddings.sh", "--nj", "1", "--input", "waveform",
                             final, str(tmp_path / "data"), str(out)],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    got = dict(kaldiio.load_scp(str(out / "xvector.scp")))
    hf = transformers.WavLMForXVector.from_pretrained(path).eval()
    assert len(got) == 4
    for i, wave in enumerate(waves):
        with torch.no_grad():
            expected = hf(hf_inputs(wave[None])).embeddings[0].numpy()
        assert np.abs(got[f"spk{i // 2}-u{i}"] - expected).max() < 1e-5, i


@pytest.mark.slow       # ~40 s on the shared 2-core CPU (90 s under load): the ONNX export
def test_ssl_package_runs_with_its_checkpoint_dir_gone(tmp_path):
    """A package of a converted WavLMForXVector holds everything it needs (the encoder's
    config.json and preprocessor_config.json inline in model.pt, every weight): with
    the checkpoint directory moved away, `sv embed` gives the PyTorch model's embeddings
    on both runtimes, for a 1 s file and one shorter than the model's receptive field.
    (Before: the ONNX export failed on a duplicate value name, "embedding", and the
    PyTorch runtime asked to download microsoft/wavlm-base-plus.)"""
    from pyutils.deploy.package_build import build_package
    from pyutils.deploy.torch_runtime import TorchEmbedder, build_network
    from pyutils.training import checkpoint
    ckpt = build_tiny("wavlm", tmp_path / "wavlm-sv", xvector=True)
    final = write_model_dir(ckpt, str(tmp_path / "exp"))
    conf = os.path.join(ROOT, "conf")
    manifest = build_package(final, str(tmp_path / "pkg"), os.path.join(conf, "mfcc.conf"),
                             os.path.join(conf, "vad.conf"), os.path.join(conf, "cmvn.conf"))
    waves = [waveforms(1, n, seed=n)[0].numpy().astype(np.int16) for n in (16000, 4500)]
    wavs = []
    for i, wave in enumerate(waves):
        wavs.append(str(tmp_path / f"u{i}.wav"))
        sf.write(wavs[-1], wave, 16000, subtype="PCM_16")
    model = TorchEmbedder(build_network(checkpoint.load(final)), 10000 * 160, 25 * 160)
    expected = [model.embed(w.astype(np.float32)) for w in waves]
    os.rename(ckpt, str(tmp_path / "moved-away"))
    for runtime in ("torch", "onnx"):
        if runtime == "onnx":
            assert sorted(manifest["exports"]) == ["onnx", "torchscript"], \
                manifest.get("export_errors")
        out = str(tmp_path / f"{runtime}.npy")
        result = subprocess.run([sys.executable, "-m", "pyutils.cli", "embed", "-q", "-p",
                                 str(tmp_path / "pkg"), "--runtime", runtime, *wavs, "-o", out],
                                cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-3000:]
        for got, want in zip(np.load(out), expected):
            assert np.all(np.isfinite(want))
            assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-4, runtime
    frontend = manifest["model"]["config"]["frontend"]
    assert "path" not in frontend and frontend["encoder_config"]["model_type"] == "wavlm"
    assert frontend["feature_extractor"]["do_normalize"] is True


def test_ssl_package_of_the_old_layout_without_its_dir_is_a_one_line_error(tmp_path, capsys):
    """A package whose model.pt still names the checkpoint directory (as packages were
    built before they carried the encoder's config): with the directory gone, `sv embed`
    says what is wrong and what to do in one line, no traceback."""
    from pyutils.cli.sv import main
    from pyutils.deploy.package import sha256
    from pyutils.deploy.package_build import build_package
    from pyutils.training import checkpoint
    ckpt = build_tiny("wavlm", tmp_path / "wavlm-sv", xvector=True)
    final = write_model_dir(ckpt, str(tmp_path / "exp"))
    conf = os.path.join(ROOT, "conf")
    pkg = str(tmp_path / "pkg")
    build_package(final, pkg, os.path.join(conf, "mfcc.conf"), os.path.join(conf, "vad.conf"),
                  os.path.join(conf, "cmvn.conf"), export=False)
    state = checkpoint.load(final)                  # the old model.pt: frontend.path
    torch.save({"model": state["model"], "config": {"model": state["config"]["model"],
                "features": state["config"]["features"]}, "feat_dim": 1},
               os.path.join(pkg, "model.pt"))
    manifest_path = os.path.join(pkg, "manifest.json")
    manifest = json.load(open(manifest_path))
    manifest["files"]["model.pt"]["sha256"] = sha256(os.path.join(pkg, "model.pt"))
    json.dump(manifest, open(manifest_path, "w"))
    os.rename(ckpt, str(tmp_path / "moved-away"))
    wav = str(tmp_path / "u.wav")
    sf.write(wav, waveforms(1, 8000)[0].numpy().astype(np.int16), 16000, subtype="PCM_16")
    capsys.readouterr()                             # the build's progress lines
    assert main(["embed", "-q", "-p", pkg, wav, "-o", str(tmp_path / "e.npy")]) == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "Traceback" not in error
    assert "model.pt names a pretrained checkpoint directory" in error
    assert f"{ckpt}: no such directory" in error and "rebuild the package" in error


def results_rows(path):
    """{backend: (EER %, minDCF p=0.01)} from stage 7's results.json."""
    with open(path) as handle:
        return {r["backend"]: (100 * r["eer"], r["min_dcf_0.01"]) for r in json.load(handle)}


def run_recipe(tmp_path, asc_root, model, config, *extra):
    cmd = ["./run.sh", "--corpus-root", asc_root, "--data", str(tmp_path / "data"),
           "--exp", str(tmp_path / "exp"), "--train-speakers", "1-3", "--eval-speakers", "19-21",
           "--reps", "01,02", "--nj", "1", "--model", model, "--train-config", str(config),
           "--stop-stage", "7", *extra]       # (stage 8, packaging, is not part of this test)
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)


@pytest.mark.slow      # ~5 min on the shared 2-core CPU (each job imports transformers)
def test_recipe_trains_a_tiny_ssl_model_and_scores_a_converted_xvector(tiny, tmp_path, asc_root):
    """run.sh stages 0-7 on an ASC slice (3 + 3 speakers, 2 repetitions, 276 trials) with
    a tiny WavLM front-end, one epoch; then a converted WavLMForXVector through 4-7."""
    import yaml
    config = yaml.safe_load(open(os.path.join(ROOT, "conf", "wavlm_xvector.yaml")))
    config["model"]["frontend"]["path"] = str(tmp_path / "not-downloaded")
    config["model"]["head"].update(TDNN, embed_dim=40)
    config["data"].update(min_chunk_frames=100, max_chunk_frames=100, batch_size=8,
                          chunks_per_epoch=32)
    config["scheduler"].update(warmup_steps=2)
    config["training"].update(epochs=1, device="cpu")
    path = tmp_path / "tiny_wavlm.yaml"
    path.write_text(yaml.safe_dump(config))
    # the checkpoint is missing: stage 3 says how to get it, no network is tried
    failed = run_recipe(tmp_path, asc_root, "tiny_wavlm", path, "--stop-stage", "3")
    assert failed.returncode != 0
    assert "huggingface-cli download microsoft/wavlm-base-plus" in failed.stdout + failed.stderr

    config["model"]["frontend"]["path"] = tiny("wavlm")
    path.write_text(yaml.safe_dump(config))
    result = run_recipe(tmp_path, asc_root, "tiny_wavlm", path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    exp = tmp_path / "exp" / "tiny_wavlm"
    summary = json.load(open(exp / "train_summary.json"))
    assert summary["epochs"] == 1 and summary["chunks"] == 32 and summary["model"] == "ssl"
    assert len(open(exp / "embeddings_eval" / "xvector.scp").readlines()) == 24
    rows = results_rows(exp / "results.json")
    assert {"cosine", "plda"} <= set(rows)
    for backend, (eer, min_dcf) in rows.items():   # (one tiny epoch: near chance is fine)
        assert 0.0 <= eer <= 100.0 and 0.0 <= min_dcf <= 1.0 + 1e-9, (backend, eer, min_dcf)
    # the separate front-end learning rate reached the optimiser (2 param groups)
    state = torch.load(exp / "models" / "epoch_1.pt", map_location="cpu", weights_only=False)
    assert len(state["optimizer"]["param_groups"]) == 2

    # a WavLMForXVector checkpoint, converted, scored by stages 4-7
    sv = tmp_path / "exp" / "tiny_wavlm_sv"
    write_model_dir(tiny("wavlm", xvector=True), str(sv))
    scored = run_recipe(tmp_path, asc_root, "tiny_wavlm_sv", sv / "config.yaml", "--stage", "4")
    assert scored.returncode == 0, scored.stdout[-3000:] + scored.stderr[-3000:]
    assert {"cosine", "plda"} <= set(results_rows(sv / "results.json"))
    table = open(tmp_path / "exp" / "results.md").read()
    assert "tiny_wavlm_sv" in table and "tiny_wavlm " in table.replace("|", " ")
