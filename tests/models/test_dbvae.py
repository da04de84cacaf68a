from __future__ import annotations

import math

import pytest
import torch

from debias.models.classifier import FaceClassifier
from debias.models.dbvae import DBVAE, dbvae_loss


def test_loss_matches_hand_computation_and_masks_vae_terms_to_faces():
    torch.manual_seed(0)
    x = torch.rand(3, 3, 4, 4)
    x_hat = torch.rand(3, 3, 4, 4)
    y = torch.tensor([1.0, 0.0, 1.0])
    logit = torch.tensor([2.0, -1.0, 0.5])
    mu = torch.tensor([[0.5, -1.0], [3.0, 3.0], [0.0, 2.0]])
    logvar = torch.tensor([[0.0, 0.2], [1.0, 1.0], [-0.5, 0.0]])
    parts = dbvae_loss(x, x_hat, y, logit, mu, logvar, beta=0.1, c_rec=2.0, rec_norm="l1")
    # by hand, image by image
    total = 0.0
    for i in range(3):
        p = 1 / (1 + math.exp(-logit[i].item()))
        bce = -(y[i].item() * math.log(p) + (1 - y[i].item()) * math.log(1 - p))
        rec = (x[i] - x_hat[i]).abs().mean().item()
        kl = sum(0.5 * (math.exp(lv) + m * m - 1 - lv) for m, lv in zip(mu[i].tolist(), logvar[i].tolist()))
        total += bce + (2.0 * rec + 0.1 * kl if y[i] == 1 else 0.0)  # non-face: BCE only
    assert parts.total.item() == pytest.approx(total / 3, rel=1e-5)
    # the non-face's huge latent contributes nothing: changing it leaves the loss unchanged
    mu2 = mu.clone()
    mu2[1] = 100.0
    assert dbvae_loss(x, x_hat, y, logit, mu2, logvar, beta=0.1, c_rec=2.0).total.item() == pytest.approx(
        parts.total.item(), rel=1e-6)
    # ...while a face's logit still matters for non-faces and faces alike (BCE on every image)
    logit2 = logit.clone()
    logit2[1] = 3.0
    assert dbvae_loss(x, x_hat, y, logit2, mu, logvar, beta=0.1, c_rec=2.0).total > parts.total


def test_gradients_flow_through_reparameterisation():
    torch.manual_seed(0)
    m = DBVAE(latent_dim=8, width=4, size=32)
    x = torch.rand(4, 3, 32, 32)
    logit, mu, logvar = m.encode(x)
    z = DBVAE.reparameterize(mu, logvar)
    z.sum().backward(retain_graph=True)
    # d z / d logvar = 0.5 * exp(logvar / 2) * eps, nonzero almost surely
    enc_grad = m.encoder.head[-1].weight.grad
    assert enc_grad is not None and enc_grad[1:].abs().sum() > 0
    m.zero_grad()
    loss = dbvae_loss(x, m.decode(z), torch.ones(4), logit, mu, logvar).total
    loss.backward()
    assert all(p.grad is not None for p in m.decoder.parameters())


def test_shapes():
    m = DBVAE(latent_dim=5, width=4, size=64)
    logit, mu, lv = m.encode(torch.rand(2, 3, 64, 64))
    assert logit.shape == (2,) and mu.shape == (2, 5) and lv.shape == (2, 5)
    assert m.decode(mu).shape == (2, 3, 64, 64)
    assert FaceClassifier(width=4)(torch.rand(2, 3, 64, 64)).shape == (2,)
    assert FaceClassifier(arch="resnet18")(torch.rand(2, 3, 64, 64)).shape == (2,)


def test_standardised_reconstruction_ignores_brightness_and_contrast_only():
    """--rec-target standardised: a reconstruction that differs from the input only by a per-image gain and offset
    costs nothing; one with a changed structure still costs (checked against a hand computation)."""
    import torch

    from debias.models.dbvae import standardise

    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 8, 8, generator=g)
    gain, offset = torch.tensor([0.5, 1.0, 0.3, 0.8]), torch.tensor([0.2, 0.0, 0.6, 0.1])
    dimmer = x * gain.view(-1, 1, 1, 1) + offset.view(-1, 1, 1, 1)
    assert (x - dimmer).abs().mean() > 0.05  # the pixel loss sees a difference
    # eps (1e-3 on a standard deviation of 0.09 at gain 0.3) leaves about 1% of |z| <= 2
    assert torch.allclose(standardise(x), standardise(dimmer), atol=3e-2)
    z = standardise(x)[0]
    v = x[0].flatten()
    assert torch.allclose(z.flatten(), (v - v.mean()) / (v.std() + 1e-3), atol=1e-6)
    flipped = x.flip(-1)  # same pixel values, other places: the standardised loss still sees it
    assert (standardise(x) - standardise(flipped)).abs().mean() > 0.5


def test_local_contrast_matches_a_hand_computation_and_is_blind_to_a_darker_albedo():
    """--input-norm local: channels 4-6 are (x - window mean) / sqrt(window variance + eps^2), checked against numpy
    at interior pixels; the raw channels pass through; a feature scaled down by a darker albedo (x -> 0.3 x) has the
    same normalised contrast when eps = 0; a flat image normalises to 0."""
    import numpy as np

    from debias.models.classifier import LocalContrast

    torch.manual_seed(0)
    x = torch.rand(2, 3, 8, 8)
    out = LocalContrast(k=3, eps=0.1)(x)
    assert out.shape == (2, 6, 8, 8) and torch.equal(out[:, :3], x)
    xn = x.numpy().astype(np.float64)
    for b, c, i, j in [(0, 0, 1, 1), (1, 2, 4, 6), (0, 1, 6, 3)]:
        win = xn[b, c, i - 1:i + 2, j - 1:j + 2]
        want = (xn[b, c, i, j] - win.mean()) / np.sqrt(win.var() + 0.1 ** 2)
        assert out[b, 3 + c, i, j].item() == pytest.approx(want, abs=1e-5)
    blind = LocalContrast(k=3, eps=0.0)
    assert torch.allclose(blind(0.3 * x)[:, 3:], blind(x)[:, 3:], atol=1e-4)
    assert torch.all(LocalContrast(k=3)(torch.full((1, 3, 8, 8), 0.4))[:, 3:].abs() < 1e-5)


@pytest.mark.parametrize("arch", ["cnn", "resnet18"])
def test_models_with_local_contrast_read_six_channels(arch):
    from debias.models.classifier import LocalContrast

    for m in (FaceClassifier(arch=arch, width=4, input_norm="local"),
              DBVAE(latent_dim=5, arch=arch, width=4, input_norm="local")):
        assert isinstance(m.encoder[0], LocalContrast)
        assert next(p for p in m.encoder[1].parameters() if p.dim() == 4).shape[1] == 6  # the first conv
    assert FaceClassifier(arch=arch, width=4, input_norm="local")(torch.rand(2, 3, 64, 64)).shape == (2,)
    with pytest.raises(ValueError, match="input_norm"):
        FaceClassifier(input_norm="global")


@pytest.mark.parametrize("k", [1, 3, 9])
def test_box_mean_is_avg_pool_without_the_padding(k):
    import torch.nn.functional as F

    from debias.models.classifier import box_mean

    x = torch.rand(2, 3, 16, 12)
    want = F.avg_pool2d(x, k, 1, k // 2, count_include_pad=False)
    assert box_mean(x, k).shape == x.shape and torch.allclose(box_mean(x, k), want, atol=2e-6)
