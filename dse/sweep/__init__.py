"""Sweeps: specs, planning, sampling, the zarr store, local and Dask execution, resume."""

from dse._lazy import lazy_exports

_EXPORTS = {
    "Group": "_plan",
    "Plan": "_plan",
    "chunk_inputs": "_plan",
    "chunk_knobs": "_plan",
    "make_plan": "_plan",
    "SweepResult": "_run",
    "dask_chunk_task": "_run",
    "describe": "_run",
    "run_sweep": "_run",
    "sample_unit": "_sampling",
    "sample_values": "_sampling",
    "SweepSpec": "_spec",
    "load_sweep": "_spec",
    "shipped_studies": "_spec",
    "study_path": "_spec",
    "parse_constraint": "_spec",
    "parse_objective": "_spec",
    "parse_sweep": "_spec",
    "IncompleteStoreWarning": "_store",
    "consolidate": "_store",
    "open_sweep": "_store",
    "store_state": "_store",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
