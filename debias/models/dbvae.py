"""Debiasing Variational Autoencoder (Amini, Soleimany et al., AIES 2019), in one file.

The encoder is the classifier CNN with 2k+1 outputs: the face logit z_o, the latent means mu and
the log-variances log sigma^2. One convention is used everywhere: ``logvar`` is log sigma^2, the
reparameterisation is z = mu + exp(logvar / 2) * eps, and the KL term is
0.5 * sum(exp(logvar) + mu^2 - 1 - logvar).

The loss is L = BCE(y, y_hat) + 1[y = face] * (c_rec * reconstruction + beta * KL), averaged over
the batch: the VAE terms apply to faces only, the classification loss to every image. (The MIT
6.S191 PyTorch solution notebook masks the classification loss instead; that is a bug.)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from debias.models.classifier import build_encoder


class Decoder(nn.Module):
    """Transposed-conv decoder, the mirror of the lab CNN: (B, k) -> (B, 3, S, S) in [0, 1]."""

    def __init__(self, latent_dim: int, *, width: int = 12, size: int = 64) -> None:
        super().__init__()
        n, self.s0 = width, size // 16
        self.fc = nn.Sequential(nn.Linear(latent_dim, 6 * n * self.s0 ** 2), nn.ReLU(inplace=True))
        self.net = nn.Sequential(
            nn.ConvTranspose2d(6 * n, 4 * n, 3, 2, 1, output_padding=1), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(4 * n, 2 * n, 3, 2, 1, output_padding=1), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(2 * n, n, 5, 2, 2, output_padding=1), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(n, 3, 5, 2, 2, output_padding=1), nn.Sigmoid())
        self.width = n

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(z.shape[0], 6 * self.width, self.s0, self.s0)  # (B, 6n, S/16, S/16)
        return self.net(h)  # (B, 3, S, S)


class DBVAE(nn.Module):
    """Encoder with 2k+1 outputs plus decoder.

    ``forward(x)`` returns the face logit (B,) only, so a DB-VAE is a drop-in classifier;
    ``encode(x)`` returns (logit (B,), mu (B, k), logvar (B, k)).
    """

    def __init__(self, *, latent_dim: int = 100, arch: str = "cnn", width: int = 12, size: int = 64) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = build_encoder(arch, 2 * latent_dim + 1, width=width, size=size)
        self.decoder = Decoder(latent_dim, width=width, size=size)

    def encode(self, x: torch.Tensor):
        out = self.encoder(x)  # (B, 2k+1)
        k = self.latent_dim
        return out[:, 0], out[:, 1:k + 1], out[:, k + 1:]

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x)[0]


@dataclass
class LossParts:
    total: torch.Tensor  # scalar, what is optimised
    bce: torch.Tensor  # mean BCE over all images
    rec: torch.Tensor  # mean reconstruction over faces (0 if none)
    kl: torch.Tensor  # mean KL over faces (0 if none)
    per_sample: torch.Tensor  # (B,) each image's loss; ``total`` is its mean
    per_sample_bce: torch.Tensor  # (B,) each image's classification loss alone (what Group DRO compares groups by)


def dbvae_loss(x: torch.Tensor, x_hat: torch.Tensor, y: torch.Tensor, logit: torch.Tensor,
               mu: torch.Tensor, logvar: torch.Tensor, *, beta: float = 5e-4, c_rec: float = 1.0,
               rec_norm: str = "l1") -> LossParts:
    """DB-VAE loss on one batch.

    Parameters
    ----------
    x, x_hat : (B, 3, H, W) input and reconstruction.
    y : (B,) float, 1 for a face.
    logit : (B,) face logit.
    mu, logvar : (B, k).

    Returns
    -------
    LossParts; ``total`` = mean_i [BCE_i + y_i * (c_rec * rec_i + beta * KL_i)].
    """
    bce = F.binary_cross_entropy_with_logits(logit, y, reduction="none")  # (B,)
    diff = (x - x_hat).abs() if rec_norm == "l1" else (x - x_hat) ** 2
    rec = diff.flatten(1).mean(1)  # (B,)
    kl = 0.5 * (logvar.exp() + mu ** 2 - 1.0 - logvar).sum(1)  # (B,)
    per_sample = bce + y * (c_rec * rec + beta * kl)  # (B,)
    n_face = y.sum().clamp(min=1.0)
    return LossParts(per_sample.mean(), bce.mean(), (y * rec).sum() / n_face, (y * kl).sum() / n_face, per_sample,
                     bce)
