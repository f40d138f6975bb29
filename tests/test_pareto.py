"""Pareto: exact against a brute-force reference (hypothesis), and on a sweep store."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from dse.analysis import pareto_mask
from dse.specs import SpecError


def brute_force(p: np.ndarray) -> np.ndarray:
    """O(n²) reference: a finite row is on the front iff no finite row dominates it."""
    finite = np.all(np.isfinite(p), axis=1)
    out = np.zeros(len(p), dtype=bool)
    for i in range(len(p)):
        if not finite[i]:
            continue
        q = p[finite]
        dom = np.all(q <= p[i], axis=1) & np.any(q < p[i], axis=1)
        out[i] = not dom.any()
    return out


# Few distinct values, so that ties and duplicates are frequent.
values = st.sampled_from([0.0, 1.0, 2.0, 2.5, 3.0, -1.0, np.inf, np.nan, 1e-300])


@settings(max_examples=300, deadline=None)
@given(
    st.integers(2, 5).flatmap(lambda k: arrays(np.float64, st.tuples(st.integers(0, 60), st.just(k)), elements=values))
)
def test_matches_brute_force_with_ties(p):
    np.testing.assert_array_equal(pareto_mask(p), brute_force(p))


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 5), st.integers(0, 3000), st.integers(0, 2**31 - 1))
def test_matches_brute_force_on_random_clouds(k, n, seed):
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(n, k))
    if n and seed % 3 == 0:  # anti-correlated: large fronts
        p[:, 1] = -p[:, 0] + 0.01 * rng.normal(size=n)
    np.testing.assert_array_equal(pareto_mask(p), brute_force(p))


def test_large_cloud_prefilter_is_exact():
    rng = np.random.default_rng(3)
    p = rng.uniform(size=(20000, 3))
    m = pareto_mask(p)
    front = p[m]
    # Each front point is undominated by the whole cloud; each other point is dominated by the front.
    for i in rng.choice(np.flatnonzero(~m), 200, replace=False):
        assert np.any(np.all(front <= p[i], axis=1) & np.any(front < p[i], axis=1))
    for f in front[:50]:
        assert not np.any(np.all(p <= f, axis=1) & np.any(p < f, axis=1))


def test_doc_example_and_bad_shape():
    assert pareto_mask(np.array([[1.0, 2.0], [2.0, 1.0], [2.0, 2.0]])).tolist() == [True, True, False]
    with pytest.raises(SpecError, match="expected"):
        pareto_mask(np.zeros(3))
