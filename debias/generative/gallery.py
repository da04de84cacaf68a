"""The gallery of generated faces: one row per rarity band of their latent region (most common to rarest), or one
block of faces when no latent run weighed them. Draws only; the faces and their rarity are computed elsewhere."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def gallery_rows(log_rarity: np.ndarray | None, n: int, *, bands: int = 4,
                 per_row: int = 12) -> list[tuple[str, np.ndarray]]:
    """(label, positions) of each gallery row: ``bands`` quantile bands of ``log_rarity`` (most common first), each
    showing up to ``per_row`` faces spread evenly over the band; without rarity, ``bands`` rows of the first faces."""
    if log_rarity is None:
        pos = np.arange(min(n, bands * per_row))
        return [("", pos[i:i + per_row]) for i in range(0, len(pos), per_row)]
    order = np.argsort(log_rarity, kind="stable")  # most common region first
    rows = []
    for b, part in enumerate(np.array_split(order, bands)):
        pick = part[np.unique(np.linspace(0, len(part) - 1, min(per_row, len(part))).round().astype(int))]
        lo, hi = 100 * b // bands, 100 * (b + 1) // bands
        rows.append((f"rarity {lo}-{hi}%", pick))
    return rows


def write_gallery(images: np.ndarray, log_rarity: np.ndarray | None, path: str | Path, *, title: str) -> Path:
    """Draw the gallery of ``images`` (N, H, W, 3) uint8 into the PNG ``path``."""
    import matplotlib.pyplot as plt  # no matplotlib.use(): a notebook's backend stays as it is

    rows = [(label, pos) for label, pos in gallery_rows(log_rarity, len(images)) if len(pos)]
    h, w = images.shape[1:3]
    ncol = max(len(pos) for _, pos in rows)
    canvas = np.full((len(rows) * (h + 2), ncol * (w + 2), 3), 255, np.uint8)
    for r, (_, pos) in enumerate(rows):
        for c, i in enumerate(pos):
            canvas[r * (h + 2):r * (h + 2) + h, c * (w + 2):c * (w + 2) + w] = images[i]
    fig, ax = plt.subplots(figsize=(ncol * 0.9 + 1.6, len(rows) * 0.9 + 0.8))
    ax.imshow(canvas)
    ax.set_xticks([])
    ax.set_yticks([r * (h + 2) + h / 2 for r in range(len(rows))], [label for label, _ in rows])
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title(title, fontsize=10)
    path = Path(path)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
