"""The baseline generator: a DB-VAE's own decoder, sampled around the latents of training faces chosen by the run's
density weights (the faces its latent holds rare are chosen most often)."""
from __future__ import annotations

import numpy as np
import torch

from debias.models.dbvae import DBVAE


@torch.no_grad()
def decoder_samples(model: DBVAE, mu: np.ndarray, logvar: np.ndarray, p: np.ndarray, n: int, *,
                    random_state: int = 0, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """``n`` faces decoded from z = mu_i + sigma_i * eps, eps ~ N(0, I), for faces i drawn with probability ``p``.

    Parameters
    ----------
    model : the DB-VAE whose decoder draws.
    mu, logvar : (N, k) latent means and log-variances of the training faces.
    p : (N,) drawing probabilities of those faces (the run's sampling weights), summing to 1.
    n : faces to decode.

    Returns
    -------
    (images (n, S, S, 3) uint8, the drawn face of each (n,)).
    """
    rng = np.random.default_rng([random_state, 9])
    faces = rng.choice(len(p), n, p=p)
    eps = rng.standard_normal((n, mu.shape[1]))
    z = mu[faces] + np.exp(0.5 * logvar[faces]) * eps  # (n, k)
    device = next(model.parameters()).device
    model.eval()
    out = []
    for s in range(0, n, batch_size):
        x = model.decode(torch.from_numpy(z[s:s + batch_size]).float().to(device))  # (b, 3, S, S) in [0, 1]
        out.append((x.clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8))
    return np.concatenate(out), faces
