from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import spearmanr
from torch.distributions import Normal, kl_divergence

from debias.latent import active_units, attribute_encoding, encode_faces, latent_attribute_correlation
from debias.models.dbvae import DBVAE


def test_active_units_are_the_dimensions_whose_mean_kl_from_the_prior_exceeds_the_floor():
    """Four dimensions of known posteriors: one carries the faces (means spread, small variance), one is the prior
    itself, one sits just off it (below 0.01 nats), one is narrow but constant across faces (its KL is the variance
    shrink alone)."""
    rng = np.random.default_rng(0)
    n = 500
    mu = np.zeros((n, 4))
    logvar = np.zeros((n, 4))
    mu[:, 0], logvar[:, 0] = rng.normal(0, 1.5, n), np.log(0.1)
    mu[:, 2] = 0.1  # KL 0.5 * 0.1^2 = 0.005 nats
    logvar[:, 3] = np.log(0.5)  # KL 0.5 * (0.5 - 1 - log 0.5) = 0.0966 nats
    u = active_units(mu, logvar)
    q = Normal(torch.from_numpy(mu), torch.from_numpy(np.exp(0.5 * logvar)))
    kl = kl_divergence(q, Normal(0.0, 1.0)).mean(0).numpy()  # (4,), torch's closed form
    np.testing.assert_allclose(u.kl.to_numpy(), kl, rtol=1e-12)
    assert u.kl.iloc[2] == pytest.approx(0.005) and u.kl.iloc[3] == pytest.approx(0.5 * (0.5 - 1 - np.log(0.5)))
    assert u.active.tolist() == [True, False, False, True]
    np.testing.assert_allclose(u.mu_var.to_numpy(), mu.var(0))
    assert active_units(mu, logvar, floor=0.001).active.tolist() == [True, False, True, True]


def test_encode_faces_returns_the_models_own_posterior_in_batches():
    torch.manual_seed(0)
    model = DBVAE(latent_dim=3, width=4).eval()
    imgs = np.random.default_rng(1).integers(0, 256, (7, 64, 64, 3), dtype=np.uint8)
    mu, logvar = encode_faces(model, imgs, batch_size=3)
    with torch.no_grad():
        _, mu_ref, logvar_ref = model.encode(torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255)
    np.testing.assert_allclose(mu, mu_ref.numpy(), atol=1e-5)
    np.testing.assert_allclose(logvar, logvar_ref.numpy(), atol=1e-5)


def test_attribute_encoding_names_the_strongest_dimension_overall_and_among_active_ones_as_scipy_does():
    rng = np.random.default_rng(0)
    n = 300
    frame = pd.DataFrame({"yaw": rng.uniform(-90, 90, n), "skin_tone": rng.integers(1, 11, n),
                          "light": rng.uniform(0, 1, n), "gender": rng.choice(["female", "male"], n)})
    mu = rng.normal(size=(n, 4))
    mu[:, 1] = np.abs(frame.yaw) + rng.normal(0, 30, n)  # |yaw| on dim 1, an inactive one
    mu[:, 2] = frame.skin_tone + rng.normal(0, 1, n)
    mu[:, 3] = np.abs(frame.yaw) + rng.normal(0, 60, n)  # |yaw| more weakly on dim 3, active
    active = pd.Series([True, False, True, True])
    corr = latent_attribute_correlation(mu, frame)
    enc = attribute_encoding(corr, active)
    expect = {}
    for a, v in {"yaw": frame.yaw, "abs_yaw": frame.yaw.abs(), "skin_tone": frame.skin_tone, "light": frame.light,
                 "gender": (frame.gender == "female").astype(float)}.items():
        rho = np.abs([spearmanr(mu[:, d], v).statistic for d in range(4)])
        act = np.flatnonzero(active)
        expect[a] = (rho.max(), rho.argmax(), bool(active[rho.argmax()]), rho[act].max(), act[rho[act].argmax()])
    assert set(enc.index) == set(expect)
    for a, (r, d, is_active, ra, da) in expect.items():
        row = enc.loc[a]
        assert (row.abs_rho, row.dim, row.dim_active, row.abs_rho_active, row.dim_of_active) == (
            pytest.approx(r), d, is_active, pytest.approx(ra), da), a
    assert (enc.loc["abs_yaw", "dim"], enc.loc["abs_yaw", "dim_of_active"]) == (1, 3)
    none = attribute_encoding(corr, pd.Series([False] * 4))
    assert none.abs_rho_active.isna().all() and none.dim_of_active.isna().all() and not none.dim_active.any()
