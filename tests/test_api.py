"""The Python front door: the README's block runs, import stays light, tables match by hand."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import debias
from debias.config import SynthConfig
from debias.data.synth import generate

README = Path(__file__).resolve().parents[1] / "README.md"


def test_import_debias_loads_no_torch_opencv_or_matplotlib():
    code = ("import sys, debias; debias.DebiasError; "
            "print(','.join(m for m in ('torch', 'cv2', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
    assert set(debias.__all__) >= {"Audit", "fit", "DebiasError"}


def test_the_readme_python_block_runs(tmp_path, monkeypatch):
    block = re.search(r"## Python\n.*?```python\n(.*?)```", README.read_text(), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    generate(SynthConfig(n_train=600, n_val=60, n_test_per_cell=6, seed=4, workers=1, darker_share=0.1),
             tmp_path / "data" / "synthfaces")
    import matplotlib

    matplotlib.use("Agg")
    ns: dict = {}
    exec(compile(block, "README.md", "exec"), ns)
    assert (tmp_path / "audit-output" / "python" / "report.html").exists()
    assert set(ns["audit"].models) == {"standard", "dbvae"}


@pytest.fixture()
def toy():
    # two groups, a and b; model m detects 8/10 faces of a and 3/10 of b; 10 non-faces score 0
    rows = []
    for g, hits in (("a", 8), ("b", 3)):
        rows += [{"label": 1, "score": 0.9 if i < hits else 0.1, "skin_group": g} for i in range(10)]
    rows += [{"label": 0, "score": 0.0, "skin_group": None} for _ in range(10)]
    return pd.DataFrame(rows)


def test_from_predictions_by_group_difference_and_ratio_by_hand(toy):
    audit = debias.Audit.from_predictions(toy, groups=["skin_group"], threshold=0.5, min_n=5, n_boot=200)
    g = audit.by_group("detection_rate", by="skin_group").set_index("group")
    assert g.loc["a", "value"] == pytest.approx(0.8) and g.loc["b", "value"] == pytest.approx(0.3)
    assert list(audit.by_group().columns) == ["model", "grouping", "group", "value", "ci_low", "ci_high", "n", "flag"]
    d = audit.difference("detection_rate", by="skin_group").iloc[0]
    assert d.difference == pytest.approx(0.5) and d.ci_low < 0.5 < d.ci_high
    assert (d.highest, d.lowest) == ("a", "b")
    assert audit.ratio("detection_rate", by="skin_group").ratio.iloc[0] == pytest.approx(0.3 / 0.8)
    ref = audit.difference("detection_rate", by="skin_group", method="to_reference").set_index("group")
    assert ref.loc["b", "gap"] == pytest.approx(0.5)


def test_from_predictions_names_missing_columns_and_bad_values(toy):
    with pytest.raises(debias.DebiasError, match="no column.*'y'.*y_true="):
        debias.Audit.from_predictions(toy, y_true="y", groups=["skin_group"])
    with pytest.raises(debias.DebiasError, match="non-finite"):
        debias.Audit.from_predictions(toy.assign(score=toy.score.where(toy.index != 2, np.nan)), groups=["skin_group"])


def test_compare_is_the_paired_test_by_hand(toy):
    from scipy.stats import binomtest

    two = pd.concat([toy.assign(model="m1"), toy.assign(model="m2", score=np.where(toy.index < 20, 0.9, 0.0))])
    audit = debias.Audit.from_predictions(two, groups=["skin_group"], threshold=0.5, min_n=5, n_boot=200)
    mc = audit.compare("m1", "m2").iloc[0]
    # m2 detects every face; m1 misses 2 of a and 7 of b: 9 discordant pairs, all for m2
    assert mc.p_value == pytest.approx(binomtest(0, 9, 0.5).pvalue)


def test_plots_draw_on_the_callers_axes_and_leave_global_style_alone(toy):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    before = dict(matplotlib.rcParams)
    audit = debias.Audit.from_predictions(toy, groups=["skin_group"], threshold=0.5, min_n=5, n_boot=50)
    fig, ax = plt.subplots()
    out = audit.plot.bars(by="skin_group", ax=ax)
    assert out is fig and len(ax.patches) >= 2
    assert dict(matplotlib.rcParams) == before
    plt.close(fig)


def test_fit_rejects_unknown_options(tiny_synth, tmp_path):
    with pytest.raises(debias.DebiasError, match="unknown training option.*epoch_count"):
        debias.fit(tiny_synth, out=tmp_path / "r", epoch_count=3)


def _two_models_with_image_ids(toy):
    toy = toy.assign(image=[f"im{i:02d}.png" for i in range(len(toy))])
    m2 = toy.assign(model="m2", score=np.where(toy.index < 20, 0.9, 0.0))
    return toy.assign(model="m1"), m2


def test_compare_pairs_rows_by_image_id_not_by_position(toy):
    # the same predictions with m2's rows shuffled must give the same paired test (McNemar by hand: m1 misses 2 of a
    # and 7 of b, m2 detects every face, so 9 discordant pairs, all for m2); before the fix rows were paired by position
    from scipy.stats import binomtest

    m1, m2 = _two_models_with_image_ids(toy)
    shuffled = pd.concat([m1, m2.sample(frac=1, random_state=3)])
    audit = debias.Audit.from_predictions(shuffled, groups=["skin_group"], threshold=0.5, min_n=5, n_boot=200)
    mc = audit.compare("m1", "m2").iloc[0]
    assert mc.p_value == pytest.approx(binomtest(0, 9, 0.5).pvalue)
    assert "9 only m2" in mc.note or "0 faces only m1 detects, 9 only m2" in mc.note


@pytest.mark.parametrize("case, message", [
    ("fewer rows", r"model 'm2' has 25 rows and model 'm1' 30"),
    ("other image", r"image 'other.png'.*model 'm2'.*not.*'m1'"),
    ("duplicate", r"image 'im03.png' is listed more than once for model 'm1'"),
])
def test_from_predictions_refuses_models_that_cannot_be_paired(toy, case, message):
    m1, m2 = _two_models_with_image_ids(toy)
    if case == "fewer rows":
        m1, m2 = m1.drop(columns="image"), m2.drop(columns="image").iloc[:25]
    elif case == "other image":
        m2 = m2.assign(image=m2["image"].where(m2.index != 4, "other.png"))
    else:
        m1 = m1.assign(image=m1["image"].where(m1.index != 5, "im03.png"))
    with pytest.raises(debias.DebiasError, match=message):
        debias.Audit.from_predictions(pd.concat([m1, m2]), groups=["skin_group"], threshold=0.5, min_n=5)


def test_a_face_only_audit_says_where_its_threshold_came_from(toy, tmp_path):
    # with no non-faces there is no threshold at the target false-positive rate; the audit used 0.5 and said nothing
    faces = toy[toy.label == 1]
    audit = debias.Audit.from_predictions(faces, groups=["skin_group"], min_n=5, n_boot=50)
    s = audit.result.summary["models"]["model"]
    assert s["threshold"] == 0.5 and "no non-faces" in s["threshold_source"]
    assert audit.by_group("detection_rate", by="skin_group").value.tolist() == pytest.approx([0.8, 0.3])
    html = audit.save(tmp_path / "o", thumbnails=False).joinpath("report.html").read_text()
    assert "no non-faces" in html
    both = debias.Audit.from_predictions(toy, groups=["skin_group"], min_n=5, n_boot=50)
    assert both.result.summary["models"]["model"]["threshold_source"] == "false-positive rate 0.01 over the non-faces"
    given = debias.Audit.from_predictions(toy, groups=["skin_group"], threshold=0.4, min_n=5, n_boot=50)
    assert given.result.summary["models"]["model"]["threshold_source"] == "given"


def test_from_predictions_reads_a_csv_path_with_the_csv_checks(toy, tmp_path):
    toy.to_csv(tmp_path / "p.csv", index=False)
    a = debias.Audit.from_predictions(tmp_path / "p.csv", groups=["skin_group"], threshold=0.5, min_n=5, n_boot=50)
    assert a.by_group("detection_rate", by="skin_group").value.tolist() == pytest.approx([0.8, 0.3])
    toy.to_csv(tmp_path / "q.csv", index=False, sep=";")
    with pytest.raises(debias.DebiasError, match="q.csv is separated by ';'"):
        debias.Audit.from_predictions(tmp_path / "q.csv", groups=["skin_group"])


def test_hard_decisions_as_scores_are_refused_at_a_target_fpr_not_audited_as_detecting_nothing():
    """0/1 decisions in the score column: 5% of non-faces score 1, so no threshold keeps the false-positive rate at
    1% but one above every score. The audit reported a detection rate of 0 for every group and a gap of 0."""
    rng = np.random.default_rng(0)
    faces = pd.DataFrame({"label": 1, "score": (rng.random(400) < 0.9).astype(float),
                          "skin_group": rng.choice(["a", "b"], 400)})
    nonfaces = pd.DataFrame({"label": 0, "score": (np.arange(400) < 20).astype(float), "skin_group": None})
    df = pd.concat([faces, nonfaces])
    with pytest.raises(debias.DebiasError, match=r"20 of the 400 non-faces share the highest score, 1.*threshold"):
        debias.Audit.from_predictions(df, groups=["skin_group"], min_n=5, n_boot=50)
    ok = debias.Audit.from_predictions(df, groups=["skin_group"], min_n=5, n_boot=50, threshold=0.5)
    assert ok.by_group("detection_rate", by="skin_group").value.tolist() == pytest.approx(
        faces.groupby("skin_group").score.mean().tolist())
    # at a target the ties allow (5% of non-faces score 1), the threshold is met and faces are detected
    met = debias.Audit.from_predictions(df, groups=["skin_group"], min_n=5, n_boot=50, target_fpr=0.05)
    assert met.result.summary["models"]["model"]["false_positive_rate"] == pytest.approx(0.05)


@pytest.mark.parametrize("call,match", [
    (lambda t: debias.Audit.from_predictions(t.iloc[:0], threshold=0.5), "no face.*no rows at all"),
    (lambda t: debias.Audit.from_predictions(t[t.label == 0], threshold=0.5), "hold no face"),
    (lambda t: debias.Audit.from_predictions(t, n_boot=0), "`n_boot`=0 must be at least 1"),
    (lambda t: debias.Audit.from_predictions(t, groups=5), "`groups`=5 must be a list of column names"),
    (lambda t: debias.Audit.from_predictions([1, 2]), "DataFrame or the path of a CSV file, not a list"),
    (lambda t: debias.Audit.from_predictions(t, scores="probability"), "'probability' is not one of auto, prob"),
    (lambda t: debias.Audit.from_predictions(t, threshold="x"), "`threshold`='x' must be a number"),
    (lambda t: debias.Audit.from_models("nowhere", "nonsense:spec"), "model spec 'nonsense:spec' is not understood"),
    (lambda t: debias.Audit.from_models("nowhere", [3]), "must be one or more model specs"),
    (lambda t: debias.fit("nowhere", out="nowhere/run", epochs=-1), "`epochs`=-1 must be at least 1"),
])
def test_bad_api_input_is_a_debias_error_that_names_it(toy, call, match):
    """An empty frame or one of non-faces only raised pandas' 'No objects to concatenate' or numpy's 'need at least
    one array to stack'; bad arguments raised ValueError, TypeError or AttributeError, not DebiasError."""
    with pytest.raises(debias.DebiasError, match=match):
        call(toy)


def test_from_models_takes_one_column_name_as_by(tiny_synth):
    """by="skin_group" was read letter by letter: "attribute column(s) 's', 'k', 'i', ... not in the manifest"."""
    spec = f"python:{Path(__file__).parent / 'audit' / 'fake_models.py'}:centre_brightness"
    a = debias.Audit.from_models(tiny_synth, [spec], by="skin_group", n_boot=20, min_n=5, threshold=0.4)
    assert set(a.metrics.grouping) == {"overall", "skin_group"}


def test_a_model_name_given_beside_a_model_column_is_refused_not_used_for_every_row(toy):
    """model="m" renamed every row of a two-model table to "m": both models' rows audited as one."""
    two = pd.concat([toy.assign(model="a"), toy.assign(model="b")], ignore_index=True)
    with pytest.raises(debias.DebiasError, match="`model`='m' was given, but the predictions' model column names a, b"):
        debias.Audit.from_predictions(two, model="m", threshold=0.5)
