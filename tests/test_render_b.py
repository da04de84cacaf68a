"""benchmarks/render_b.py: the second, independently drawn face / non-face family. Its output must be a dataset
the project reads unchanged (family A's manifest columns, packed images), with the requested biased training
shares, a balanced test split, a skin tone that only the test split shows, bytes that do not depend on the
worker count, and darker skin photographing darker through the fixed exposure."""
from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

from debias.config import SynthConfig
from debias.data.groups import GENDERS, POSES, SKIN_GROUPS
from debias.data.manifest import open_packed, read_manifest, read_rows
from debias.data.synth import synth_attributes


@pytest.fixture(scope="module")
def rb(load_benchmark):
    return load_benchmark("render_b")


@pytest.fixture(scope="module")
def tiny(rb, tmp_path_factory):
    """200 training and 50 validation images, 2 test faces per cell (36 faces + 36 non-faces)."""
    root = tmp_path_factory.mktemp("render_b")
    manifest = rb.generate_b(200, seed=5, out=root, n_val=50, n_test_per_cell=2)
    return root, manifest


def _sha(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_the_project_reads_it_with_family_a_columns_and_split_counts(rb, tiny):
    root, manifest = tiny
    df = read_manifest(root)
    family_a = synth_attributes(SynthConfig(n_train=20, n_val=4, n_test_per_cell=1))
    assert list(df.columns) == list(family_a.columns)
    packed = open_packed(root)
    assert np.load(root / "images.npy", mmap_mode="r").shape == (len(df), 64, 64, 3)
    assert read_rows(packed, np.array([0, len(df) - 1])).dtype == np.uint8
    n = df.groupby(["split", "label"]).size()
    assert (n["train", 1], n["train", 0], n["val", 1], n["val", 0]) == (100, 100, 25, 25)
    assert n["test", 1] == n["test", 0] == 18 * 2
    faces = df[df.label == 1]
    assert faces.kind.eq("face").all() and not df[df.label == 0].kind.eq("face").any()
    assert faces.skin_tone.between(1, 10).all() and df[df.label == 0].skin_tone.isna().all()
    # the same yaw bins as family A: frontal |yaw| < 15, three-quarter 15-45, profile > 45
    a = faces.yaw.abs()
    assert (a[faces.pose == "frontal"] < 15).all() and (a[faces.pose == "profile"] > 45).all()
    assert a[faces.pose == "three-quarter"].between(15, 45).all()


def test_test_split_has_exactly_n_faces_in_every_skin_pose_gender_cell(tiny):
    root, _ = tiny
    test = read_manifest(root).query("split == 'test' and label == 1")
    cells = test.groupby(["skin_group", "pose", "gender"]).size()
    assert len(cells) == len(SKIN_GROUPS) * len(POSES) * len(GENDERS)
    assert (cells == 2).all()


def test_training_shares_are_met_within_a_binomial_tolerance(rb):
    """10,000 training faces: the darker count is Binomial(10,000, 0.02), sd sqrt(10,000 x 0.02 x 0.98) = 14.0;
    allow 4 sd (56 faces, 0.56 points). Same for profile at 3% (sd 17.1, allow 68)."""
    m = rb.attributes_b(20_000, seed=0, n_val=0, n_test_per_cell=0)
    faces = m[(m.split == "train") & (m.label == 1)]
    assert len(faces) == 10_000
    for col, level, share in (("skin_group", "darker", 0.02), ("pose", "profile", 0.03)):
        sd = math.sqrt(10_000 * share * (1 - share))
        assert abs((faces[col] == level).sum() - 10_000 * share) <= 4 * sd, (col, level)


def test_tone_10_appears_only_in_the_test_split(rb, tiny):
    m = rb.attributes_b(5_000, seed=1, n_val=1_000, n_test_per_cell=20, darker_share=0.3)
    faces = m[m.label == 1]
    assert set(faces[faces.split != "test"].query("skin_group == 'darker'").skin_tone) == {7, 8, 9}
    assert (faces[faces.split == "test"].skin_tone == 10).sum() > 0
    assert (faces.skin_tone == 10).sum() == (faces[faces.split == "test"].skin_tone == 10).sum()
    nonfaces = m[m.label == 0]
    assert nonfaces[nonfaces.split != "test"].nonface_tone.max() == 9  # no training image shows tone 10
    root, manifest = tiny  # and the rendered manifest says the same
    assert not ((manifest.skin_tone == 10) & (manifest.split != "test")).any()


def test_same_seed_gives_identical_bytes_whatever_the_worker_count(rb, tmp_path):
    kw = dict(seed=11, n_val=20, n_test_per_cell=2)  # 600 + 20 + 72 = 692 images: three chunks of 256
    rb.generate_b(600, out=tmp_path / "a", workers=1, **kw)
    rb.generate_b(600, out=tmp_path / "b", workers=2, **kw)
    for f in ("images.npy", "manifest.csv", "config.json"):
        assert _sha(tmp_path / "a" / f) == _sha(tmp_path / "b" / f), f
    rb.generate_b(600, out=tmp_path / "c", workers=1, **{**kw, "seed": 12})
    assert _sha(tmp_path / "a" / "images.npy") != _sha(tmp_path / "c" / "images.npy")


def test_darker_faces_photograph_darker_under_the_fixed_exposure(rb):
    """Frontal test faces, 32 per skin group: the mean of the central face box (x 27-36, y 24-35, inside the
    cranium for every head position and scale) must follow the albedo. Measured: lighter about 126, darker
    about 54 (sd about 20 per face, so about 4 for a mean of 32); require a gap of 30 levels and the order."""
    m = rb.attributes_b(0, seed=0, n_val=0, n_test_per_cell=16)
    rows = m[(m.label == 1) & (m.pose == "frontal")].reset_index(drop=True)
    img = rb.render_chunk(rows, 7)
    box = img[:, 24:36, 27:37].astype(float).mean(axis=(1, 2, 3))
    mean = {g: box[rows.skin_group.to_numpy() == g].mean() for g in SKIN_GROUPS}
    assert mean["lighter"] > mean["medium"] > mean["darker"]
    assert mean["lighter"] - mean["darker"] > 30
    # the albedos themselves fall with the tone number
    assert np.all(np.diff(rb.TONE_ALBEDO.mean(axis=1)) < 0)


def test_cli_writes_a_dataset_and_a_preview(rb, tmp_path):
    rb.main(["--out", str(tmp_path / "d"), "--n-train", "40", "--n-val", "0", "--n-test-per-cell", "1",
             "--seed", "2", "--preview", str(tmp_path / "grid.png")])
    df = read_manifest(tmp_path / "d")
    assert len(df) == 40 + 36
    assert (tmp_path / "grid.png").stat().st_size > 0


def test_bad_shares_are_refused(rb):
    with pytest.raises(ValueError, match="darker_share"):
        rb.attributes_b(10, seed=0, darker_share=1.5)
    with pytest.raises(ValueError, match="at most 1"):
        rb.attributes_b(10, seed=0, profile_share=0.6, three_quarter_share=0.6)
