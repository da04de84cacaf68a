"""A deterministic 'face detector' for tests: the brightness of the image centre is the score."""
import numpy as np


def centre_brightness(images: np.ndarray) -> np.ndarray:
    h = images.shape[1]
    return images[:, h // 4: 3 * h // 4, h // 4: 3 * h // 4].mean(axis=(1, 2, 3)) / 255.0


def centre_logit(images: np.ndarray) -> np.ndarray:
    """A logit-valued score: some outputs fall inside [0, 1], others outside, as real logits do."""
    return 6.0 * centre_brightness(images) - 2.0


def nan_for_some(images: np.ndarray) -> np.ndarray:
    """NaN for every fourth image of a batch, as a model with a numerical fault gives."""
    s = centre_brightness(images)
    s[::4] = np.nan
    return s


def all_nan(images: np.ndarray) -> np.ndarray:
    return np.full(len(images), np.nan)


def all_inf(images: np.ndarray) -> np.ndarray:
    return np.full(len(images), np.inf)


def one_per_batch(images: np.ndarray) -> np.ndarray:
    """One score for the whole batch: its mean brightness."""
    return np.array([centre_brightness(images).mean()])


def two_columns(images: np.ndarray) -> np.ndarray:
    """(B, 2) class scores, where (B,) face scores are expected."""
    s = centre_brightness(images)
    return np.stack([1 - s, s], axis=1)
