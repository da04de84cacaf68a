"""A deterministic 'face detector' for tests: the brightness of the image centre is the score."""
import numpy as np


def centre_brightness(images: np.ndarray) -> np.ndarray:
    h = images.shape[1]
    return images[:, h // 4: 3 * h // 4, h // 4: 3 * h // 4].mean(axis=(1, 2, 3)) / 255.0
