"""The DB-VAE recipes: what ``debias train --method dbvae`` trains, resolved for the data set at hand.

``two-stage`` (the default): a DB-VAE reconstructs the central half of each image, reads the density of its
faces' latent means once, after about ``FREEZE_IMAGES`` training images, smooths each face's log-weight over its 50
nearest latent neighbours and saves those weights; then a plain classifier trained with sharpness-aware
minimisation draws its faces by them. The latent finds what is rare without labels, and the detector never
carries the VAE's reconstruction loss on its own encoder.

``paper``: the DB-VAE of Amini, Soleimany, Schwarting, Bhatia & Rus (AIES 2019): one network, the full image
reconstructed, weights recomputed every epoch from the per-dimension histograms.

Budgets are set in training images, not epochs, so a recipe reads its latent at the same point of training
whatever the size of the data set, and its effective sample size never falls below ``MIN_EFFECTIVE_FACES`` faces.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from debias.config import TrainConfig
from debias.models.run import LATENT_DIR

FREEZE_IMAGES = 20_000  # the two-stage recipe computes its latent weights after about this many training images
MIN_ESS = 0.1  # the two-stage recipe's floor on the effective sample size, as a fraction of the training faces ...
MIN_EFFECTIVE_FACES = 1_000  # ... and never below this many faces (on small sets the fraction would be too few)
SAM_RHO = 0.05  # the SAM radius of the two-stage recipe (Foret et al.'s usual value)

# the options a recipe sets when the user left them at None
TWO_STAGE = dict(rec_region="center", refresh_weights=False, smooth_k=50, sam_rho=SAM_RHO,
                 freeze_after=FREEZE_IMAGES)
PAPER = dict(rec_region="full", min_ess=0.3, refresh_weights=True, smooth_k=0, sam_rho=0.0, freeze_after=0)


def is_two_stage(cfg: TrainConfig) -> bool:
    return cfg.method == "dbvae" and cfg.recipe == "two-stage"


def resolve(cfg: TrainConfig, *, n_faces: int) -> TrainConfig:
    """``cfg`` with every option left at None set by its method and recipe (``n_faces``: the training faces)."""
    if is_two_stage(cfg):
        chosen = {**TWO_STAGE, "min_ess": min(1.0, max(MIN_ESS, MIN_EFFECTIVE_FACES / max(n_faces, 1)))}
    else:
        chosen = PAPER
    return dataclasses.replace(cfg, **{k: v for k, v in chosen.items() if getattr(cfg, k) is None})


def latent_stage(cfg: TrainConfig, *, epoch_images: int) -> TrainConfig:
    """The first stage of the two-stage recipe (``cfg`` resolved): a DB-VAE that stops once its kept latent weights
    are computed, after about ``cfg.freeze_after`` training images (``epoch_images``: the images an epoch trains
    on): at the start of the epoch nearest that count, or mid-epoch when one epoch is longer."""
    images = cfg.freeze_after or epoch_images
    read_at = max(1, round(images / max(epoch_images, 1)))
    freeze_after = images if read_at * epoch_images > images else 0
    # the DB-VAE reads the real faces only: generated ones (`extra`) join the classifier's batches
    return dataclasses.replace(cfg, resample_from=read_at, epochs=read_at + 1, freeze_after=freeze_after,
                               weights_only=True, swa_from=0, extra="", extra_share=0.0)


def classifier_stage(cfg: TrainConfig, latent_run: Path) -> TrainConfig:
    """The second stage (``cfg`` resolved): a plain classifier drawing its faces by the weights in ``latent_run``."""
    return dataclasses.replace(cfg, method="standard", weights_from=str(latent_run), freeze_after=0)


__all__ = ["resolve", "latent_stage", "classifier_stage", "is_two_stage", "FREEZE_IMAGES", "MIN_EFFECTIVE_FACES",
           "LATENT_DIR"]
