"""Box-level audit against hand computations and scikit-learn."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score

from debias.audit.boxes import audit_boxes, group_ap, group_ap_boot, iou_matrix, match, match_image, miss_reasons, threshold_at_fppi


def _faces(rows):
    return pd.DataFrame(rows, columns=["image", "box_x", "box_y", "box_w", "box_h", "skin_group"])


def _dets(rows):
    return pd.DataFrame(rows, columns=["image", "box_x", "box_y", "box_w", "box_h", "score"])


def test_iou_by_hand():
    # 10x10 boxes shifted by 5 px: intersection 50, union 150
    assert iou_matrix(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 10, 10]]))[0, 0] == pytest.approx(1 / 3)


def test_greedy_matching_takes_best_first_and_each_face_once():
    faces = np.array([[0, 0, 10, 10], [8, 0, 10, 10]], float)
    # det 0 overlaps face 0 (IoU 0.82) and face 1; det 1 (higher score) overlaps face 0 a bit more than face 1
    boxes = np.array([[0, 0, 10, 9], [1, 0, 10, 10], [8, 0, 10, 10]], float)
    m = match_image(faces, boxes, np.array([0.5, 0.9, 0.8]))
    # best first: det 1 takes face 0 (IoU 0.82), det 2 takes face 1 exactly, det 0 finds face 0 taken -> FP
    assert m.tolist() == [-1, 0, 1]


def _toy():
    # image 0: two darker faces; image 1: one lighter face; image 2: no face
    faces = _faces([[0, 0, 0, 20, 20, "darker"], [0, 50, 0, 20, 20, "darker"], [1, 0, 0, 20, 20, "lighter"]])
    dets = _dets([[0, 0, 0, 20, 20, 0.9],     # TP darker face 0
                  [0, 80, 80, 10, 10, 0.8],   # FP in image 0
                  [1, 0, 0, 20, 20, 0.7],     # TP lighter
                  [2, 30, 30, 20, 20, 0.6],   # FP in image 2
                  [0, 52, 2, 20, 20, 0.5]])   # TP darker face 1 (IoU 0.68)
    return match(faces, dets, images=[0, 1, 2])


def test_threshold_at_fppi_and_recall_by_hand():
    bm = _toy()
    # 3 images; fppi 1/3 allows one FP: at 0.7 there is one (0.8), at 0.6 two -> threshold 0.7
    assert threshold_at_fppi(bm, 1 / 3) == 0.7
    assert threshold_at_fppi(bm, 1.0) == 0.5  # two FPs <= 3
    assert threshold_at_fppi(bm, 0.0) == 0.9  # only the first box, a TP
    a = audit_boxes(bm, ["skin_group"], fppi=1 / 3, native_threshold=0.5, n_boot=50)
    g = a.by_group.set_index("group")
    assert g.loc["darker", "recall"] == 0.5 and g.loc["lighter", "recall"] == 1.0
    assert g.loc["darker", "recall_native"] == 1.0
    assert a.summary["fppi"] == pytest.approx(1 / 3) and a.summary["recall"] == pytest.approx(2 / 3)
    assert g.loc["darker", "n_images"] == 1 and g.loc["darker", "miss_misplaced"] == 0


def test_group_ap_by_hand_with_the_false_positive_convention():
    bm = _toy()
    darker = (bm.faces["skin_group"] == "darker").to_numpy()
    # darker faces live in image 0: ranked TP .9, FP .8 (image 0), TP .5; the FP in image 2 and the lighter TP
    # are left out. Precision at the TPs: 1 and 2/3; each TP adds recall 1/2 -> AP = (1 + 2/3) / 2
    assert group_ap(bm, darker) == pytest.approx((1 + 2 / 3) / 2)
    # lighter: image 1 only, one TP at .7, no FP there -> AP 1
    assert group_ap(bm, ~darker) == pytest.approx(1.0)


def test_group_ap_equals_sklearn_on_one_group_when_every_face_is_found():
    rng = np.random.default_rng(0)
    faces, dets = [], []
    for img in range(30):
        faces.append([img, 0, 0, 20, 20, "g"])
        dets.append([img, 0, 0, 20, 20, rng.random()])
        if rng.random() < 0.6:
            dets.append([img, 100, 100, 20, 20, rng.random()])  # a false positive
    bm = match(_faces(faces), _dets(dets), images=range(30))
    y = (bm.detections["face"] >= 0).to_numpy()
    ref = average_precision_score(y, bm.detections["score"])
    assert group_ap(bm, np.ones(30, bool)) == pytest.approx(ref)
    # a face never found lowers AP by its share of recall
    faces.append([30, 0, 0, 20, 20, "g"])
    bm = match(_faces(faces), _dets(dets), images=range(31))
    assert group_ap(bm, np.ones(31, bool)) == pytest.approx(ref * 30 / 31)


def test_vectorised_bootstrap_ap_equals_the_per_resample_sklearn_ap():
    # two groups, several faces per image, missed faces, false positives, tied scores (rounded to 0.1) and
    # resamples that drop images (count 0) or repeat them: every resample must equal group_ap's value,
    # which calls scikit-learn's average_precision_score with the counts as sample weights
    rng = np.random.default_rng(3)
    faces, dets = [], []
    for img in range(40):
        for k in range(rng.integers(0, 4)):
            g = "darker" if rng.random() < 0.4 else "lighter"
            faces.append([img, 60 * k, 0, 20, 20, g])
            if rng.random() < 0.7:
                dets.append([img, 60 * k + rng.integers(0, 4), 0, 20, 20, round(rng.random(), 1)])
        for _ in range(rng.integers(0, 3)):
            dets.append([img, 300, 300, 20, 20, round(rng.random(), 1)])
    bm = match(_faces(faces), _dets(dets), images=range(40))
    W = rng.multinomial(40, np.full(40, 1 / 40), size=300).astype(float)
    W[0] = 1.0  # the full data is one resample
    for g in ("darker", "lighter"):
        member = (bm.faces["skin_group"] == g).to_numpy()
        fast = group_ap_boot(bm, member, W, chunk=7)  # a chunk that does not divide 300
        slow = np.array([group_ap(bm, member, w) for w in W])
        assert np.allclose(fast, slow, equal_nan=True, rtol=0, atol=1e-12)
        assert fast[0] == pytest.approx(group_ap(bm, member)) and np.isfinite(fast).mean() > 0.9


def test_miss_reasons():
    faces = _faces([[0, 0, 0, 40, 40, "a"], [0, 100, 0, 40, 40, "a"], [0, 200, 0, 40, 40, "a"]])
    dets = _dets([[0, 10, 10, 15, 15, 0.9],    # inside face 0 but a seventh of its area: too small
                  [0, 120, 0, 40, 40, 0.9]])   # face 1 shifted by half: IoU 1/3, same size: misplaced
    bm = match(faces, dets, images=[0])
    assert miss_reasons(bm, 0.5).tolist() == ["box too small", "box misplaced", "no box"]


def test_bootstrap_resamples_images_so_faces_of_one_image_move_together():
    # 20 images, each with 2 faces of one group, both found or both missed: the image bootstrap interval
    # of recall must be wider than the Wilson interval that treats the 40 faces as independent
    rng = np.random.default_rng(1)
    faces, dets = [], []
    for img in range(20):
        hit = rng.random() < 0.5
        for x in (0, 50):
            faces.append([img, x, 0, 20, 20, "g"])
            if hit:
                dets.append([img, x, 0, 20, 20, 0.9])
    a = audit_boxes(match(_faces(faces), _dets(dets), images=range(20)), ["skin_group"], n_boot=400)
    r = a.by_group.iloc[0]
    assert (r.recall_boot_high - r.recall_boot_low) > 1.2 * (r.recall_ci_high - r.recall_ci_low)


def test_a_detector_whose_false_positives_outscore_every_face_gets_a_note_not_a_generic_null(tmp_path):
    import json

    from debias.audit.boxes import BoxAuditResult
    from debias.report.boxes import verdicts, write_box_outputs

    # a cascade-like detector: every box scores 1.0, and 2 of its 3 boxes on 2 images are false positives,
    # so no threshold keeps FPPI <= 0.1; both groups are then found at rate 0
    faces = _faces([[0, 0, 0, 20, 20, "darker"], [1, 0, 0, 20, 20, "lighter"]])
    dets = _dets([[0, 0, 0, 20, 20, 1.0], [0, 60, 60, 20, 20, 1.0], [1, 60, 60, 20, 20, 1.0]])
    a = audit_boxes(match(faces, dets, images=[0, 1]), ["skin_group"], fppi=0.1, native_threshold=0.5, n_boot=20,
                    min_faces=1, name="cascade")
    assert a.summary["threshold"] == float("inf") and "no score threshold keeps" in a.summary["threshold_note"]
    assert a.by_group.recall.tolist() == [0.0, 0.0]
    res = BoxAuditResult(a.by_group, a.gaps, pd.DataFrame([{**a.summary, "spec": "cascade", "images_per_s": 1.0}]), dets.assign(model="cascade"),
                         a.faces.assign(model="cascade"))
    assert verdicts(res) == [
        "cascade: no threshold keeps its false positives at or below 0.1 per image, so no group can be compared "
        "there; at its own operating point it finds 50.0% of faces with 1.00 false positives per image."]
    # both groups found, no false positive: the gap is 0 and the sentence says so (not 'X found least')
    both = audit_boxes(match(faces, dets.iloc[:1].assign(box_x=0).pipe(lambda d: pd.concat(
        [d, d.assign(image=1)])), images=[0, 1]), ["skin_group"], n_boot=20, min_faces=1, name="good")
    good = BoxAuditResult(both.by_group, both.gaps, pd.DataFrame([both.summary]), dets, both.faces)
    assert verdicts(good) == ["good: by skin_group, every group is found equally often "
                              "(95% CI of the gap 0.0 to 0.0 points)."]
    write_box_outputs(res, tmp_path)
    d = json.loads((tmp_path / "summary.json").read_text())["detectors"][0]
    assert d["threshold"] is None and d["threshold_note"].startswith("no score threshold keeps")


def test_missed_gallery_crops_each_missed_face_around_its_true_box():
    import base64
    import io

    from PIL import Image

    from debias.report.boxes import missed_gallery

    # image 0 (100 x 100): a found face and a missed one at (40, 20, 20, 40); image 1 could not be read
    faces = pd.DataFrame({"model": "m", "image": [0, 0, 1], "skin_group": ["darker", "darker", "lighter"],
                          "box_x": [0.0, 40.0, 0.0], "box_y": [0.0, 20.0, 0.0], "box_w": [20.0, 20.0, 20.0],
                          "box_h": [20.0, 40.0, 20.0], "score": [0.9, 0.3, np.nan], "found": [True, False, False],
                          "miss_reason": ["", "box misplaced", "no box"]})
    frame = np.zeros((100, 100, 3), np.uint8)
    g = missed_gallery(faces, "skin_group", lambda image: frame if image == 0 else None, margin=0.25)
    (m,) = g
    darker, lighter = m["groups"]
    assert (darker["n_missed"], darker["n"], lighter["n_missed"], lighter["n"]) == (1, 2, 1, 1)
    assert lighter["thumbs"] == []  # an unreadable image is left out, never an error
    (t,) = darker["thumbs"]
    im = Image.open(io.BytesIO(base64.b64decode(t["b64"])))
    # margin 0.25: x 35..65, y 10..70 inclusive -> 31 x 61 pixels (width x height)
    assert im.size == (31, 61) and t["caption"] == "0: box misplaced"
