"""SpeechBrain references: ``speechbrain.lobes.features.Fbank`` + ``InputNormalization``
(sentence, no variance) + ``speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN``, as
``spkrec-ecapa-voxceleb``'s hyperparams.yaml chains them, on a small random-weight ECAPA.

speechbrain 1.x depends on torchaudio, whose wheels pin another torch; it was installed with
``--no-deps`` (plus hyperpyyaml, soundfile) and run with an empty ``torchaudio`` module on
PYTHONPATH: the code used here imports torchaudio at module level but never calls it.

Fixture ``speechbrain_ecapa.npz``: a fixed waveform, SpeechBrain's features of it, the ECAPA's
key names/shapes and weight seed (tools/parity_weights.py), its ``hyperparams.yaml`` section
and its embedding.
"""
from __future__ import annotations

import json
import os

import numpy as np

from parity_resemblyzer import speechlike
from parity_weights import random_state

ECAPA = {"input_size": 80, "channels": [32, 32, 32, 32, 96], "kernel_sizes": [5, 3, 3, 3, 1],
         "dilations": [1, 2, 3, 4, 1], "attention_channels": 16, "lin_neurons": 24}


def make(out: str, src=None) -> dict:
    import torch
    import speechbrain
    from speechbrain.lobes.features import Fbank
    from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
    from speechbrain.processing.features import InputNormalization

    wav = speechlike(2.3, 3)
    signal = torch.from_numpy(wav.astype(np.float32) / 32768.0)[None]
    fbank = Fbank(n_mels=80)
    norm = InputNormalization(norm_type="sentence", std_norm=False)
    model = ECAPA_TDNN(**ECAPA).eval()
    keys = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    seed = 300
    model.load_state_dict({k: torch.from_numpy(v) for k, v in random_state(keys, seed).items()})
    with torch.no_grad():
        feats = fbank(signal)
        normed = norm(feats, torch.ones(1))
        embedding = model(normed, torch.ones(1))[0, 0].numpy()
    hyperparams = {"n_mels": 80, "embedding_model": {**ECAPA}}
    np.savez(os.path.join(out, "speechbrain_ecapa.npz"), wav=wav, fbank=feats[0].numpy(),
             normed=normed[0].numpy(), embedding=embedding, seed=seed, keys=json.dumps(keys),
             config=json.dumps(hyperparams))
    print(f"speechbrain ecapa: {sum(int(np.prod(s)) for _, s in keys)} values, "
          f"features {tuple(feats.shape)}, embedding {embedding.shape}")
    return {"speechbrain": speechbrain.__version__, "torch": torch.__version__,
            "numpy": np.__version__, "torchaudio": "not installed (import stub)"}
