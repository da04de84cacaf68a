"""The benchmark's markdown table must say how many seeds each row is over (a method that ran on fewer seeds than
the others was printed under the others' seed count)."""
import importlib.util
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def _debiasing():
    spec = importlib.util.spec_from_file_location("bench_debiasing", ROOT / "benchmarks" / "debiasing.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_markdown_names_the_seed_count_of_a_method_with_fewer_seeds():
    rows = [dict(setting="skin", method=m, augment=True, n_seeds=n, metric="accuracy", mean=0.99, ci_low=0.98,
                 ci_high=1.0) for m, n in (("standard", 5), ("balanced", 2))]
    text = _debiasing().markdown(pd.DataFrame(rows), pd.DataFrame())
    lines = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    assert "CI across 5 seeds" in text
    assert "balanced (2 seeds)" in lines  # the row over 2 seeds says so
    assert "standard" in lines            # rows over all 5 need no note
    assert "99.0 [98.0, 100.0]" in lines["standard"]
