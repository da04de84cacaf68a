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


def test_mix_partners_pair_each_position_with_another_of_its_key_in_a_derangement():
    from debias.data.augment import mix_partners

    keys = np.array([0, 1, 0, 2, 1, 1, 0, 3])
    for seed in range(20):
        p = mix_partners(keys, np.random.default_rng(seed))
        assert (keys[p] == keys).all()
        alone = np.array([k in (2, 3) for k in keys])  # keys 2 and 3 have one image each
        assert (p[alone] == np.flatnonzero(alone)).all() and (p[~alone] != np.flatnonzero(~alone)).all()
        for k in (0, 1):  # within a key, a permutation: every image is some image's partner once
            assert sorted(p[keys == k]) == sorted(np.flatnonzero(keys == k))
    assert any(not np.array_equal(mix_partners(keys, np.random.default_rng(0)), mix_partners(keys, np.random.default_rng(s)))
               for s in range(1, 5))


def test_mix_within_blends_each_image_with_one_of_its_group_by_a_share_of_at_least_half():
    """Image i is 1 at pixel i and 0 elsewhere, so an output is read by hand: its partner is its other non-zero
    pixel, its share the value at its own."""
    from debias.data.augment import mix_within

    x = torch.eye(6, dtype=torch.float64).view(6, 1, 2, 3)
    keys = np.array([0, 0, 0, 1, 1, 2])
    out = mix_within(x, keys, np.random.default_rng(3), alpha=1.0).view(6, 6).numpy()
    assert np.allclose(out.sum(1), 1.0)  # a convex combination of two images
    assert out[5, 5] == 1.0  # alone in its group: unchanged
    partners = []
    for i in range(5):
        other = [j for j in np.flatnonzero(out[i]) if j != i]
        assert len(other) == 1 and keys[other[0]] == keys[i]  # one partner, of its own group
        assert 0.5 <= out[i, i] < 1.0  # its own share is the larger
        partners.append(other[0])
    assert sorted(partners[:3]) == [0, 1, 2] and sorted(partners[3:]) == [3, 4]  # every image used once per group
    assert np.array_equal(out, mix_within(x, keys, np.random.default_rng(3), alpha=1.0).view(6, 6).numpy())
    # a small alpha pushes b ~ Beta(a, a) to 0 or 1, so each image stays nearly itself
    near = mix_within(x, keys, np.random.default_rng(3), alpha=0.01).view(6, 6).numpy()
    assert (np.diag(near) > 0.95).all()
