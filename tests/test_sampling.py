from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from debias.sampling import (BatchPlan, Weights, ess_fraction, group_balanced_weights, jtt_weights,
                             latent_weights, loss_weights, mass_by_group)


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


def test_loss_weights_are_proportional_to_the_loss_by_hand():
    w = loss_weights(np.array([1.0, 1.0, 2.0, 0.0]), min_ess=0.01)
    # 1/4, 1/4, 1/2 and (almost) nothing for the face with loss 0
    assert w.p == pytest.approx([0.25, 0.25, 0.5, 0.0], abs=1e-9) and not w.guarded
    # ESS of (1, 1, 2, 0) by hand: 4^2 / (6 * 4) = 2/3; a floor above it tempers the weights toward uniform
    assert w.ess == pytest.approx(2 / 3, rel=1e-6)
    g = loss_weights(np.array([1.0, 1.0, 2.0, 0.5]), min_ess=0.99)
    assert g.guarded and g.ess >= 0.99 and g.p[2] > g.p[0] > g.p[3]  # ordering kept
    with pytest.raises(ValueError, match="finite and >= 0"):
        loss_weights(np.array([1.0, np.nan]))


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


def test_group_dro_update_matches_a_hand_computation():
    from debias.sampling import GroupDRO

    dro = GroupDRO(3, eta=0.5)
    loss = np.array([1.0, 3.0, 2.0, 0.5])
    groups = np.array([0, 0, 1, 1])  # group 2 is absent from this batch
    w = dro.sample_weights(loss, groups)
    # group means: g0 = 2.0, g1 = 1.25; q_g ~ (1/3) * exp(0.5 * L_g) for present groups, 1/3 for g2
    q = np.array([np.exp(1.0), np.exp(0.625), 1.0])
    q /= q.sum()
    assert dro.q == pytest.approx(q, rel=1e-12)
    assert w == pytest.approx([q[0] / 2, q[0] / 2, q[1] / 2, q[1] / 2], rel=1e-12)
    # the weighted loss is sum_g q_g L_g over the present groups
    assert (w * loss).sum() == pytest.approx(q[0] * 2.0 + q[1] * 1.25, rel=1e-12)
    # a second step compounds: the higher-loss group keeps gaining weight
    dro.sample_weights(loss, groups)
    assert dro.q[0] > q[0]



def test_tempered_balance_gives_group_mass_proportional_to_sqrt_of_its_size():
    frame = pd.DataFrame({"g": ["a"] * 90 + ["b"] * 10})
    p = group_balanced_weights(frame, ["g"], power=0.5)
    mass = pd.Series(p).groupby(frame.g).sum()
    assert mass["a"] / mass["b"] == pytest.approx(np.sqrt(90) / np.sqrt(10), rel=1e-12)
    p1 = group_balanced_weights(frame, ["g"], power=1.0)
    assert pd.Series(p1).groupby(frame.g).sum().to_numpy() == pytest.approx([0.5, 0.5])


def test_neighbour_smoothing_averages_log_weights_over_the_k_nearest_faces_by_hand():
    # bins=2 over [0, 5]: the eight faces at 0 and the one at 2.4 share a bin of mass 0.9, the face at 5
    # is alone in a bin of mass 0.1. Unsmoothed weights 1/(0.9 + alpha) and 1/(0.1 + alpha).
    mu = np.array([0.0] * 8 + [2.4, 5.0])[:, None]
    plain = latent_weights(mu, bins=2, alpha=0.01, min_ess=0.01)
    assert plain.p[9] / plain.p[0] == pytest.approx(0.91 / 0.11, rel=1e-9)
    # k=2: the face at 5 averages its log-weight with its nearest neighbour (2.4, a common-bin face);
    # 2.4's nearest neighbour is a face at 0, same weight, so it is unchanged.
    w = latent_weights(mu, bins=2, alpha=0.01, min_ess=0.01, smooth_k=2)
    assert w.p[9] / w.p[0] == pytest.approx(np.sqrt(0.91 / 0.11), rel=1e-9)
    assert w.p[8] == pytest.approx(w.p[0], rel=1e-12)
    assert latent_weights(mu, bins=2, alpha=0.01, min_ess=0.01, smooth_k=1).p == pytest.approx(plain.p)
    with pytest.raises(ValueError, match="smooth_k"):
        latent_weights(mu, smooth_k=-1)


def _w(p):
    return Weights(p=np.asarray(p, dtype=float), ess=ess_fraction(np.asarray(p)), ess_raw=0.5, temper=0.7)


