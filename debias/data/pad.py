"""Turn a dataset of tight face crops into full images with face boxes, for a box-level audit.

A tight crop (PPB, the ``ppb-sample``, most classifier sets) has no box: the crop *is* the face. Each
image is written again with a border of ``pad`` x its longer side on every side, filled by replicating
the edge pixels (the same context a crop-level audit gives a cascade, ``debias audit --pad``), and the
crop's own extent inside the new image becomes the face box (``box_x, box_y, box_w, box_h``). A
detector then has to put a box on the face, and a box-level audit (``iou``) scores it.

The true box is the crop's extent, which is usually a little larger than the tight box a detector
draws around eyes, nose and mouth; an IoU of 0.5 allows for that (a detector box covering the central
70% of the crop's side has IoU 0.49 with it), but say so when reading the numbers.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from debias.data.manifest import BOX_COLUMNS, ManifestError, image_loader, read_manifest
from debias.files import atomic_write, prepare_dataset_dir


def pad_image(im: np.ndarray, pad: float) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """``im`` (H, W, 3) with a replicated border of round(pad x max(H, W)) pixels on every side.

    Returns (padded image, (x, y, w, h) of the original image inside it).
    """
    h, w = im.shape[:2]
    b = int(round(pad * max(h, w)))
    big = cv2.copyMakeBorder(np.ascontiguousarray(im), b, b, b, b, cv2.BORDER_REPLICATE) if b else im
    return big, (b, b, w, h)


def boxes_from_crops(src: str | Path, out: str | Path, *, pad: float = 0.5, overwrite: bool = False,
                     progress=None) -> pd.DataFrame:
    """Write ``out``: every image of dataset ``src`` padded, each face row with its crop's box.

    Parameters
    ----------
    src : dataset folder of crops (manifest.csv with image files, or a packed images.npy).
    out : new dataset folder; images go to ``out/images/`` as PNG, the manifest to ``out/manifest.csv``.
    pad : border on every side, as a fraction of the crop's longer side (> 0).
    overwrite : replace a dataset already in ``out``.
    progress : optional callable ``progress(n, total=None)``: given the total once the manifest is read,
        then advanced once per image.

    Returns
    -------
    The manifest written: the source's rows and columns, ``image`` pointing at the padded file, and
    ``box_x, box_y, box_w, box_h`` (pixels) on face rows, empty on non-faces.
    """
    if not pad > 0:
        raise ValueError(f"`pad` {pad} must be > 0: a detector needs context around a tight crop.")
    src, out = Path(src), Path(out)
    m = read_manifest(src)
    if all(c in m.columns for c in BOX_COLUMNS):
        raise ManifestError(f"{src / 'manifest.csv'} already has face boxes; audit it with `iou` as it is.")
    if out.resolve() == src.resolve():
        raise ManifestError(f"`out` {out} is the source dataset; choose a new folder for the padded copy.")
    out = prepare_dataset_dir(out, overwrite=overwrite)
    (out / "images").mkdir(exist_ok=True)
    load = image_loader(src)
    if progress:
        progress(0, total=len(m))
    rows, boxes = [], []
    for i, r in enumerate(m.itertuples(index=False)):
        big, box = pad_image(load(r.image), pad)
        name = f"images/{i:06d}.png"
        if not cv2.imwrite(str(out / name), cv2.cvtColor(big, cv2.COLOR_RGB2BGR)):
            raise OSError(f"could not write {out / name}")
        rows.append(name)
        boxes.append(box if int(r.label) == 1 else (np.nan,) * 4)
        if progress:
            progress(1)
    res = m.drop(columns=[c for c in BOX_COLUMNS if c in m.columns]).assign(image=rows)
    res[list(BOX_COLUMNS)] = np.asarray(boxes, dtype=float)
    atomic_write(out / "manifest.csv", lambda t: res.to_csv(t, index=False))
    return res
