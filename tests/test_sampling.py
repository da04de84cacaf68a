from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from debias.sampling import (BatchPlan, ess_fraction, group_balanced_weights, jtt_weights, latent_weights,
                             mass_by_group)


def test_rare_bin_gets_higher_probability_than_dense_bin():
    rng = np.random.default_rng(0)
    mu = np.concatenate([rng.normal(0, 0.1, (95, 1)), rng.normal(5, 0.1, (5, 1))])  # 5 rare faces
    for combine in ("product", "max", "tempered"):
        w = latent_weights(mu, bins=10, alpha=0.01, combine=combine, temperature=1.0, min_ess=0.01)
        assert w.p[95:].min() > w.p[:95].max(), combine
        assert w.p.sum() == pytest.approx(1.0)
    # by hand for one dimension: bin masses 0.95 and 0.05 -> weights 1/(0.96) and 1/(0.06)
    w = latent_weights(mu, bins=2, alpha=0.01, combine="product", min_ess=0.01)
    ratio = w.p[99] / w.p[0]
    assert ratio == pytest.approx(0.96 / 0.06, rel=1e-9)


def test_large_alpha_gives_uniform():
    mu = np.random.default_rng(1).normal(size=(500, 4))
    w = latent_weights(mu, alpha=1e9, combine="product")
    assert np.allclose(w.p, 1 / 500, rtol=1e-6) and w.ess == pytest.approx(1.0)


def test_ess_matches_definition():
    w = np.array([1.0, 1.0, 2.0, 4.0])
    assert ess_fraction(w) == pytest.approx((8.0 ** 2 / 22.0) / 4)


def test_collapse_case_is_reproduced_and_guard_holds():
    """32 latent dims, alpha=0.01, plain product: almost all mass on a handful of faces."""
    rng = np.random.default_rng(0)
    mu = rng.normal(size=(5000, 32))
    raw = latent_weights(mu, alpha=0.01, combine="product", min_ess=1e-9)  # guard effectively off
    top = np.sort(raw.p)[::-1]
    assert top[:10].sum() > 0.5 and raw.ess < 0.01  # the collapse
    guarded = latent_weights(mu, alpha=0.01, combine="product", min_ess=0.3)
    assert guarded.ess >= 0.3 - 1e-3 and guarded.guarded and guarded.ess_raw == pytest.approx(raw.ess)
    assert np.sort(guarded.p)[::-1][:10].sum() < 0.05
    # tempering keeps the ordering of faces
    assert (np.argsort(raw.p, kind="stable") == np.argsort(guarded.p, kind="stable")).mean() > 0.99


def test_group_balanced_and_jtt_weights():
    f = pd.DataFrame({"g": ["a"] * 8 + ["b"] * 2})
    p = group_balanced_weights(f, ["g"])
    assert p[:8].sum() == pytest.approx(0.5) and p[8:].sum() == pytest.approx(0.5)
    with pytest.raises(KeyError, match="balance-by column"):
        group_balanced_weights(f, ["skin"])
    p = jtt_weights(np.array([1, 0, 0, 0]), 5.0)
    assert p.tolist() == pytest.approx([5 / 8, 1 / 8, 1 / 8, 1 / 8])
    assert mass_by_group(p, pd.DataFrame({"g": ["x", "y", "y", "y"]}), ["g"]) == pytest.approx(
        {"g=x": 5 / 8, "g=y": 3 / 8})


def test_batch_plan_keeps_face_ratio_and_is_seeded():
    faces, non = np.arange(10), np.arange(10, 30)
    p = np.full(10, 0.1)
    plan = list(BatchPlan(faces, p, non, batch_size=8, face_ratio=0.25, n_batches=5, seed=1, epoch=0))
    assert all(len(b) == 8 and (b < 10).sum() == 2 for b in plan)
    again = list(BatchPlan(faces, p, non, batch_size=8, face_ratio=0.25, n_batches=5, seed=1, epoch=0))
    assert all((a == b).all() for a, b in zip(plan, again))
