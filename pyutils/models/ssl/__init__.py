"""Pretrained self-supervised speech encoders (WavLM, wav2vec 2.0, HuBERT, UniSpeech-SAT
from a local transformers checkpoint) as front-ends of the toolkit's speaker heads;
transformers' XVector head and the conversion of its ``*ForXVector`` checkpoints
(``hf_convert``)."""
from pyutils.models.ssl.encoder import PretrainedModelMissing, SSLFrontend
from pyutils.models.ssl.model import SSLSpeakerModel
from pyutils.models.ssl.xvector_head import HFXVectorHead

__all__ = ["PretrainedModelMissing", "SSLFrontend", "SSLSpeakerModel", "HFXVectorHead"]
