"""Synthetic scenes and manifest face boxes."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from debias.data.manifest import ManifestError, read_manifest
from debias.data.scenes import SceneConfig, generate_scenes


def test_scenes_are_deterministic_valid_and_boxed(tmp_path):
    cfg = SceneConfig(n_scenes=20, seed=3)
    m = generate_scenes(cfg, tmp_path / "a")
    generate_scenes(cfg, tmp_path / "b")
    assert (tmp_path / "a" / "images.npy").read_bytes() == (tmp_path / "b" / "images.npy").read_bytes()
    m = read_manifest(tmp_path / "a")  # several rows per image are valid when each face has its own box
    faces = m[m.label == 1]
    assert len(faces) > 20 and faces.groupby("image").size().max() <= 4
    assert (faces.box_x >= -1).all() and (faces.box_x + faces.box_w <= 257).all() and (faces.box_w > 5).all()
    assert m[m.label == 0].box_x.isna().all()
    # the box holds the face: the scene differs from its own background there more than around it
    img = np.load(tmp_path / "a" / "images.npy")
    f = faces.iloc[0]
    x, y, w, h = (int(round(v)) for v in f[["box_x", "box_y", "box_w", "box_h"]])
    assert img[int(f.image), y:y + h, x:x + w].std() > 10


def _write(tmp_path, rows, cols):
    d = tmp_path / "ds"
    d.mkdir(exist_ok=True)
    np.save(d / "images.npy", np.zeros((3, 8, 8, 3), np.uint8))
    pd.DataFrame(rows, columns=cols).to_csv(d / "manifest.csv", index=False)
    return d


COLS = ["image", "label", "split", "box_x", "box_y", "box_w", "box_h"]


@pytest.mark.parametrize("rows, cols, match", [
    ([[0, 1, "test", 1, 1, 4, 4]], ["image", "label", "split", "box_x", "box_y", "box_w", "box_h"][:6] + [],
     "not box_h"),
    ([[0, 1, "test", 1, 1, 0, 4]], COLS, "line 2: box"),
    ([[0, 1, "test", 1, "x", 4, 4]], COLS, "line 2: box"),
    ([[0, 1, "test", 1, 1, 4, None]], COLS, "line 2: box"),
    ([[0, 0, "test", 1, 1, 4, 4]], COLS, "non-face row"),
    ([[0, 1, "test", 1, 1, 4, 4], [0, 1, "test", 1, 1, 4, 4]], COLS, "more than once"),
])
def test_bad_face_boxes_are_named(tmp_path, rows, cols, match):
    rows = [r[:len(cols)] for r in rows]
    with pytest.raises(ManifestError, match=match):
        read_manifest(_write(tmp_path, rows, cols))


def test_two_faces_in_one_image_are_two_rows(tmp_path):
    m = read_manifest(_write(tmp_path, [[0, 1, "test", 1, 1, 4, 4], [0, 1, "test", 4, 4, 3, 3], [1, 0, "test", None,
                                                                                                   None, None, None]],
                             COLS))
    assert len(m) == 3 and m.box_w.dtype == float
