"""Geometric training augmentation, batched on the tensor.

Resampling shows the network the few hundred minority faces of a biased set again and again; without
augmentation it memorises their pixels and generalises worse (without it the labelled group-balanced
reference *widened* the skin gap). Each training image therefore gets its own random horizontal flip, scale,
translation and (optionally) small rotation.

Only geometry changes. There is deliberately no colour, brightness, contrast or hue jitter: those
would move a face's apparent skin tone, the very attribute the audit groups by, and blur the bias the
benchmark measures.

torchvision's ``RandomAffine`` and ``RandomHorizontalFlip`` draw one set of parameters per call, so a
batch would share one transform, and calling them per image costs ~60x more on CPU. One
``affine_grid`` + ``grid_sample`` per batch gives every image its own transform at the cost of a
single resampling pass.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from debias.config import AugmentConfig  # the ranges; a frozen config like the others


def augment(x: torch.Tensor, generator: torch.Generator, cfg: AugmentConfig = AugmentConfig()) -> torch.Tensor:
    """Randomly flip, scale, shift and rotate each image of a batch.

    Parameters
    ----------
    x : (B, C, H, W) float images.
    generator : a CPU ``torch.Generator``; the same generator state gives the same transforms on any
        device, so a run is reproducible from its seed.
    cfg : AugmentConfig.

    Returns
    -------
    (B, C, H, W) augmented images on ``x.device``. Pixels pulled from outside the image repeat the
    border (no black frame, which would look like a dark background or dark skin).
    """
    b = x.shape[0]
    u = torch.rand(b, 5, generator=generator, dtype=torch.float64)  # (B, 5) uniforms, drawn on the CPU
    flip = u[:, 0] < cfg.flip
    if flip.any():
        x = torch.where(flip.to(x.device).view(b, 1, 1, 1), x.flip(-1), x)
    if cfg.scale == 0 and cfg.translate == 0 and cfg.rotate == 0:
        return x
    zoom = 1.0 + cfg.scale * (2 * u[:, 1] - 1)  # (B,) >1 enlarges the face
    angle = math.radians(cfg.rotate) * (2 * u[:, 2] - 1)  # (B,)
    shift = 2 * cfg.translate * (2 * u[:, 3:5] - 1)  # (B, 2) in normalised [-1, 1] coordinates
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    # output->input sampling matrix: inverse zoom and rotation, then the shift
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1)  # (B, 2, 3)
    theta = theta.to(device=x.device, dtype=x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)  # (B, H, W, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


__all__ = ["AugmentConfig", "augment"]
