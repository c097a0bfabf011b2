"""Audio to the network's input exactly as the recipe computes it, in numpy only.

Stage 1 (``pyutils.cli.compute_mfcc_vad``) + stage 4 (``pyutils.extraction``)
for one waveform, through their :class:`~pyutils.features.pipeline.FeaturePipeline`:
MFCC (or fbank) with dither seeded from the utterance key, energy VAD from
the MFCC, sliding CMN and the voiced frames; a waveform
model gets the samples as they are.  The same key gives the same features as
the recipe, so ``sv embed`` of a data dir's ``wav.scp`` reproduces stage 4.

Audio at another rate than the model's is refused, naming the option, or
resampled when the feature config (``--allow-downsample``/``--allow-upsample``)
or the caller (``resample=True``) allows it.  Every refusal is an
:class:`~pyutils.data.audio.AudioError` naming the source and its reason.
Imports no torch: the ONNX Runtime path runs on it.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from pyutils.data import audio
from pyutils.data.audio import AudioError, read_wav_scp_entry
from pyutils.features.pipeline import FeaturePipeline, NonFiniteFeatures


class AudioFrontend:
    """Reads audio and turns it into the network input of one model, through the
    model's :class:`~pyutils.features.pipeline.FeaturePipeline`.

    ``input_type`` is ``feats`` (MFCC or fbank + VAD + CMN, configs as in
    ``conf/``) or ``waveform`` (samples at ``sample_rate``).  ``resample``:
    None follows the feature config, True resamples any rate, False refuses.
    """

    def __init__(self, input_type: str, mfcc_conf: Optional[str] = None,
                 vad_conf: Optional[str] = None, cmvn_conf: Optional[str] = None,
                 fbank_conf: Optional[str] = None, sample_rate: int = 16000,
                 resample: Optional[bool] = None):
        if input_type not in ("feats", "waveform"):
            raise ValueError(f"unknown input type '{input_type}' (feats or waveform)")
        self.input_type = input_type
        self.resample = resample
        if input_type == "waveform":
            self.pipeline = FeaturePipeline("waveform", sample_rate=sample_rate)
        elif not (mfcc_conf and vad_conf and cmvn_conf):
            raise ValueError("a feature model needs the MFCC, VAD and CMVN configs")
        else:
            self.pipeline = FeaturePipeline("fbank" if fbank_conf else "mfcc",
                                            fbank_conf or mfcc_conf, vad_conf, cmvn_conf,
                                            vad_feat_conf=mfcc_conf).load()
            self.mfcc = self.pipeline.vad_computer
        self.channel, self.min_duration = self.pipeline.channel, self.pipeline.min_duration
        self.sample_rate = self.pipeline.rate if input_type == "feats" else int(sample_rate)

    def read(self, source: str) -> Tuple[np.ndarray, int]:
        """(int16-scale samples, rate) of a file path or a ``cmd |`` wav.scp value."""
        return read_wav_scp_entry(source, None, self.channel)

    def network_input(self, samples: np.ndarray, rate: int, key: str,
                      source: str = "audio") -> np.ndarray:
        """The network input for one utterance: voiced CMN'd frames or samples, float32."""
        hint = "" if self.resample is False else " (or pass --resample to sv)"
        waveform = self.pipeline.checked_waveform(samples, rate, source, self.resample, hint)
        if self.input_type == "waveform":
            return np.asarray(waveform, dtype=np.float32)
        try:
            feats, vad = self.pipeline.utterance(waveform, key)
        except NonFiniteFeatures:
            raise AudioError(f"{source}: features hold NaN or infinite values",
                             audio.NON_FINITE) from None
        voiced = self.pipeline.network_input(feats, vad)
        if voiced.shape[0] == 0:
            raise AudioError(f"{source}: no voiced frames (energy VAD of the feature config)",
                             "no voiced frames")
        return voiced

    def __call__(self, source: str, key: str) -> np.ndarray:
        """Read ``source`` and return its network input (the recipe's, for utterance ``key``)."""
        samples, rate = self.read(source)
        return self.network_input(samples, rate, key, source)
