"""``inferbench bench --calibration``: time of the whole fit from scratch (a command, not a test)."""

from __future__ import annotations

import argparse
import json
import os
import time

import calibration


def run_calibration_bench(args: argparse.Namespace) -> int:
    """Load the data, fit both stages from the initial values (compile included), report."""

    t0 = time.perf_counter()
    prep = calibration.prepare()
    t1 = time.perf_counter()
    result = calibration.fit(prep, "wave", steps=100, uncertainty=True)
    t2 = time.perf_counter()
    out = {
        "fit_s": round(t2 - t0, 2),
        "load_and_features_s": round(t1 - t0, 2),
        "optimize_and_laplace_s": round(t2 - t1, 2),
        "rows": int(len(prep.meta)),
        "util_form": result.util_form,
        "kernel_loss": result.kernel_loss,
        "system_loss": result.system_loss,
        "cpu_count": os.cpu_count(),
    }
    if getattr(args, "json", False):
        print(json.dumps(out))
    else:
        print(
            f"calibration fit from scratch: {out['fit_s']:.1f} s ({out['rows']} measurements; data and "
            f"features {out['load_and_features_s']:.1f} s, optimization and Laplace "
            f"{out['optimize_and_laplace_s']:.1f} s)"
        )
    return 0
