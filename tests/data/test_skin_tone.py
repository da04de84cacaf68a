from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from debias.data.skin_tone import estimate_ita, ita, ita_class, rgb_to_lab


def test_lab_conversion_against_known_values():
    # reference CIELAB (D65) values of sRGB primaries and white
    lab = rgb_to_lab(np.array([[255, 255, 255], [255, 0, 0], [0, 0, 0], [0, 0, 255]], np.uint8))
    assert lab[0] == pytest.approx([100.0, 0.0, 0.0], abs=0.1)
    assert lab[1] == pytest.approx([53.24, 80.09, 67.20], abs=0.2)
    assert lab[2] == pytest.approx([0.0, 0.0, 0.0], abs=0.1)
    assert lab[3] == pytest.approx([32.30, 79.19, -107.86], abs=0.3)


def test_ita_formula_and_classes():
    assert ita(70.0, 10.0) == pytest.approx(np.degrees(np.arctan(20 / 10)))
    assert ita(50.0, 15.0) == pytest.approx(0.0)
    assert [ita_class(a) for a in (60, 50, 30, 20, 0, -40)] == ["very light", "light", "intermediate", "tan",
                                                                "brown", "dark"]


def test_estimate_ignores_eyes_and_highlights():
    skin = np.array([198, 160, 130], np.uint8)
    img = np.tile(skin, (64, 64, 1))
    img[26:30, 22:42] = 20  # eyes and brows
    img[40:42, 30:34] = 255  # a specular highlight
    a, conf = estimate_ita(img)
    lab = rgb_to_lab(skin[None])[0]
    assert a == pytest.approx(ita(lab[0], lab[2]), abs=0.5) and conf > 0.5


def test_ita_tracks_true_monk_tone_on_synthetic_faces(tiny_synth):
    from debias.data.manifest import ManifestDataset
    from debias.data.skin_tone import annotate

    ds = ManifestDataset(tiny_synth, "test")
    f = np.flatnonzero(ds.frame.label.to_numpy() == 1)
    est = annotate(lambda pos: ds.images_uint8(f[pos]), len(f))
    rho = spearmanr(ds.frame.skin_tone.iloc[f].astype(float), est.ita).statistic
    assert rho < -0.7  # darker Monk tone -> lower ITA
