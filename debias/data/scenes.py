"""Full synthetic scenes with several faces and exact boxes, for box-level detector audits.

Each scene is a ``size`` x ``size`` image (256 by default) of the same cluttered background the crop
benchmark draws, holding 0 to ``max_faces`` faces at varied scale plus a few non-face distractors
(skin-coloured ovals, scrambled faces, objects). Faces and distractors come from the crop renderer
(:func:`debias.data.synth.render_chunk`), each rendered at its own size and composited onto the scene
through its soft object mask, so a face keeps its photometry: its skin tone, light and noise.

Every face's box is its head ellipse's bounding box in scene pixels (x, y, w, h). The faces' skin
group, pose and gender are drawn uniformly, so the scenes are a balanced test set.

Manifest: one row per face (``label`` 1, ``box_x, box_y, box_w, box_h`` and the face's attributes),
several rows sharing an ``image``; a scene without faces has one row with ``label`` 0 and no box.
All rows are in the ``test`` split.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pandas as pd

from debias.config import SynthConfig
from debias.data.groups import GENDERS, POSES, SKIN_GROUPS
from debias.data.synth import _background, _face_attributes, _nonface_attributes, _photometry, render_chunk
from debias.files import write_csv


@dataclass(frozen=True)
class SceneConfig:
    """Synthetic scenes (``debias data synth --scenes N``)."""

    n_scenes: int = 300
    size: int = 256  # scene side in pixels
    max_faces: int = 4  # faces per scene are uniform on 0..max_faces
    max_distractors: int = 2  # non-face objects per scene, uniform on 0..max_distractors
    min_crop: int = 40  # a face is rendered in a crop of this many pixels up to max_crop (its head is ~45% of it)
    max_crop: int = 120
    noise: float = 0.02
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_scenes < 1 or self.max_faces < 0 or self.max_distractors < 0:
            raise ValueError(f"n_scenes={self.n_scenes} must be >= 1; max_faces and max_distractors >= 0.")
        if not 32 <= self.min_crop <= self.max_crop <= self.size:
            raise ValueError(f"need 32 <= min_crop ({self.min_crop}) <= max_crop ({self.max_crop}) <= size "
                             f"({self.size}).")


def _place(rng, k: int, size: int, taken: list[tuple[int, int, int]], tries: int = 50):
    """A top-left corner for a k-pixel crop that overlaps no crop already placed, or None."""
    for _ in range(tries):
        x, y = (int(v) for v in rng.integers(0, size - k + 1, 2))
        if all(x + k <= tx or tx + tk <= x or y + k <= ty or ty + tk <= y for tx, ty, tk in taken):
            return x, y
    return None


def render_scene(cfg: SceneConfig, rng: np.random.Generator, index: int) -> tuple[np.ndarray, list[dict]]:
    """One scene: (size, size, 3) uint8 and one record per face placed (box and attributes)."""
    base = SynthConfig(seed=cfg.seed, noise=cfg.noise)
    s = cfg.size
    albedo = np.empty((1, s, s, 3), np.uint8)
    _background(albedo[0], rng, s, int(rng.integers(4, 12)))
    light = np.array([rng.uniform(base.light_min, base.light_max)], np.float32)
    geo = np.array([[s / 2, s / 2, 1.0, 1.0]], np.float32)
    scene = _photometry(albedo, np.zeros((1, s, s), np.uint8), geo, light, np.zeros(1, np.float32), cfg.noise,
                        rng)[0].astype(np.float32)
    n_faces = int(rng.integers(0, cfg.max_faces + 1))
    n_dis = int(rng.integers(0, cfg.max_distractors + 1))
    faces = _face_attributes(rng.choice(SKIN_GROUPS, n_faces), rng.choice(POSES, n_faces),
                             rng.choice(GENDERS, n_faces), base, rng)
    objects = pd.concat([faces, _nonface_attributes(n_dis, base, rng)], ignore_index=True)
    objects = objects[objects["kind"].isin(["face", "skin-oval", "scrambled", "object"])].reset_index(drop=True)
    taken: list[tuple[int, int, int]] = []
    records = []
    for i in range(len(objects)):
        one = objects.iloc[[i]].reset_index(drop=True)  # a one-row attribute table, dtypes kept
        row = one.iloc[0]
        k = int(rng.integers(cfg.min_crop, cfg.max_crop + 1))
        at = _place(rng, k, s, taken)
        if at is None:
            continue  # the scene is full; fewer faces than drawn, and the manifest says how many
        x, y = at
        taken.append((x, y, k))
        img, mask, g = render_chunk(one, k, cfg.noise, rng, with_geometry=True)
        alpha = cv2.GaussianBlur(cv2.dilate(mask[0], np.ones((3, 3), np.uint8)), (5, 5), 1.0)[..., None] / 255.0
        scene[y:y + k, x:x + k] = alpha * img[0] + (1 - alpha) * scene[y:y + k, x:x + k]
        if row["label"] == 1:
            cx, cy, rx, ry = (float(v) for v in g[0])
            records.append({"image": index, "label": 1, "split": "test",
                            "box_x": round(x + cx - rx, 2), "box_y": round(y + cy - ry, 2),
                            "box_w": round(2 * rx, 2), "box_h": round(2 * ry, 2),
                            **{c: row[c] for c in ("skin_tone", "skin_group", "yaw", "pose", "gender", "light")}})
    return np.clip(np.round(scene), 0, 255).astype(np.uint8), records


def generate_scenes(cfg: SceneConfig, out: str | Path, *,
                    progress: Callable[[int], None] | None = None) -> pd.DataFrame:
    """Render ``cfg.n_scenes`` scenes into ``out`` (images.npy, manifest.csv, config.json).

    Returns the manifest (one row per face; a face-free scene has one ``label`` 0 row).
    """
    from debias.config import to_json

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    images = np.lib.format.open_memmap(out / "images.npy", mode="w+", dtype=np.uint8,
                                       shape=(cfg.n_scenes, cfg.size, cfg.size, 3))
    seeds = np.random.SeedSequence([cfg.seed, 5]).spawn(cfg.n_scenes)  # each scene its own stream
    rows: list[dict] = []
    for i, sd in enumerate(seeds):
        img, recs = render_scene(cfg, np.random.default_rng(sd), i)
        images[i] = img
        rows += recs or [{"image": i, "label": 0, "split": "test"}]
        if progress:
            progress(1)
    images.flush()
    del images
    manifest = pd.DataFrame(rows)
    manifest["n_faces"] = manifest.groupby("image")["label"].transform("sum")
    manifest["skin_tone"] = manifest["skin_tone"].astype("Int64")
    to_json(cfg, out / "config.json", generator="debias.data.scenes")
    write_csv(manifest, out / "manifest.csv")  # last, and whole: a dataset's manifest marks it complete
    return manifest
