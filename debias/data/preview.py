"""Image grid with one row per subgroup, so a person can see what a dataset looks like."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from debias.data.manifest import ManifestDataset, read_manifest, select_split


def preview_grid(root: str | Path, by: Sequence[str], *, split: str = "test", per_row: int = 12,
                 out: str | Path = "grid.png", seed: int = 0, include_nonfaces: bool = True) -> Path:
    """Write a PNG grid: one row of ``per_row`` random faces for each combination of ``by``.

    A last row shows non-faces. Returns the output path.
    """
    import matplotlib.pyplot as plt  # no matplotlib.use(): a notebook's backend stays as it is

    df = select_split(read_manifest(root), split)
    missing = [c for c in by if c not in df.columns]
    if missing:
        raise KeyError(f"column(s) {missing} not in the manifest (columns: {', '.join(df.columns)}).")
    ds = ManifestDataset(root, split, frame=df)
    frame = ds.frame
    rng = np.random.default_rng(seed)
    rows, names = [], []
    faces = frame[frame["label"] == 1]
    from debias.data.groups import sort_levels

    groups = dict(list(faces.groupby(list(by), sort=True)))
    order = sorted(groups, key=lambda k: [sort_levels(frame[c].dropna().astype(str).unique()).index(str(v))
                                          for c, v in zip(by, k if isinstance(k, tuple) else (k,))])
    for key in order:
        g = groups[key]
        pick = rng.choice(g.index.to_numpy(), min(per_row, len(g)), replace=False)
        rows.append(ds.images_uint8(pick))
        names.append(" / ".join(map(str, key if isinstance(key, tuple) else (key,))))
    if include_nonfaces and (frame["label"] == 0).any():
        non = frame.index[frame["label"] == 0].to_numpy()
        rows.append(ds.images_uint8(rng.choice(non, min(per_row, len(non)), replace=False)))
        names.append("non-face")
    h, w = rows[0].shape[1:3]
    canvas = np.full((len(rows) * (h + 2), per_row * (w + 2), 3), 255, np.uint8)
    for r, imgs in enumerate(rows):
        for c, im in enumerate(imgs):
            canvas[r * (h + 2):r * (h + 2) + h, c * (w + 2):c * (w + 2) + w] = im
    fig, ax = plt.subplots(figsize=(per_row * 0.9 + 2.2, len(rows) * 0.9 + 0.3), dpi=110)
    ax.imshow(canvas, interpolation="nearest")
    ax.set_yticks([r * (h + 2) + h / 2 for r in range(len(rows))], names, fontsize=8)
    ax.set_xticks([])
    for s in ax.spines.values():
        s.set_visible(False)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


__all__ = ["preview_grid"]
