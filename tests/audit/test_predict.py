from __future__ import annotations

import numpy as np
import pytest

from debias.audit.predict import batch_covariates, image_covariates


@pytest.mark.parametrize("size", [64, 96])
def test_vectorised_covariates_match_opencv_per_image(size):
    imgs = np.random.default_rng(0).integers(0, 256, (6, size, size, 3), dtype=np.uint8)
    imgs[0] = 128  # a flat image: zero contrast and sharpness
    ref = np.array([image_covariates(im) for im in imgs])
    got = batch_covariates(imgs)
    assert np.allclose(got[:, :2], ref[:, :2])
    assert np.allclose(got[:, 2:4], ref[:, 2:4], atol=2.5e-3)  # OpenCV rounds grey levels to uint8
    assert np.allclose(got[:, 4], ref[:, 4], rtol=0.05, atol=1e-4)
    assert got[0, 3] == pytest.approx(0) and got[0, 4] == pytest.approx(0)


def test_covariates_are_computed_once_and_recomputed_when_the_manifest_changes(tiny_synth, tmp_path, monkeypatch):
    import shutil

    import pandas as pd

    import debias.audit.predict as predict_mod
    from debias.audit.adapters import load_adapter
    from debias.audit.predict import COVARIATES, predict

    model = [load_adapter("python:fake_models:centre_brightness")]
    root = tmp_path / "ds"
    shutil.copytree(tiny_synth, root)
    m = pd.read_csv(root / "manifest.csv")
    faces = m[(m.split == "test")]
    x = np.load(root / "images.npy")[faces.image.to_numpy()]
    per_image = np.array([image_covariates(im) for im in x])  # OpenCV, one image at a time

    first, _ = predict(root, model, split="test")
    assert (root / "covariates.npz").exists()
    got = first[list(COVARIATES)].to_numpy()
    np.testing.assert_allclose(got[:, :2], per_image[:, :2])
    np.testing.assert_allclose(got[:, 2:4], per_image[:, 2:4], atol=2.5e-3)  # OpenCV rounds grey to uint8
    np.testing.assert_allclose(got[:, 4], per_image[:, 4], rtol=0.05, atol=1e-4)

    def no_compute(images):
        raise AssertionError("covariates recomputed although cached")

    monkeypatch.setattr(predict_mod, "batch_covariates", no_compute)
    again, _ = predict(root, model, split="test")
    assert again[list(COVARIATES)].equals(first[list(COVARIATES)])
    # a new manifest (same images, one attribute fixed) is a new key: recomputed, not read stale
    m.loc[0, "gender"] = "female" if m.loc[0, "gender"] == "male" else "male"
    m.to_csv(root / "manifest.csv", index=False)
    with pytest.raises(AssertionError, match="recomputed"):
        predict(root, model, split="test")
    monkeypatch.undo()
    # a read-only dataset folder loses the cache, never the audit (patched: root may write anywhere)
    (root / "covariates.npz").unlink()

    def read_only(path, write):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(predict_mod, "atomic_write", read_only)
    ro, _ = predict(root, model, split="test")
    assert ro[list(COVARIATES)].equals(first[list(COVARIATES)]) and not (root / "covariates.npz").exists()
