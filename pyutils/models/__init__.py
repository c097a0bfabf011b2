"""Speaker-embedding networks, built by name from a config (``build_model``).

Every network is a :class:`pyutils.models.base.EmbeddingNet` (what a network
provides to be trained, extracted, exported and packaged: see its docstring)."""
from pyutils.models.base import EmbeddingNet  # noqa: F401
from pyutils.models.ge2e import GE2E
from pyutils.models.registry import MODELS, build_network
from pyutils.models.sb_ecapa import SpeechBrainECAPA
from pyutils.models.ssl import SSLSpeakerModel

# Networks with their own (imported) front-end, outside tests/test_model_zoo.py's geometry
# checks: tested in tests/test_import_resemblyzer.py and tests/test_import_speechbrain.py.
RECURRENT = {
    "ge2e": GE2E,                 # Resemblyzer's LSTM encoder (waveform in, own mel front-end)
    "sb_ecapa": SpeechBrainECAPA,  # SpeechBrain's Fbank + ECAPA-TDNN (waveform in)
}

# Networks built around a pretrained checkpoint (a local directory named in the config),
# so not buildable from defaults alone: tested in tests/test_ssl_encoder.py.
PRETRAINED = {
    "ssl": SSLSpeakerModel,       # WavLM / wav2vec 2.0 / HuBERT front-end + any head
}


def build_model(name: str, **kwargs):
    """Instantiate the network ``name`` with keyword arguments from the YAML config;
    a registered class that is not an :class:`EmbeddingNet`, or a network that did not
    set its ``embed_dim`` and ``head``, is refused (TypeError)."""
    if name in PRETRAINED:
        cls = PRETRAINED[name]
    elif name in RECURRENT:
        cls = RECURRENT[name]
    elif name in MODELS:
        cls = MODELS[name]
    else:
        raise ValueError(f"unknown model '{name}'; known: "
                         f"{', '.join(sorted(set(MODELS) | set(PRETRAINED) | set(RECURRENT)))}")
    return build_network(cls, **kwargs)
