"""Group vocabularies, defined once: the Monk skin tone palette and its lighter / medium / darker
cut points, Fitzpatrick types, poses, and the natural order of group names in tables and figures."""
from __future__ import annotations

import numpy as np

# Monk Skin Tone scale reference colours, MST 1..10 (Monk 2019, skintone.google).
MST_HEX = ("#f6ede4", "#f3e7db", "#f7ead0", "#eadaba", "#d7bd96",
           "#a07e56", "#825c43", "#604134", "#3a312a", "#292420")
MST_RGB = np.array([[int(h[i:i + 2], 16) for i in (1, 3, 5)] for h in MST_HEX], dtype=np.uint8)
SKIN_GROUPS = ("lighter", "medium", "darker")
POSES = ("frontal", "three-quarter", "profile")
GENDERS = ("female", "male")
FITZPATRICK = {"I": 1, "II": 2, "III": 3, "IV": 4, "V": 5, "VI": 6}  # type -> ordinal


def skin_group_of(tone: np.ndarray | int) -> np.ndarray:
    """Monk tone (1-10) to skin group: lighter 1-4, medium 5-6, darker 7-10."""
    t = np.asarray(tone)
    return np.where(t <= 4, "lighter", np.where(t <= 6, "medium", "darker"))


def pose_of(yaw: np.ndarray | float) -> np.ndarray:
    """Yaw in degrees to pose: frontal |yaw|<15, three-quarter 15-45, profile >45."""
    a = np.abs(np.asarray(yaw, dtype=float))
    return np.where(a < 15, "frontal", np.where(a <= 45, "three-quarter", "profile"))


LEVEL_ORDER = ("lighter", "medium", "darker", "frontal", "three-quarter", "profile", "female", "male",
               *FITZPATRICK, "very light", "light", "intermediate", "tan", "brown", "dark")


def sort_levels(values) -> list[str]:
    """Group names in their natural order (skin lighter->darker, frontal->profile, tones numerically)."""
    def key(v):
        if v in LEVEL_ORDER:
            return (0, LEVEL_ORDER.index(v), "")
        try:
            return (1, float(v), "")
        except ValueError:
            return (2, 0, v)

    return sorted(values, key=key)


__all__ = ["MST_HEX", "MST_RGB", "SKIN_GROUPS", "POSES", "GENDERS", "FITZPATRICK", "skin_group_of", "pose_of",
           "LEVEL_ORDER", "sort_levels"]
