"""Audio to the network's input exactly as the recipe computes it, in numpy only.

Stage 1 (``pyutils.cli.compute_mfcc_vad``) + stage 4 (``pyutils.extraction``)
for one waveform: MFCC (or fbank) with dither seeded from the utterance key,
energy VAD from the MFCC, sliding CMN and the voiced frames; a waveform
model gets the samples as they are.  The same key gives the same features as
the recipe, so ``sv embed`` of a data dir's ``wav.scp`` reproduces stage 4.

Audio at another rate than the model's is refused, naming the option, or
resampled when the feature config (``--allow-downsample``/``--allow-upsample``)
or the caller (``resample=True``) allows it.  Every refusal is an
:class:`~pyutils.data.audio.AudioError` naming the source and its reason.
Imports no torch: the ONNX Runtime path runs on it.
"""
from __future__ import annotations

import zlib
from typing import Optional, Tuple

import numpy as np

from pyutils.data import audio
from pyutils.data.audio import AudioError, read_wav_scp_entry
from pyutils.features.frontend import SampleRateError, check_sample_rate, resample_waveform
from pyutils.features.kaldi_conf import read_kaldi_conf
from pyutils.features.fbank import FbankComputer
from pyutils.features.mfcc import MfccComputer
from pyutils.features.pipeline import cmn_options, cmn_voiced
from pyutils.features.vad import compute_vad_energy, vad_options_from_conf


def dither_rng(key: str) -> np.random.Generator:
    """The dither generator the recipe uses for an utterance (seeded by its id)."""
    return np.random.default_rng(zlib.crc32(key.encode()))


class AudioFrontend:
    """Reads audio and turns it into the network input of one model.

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
        self.channel: Optional[int] = None
        self.min_duration = 0.0
        if input_type == "waveform":
            self.sample_rate = int(sample_rate)
            self.rate_options = {"sample-frequency": float(sample_rate),
                                 "allow-downsample": False, "allow-upsample": False}
            return
        if not (mfcc_conf and vad_conf and cmvn_conf):
            raise ValueError("a feature model needs the MFCC, VAD and CMVN configs")
        conf = read_kaldi_conf(mfcc_conf)
        channel, self.min_duration = conf.get("channel", -1), float(conf.get("min-duration", 0.0))
        self.channel = None if channel == -1 else int(channel)
        self.mfcc = MfccComputer(conf)
        self.fbank = FbankComputer(read_kaldi_conf(fbank_conf)) if fbank_conf else None
        self.vad_options = vad_options_from_conf(read_kaldi_conf(vad_conf))
        self.cmn = cmn_options(cmvn_conf)
        self.rate_options = self.mfcc.options
        self.sample_rate = int(self.mfcc.options["sample-frequency"])

    def read(self, source: str) -> Tuple[np.ndarray, int]:
        """(int16-scale samples, rate) of a file path or a ``cmd |`` wav.scp value."""
        return read_wav_scp_entry(source, None, self.channel)

    def _at_model_rate(self, samples: np.ndarray, rate: int, source: str) -> np.ndarray:
        options = dict(self.rate_options)
        if self.resample is not None:
            options["allow-downsample"] = options["allow-upsample"] = bool(self.resample)
        try:
            if check_sample_rate(rate, options):
                return resample_waveform(samples, rate, self.sample_rate)
        except SampleRateError as err:
            hint = "" if self.resample is False else " (or pass --resample to sv)"
            raise AudioError(f"{source}: {err}{hint}", audio.WRONG_RATE) from None
        return np.asarray(samples)

    def network_input(self, samples: np.ndarray, rate: int, key: str,
                      source: str = "audio") -> np.ndarray:
        """The network input for one utterance: voiced CMN'd frames or samples, float32."""
        duration = len(samples) / rate
        if duration < self.min_duration:
            raise AudioError(f"{source}: {duration:.3f} s is shorter than --min-duration="
                             f"{self.min_duration:g} of the feature config", audio.TOO_SHORT)
        waveform = self._at_model_rate(samples, rate, source)
        if self.input_type == "waveform":
            return np.asarray(waveform, dtype=np.float32)
        if self.mfcc.num_frames(len(waveform)) == 0:
            raise AudioError(f"{source}: {len(samples)} samples are shorter than one frame",
                             audio.TOO_SHORT)
        mfcc = self.mfcc.compute(waveform, dither_rng(key))
        if not np.all(np.isfinite(mfcc)):
            raise AudioError(f"{source}: features hold NaN or infinite values", audio.NON_FINITE)
        vad = compute_vad_energy(mfcc, **self.vad_options)
        feats = mfcc if self.fbank is None else self.fbank.compute(waveform, dither_rng(key))
        voiced = cmn_voiced(np.asarray(feats, dtype=np.float32), vad, self.cmn)
        if voiced.shape[0] == 0:
            raise AudioError(f"{source}: no voiced frames (energy VAD of the feature config)",
                             "no voiced frames")
        return voiced

    def __call__(self, source: str, key: str) -> np.ndarray:
        """Read ``source`` and return its network input (the recipe's, for utterance ``key``)."""
        samples, rate = self.read(source)
        return self.network_input(samples, rate, key, source)
