"""The one feature pipeline: audio -> MFCC/fbank -> energy VAD -> sliding CMN -> voiced frames.

:class:`FeaturePipeline` is built once from a training config's ``features``
section (:meth:`FeaturePipeline.from_config`) or from explicit conf paths, and
resolves there, with one set of defaults (:data:`DEFAULT_CONFS`): the kind
(``mfcc``, ``fbank`` or ``waveform``), its Kaldi options, the MFCC config whose
log energy drives the VAD (stage 1's rule: the VAD always comes from the MFCC,
on the same frame grid), the VAD and CMN options, and whether training computes
the features on the fly.  Every consumer goes through it: the feature stage
(``pyutils.cli.compute_mfcc_vad``), the training sources (raw on the fly,
shards, label-free views), extraction (:func:`cmn_voiced`) and the deployed
package's front-end, so they agree to the bit.  It offers

* :meth:`~FeaturePipeline.utterance`: whole-utterance features + VAD (stage 1);
* :meth:`~FeaturePipeline.network_input`: sliding CMN over all frames, then the
  voiced ones (Kaldi's ``apply-cmvn-sliding`` + ``select-voiced-frames``, run
  by both ``prepare_feats_for_egs.sh`` and ``extract_xvectors.sh``);
* :meth:`~FeaturePipeline.chunk`: the voiced rows of a training chunk computed
  on its span only (the frames their CMN windows cover, and their audio);
* :meth:`~FeaturePipeline.training_waveform`: a waveform model's training utterance,
  prepared as the network prepares its input at extraction (``features.prepare``:
  ``ge2e``: Resemblyzer's volume normalisation and VAD trimming, so that training
  chunks are cut from the speech the GE2E network embeds).

Dither is seeded by crc32 of the utterance id (:func:`dither_rng`), so each
path gives the same numbers for the same utterance.  Conf files are read when
first needed (a precomputed-feature run reads none).  Imports no torch: the
deployed package's ONNX Runtime path runs on it.  A new front-end (another
filterbank, an SSL encoder's input) is a new kind here.
"""
from __future__ import annotations

import os
import zlib
from functools import cached_property
from typing import Dict, Mapping, Optional, Tuple

import numpy as np

from pyutils.data import audio
from pyutils.data.audio import AudioError
from pyutils.features.cmvn import select_voiced_frames, sliding_cmn, sliding_cmn_rows, \
    sliding_window_bounds
from pyutils.features.fbank import FbankComputer
from pyutils.features.spectral import SampleRateError, check_sample_rate, resample_waveform
from pyutils.features.kaldi_conf import read_kaldi_conf
from pyutils.features.mfcc import MfccComputer
from pyutils.features.vad import compute_vad_energy, vad_options_from_conf

KINDS = ("mfcc", "fbank", "waveform")
COMPUTERS = {"mfcc": MfccComputer, "fbank": FbankComputer}
# The confs a feature model uses when its config names none (relative to the recipe root).
DEFAULT_CONFS = {"mfcc": "conf/mfcc.conf", "fbank": "conf/fbank.conf",
                 "vad": "conf/vad.conf", "cmvn": "conf/cmvn.conf"}
WAVEFORM_RATE = 16000    # waveform models take 16 kHz samples
# features.prepare of a waveform model: what its network does to an utterance before its own
# front-end at extraction, done once per training utterance (the network's eval path does it).
PREPARES = ("ge2e",)


def cmn_options(conf_path: str) -> dict:
    """Map conf/cmvn.conf (Kaldi apply-cmvn-sliding options) to sliding_cmn kwargs."""
    conf = read_kaldi_conf(conf_path)
    known = {"cmn-window": "cmn_window", "min-cmn-window": "min_window",
             "center": "center", "norm-vars": "norm_vars"}
    unknown = set(conf) - set(known)
    if unknown:
        raise ValueError(f"{conf_path}: unknown option(s) {', '.join(sorted(unknown))}")
    return {known[k]: v for k, v in conf.items()}


def cmn_voiced(feats: np.ndarray, vad: np.ndarray, options: dict) -> np.ndarray:
    """Sliding CMN over all frames, then keep the voiced ones.

    Returns 0 rows when no frame is voiced: callers skip and count such
    utterances, as Kaldi's select-voiced-frames does.
    """
    if feats.shape[0] == 0 or not np.any(vad):
        return np.zeros((0, feats.shape[1]), dtype=np.float32)
    return select_voiced_frames(sliding_cmn(feats, **options), vad)


def dither_rng(key: str) -> np.random.Generator:
    """The dither generator of an utterance: seeded by crc32 of its id (features do
    not depend on the job split, and every path gives the recipe's numbers)."""
    return np.random.default_rng(zlib.crc32(key.encode()))


def program_options(conf: Mapping[str, object], path: str) -> Tuple[Optional[int], float]:
    """(channel or None, min duration in seconds): the compute-mfcc-feats program
    options ``--channel`` and ``--min-duration`` of the MFCC config."""
    channel, min_duration = conf.get("channel", -1), conf.get("min-duration", 0.0)
    if isinstance(channel, bool) or not isinstance(channel, int) or channel < -1:
        raise ValueError(f"{path}: --channel must be -1 (mono only) or a channel index, "
                         f"got {channel!r}")
    if isinstance(min_duration, bool) or not isinstance(min_duration, (int, float)) \
            or not min_duration >= 0:
        raise ValueError(f"{path}: --min-duration must be a number of seconds >= 0, "
                         f"got {min_duration!r}")
    return (None if channel == -1 else channel), float(min_duration)


def conf_paths(features: Optional[Mapping[str, object]] = None,
               root: Optional[str] = None) -> Dict[str, str]:
    """The conf files of a ``features`` config section, defaults filled in: ``conf``
    (the kind's options), ``vad_conf``, ``cmvn_conf``, ``vad_feat_conf`` (the MFCC
    options whose energy drives the VAD); none for waveform models.  Relative
    paths are joined to ``root`` when given."""
    features = dict(features or {})
    kind = str(features.get("type", "mfcc"))
    if kind not in KINDS:
        raise ValueError(f"features.type must be mfcc, fbank or waveform, got '{kind}'")
    if kind == "waveform":
        return {}
    paths = {"conf": features.get("conf") or DEFAULT_CONFS[kind],
             "vad_conf": features.get("vad_conf") or DEFAULT_CONFS["vad"],
             "cmvn_conf": features.get("cmvn_conf") or DEFAULT_CONFS["cmvn"],
             "vad_feat_conf": features.get("vad_feat_conf") or DEFAULT_CONFS["mfcc"]}
    return {k: os.path.join(root, str(p)) if root else str(p) for k, p in paths.items()}


class NonFiniteFeatures(ValueError):
    """The features of an utterance hold NaN or infinite values (``count`` of them)."""

    def __init__(self, count: int):
        super().__init__(f"{count} feature values are NaN or infinite")
        self.count = count


class FeaturePipeline:
    """Audio -> the network input of one feature configuration (see the module docstring).

    ``kind``: mfcc | fbank | waveform; ``conf``: the kind's Kaldi options;
    ``vad_feat_conf``: the MFCC options of the VAD energy (the same computer
    as the features when they are this MFCC); ``on_the_fly``: training computes
    the features in the loader instead of reading stage 1's.  Missing paths take
    :data:`DEFAULT_CONFS`.
    """

    def __init__(self, kind: str = "mfcc", conf: Optional[str] = None,
                 vad_conf: Optional[str] = None, cmvn_conf: Optional[str] = None,
                 vad_feat_conf: Optional[str] = None, on_the_fly: bool = False,
                 sample_rate: int = WAVEFORM_RATE, prepare: Optional[str] = None):
        self.confs = conf_paths({"type": kind, "conf": conf, "vad_conf": vad_conf,
                                 "cmvn_conf": cmvn_conf, "vad_feat_conf": vad_feat_conf})
        self.kind, self.on_the_fly = kind, bool(on_the_fly)
        if prepare is not None and (kind != "waveform" or prepare not in PREPARES):
            raise ValueError(f"features.prepare: '{prepare}' is not one of "
                             f"{', '.join(PREPARES)} for a waveform model (features.type: "
                             f"{kind})")
        self.prepare = prepare
        self.input_type = "waveform" if kind == "waveform" else "feats"
        self._waveform_rate = int(sample_rate)

    @classmethod
    def from_config(cls, features: Optional[Mapping[str, object]] = None,
                    root: Optional[str] = None) -> "FeaturePipeline":
        """The pipeline of a training config's ``features`` section (None: MFCC);
        relative conf paths are joined to ``root`` when given."""
        features = dict(features or {"type": "mfcc"})
        kind = str(features.get("type", "mfcc"))
        return cls(kind, **conf_paths(features, root),
                   on_the_fly=bool(features.get("on_the_fly", False)),
                   prepare=features.get("prepare"))

    def load(self, cmn: bool = True) -> "FeaturePipeline":
        """Read every conf now (a missing or bad one is an error here, not at the first
        utterance); ``cmn=False`` leaves the CMN conf unread (stage 1 does no CMN)."""
        if self.kind != "waveform":
            _ = self.computer, self.vad_computer, self.vad_options, self._program
            if cmn:
                _ = self.cmn
        return self

    # -- the parts, read when first used ------------------------------------
    @cached_property
    def computer(self):
        """The MfccComputer / FbankComputer of the network input (None: waveform)."""
        if self.kind == "waveform":
            return None
        return COMPUTERS[self.kind](read_kaldi_conf(self.confs["conf"]))

    @cached_property
    def _vad_conf(self) -> dict:
        return read_kaldi_conf(self.confs["vad_feat_conf"])

    @cached_property
    def vad_computer(self) -> Optional[MfccComputer]:
        """The MFCC whose column 0 (log energy) drives the VAD: the feature computer
        itself when the features are that MFCC."""
        if self.kind == "waveform":
            return None
        same = os.path.realpath(self.confs["vad_feat_conf"]) == os.path.realpath(self.confs["conf"])
        return self.computer if self.kind == "mfcc" and same else MfccComputer(self._vad_conf)

    @cached_property
    def vad_options(self) -> dict:
        return vad_options_from_conf(read_kaldi_conf(self.confs["vad_conf"]))

    @cached_property
    def cmn(self) -> dict:
        """sliding_cmn keyword arguments of the CMN conf."""
        return cmn_options(self.confs["cmvn_conf"])

    @cached_property
    def _program(self) -> Tuple[Optional[int], float]:
        if self.kind == "waveform":
            return None, 0.0
        return program_options(self._vad_conf, self.confs["vad_feat_conf"])

    @property
    def channel(self) -> Optional[int]:
        """The channel of multi-channel audio to use (None: refuse it), from the MFCC config."""
        return self._program[0]

    @property
    def min_duration(self) -> float:
        """Audio shorter than this many seconds is too short (the MFCC config's)."""
        return self._program[1]

    @property
    def rate(self) -> int:
        """The sample rate of the network input's audio."""
        if self.kind == "waveform":
            return self._waveform_rate
        return int(self.computer.options["sample-frequency"])

    @property
    def feat_dim(self) -> int:
        """Columns of the network input (1: waveform samples)."""
        return 1 if self.kind == "waveform" else self.computer.dim

    # -- whole utterances (stage 1, deploy, shards) -------------------------
    def prepare_waveform(self, samples: np.ndarray, rate: float,
                         resample: Optional[bool] = None) -> np.ndarray:
        """The samples at the pipeline's rate: as they are, resampled, or a
        :class:`SampleRateError`.  ``resample`` None follows the MFCC config's
        --allow-downsample/--allow-upsample (waveform models: refuse); True or
        False overrides them."""
        if self.kind == "waveform":
            options = {"sample-frequency": float(self.rate), "allow-downsample": False,
                       "allow-upsample": False}
        else:
            options = dict(self.vad_computer.options)
        if resample is not None:
            options["allow-downsample"] = options["allow-upsample"] = bool(resample)
        if check_sample_rate(rate, options):
            return resample_waveform(samples, rate, float(options["sample-frequency"]))
        return np.asarray(samples)

    def checked_waveform(self, samples: np.ndarray, rate: float, where: str,
                         resample: Optional[bool] = None, hint: str = "") -> np.ndarray:
        """:meth:`prepare_waveform`, refusing what stage 1 skips with an
        :class:`~pyutils.data.audio.AudioError` naming ``where``: audio under
        --min-duration or shorter than one frame, a sample rate not allowed
        (``hint`` is added to that message)."""
        duration = len(samples) / rate
        if duration < self.min_duration:
            raise AudioError(f"{where}: {duration:.3f} s is shorter than --min-duration="
                             f"{self.min_duration:g}", audio.TOO_SHORT)
        try:
            waveform = self.prepare_waveform(samples, rate, resample)
        except SampleRateError as err:
            raise AudioError(f"{where}: {err}{hint}", audio.WRONG_RATE) from None
        if self.kind != "waveform" and self.vad_computer.num_frames(len(waveform)) == 0:
            raise AudioError(f"{where}: {len(samples)} samples ({duration:.4f} s) are shorter "
                             f"than one frame", audio.TOO_SHORT)
        return waveform

    def training_waveform(self, samples: np.ndarray, rate: float) -> np.ndarray:
        """A waveform model's training utterance (int16 scale): :meth:`prepare_waveform`,
        then ``features.prepare``: ``ge2e`` normalises the volume and drops what the
        WebRTC VAD calls silence, as :class:`pyutils.models.ge2e.GE2E` does to an
        utterance at extraction (one the VAD finds no speech in stays untrimmed, as there)."""
        waveform = self.prepare_waveform(samples, rate)
        if self.prepare == "ge2e":
            from pyutils.features import ge2e_mel
            scale = 32768.0      # int16-scale samples <-> [-1, 1] (pyutils.models.ge2e)
            wav = ge2e_mel.normalize_volume(np.asarray(waveform, dtype=np.float64) / scale)
            trimmed = ge2e_mel.trim_long_silences(wav)
            waveform = (trimmed if len(trimmed) else wav) * scale
        return waveform

    def features(self, waveform: np.ndarray, key: str) -> np.ndarray:
        """The features of a whole waveform (before CMN), dithered with ``key``'s seed."""
        return self.computer.compute(np.asarray(waveform, dtype=np.float64), dither_rng(key))

    def vad(self, waveform: np.ndarray, key: str) -> np.ndarray:
        """The energy VAD (0/1 per frame) of a (clean) waveform."""
        return compute_vad_energy(self.vad_computer.compute(
            np.asarray(waveform, dtype=np.float64), dither_rng(key)), **self.vad_options)

    def utterance(self, waveform: np.ndarray, key: str,
                  augmented: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
        """(features, VAD) of a whole utterance, as stage 1 writes them: the VAD from
        the MFCC energy of the clean ``waveform``, the features of ``augmented``
        (default: the clean waveform; the MFCC is computed once when it is both).
        Raises :class:`NonFiniteFeatures` when the MFCC holds NaN/inf values."""
        waveform = np.asarray(waveform, dtype=np.float64)
        vad_feats = self.vad_computer.compute(waveform, dither_rng(key))
        bad = int(np.count_nonzero(~np.isfinite(vad_feats)))
        if bad:
            raise NonFiniteFeatures(bad)
        vad = compute_vad_energy(vad_feats, **self.vad_options)
        if augmented is None and self.computer is self.vad_computer:
            return vad_feats, vad
        feats = self.features(waveform if augmented is None else augmented, key)
        self.check_frames(key, feats, vad)
        return feats, vad

    def check_frames(self, key: str, feats: np.ndarray, vad: np.ndarray) -> None:
        """Features and VAD must share the frame grid (a ValueError naming both confs)."""
        if feats.shape[0] != vad.shape[0]:
            raise ValueError(f"{self.confs['conf']} gives {feats.shape[0]} frames for {key} but "
                             f"{self.confs['vad_feat_conf']} gives {vad.shape[0]}: frame them "
                             f"alike (frame length/shift, snip-edges)")

    def network_input(self, feats: np.ndarray, vad: np.ndarray) -> np.ndarray:
        """Sliding CMN over all frames, then the voiced ones (0 rows: none voiced)."""
        return cmn_voiced(np.asarray(feats, dtype=np.float32), vad, self.cmn)

    # -- training chunks ----------------------------------------------------
    def window_options(self) -> dict:
        """The CMN window options, with :func:`sliding_cmn`'s defaults."""
        return {"cmn_window": int(self.cmn.get("cmn_window", 300)),
                "min_window": int(self.cmn.get("min_window", 100)),
                "center": bool(self.cmn.get("center", True))}

    def chunk(self, key: str, audio: np.ndarray, vad: np.ndarray, voiced: np.ndarray,
              offset: int, length: int, augmenter=None, rng=None) -> np.ndarray:
        """Voiced frames ``offset..offset+length-1`` (``voiced``: the indices of the
        voiced frames of ``vad``) of ``audio``, computed on their span only: the
        frames their CMN windows cover, and those frames' samples, augmented by
        ``augmenter(samples, rng)`` when both are given.  The dither is seeded by
        (crc32 of ``key``, the span's first frame); without augmentation or dither
        the rows equal :meth:`network_input`'s cut at ``offset`` (to float32 rounding)."""
        rows = voiced[offset:offset + length]
        if len(rows) < length:
            raise ValueError(f"chunk {offset}+{length} is past the {len(voiced)} voiced "
                             f"frames of {key}")
        starts, ends = sliding_window_bounds(len(vad), **self.window_options())
        first, stop = int(starts[rows].min()), int(ends[rows].max())
        if rng is not None and augmenter is not None:
            lo, hi = self.computer.frontend.sample_span(len(audio), first, stop)
            audio = audio.astype(np.float64)
            audio[lo:hi] = augmenter(audio[lo:hi], rng).astype(np.float32)
        dither = np.random.default_rng([zlib.crc32(key.encode()), first])
        feats = self.computer.compute(np.asarray(audio, dtype=np.float64), dither,
                                      frames=(first, stop))
        return sliding_cmn_rows(feats, first, starts[rows], ends[rows], rows,
                                bool(self.cmn.get("norm_vars", False)))
