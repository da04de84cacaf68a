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
