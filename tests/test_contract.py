"""Contract suite over every cost function: jit equals eager, vmap equals a loop, finite
gradients for every continuous knob, float64 scalar outputs, no recompilation on a second call;
on every hardware family and every workload kind."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_trees_all_close
from helpers import config, f

import dse
from models import achievable_software, gemm_cost, serve
from models.platform import Level, collective_s
from models.workloads import operator_table

# The pure model functions, called directly: in float64, as the engine calls them.
pytestmark = pytest.mark.usefixtures("float64")


def _serve_case(model="llama-3-70b", hw="h100-sxm5-80gb"):
    c = config(model, hw, tp=4, batch=8, prompt_tokens=1024, output_tokens=128)
    args = (c.model, c.chip, c.platform, c.scenario, c.economics, achievable_software())

    def fn(*a):
        m = serve(*a)
        return m.latency_s, m.energy_j, m.usd_per_mtok, m.ttft_s, m.tpot_s

    return fn, args


def _op_cost_case():
    c = config("mixtral-8x7b", "a100-sxm4-80gb", batch=4)
    sw = achievable_software()

    def fn(model, chip, scenario, sw, tp, past):
        ops = operator_table(model, scenario, tp, jnp.ones_like(tp), past)
        cost = chip.operator_cost(sw, ops, "bf16", "bf16", "bf16")
        return (jnp.maximum(cost.compute_s, cost.memory_s) * ops.repeat).sum()

    return fn, (c.model, c.chip, c.scenario, sw, f(2), f(500))


def _gemm_case():
    c = config(hardware="h100-sxm5-80gb")

    def fn(chip, sw, m, n, k):
        return gemm_cost(chip, sw, m, n, k, "fp8")

    return fn, (c.chip, achievable_software(), f(64), f(4096), f(8192))


def _allreduce_case():
    # Hierarchical all-reduce over 16 chips: two scale-up domains of 8 and a scale-out level.
    def allreduce(message, n, bw, latency):
        up = Level(8.0, bw, latency, "switch")
        out = Level(1.0, bw / 8.0, 4.0 * latency, "switch")
        return collective_s("all_reduce", message, n, 1.0, (up, out), achievable_software())

    return allreduce, (f(1e6), f(16), f(300e9), f(5e-6))


CASES = {
    # Every hardware family, and every workload kind the Workload interface carries (MoE: the
    # DeepSeek and Jamba cases; Mixtral's is in test_network and test_serve).
    "serve_dense_gpu": lambda: _serve_case(),
    "serve_mla_systolic": lambda: _serve_case("deepseek-v2-lite", "tpu-v5e"),
    "serve_mamba2_imc": lambda: _serve_case("mamba2-2.7b", "dmatrix-corsair"),
    "serve_hybrid_dataflow": lambda: _serve_case("jamba-1.5-mini", "wse-3"),
    "serve_window_sram_chiplet": lambda: _serve_case("gemma-2-9b", "groq-lpu"),
    "serve_diffusion_cgra": lambda: _serve_case("sd3-medium", "sn40l"),
    "serve_vlm_gpu": lambda: _serve_case("qwen2-vl-7b", "a100-sxm4-80gb"),
    "serve_vit_systolic": lambda: _serve_case("vit-l-16", "tpu-v5e"),
    "operator_cost": _op_cost_case,
    "gemm_cost": _gemm_case,
    "ring_allreduce": _allreduce_case,
}


@pytest.fixture(params=sorted(CASES))
def case(request):
    return CASES[request.param]()


def _scale_leaves(tree, s):
    return jax.tree.map(lambda x: x * s, tree)


def test_jit_equals_eager_and_compiles_once(case):
    fn, args = case
    traces = []

    def counted(*a):
        traces.append(1)
        return fn(*a)

    jf = jax.jit(counted)
    assert_trees_all_close(jf(*args), fn(*args), rtol=1e-12)
    # Different values, same structure: no new trace.
    jax.block_until_ready(jf(*_scale_leaves(args, 1.5)))
    assert len(traces) == 1


def test_outputs_are_float64_scalars(case):
    fn, args = case
    for leaf in jax.tree.leaves(fn(*args)):
        assert jnp.shape(leaf) == () and jnp.asarray(leaf).dtype == jnp.float64


def test_vmap_equals_loop(case):
    fn, args = case
    scales = [0.5, 1.0, 2.0]
    # Vary every continuous leaf of the first argument together (e.g. all chip rates).
    first = args[0]
    batched = jax.tree.map(lambda x: jnp.stack([x * s for s in scales]), first)
    vm = jax.jit(jax.vmap(lambda a0: fn(a0, *args[1:])))(batched)
    for i, s in enumerate(scales):
        loop = fn(_scale_leaves(first, s), *args[1:])
        assert_trees_all_close(jax.tree.map(lambda x: x[i], vm), loop, rtol=1e-12)


def test_finite_gradients_for_every_continuous_knob(case):
    fn, args = case

    def scalar(*a):
        return sum(jnp.sum(x) for x in jax.tree.leaves(fn(*a)))

    grads = jax.grad(scalar, argnums=tuple(range(len(args))))(*args)
    for g in jax.tree.leaves(grads):
        assert np.all(np.isfinite(np.asarray(g)))


def test_gradient_reaches_the_knobs_that_matter():
    fn, args = _serve_case()
    grads = jax.grad(lambda chip: fn(args[0], chip, *args[2:])[0])(args[1])
    assert float(grads.hbm_bandwidth_bytes_per_s) < 0  # more bandwidth, lower latency
    assert float(grads.peak_bf16_flops_per_s) < 0
    sw_grad = jax.grad(lambda sw: fn(*args[:5], sw)[0])(args[5])
    assert np.all(np.asarray(sw_grad.util_knots) <= 0) and np.any(np.asarray(sw_grad.util_knots) < 0)


def test_engine_boundary_does_not_recompile():
    from dse.engine import compiled_programs, run_designs, software_levels

    c = config("llama-3-8b", "a100-sxm4-80gb")
    sw = software_levels(dse.load_hardware("a100-sxm4-80gb"), ["achievable"])
    run_designs(c, {"batch": np.arange(1.0, 9.0)}, sw, chunk=8)
    before = compiled_programs()
    c2 = dataclasses.replace(c, chip=dataclasses.replace(c.chip, tdp_w=f(500)))
    run_designs(c2, {"batch": np.arange(2.0, 10.0)}, sw, chunk=8)
    assert compiled_programs() == before


def test_declared_floors_are_the_versions_ci_installs():
    """Every floor in pyproject.toml is pinned exactly in .ci/minimum-versions.txt, which CI
    installs: the minimum versions a user is promised are the tested ones."""
    import re
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"], *project["optional-dependencies"]["test"]]
    floors = {}
    for req in declared:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[a-z,]+\])?>=([0-9.]+)(?:,<[0-9.]+)?", req)
        assert m, f"pyproject: '{req}': expected NAME>=FLOOR"
        floors[m[1].lower().replace("_", "-")] = m[2]
    pins = {}
    for line in (root / ".ci" / "minimum-versions.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = version
    for name, floor in floors.items():
        assert name in pins, f"{name} has a floor but no pin in .ci/minimum-versions.txt"
        assert tuple(map(int, pins[name].split("."))) == tuple(map(int, floor.split("."))) + (0,) * (
            len(pins[name].split(".")) - len(floor.split("."))
        ), f"{name}: floor {floor}, pinned {pins[name]}"
