"""The DCGAN: the layers of Radford et al. (2016), and training that is a function of its seed."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from debias.generative.dcgan import Discriminator, Generator, sample, train_dcgan


def test_the_networks_are_the_papers():
    g, d = Generator(nz=16, width=4), Discriminator(width=4)
    x = g(torch.randn(3, 16))
    assert x.shape == (3, 3, 64, 64) and x.abs().max() <= 1
    assert d(x).shape == (3,)
    kinds = [type(m) for m in g.net]
    assert kinds.count(nn.ConvTranspose2d) == 5 and kinds.count(nn.BatchNorm2d) == 4 and kinds[-1] is nn.Tanh
    assert not any(isinstance(m, (nn.Linear, nn.MaxPool2d)) for m in [*g.modules(), *d.modules()])  # all-convolutional
    convs = [m for m in d.net if isinstance(m, nn.Conv2d)]
    assert [c.stride for c in convs] == [(2, 2)] * 4 + [(1, 1)]  # strided convolutions, no pooling
    assert isinstance(d.net[1], nn.LeakyReLU) and d.net[1].negative_slope == 0.2
    assert not isinstance(d.net[1], nn.BatchNorm2d)  # no BatchNorm on the discriminator's input layer


def test_two_trainings_with_one_seed_give_the_same_weights_and_faces_and_another_seed_does_not():
    images = np.random.default_rng(0).integers(0, 256, (24, 64, 64, 3), dtype=np.uint8)

    def run(seed):
        g, hist = train_dcgan(images, epochs=2, batch_size=8, nz=8, width=4, seed=seed)
        return g, hist, sample(g, 6, seed=seed)

    (g1, h1, x1), (g2, h2, x2), (g3, _, x3) = run(0), run(0), run(1)
    for (k, a), b in zip(g1.state_dict().items(), g2.state_dict().values()):
        assert torch.equal(a, b), k
    assert h1.d_loss == h2.d_loss and h1.g_loss == h2.g_loss and len(h1.epoch_s) == 2
    assert np.array_equal(x1, x2) and x1.shape == (6, 64, 64, 3) and x1.dtype == np.uint8
    assert not np.array_equal(x1, x3)


def test_the_dcgan_refuses_images_of_another_size():
    with pytest.raises(ValueError, match=r"\(N, 64, 64, 3\)"):
        train_dcgan(np.zeros((8, 32, 32, 3), np.uint8), epochs=1, batch_size=4, width=4)
