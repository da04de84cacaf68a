"""The paired comparison of two models on the same faces."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from debias.audit.paired import paired_comparison


def _equal_gaps():
    """Two models that each detect 5 of the 10 faces of both groups x and y (other faces each): both gaps are 0."""
    rows = []
    for model, seed in (("a", 1), ("b", 2)):
        hits = np.random.default_rng(seed).permuted(np.tile([1.0] * 5 + [0.0] * 5, (2, 1)), axis=1).ravel()
        rows += [{"row": i, "model": model, "y_true": 1, "y_score": h, "g": "xy"[i // 10]} for i, h in enumerate(hits)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("seed", range(20))
def test_two_gaps_of_zero_are_never_called_a_change_and_the_interval_holds_the_estimate(seed):
    """At n_boot 5 the interval of the gap difference excluded its own estimate (both gaps 0.0), and the verdict
    said "narrowed"."""
    p = paired_comparison(_equal_gaps(), ["g"], {"a": 0.5, "b": 0.5}, n_boot=5, min_n=5, random_state=seed)
    r = p[p.statistic == "max_min_gap"].iloc[0]
    assert (r.baseline_value, r.model_value, r.difference) == (0.0, 0.0, 0.0)  # 5/10 - 5/10 in each model, by hand
    assert r.ci_low <= 0.0 <= r.ci_high and r.p_value == 1.0


def test_a_bootstrap_p_value_is_never_zero():
    """Model a detects every face of group x and none of y (gap 1), model b all of both (gap 0): every resampled
    difference is -1, and the report said p = 0. B resamples resolve p down to 2 / (B + 1), by hand."""
    rows = [{"row": i, "model": m, "y_true": 1, "y_score": float(m == "b" or i < 10), "g": "xy"[i // 10]}
            for m in ("a", "b") for i in range(20)]
    p = paired_comparison(pd.DataFrame(rows), ["g"], {"a": 0.5, "b": 0.5}, n_boot=99, min_n=5, random_state=0)
    r = p[p.statistic == "max_min_gap"].iloc[0]
    assert r.difference == -1.0 and r.p_value == pytest.approx(2 / 100)
