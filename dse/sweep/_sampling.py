"""Sampled designs: random, Sobol and Latin-hypercube points, stateless per design index.

A design's values depend only on (seed, knob, index), never on the chunking, so a resumed or
distributed sweep samples exactly the designs of an uninterrupted one.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from ._spec import SweepSpec

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A stateless 64-bit hash (SplitMix64 finalizer): the same value for the same index,
    whatever the chunking, so sampled designs do not depend on the chunk size."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _uniform(seed: int, stream: int, idx: np.ndarray) -> np.ndarray:
    """U[0, 1) for design indices ``idx`` in stream ``stream`` (one stream per knob)."""
    key = _splitmix64(np.array([seed * 1_000_003 + stream], dtype=np.uint64))[0]
    with np.errstate(over="ignore"):
        h = _splitmix64(idx.astype(np.uint64) * np.uint64(0xD1B54A32D192ED03) ^ key)
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def _permute(n: int, seed: int, stream: int, idx: np.ndarray) -> np.ndarray:
    """A pseudo-random permutation of [0, n) evaluated at ``idx`` in O(1) memory: a 4-round
    Feistel network on the smallest even power of two ≥ n, with cycle walking."""
    half = max(1, (max(n - 1, 1).bit_length() + 1) // 2)
    mask = np.uint64((1 << half) - 1)
    keys = [_splitmix64(np.array([seed * 7919 + stream * 104729 + r + 1], dtype=np.uint64))[0] for r in range(4)]
    x = idx.astype(np.uint64)
    todo = np.ones(len(x), dtype=bool)
    while True:
        left, right = x[todo] >> np.uint64(half), x[todo] & mask
        for k in keys:
            left, right = right, left ^ (_splitmix64(right ^ k) & mask)
        x[todo] = (left << np.uint64(half)) | right
        todo[todo] = x[todo] >= np.uint64(n)
        if not todo.any():
            return x.astype(np.int64)


def sample_unit(spec: SweepSpec, start: int, stop: int) -> np.ndarray:
    """Points [start, stop) of the unit hypercube, shape [stop − start, n_sampled]."""
    d, idx = len(spec.sampled), np.arange(start, stop, dtype=np.int64)
    if spec.sample_method == "sobol":
        from scipy.stats import qmc  # optional and slow to import: only Sobol sweeps pay for it

        eng = qmc.Sobol(d, scramble=True, seed=spec.sample_seed)
        if start:
            eng.fast_forward(start)
        with warnings.catch_warnings():  # balance warning when n is not a power of two
            warnings.simplefilter("ignore")
            return eng.random(stop - start)
    cols = []
    for j in range(d):
        u = _uniform(spec.sample_seed, j, idx)
        if spec.sample_method == "latin_hypercube":  # one point per stratum, strata permuted
            u = (_permute(spec.sample_n, spec.sample_seed, j, idx) + u) / spec.sample_n
        cols.append(u)
    return np.stack(cols, axis=1) if cols else np.empty((len(idx), 0))


def sample_values(spec: SweepSpec, start: int, stop: int) -> dict[str, np.ndarray]:
    """Sampled knob values (file units, rounded to float32) of designs [start, stop)."""
    u = sample_unit(spec, start, stop)
    out = {}
    for j, a in enumerate(spec.sampled):
        if a.log:
            v = np.exp(np.log(a.low) + u[:, j] * (np.log(a.high) - np.log(a.low)))
        else:
            v = a.low + u[:, j] * (a.high - a.low)
        if a.integer:
            v = np.clip(np.rint(v), math.ceil(a.low), math.floor(a.high))
        out[a.key] = v.astype(np.float32)
    return out
