"""A DCGAN at 64 x 64 (Radford, Metz & Chintala, ICLR 2016), in one file: generator, discriminator, training, sampling.

As in the paper: the generator is a stack of strided transposed convolutions with BatchNorm and ReLU and a Tanh
output; the discriminator strided convolutions with BatchNorm (none on its first layer) and LeakyReLU 0.2; weights
drawn from N(0, 0.02) (BatchNorm scales from N(1, 0.02)); Adam at 2e-4 with betas (0.5, 0.999); the generator
trained with the non-saturating loss -log D(G(z)). Images are scaled to [-1, 1]. ``width`` (the paper's 128) is
the channel count of the 32 x 32 layers (the others have 2, 4 and 8 times as many); 32 keeps it trainable on a
CPU.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SIZE = 64  # the side the networks are built for


class Generator(nn.Module):
    """z (B, nz) -> images (B, 3, 64, 64) in [-1, 1]."""

    def __init__(self, nz: int = 100, width: int = 32) -> None:
        super().__init__()
        w = width
        self.nz = nz

        def up(cin: int, cout: int) -> list[nn.Module]:
            return [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]

        self.net = nn.Sequential(
            nn.ConvTranspose2d(nz, 8 * w, 4, 1, 0, bias=False), nn.BatchNorm2d(8 * w), nn.ReLU(True),  # (B, 8w, 4, 4)
            *up(8 * w, 4 * w),  # (B, 4w, 8, 8)
            *up(4 * w, 2 * w),  # (B, 2w, 16, 16)
            *up(2 * w, w),  # (B, w, 32, 32)
            nn.ConvTranspose2d(w, 3, 4, 2, 1, bias=False), nn.Tanh())  # (B, 3, 64, 64)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z[:, :, None, None])


class Discriminator(nn.Module):
    """images (B, 3, 64, 64) in [-1, 1] -> real-vs-generated logit (B,)."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        w = width

        def down(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, True)]

        self.net = nn.Sequential(
            nn.Conv2d(3, w, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),  # (B, w, 32, 32)
            *down(w, 2 * w),  # (B, 2w, 16, 16)
            *down(2 * w, 4 * w),  # (B, 4w, 8, 8)
            *down(4 * w, 8 * w),  # (B, 8w, 4, 4)
            nn.Conv2d(8 * w, 1, 4, 1, 0, bias=False))  # (B, 1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()


def _init(m: nn.Module) -> None:
    """The paper's initialisation: conv weights ~ N(0, 0.02), BatchNorm scale ~ N(1, 0.02) and shift 0."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


@dataclass(frozen=True)
class GANHistory:
    """Mean losses of each epoch and its seconds."""

    d_loss: list[float]
    g_loss: list[float]
    epoch_s: list[float]


def to_gan_input(batch_uint8: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(batch_uint8)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def train_dcgan(images: np.ndarray, *, epochs: int = 10, batch_size: int = 64, nz: int = 100, width: int = 32,
                lr: float = 2e-4, seed: int = 0, device: torch.device | str = "cpu",
                progress: Callable | None = None) -> tuple[Generator, GANHistory]:
    """Train a DCGAN on ``images`` (N, 64, 64, 3) uint8; the same seed on the same device gives the same weights.

    Each step draws a batch of real images (a seeded permutation per epoch), updates the discriminator on real and
    generated images, then the generator on the discriminator's verdict on a fresh batch of generated ones.

    Returns
    -------
    (the generator in eval mode, the per-epoch losses).
    """
    if images.ndim != 4 or images.shape[1:] != (SIZE, SIZE, 3):
        raise ValueError(f"the DCGAN trains on (N, {SIZE}, {SIZE}, 3) images, got shape {images.shape}.")
    device = torch.device(device)
    torch.manual_seed(seed)
    gen, disc = Generator(nz, width).to(device), Discriminator(width).to(device)
    gen.apply(_init)
    disc.apply(_init)
    opt_g = torch.optim.Adam(gen.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=lr, betas=(0.5, 0.999))
    noise = torch.Generator(device=device).manual_seed(seed + 1)
    n_batches = max(1, len(images) // batch_size)
    hist = GANHistory([], [], [])
    for epoch in range(epochs):
        t0 = time.perf_counter()
        perm = np.random.default_rng([seed, epoch, 3]).permutation(len(images))
        if progress:
            progress(0, total=n_batches, description=f"DCGAN epoch {epoch + 1}/{epochs}")
        d_sum = g_sum = 0.0
        for b in range(n_batches):
            real = to_gan_input(images[np.sort(perm[b * batch_size:(b + 1) * batch_size])]).to(device)
            d_loss, g_loss = _step(gen, disc, opt_g, opt_d, real, noise)
            d_sum, g_sum = d_sum + d_loss, g_sum + g_loss
            if progress:
                progress(1, info=f"D {d_loss:.3f} G {g_loss:.3f}")
        hist.d_loss.append(d_sum / n_batches)
        hist.g_loss.append(g_sum / n_batches)
        hist.epoch_s.append(time.perf_counter() - t0)
    return gen.eval(), hist


def _step(gen: Generator, disc: Discriminator, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
          real: torch.Tensor, noise: torch.Generator) -> tuple[float, float]:
    """One discriminator and one generator update; returns their losses."""
    b = real.shape[0]
    z = torch.randn(b, gen.nz, generator=noise, device=real.device)
    fake = gen(z)
    ones, zeros = torch.ones(b, device=real.device), torch.zeros(b, device=real.device)
    d_loss = (F.binary_cross_entropy_with_logits(disc(real), ones)
              + F.binary_cross_entropy_with_logits(disc(fake.detach()), zeros))
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()
    g_loss = F.binary_cross_entropy_with_logits(disc(fake), ones)  # non-saturating: -log D(G(z))
    opt_g.zero_grad(set_to_none=True)
    g_loss.backward()
    opt_g.step()
    d, g = d_loss.item(), g_loss.item()
    if not (np.isfinite(d) and np.isfinite(g)):
        raise FloatingPointError(f"the DCGAN's losses became non-finite (D {d}, G {g}).")
    return d, g


@torch.no_grad()
def sample(gen: Generator, n: int, *, seed: int = 0, batch_size: int = 256) -> np.ndarray:
    """``n`` generated images, (n, 64, 64, 3) uint8, from z ~ N(0, I) drawn with ``seed``."""
    gen.eval()
    device = next(gen.parameters()).device
    g = torch.Generator().manual_seed(seed)
    out = []
    for s in range(0, n, batch_size):
        z = torch.randn(min(batch_size, n - s), gen.nz, generator=g).to(device)
        x = gen(z).clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)  # (b, 3, 64, 64)
        out.append(x.permute(0, 2, 3, 1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, SIZE, SIZE, 3), np.uint8)
