"""Every registered network is a pyutils.models.base.EmbeddingNet and keeps its
interface: embedding and head shapes, input_type, frame_shift; build_model
refuses a class that is not one.  Small configurations keep it to seconds (the
default sizes are measured in tests/test_model_zoo.py)."""
import pytest
import torch
from torch import nn

import pyutils.models as models
from pyutils.models import MODELS, PRETRAINED, build_model
from pyutils.models.base import INPUT_TYPES, EmbeddingNet
from pyutils.models.ssl.xvector_head import HFXVectorHead

SAMPLES_PER_FRAME = 160          # a waveform network's frame_shift: 10 ms at 16 kHz

# Small but complete configurations of every registered network.
SMALL = {
    "xvector": dict(feat_dim=20, embed_dim=24, frame_dims=(16, 16, 16, 16, 32)),
    "resnet18": dict(feat_dim=16, embed_dim=24, m_channels=4),
    "resnet34": dict(feat_dim=16, embed_dim=24, m_channels=4, two_emb_layer=True),
    "resnet50": dict(feat_dim=16, embed_dim=24, m_channels=4),
    "resnet101": dict(feat_dim=16, embed_dim=24, m_channels=2, two_emb_layer=True),
    "resnet152": dict(feat_dim=16, embed_dim=24, m_channels=2),
    "resnet221": dict(feat_dim=16, embed_dim=24, m_channels=2),
    "resnet293": dict(feat_dim=16, embed_dim=24, m_channels=2),
    "ecapa": dict(feat_dim=16, channels=32, embed_dim=24, mfa_channels=48,
                  se_bottleneck=8, attention_bottleneck=8),
    "ecapa_c512": dict(feat_dim=16, embed_dim=24, channels=32, mfa_channels=48),
    "ecapa_c1024": dict(feat_dim=16, embed_dim=24, channels=64, mfa_channels=48),
    "wav2spk": dict(embed_dim=24, encoder_channels=(8, 8, 8, 8, 8), aggregator_dims=(8,) * 4,
                    segment_dim=16),
    "campplus": dict(feat_dim=16, embed_dim=24, growth_rate=4, bn_size=2, init_channels=8,
                     blocks=((2, 3, 1), (2, 3, 2), (2, 3, 2))),
    "eres2net": dict(feat_dim=16, embed_dim=24, m_channels=8, num_blocks=(1, 1, 1, 1)),
}


def check_interface(model, feat_dim, batch=3, frames=40):
    """Run ``model`` and its head on a batch; the shapes and the declared names."""
    assert isinstance(model, EmbeddingNet)
    assert model.input_type in INPUT_TYPES
    if model.input_type == "waveform":
        assert model.frame_shift == SAMPLES_PER_FRAME
        x = torch.randn(batch, max(frames * SAMPLES_PER_FRAME, model.receptive_field)) * 3000
    else:
        assert isinstance(model.frame_shift, int) and model.frame_shift >= 1
        x = torch.randn(batch, max(frames, model.receptive_field), feat_dim)
    model.eval()
    with torch.no_grad():
        embedding = model(x)
        out = model.head(embedding)
    assert embedding.shape == (batch, model.embed_dim)
    assert out.shape == (batch, model.head_dim)
    assert isinstance(model.head, nn.Module)
    assert model.num_parameters() == sum(p.numel() for p in model.parameters()) > 0


def test_every_registered_network_is_covered():
    assert set(SMALL) == set(MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_registered_network_satisfies_the_interface(name):
    assert issubclass(MODELS[name], EmbeddingNet)
    torch.manual_seed(0)
    kwargs = SMALL[name]
    model = build_model(name, **kwargs)
    assert model.embed_dim == 24
    check_interface(model, kwargs.get("feat_dim"))


@pytest.mark.parametrize("name,head_dim,identity", [
    ("xvector", 24, False),       # Kaldi's tdnn6 nonlinearity + tdnn7
    ("resnet18", 24, True),
    ("resnet34", 24, False),      # two_emb_layer: WeSpeaker's seg_bn_1 + seg_2
    ("ecapa", 24, True), ("wav2spk", 24, True), ("campplus", 24, True), ("eres2net", 24, True),
])
def test_head_is_the_identity_unless_the_network_keeps_layers_there(name, head_dim, identity):
    model = build_model(name, **SMALL[name])
    assert model.head_dim == head_dim
    assert isinstance(model.head, nn.Identity) == identity
    assert (sum(p.numel() for p in model.head.parameters()) == 0) == identity


@pytest.mark.parametrize("classifier", [True, False])
def test_transformers_xvector_head_satisfies_the_interface(classifier):
    head = HFXVectorHead(feat_dim=12, tdnn_dim=(8, 8, 8, 8, 16), embed_dim=10,
                         classifier=classifier)
    assert isinstance(head.head, nn.Linear if classifier else nn.Identity)
    check_interface(head, 12)


def test_ssl_model_satisfies_the_interface(tmp_path):
    pytest.importorskip("transformers")
    from tests.test_ssl_encoder import TDNN, build_tiny
    assert issubclass(PRETRAINED["ssl"], EmbeddingNet)
    path = build_tiny("wavlm", tmp_path / "wavlm")
    model = build_model("ssl", feat_dim=1, frontend={"type": "wavlm", "path": path},
                        head={"name": "xvector_hf", "embed_dim": 40, **TDNN})
    assert model.input_type == "waveform" and (model.embed_dim, model.head_dim) == (40, 40)
    assert model.head is model.speaker_net.head
    check_interface(model, None, batch=2, frames=50)


def test_recurrent_networks_satisfy_the_interface():
    from pyutils.models import RECURRENT
    assert set(RECURRENT) == {"ge2e", "sb_ecapa"}
    torch.manual_seed(0)
    for model in (build_model("ge2e", hidden_size=16, num_layers=1, embed_dim=24, vad=False),
                  build_model("sb_ecapa", num_mels=16, channels=32, mfa_channels=48,
                              embed_dim=24, attention_bottleneck=8, se_bottleneck=8)):
        assert isinstance(model, EmbeddingNet) and model.input_type == "waveform"
        check_interface(model, None, batch=2, frames=200)


def test_the_interface_is_written_once():
    """num_parameters and the head bookkeeping live in the base class only."""
    for cls in list(MODELS.values()) + list(PRETRAINED.values()) + [HFXVectorHead]:
        for klass in cls.__mro__[:cls.__mro__.index(EmbeddingNet)]:
            assert "num_parameters" not in vars(klass), klass
    assert EmbeddingNet.input_type == "feats"
    assert [n for n, c in MODELS.items() if c.input_type == "waveform"] == ["wav2spk"]
    assert PRETRAINED["ssl"].input_type == "waveform"


class NotANetwork(nn.Module):
    input_type = "feats"
    embed_dim = head_dim = 4

    def __init__(self, **kwargs):
        super().__init__()
        self.head = nn.Identity()

    def forward(self, x):
        return x.mean(dim=1)


class BadInput(EmbeddingNet):
    input_type = "spectrogram"

    def __init__(self, **kwargs):
        super().__init__()
        self.set_head(4)


class NoHead(EmbeddingNet):
    def __init__(self, **kwargs):
        super().__init__()
        self.embed_dim = 4


@pytest.mark.parametrize("registry", ["MODELS", "PRETRAINED"])
def test_build_model_refuses_a_class_that_is_not_an_embedding_net(monkeypatch, registry):
    monkeypatch.setitem(getattr(models, registry), "plain", NotANetwork)
    with pytest.raises(TypeError, match="NotANetwork.*not a pyutils.models.base.EmbeddingNet"):
        build_model("plain", feat_dim=4)
    monkeypatch.setitem(getattr(models, registry), "bad_input", BadInput)
    with pytest.raises(TypeError, match="BadInput.input_type is 'spectrogram'"):
        build_model("bad_input", feat_dim=4)
    monkeypatch.setitem(getattr(models, registry), "no_head", NoHead)
    with pytest.raises(TypeError, match="NoHead did not set head_dim, head"):
        build_model("no_head", feat_dim=4)


def test_set_head_defaults_and_explicit_head():
    net = EmbeddingNet()
    net.set_head(7)
    assert isinstance(net.head, nn.Identity) and (net.embed_dim, net.head_dim) == (7, 7)
    net.set_head(7, nn.Linear(7, 3), head_dim=3)
    assert net.head(torch.zeros(2, 7)).shape == (2, net.head_dim)
    assert list(net.state_dict()) == ["head.weight", "head.bias"]
