"""Synthetic generation rate, end to end (attributes, rendering, writing the packed array).

    .venv/bin/python benchmarks/synth_speed.py [--n 20000] [--workers 2]

Prints images/s and appends a row to benchmarks/results/speed.csv.
"""
from __future__ import annotations

import argparse
import tempfile
import time

from debias.config import SynthConfig
from debias.data.synth import generate
from _results import append_result

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    cfg = SynthConfig(n_train=a.n, n_val=0, n_test_per_cell=1, workers=a.workers)
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        m = generate(cfg, d)
        dt = time.perf_counter() - t
    rate = len(m) / dt
    print(f"synthetic generation: {len(m)} images 64x64 in {dt:.2f} s = {rate:.0f} img/s ({a.workers} workers)")
    append_result("synth_generation", rate, "img/s", f"n={len(m)} workers={a.workers}",
                  "python benchmarks/synth_speed.py")
