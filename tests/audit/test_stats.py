from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from debias.audit.metrics import choose_threshold, expected_calibration_error
from debias.audit.stats import (holm, mcnemar, percentile_ci, stratified_bootstrap, trend_test, wilson_interval)


def test_wilson_against_hand_computation():
    # 8 of 10 at 95%: z = 1.959964; centre (0.8 + z^2/20)/(1 + z^2/10), half width z*sqrt(.16/10 + z^2/400)/(1+z^2/10)
    z = 1.959963984540054
    centre = (0.8 + z * z / 20) / (1 + z * z / 10)
    half = z * np.sqrt(0.16 / 10 + z * z / 400) / (1 + z * z / 10)
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(centre - half) and hi == pytest.approx(centre + half)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    lo, hi = wilson_interval(0, 0)
    assert np.isnan(lo) and np.isnan(hi)


def test_holm_against_hand_computation():
    # sorted p: .01*3 = .03, .03*2 = .06, .04*1 = .04 -> running max .03, .06, .06
    assert holm(np.array([0.01, 0.04, 0.03])).tolist() == pytest.approx([0.03, 0.06, 0.06])
    assert np.isnan(holm(np.array([np.nan, 0.5]))[0]) and holm(np.array([np.nan, 0.5]))[1] == pytest.approx(0.5)


def test_mcnemar_counts_and_exact_p():
    a = np.array([1, 1, 1, 0, 0, 1, 1, 0], bool)
    b = np.array([1, 0, 0, 0, 1, 0, 1, 0], bool)
    n10, n01, p = mcnemar(a, b)
    assert (n10, n01) == (3, 1)
    assert p == pytest.approx(sps.binomtest(3, 4, 0.5).pvalue)


def test_trend_test_detects_monotone_decline():
    tone = np.repeat(np.arange(1, 11), 50)
    hit = (np.random.default_rng(0).random(500) < np.linspace(0.95, 0.5, 500)).astype(int)
    tau, p = trend_test(tone, hit)
    assert tau < 0 and p < 1e-3


def test_bootstrap_interval_agrees_with_wilson_for_a_proportion():
    rng = np.random.default_rng(0)
    hit = (rng.random(2000) < 0.7).astype(float)
    cell = np.zeros(2000, int)
    b = stratified_bootstrap(cell, {"hit": hit}, n_boot=4000, random_state=1)
    lo, hi = percentile_ci(b.sums["hit"][:, 0] / 2000)
    wl, wh = wilson_interval(hit.sum(), 2000)
    assert lo == pytest.approx(wl, abs=0.006) and hi == pytest.approx(wh, abs=0.006)


def test_bootstrap_keeps_cell_sizes_and_is_seeded():
    cell = np.array([0, 0, 0, 1, 1, 2])
    v = {"a": np.array([1.0, 0, 1, 0.5, 0.2, 3.0]), "b": np.array([0.0, 1, 1, 1, 1, 1])}
    b1 = stratified_bootstrap(cell, v, n_boot=50, random_state=3)
    b2 = stratified_bootstrap(cell, v, n_boot=50, random_state=3)
    assert b1.n.tolist() == [3, 2, 1]
    assert np.array_equal(b1.sums["a"], b2.sums["a"])
    assert np.allclose(b1.sums["a"][:, 2], 3.0)  # a one-element cell always resamples itself


def test_choose_threshold_meets_target_and_is_smallest():
    scores = np.r_[np.linspace(0, 1, 100), np.linspace(0.5, 1, 50)]
    y = np.r_[np.zeros(100), np.ones(50)]
    t = choose_threshold(scores, y, 0.05)
    fpr = (scores[y == 0] >= t).mean()
    assert fpr <= 0.05
    assert (scores[y == 0] >= np.nextafter(t, -np.inf) - 1e-9).mean() > 0.05


def test_ece_against_hand_computation():
    y = np.array([1, 0, 1, 1])
    p = np.array([0.95, 0.92, 0.15, 0.55])
    # bins: [0.9,1): y mean .5, p mean .935 -> |.435|*2/4; [0.1,.2): |1-.15|*1/4; [.5,.6): |1-.55|/4
    assert expected_calibration_error(y, p) == pytest.approx((0.435 * 2 + 0.85 + 0.45) / 4)


@pytest.mark.parametrize("n", [1, 7, 188, 212, 1000])
def test_wilson_bounds_at_0_and_n_are_exactly_0_and_1(n):
    # by hand the Wilson interval of 0 of n starts at 0 and that of n of n ends at 1; in floating point the lower
    # bound came out as -1.7e-18 for n = 188 and was reported as such
    assert wilson_interval(0, n)[0] == 0.0 and wilson_interval(n, n)[1] == 1.0
    lo, hi = wilson_interval(np.arange(n + 1), n)
    assert (lo >= 0).all() and (hi <= 1).all()
