"""Face / non-face classifiers: the CNN of the DB-VAE lecture and lab, or a torchvision ResNet-18."""
from __future__ import annotations

import torch
from torch import nn


def _block(c_in: int, c_out: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, stride=2, padding=k // 2), nn.ReLU(inplace=True),
                         nn.BatchNorm2d(c_out))


class LabCNN(nn.Module):
    """Four stride-2 conv blocks (5x5, 5x5, 3x3, 3x3; widths n, 2n, 4n, 6n), FC 512, ``n_out`` outputs.

    Input (B, 3, S, S) with S divisible by 16; output (B, n_out).
    """

    def __init__(self, n_out: int = 1, *, width: int = 12, size: int = 64) -> None:
        super().__init__()
        if size % 16:
            raise ValueError(f"input size {size} must be divisible by 16 for the lab CNN.")
        n = width
        self.features = nn.Sequential(_block(3, n, 5), _block(n, 2 * n, 5), _block(2 * n, 4 * n, 3),
                                      _block(4 * n, 6 * n, 3), nn.Flatten())  # (B, 6n * S/16 * S/16)
        self.head = nn.Sequential(nn.Linear(6 * n * (size // 16) ** 2, 512), nn.ReLU(inplace=True),
                                  nn.Linear(512, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build_encoder(arch: str, n_out: int, *, width: int = 12, size: int = 64) -> nn.Module:
    """The classifier CNN with ``n_out`` outputs (1 for a classifier, 2k+1 for a DB-VAE encoder)."""
    if arch == "cnn":
        return LabCNN(n_out, width=width, size=size)
    if arch == "resnet18":
        from torchvision.models import resnet18

        return resnet18(weights=None, num_classes=n_out)  # untrained: nothing is downloaded
    raise ValueError(f"arch {arch!r} is not one of cnn, resnet18.")


class FaceClassifier(nn.Module):
    """Standard classifier: returns the face logit, shape (B,)."""

    def __init__(self, *, arch: str = "cnn", width: int = 12, size: int = 64) -> None:
        super().__init__()
        self.encoder = build_encoder(arch, 1, width=width, size=size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)[:, 0]
