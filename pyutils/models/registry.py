"""The networks that take features (``MODELS``, by config name) and the checked build of a
registered class.

Its own module so that the SSL model can build any of them as its head without importing
the package that registers the SSL model itself (:func:`pyutils.models.build_model`
builds every network by name)."""
from pyutils.models.base import check_network, check_network_class
from pyutils.models.campplus import CAMPPlus
from pyutils.models.ecapa import ECAPATDNN, ECAPATDNN512, ECAPATDNN1024
from pyutils.models.eres2net import ERes2Net
from pyutils.models.resnet import ResNet18, ResNet34
from pyutils.models.resnet_bottleneck import ResNet50, ResNet101, ResNet152, ResNet221, ResNet293
from pyutils.models.tdnn import XVectorTDNN
from pyutils.models.wav2spk import Wav2Spk

MODELS = {
    "xvector": XVectorTDNN,
    "resnet18": ResNet18,
    "resnet34": ResNet34,
    "resnet50": ResNet50,          # Bottleneck blocks (WeSpeaker's deeper ResNets)
    "resnet101": ResNet101,
    "resnet152": ResNet152,
    "resnet221": ResNet221,
    "resnet293": ResNet293,
    "ecapa": ECAPATDNN,            # takes a ``channels`` argument
    "ecapa_c512": ECAPATDNN512,
    "ecapa_c1024": ECAPATDNN1024,
    "wav2spk": Wav2Spk,
    "campplus": CAMPPlus,
    "eres2net": ERes2Net,         # ERes2Net-base
}


def build_network(cls, **kwargs):
    """``cls(**kwargs)``; a class that is not an :class:`EmbeddingNet`, or a network that
    did not set its ``embed_dim`` and ``head``, is refused (TypeError)."""
    check_network_class(cls)
    return check_network(cls(**kwargs))
