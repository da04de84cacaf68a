from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from debias.sampling import (BatchPlan, Weights, cap_weights, ess_fraction, group_balanced_weights, jtt_weights,
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
    # a prior tilted by the loss, by hand: (0.5, 0.25, 0.25) x (1, 2, 2) ~ (0.5, 0.5, 0.5) -> uniform
    t = loss_weights(np.array([1.0, 2.0, 2.0]), min_ess=0.01, prior=np.array([0.5, 0.25, 0.25]))
    assert t.p == pytest.approx([1 / 3] * 3, rel=1e-9)


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



def test_group_dro_adjustment_matches_a_hand_computation():
    """Sagawa et al.'s group adjustment: q_g ~ q_g exp(eta (L_g + C / sqrt(n_g))) with n_g the training count."""
    from debias.sampling import GroupDRO, group_adjustment

    train_groups = np.array([0] * 4 + [1] * 25 + [2] * 100)  # n = 4, 25, 100
    a = group_adjustment(train_groups, 4, 2.0)  # group 3 has no training image
    assert a == pytest.approx([2 / 2, 2 / 5, 2 / 10, 0.0], rel=1e-12)
    assert group_adjustment(train_groups, 3, 0.0) is None
    dro = GroupDRO(4, eta=0.5, adjustment=a)
    loss = np.array([1.0, 3.0, 2.0, 0.5])
    w = dro.sample_weights(loss, np.array([0, 0, 1, 1]))
    q = np.array([np.exp(0.5 * (2.0 + 1.0)), np.exp(0.5 * (1.25 + 0.4)), 1.0, 1.0])  # groups 2, 3 absent
    q /= q.sum()
    assert dro.q == pytest.approx(q, rel=1e-12)
    assert w == pytest.approx([q[0] / 2, q[0] / 2, q[1] / 2, q[1] / 2], rel=1e-12)
    # at zero training loss plain Group DRO keeps equal weights; the adjustment still moves them toward small groups
    plain, adjusted = GroupDRO(3, eta=0.5), GroupDRO(3, eta=0.5, adjustment=a[:3])
    for dro in (plain, adjusted):
        dro.sample_weights(np.zeros(3), np.array([0, 1, 2]))
    assert plain.q == pytest.approx([1 / 3] * 3, rel=1e-12)
    e = np.exp(0.5 * a[:3])
    assert adjusted.q == pytest.approx(e / e.sum(), rel=1e-12)
    with pytest.raises(ValueError, match="adjustment must be"):
        GroupDRO(3, adjustment=np.array([1.0, np.nan, 0.0]))

def test_tempered_balance_gives_group_mass_proportional_to_sqrt_of_its_size():
    frame = pd.DataFrame({"g": ["a"] * 90 + ["b"] * 10})
    p = group_balanced_weights(frame, ["g"], power=0.5)
    mass = pd.Series(p).groupby(frame.g).sum()
    assert mass["a"] / mass["b"] == pytest.approx(np.sqrt(90) / np.sqrt(10), rel=1e-12)
    p1 = group_balanced_weights(frame, ["g"], power=1.0)
    assert pd.Series(p1).groupby(frame.g).sum().to_numpy() == pytest.approx([0.5, 0.5])


def test_joint_density_upweights_a_rare_combination_the_per_dimension_histograms_miss():
    from debias.sampling import gmm_weights

    rng = np.random.default_rng(0)
    # two dimensions, each bimodal with the same marginal mass, but one combination is rare:
    # (+,+) and (-,-) common, (+,-) rare. Each coordinate alone is common everywhere.
    common = np.concatenate([rng.normal([2, 2], 0.3, (480, 2)), rng.normal([-2, -2], 0.3, (480, 2))])
    rare_a = rng.normal([2, -2], 0.3, (20, 2))
    rare_b = rng.normal([-2, 2], 0.3, (20, 2))
    mu = np.concatenate([common, rare_a, rare_b])  # (1000, 2)
    rare = np.r_[np.zeros(960, bool), np.ones(40, bool)]
    joint = gmm_weights(mu, n_components=4, pca_dim=2, min_ess=0.01)
    hist = latent_weights(mu, bins=2, alpha=0.01, combine="product", min_ess=0.01)
    # the rare combination's faces get over 5x the mass of a common face (~24x at the cluster centres,
    # less on average because 1/density also lifts the tails of the common clusters)
    assert joint.p[rare].mean() > 5 * joint.p[~rare].mean()
    assert hist.p[rare].sum() == pytest.approx(0.04, abs=0.01)  # the marginals see nothing rare
    assert joint.p.sum() == pytest.approx(1.0)


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


def test_rarity_strata_cut_the_faces_rarest_first_into_equal_mass_by_hand():
    from debias.sampling import rarity_strata

    # sorted rarest first: 0.5 (mass before it 0), 0.2 (0.5), 0.1 (0.7), 0.1 (0.8), 0.1 (0.9)
    p = np.array([0.1, 0.5, 0.1, 0.2, 0.1])
    # K=2: [0, 0.5) -> the 0.5 face alone; [0.5, 1) -> the rest
    assert rarity_strata(p, 2).tolist() == [1, 0, 1, 1, 1]
    # K=4: cuts at 0.25, 0.5, 0.75; the 0.5 face leaves [0.25, 0.5) empty, so strata {0, 2, 3} become 0, 1, 2;
    # equal weights keep their order (face 0 before faces 2 and 4)
    assert rarity_strata(p, 4).tolist() == [1, 0, 2, 1, 2]
    assert rarity_strata(p * 7.0, 4).tolist() == [1, 0, 2, 1, 2]  # unnormalised weights: the same strata
    assert rarity_strata(np.full(8, 1 / 8), 4).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert rarity_strata(p, 1).tolist() == [0] * 5
    for bad in (np.array([0.5, np.nan]), np.array([0.5, -0.1]), np.zeros(3), np.zeros((2, 2))):
        with pytest.raises(ValueError, match="non-negative weights"):
            rarity_strata(bad, 2)
    with pytest.raises(ValueError, match="n_strata"):
        rarity_strata(p, 0)


def test_latent_clusters_recover_separated_groups_and_balance_their_mass_by_hand():
    from sklearn.metrics import adjusted_rand_score

    from debias.sampling import cluster_balanced_weights, latent_clusters

    rng = np.random.default_rng(0)
    sizes = (80, 15, 5)  # a common, a rare and a very rare group, far apart in a 4-d latent
    centres = np.array([[0, 0, 0, 0], [8, 0, 0, 0], [0, 8, 8, 0]], dtype=float)
    mu = np.concatenate([rng.normal(c, 0.3, (n, 4)) for c, n in zip(centres, sizes)])
    truth = np.repeat([0, 1, 2], sizes)
    codes = latent_clusters(mu, n_clusters=3, pca_dim=4)
    assert adjusted_rand_score(truth, codes) == 1.0 and sorted(np.bincount(codes)) == [5, 15, 80]
    # every cluster gets a third of the mass: p_i = 1 / (3 n_c); ESS = (sum p)^2 / (N sum p^2)
    w = cluster_balanced_weights(codes, min_ess=0.01)
    assert w.temper == 1.0
    for c in range(3):
        assert w.p[codes == c] == pytest.approx(1 / (3 * np.bincount(codes)[c]))
    assert w.ess == pytest.approx(1 / (100 * sum(n * (1 / (3 * n)) ** 2 for n in sizes)))  # 0.4245...
    # a floor above that tempers toward uniform, keeping the order
    g = cluster_balanced_weights(codes, min_ess=0.8)
    assert g.ess >= 0.8 - 1e-3 and g.temper < 1 and g.p[codes == 2][0] > g.p[codes == 0][0]
    # or a given total mass per cluster (Group DRO weights): p_i = mass_c / n_c
    m = cluster_balanced_weights(codes, min_ess=0.01, mass=np.array([0.5, 0.3, 0.2]))
    assert np.bincount(codes, weights=m.p) == pytest.approx([0.5, 0.3, 0.2])
    assert m.p[codes == 2] == pytest.approx(0.2 / np.sum(codes == 2))
    with pytest.raises(ValueError, match="n_clusters"):
        latent_clusters(mu, n_clusters=0)


def test_rarity_margins_are_tau_log_of_each_faces_upweighting_by_hand():
    from debias.sampling import rarity_margins

    # 4 faces; uniform is 1/4: the first is sampled 2x (margin tau log 2), the second 1.2x (tau log 1.2), the rest
    # below uniform (no margin, never a negative one); a face of weight 0 gets 0, not -inf
    p = np.array([0.5, 0.3, 0.2, 0.0])
    assert rarity_margins(p, 1.0) == pytest.approx([np.log(2.0), np.log(1.2), 0.0, 0.0])
    assert rarity_margins(p * 7, 0.5) == pytest.approx([0.5 * np.log(2.0), 0.5 * np.log(1.2), 0.0, 0.0])  # scale-free
    assert (rarity_margins(np.full(5, 0.2), 1.0) == 0).all()
    with pytest.raises(ValueError, match="p must be"):
        rarity_margins(np.array([0.5, np.nan]), 1.0)


def _w(p):
    return Weights(p=np.asarray(p, dtype=float), ess=ess_fraction(np.asarray(p)), ess_raw=0.5, temper=0.7)


def test_cap_weights_by_hand():
    # N = 4, cap 1.6 / 4 = 0.4: the 0.5 face gives 0.1 to the others in proportion (x 0.6 / 0.5 = 1.2)
    assert cap_weights(_w([0.5, 0.3, 0.1, 0.1]), 1.6).p == pytest.approx([0.4, 0.36, 0.12, 0.12])
    # cap 0.3: capping 0.7 lifts 0.2 over the cap too (x 0.7 / 0.3); with both capped the rest scale x 0.4 / 0.1 = 4
    c = cap_weights(_w([0.7, 0.2, 0.05, 0.05]), 1.2)
    assert c.p == pytest.approx([0.3, 0.3, 0.2, 0.2])
    assert c.ess == pytest.approx(1 / (2 * 0.09 + 2 * 0.04) / 4) and c.ess_raw == 0.5 and c.temper == 0.7
    assert cap_weights(_w([0.7, 0.2, 0.05, 0.05]), 1).p == pytest.approx([0.25] * 4)  # 1 = uniform
    w = _w([0.4, 0.3, 0.2, 0.1])
    assert cap_weights(w, 1.6) is w  # nothing above the cap: untouched
    with pytest.raises(ValueError, match="max_weight"):
        cap_weights(w, 0.5)


def test_cap_weights_keeps_the_order_and_ratios_of_the_uncapped_faces():
    rng = np.random.default_rng(0)
    p = rng.pareto(1.0, 1000) + 1e-3
    p /= p.sum()
    c = cap_weights(_w(p), 5).p
    assert c.sum() == pytest.approx(1) and c.max() == pytest.approx(5 / 1000)
    free = c < 5 / 1000 * (1 - 1e-9)
    assert np.allclose(c[free] / p[free], (c[free] / p[free])[0])  # one common factor
    assert np.all(np.diff(c[np.argsort(p)]) >= -1e-15)  # order kept


def test_fit_latent_clusters_assigns_new_points_to_the_training_clusters():
    """New latent means go to the cluster of the training faces they sit among, and the training faces' own
    assignment equals their codes (also when the mixture has more components than there are groups)."""
    from debias.sampling import fit_latent_clusters, latent_clusters

    rng = np.random.default_rng(1)
    centres = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0]], dtype=float)
    mu = np.concatenate([rng.normal(c, 0.5, (n, 3)) for c, n in zip(centres, (60, 25, 8))])
    for k in (3, 6):
        codes, assign = fit_latent_clusters(mu, n_clusters=k, pca_dim=3, random_state=0)
        assert np.array_equal(codes, latent_clusters(mu, n_clusters=k, pca_dim=3, random_state=0))
        assert np.array_equal(assign(mu), codes)
    codes, assign = fit_latent_clusters(mu, n_clusters=3, pca_dim=3, random_state=0)
    got = assign(np.concatenate([rng.normal(c, 0.5, (5, 3)) for c in centres]))
    for i in range(3):  # the five new points near a centre share the cluster of the training points there
        assert (got[5 * i:5 * i + 5] == codes[np.argmin(np.linalg.norm(mu - centres[i], axis=1))]).all()
    assert sorted(set(got)) == [0, 1, 2]
