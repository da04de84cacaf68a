from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from debias.config import SynthConfig
from debias.data.groups import MST_RGB, pose_of, skin_group_of
from debias.data.synth import generate, synth_attributes


def _sha(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_same_seed_gives_identical_bytes_whatever_the_worker_count(tmp_path):
    cfg = SynthConfig(n_train=300, n_val=20, n_test_per_cell=2, seed=7, workers=1)
    generate(cfg, tmp_path / "a")
    generate(SynthConfig(**{**cfg.__dict__, "workers": 2}), tmp_path / "b")
    for f in ("images.npy", "manifest.csv"):
        assert _sha(tmp_path / "a" / f) == _sha(tmp_path / "b" / f)
    generate(SynthConfig(**{**cfg.__dict__, "seed": 8}), tmp_path / "c")
    assert _sha(tmp_path / "a" / "images.npy") != _sha(tmp_path / "c" / "images.npy")


def test_requested_shares_are_met():
    cfg = SynthConfig(n_train=40_000, n_val=0, n_test_per_cell=1, darker_share=0.1, medium_share=0.2,
                      profile_share=0.15, three_quarter_share=0.05, female_share=0.3)
    a = synth_attributes(cfg)
    f = a[(a.split == "train") & (a.label == 1)]
    assert len(f) == 20_000
    share = f.skin_group.value_counts(normalize=True)
    # binomial sd at n=20000 is < 0.0035; allow 4 sd
    assert share["darker"] == pytest.approx(0.1, abs=0.014)
    assert share["medium"] == pytest.approx(0.2, abs=0.014)
    pose = f.pose.value_counts(normalize=True)
    assert pose["profile"] == pytest.approx(0.15, abs=0.014)
    assert pose["three-quarter"] == pytest.approx(0.05, abs=0.014)
    assert (f.gender == "female").mean() == pytest.approx(0.3, abs=0.014)


def test_attribute_columns_are_consistent():
    a = synth_attributes(SynthConfig(n_train=2000, n_val=100, n_test_per_cell=3))
    f = a[a.label == 1]
    # skin group and pose are derived from tone and yaw by the published cut points
    assert (f.skin_group.to_numpy() == skin_group_of(f.skin_tone.astype(int).to_numpy())).all()
    assert (f.pose.to_numpy() == pose_of(f.yaw.to_numpy())).all()
    assert f.skin_tone.between(1, 10).all() and f.yaw.abs().le(90).all()
    nf = a[a.label == 0]
    assert nf[["skin_group", "pose", "gender"]].isna().all().all()


def test_balanced_test_split_has_every_cell():
    a = synth_attributes(SynthConfig(n_train=100, n_val=0))  # default n_test_per_cell=120
    t = a[(a.split == "test") & (a.label == 1)]
    counts = t.groupby(["skin_group", "pose", "gender"]).size()
    assert len(counts) == 18 and (counts >= 100).all() and counts.nunique() == 1
    assert (a[(a.split == "test")].label == 0).sum() == len(t)


def test_mst_palette_is_the_published_one():
    assert MST_RGB[0].tolist() == [0xf6, 0xed, 0xe4] and MST_RGB[9].tolist() == [0x29, 0x24, 0x20]


def test_darker_faces_are_darker_and_profiles_lose_an_eye(tmp_path):
    """Photometry check on rendered pixels: mean head brightness falls with Monk tone."""
    cfg = SynthConfig(n_train=10, n_val=0, n_test_per_cell=20, seed=1, workers=1)
    m = generate(cfg, tmp_path)
    x = np.load(tmp_path / "images.npy")
    t = m[(m.split == "test") & (m.label == 1)]
    centre = x[t.image.to_numpy(), 26:34, 28:36].reshape(len(t), -1).mean(1)
    by = pd.Series(centre, index=t.skin_group.to_numpy()).groupby(level=0).mean()
    assert by["lighter"] > by["medium"] > by["darker"]


def test_bad_shares_are_rejected():
    with pytest.raises(ValueError, match="darker_share"):
        SynthConfig(darker_share=1.5)
    with pytest.raises(ValueError, match="at most 1"):
        SynthConfig(darker_share=0.6, medium_share=0.6)
