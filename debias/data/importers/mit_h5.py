"""The MIT 6.S191 DB-VAE lab's ``train_face.h5``.

``images``: N x 64 x 64 x 3 uint8 in **BGR** order; ``labels``: N x 1, 1 for a face. Written packed
(images.npy in RGB) since there are no files to point to. Needs h5py (``pip install -e '.[h5]'``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from debias.data.importers._common import ImportResult, require
from debias.files import write_csv

NO_H5PY = "mit-h5 needs h5py, which is not installed. Install it with: pip install -e '.[h5]'"


def run(src: str | Path, out: str | Path, *, val_fraction: float = 0.1, seed: int = 0, chunk: int = 4096) -> ImportResult:
    try:
        import h5py
    except ImportError as e:
        raise ImportError(NO_H5PY) from e
    src = require(Path(src), "the lab's HDF5 file", "mit-h5")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with h5py.File(src, "r") as f:
        for k in ("images", "labels"):
            if k not in f:
                raise KeyError(f"{src} has no {k!r} dataset (has: {', '.join(f.keys())}).")
        images, labels = f["images"], np.asarray(f["labels"]).reshape(-1)
        n = images.shape[0]
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"{src}: images has shape {images.shape}; expected N x H x W x 3.")
        arr = np.lib.format.open_memmap(out / "images.npy", mode="w+", dtype=np.uint8, shape=images.shape)
        for s in range(0, n, chunk):  # chunked: the file is 1.3 GB in the lab
            arr[s:s + chunk] = np.asarray(images[s:s + chunk])[..., ::-1]  # BGR -> RGB
        arr.flush()
        del arr
    bad = ~np.isin(labels, (0, 1))
    if bad.any():
        raise ValueError(f"{src}: labels must be 0 or 1; found {labels[bad][0]!r} at row {int(np.flatnonzero(bad)[0])}.")
    rng = np.random.default_rng(seed)
    split = np.where(rng.random(n) < val_fraction, "val", "train")
    m = pd.DataFrame({"image": np.arange(n), "label": labels.astype(int), "split": split})
    report = pd.DataFrame(columns=["item", "problem"])
    write_csv(report, out / "import_report.csv")
    write_csv(m, out / "manifest.csv")  # last, and whole: a dataset's manifest marks it complete
    return ImportResult(m, report)
