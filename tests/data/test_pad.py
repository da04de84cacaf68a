"""Tight crops become padded images whose face box is the crop's extent."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from debias.audit.boxes import face_table
from debias.cli import app
from debias.data.manifest import load_image, read_manifest
from debias.data.pad import boxes_from_crops


def _crops(root):
    root.mkdir()
    rng = np.random.default_rng(0)
    face = rng.integers(0, 256, (6, 10, 3), dtype=np.uint8)  # H 6, W 10
    other = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(face).save(root / "face.png")
    Image.fromarray(other).save(root / "wall.png")
    pd.DataFrame({"image": ["face.png", "wall.png"], "label": [1, 0], "split": ["test", "test"],
                  "skin_group": ["darker", None]}).to_csv(root / "manifest.csv", index=False)
    return face


def test_padded_crop_keeps_its_pixels_at_the_box_and_replicates_its_edges(tmp_path):
    face = _crops(tmp_path / "crops")
    m = boxes_from_crops(tmp_path / "crops", tmp_path / "boxes", pad=0.5)
    # border round(0.5 x max(6, 10)) = 5 px on every side: 20 x 16 image, box (5, 5, 10, 6)
    big = load_image(tmp_path / "boxes", m.image[0], None)
    assert big.shape == (16, 20, 3)
    assert m.loc[0, ["box_x", "box_y", "box_w", "box_h"]].tolist() == [5, 5, 10, 6]
    assert np.array_equal(big[5:11, 5:15], face)  # the crop, untouched, inside its box
    assert np.array_equal(big[0, 5:15], face[0]) and np.array_equal(big[5:11, 0], face[:, 0])  # edges replicated
    assert m.loc[1, ["box_x", "box_y", "box_w", "box_h"]].isna().all()  # non-faces have no box
    written = read_manifest(tmp_path / "boxes")
    faces, images = face_table(written, "manifest.csv")  # what a box-level audit reads
    assert len(faces) == 1 and len(images) == 2 and faces.skin_group[0] == "darker"


def test_pad_refuses_bad_input_with_a_clear_message(tmp_path):
    _crops(tmp_path / "crops")
    with pytest.raises(ValueError, match="`pad` 0"):
        boxes_from_crops(tmp_path / "crops", tmp_path / "b", pad=0)
    r = CliRunner().invoke(app, ["data", "pad", str(tmp_path / "crops"), "--out", str(tmp_path / "b"), "--pad", "0"])
    assert r.exit_code == 2 and "--pad 0" in r.output
    boxes_from_crops(tmp_path / "crops", tmp_path / "b")
    r = CliRunner().invoke(app, ["data", "pad", str(tmp_path / "b"), "--out", str(tmp_path / "c")])
    assert r.exit_code == 2 and "already has face boxes" in r.output
