"""scikit-image's ``lfw_subset``: 100 real faces and 100 real non-faces from Labeled Faces in the Wild.

    debias data import skimage-lfw --out data/lfw-subset     (no SRC: the images ship inside scikit-image)

The images are 25 x 25 grayscale crops; they are written as RGB PNG files under ``out/images`` with
``label`` 1 for the first 100 (faces) and 0 for the rest, all in the test split. They carry no skin,
pose or gender labels (audit with ``--by dataset``): the set checks that a classifier separates real faces
from real non-faces at
all, and ``debias data annotate`` can estimate skin tone on it. Needs scikit-image
(``pip install -e '.[detectors]'``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from debias.data.importers._common import ImportResult, write


def run(src: str | Path | None, out: str | Path, *, split: str = "test") -> ImportResult:
    try:
        from skimage import data
    except ImportError:
        raise ImportError("skimage-lfw needs scikit-image, which is not installed. Install it with: "
                          "pip install -e '.[detectors]'") from None
    from PIL import Image

    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    imgs = data.lfw_subset()  # (200, 25, 25) float in [0, 1]: 100 faces, then 100 non-faces
    rows = []
    for i, im in enumerate(imgs):
        path = out / "images" / f"{'face' if i < 100 else 'nonface'}_{i:03d}.png"
        g = np.clip(np.rint(im * 255), 0, 255).astype(np.uint8)
        Image.fromarray(np.repeat(g[..., None], 3, axis=2)).save(path)
        rows.append({"image": path, "label": int(i < 100), "split": split, "dataset": "lfw-subset"})
    return write(out, pd.DataFrame(rows), [])
