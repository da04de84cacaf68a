"""Procedural face / non-face benchmark with exactly known skin tone, pose, lighting and gender.

Rendering is split in two. Geometry and albedo (what things are and where) are drawn per image with
OpenCV's anti-aliased primitives, which are C loops and far faster than evaluating every shape on
every pixel in numpy. Photometry (shading, light intensity, fixed camera exposure, sensor noise,
gamma, quantisation) is then applied to a whole chunk at once with vectorised numpy. The photometry
is where skin-tone difficulty comes from, exactly as in a real camera: darker skin reflects less
light, so the features drawn on it have less contrast in linear intensity, and the same sensor noise
buries them. See datasets/synthfaces/README.md for every mechanism.

Determinism: attributes are drawn up front from the run seed; each chunk of images then renders
from its own child seed (``SeedSequence.spawn``), so the bytes written do not depend on the number
of worker processes.
"""
from __future__ import annotations

import math
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pandas as pd

from debias.config import SynthConfig
from debias.data.groups import GENDERS, MST_RGB, POSES, SKIN_GROUPS
from debias.files import write_csv

NONFACE_KINDS = ("clutter", "texture", "skin-oval", "scrambled", "object")
HAIR_RGB = np.array([[20, 15, 12], [45, 30, 20], [90, 60, 35], [150, 110, 60], [200, 170, 110],
                     [120, 40, 20], [110, 110, 110]], dtype=np.uint8)
CHUNK = 256
_SHIFT = 4  # OpenCV sub-pixel bits: coordinates are multiplied by 16
_F = 1 << _SHIFT

# sRGB <-> linear lookup tables (gamma 2.2 is close enough and keeps the model explicit).
_TO_LIN = ((np.arange(256, dtype=np.float32) / 255.0) ** 2.2).astype(np.float32)
# Gamma encoding and the shot-noise sigma go through 12-bit lookup tables: np.power and np.sqrt on
# every pixel took 60% of render time (profiled), a table lookup is several times cheaper and the
# 12-bit step is far below the 8-bit output step.
_Q = 4095
_GAMMA_LUT = np.round((np.arange(_Q + 1) / _Q) ** (1 / 2.2) * 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# attributes
# --------------------------------------------------------------------------------------------

def _tones_for(groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    lo = np.select([groups == "lighter", groups == "medium"], [1, 5], 7)
    hi = np.select([groups == "lighter", groups == "medium"], [4, 6], 10)
    return rng.integers(lo, hi + 1)


def _yaws_for(poses: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    lo = np.select([poses == "frontal", poses == "three-quarter"], [0.0, 15.0], 46.0)
    hi = np.select([poses == "frontal", poses == "three-quarter"], [14.9, 45.0], 85.0)
    return np.round(rng.uniform(lo, hi) * rng.choice([-1.0, 1.0], size=len(poses)), 2)


def _face_attributes(groups, poses, genders, cfg: SynthConfig, rng) -> pd.DataFrame:
    n = len(groups)
    tones = _tones_for(groups, rng)
    yaws = _yaws_for(poses, rng)
    return pd.DataFrame({
        "label": 1,
        "kind": "face",
        "skin_tone": tones,
        "skin_group": groups,
        "yaw": yaws,
        "pose": poses,
        "gender": genders,
        "light": np.round(rng.uniform(cfg.light_min, cfg.light_max, n), 3),
        "light_azimuth": np.round(rng.uniform(-cfg.light_azimuth, cfg.light_azimuth, n), 1),
        "hair_color": rng.integers(0, len(HAIR_RGB), n),
        "glasses": rng.choice(["none", "glasses", "sunglasses"], n, p=[0.82, 0.12, 0.06]),
        "hat": rng.random(n) < 0.1,
        "scale": np.round(rng.uniform(0.85, 1.15, n), 3),
    })


def _nonface_attributes(n: int, cfg: SynthConfig, rng) -> pd.DataFrame:
    return pd.DataFrame({
        "label": 0,
        "kind": rng.choice(NONFACE_KINDS, n),
        "light": np.round(rng.uniform(cfg.light_min, cfg.light_max, n), 3),
        "light_azimuth": np.round(rng.uniform(-cfg.light_azimuth, cfg.light_azimuth, n), 1),
        # hard negatives get a skin colour from the whole Monk scale, whatever the training bias
        "nonface_tone": rng.integers(1, 11, n),
        "hair_color": rng.integers(0, len(HAIR_RGB), n),
        "scale": np.round(rng.uniform(0.85, 1.15, n), 3),
    })


def _biased_split(n: int, cfg: SynthConfig, rng) -> pd.DataFrame:
    n_face = int(round(n * cfg.face_fraction))
    lighter = 1.0 - cfg.darker_share - cfg.medium_share
    frontal = 1.0 - cfg.profile_share - cfg.three_quarter_share
    groups = rng.choice(SKIN_GROUPS, n_face, p=[lighter, cfg.medium_share, cfg.darker_share])
    poses = rng.choice(POSES, n_face, p=[frontal, cfg.three_quarter_share, cfg.profile_share])
    genders = rng.choice(GENDERS, n_face, p=[cfg.female_share, 1 - cfg.female_share])
    faces = _face_attributes(groups, poses, genders, cfg, rng)
    return pd.concat([faces, _nonface_attributes(n - n_face, cfg, rng)], ignore_index=True)


def _balanced_split(per_cell: int, cfg: SynthConfig, rng) -> pd.DataFrame:
    cells = [(g, p, s) for g in SKIN_GROUPS for p in POSES for s in GENDERS]
    groups = np.repeat([c[0] for c in cells], per_cell)
    poses = np.repeat([c[1] for c in cells], per_cell)
    genders = np.repeat([c[2] for c in cells], per_cell)
    faces = _face_attributes(groups, poses, genders, cfg, rng)
    n_non = int(round(len(faces) * (1 - cfg.face_fraction) / max(cfg.face_fraction, 1e-9)))
    return pd.concat([faces, _nonface_attributes(n_non, cfg, rng)], ignore_index=True)


def synth_attributes(cfg: SynthConfig) -> pd.DataFrame:
    """Draw the attribute table (one row per image, all splits) without rendering anything."""
    rng = np.random.default_rng(np.random.SeedSequence(cfg.seed).spawn(1)[0])
    parts = []
    for split, df in (("train", _biased_split(cfg.n_train, cfg, rng)),
                      ("val", _biased_split(cfg.n_val, cfg, rng)),
                      ("test", _balanced_split(cfg.n_test_per_cell, cfg, rng))):
        df = df.sample(frac=1.0, random_state=rng.integers(2**31)).reset_index(drop=True)
        df.insert(0, "split", split)
        parts.append(df)
    out = pd.concat(parts, ignore_index=True)
    out.insert(0, "image", np.arange(len(out)))
    face = out["label"] == 1
    out["skin_tone"] = out["skin_tone"].astype("Int64")
    out.loc[~face, ["skin_group", "pose", "gender"]] = np.nan
    return out


# --------------------------------------------------------------------------------------------
# drawing primitives (albedo, sRGB uint8)
# --------------------------------------------------------------------------------------------

def _ell(img, cx, cy, ax, ay, color, angle=0.0, start=0, end=360, thick=-1):
    if ax <= 0.05 or ay <= 0.05:
        return
    cv2.ellipse(img, (int(cx * _F), int(cy * _F)), (max(1, int(ax * _F)), max(1, int(ay * _F))),
                angle, start, end, color, thick, cv2.LINE_AA, _SHIFT)


def _poly(img, pts, color):
    cv2.fillPoly(img, [np.round(np.asarray(pts) * _F).astype(np.int32)], color, cv2.LINE_AA, _SHIFT)


def _col(rgb, k=1.0, add=(0, 0, 0)):
    c = np.clip(np.asarray(rgb, dtype=float) * k + np.asarray(add), 0, 255)
    return tuple(int(v) for v in c)


def _background(img, rng, s, n_shapes):
    """Smooth two-colour gradient plus random shapes: indoor/outdoor clutter."""
    c0 = rng.integers(20, 235, 3)
    c1 = rng.integers(20, 235, 3)
    t = np.linspace(0, 1, s, dtype=np.float32)[:, None, None]
    grad = c0 * (1 - t) + c1 * t
    if rng.random() < 0.5:
        grad = grad.transpose(1, 0, 2)
    img[:] = np.broadcast_to(grad, img.shape).astype(np.uint8)
    for _ in range(n_shapes):
        col = tuple(int(v) for v in rng.integers(0, 256, 3))
        kind = rng.integers(0, 3)
        x, y = rng.uniform(-0.1, 1.1, 2) * s
        if kind == 0:
            w, h = rng.uniform(0.05, 0.4, 2) * s
            cv2.rectangle(img, (int((x - w) * _F), int((y - h) * _F)), (int((x + w) * _F), int((y + h) * _F)),
                          col, -1, cv2.LINE_AA, _SHIFT)
        elif kind == 1:
            _ell(img, x, y, *(rng.uniform(0.04, 0.25, 2) * s), col, angle=rng.uniform(0, 180))
        else:
            x2, y2 = rng.uniform(0, 1, 2) * s
            cv2.line(img, (int(x * _F), int(y * _F)), (int(x2 * _F), int(y2 * _F)), col,
                     int(rng.integers(1, 4)), cv2.LINE_AA, _SHIFT)


@dataclass
class _Head:
    """Where one head sits and what it is made of, in albedo (all lengths in pixels)."""

    cx: float
    cy: float
    R: float  # head size; rx, ry its half-width and half-height
    rx: float
    ry: float
    yaw: float  # radians
    skin: np.ndarray
    hair: np.ndarray
    female: bool

    @property
    def sy(self) -> float:  # sin(yaw): where the features sit across the head
        return math.sin(self.yaw)

    @property
    def cyaw(self) -> float:  # cos(yaw): how much they are foreshortened
        return math.cos(self.yaw)

    @property
    def hx(self) -> float:  # centre of the hair mass, pushed back as the head turns
        return self.cx - 0.3 * self.rx * self.sy


def _head(a, rng, s) -> _Head:
    yaw = math.radians(a["yaw"])
    female = a["gender"] == "female"
    skin = MST_RGB[int(a["skin_tone"]) - 1].astype(float)
    skin = skin * rng.uniform(0.95, 1.05, 3)
    hair = HAIR_RGB[int(a["hair_color"])].astype(float)
    cx = s * (0.5 + rng.uniform(-0.06, 0.06))
    cy = s * (0.47 + rng.uniform(-0.05, 0.05))
    R = s * 0.26 * a["scale"]
    rx = R * (0.80 if female else 0.88)
    return _Head(cx, cy, R, rx, R * 1.08, yaw, skin, hair, female)


def _draw_face(img, mask, a, rng, s):
    """Draw one head in albedo. Returns (cx, cy, rx, ry) for shading.

    The head is treated as an ellipsoid: a feature at azimuth phi on the head appears at
    x = cx + rx*sin(phi + yaw) and is foreshortened by cos(phi + yaw); it is hidden when that cosine
    is small, which is how the far eye disappears in a profile.
    """
    h = _head(a, rng, s)
    _draw_skull(img, mask, h, rng)
    _draw_nose(img, mask, h)
    _draw_eyes(img, h, a["glasses"], rng)
    _draw_mouth_and_hat(img, h, a["hat"], rng)
    return h.cx, h.cy, h.rx, h.ry


def _draw_skull(img, mask, h: _Head, rng) -> None:
    """Shoulders, neck, hair, head, ears and the hair cap."""
    cx, cy, R, rx, ry, sy, hx, skin, hair = h.cx, h.cy, h.R, h.rx, h.ry, h.sy, h.hx, h.skin, h.hair
    cloth = _col(rng.integers(10, 245, 3))
    _ell(img, cx - 0.1 * R * sy, cy + ry * 2.05, R * 1.9, R * 0.9, cloth)
    cv2.rectangle(img, (int((cx - 0.4 * rx) * _F), int((cy + 0.5 * ry) * _F)),
                  (int((cx + 0.4 * rx) * _F), int((cy + 1.4 * ry) * _F)), _col(skin, 0.85), -1, cv2.LINE_AA, _SHIFT)
    cv2.rectangle(mask, (int((cx - 0.4 * rx) * _F), int((cy + 0.5 * ry) * _F)),
                  (int((cx + 0.4 * rx) * _F), int((cy + 1.4 * ry) * _F)), 255, -1, cv2.LINE_AA, _SHIFT)
    if h.female:  # long hair behind the head
        _ell(img, hx, cy + 0.25 * ry, rx * 1.3, ry * 1.3, _col(hair))
    # head (plus a wider jaw for male presentation)
    _ell(img, cx, cy, rx, ry, _col(skin))
    _ell(mask, cx, cy, rx, ry, 255)
    if not h.female:
        _ell(img, cx + 0.1 * rx * sy, cy + 0.3 * ry, rx * 0.97, ry * 0.68, _col(skin))
        _ell(mask, cx + 0.1 * rx * sy, cy + 0.3 * ry, rx * 0.97, ry * 0.68, 255)
    # ears at azimuth +-1.45 rad
    yaw = h.yaw
    for phi in (-1.45, 1.45):
        c = math.cos(phi + yaw)
        if c > -0.25:
            ex = cx + rx * 0.98 * math.sin(phi + yaw)
            _ell(img, ex, cy, R * 0.11 * (0.4 + 0.6 * max(c, 0) + 0.3), R * 0.2, _col(skin, 0.9))
            _ell(mask, ex, cy, R * 0.11, R * 0.2, 255)
    # hair cap on top, pushed to the back of the head as the head turns
    _ell(img, hx, cy - 0.32 * ry, rx * 1.06, ry * 0.78, _col(hair), start=180, end=360)
    if abs(sy) > 0.3:
        side = -1 if sy > 0 else 1
        _ell(img, cx + side * rx * 0.62, cy - 0.05 * ry, rx * 0.45 * abs(sy), ry * 0.75, _col(hair))


def _draw_nose(img, mask, h: _Head) -> None:
    """A wedge that sticks out of the silhouette when the head turns."""
    cx, cy, R, rx, ry, sy, cyaw, skin = h.cx, h.cy, h.R, h.rx, h.ry, h.sy, h.cyaw, h.skin
    nb = cx + rx * 0.85 * sy
    tip = cx + (rx * 0.85 + R * 0.22) * sy
    _poly(img, [(nb - 0.07 * R * cyaw, cy - 0.08 * ry), (tip + 0.02 * R, cy + 0.2 * ry),
                (nb - 0.02 * R, cy + 0.24 * ry)], _col(skin, 0.82))
    _poly(mask, [(nb, cy - 0.08 * ry), (tip, cy + 0.2 * ry), (nb, cy + 0.24 * ry)], 255)
    _ell(img, nb + 0.05 * R * sy, cy + 0.22 * ry, R * 0.09 * max(cyaw, 0.3), R * 0.035, _col(skin, 0.45))


def _draw_eyes(img, h: _Head, glasses: str, rng) -> None:
    """Eyes and brows at azimuth +-0.42 rad; the far eye hides behind the nose in a profile."""
    cx, cy, R, rx, ry, sy = h.cx, h.cy, h.R, h.rx, h.ry, h.sy
    yaw = h.yaw
    for phi in (-0.42, 0.42):
        c = math.cos(phi + yaw)
        if c < 0.35:
            continue
        ex = cx + rx * 0.92 * math.sin(phi + yaw)
        ey = cy - 0.12 * ry
        w = R * 0.16 * c
        if glasses == "sunglasses":
            _ell(img, ex, ey, w * 1.35, R * 0.12, (15, 15, 18))
        else:
            _ell(img, ex, ey, w, R * 0.065, (235, 235, 230))
            _ell(img, ex + 0.3 * w * sy, ey, R * 0.065 * c, R * 0.065, _col(rng.integers(20, 90, 3)))
            _ell(img, ex + 0.3 * w * sy, ey, R * 0.03 * c, R * 0.03, (5, 5, 5))
        if glasses == "glasses":
            _ell(img, ex, ey, w * 1.45, R * 0.14, (30, 30, 30), thick=1)
        _ell(img, ex, ey - R * 0.2, w * 1.2, R * 0.04, _col(h.hair, 0.8), angle=0)


def _draw_mouth_and_hat(img, h: _Head, hat, rng) -> None:
    """Mouth, facial hair (male presentation, at random) and a hat."""
    cx, cy, R, rx, ry, sy, cyaw, hx, hair = h.cx, h.cy, h.R, h.rx, h.ry, h.sy, h.cyaw, h.hx, h.hair
    mx = cx + rx * 0.9 * sy
    lips = _col(h.skin, 0.55, (40 if h.female else 15, 0, 5))
    _ell(img, mx, cy + 0.45 * ry, R * 0.25 * max(cyaw, 0.25), R * 0.07, lips)
    _ell(img, mx, cy + 0.45 * ry, R * 0.22 * max(cyaw, 0.25), R * 0.015, _col(h.skin, 0.25))
    if not h.female and rng.random() < 0.35:
        _ell(img, cx + 0.3 * rx * sy, cy + 0.45 * ry, rx * 0.85 * max(cyaw, 0.5), ry * 0.5, _col(hair, 0.9),
             start=0, end=180)
        _ell(img, mx, cy + 0.45 * ry, R * 0.2 * max(cyaw, 0.25), R * 0.05, lips)
    elif not h.female and rng.random() < 0.25:
        _ell(img, mx, cy + 0.35 * ry, R * 0.25 * max(cyaw, 0.25), R * 0.05, _col(hair, 0.9))
    if hat:
        hc = _col(rng.integers(10, 245, 3))
        _ell(img, hx, cy - 0.55 * ry, rx * 1.1, ry * 0.6, hc, start=180, end=360)
        cv2.rectangle(img, (int((hx - rx * 1.35) * _F), int((cy - 0.62 * ry) * _F)),
                      (int((hx + rx * 1.35) * _F), int((cy - 0.5 * ry) * _F)), hc, -1, cv2.LINE_AA, _SHIFT)


def _draw_nonface(img, mask, a, rng, s):
    kind = a["kind"]
    sc = a["scale"]
    cx = s * (0.5 + rng.uniform(-0.08, 0.08))
    cy = s * (0.47 + rng.uniform(-0.06, 0.06))
    R = s * 0.26 * sc
    skin = MST_RGB[int(a["nonface_tone"]) - 1].astype(float) * rng.uniform(0.95, 1.05, 3)
    if kind == "clutter":
        _background(img, rng, s, int(rng.integers(3, 8)))
        return cx, cy, R, R, False
    if kind == "texture":
        yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
        f = rng.uniform(0.1, 0.6)
        th = rng.uniform(0, np.pi)
        wave = 0.5 + 0.5 * np.sin(f * (xx * np.cos(th) + yy * np.sin(th)))
        c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        img[:] = (c0 * wave[..., None] + c1 * (1 - wave[..., None])).astype(np.uint8)
        for _ in range(int(rng.integers(0, 4))):
            _ell(img, *(rng.uniform(0, 1, 2) * s), *(rng.uniform(0.05, 0.2, 2) * s),
                 tuple(int(v) for v in rng.integers(0, 256, 3)))
        return cx, cy, R, R, False
    if kind == "object":
        # a shaded ball / bottle / box in any colour, including skin colours
        col = skin if rng.random() < 0.5 else rng.integers(0, 256, 3)
        if rng.random() < 0.5:
            _ell(img, cx, cy, R, R * rng.uniform(0.7, 1.3), _col(col))
            _ell(mask, cx, cy, R, R, 255)
        else:
            cv2.rectangle(img, (int((cx - R * 0.7) * _F), int((cy - R) * _F)), (int((cx + R * 0.7) * _F),
                          int((cy + R * 1.2) * _F)), _col(col), -1, cv2.LINE_AA, _SHIFT)
        return cx, cy, R, R, True
    # skin-oval and scrambled: a head-shaped skin oval, with hair, but no facial layout
    hair = HAIR_RGB[int(a["hair_color"])].astype(float)
    rx, ry = R * rng.uniform(0.75, 0.95), R * 1.08
    if rng.random() < 0.4:
        _ell(img, cx, cy + 0.25 * ry, rx * 1.3, ry * 1.3, _col(hair))
    _ell(img, cx, cy, rx, ry, _col(skin))
    _ell(mask, cx, cy, rx, ry, 255)
    if rng.random() < 0.5:
        _ell(img, cx, cy - 0.32 * ry, rx * 1.06, ry * 0.78, _col(hair), start=180, end=360)
    if kind == "scrambled":
        # the parts of a face at the wrong places: no layout a detector should accept
        for _ in range(int(rng.integers(3, 6))):
            px, py = cx + rng.uniform(-0.7, 0.7) * rx, cy + rng.uniform(-0.6, 0.8) * ry
            part = rng.integers(0, 3)
            ang = rng.uniform(0, 180)
            if part == 0:
                _ell(img, px, py, R * 0.16, R * 0.065, (235, 235, 230), angle=ang)
                _ell(img, px, py, R * 0.05, R * 0.05, (10, 10, 10))
            elif part == 1:
                _ell(img, px, py, R * 0.25, R * 0.07, _col(skin, 0.55, (30, 0, 5)), angle=ang)
            else:
                _ell(img, px, py, R * 0.2, R * 0.04, _col(hair, 0.8), angle=ang)
    else:
        for _ in range(int(rng.integers(0, 3))):
            _ell(img, cx + rng.uniform(-0.5, 0.5) * rx, cy + rng.uniform(-0.5, 0.5) * ry,
                 *(rng.uniform(0.03, 0.12, 2) * R * 3), _col(skin, rng.uniform(0.5, 0.9)))
    return cx, cy, rx, ry, True


# --------------------------------------------------------------------------------------------
# photometry (vectorised over a chunk)
# --------------------------------------------------------------------------------------------

def _photometry(albedo, masks, geo, light, azim, noise, rng) -> np.ndarray:
    """Albedo (B,H,W,3) uint8 -> camera image (B,H,W,3) uint8.

    Linear radiance = albedo * (ambient + diffuse * max(0, n.l)) * light; the camera's exposure is
    fixed (not auto), then shot + read noise, clipping, gamma and 8-bit quantisation.
    """
    B, S = albedo.shape[:2]
    lin = _TO_LIN[albedo]  # (B,H,W,3) float32
    yy = np.arange(S, dtype=np.float32)[None, :, None] + 0.5
    xx = np.arange(S, dtype=np.float32)[None, None, :] + 0.5
    cx, cy, rx, ry = (geo[:, i, None, None] for i in range(4))
    nx = (xx - cx) / (rx * 1.15)
    ny = (yy - cy) / (ry * 1.15)
    nz = np.sqrt(np.clip(1.0 - nx * nx - ny * ny, 0.0, 1.0))
    az = np.radians(azim)[:, None, None]
    lx, ly, lz = np.sin(az), -0.35, np.cos(az)
    norm = np.sqrt(lx * lx + ly * ly + lz * lz)
    lam = np.clip((nx * lx + ny * ly + nz * lz) / norm, 0.0, None)
    shade_obj = 0.35 + 0.75 * lam  # (B,H,W): shaded objects (heads, ovals)
    m = masks.astype(np.float32) / 255.0
    shade = (m * shade_obj + (1.0 - m) * 0.9) * light[:, None, None].astype(np.float32)
    lin *= shade[..., None] * _Q
    np.clip(lin, 0, _Q, out=lin)
    # sensor: Poisson-like shot noise (variance ~ signal) plus constant read noise
    sigma_lut = (np.sqrt(0.004 * np.arange(_Q + 1) / _Q + noise * noise) * _Q).astype(np.float32)
    sigma = sigma_lut[lin.astype(np.uint16)]
    lin += sigma * rng.standard_normal(lin.shape, dtype=np.float32)
    np.clip(lin, 0, _Q, out=lin)
    return _GAMMA_LUT[lin.astype(np.uint16)]


def render_chunk(rows: pd.DataFrame, size: int, noise: float, seed, *, with_geometry: bool = False):
    """Render the images of ``rows`` (attribute table rows) with a chunk seed. Returns (B,H,W,3) uint8.

    ``with_geometry`` also returns each image's object mask (B,H,W) uint8 and its head or object
    ellipse (B, 4: cx, cy, rx, ry in pixels), which the scene renderer uses to composite and to box.
    """
    rng = np.random.default_rng(seed) if not isinstance(seed, np.random.Generator) else seed
    B = len(rows)
    albedo = np.empty((B, size, size, 3), np.uint8)
    masks = np.zeros((B, size, size), np.uint8)
    geo = np.empty((B, 4), np.float32)
    records = rows.to_dict("records")
    for i, a in enumerate(records):
        img = albedo[i]
        if a["label"] == 1:
            _background(img, rng, size, int(rng.integers(2, 6)))
            geo[i] = _draw_face(img, masks[i], a, rng, size)
        else:
            if a["kind"] not in ("clutter", "texture"):
                _background(img, rng, size, int(rng.integers(2, 6)))
            *g, _ = _draw_nonface(img, masks[i], a, rng, size)
            geo[i] = g
    # optics: a slight blur, as every lens has
    for i in range(B):
        cv2.GaussianBlur(albedo[i], (3, 3), 0.6, dst=albedo[i])
    out = _photometry(albedo, masks, geo, rows["light"].to_numpy(np.float32),
                      rows["light_azimuth"].to_numpy(np.float32), noise, rng)
    return (out, masks, geo) if with_geometry else out


def _render_task(args):
    rows, size, noise, seed = args
    return render_chunk(rows, size, noise, seed)


def generate(cfg: SynthConfig, out: str | Path, *, progress: Callable[[int], None] | None = None,
             attributes: pd.DataFrame | None = None) -> pd.DataFrame:
    """Render the benchmark into ``out`` (manifest.csv, images.npy, config.json, optional PNGs).

    Parameters
    ----------
    cfg : SynthConfig
    out : output folder, created if missing.
    progress : optional callback called with the number of images finished after each chunk.
    attributes : the rows to render, as :func:`synth_attributes` returns them (default: ``synth_attributes(cfg)``);
        edit its columns to render a composition the shares cannot express, e.g. dim light that is rare in training.

    Returns
    -------
    manifest : DataFrame, one row per image (also written to ``out/manifest.csv``).
    """
    from debias.config import to_json

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    attrs = synth_attributes(cfg) if attributes is None else attributes.reset_index(drop=True)
    n = len(attrs)
    images = np.lib.format.open_memmap(out / "images.npy", mode="w+", dtype=np.uint8,
                                       shape=(n, cfg.size, cfg.size, 3))
    starts = list(range(0, n, CHUNK))
    seeds = np.random.SeedSequence(cfg.seed).spawn(len(starts) + 1)[1:]
    tasks = [(attrs.iloc[s:s + CHUNK], cfg.size, cfg.noise, sd) for s, sd in zip(starts, seeds)]
    if cfg.workers > 1:
        with ProcessPoolExecutor(cfg.workers) as ex:
            for s, chunk in zip(starts, ex.map(_render_task, tasks)):
                images[s:s + len(chunk)] = chunk
                if progress:
                    progress(len(chunk))
    else:
        for s, t in zip(starts, tasks):
            chunk = _render_task(t)
            images[s:s + len(chunk)] = chunk
            if progress:
                progress(len(chunk))
    images.flush()
    del images
    manifest = attrs.copy()
    if cfg.png:
        from PIL import Image

        arr = np.load(out / "images.npy", mmap_mode="r")
        (out / "images").mkdir(exist_ok=True)
        paths = [f"images/{i:07d}.png" for i in range(n)]
        for i, p in enumerate(paths):
            Image.fromarray(np.asarray(arr[i])).save(out / p, optimize=False, compress_level=1)
        manifest["path"] = paths
    to_json(cfg, out / "config.json", generator="debias.data.synth")
    write_csv(manifest, out / "manifest.csv")  # last, and whole: a dataset's manifest marks it complete
    return manifest
