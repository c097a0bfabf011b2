"""Random weights from a seed, the same on both sides of a parity test.

The fixture keeps the source network's key names and shapes (not its weights), so fixtures
stay a few kilobytes whatever the network's size; the test regenerates the weights with
:func:`random_state` and feeds them to the importer in the source's checkpoint layout.
NumPy's PCG64 ``Generator`` only; no torch, no pyutils.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np


def random_state(keys: List[Tuple[str, Tuple[int, ...]]], seed: int) -> Dict[str, np.ndarray]:
    """{key: float32 array} in ``keys`` order: conv/linear weights N(0, 1/fan_in), batch-norm
    scales 1 + N(0, 0.1^2), running variances U(0.5, 1.5), every other vector N(0, 0.1^2);
    ``num_batches_tracked`` 0 (int64)."""
    rng = np.random.default_rng(seed)
    state = {}
    for key, shape in keys:
        shape = tuple(int(n) for n in shape)
        leaf = key.rsplit(".", 1)[-1]
        if leaf == "num_batches_tracked":
            state[key] = np.zeros(shape, dtype=np.int64)
            continue
        if leaf == "running_var":
            value = rng.uniform(0.5, 1.5, shape)
        elif len(shape) >= 2:
            value = rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))
        elif leaf == "weight":          # a norm's scale
            value = 1.0 + 0.1 * rng.standard_normal(shape)
        else:
            value = 0.1 * rng.standard_normal(shape)
        state[key] = value.astype(np.float32)
    return state
