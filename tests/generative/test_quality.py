"""Precision, recall, density and coverage (Naeem et al. 2020) against a hand computation, the probe, and the
density weights of query points."""
from __future__ import annotations

import numpy as np
import pytest

from debias.generative.quality import prdc, probe_auc
from debias.sampling import density_log_weights, latent_weights


def test_prdc_on_a_hand_computed_2d_example():
    # real balls (k=1, radius = distance to the nearest other real point): r1 (0,0) -> 2, r2 (2,0) -> 2, r3 (0,3) -> 3
    real = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 3.0]])
    # generated balls: f1 (0.5,0) and f3 (0,2.5) are 2.55 apart; f2 (10,10) is 12.5 from f3
    fake = np.array([[0.5, 0.0], [10.0, 10.0], [0.0, 2.5]])
    q = prdc(real, fake, k=1)
    # precision: f1 is inside r1's ball (0.5 < 2), f3 inside r3's (0.5 < 3), f2 inside none -> 2/3
    assert q["precision"] == pytest.approx(2 / 3)
    # recall: r1 and r2 lie in f1's ball (0.5, 1.5 < 2.55), r3 in f3's (0.5 < 2.55) -> 1
    assert q["recall"] == pytest.approx(1.0)
    # density: the (real ball, generated face) pairs: r1-f1, r2-f1 (1.5 < 2), r3-f3; r3-f1 is 3.04 > 3 -> 3 / (1 * 3)
    assert q["density"] == pytest.approx(1.0)
    # coverage: every real face has a generated one inside its ball (0.5, 1.5, 0.5)
    assert q["coverage"] == pytest.approx(1.0)


def test_prdc_coverage_and_recall_drop_when_the_generator_misses_a_mode():
    real = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [10.0, 0.0], [11.0, 0.0], [10.0, 1.0]])
    fake = np.array([[0.2, 0.2], [0.8, 0.1], [0.1, 0.7]])  # all in the first mode
    q = prdc(real, fake, k=2)
    # real radii (k=2): (0,0) 1, (1,0) and (0,1) sqrt(2); generated radii (k=2): f1 0.61, f2 0.92, f3 0.92
    assert q["precision"] == pytest.approx(1.0)
    assert q["coverage"] == pytest.approx(0.5)  # the second mode's three real faces hold no generated one
    assert q["recall"] == pytest.approx(0.5)  # (0,0) is 0.28 from f1, (1,0) 0.22 from f2, (0,1) 0.32 from f3
    # density: each generated face lies in all three first-mode balls (f2-(0,1) 1.20 and f3-(1,0) 1.14 are below
    # sqrt(2), f2-(0,0) 0.81 below 1) and in none of the second mode's -> 9 pairs over k * M = 6
    assert q["density"] == pytest.approx(9 / 6)


def test_prdc_needs_more_points_than_k():
    with pytest.raises(ValueError, match="more than k=5"):
        prdc(np.zeros((5, 2)), np.zeros((10, 2)), k=5)


def test_probe_auc_is_half_for_one_distribution_and_one_for_two_separate_ones():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 4)), rng.normal(size=(300, 4))
    assert probe_auc(a, b) == pytest.approx(0.5, abs=0.08)
    assert probe_auc(a, b + 5.0) > 0.99


def test_density_log_weights_of_query_points_by_hand():
    mu = np.array([[0.0], [0.0], [0.0], [1.0]])  # 2 bins: [0, 0.5) holds 3/4 of the mass, [0.5, 1] 1/4
    q = np.array([[0.2], [0.9], [5.0], [-3.0]])  # outside the range: the nearest end bin
    w = density_log_weights(mu, q, bins=2, alpha=0.0)
    np.testing.assert_allclose(w, np.log([4 / 3, 4.0, 4.0, 4 / 3]))
    # weighing the training points themselves is what latent_weights resamples by (no guard, no smoothing)
    x = np.random.default_rng(1).normal(size=(200, 3))
    lw = density_log_weights(x, bins=5, alpha=0.01)
    p = np.exp(lw - lw.max())
    np.testing.assert_allclose(latent_weights(x, bins=5, alpha=0.01, min_ess=1e-9).p, p / p.sum(), rtol=1e-12)
