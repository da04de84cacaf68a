from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import recall_score, roc_auc_score

from debias.audit.metrics import TOO_FEW, audit_model


def _preds(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    skin = rng.choice(["lighter", "darker"], n, p=[0.6, 0.4])
    pose = rng.choice(["frontal", "profile"], n)
    y = (rng.random(n) < 0.6).astype(int)
    base = np.where(skin == "darker", 0.55, 0.75) - np.where(pose == "profile", 0.1, 0)
    score = np.where(y == 1, rng.normal(base, 0.2), rng.normal(0.3, 0.15)).clip(0, 1)
    df = pd.DataFrame({"y_true": y, "y_score": score, "skin_group": skin, "pose": pose})
    df.loc[df.y_true == 0, ["skin_group", "pose"]] = np.nan
    return df


def test_group_metrics_equal_fairlearn_metricframe():
    fairlearn = pytest.importorskip("fairlearn.metrics")
    df = _preds()
    a = audit_model(df, ["skin_group", "pose"], threshold=0.5, n_boot=50)
    faces = df[df.y_true == 1]
    pred = (faces.y_score >= 0.5).astype(int)
    mf = fairlearn.MetricFrame(metrics={"recall": recall_score, "mean_score": lambda yt, yp: float(np.mean(yp))},
                               y_true=faces.y_true, y_pred=pred, sensitive_features=faces[["skin_group", "pose"]])
    m = a.metrics
    for (sg, po), r in mf.by_group.iterrows():
        row = m[(m.grouping == "skin_group x pose") & (m.group == f"{sg} / {po}") & (m.metric == "detection_rate")]
        assert row.value.item() == pytest.approx(r["recall"])
    mf1 = fairlearn.MetricFrame(metrics=recall_score, y_true=faces.y_true, y_pred=pred,
                                sensitive_features=faces["skin_group"])
    for g, v in mf1.by_group.items():
        row = m[(m.grouping == "skin_group") & (m.group == g) & (m.metric == "detection_rate")]
        assert row.value.item() == pytest.approx(v)
        assert m[(m.grouping == "skin_group") & (m.group == g) & (m.metric == "miss_rate")].value.item() == pytest.approx(1 - v)
    # mean score against a masked hand computation
    ms = faces[faces.skin_group == "darker"].y_score.mean()
    assert m[(m.grouping == "skin_group") & (m.group == "darker") & (m.metric == "mean_score")].value.item() == pytest.approx(ms)


def test_auc_is_group_faces_against_all_nonfaces_and_fpr_overall():
    df = _preds()
    a = audit_model(df, ["skin_group"], threshold=0.5, n_boot=20)
    sel = (df.y_true == 0) | (df.skin_group == "darker")
    expected = roc_auc_score(df.y_true[sel], df.y_score[sel])
    m = a.metrics
    assert m[(m.group == "darker") & (m.metric == "auc")].value.item() == pytest.approx(expected)
    fpr = (df[df.y_true == 0].y_score >= 0.5).mean()
    assert m[m.metric == "false_positive_rate"].value.item() == pytest.approx(fpr)


def test_gap_reference_and_variance_by_hand():
    df = _preds()
    a = audit_model(df, ["skin_group"], threshold=0.5, n_boot=200, reference="largest")
    faces = df[df.y_true == 1]
    rates = faces.assign(h=faces.y_score >= 0.5).groupby("skin_group").h.mean()
    d = a.disparities.set_index("group")
    assert d.loc["darker", "reference"] == "lighter"  # the larger group
    assert d.loc["darker", "gap"] == pytest.approx(rates["lighter"] - rates["darker"])
    assert d.loc["darker", "gap_ci_low"] < d.loc["darker", "gap"] < d.loc["darker", "gap_ci_high"]
    s = a.summary["skin_group"]
    assert s["Var[A]"] == pytest.approx(np.var(rates.to_numpy() * 100))
    assert s["E[A]"] == pytest.approx(rates.mean() * 100)
    assert s["worst_group"] == "darker"


def test_small_cells_flagged_and_excluded_and_empty_intersection_shows_zero():
    df = _preds(400)
    faces = df.index[df.y_true == 1]
    df.loc[faces[:5], "skin_group"] = "medium"  # a tiny group
    df.loc[faces[:5], "pose"] = "frontal"       # so medium / profile is empty
    a = audit_model(df, ["skin_group", "pose"], threshold=0.5, n_boot=20, min_n=30)
    m = a.metrics
    small = m[(m.grouping == "skin_group") & (m.group == "medium") & (m.metric == "detection_rate")]
    assert small.flag.item() == TOO_FEW and small.n.item() == 5
    empty = m[(m.grouping == "skin_group x pose") & (m.group == "medium / profile") & (m.metric == "detection_rate")]
    assert empty.n.item() == 0 and np.isnan(empty.value.item())
    assert a.summary["skin_group"]["worst_group"] != "medium"


def test_bad_labels_and_missing_columns():
    df = _preds(50)
    with pytest.raises(KeyError, match="'gender' not found; columns present: y_true, y_score, skin_group, pose"):
        audit_model(df, ["gender"], threshold=0.5)
    df.loc[0, "y_true"] = 2
    with pytest.raises(ValueError, match="must be 0 or 1"):
        audit_model(df, ["skin_group"], threshold=0.5)


def test_group_ece_is_group_faces_plus_all_nonfaces():
    from debias.audit.metrics import expected_calibration_error

    df = _preds()
    a = audit_model(df, ["pose"], threshold=0.5, n_boot=20)
    sel = (df.y_true == 0) | (df.pose == "profile")
    expected = expected_calibration_error(df.y_true[sel].to_numpy(), df.y_score[sel].to_numpy())
    m = a.metrics
    assert m[(m.group == "profile") & (m.metric == "ece")].value.item() == pytest.approx(expected)


def test_auc_interval_brackets_the_estimate_and_shrinks_with_n():
    big, small = _preds(6000, seed=1), _preds(600, seed=1)
    w = []
    for df in (big, small):
        m = audit_model(df, ["skin_group"], threshold=0.5, n_boot=300).metrics
        r = m[(m.group == "darker") & (m.metric == "auc")].iloc[0]
        assert r.ci_low <= r.value <= r.ci_high
        w.append(r.ci_high - r.ci_low)
    assert w[0] < w[1]


def test_named_reference_and_unknown_reference():
    df = _preds()
    a = audit_model(df, ["skin_group", "pose"], threshold=0.5, n_boot=50, reference="darker")
    d = a.disparities
    sg = d[d.grouping == "skin_group"].set_index("group")
    assert (sg.reference == "darker").all()
    assert sg.loc["lighter", "gap"] == pytest.approx(sg.loc["darker", "detection_rate"] - sg.loc["lighter", "detection_rate"])
    assert (d[d.grouping == "pose"].reference != "darker").all()  # other attributes keep the largest group
    with pytest.raises(ValueError, match="`reference` 'purple' is not a group of skin_group, pose"):
        audit_model(df, ["skin_group", "pose"], threshold=0.5, n_boot=10, reference="purple")


def test_ece_interval_brackets_the_estimate_and_shrinks_with_n():
    w = []
    for n in (6000, 600):
        m = audit_model(_preds(n, seed=2), ["skin_group"], threshold=0.5, n_boot=300).metrics
        r = m[(m.group == "darker") & (m.metric == "ece")].iloc[0]
        assert r.ci_low <= r.value + 1e-9 and r.value <= r.ci_high + 0.02
        w.append(r.ci_high - r.ci_low)
    assert w[0] < w[1]


def test_faces_only_set_has_no_false_positive_rate_nor_its_interval():
    # a set without non-faces has no FPR; its bootstrap interval was once read from the last face cell
    df = _preds()
    a = audit_model(df[df.y_true == 1], ["skin_group"], n_boot=50)
    fpr = a.metrics[a.metrics.metric == "false_positive_rate"].iloc[0]
    assert fpr.n == 0
    assert np.isnan([fpr.value, fpr.ci_low, fpr.ci_high, fpr.boot_low, fpr.boot_high]).all()


def test_expected_calibration_error_by_hand():
    from debias.audit.metrics import expected_calibration_error

    # bins of width 0.1: [0.05, 0.15] and 0.95 and 1.0 (the last bin holds 1.0)
    y = np.array([0, 1, 1, 0])
    p = np.array([0.05, 0.15, 0.95, 1.0])
    # bin 0: |0 - 0.05|; bin 1: |1 - 0.15|; bin 9: |1 - 1.95|; over n = 4
    assert expected_calibration_error(y, p) == pytest.approx((0.05 + 0.85 + 0.95) / 4)
