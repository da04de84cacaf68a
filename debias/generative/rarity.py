"""A DB-VAE's view of faces for generation: their latent means and log-variances, the run's density settings, and
how rare a face's latent region is among the training faces (the density weights of debias/sampling.py)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from debias.errors import DebiasError
from debias.models.dbvae import DBVAE
from debias.sampling import density_log_weights, ess_guard

NOT_A_DBVAE = ("`latent_run` {run} holds a {kind} model; generation reads a DB-VAE's latent. Give a default "
               "`debias train` run folder (its latent/ holds the DB-VAE) or a run trained with --method dbvae.")


@dataclass
class LatentModel:
    """A DB-VAE loaded for generation, with the density settings its run sampled by."""

    path: Path
    model: DBVAE
    size: int  # the image side it reads and decodes
    bins: int = 10
    alpha: float = 0.01
    combine: str = "product"
    temperature: float = 0.0

    def encode(self, images: np.ndarray, *, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """(mu, logvar), each (N, k), of (N, H, W, 3) uint8 images."""
        from debias.models.run import encode_posterior

        return encode_posterior(self.model, images, batch_size=batch_size)

    def log_rarity(self, mu_train: np.ndarray, mu: np.ndarray) -> np.ndarray:
        """(M,) log-weights of the latent means ``mu`` under the histograms of the training faces' ``mu_train``:
        the higher, the rarer their region (the run's bins, alpha and combine)."""
        return density_log_weights(mu_train, mu, bins=self.bins, alpha=self.alpha, combine=self.combine,
                                   temperature=self.temperature)


def load_latent(run: str | Path, device: torch.device) -> LatentModel:
    """The DB-VAE of ``run`` (a two-stage run's ``latent/`` stage, or a DB-VAE run itself) with its density settings
    from its config.json. Raises DebiasError when it is not a DB-VAE run."""
    from debias.models.run import latent_run, load_run

    path = latent_run(run)
    model, arch = load_run(path, device)
    if not isinstance(model, DBVAE):
        raise DebiasError(NOT_A_DBVAE.format(run=path, kind=arch.get("kind", "?")))
    try:
        cfg = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        cfg = {}
    keep = {k: cfg[k] for k in ("bins", "alpha", "combine", "temperature") if k in cfg}
    return LatentModel(path, model, int(arch["size"]), **keep)


def draw_by_rarity(log_w: np.ndarray, n: int, *, min_ess: float, random_state: int) -> tuple[np.ndarray, float]:
    """``n`` distinct positions of a pool of ``len(log_w)`` faces, drawn without replacement with probability
    proportional to exp(log_w), tempered until the effective sample size is at least ``min_ess`` of the pool.

    Returns
    -------
    (positions (n,), the tempering exponent the guard applied: 1 untouched).
    """
    p, temper = ess_guard(np.asarray(log_w, dtype=np.float64), min_ess)
    p = np.maximum(p, 1e-300)  # every face stays drawable, so n distinct ones always exist
    pos = np.random.default_rng([random_state, 5]).choice(len(p), n, replace=False, p=p / p.sum())
    return pos, temper
