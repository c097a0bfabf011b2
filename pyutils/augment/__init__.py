"""Data augmentation: additive noise, reverberation, speed perturbation.

On the fly: :class:`Augmenter` (config dict, per-utterance probabilities).
Offline, Kaldi style: ``steps/augment_data_dir.sh`` / ``pyutils.cli.augment_data_dir``
write a new data dir whose wav.scp pipes run ``pyutils.cli.augment_audio``.
"""
from pyutils.augment.augmenter import AugmentResult, Augmenter, clip_int16, to_int16
from pyutils.augment.noise import (NoiseCategory, NoiseSource, add_noise, list_audio_files,
                                   noise_track)
from pyutils.augment.reverb import RirSource, RoomSimulator, discover_rirs, reverberate
from pyutils.augment.speed import speed_perturb, speed_speaker_id, speed_speaker_label

__all__ = ["AugmentResult", "Augmenter", "NoiseCategory", "NoiseSource", "RirSource",
           "RoomSimulator", "add_noise", "clip_int16", "discover_rirs", "list_audio_files",
           "noise_track", "reverberate", "speed_perturb", "speed_speaker_id",
           "speed_speaker_label", "to_int16"]
