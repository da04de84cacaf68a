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


