"""A second, independent face / non-face renderer ("family B") for checking debiasing recipes.

    .venv/bin/python benchmarks/render_b.py --out DIR --n-train 20000 --seed 0 [--workers 2] [--preview grid.png]

``debias data synth`` (``debias/data/synth.py``, "family A") draws flat OpenCV ellipses and shades them
with one ellipse-derived normal. A debiasing recipe tuned on family A may have learnt its drawing style,
so this module draws the same task a different way and writes the same dataset layout
(``manifest.csv`` with family A's columns, a packed ``images.npy`` of N x 64 x 64 x 3 uint8 RGB and a
``config.json``), which ``debias.data.manifest.read_manifest``, ``debias train`` and ``debias audit``
accept as they are. Only the manifest layout is shared with family A, no drawing code.

What it draws, and how that differs from family A
-------------------------------------------------
- **Geometry: ray-cast ellipsoids.** A figure is a union of 3-D ellipsoids (cranium, jaw, nose, two ears,
  a long-hair volume, a hat brim, neck, torso), each turned by the head's yaw about the vertical axis
  (neck and torso by less) and ray-cast per pixel with an orthographic camera and a z-buffer, vectorised
  over a chunk of images. Nothing is a 2-D ellipse: the nose sticks out of the silhouette in a profile
  because it is a solid in front of the cheek, the far eye disappears because its surface point is
  hidden, the near ear moves to the middle of the head and the hair volume to the back.
- **Features as a surface texture.** Eyes (sclera and iris), brows, eye-socket darkening, lips and mouth
  line, nostrils and the shadow under the nose, beard, moustache, glasses or sunglasses, the hairline (a
  straight fringe, a side parting or a widow's peak, hair over the back and sides) and a hat crown are
  painted in the head's own surface coordinates, so they foreshorten and hide with the surface.
- **Shading.** Lambertian + ambient, with the normal taken from the gradient of the rendered depth map
  (so creases such as nose against cheek and chin against neck shade too); light from an azimuth in
  +-70 degrees, 35 degrees above the horizon.
- **Skin tones.** Ten albedos from a one-parameter melanin model (reflectance = base x exp(-k x melanin),
  melanin convex in the tone number), not the Monk reference colours: tone 1 is sRGB (218, 194, 179),
  tone 10 (58, 39, 29). Groups keep the project's names and cut points: lighter 1-4, medium 5-6,
  darker 7-10.
- **Backgrounds.** Indoor rooms: a wall with light fall-off and bicubic plaster noise, a floor with a
  tilted edge, a room corner, windows with frames and bars, picture frames, shelves with boxes, doors.
- **Camera and noise.** Optical Gaussian blur of random strength (sigma 0.3-0.9 px), a fixed exposure,
  photon shot noise from a per-image full-well count (400-1,600 electrons at white; Gaussian with the
  Poisson variance, drawn through a 16-bit quantile table) plus 3 e- read noise, the piecewise sRGB tone
  curve, then JPEG compression at a random quality (50-95) through ``cv2.imencode``.
- **Non-faces** (``kind``, one fifth each): ``room`` (background only), ``texture`` (blotch, marble,
  stripe and smooth-field textures from thresholded, stretched noise), ``object`` (vases, balls, lamps
  from 1-3 turned ellipsoids, half in a skin colour) and two hard negatives with a head's geometry, neck
  and torso, turned up to +-34 degrees: ``skin-blob`` (no facial features; ears and hair at random) and
  ``shuffled`` (the eye pair turned 30-90 degrees and low on the head, the mouth above it and often on
  end, an off-centre nose in 30%).

Bias mechanisms
---------------
- **Darker skin through the fixed exposure.** The camera does not adapt to the face, so a darker albedo
  collects fewer photons. Brows, iris, socket darkening, lips, nostrils and the nose shadow differ from
  the skin by amounts that shrink with its albedo, while the shot noise (square root of the signal)
  shrinks more slowly; JPEG then quantises away the weak detail. Low ``light`` (0.5-1.2) makes this worse
  on every face, most on darker ones. Hard negatives take skin colours from the whole scale in every
  split, so a dark head alone does not make a face.
- **Profile through occlusion.** A profile shows one eye, the lip corner, a nose silhouette and an ear;
  a three-quarter view foreshortened features; both come from the 3-D geometry above.
- **Training shares** (defaults as family A): 2% darker, 5% medium, 3% profile, 5% three-quarter training
  and validation faces; the test split is balanced per skin_group x pose x gender cell.
- **An unseen tone.** Tone 10 appears only in the test split: training and validation darker faces are
  tones 7-9, test darker faces tones 7-10 (a quarter of them tone 10). Hard negatives take tones 1-9 in
  training and validation and 1-10 in the test, so no training image shows tone 10.

Manifest columns are family A's: image, split, label, kind, skin_tone, skin_group, yaw, pose
(frontal |yaw| < 15, three-quarter 15-45, profile > 45), gender (female: long-hair volume in 90%,
narrower jaw, thinner brows, redder lips; male: wider jaw, short hair, beard 30%, moustache 15%), light,
light_azimuth, hair_color (index into ``HAIR_SRGB``), glasses, hat, scale, nonface_tone.

Measured bias (8,000 training images, seed 0, ``method='standard'``, 6 epochs, CPU, one thread):
validation accuracy 95.5%; balanced test split at threshold 0.5: accuracy 84.6%, detection rate lighter
93.1% / medium 81.2% / darker 52.2% (tone 10, never trained on, 46.6%), frontal 90.7% / three-quarter
75.8% / profile 60.0%, false positives 6.3% (shuffled 24.7%). Family A under the same protocol: validation
98.7%, test accuracy 86.5%, lighter 97.1% / medium 85.0% / darker 41.1%, frontal 81.4% / profile 62.8%.

Speed: about 1,200 images/s on one core (workers=1, 10,000 images at 64 x 64, CPU time, rendering plus
writing images.npy and the manifest; 1,250 images/s wall clock on a shared machine). Each chunk of 256
images renders from its own child seed (``SeedSequence.spawn``), so the bytes do not depend on ``workers``.
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import sys
import types
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from statistics import NormalDist

import cv2
import numpy as np
import pandas as pd

from debias.data.groups import GENDERS, POSES, SKIN_GROUPS

SIZE = 64
CHUNK = 256
FACE_FRACTION = 0.5
NONFACE_KINDS = ("room", "texture", "object", "skin-blob", "shuffled")
COLUMNS = ("image", "split", "label", "kind", "skin_tone", "skin_group", "yaw", "pose", "gender", "light",
           "light_azimuth", "hair_color", "glasses", "hat", "scale", "nonface_tone")
UNSEEN_TONE = 10  # only in the test split
_SEED_SALT = 0x5242  # keeps this family's random streams apart from family A's for the same seed


def _srgb_to_lin(c):
    c = np.asarray(c, dtype=np.float64) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _lin_to_srgb(x):
    x = np.clip(np.asarray(x, dtype=np.float64), 0, 1)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


# Skin: reflectance = base * exp(-k * melanin), melanin convex in the tone number (a melanin-like scale of
# its own, not the Monk reference colours).
_MELANIN = 3.6 * (np.arange(10) / 9.0) ** 1.7
TONE_ALBEDO = (np.array([0.70, 0.54, 0.45]) * np.exp(-np.array([0.78, 0.92, 1.0]) * _MELANIN[:, None])
               ).astype(np.float32)
HAIR_SRGB = np.array([[18, 14, 12], [48, 32, 22], [92, 60, 38], [122, 52, 30], [186, 156, 104], [138, 136, 132]])
HAIR_ALBEDO = _srgb_to_lin(HAIR_SRGB).astype(np.float32)
_TO_LIN = _srgb_to_lin(np.arange(256)).astype(np.float32)
_WALL_LIN = _TO_LIN * np.float32(0.85)
# Standard normal quantiles at 2^16 equally likely levels: a table lookup of 16-bit random integers draws
# Gaussian noise three times faster than Generator.standard_normal.
_NORMAL = np.array([NormalDist().inv_cdf((i + 0.5) / 65536) for i in range(65536)], np.float32)
_Q = 4095
_ENCODE = np.round(_lin_to_srgb(np.arange(_Q + 1) / _Q) * 255).astype(np.uint8)

# Ellipsoid slots of a figure. Head parts turn with the yaw, the neck and torso less.
CRANIUM, JAW, NOSE, EAR_L, EAR_R, HAIR, BRIM, NECK, TORSO = range(9)
K = 9


# --------------------------------------------------------------------------------------------
# attributes
# --------------------------------------------------------------------------------------------

def _tones(groups: np.ndarray, rng, top: int) -> np.ndarray:
    lo = np.select([groups == "lighter", groups == "medium"], [1, 5], 7)
    hi = np.select([groups == "lighter", groups == "medium"], [4, 6], top)
    return rng.integers(lo, hi + 1)


def _yaws(poses: np.ndarray, rng) -> np.ndarray:
    lo = np.select([poses == "frontal", poses == "three-quarter"], [0.0, 15.0], 46.0)
    hi = np.select([poses == "frontal", poses == "three-quarter"], [14.9, 45.0], 85.0)
    return np.round(rng.uniform(lo, hi) * rng.choice([-1.0, 1.0], size=len(poses)), 2)


def _faces(groups, poses, genders, rng, top_tone: int) -> pd.DataFrame:
    n = len(groups)
    return pd.DataFrame({
        "label": 1, "kind": "face",
        "skin_tone": _tones(np.asarray(groups), rng, top_tone), "skin_group": groups,
        "yaw": _yaws(np.asarray(poses), rng), "pose": poses, "gender": genders,
        "light": np.round(rng.uniform(0.5, 1.2, n), 3),
        "light_azimuth": np.round(rng.uniform(-70, 70, n), 1),
        "hair_color": rng.integers(0, len(HAIR_ALBEDO), n),
        "glasses": rng.choice(["none", "glasses", "sunglasses"], n, p=[0.84, 0.11, 0.05]),
        "hat": rng.random(n) < 0.1,
        "scale": np.round(rng.uniform(0.85, 1.15, n), 3),
    })


def _nonfaces(n: int, rng, top_tone: int) -> pd.DataFrame:
    return pd.DataFrame({
        "label": 0, "kind": rng.choice(NONFACE_KINDS, n),
        "light": np.round(rng.uniform(0.5, 1.2, n), 3),
        "light_azimuth": np.round(rng.uniform(-70, 70, n), 1),
        "nonface_tone": rng.integers(1, top_tone + 1, n),
        "hair_color": rng.integers(0, len(HAIR_ALBEDO), n),
        "scale": np.round(rng.uniform(0.85, 1.15, n), 3),
    })


def _biased(n: int, shares: dict, rng) -> pd.DataFrame:
    n_face = int(round(n * FACE_FRACTION))
    lighter = 1.0 - shares["darker"] - shares["medium"]
    frontal = 1.0 - shares["profile"] - shares["three_quarter"]
    groups = rng.choice(SKIN_GROUPS, n_face, p=[lighter, shares["medium"], shares["darker"]])
    poses = rng.choice(POSES, n_face, p=[frontal, shares["three_quarter"], shares["profile"]])
    genders = rng.choice(GENDERS, n_face)
    top = UNSEEN_TONE - 1
    return pd.concat([_faces(groups, poses, genders, rng, top), _nonfaces(n - n_face, rng, top)], ignore_index=True)


def _balanced(per_cell: int, rng) -> pd.DataFrame:
    cells = [(g, p, s) for g in SKIN_GROUPS for p in POSES for s in GENDERS]
    cols = [np.repeat([c[i] for c in cells], per_cell) for i in range(3)]
    faces = _faces(*cols, rng, UNSEEN_TONE)
    return pd.concat([faces, _nonfaces(len(faces), rng, UNSEEN_TONE)], ignore_index=True)


def attributes_b(n_train: int, *, seed: int, n_val: int = 1000, n_test_per_cell: int = 120,
                 darker_share: float = 0.02, medium_share: float = 0.05, profile_share: float = 0.03,
                 three_quarter_share: float = 0.05) -> pd.DataFrame:
    """The manifest (one row per image, all splits) without rendering anything."""
    for name, v in (("darker_share", darker_share), ("medium_share", medium_share),
                    ("profile_share", profile_share), ("three_quarter_share", three_quarter_share)):
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"`{name}`={v!r} must be between 0 and 1.")
    if darker_share + medium_share > 1 or profile_share + three_quarter_share > 1:
        raise ValueError("the darker + medium and profile + three-quarter shares must each be at most 1.")
    if min(n_train, n_val, n_test_per_cell) < 0:
        raise ValueError("image counts must be >= 0.")
    shares = dict(darker=darker_share, medium=medium_share, profile=profile_share, three_quarter=three_quarter_share)
    rng = np.random.default_rng(np.random.SeedSequence([seed, _SEED_SALT]).spawn(1)[0])
    parts = []
    for split, df in (("train", _biased(n_train, shares, rng)), ("val", _biased(n_val, shares, rng)),
                      ("test", _balanced(n_test_per_cell, rng))):
        df = df.iloc[rng.permutation(len(df))].reset_index(drop=True)
        df.insert(0, "split", split)
        parts.append(df)
    out = pd.concat(parts, ignore_index=True)
    out.insert(0, "image", np.arange(len(out)))
    face = out["label"] == 1
    out["skin_tone"] = out["skin_tone"].astype("Int64")
    out["nonface_tone"] = out["nonface_tone"].astype("Int64")
    out["skin_group"] = out["skin_group"].astype(object).where(face)
    out["pose"] = out["pose"].astype(object).where(face)
    out["gender"] = out["gender"].astype(object).where(face)
    return out[list(COLUMNS)]


# --------------------------------------------------------------------------------------------
# backgrounds (sRGB uint8, drawn per image)
# --------------------------------------------------------------------------------------------

def _noise_field(rng, res_y: int, res_x: int, channels: int = 1) -> np.ndarray:
    """Smooth random field in about [-1, 1]: low-resolution noise upsampled with bicubic interpolation."""
    low = rng.standard_normal((res_y, res_x, channels)).astype(np.float32)
    f = cv2.resize(low, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)
    return f.reshape(SIZE, SIZE, channels)


_YY, _XX = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)


def _rooms(n: int, rng) -> np.ndarray:
    """Indoor backgrounds (n, H, W, 3) uint8: a wall with light fall-off and plaster noise, a floor with a
    tilted edge, a room corner, and furniture."""
    wall = rng.uniform(50, 225, (n, 3)).astype(np.float32)
    floor = rng.uniform(30, 190, (n, 3))
    horizon = rng.uniform(0.55, 1.05, n) * SIZE
    slope = rng.uniform(-0.25, 0.25, n) * SIZE / 2
    falloff = 1.0 - rng.uniform(0, 0.35, (n, 1)).astype(np.float32) * _YY[None, :, 0] / SIZE  # (n, H)
    amp = rng.uniform(4, 22, n).astype(np.float32)
    res = rng.integers(4, 12, (n, 2))
    low = rng.standard_normal((n, 12, 12)).astype(np.float32)
    corner = np.where(rng.random(n) < 0.5, rng.uniform(0.05, 0.95, n) * SIZE, -1)
    n_items = rng.integers(1, 5, n)
    what = rng.integers(0, 4, (n, 4))
    r = rng.random((n, 4, 12))
    out = np.empty((n, SIZE, SIZE, 3), np.uint8)
    for i in range(n):
        plaster = cv2.resize(low[i, :res[i, 0], :res[i, 1]], (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)
        img = falloff[i][:, None, None] * wall[i] + (plaster * amp[i])[..., None]
        out[i] = np.clip(img, 0, 255)
        quad = np.array([[-1, horizon[i] + slope[i]], [SIZE + 1, horizon[i] - slope[i]], [SIZE + 1, SIZE + 1],
                         [-1, SIZE + 1]]) * 16
        cv2.fillPoly(out[i], [quad.astype(np.int32)], tuple(float(v) for v in floor[i]), cv2.LINE_AA, 4)
        if corner[i] >= 0:
            cv2.line(out[i], (int(corner[i]), 0), (int(corner[i]), int(horizon[i])),
                     tuple(float(v) * 0.7 for v in wall[i]), 1, cv2.LINE_AA)
        for j in range(n_items[i]):
            _furniture(out[i], what[i, j], r[i, j])
    return out


def _furniture(img: np.ndarray, what: int, r: np.ndarray) -> None:
    """One window, picture frame, shelf or door from 11 uniform numbers ``r``."""
    x0, y0 = (-0.1 + 1.05 * r[:2]) * SIZE
    w, h = (0.12 + 0.33 * r[2:4]) * SIZE
    p0, p1 = (int(x0), int(y0)), (int(x0 + w), int(y0 + h))
    col = tuple(float(v) for v in r[4:7] * 255)
    other = tuple(float(v) for v in r[7:10] * 255)
    if what == 0:  # window: bright pane, frame, cross bars
        cv2.rectangle(img, p0, p1, tuple(170 + 0.33 * v for v in other), -1)
        cv2.rectangle(img, p0, p1, col, 2)
        cv2.line(img, (int(x0 + w / 2), p0[1]), (int(x0 + w / 2), p1[1]), col, 1)
        cv2.line(img, (p0[0], int(y0 + h / 2)), (p1[0], int(y0 + h / 2)), col, 1)
    elif what == 1:  # picture frame
        cv2.rectangle(img, p0, p1, other, -1)
        cv2.rectangle(img, p0, p1, col, 1 + int(r[10] * 2))
    elif what == 2:  # shelf with a few boxes
        cv2.line(img, (p0[0], p0[1]), (p1[0], p0[1]), col, 1 + int(r[10] * 2), cv2.LINE_AA)
        for k in range(int(r[10] * 4)):
            bx = int(x0 + w * ((r[7 + k] * 7.3) % 1.0))
            cv2.rectangle(img, (bx, int(y0 - 3 - 6 * r[4 + k])), (bx + 2 + int(4 * r[5 + k]), int(y0)),
                          tuple(float(v) for v in np.roll(other, k)), -1)
    else:  # door: tall panel with a knob
        cv2.rectangle(img, (p0[0], p0[1]), (p0[0] + int(w * 0.6), SIZE), col, -1)
        cv2.circle(img, (p0[0] + int(w * 0.5), int(y0 + 0.6 * (SIZE - y0))), 1, (20, 20, 20), -1)


def _texture(img: np.ndarray, rng) -> None:
    """Blotches, marble veins or stretched stripes from thresholded multi-scale noise."""
    ry, rx = rng.integers(3, 14, 2)
    if rng.random() < 0.4:  # stretched along one axis: stripes, wood grain
        ry, rx = (2, int(rng.integers(8, 24))) if rng.random() < 0.5 else (int(rng.integers(8, 24)), 2)
    f = _noise_field(rng, ry, rx)[..., 0] + 0.4 * _noise_field(rng, 16, 16)[..., 0]
    cols = rng.uniform(0, 255, (3, 3))
    style = rng.integers(0, 3)
    if style == 0:  # blotches: three colour levels
        t = rng.uniform(-0.4, 0.4)
        lvl = (f > t).astype(np.int64) + (f > t + rng.uniform(0.3, 0.9))
        img[:] = cols[lvl].astype(np.uint8)
    elif style == 1:  # marble: veins where the field crosses a level
        v = np.exp(-np.abs(np.sin(f * rng.uniform(2, 6))) * rng.uniform(3, 10))[..., None]
        img[:] = (cols[0] * (1 - v) + cols[1] * v).astype(np.uint8)
    else:  # smooth colour field
        s = (0.5 + 0.5 * np.tanh(f))[..., None]
        img[:] = (cols[0] * s + cols[2] * (1 - s)).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# figures: ellipsoid slots and their layout
# --------------------------------------------------------------------------------------------

class _Figures:
    """Ellipsoid slots and texture parameters of the images that hold a figure (arrays over images).

    centre (B, 3): head or object centre in pixels, z = 0; axes (B, 3): cranium half-axes in pixels;
    yaw (B,): radians; rel_off, rel_ax (B, K, 3): slot centres and half-axes in head units; spin (B, K): share
    of the yaw a slot turns by; turn (B, K): extra turn, radians; on (B, K): slot present; colour
    (B, K + 1, 3): linear albedo per slot (the last, background, unused); p: texture parameters, (B,) or (B, 3).
    (A plain class, not a dataclass: the benchmarks load this file without registering it as a module.)
    """

    def __init__(self, centre, axes, yaw, rel_off, rel_ax, spin, turn, on, colour, p):
        self.centre, self.axes, self.yaw = centre, axes, yaw
        self.rel_off, self.rel_ax, self.spin, self.turn, self.on = rel_off, rel_ax, spin, turn, on
        self.colour, self.p = colour, p


def _empty_figures(n: int) -> _Figures:
    z = np.zeros
    p = {k: z(n) for k in ("feat", "hair_on", "hl0", "hl1", "hl2", "wback", "nape", "side_u", "side_v", "eye_cu",
                           "eye_du", "eye_v", "eye_w", "eye_h", "iris_r", "brow_dv", "brow_h", "mouth_u",
                           "mouth_v", "mouth_w", "eye_rot", "mouth_vert", "beard", "beard_v", "moustache", "glasses",
                           "hat")}
    p.update({k: z((n, 3)) for k in ("skin", "hair", "lip", "iris", "hat_col")})
    return _Figures(z((n, 3)), np.ones((n, 3)), z(n), z((n, K, 3)), np.ones((n, K, 3)), np.ones((n, K)),
                    z((n, K)), z((n, K), bool), z((n, K + 1, 3)), p)


_HEAD_SLOTS = {  # slot: (centre, half-axes) in cranium units (u right, v down, w toward the camera)
    CRANIUM: ((0, 0, 0), (1, 1, 1)),
    NOSE: ((0, 0.2, 0.95), (0.11, 0.22, 0.3)),
    EAR_L: ((-1.0, 0.1, -0.08), (0.1, 0.22, 0.16)),
    EAR_R: ((1.0, 0.1, -0.08), (0.1, 0.22, 0.16)),
    HAIR: ((0, 0.32, -0.5), (1.1, 1.22, 0.7)),
    BRIM: ((0, -0.52, 0.15), (1.28, 0.07, 1.32)),
    NECK: ((0, 1.05, -0.12), (0.44, 0.6, 0.46)),
    TORSO: ((0, 2.45, -0.3), (2.3, 1.05, 1.0)),
}


def _heads(F: _Figures, s: np.ndarray, female, scale, skin, hair, rng) -> None:
    """Head geometry for the figures ``s``: faces, skin blobs and shuffled faces."""
    n = len(s)
    ax0 = 14.0 * scale
    F.axes[s] = np.stack([ax0, 1.2 * ax0, 1.05 * ax0], 1)
    F.centre[s] = np.stack([SIZE / 2 + rng.uniform(-3, 3, n), 27 + rng.uniform(-2, 2, n), np.zeros(n)], 1)
    for k, (off, ax) in _HEAD_SLOTS.items():
        F.rel_off[s, k], F.rel_ax[s, k] = off, ax
    F.rel_off[s, JAW] = (0, 0.36, 0.02)
    F.rel_ax[s, JAW] = np.stack([np.where(female, 0.80, 0.95), np.where(female, 0.66, 0.62),
                                 np.where(female, 0.84, 0.9)], 1) * rng.uniform(0.97, 1.03, (n, 1))
    F.rel_ax[s, NOSE, 2] = rng.uniform(0.25, 0.34, n)
    F.spin[s, NECK], F.spin[s, TORSO] = 0.6, 0.35
    F.on[s, CRANIUM] = F.on[s, JAW] = F.on[s, NECK] = F.on[s, TORSO] = True
    F.on[s, HAIR] = np.where(female, rng.random(n) < 0.9, rng.random(n) < 0.08)
    F.colour[s, CRANIUM] = F.colour[s, JAW] = F.colour[s, NOSE] = skin
    F.colour[s, EAR_L] = F.colour[s, EAR_R] = skin * 0.92
    F.colour[s, NECK] = skin * 0.85
    F.colour[s, HAIR] = hair
    F.colour[s, TORSO] = _srgb_to_lin(rng.integers(10, 245, (n, 3)))
    F.p["skin"][s], F.p["hair"][s] = skin, hair
    _hairline(F, s, female, rng)


def _hairline(F: _Figures, s, female, rng) -> None:
    """Hair painted on the cranium: hairline v < hl0 + hl1 u + hl2 u^2, the back of the head, the sides."""
    n, p = len(s), F.p
    kind = rng.integers(0, 3, n)  # straight fringe, side part, widow's peak
    p["hl0"][s] = np.select([kind == 0, kind == 1], [-0.3, -0.45], -0.5) + rng.uniform(-0.06, 0.06, n)
    p["hl1"][s] = np.where(kind == 1, rng.choice([-0.3, 0.3], n), 0.0)
    p["hl2"][s] = np.select([kind == 0, kind == 1], [0.05, 0.15], 0.35)
    p["hl0"][s] -= np.where(~female & (rng.random(n) < 0.1), 0.4, 0.0)  # receding
    p["wback"][s] = np.where(female, -0.15, -0.4)
    p["nape"][s] = np.where(female, 1.0, 0.3)
    p["side_u"][s] = np.where(female, 0.78, 0.9)
    p["side_v"][s] = np.where(female, 0.55, -0.15)
    p["hair_on"][s] = 1.0


def _face_layout(F: _Figures, s, female, rng) -> None:
    """Facial features in cranium units (front of the head, v down)."""
    n, p = len(s), F.p
    p["feat"][s] = 1.0
    p["eye_du"][s] = rng.uniform(0.33, 0.39, n)
    p["eye_v"][s] = rng.uniform(-0.06, 0.0, n)
    p["eye_w"][s], p["eye_h"][s], p["iris_r"][s] = 0.18, 0.085, 0.08
    p["brow_dv"][s] = -rng.uniform(0.2, 0.25, n)
    p["brow_h"][s] = np.where(female, 0.045, 0.065)
    p["mouth_v"][s] = rng.uniform(0.55, 0.6, n)
    p["mouth_w"][s] = np.where(female, 0.25, 0.28)
    lip_tint = np.where(female[:, None], [[0.05, 0.0, 0.006]], [[0.01, 0.0, 0.0]])
    p["lip"][s] = F.p["skin"][s] * [0.72, 0.5, 0.52] + lip_tint
    p["iris"][s] = _srgb_to_lin(rng.integers(10, 60, (n, 3)))
    beard = ~female & (rng.random(n) < 0.3)
    p["beard"][s] = beard
    p["beard_v"][s] = rng.uniform(0.4, 0.5, n)
    p["moustache"][s] = ~female & ~beard & (rng.random(n) < 0.15 / 0.7)


def _shuffled_layout(F: _Figures, s, rng) -> None:
    """The parts of a face at wrong places: the eye pair turned 30-90 degrees and low on the head, the mouth
    above it and often on end, a nose (if any) off-centre."""
    n, p = len(s), F.p
    p["feat"][s] = 1.0
    p["eye_cu"][s] = rng.uniform(-0.3, 0.3, n)
    p["eye_du"][s] = rng.uniform(0.15, 0.3, n)
    p["eye_v"][s] = rng.uniform(0.35, 0.7, n)
    p["eye_rot"][s] = rng.choice([-1.0, 1.0], n) * rng.uniform(0.5, 1.6, n)  # radians
    p["eye_w"][s], p["eye_h"][s], p["iris_r"][s] = 0.17, 0.08, 0.075
    p["brow_dv"][s] = rng.choice([-0.22, 0.22], n)
    p["brow_h"][s] = 0.055
    p["mouth_u"][s] = rng.uniform(-0.4, 0.4, n)
    p["mouth_v"][s] = rng.uniform(-0.45, -0.1, n)
    p["mouth_w"][s] = rng.uniform(0.2, 0.3, n)
    p["mouth_vert"][s] = rng.random(n) < 0.5
    p["lip"][s] = F.p["skin"][s] * [0.72, 0.5, 0.52] + [0.03, 0.0, 0.004]
    p["iris"][s] = _srgb_to_lin(rng.integers(15, 90, (n, 3)))
    F.rel_off[s, NOSE] = np.stack([rng.uniform(-0.6, 0.6, n), rng.uniform(-0.5, 0.6, n),
                                   np.full(n, 0.8)], 1)
    F.on[s, NOSE] = rng.random(n) < 0.3


def _objects(F: _Figures, s, skin, rng) -> None:
    """Vases, balls and lamps: a body, maybe a top and a base, each a turned ellipsoid."""
    n = len(s)
    R = 12.0 * rng.uniform(0.8, 1.2, n)
    F.axes[s] = R[:, None]
    F.centre[s] = np.stack([SIZE / 2 + rng.uniform(-6, 6, n), SIZE / 2 + rng.uniform(-5, 6, n), np.zeros(n)], 1)
    body = rng.uniform([0.5, 0.6, 0.5], [1.3, 1.5, 1.3], (n, 3))
    top = rng.uniform([0.2, 0.2, 0.2], [0.7, 0.6, 0.7], (n, 3))
    F.rel_ax[s, 0], F.rel_ax[s, 1] = body, top
    F.rel_off[s, 1, 1] = -(body[:, 1] + 0.7 * top[:, 1])
    F.rel_ax[s, 2] = np.stack([rng.uniform(1.5, 2.5, n), np.full(n, 0.15), rng.uniform(0.8, 1.3, n)], 1)
    F.rel_off[s, 2, 1] = body[:, 1]
    F.turn[s, :3] = rng.uniform(-1.2, 1.2, (n, 3))
    F.on[s, 0] = True
    F.on[s, 1], F.on[s, 2] = rng.random(n) < 0.5, rng.random(n) < 0.5
    body_col = np.where(rng.random((n, 1)) < 0.5, skin, _srgb_to_lin(rng.integers(0, 256, (n, 3))))
    F.colour[s, 0] = body_col
    F.colour[s, 1] = _srgb_to_lin(rng.integers(0, 256, (n, 3)))
    F.colour[s, 2] = _srgb_to_lin(rng.integers(0, 256, (n, 3)))


def _figures(rows: dict, rng) -> tuple[np.ndarray, _Figures]:
    """Which images hold a figure, and the figures' slots and texture parameters."""
    kind = rows["kind"]
    idx = np.flatnonzero(~np.isin(kind, ["room", "texture"]))
    F = _empty_figures(len(idx))
    k = kind[idx]
    n = len(idx)
    face = k == "face"
    tone = np.where(face, rows["skin_tone"][idx], rows["nonface_tone"][idx]).astype(int)
    skin = TONE_ALBEDO[tone - 1] * rng.uniform(0.95, 1.05, (n, 3))
    hair = HAIR_ALBEDO[rows["hair_color"][idx].astype(int)] * rng.uniform(0.9, 1.1, (n, 1))
    female = np.where(face, rows["gender"][idx] == "female", rng.random(n) < 0.5)
    F.yaw[:] = np.where(face, np.radians(rows["yaw"][idx].astype(float)), rng.uniform(-0.6, 0.6, n))
    scale = rows["scale"][idx].astype(float)
    head = np.flatnonzero(k != "object")
    _heads(F, head, female[head], scale[head], skin[head], hair[head], rng)
    f = np.flatnonzero(face)
    F.on[f, NOSE] = F.on[f, EAR_L] = F.on[f, EAR_R] = True
    _face_layout(F, f, female[f], rng)
    F.p["glasses"][f] = np.select([rows["glasses"][idx][f] == "glasses", rows["glasses"][idx][f] == "sunglasses"],
                                  [1.0, 2.0], 0.0)
    hat = f[rows["hat"][idx][f].astype(bool)]
    F.p["hat"][hat] = 1.0
    F.on[hat, BRIM] = True
    F.colour[hat, BRIM] = F.p["hat_col"][hat] = _srgb_to_lin(rng.integers(10, 245, (len(hat), 3)))
    blob = np.flatnonzero(k == "skin-blob")
    F.on[blob, EAR_L] = F.on[blob, EAR_R] = rng.random(len(blob)) < 0.5
    F.p["hair_on"][blob] = rng.random(len(blob)) < 0.6
    F.p["hair_on"][np.flatnonzero(k == "shuffled")] = rng.random(int((k == "shuffled").sum())) < 0.6
    _shuffled_layout(F, np.flatnonzero(k == "shuffled"), rng)
    _objects(F, np.flatnonzero(k == "object"), skin[k == "object"], rng)
    return idx, F


# --------------------------------------------------------------------------------------------
# ray casting, texture, shading (vectorised over the figures of a chunk)
# --------------------------------------------------------------------------------------------

def _raycast(F: _Figures) -> tuple[np.ndarray, np.ndarray]:
    """Orthographic z-buffer over every slot: depth (B, H, W) and the visible slot (B, H, W; K = none)."""
    n = len(F.yaw)
    xs = np.arange(SIZE, dtype=np.float32) + 0.5
    zbest = np.full((n, SIZE, SIZE), -np.inf, np.float32)
    idx = np.full((n, SIZE, SIZE), K, np.int8)
    for k in range(K):
        on = F.on[:, k]
        if not on.any():
            continue
        th = F.yaw * F.spin[:, k] + F.turn[:, k]
        c, s = np.cos(th), np.sin(th)
        off = F.rel_off[:, k] * F.axes
        cen = F.centre + np.stack([c * off[:, 0] + s * off[:, 2], off[:, 1], -s * off[:, 0] + c * off[:, 2]], 1)
        a2, b2, c2 = (1.0 / np.maximum(F.rel_ax[:, k] * F.axes, 1e-3) ** 2).T
        A = s * s * a2 + c * c * c2
        X = (xs[None, :] - cen[:, 0:1]).astype(np.float32)
        bh = X * (c * s * (c2 - a2))[:, None]
        P = (bh * bh - A[:, None] * X * X * (c * c * a2 + s * s * c2)[:, None] + A[:, None]) / (A * A)[:, None]
        P = np.where(on[:, None], P, -1.0).astype(np.float32)
        m = (cen[:, 2:3] - bh / A[:, None]).astype(np.float32)
        Y = xs[None, :] - cen[:, 1:2]
        Q = (Y * Y * (b2 / A)[:, None]).astype(np.float32)
        t2 = P[:, None, :] - Q[:, :, None]
        z = np.sqrt(np.maximum(t2, 0.0)) + m[:, None, :]
        better = (t2 > 0) & (z > zbest)
        zbest = np.where(better, z, zbest)
        idx[better] = k
    return zbest, idx


def _ellipse(u, v, u0, v0, a, b, soft: float = 3.0):
    """Soft inside-ellipse weight in [0, 1] of surface points; centre and half-axes per point or scalars."""
    q = ((u - u0) / np.maximum(a, 1e-3)) ** 2 + ((v - v0) / np.maximum(b, 1e-3)) ** 2
    return np.clip((1.0 - q) * soft, 0.0, 1.0)


def _paint(alb, weight, colour, img) -> None:
    """alb (N, 3) += weight (N,) * (colour - alb) where weight > 0; colour is per image (B, 3), img (N,) each
    point's image."""
    i = np.flatnonzero(weight)
    if len(i):
        alb[i] += weight[i, None].astype(np.float32) * (np.asarray(colour, np.float32)[img[i]] - alb[i])


def _features(F: _Figures, alb, img, part, u, v, w) -> None:
    """Paint hair, hat crown, eyes, brows, mouth, nose shadow, beard and glasses on head surface points.

    ``alb`` (N, 3) is the albedo of the visible cranium, jaw and nose points, ``img`` their image, ``part``
    their slot and (u, v, w) their position in cranium units (u right, v down, w out of the face).
    """
    p = {k: x[img].astype(np.float32) for k, x in F.p.items() if x.ndim == 1}
    c = {k: F.p[k] for k in ("skin", "hair", "lip", "iris", "hat_col")}
    crown = part == CRANIUM
    cap = crown & (p["hair_on"] > 0) & ((v < p["hl0"] + p["hl1"] * u + p["hl2"] * u * u)
                                         | ((w < p["wback"]) & (v < p["nape"]))
                                         | ((np.abs(u) > p["side_u"]) & (v < p["side_v"]) & (w < 0.1)))
    _paint(alb, cap, c["hair"], img)
    _paint(alb, crown & (p["hat"] > 0) & (v < -0.5), c["hat_col"], img)
    front = (w > 0.1) * p["feat"]
    cr, sr = np.cos(p["eye_rot"]), np.sin(p["eye_rot"])  # the eye line: level on faces, turned on shuffled ones
    du, dv = u - p["eye_cu"], v - p["eye_v"]
    ue, ve = np.abs(cr * du + sr * dv), p["eye_v"] - sr * du + cr * dv
    alb *= (1.0 - 0.3 * front * _ellipse(ue, ve, p["eye_du"], p["eye_v"] - 0.02, 0.27, 0.16, 1.5))[:, None]
    _paint(alb, front * p["beard"] * np.clip((v - p["beard_v"]) * 8, 0, 1) * 0.9, c["hair"] * 0.9, img)
    open_eye = front * (p["glasses"] != 2)
    _paint(alb, open_eye * _ellipse(ue, ve, p["eye_du"], p["eye_v"], p["eye_w"], p["eye_h"]),
           np.broadcast_to(_srgb_to_lin([205, 200, 190]), c["skin"].shape), img)
    _paint(alb, open_eye * _ellipse(ue, ve, p["eye_du"], p["eye_v"], p["iris_r"], p["iris_r"]), c["iris"], img)
    _paint(alb, front * 0.85 * _ellipse(ue, ve, p["eye_du"], p["eye_v"] + p["brow_dv"], 0.2, p["brow_h"]),
           c["hair"] * 0.8, img)
    vert = p["mouth_vert"] > 0  # lips on end (shuffled faces only)
    _paint(alb, front * _ellipse(u, v, p["mouth_u"], p["mouth_v"], np.where(vert, 0.07, p["mouth_w"]),
                                 np.where(vert, p["mouth_w"], 0.07)), c["lip"], img)
    _paint(alb, front * _ellipse(u, v, p["mouth_u"], p["mouth_v"], np.where(vert, 0.025, 0.9 * p["mouth_w"]),
                                 np.where(vert, 0.9 * p["mouth_w"], 0.025)), c["skin"] * 0.25, img)
    _paint(alb, front * p["moustache"] * _ellipse(u, v, p["mouth_u"], p["mouth_v"] - 0.1, p["mouth_w"], 0.05),
           c["hair"] * 0.9, img)
    nose = front * (F.on[:, NOSE] & (F.p["eye_cu"] == 0))[img]
    _paint(alb, nose * 0.7 * _ellipse(u, v, 0, 0.45, 0.14, 0.05), c["skin"] * 0.5, img)
    _paint(alb, nose * _ellipse(np.abs(u), v, 0.06, 0.4, 0.035, 0.025), c["skin"] * 0.3, img)
    ring = np.sqrt(((ue - p["eye_du"]) / 0.24) ** 2 + ((ve - p["eye_v"]) / 0.14) ** 2)
    _paint(alb, front * (p["glasses"] == 1) * np.clip(1 - np.abs(ring - 1) * 5, 0, 1),
           np.full_like(c["skin"], 0.02), img)
    _paint(alb, front * (p["glasses"] == 2) * _ellipse(ue, ve, p["eye_du"], p["eye_v"], 0.24, 0.14),
           np.full_like(c["skin"], 0.012), img)


def _shade(z, hit, azimuth_deg) -> np.ndarray:
    """Lambertian + ambient shading from the depth map's gradient, per image light direction."""
    zf = np.where(hit, z, 0.0).astype(np.float32)
    gx = np.zeros_like(zf)
    gy = np.zeros_like(zf)
    gx[:, :, 1:-1] = 0.5 * (zf[:, :, 2:] - zf[:, :, :-2])
    gy[:, 1:-1, :] = 0.5 * (zf[:, 2:, :] - zf[:, :-2, :])
    np.clip(gx, -5, 5, out=gx)
    np.clip(gy, -5, 5, out=gy)
    az = np.radians(azimuth_deg)[:, None, None]
    el = np.radians(35.0)
    lx, ly, lz = np.sin(az) * math.cos(el), -math.sin(el), np.cos(az) * math.cos(el)
    ndotl = (-gx * lx - gy * ly + lz) / np.sqrt(gx * gx + gy * gy + 1.0)
    return (0.28 + 0.8 * np.clip(ndotl, 0.0, None)).astype(np.float32)


def _render_figures(F: _Figures, azimuth_deg) -> tuple[np.ndarray, np.ndarray]:
    """Linear radiance (per unit light) of the figures (B, H, W, 3) and their coverage (B, H, W)."""
    z, idx = _raycast(F)
    hit = idx < K
    flat_idx = idx.astype(np.int32) + (np.arange(len(F.yaw), dtype=np.int32) * (K + 1))[:, None, None]
    alb = np.take(F.colour.astype(np.float32).reshape(-1, 3), flat_idx, axis=0)
    img, y, x = np.nonzero(idx <= NOSE)  # visible cranium, jaw and nose points carry the features
    X = (x + 0.5 - F.centre[img, 0]).astype(np.float32)
    Z = z[img, y, x]
    c, s = np.cos(F.yaw[img]).astype(np.float32), np.sin(F.yaw[img]).astype(np.float32)
    ax = F.axes[img].astype(np.float32)
    u = (c * X - s * Z) / ax[:, 0]
    v = ((y + 0.5 - F.centre[img, 1]) / ax[:, 1]).astype(np.float32)
    w = (s * X + c * Z) / ax[:, 2]
    flat = alb[img, y, x]
    _features(F, flat, img, idx[img, y, x], u, v, w)
    alb[img, y, x] = flat
    alb *= _shade(z, hit, azimuth_deg)[..., None]
    return alb, hit


# --------------------------------------------------------------------------------------------
# camera
# --------------------------------------------------------------------------------------------

def _camera(rad: np.ndarray, light: np.ndarray, rng) -> np.ndarray:
    """Linear radiance per unit light (B, H, W, 3) -> JPEG-compressed sRGB uint8.

    Optical blur, then a fixed exposure: the scene's ``light`` times the radiance fills a per-image full
    well (electrons at white), with shot noise (Gaussian with the Poisson variance) and 3 e- read noise;
    then the sRGB tone curve, 8 bits and JPEG at a random quality.
    """
    n = len(rad)
    for i, sig in enumerate(rng.uniform(0.3, 0.9, n)):
        cv2.GaussianBlur(rad[i], (0, 0), float(sig), dst=rad[i])
    full_well = rng.uniform(400, 1600, n).astype(np.float32)[:, None, None, None]
    e = rad
    e *= full_well * light.astype(np.float32)[:, None, None, None]  # radiance >= 0; saturation after the noise
    normal = _NORMAL[rng.integers(0, 1 << 16, e.shape, dtype=np.uint16)]
    e += np.sqrt(e + np.float32(9.0)) * normal
    e *= np.float32(_Q) / full_well
    img = _ENCODE[np.clip(e, 0, _Q, out=e).astype(np.uint16)]
    quality = rng.integers(50, 96, n)
    for i in range(n):
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img[i, :, :, ::-1]),
                               [cv2.IMWRITE_JPEG_QUALITY, int(quality[i])])
        img[i] = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]
    return img


def render_chunk(rows: pd.DataFrame, seed) -> np.ndarray:
    """Render the images of ``rows`` (manifest rows) from a chunk seed: (B, 64, 64, 3) uint8 RGB."""
    rng = np.random.default_rng(seed)
    cols = {c: rows[c].to_numpy() for c in ("kind", "hair_color", "gender", "yaw", "glasses", "hat", "scale")}
    cols["skin_tone"] = rows["skin_tone"].fillna(0).to_numpy(int)
    cols["nonface_tone"] = rows["nonface_tone"].fillna(0).to_numpy(int)
    n = len(rows)
    bg = _rooms(n, rng)
    for i in np.flatnonzero(cols["kind"] == "texture"):
        _texture(bg[i], rng)
    rad = _WALL_LIN[bg]  # walls and floors: diffuse indirect light
    sel, F = _figures(cols, rng)
    if len(sel):
        fig, hit = _render_figures(F, rows["light_azimuth"].to_numpy(float)[sel])
        sub = rad[sel]
        np.copyto(sub, fig, where=hit[..., None])
        rad[sel] = sub
    return _camera(rad, rows["light"].to_numpy(np.float32), rng)


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------

def _render_task(args):
    rows, seed = args
    return render_chunk(rows, seed)


def _pool(workers: int) -> ProcessPoolExecutor | None:
    """Forked render workers, or None where fork is unavailable (then rendering stays in this process).

    This file is loaded by path (benchmarks/ is not a package), so a worker could not import it by name to
    find ``_render_task``; forked workers inherit this process's modules instead, and a module loaded
    without registering itself is registered here under its own name.
    """
    if "fork" not in multiprocessing.get_all_start_methods():
        return None
    if getattr(sys.modules.get(__name__), "_render_task", None) is not _render_task:
        shim = types.ModuleType(__name__)
        shim.__dict__.update(globals())
        sys.modules[__name__] = shim
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))


def generate_b(n_train: int, *, seed: int, out: Path, n_val: int = 1000, n_test_per_cell: int = 120,
               darker_share: float = 0.02, medium_share: float = 0.05, profile_share: float = 0.03,
               three_quarter_share: float = 0.05, workers: int = 1) -> pd.DataFrame:
    """Render family B into ``out`` (manifest.csv, images.npy, config.json) and return the manifest.

    The same ``seed`` gives the same bytes whatever ``workers`` is: attributes come from the first child of
    the run's seed sequence, and chunk i of 256 images from child i + 1.
    """
    if workers < 1:
        raise ValueError(f"`workers`={workers} must be at least 1.")
    params = dict(n_train=n_train, n_val=n_val, n_test_per_cell=n_test_per_cell, darker_share=darker_share,
                  medium_share=medium_share, profile_share=profile_share, three_quarter_share=three_quarter_share)
    manifest = attributes_b(seed=seed, **params)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n = len(manifest)
    images = np.lib.format.open_memmap(out / "images.npy", mode="w+", dtype=np.uint8, shape=(n, SIZE, SIZE, 3))
    starts = list(range(0, n, CHUNK))
    seeds = np.random.SeedSequence([seed, _SEED_SALT]).spawn(len(starts) + 1)[1:]
    tasks = [(manifest.iloc[s:s + CHUNK], sd) for s, sd in zip(starts, seeds)]
    pool = _pool(workers) if workers > 1 and len(tasks) > 1 else None
    if pool is not None:
        with pool as ex:
            for s, chunk in zip(starts, ex.map(_render_task, tasks)):
                images[s:s + len(chunk)] = chunk
    else:
        for s, t in zip(starts, tasks):
            images[s:s + CHUNK] = _render_task(t)
    images.flush()
    del images
    manifest.to_csv(out / "manifest.csv", index=False)
    meta = dict(params, seed=seed, size=SIZE, face_fraction=FACE_FRACTION, unseen_tone=UNSEEN_TONE,
                generator="benchmarks/render_b.py")
    (out / "config.json").write_text(json.dumps(meta, indent=2) + "\n")
    return manifest


def preview_grid(root: Path, path: Path, per_row: int = 8) -> Path:
    """A PNG of test faces, one row per skin_group x pose, then two rows of non-faces (2x nearest upscaling)."""
    m = pd.read_csv(Path(root) / "manifest.csv")
    arr = np.load(Path(root) / "images.npy", mmap_mode="r")
    pool = m[m.split == "test"] if (m.split == "test").any() else m
    rows = []
    for g in SKIN_GROUPS:
        for pose in POSES:
            ids = pool[(pool.skin_group == g) & (pool.pose == pose)].image.to_numpy()[:per_row]
            rows.append(ids)
    by_kind = [pool[(pool.label == 0) & (pool.kind == k)].image.to_numpy() for k in NONFACE_KINDS]
    non = [ids[j] for j in range(2 * per_row) for ids in by_kind if j < len(ids)][:2 * per_row]  # round robin
    rows += [non[:per_row], non[per_row:]]
    tiles = [np.concatenate([arr[i] for i in r] + [np.zeros((SIZE, SIZE, 3), np.uint8)] * (per_row - len(r)), 1)
             for r in rows]
    grid = np.concatenate(tiles, 0)
    grid = cv2.resize(grid, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(path), np.ascontiguousarray(grid[:, :, ::-1]))
    return Path(path)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Render the family-B face / non-face benchmark.")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n-train", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-val", type=int, default=1000)
    ap.add_argument("--n-test-per-cell", type=int, default=120)
    ap.add_argument("--darker-share", type=float, default=0.02)
    ap.add_argument("--medium-share", type=float, default=0.05)
    ap.add_argument("--profile-share", type=float, default=0.03)
    ap.add_argument("--three-quarter-share", type=float, default=0.05)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--preview", type=Path, default=None, help="also write a preview grid PNG here")
    a = ap.parse_args(argv)
    m = generate_b(a.n_train, seed=a.seed, out=a.out, n_val=a.n_val, n_test_per_cell=a.n_test_per_cell,
                   darker_share=a.darker_share, medium_share=a.medium_share, profile_share=a.profile_share,
                   three_quarter_share=a.three_quarter_share, workers=a.workers)
    print(f"wrote {len(m)} images ({int(m.label.sum())} faces) to {a.out}")
    if a.preview:
        print(f"preview: {preview_grid(a.out, a.preview)}")


if __name__ == "__main__":
    main()
