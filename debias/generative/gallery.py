"""The gallery of generated faces: one row per rarity band of their latent region (most common to rarest), or one
block of faces when no latent run weighed them; and the audit report's section on the generated faces a run trained
with. Draws and words only; the faces, their rarity and their quality are computed elsewhere."""
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


GENERATORS = {"dcgan": "a DCGAN", "decoder": "a DB-VAE's decoder"}


def trained_with(run: str | Path) -> tuple[Path, float] | None:
    """(the folder of generated faces, their share of each batch's faces) that the run in ``run`` trained its
    classifier with (``debias train --extra``), read from its config.json; None for a run without them."""
    import json

    try:
        cfg = json.loads((Path(run) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    cfg = cfg.get("stages", {}).get("classifier", cfg)  # the two-stage recipe's classifier holds them
    return (Path(cfg["extra"]), float(cfg.get("extra_share", 0.0))) if cfg.get("extra") else None


def generated_section(model: str, gen: Path, share: float) -> dict:
    """The report section on the generated faces a model trained with: what made them, their quality against
    held-out real faces (quality.json) and their gallery (gallery.png), as an audit report's extra section."""
    import base64
    import json

    def read(name):
        try:
            return json.loads((gen / name).read_text())
        except (OSError, ValueError):
            return {}

    made, q = read("config.json"), read("quality.json")
    drawn = {"uniform": "uniformly"}.get(made.get("drawn", "uniform"), made.get("drawn"))
    text = (f"{model} was trained with {share:.0%} of each batch's faces generated: the {made.get('n', '?')} faces in "
            f"{gen}, which {GENERATORS.get(made.get('generator'), 'a generator')} drew {drawn}.")
    if {"precision", "recall", "density", "coverage", "probe_auc"} <= set(q):
        text += (f" Against {q.get('n_real')} held-out real faces, on the {q.get('embedding')}: precision "
                 f"{q['precision']:.2f}, recall {q['recall']:.2f}, density {q['density']:.2f}, coverage "
                 f"{q['coverage']:.2f} (Naeem et al. 2020; real faces score about 1 on each), and a linear probe tells "
                 f"generated from real with AUC {q['probe_auc']:.2f} (0.5: it cannot).")
        if "rare_share" in q:
            text += (f" {q['rare_share']:.0%} of them are rarer in the latent than 90% of the training faces "
                     f"({q['rare_share_train']:.0%} of the training faces are).")
    figs = [(f"faces generated for {model}", base64.b64encode((gen / "gallery.png").read_bytes()).decode("ascii"))
            ] if (gen / "gallery.png").is_file() else []
    if not figs:
        text += f" {gen / 'gallery.png'} is missing, so no faces are shown."
    return {"title": f"Generated training faces: {model}", "text": text, "figs": figs, "wide": True}
