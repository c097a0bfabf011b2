"""Training sources: what a chunk of one training utterance looks like to the network.

Three sources share one interface (``lengths``, ``labels``, ``num_classes``,
``feat_dim``, ``input_type``, ``chunk(index, offset, length, rng)``):

* :class:`PrecomputedFeatures` reads CMN'd voiced-frame features from an scp
  (stage 2 output), as Kaldi's egs do;
* :class:`OnTheFlyFeatures` keeps the audio and computes features in the
  loader through :class:`~pyutils.features.pipeline.FeaturePipeline`:
  (augmented) audio -> MFCC/fbank -> sliding CMN -> the voiced frames
  of the *clean* audio (Kaldi's recipe also reuses the clean VAD for augmented
  copies; it is computed once per utterance version).  A chunk is computed on
  its own span: the frames its rows' CMN windows cover, and their audio.
  With dither 0 and no augmentation it gives the numbers of the precomputed
  path;
* :class:`WaveformStore` gives raw waveform chunks (int16 scale) for
  waveform models, augmented per chunk (each utterance first prepared as
  ``features.prepare`` says: GE2E's volume normalisation and VAD trimming).

Speed perturbation makes each speed a new set of speakers (WeSpeaker): the
utterance at speed index k has label ``speaker + k * num_speakers``.  Every
version is kept in memory; ``speed.prob`` (the share of perturbed chunks, the
factors equally likely, as :class:`pyutils.augment.Augmenter` draws them) is
the sources' ``version_prior``, which the batch plan multiplies into its draw.
"""
from __future__ import annotations

import logging
from typing import Dict, List, Optional, Sequence

import kaldiio
import numpy as np

from pyutils.augment.speed import speed_perturb
from pyutils.data.audio import AudioReader
from pyutils.data.datadir import DataDir
from pyutils.data.formats import read_scp
from pyutils.features.pipeline import FeaturePipeline
from pyutils.utils.fileio import TableError, read_key_value
from pyutils.utils.progress import progress

logger = logging.getLogger(__name__)


def split_validation(utt2spk: Dict[str, str], per_speaker: int):
    """Hold out the last ``per_speaker`` utterances (C order) of every speaker.

    Speakers with no more than ``per_speaker`` utterances keep them all for
    training.  Returns (train_utts, validation_utts), both C-sorted.
    """
    by_spk: Dict[str, List[str]] = {}
    for utt in sorted(utt2spk):
        by_spk.setdefault(utt2spk[utt], []).append(utt)
    train, valid = [], []
    for utts in by_spk.values():
        cut = len(utts) - per_speaker if per_speaker > 0 and len(utts) > per_speaker else len(utts)
        train += utts[:cut]
        valid += utts[cut:]
    return sorted(train), sorted(valid)


def speed_versions(speed_cfg: Optional[dict]):
    """(speeds, speed.prob) of an augmentation config's ``speed`` section:
    ``[1.0] + factors`` when prob > 0, else ``[1.0]`` (no perturbed copies)."""
    speed_cfg = dict(speed_cfg or {})
    factors = [float(f) for f in speed_cfg.get("factors", [0.9, 1.1])]
    if "prob" not in speed_cfg and speed_cfg.get("factors"):
        logger.warning("augmentation.speed has factors but no prob: no speed perturbation "
                       "(prob 0); WeSpeaker's uniform choice of 1.0/0.9/1.1 is prob 0.667")
    prob = float(speed_cfg.get("prob", 0.0))
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"augmentation.speed.prob must be in [0, 1], got {prob}")
    if prob == 0.0:
        return [1.0], 0.0
    if not factors or any(f <= 0 or f == 1.0 for f in factors):
        raise ValueError(f"augmentation.speed.factors must be > 0 and != 1, got {factors}")
    return [1.0] + factors, prob


class _Source:
    """Shared bookkeeping: utterance versions (utt, speed), labels, lengths."""

    input_type = "feats"
    speed_prob: Optional[float] = None

    @property
    def version_prior(self):
        """``(speed index per version, share of each speed)`` for the batch plan:
        ``1 - speed_prob`` of the chunks unperturbed, the factors equally likely;
        None (draw by length alone) without speeds or a prob."""
        if self.speed_prob is None or len(self.speeds) == 1:
            return None
        groups = np.array([k for _, k in self.versions], dtype=np.int64)
        perturbed = self.speed_prob / (len(self.speeds) - 1)
        return groups, np.array([1.0 - self.speed_prob] + [perturbed] * (len(self.speeds) - 1))

    def __init__(self, utts: Sequence[str], utt2spk: Dict[str, str], speeds: Sequence[float],
                 speakers: Optional[List[str]] = None):
        self.utts = list(utts)
        self.speakers = speakers or sorted({utt2spk[u] for u in self.utts})
        index = {s: i for i, s in enumerate(self.speakers)}
        self.speeds = list(speeds)
        self.versions = [(u, k) for k in range(len(self.speeds)) for u in range(len(self.utts))]
        self.labels = np.array([index[utt2spk[self.utts[u]]] + k * len(self.speakers)
                                for u, k in self.versions], dtype=np.int64)
        self.num_classes = len(self.speakers) * len(self.speeds)

    def __len__(self) -> int:
        return len(self.versions)


class PrecomputedFeatures(_Source):
    """Features from an scp, in memory or read per chunk."""

    def __init__(self, feats_scp: str, utt2spk: Dict[str, str], utts: Optional[Sequence[str]] = None,
                 in_memory: bool = True, speakers: Optional[List[str]] = None):
        locations = {}
        for lineno, utt, location in read_scp(feats_scp):
            if utt not in utt2spk:
                raise TableError(feats_scp, lineno, f"utterance '{utt}' has no speaker in utt2spk")
            locations[utt] = location
        utts = sorted(locations) if utts is None else [u for u in utts if u in locations]
        super().__init__(utts, utt2spk, [1.0], speakers)
        self.locations = [locations[u] for u in self.utts]
        self.cache = [np.asarray(kaldiio.load_mat(loc), dtype=np.float32)
                      for loc in self.locations] if in_memory else None
        shapes = ([m.shape for m in self.cache] if in_memory else
                  [kaldiio.load_mat(loc).shape for loc in self.locations])
        self.lengths = np.array([s[0] for s in shapes])
        self.feat_dim = shapes[0][1]

    def matrix(self, index: int) -> np.ndarray:
        if self.cache is not None:
            return self.cache[index]
        return np.asarray(kaldiio.load_mat(self.locations[index]), dtype=np.float32)

    def chunk(self, index: int, offset: int, length: int, rng=None) -> np.ndarray:
        return self.matrix(self.versions[index][0])[offset:offset + length]


class _AudioSource(_Source):
    """Audio of every utterance version kept in memory (int16 scale, float32)."""

    def __init__(self, data_dir: str, utts, speeds, augmenter, rate: int, speakers=None,
                 prepare=None):
        data = DataDir(data_dir)
        utt2spk = data.utt2spk
        utts = data.utts if utts is None else list(utts)
        super().__init__(utts, utt2spk, speeds, speakers)
        # ``prepare(samples, rate)`` resamples or refuses another rate (feature
        # configs' --allow-downsample/--allow-upsample); without it the rate must match
        reader = AudioReader(data, expected_rate=None if prepare else rate)
        clean = []
        for utt in progress(self.utts, desc="loading audio", unit="utt"):
            samples, this_rate = reader.read(utt)
            clean.append((prepare(samples, this_rate) if prepare else samples).astype(np.float32))
        self.audio = [speed_perturb(clean[u], self.speeds[k]).astype(np.float32)
                      if self.speeds[k] != 1.0 else clean[u] for u, k in self.versions]
        self.augmenter = augmenter
        self.rate = rate

    def _augmented(self, samples: np.ndarray, rng) -> np.ndarray:
        if self.augmenter is None:
            return samples
        return self.augmenter(samples.astype(np.float64), rng).astype(np.float32)


class OnTheFlyFeatures(_AudioSource):
    """MFCC/fbank computed per chunk from (augmented) audio, clean-audio VAD: the
    :class:`~pyutils.features.pipeline.FeaturePipeline` of ``pipeline`` (or of
    ``feat_type`` and the conf paths)."""

    def __init__(self, data_dir: str, feat_type: Optional[str] = None,
                 feat_conf: Optional[str] = None, vad_conf: Optional[str] = None,
                 cmvn_conf: Optional[str] = None, vad_feat_conf: Optional[str] = None,
                 augmenter=None, speeds=(1.0,), utts=None, speakers=None,
                 speed_prob: Optional[float] = None,
                 pipeline: Optional[FeaturePipeline] = None):
        self.speed_prob = speed_prob
        self.pipeline = pipeline or FeaturePipeline(feat_type or "mfcc", feat_conf, vad_conf,
                                                    cmvn_conf, vad_feat_conf, on_the_fly=True)
        self.computer, self.cmn = self.pipeline.computer, self.pipeline.cmn
        super().__init__(data_dir, utts, speeds, augmenter, self.pipeline.rate, speakers,
                         prepare=self.pipeline.prepare_waveform)
        self.vad = [self.pipeline.vad(a, self._key(i)) for i, a in enumerate(self.audio)]
        self.lengths = np.array([int(v.sum()) for v in self.vad])
        self.feat_dim = self.computer.dim
        self._voiced_cache: Dict[int, np.ndarray] = {}

    def _key(self, index: int) -> str:
        return self.utts[self.versions[index][0]]

    def features(self, index: int, rng=None) -> np.ndarray:
        """CMN'd voiced-frame features of a whole (possibly augmented) utterance version
        (the reference :meth:`chunk` agrees with)."""
        audio = self._augmented(self.audio[index], rng) if rng is not None else self.audio[index]
        feats = self.pipeline.features(audio, self._key(index))
        self.pipeline.check_frames(self._key(index), feats, self.vad[index])
        return self.pipeline.network_input(feats, self.vad[index])

    def chunk(self, index: int, offset: int, length: int, rng=None) -> np.ndarray:
        """Voiced frames ``offset..offset+length-1`` of a version, computed on their span
        (:meth:`FeaturePipeline.chunk`): the rows equal those of :meth:`features` cut at
        ``offset`` (to float32 rounding) without augmentation or dither."""
        return self.pipeline.chunk(self._key(index), self.audio[index], self.vad[index],
                                   self._voiced(index), offset, length, self.augmenter, rng)

    def _voiced(self, index: int) -> np.ndarray:
        voiced = self._voiced_cache.get(index)
        if voiced is None:
            voiced = self._voiced_cache[index] = np.flatnonzero(self.vad[index])
        return voiced


class WaveformStore(_AudioSource):
    """Raw waveform chunks; lengths and chunk sizes are in samples."""

    input_type = "waveform"

    def __init__(self, data_dir: str, rate: int = 16000, augmenter=None, speeds=(1.0,),
                 utts=None, speakers=None, speed_prob: Optional[float] = None,
                 pipeline: Optional[FeaturePipeline] = None):
        self.speed_prob = speed_prob
        # features.prepare (GE2E: volume, VAD trimming) once per utterance, before speed
        prepare = pipeline.training_waveform if pipeline is not None and pipeline.prepare \
            else None
        super().__init__(data_dir, utts, speeds, augmenter, rate, speakers, prepare=prepare)
        self.lengths = np.array([len(a) for a in self.audio])
        self.feat_dim = 1

    def chunk(self, index: int, offset: int, length: int, rng=None) -> np.ndarray:
        piece = self.audio[index][offset:offset + length]
        return self._augmented(piece, rng) if rng is not None else piece


def read_utt2spk(data_dir: str) -> Dict[str, str]:
    return read_key_value(f"{data_dir}/utt2spk")
