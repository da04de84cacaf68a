from __future__ import annotations

import numpy as np
import pytest
import torch

from debias.data.augment import AugmentConfig, augment


def _batch(seed=0, b=8):
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (b, 3, 16, 16)).astype(np.float32) / 255)


def test_same_generator_seed_gives_the_same_batch_and_another_seed_does_not():
    x = _batch()
    a = augment(x, torch.Generator().manual_seed(5))
    b = augment(x, torch.Generator().manual_seed(5))
    c = augment(x, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_a_flip_keeps_every_pixel_value_and_is_the_mirror_image():
    x = _batch(b=64)
    y = augment(x, torch.Generator().manual_seed(0), AugmentConfig(flip=0.5, scale=0, translate=0))
    flipped = [i for i in range(64) if not torch.equal(y[i], x[i])]
    assert 10 < len(flipped) < 54  # about half
    for i in range(64):
        # the multiset of pixel colours of each image is unchanged: a flip moves pixels, never recolours them
        assert torch.equal(torch.sort(y[i].flatten()).values, torch.sort(x[i].flatten()).values)
    assert all(torch.equal(y[i], x[i].flip(-1)) for i in flipped)


def test_identity_transform_returns_the_input_and_colours_stay_in_the_input_range():
    x = _batch()
    same = augment(x, torch.Generator().manual_seed(0), AugmentConfig(flip=0, scale=0, translate=0))
    assert torch.equal(same, x)
    # a constant-colour image stays that colour under any geometric jitter (border padding, no black frame)
    flat = torch.full((4, 3, 16, 16), 0.3)
    flat[:, 1] = 0.6
    out = augment(flat, torch.Generator().manual_seed(1), AugmentConfig(scale=0.2, translate=0.2, rotate=10))
    assert torch.allclose(out, flat, atol=1e-6)


def test_a_pure_shift_moves_the_image_by_the_drawn_amount():
    # a vertical bar at column 8 of a 16-wide image; translate only, no flip
    x = torch.zeros(1, 1, 16, 16)
    x[..., 8] = 1.0
    g = torch.Generator().manual_seed(3)
    u = torch.rand(1, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    y = augment(x, g, AugmentConfig(flip=0, scale=0, translate=0.25))
    shift_px = 2 * 0.25 * (2 * u[0, 3].item() - 1) * 16 / 2  # normalised shift -> pixels (the grid spans 2 units)
    col = y[0, 0, 0].argmax().item()
    assert col == pytest.approx(8 - shift_px, abs=1.0)


def test_bad_ranges_are_rejected():
    with pytest.raises(ValueError, match="`flip`=1.5"):
        AugmentConfig(flip=1.5)
    with pytest.raises(ValueError, match="`scale`=1.0"):
        AugmentConfig(scale=1.0)


