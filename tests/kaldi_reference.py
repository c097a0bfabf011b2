"""Ground truth for the feature tests: the same Kaldi options run through
kaldi-native-fbank (a C++ port of Kaldi's feature code)."""
from typing import Mapping, Optional

import numpy as np

from pyutils.features.fbank import FbankComputer
from pyutils.features.mfcc import MfccComputer


def _knf_frame_options(frame, opts: Mapping[str, object]) -> None:
    """Copy frame and mel options onto a kaldi-native-fbank options object."""
    fo = frame.frame_opts
    fo.samp_freq = opts["sample-frequency"]
    fo.frame_length_ms = opts["frame-length"]
    fo.frame_shift_ms = opts["frame-shift"]
    fo.dither = opts["dither"]
    fo.preemph_coeff = opts["preemphasis-coefficient"]
    fo.remove_dc_offset = opts["remove-dc-offset"]
    fo.window_type = opts["window-type"]
    fo.round_to_power_of_two = opts["round-to-power-of-two"]
    fo.blackman_coeff = opts["blackman-coeff"]
    fo.snip_edges = opts["snip-edges"]
    frame.mel_opts.num_bins = opts["num-mel-bins"]
    frame.mel_opts.low_freq = opts["low-freq"]
    frame.mel_opts.high_freq = opts["high-freq"]
    frame.use_energy = opts["use-energy"]
    frame.energy_floor = opts["energy-floor"]
    frame.raw_energy = opts["raw-energy"]
    frame.htk_compat = False


def _knf_run(online, waveform: np.ndarray, sample_frequency: float) -> np.ndarray:
    """Feed the whole waveform to a knf online extractor and stack its frames."""
    online.accept_waveform(sample_frequency, np.asarray(waveform, dtype=np.float32))
    online.input_finished()
    rows = [np.array(online.get_frame(i)) for i in range(online.num_frames_ready)]
    return np.stack(rows) if rows else np.zeros((0, online.dim), dtype=np.float32)


def compute_mfcc_reference(waveform: np.ndarray,
                           options: Optional[Mapping[str, object]] = None) -> np.ndarray:
    """MFCC of ``waveform`` computed by kaldi-native-fbank with the same options."""
    import kaldi_native_fbank as knf

    opts = MfccComputer(options).options
    knf_opts = knf.MfccOptions()
    _knf_frame_options(knf_opts, opts)
    knf_opts.num_ceps = opts["num-ceps"]
    knf_opts.cepstral_lifter = opts["cepstral-lifter"]
    return _knf_run(knf.OnlineMfcc(knf_opts), waveform, opts["sample-frequency"])


def compute_fbank_reference(waveform: np.ndarray,
                            options: Optional[Mapping[str, object]] = None) -> np.ndarray:
    """Fbank of ``waveform`` computed by kaldi-native-fbank with the same options."""
    import kaldi_native_fbank as knf

    opts = FbankComputer(options).options
    knf_opts = knf.FbankOptions()
    _knf_frame_options(knf_opts, opts)
    knf_opts.use_log_fbank = opts["use-log-fbank"]
    knf_opts.use_power = opts["use-power"]
    return _knf_run(knf.OnlineFbank(knf_opts), waveform, opts["sample-frequency"])
