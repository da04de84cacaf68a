"""Face / non-face classifiers: the CNN of the DB-VAE lecture and lab, or a torchvision ResNet-18."""
from __future__ import annotations

import torch
from torch import nn


def _block(c_in: int, c_out: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, stride=2, padding=k // 2), nn.ReLU(inplace=True),
                         nn.BatchNorm2d(c_out))


class LabCNN(nn.Module):
    """Four stride-2 conv blocks (5x5, 5x5, 3x3, 3x3; widths n, 2n, 4n, 6n), FC 512, ``n_out`` outputs.

    Input (B, c_in, S, S) (3 colour channels, 6 with LocalContrast in front) with S divisible by 16; output
    (B, n_out).
    """

    def __init__(self, n_out: int = 1, *, width: int = 12, size: int = 64, c_in: int = 3) -> None:
        super().__init__()
        if size % 16:
            raise ValueError(f"input size {size} must be divisible by 16 for the lab CNN.")
        n = width
        self.features = nn.Sequential(_block(c_in, n, 5), _block(n, 2 * n, 5), _block(2 * n, 4 * n, 3),
                                      _block(4 * n, 6 * n, 3), nn.Flatten())  # (B, 6n * S/16 * S/16)
        self.head = nn.Sequential(nn.Linear(6 * n * (size // 16) ** 2, 512), nn.ReLU(inplace=True),
                                  nn.Linear(512, n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def box_mean(x: torch.Tensor, k: int) -> torch.Tensor:
    """Mean of each ``k`` x ``k`` window (odd ``k``, stride 1), over the pixels inside the image only:
    ``avg_pool2d(x, k, 1, k // 2, count_include_pad=False)``.

    Written with running sums (a box filter costs O(1) a pixel, whatever k) because torch's CPU avg_pool2d
    with stride 1 is slower than the whole training step of the lab CNN: on a batch of 64 (k = 9, one thread)
    the contrast channels take 38-43 ms with avg_pool2d, 4-7 ms with this, and a lab-CNN step 22 ms
    (``benchmarks/local_contrast_speed.py``, medians, three runs).
    One axis at a time, so no running sum exceeds k x the side and float32 keeps ~1e-6 of the pool's result
    (tested against it).
    """
    r = k // 2

    def along(t: torch.Tensor, dim: int) -> torch.Tensor:  # window sums along one axis
        pad = [0, 0, 0, 0]
        pad[(3 - dim) * 2:(3 - dim) * 2 + 2] = [r + 1, r]  # a zero in front, so sums are differences
        c = nn.functional.pad(t, pad).cumsum(dim)
        n = c.shape[dim]
        return c.narrow(dim, k, n - k) - c.narrow(dim, 0, n - k)

    ones = torch.ones_like(x[:1, :1])
    return along(along(x, 3), 2) / along(along(ones, 3), 2)


class LocalContrast(nn.Module):
    """Appends each image's local contrast to it: (B, 3, H, W) -> (B, 6, H, W).

    Channels 4-6 are each colour channel minus its mean over a ``k`` x ``k`` window, over the window's
    standard deviation (subtractive and divisive normalisation, Pinto et al. 2008; Jarrett et al. 2009), with
    ``eps`` as a floor on that deviation so flat, noisy regions are not blown up to unit contrast. A feature
    drawn on darker skin has less contrast in pixels (the same shading on a lower albedo); normalised, it
    has about the contrast of the same feature on lighter skin, so filters learnt on the common lighter faces
    can respond to it. The raw channels stay, so tone is still visible (the DB-VAE's latent needs it to
    find darker faces). torch has no spatial contrast normalisation (``LocalResponseNorm`` is across
    channels), hence ``box_mean``.
    """

    def __init__(self, k: int = 9, eps: float = 0.02) -> None:
        super().__init__()
        self.k, self.eps = k, eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = box_mean(x, self.k)  # (B, 3, H, W)
        var = (box_mean(x * x, self.k) - mean * mean).clamp(min=0.0)
        return torch.cat([x, (x - mean) / (var + self.eps ** 2).sqrt()], 1)  # (B, 6, H, W)


def build_encoder(arch: str, n_out: int, *, width: int = 12, size: int = 64, input_norm: str = "none") -> nn.Module:
    """The classifier CNN with ``n_out`` outputs (1 for a classifier, 2k+1 for a DB-VAE encoder).

    ``input_norm`` "local" puts ``LocalContrast`` (window 2 * (size // 16) + 1: 9 pixels at 64) in front of
    the network, whose first layer then reads 6 channels.
    """
    if input_norm not in ("none", "local"):
        raise ValueError(f"input_norm {input_norm!r} is not one of none, local.")
    c_in = 6 if input_norm == "local" else 3
    if arch == "cnn":
        net = LabCNN(n_out, width=width, size=size, c_in=c_in)
    elif arch == "resnet18":
        from torchvision.models import resnet18

        net = resnet18(weights=None, num_classes=n_out)  # untrained: nothing is downloaded
        if c_in != 3:
            net.conv1 = nn.Conv2d(c_in, 64, kernel_size=7, stride=2, padding=3, bias=False)
    else:
        raise ValueError(f"arch {arch!r} is not one of cnn, resnet18.")
    return nn.Sequential(LocalContrast(2 * (size // 16) + 1), net) if input_norm == "local" else net


class FaceClassifier(nn.Module):
    """Standard classifier: returns the face logit, shape (B,)."""

    def __init__(self, *, arch: str = "cnn", width: int = 12, size: int = 64, input_norm: str = "none") -> None:
        super().__init__()
        self.encoder = build_encoder(arch, 1, width=width, size=size, input_norm=input_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)[:, 0]
