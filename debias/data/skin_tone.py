"""Estimated skin tone from pixels: the Individual Typology Angle (ITA) in CIELAB.

ITA = arctan((L* - 50) / b*) * 180 / pi (Chardon et al. 1991), measured on skin pixels of the central
face region. Skin pixels: a central box (cheeks, nose, forehead below the hairline), from which
eyes, brows, nostrils and lips (darkest 15%), specular highlights (brightest 10%) and pixels whose
colour is far from the region's median (hair, background, glasses) are removed.

ITA depends on lighting as much as on skin: the same skin photographed darker has a lower L*.
Estimates are stored with a confidence and reports label estimated groupings as such.
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np
import pandas as pd

# Standard ITA classes (Del Bino et al. 2006), boundaries in degrees.
ITA_CLASSES = (("very light", 55.0), ("light", 41.0), ("intermediate", 28.0), ("tan", 10.0), ("brown", -30.0),
               ("dark", -np.inf))
LIGHTER_CLASSES = ("very light", "light", "intermediate")


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 sRGB -> (..., 3) float CIELAB (D65), L in [0, 100]."""
    x = np.asarray(rgb, dtype=np.float32).reshape(-1, 1, 3) / 255.0
    return cv2.cvtColor(x, cv2.COLOR_RGB2Lab).reshape(np.shape(rgb))


def ita(L: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Individual Typology Angle in degrees."""
    return np.degrees(np.arctan2(np.asarray(L, float) - 50.0, np.asarray(b, float)))


def ita_class(angle: float) -> str:
    for name, lower in ITA_CLASSES:
        if angle > lower:
            return name
    return "dark"


def _mst_ita() -> np.ndarray:
    from debias.data.groups import MST_RGB

    lab = rgb_to_lab(MST_RGB)
    return ita(lab[:, 0], lab[:, 2])


def nearest_monk(angle: float) -> int:
    """Monk tone (1-10) whose reference colour has the nearest ITA."""
    return int(np.argmin(np.abs(_mst_ita() - angle)) + 1)


def estimate_ita(image: np.ndarray, *, box=(0.32, 0.30, 0.68, 0.72)) -> tuple[float, float]:
    """ITA of the skin in a face crop. Returns (ita_degrees, confidence in [0, 1]).

    ``box`` is (x0, y0, x1, y1) as fractions of the image: the central face region of a crop.
    Confidence is the share of box pixels kept as skin times the agreement of their ITA values
    (1 - interquartile range / 90 degrees), so a patchy or mixed region scores low.
    """
    h, w = image.shape[:2]
    x0, y0, x1, y1 = (int(round(v)) for v in (box[0] * w, box[1] * h, box[2] * w, box[3] * h))
    lab = rgb_to_lab(image[y0:y1, x0:x1]).reshape(-1, 3)
    L = lab[:, 0]
    lo, hi = np.quantile(L, [0.15, 0.90])
    keep = (L >= lo) & (L <= hi)
    med = np.median(lab[keep], axis=0)
    keep &= (np.abs(lab[:, 1] - med[1]) < 12) & (np.abs(lab[:, 2] - med[2]) < 12)
    if keep.sum() < 10:
        return float("nan"), 0.0
    angles = ita(lab[keep, 0], lab[keep, 2])
    q1, q3 = np.quantile(angles, [0.25, 0.75])
    conf = float(np.clip(keep.mean() / 0.6, 0, 1) * np.clip(1 - (q3 - q1) / 90.0, 0, 1))
    return float(np.median(angles)), conf


def annotate(images: Callable[[np.ndarray], np.ndarray], n: int, *, batch: int = 512,
             progress: Callable | None = None) -> pd.DataFrame:
    """ITA estimates for images 0..n-1 read through ``images(positions)``.

    Returns columns ``ita``, ``ita_class``, ``skin_group_est`` (lighter / darker), ``skin_tone_est``
    (nearest Monk tone) and ``skin_tone_confidence``.
    """
    rows = []
    for s in range(0, n, batch):
        for im in images(np.arange(s, min(n, s + batch))):
            a, c = estimate_ita(im)
            if np.isnan(a):
                rows.append((np.nan, None, None, None, 0.0))
                continue
            cls = ita_class(a)
            rows.append((a, cls, "lighter" if cls in LIGHTER_CLASSES else "darker", nearest_monk(a), c))
        if progress:
            progress(min(batch, n - s))
    df = pd.DataFrame(rows, columns=["ita", "ita_class", "skin_group_est", "skin_tone_est", "skin_tone_confidence"])
    df["skin_tone_est"] = df["skin_tone_est"].astype("Int64")
    return df


def annotate_manifest(root, *, progress: Callable | None = None) -> pd.Series:
    """Estimate skin tone (ITA) for every face of the dataset ``root`` and add the columns to its manifest.

    The manifest is rewritten atomically with ``ita``, ``ita_class``, ``skin_group_est``,
    ``skin_tone_est`` and ``skin_tone_confidence`` on face rows (empty on non-faces). Returns the
    count of faces per estimated skin group. ``progress(n)`` is called as faces are done.
    """
    from pathlib import Path

    from debias.data.manifest import ManifestDataset, read_manifest
    from debias.files import exclusive, write_csv

    root = Path(root)
    with exclusive(root, "dataset"):  # another writer's manifest is never overwritten with this one's older copy
        m = read_manifest(root)
        ds = ManifestDataset(root, "all", frame=m, size=None)
        faces = np.flatnonzero(m["label"].to_numpy() == 1)
        est = annotate(lambda pos: ds.images_uint8(faces[pos]), len(faces), progress=progress)
        for c in est.columns:
            m[c] = pd.Series(est[c].to_numpy(), index=m.index[faces]).reindex(m.index)
        write_csv(m, root / "manifest.csv")
    return est["skin_group_est"].value_counts()
