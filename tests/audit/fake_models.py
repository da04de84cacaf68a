"""A deterministic 'face detector' for tests: the brightness of the image centre is the score."""
import numpy as np


def centre_brightness(images: np.ndarray) -> np.ndarray:
    h = images.shape[1]
    return images[:, h // 4: 3 * h // 4, h // 4: 3 * h // 4].mean(axis=(1, 2, 3)) / 255.0


def centre_logit(images: np.ndarray) -> np.ndarray:
    """A logit-valued score: some outputs fall inside [0, 1], others outside, as real logits do."""
    return 6.0 * centre_brightness(images) - 2.0
