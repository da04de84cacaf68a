"""Classic detectors: OpenCV's Haar cascades, scikit-image's LBP cascade, dlib's HOG + linear SVM."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.special import expit

from debias.detect.base import Detections, Detector, require
from debias.errors import DebiasError

HAAR = {
    "haar-frontal-default": "haarcascade_frontalface_default.xml",
    "haar-frontal-alt": "haarcascade_frontalface_alt.xml",
    "haar-frontal-alt2": "haarcascade_frontalface_alt2.xml",
    "haar-profile": "haarcascade_profileface.xml",
}
MIN_FACE = 12  # smallest face side searched, in pixels (the cascades' own windows are 20-24 px)


def _min_side(h: int, w: int) -> int:
    return max(MIN_FACE, int(0.05 * min(h, w)))


def haar(spec: str, name: str) -> Detector:
    """``opencv:haar-*``. Scores: a detection's best stage sum mapped into (0.5, 1]; 0.5 is the
    cascade's own decision (it reports only boxes that pass every stage)."""
    import cv2

    name = {"profile": "haar-profile", "frontal": "haar-frontal-default"}.get(name, name)
    if name not in HAAR:
        raise DebiasError(f"opencv:{name} is not one of {', '.join('opencv:' + k for k in HAAR)}.")
    path = Path(cv2.data.haarcascades) / HAAR[name]
    cascade = cv2.CascadeClassifier(str(path))
    if cascade.empty():
        raise RuntimeError(f"OpenCV could not load its cascade {path}.")

    def fn(image: np.ndarray) -> Detections:
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        m = _min_side(*gray.shape)
        rects, _, weights = cascade.detectMultiScale3(gray, scaleFactor=1.1, minNeighbors=3, minSize=(m, m),
                                                      outputRejectLevels=True)
        if not len(rects):
            return Detections.empty()
        w = np.asarray(weights, np.float64).reshape(-1)
        return Detections(np.asarray(rects, np.float32).reshape(-1, 4), (0.5 + 0.5 * expit(w)).astype(np.float32))

    return Detector(spec, name, fn, native_threshold=0.5, files=(path,))


def skimage_lbp(spec: str, name: str) -> Detector:
    """``skimage:lbp-frontal``: scikit-image's multi-block LBP cascade (trained by OpenCV). It reports
    boxes without a confidence, so every box scores 1 and the audit has one operating point."""
    if name not in ("lbp-frontal", "lbp"):
        raise DebiasError(f"skimage:{name} is not known; use skimage:lbp-frontal.")
    require("skimage", "skimage")
    from skimage import data
    from skimage.feature import Cascade

    path = Path(data.lbp_frontal_face_cascade_filename())
    cascade = Cascade(str(path))

    def fn(image: np.ndarray) -> Detections:
        h, w = image.shape[:2]
        m = max(24, _min_side(h, w))  # the cascade's window is 24 px
        if min(h, w) < m:
            return Detections.empty()
        found = cascade.detect_multi_scale(img=image, scale_factor=1.2, step_ratio=1, min_size=(m, m),
                                           max_size=(h, w), min_neighbor_number=3)
        if not found:
            return Detections.empty()
        boxes = np.array([[d["c"], d["r"], d["width"], d["height"]] for d in found], np.float32)
        return Detections(boxes, np.ones(len(boxes), np.float32))

    return Detector(spec, "skimage-lbp-frontal", fn, native_threshold=0.5, files=(path,))


def dlib_hog(spec: str, name: str, upsample: int = 1, adjust_threshold: float = -1.0) -> Detector:
    """``dlib:hog``: dlib's frontal HOG + linear SVM. Scores are the SVM margin through a logistic, so
    0.5 is dlib's own threshold (margin 0); boxes down to margin ``adjust_threshold`` are kept so an
    audit can sweep below it. ``upsample`` doubles the image that many times first (dlib's window is
    80 px; one doubling finds faces down to about 40 px)."""
    if name not in ("hog", ""):
        raise DebiasError(f"dlib:{name} is not known; use dlib:hog.")
    dlib = require("dlib", "dlib")
    det = dlib.get_frontal_face_detector()

    def fn(image: np.ndarray) -> Detections:
        rects, margins, _ = det.run(image, upsample, adjust_threshold)
        if not len(rects):
            return Detections.empty()
        boxes = np.array([[r.left(), r.top(), r.right() - r.left(), r.bottom() - r.top()] for r in rects], np.float32)
        return Detections(boxes, expit(np.asarray(margins, np.float64)).astype(np.float32))

    return Detector(spec, "dlib-hog", fn, native_threshold=0.5, files=(Path(dlib.__file__),))
