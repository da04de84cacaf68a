"""Slice discovery: rarity, slices and their make-up, checked by hand, with scipy and with pandas."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

from debias.audit.discover import DiscoverConfig, LatentSpace, discover, error_aware_slices, knn_rarity
from debias.errors import DebiasError


def test_rarity_of_a_known_outlier_in_a_2d_latent_by_hand():
    # training faces on a line at x = 0, 1, 2, 4, 8; each one's nearest other face is 1, 1, 1, 2, 4 away
    train = np.array([[0, 0], [1, 0], [2, 0], [4, 0], [8, 0]], float)
    query = np.array([[20, 0],  # the outlier: 12 from its nearest training face, farther than any training face is
                      [6, 0],  # 2 from 4 and 8: three training faces (radius 1) lie in denser neighbourhoods
                      [1.5, 0]])  # 0.5 away: denser than every training face
    np.testing.assert_allclose(knn_rarity(train, query, k=1), [5 / 5, 3 / 5, 0 / 5])


def test_the_rarest_faces_are_the_ones_far_from_the_training_cloud():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(500, 2))
    query = np.vstack([rng.normal(size=(50, 2)), [[6, 6]]])
    r = knn_rarity(train, query, k=10)
    assert r[-1] == 1.0 and np.argmax(r) == 50
    assert np.median(r[:50]) < 0.8


def _planted(seed=0, n=600):
    """Faces of three looks in a 6-D latent; the 'darker' look (a third) is mostly missed."""
    rng = np.random.default_rng(seed)
    group = rng.choice(["lighter", "medium", "darker"], n)
    centre = {"lighter": 0.0, "medium": 3.0, "darker": 6.0}
    z = rng.normal(size=(n, 6)) + np.array([centre[g] for g in group])[:, None] * np.eye(6)[0]
    hit = np.where(group == "darker", rng.random(n) < 0.2, rng.random(n) < 0.9)
    faces = pd.DataFrame({"row": np.arange(n) + 1000, "model": "m", "y_true": 1, "y_score": np.where(hit, 0.9, 0.1),
                          "skin_group": group, "pose": rng.choice(["frontal", "profile"], n)})
    train = rng.normal(size=(2000, 6)) + rng.choice([0.0, 3.0], 2000)[:, None] * np.eye(6)[0]  # no darker look
    return faces, z, train, hit


def test_slices_rates_intervals_and_make_up_recomputed_by_hand():
    faces, z, train, hit = _planted()
    d = discover(faces, z, LatentSpace(train, n_dims=6), {"m": 0.5}, DiscoverConfig(k=4, seed=1))
    s, per_face = d.slices, d.faces
    assert list(s["slice"]) == [1, 2, 3, 4] and s["fit_rate"].is_monotonic_increasing  # worst first, on the fit half
    joined = faces.merge(per_face, on=["row", "model"])
    assert len(joined) == len(faces) and joined["held_out"].sum() == len(faces) // 2
    for _, r in s.iterrows():
        inside = joined[joined["slice"] == r["slice"]]
        held, fit = inside[inside["held_out"]], inside[~inside["held_out"]]
        k, n = int((held["y_score"] >= 0.5).sum()), len(held)
        assert (r["n"], r["n_held_out"], r["detected"]) == (len(inside), n, k)
        assert r["fit_rate"] == pytest.approx((fit["y_score"] >= 0.5).mean())
        if n == 0:  # a slice whose faces all fell in the fitting half has no held-out rate
            assert np.isnan(r["detection_rate"]) and np.isnan(r["ci_low"])
            continue
        ci = binomtest(k, n).proportion_ci(method="wilson")
        assert r["detection_rate"] == pytest.approx(k / n)
        assert r["ci_low"] == pytest.approx(ci.low, abs=1e-9) and r["ci_high"] == pytest.approx(ci.high, abs=1e-9)
        shares = inside["skin_group"].value_counts(normalize=True)
        for g in ("lighter", "medium", "darker"):
            assert r[f"skin_group={g}"] == pytest.approx(shares.get(g, 0.0))
        assert r["rarity"] == pytest.approx(inside["rarity"].mean())
    worst = s.iloc[0]
    assert worst["skin_group=darker"] > 0.8  # the planted group is found, and named
    assert worst["description"].startswith(f"{worst['skin_group=darker']:.0%} darker")
    assert worst["ci_high"] < 0.5  # and its held-out faces confirm it is missed (20% detected by construction)
    assert d.auc["m"] > 0.7  # the missed faces are the rare ones: the training faces never had that look


def test_misses_by_chance_make_no_slice_of_misses():
    """Faces of one look, 30% missed at random: a mixture given the miss indicator used to cut them into slices
    detected at 0% and 100%, reported with tight intervals. A slice is now a region of the latent, measured on
    faces that played no part in finding it: every rate stays near 70%."""
    rng = np.random.default_rng(5)
    n = 800
    z = rng.normal(size=(n, 3))
    hit = rng.random(n) >= 0.3
    faces = pd.DataFrame({"row": np.arange(n), "model": "m", "y_true": 1, "y_score": np.where(hit, 0.9, 0.1)})
    d = discover(faces, z, LatentSpace(rng.normal(size=(500, 3)), n_dims=3), {"m": 0.5}, DiscoverConfig(k=4))
    judged = d.slices[d.slices["n_held_out"] >= 30]
    assert len(judged) >= 2
    assert judged["detection_rate"].between(0.5, 0.9).all(), judged[["n_held_out", "detection_rate"]]
    assert (judged["ci_low"] < 0.7).all()


def test_a_model_with_too_few_faces_to_split_is_refused():
    faces, z, train, hit = _planted(n=3)
    with pytest.raises(DebiasError, match="at least 4 audited faces a model .* m has 3"):
        discover(faces, z, LatentSpace(train, n_dims=6), {"m": 0.5}, DiscoverConfig(k=2))


def test_rarity_with_fewer_training_faces_than_k_uses_the_same_k_for_both_by_hand():
    # k = 10 asked, 5 training faces at x = 0, 1, 2, 4, 8: k = 4 for all. Their 4th-nearest others are 8, 7, 6, 4, 8
    # away; a face at x = 3 has its 4th nearest (x = 0) 3 away: denser than every training face (rarity 0), where the
    # 5th nearest (the query's k of 5 against the training faces' 4) made it rarer than one of them
    train = np.array([[0, 0], [1, 0], [2, 0], [4, 0], [8, 0]], float)
    np.testing.assert_allclose(knn_rarity(train, np.array([[3.0, 0.0]]), k=10), [0.0])


def test_the_rarest_decile_holds_the_farthest_faces_when_rarity_ties_at_one():
    """Faces beyond every training face all have rarity 1: ranked by rarity with ties broken by row order, the
    farthest (listed first here) fell into decile 9 and a nearer tenth into decile 10."""
    rng = np.random.default_rng(0)
    train = rng.normal(size=(300, 2))
    far = np.column_stack([np.linspace(40, 10, 20), np.zeros(20)])  # farthest first; every one beyond all training
    near = rng.normal(size=(80, 2)) * 0.5
    z = np.vstack([far, near])
    hit = np.r_[np.zeros(10), np.ones(90)].astype(bool)  # the 10 farthest are missed
    faces = pd.DataFrame({"row": np.arange(100), "model": "m", "y_true": 1, "y_score": np.where(hit, 0.9, 0.1)})
    d = discover(faces, z, LatentSpace(train, n_dims=2), {"m": 0.5}, DiscoverConfig(k=2))
    assert (d.faces["rarity"].iloc[:20] == 1.0).all()
    r = d.rarity.set_index("decile")
    assert r.loc[10, "detection_rate"] == 0.0 and r.loc[9, "detection_rate"] == 1.0


def test_rarity_deciles_recomputed_with_pandas():
    faces, z, train, hit = _planted(seed=2)
    from sklearn.neighbors import NearestNeighbors

    space = LatentSpace(train, n_dims=6)
    d = discover(faces, z, space, {"m": 0.5}, DiscoverConfig(k=3))
    # deciles of the distance to the 10th nearest training face, with scikit-learn and pandas
    radius = NearestNeighbors(n_neighbors=10).fit(space.train).kneighbors(space.transform(z))[0][:, -1]
    dec = pd.qcut(pd.Series(radius).rank(), 10, labels=False) + 1
    expected = pd.Series(faces["y_score"].to_numpy() >= 0.5).groupby(dec.to_numpy()).mean()
    np.testing.assert_allclose(d.rarity["detection_rate"], expected.to_numpy())
    assert d.rarity["n"].sum() == len(faces) and d.rarity["detection_rate"].iloc[-1] < d.rarity["detection_rate"].iloc[0]


def test_slicing_is_deterministic_for_a_seed():
    faces, z, train, hit = _planted(seed=3)
    (a, held_a), (b, held_b) = (error_aware_slices(z, ~hit, 5, random_state=4) for _ in range(2))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(held_a, held_b)
    space = LatentSpace(train, n_dims=6)
    one = discover(faces, z, space, {"m": 0.5}, DiscoverConfig(k=5, seed=4))
    two = discover(faces, z, space, {"m": 0.5}, DiscoverConfig(k=5, seed=4))
    pd.testing.assert_frame_equal(one.slices, two.slices)
    pd.testing.assert_frame_equal(one.faces, two.faces)


@pytest.mark.parametrize("k", [1, 0, 51, 2.5])
def test_a_number_of_slices_out_of_range_is_refused(k):
    with pytest.raises(DebiasError, match="number of slices from 2 to 50"):
        DiscoverConfig(k=k)


def _discovery_of(slices: pd.DataFrame, **cfg):
    from debias.audit.discover import Discovery

    rarity = pd.DataFrame({"model": "m", "decile": [1, 2], "detection_rate": [0.9, 0.1]})
    return Discovery(slices.assign(model="m"), rarity, pd.DataFrame(), {"m": 0.8}, "", DiscoverConfig(**cfg))


def _slices(n, rate):
    """Slices with ``n`` held-out faces (twice as many in all) detected at ``rate`` there and on the fitting half."""
    n, rate = np.asarray(n), np.asarray(rate, float)
    return pd.DataFrame({"slice": np.arange(1, len(n) + 1), "n": 2 * n, "fit_rate": rate, "n_held_out": n,
                         "detected": np.round(n * rate).astype(int), "detection_rate": rate, "ci_low": 0.0,
                         "ci_high": 1.0, "rarity": 0.5, "description": ""})


def test_the_worst_slice_named_has_at_least_min_n_faces():
    from debias.report.text import slice_sentences

    lines = slice_sentences(_discovery_of(_slices([1, 40, 60], [0.0, 0.25, 0.9]), k=3, min_n=30))
    assert lines[0].startswith("m: slice 2 of 3 (80 faces) is the worst found: 25.0% of its 40 held-out faces "
                               "detected")
    lines = slice_sentences(_discovery_of(_slices([1, 4], [0.0, 1.0]), k=8, min_n=30))
    assert "fewer than 30 held-out faces: too few to name a worst one" in lines[0] and "(8 asked" in lines[0]


def test_no_slice_is_named_when_every_slice_has_the_same_outcome():
    from debias.report.text import slice_sentences

    lines = slice_sentences(_discovery_of(_slices([40, 50], [1.0, 1.0]), k=2, min_n=30))
    assert "no slice stands out" in lines[0] and "worst found" not in lines[0]
