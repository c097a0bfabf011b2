"""Label-free speaker embeddings: MoCo and DINO wrappers around any encoder.

Both wrap an encoder of the model zoo (x-vector, ResNet, ECAPA, Wav2Spk: any
module mapping a batch of chunks to embeddings) with a momentum (EMA) copy of
it, and return a loss from views of unlabelled audio only; see
:mod:`pyutils.training.selfsup.moco` and :mod:`pyutils.training.selfsup.dino`.
``ssl_options`` reads and checks the ``ssl:`` block of a training config.

The training run (stage 3 for a config with ``ssl:``) is
:mod:`pyutils.training.selfsup.train`; its views of unlabelled audio
:mod:`~pyutils.training.selfsup.data`; its stamp (no label files)
:mod:`~pyutils.training.selfsup.inputs`; ``training.init_from`` of a supervised
run :mod:`~pyutils.training.selfsup.pretrained`.
"""
from __future__ import annotations

from typing import Dict

MOCO_DEFAULTS = {"queue_size": 65536, "momentum": 0.999, "temperature": 0.07,
                 "projection": True, "projection_dim": 128, "bn_splits": 8}
DINO_DEFAULTS = {"out_dim": 65536, "hidden_dim": 2048, "bottleneck_dim": 256,
                 "momentum": 0.996, "student_temp": 0.1, "teacher_temp": 0.04,
                 "center_momentum": 0.9, "num_long": 2, "num_short": 4,
                 "long_frames": 300, "short_frames": 200}


def ssl_options(config: Dict, global_batch: int) -> Dict:
    """The ``ssl`` block with defaults filled in; errors name the bad key."""
    block = dict(config.get("ssl") or {})
    method = block.pop("method", None)
    defaults = {"moco": MOCO_DEFAULTS, "dino": DINO_DEFAULTS}
    if method not in defaults:
        raise ValueError(f"ssl.method must be moco or dino, got {method!r}")
    unknown = sorted(set(block) - set(defaults[method]))
    if unknown:
        raise ValueError(f"ssl: unknown key(s) for {method}: {', '.join(unknown)}; "
                         f"known: {', '.join(sorted(defaults[method]))}")
    options = {**defaults[method], **block, "method": method}
    if method == "moco" and options["queue_size"] % global_batch:
        raise ValueError(f"ssl.queue_size {options['queue_size']} is not a multiple of the "
                         f"global batch {global_batch} (MoCo enqueues whole batches)")
    if not 0.0 <= options["momentum"] < 1.0:
        raise ValueError(f"ssl.momentum must be in [0, 1), got {options['momentum']}")
    return options
