"""Shared test settings: the ``float64`` fixture, one tolerance helper.

The models are dtype-agnostic; the engine evaluates in float64 inside its boundary. Tests
that call model functions directly run them in float64 too (``float64``), so that
hand-derived references hold to 1e-9.
"""

from __future__ import annotations

import os
import tempfile

# Programs compile without LLVM's optimizations and with XLA's older loop emitters for
# fusions in the tests (and the CLI subprocesses they start): the suite's hundreds of
# programs compile in about half the time (a quarter from each); the operations and their
# results are XLA's own either way, checked here to the suite's tolerances.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false")

import jax  # noqa: E402 (after XLA_FLAGS)
import numpy as np
import pytest  # noqa: E402

# No global float64: the engine's boundary enters float64 itself (dse.engine.float64), and
# what the tests run through it passes in JAX's default precision. Tests that call the
# pure model functions directly (outside the engine) ask for float64 with this fixture, as a
# caller of the models outside the engine would.


@pytest.fixture
def float64():
    with jax.enable_x64(True):
        yield


# One compile cache for the test session, fresh each run and shared by the xdist workers and
# the CLI subprocesses (the controller creates it before the workers start): a program one
# process compiled is loaded by the others instead of compiled again. Nothing outside the run
# is read or written (the user's ~/.cache stays untouched).
if "INFERBENCH_TEST_CACHE" not in os.environ:
    os.environ["INFERBENCH_TEST_CACHE"] = tempfile.mkdtemp(prefix="inferbench-tests-")
    os.environ["XDG_CACHE_HOME"] = os.environ["INFERBENCH_TEST_CACHE"]

from dse.engine import enable_compilation_cache  # noqa: E402 (after the cache directory is chosen)

enable_compilation_cache()

RTOL = {np.dtype("float64"): 1e-9, np.dtype("float32"): 1e-5}


def assert_trees_all_close(a, b, rtol: float | None = None, atol: float = 0.0) -> None:
    """Leaf-wise closeness of two PyTrees with per-dtype default tolerances."""
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        x, y = np.asarray(x), np.asarray(y)
        tol = rtol if rtol is not None else RTOL.get(x.dtype, 1e-9)
        np.testing.assert_allclose(x, y, rtol=tol, atol=atol)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Say up front what the run costs: the suite is minutes of compiling on a small machine."""
    if hasattr(session.config, "workerinput"):  # an xdist worker: the controller speaks
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        marks = session.config.getoption("markexpr") or ""
        expected = {"figures": "about 8-10 minutes", "docs or browser": "about 8 minutes"}.get(
            marks, "about 5-6 minutes"
        )
        what = "the suite" if "not figures" in marks else f"the tests marked {marks!r}"
        reporter.write_line(
            f"InferBench: {what} on {os.cpu_count()} cores; expected {expected} on 2 cores "
            "(a dot per test, the share done at the end of each line; the slowest tests are listed last)"
        )
