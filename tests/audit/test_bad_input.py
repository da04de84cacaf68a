"""Inputs that used to give silently wrong statistics now give a correct result or a clear error."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from debias.audit.engine import compare_audits
from debias.report.outputs import run_audit
from debias.audit.predict import PredictionsError, predictions_from_csv
from debias.cli import app
from debias.config import AuditConfig

runner = CliRunner()
FAKE = "python:fake_models:centre_brightness"
LOGIT = "python:fake_models:centre_logit"
FAST = ["--by", "skin_group", "--min-n", "5", "--n-boot", "50", "--no-thumbnails"]


def _ok(r):
    assert r.exit_code == 0, r.output
    return r


def _err(r, *needles):
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    text = " ".join(r.output.split())
    squeezed = "".join(r.output.split())  # the console wraps a long path wherever its width ends, even mid-word
    for n in needles:
        assert n in text or "".join(n.split()) in squeezed, (n, text)
    return text


# ---- 1. compare refuses audits of different test sets ---------------------------------------------

def test_compare_refuses_audits_of_different_manifests_with_the_same_ids(tiny_synth, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(tiny_synth, other)
    m = pd.read_csv(other / "manifest.csv")
    m.loc[m.split == "test", "skin_group"] = m.loc[m.split == "test", "skin_group"].iloc[::-1].to_numpy()
    m.to_csv(other / "manifest.csv", index=False)  # the same ids and row count, another labelling
    for name, data in (("a", tiny_synth), ("b", other)):
        _ok(runner.invoke(app, ["audit", str(data), "-m", FAKE, *FAST, "--out", str(tmp_path / name)]))
    r = runner.invoke(app, ["report", "compare", str(tmp_path / "a"), str(tmp_path / "b"), *FAST[:2],
                            "--out", str(tmp_path / "c")])
    _err(r, "different manifests", "same test set")
    assert not (tmp_path / "c" / "paired.csv").exists()


def test_compare_refuses_audits_of_different_images(tiny_synth, tmp_path):
    _ok(runner.invoke(app, ["audit", str(tiny_synth), "-m", FAKE, *FAST, "--out", str(tmp_path / "a")]))
    p = pd.read_csv(tmp_path / "a" / "predictions.csv")
    (tmp_path / "b").mkdir()
    p = p.assign(image=p.image + 100000)  # same count, other images
    p.to_csv(tmp_path / "b" / "predictions.csv", index=False)
    with pytest.raises(ValueError, match="cover different images"):
        compare_audits([tmp_path / "a", tmp_path / "b"])


# ---- 3. predictions CSV validation ---------------------------------------------------------------

@pytest.fixture()
def preds(tiny_synth, tmp_path):
    cfg = AuditConfig(by=("skin_group",), n_boot=50, min_n=5, thumbnails=False)
    a = run_audit(tiny_synth, [FAKE], cfg, tmp_path / "a")
    return a.predictions[["image", "y_score"]].rename(columns={"y_score": "score"}).reset_index(drop=True)


@pytest.mark.parametrize("edit,match", [
    (lambda p: p.assign(score=p.score.where(p.index != 3, np.nan)),
     "missing, not a number or infinite on line(s) 5 (first value: empty)"),
    # the value was shown as np.float64(inf), numpy's repr, not what the file holds
    (lambda p: p.assign(score=p.score.where(p.index != 0, np.inf)), "infinite on line(s) 2 (first value: inf)"),
    (lambda p: p.assign(score=p.score.astype(str).where(p.index != 1, "0,5")), "line(s) 3 (first value: '0,5')"),
    (lambda p: pd.concat([p, p.iloc[[4]]]), "listed more than once"),
    (lambda p: p.assign(image=p.image.where(p.index != 2, 999999)), "not in the test split"),
])
def test_bad_prediction_files_are_errors_that_name_the_lines(tiny_synth, tmp_path, preds, edit, match):
    edit(preds).to_csv(tmp_path / "p.csv", index=False)
    with pytest.raises(PredictionsError, match=match.replace("(", r"\(").replace(")", r"\)")):
        predictions_from_csv(tmp_path / "p.csv", tiny_synth)
    r = runner.invoke(app, ["audit", str(tiny_synth), "--predictions", str(tmp_path / "p.csv"), *FAST,
                            "--out", str(tmp_path / "o")])
    _err(r, "p.csv")
    assert not (tmp_path / "o" / "metrics.csv").exists()


def test_a_face_with_no_row_is_an_error_not_a_smaller_denominator(tiny_synth, tmp_path, preds):
    """A detector's export often leaves out the images where it found no face. Audited as given, the faces it
    missed vanish from the denominator and its detection rate is overstated (before the fix: exit 0, rate over
    the listed faces only). Now that stops with the count and the first image, and --allow-missing audits the
    listed images and reports the rest."""
    m = pd.read_csv(tiny_synth / "manifest.csv")
    test = m[m.split == "test"]
    faces = set(test.loc[test.label == 1, "image"])
    low = preds[preds.image.isin(faces)].nsmallest(6, "score")  # the 6 faces it is least sure of: no row
    kept = preds.drop(low.index)
    kept.to_csv(tmp_path / "p.csv", index=False)
    with pytest.raises(PredictionsError, match=f"has no row for 6 of the {len(test)} images"):
        predictions_from_csv(tmp_path / "p.csv", tiny_synth)
    r = runner.invoke(app, ["audit", str(tiny_synth), "--predictions", str(tmp_path / "p.csv"), *FAST,
                            "--threshold", "0.5", "--out", str(tmp_path / "o")])
    _err(r, "p.csv", "has no row for 6", "score 0", "--allow-missing")
    assert "scoring" not in r.output  # nothing is scored from a predictions file: no progress bar that says so
    assert not (tmp_path / "o" / "metrics.csv").exists()
    r = _ok(runner.invoke(app, ["audit", str(tiny_synth), "--predictions", str(tmp_path / "p.csv"), *FAST,
                                "--threshold", "0.5", "--allow-missing", "--out", str(tmp_path / "o")]))
    assert "6 image(s) without a prediction not audited" in " ".join(r.output.split())
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert s["skipped_images"]["count"] == 6
    assert {int(i["image"]) for i in s["skipped_images"]["images"]} == set(low.image)
    # the audited rate is over the listed faces, by hand
    listed = kept[kept.image.isin(faces)]
    mt = pd.read_csv(tmp_path / "o" / "metrics.csv")
    overall = mt[(mt.grouping == "overall") & (mt.group == "all faces") & (mt.metric == "detection_rate")]
    assert overall.n.iloc[0] == len(listed)
    assert overall.value.iloc[0] == pytest.approx((listed.score >= 0.5).mean())


def test_scores_outside_0_1_are_logits_for_the_whole_file_or_an_error_when_declared_prob(tiny_synth, tmp_path, preds):
    logits = preds.assign(score=np.log(preds.score.clip(1e-6, 1 - 1e-6) / (1 - preds.score.clip(1e-6, 1 - 1e-6))))
    logits.to_csv(tmp_path / "p.csv", index=False)
    p, _ = predictions_from_csv(tmp_path / "p.csv", tiny_synth)
    assert p.attrs["scores"] == {"p": "logit"}
    expected = 1 / (1 + np.exp(-logits.score.to_numpy()))
    assert np.allclose(p.set_index("image").loc[logits.image.astype(str), "y_score"], expected)
    with pytest.raises(PredictionsError, match="outside \\[0, 1\\]"):
        predictions_from_csv(tmp_path / "p.csv", tiny_synth, scores="prob")
    # the audit threshold is a probability, never a raw logit such as 5.0
    r = _ok(runner.invoke(app, ["audit", str(tiny_synth), "--predictions", str(tmp_path / "p.csv"), *FAST,
                                "--out", str(tmp_path / "o")]))
    assert r.exit_code == 0
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert all(0 <= t <= 1 for t in s["thresholds"].values())


@pytest.mark.parametrize("stray", [1.0001, -1e-6])
def test_probabilities_with_one_stray_value_are_refused_not_read_as_logits(tiny_synth, tmp_path, preds, stray):
    """One score of 1.0001 (or -1e-6) among probabilities turned the whole file into logits: every score went
    through the sigmoid, so every face and non-face scored at least 0.5 and the audit reported no gap at all."""
    preds.assign(score=preds.score.where(preds.index != 7, stray)).to_csv(tmp_path / "p.csv", index=False)
    with pytest.raises(PredictionsError, match=r"1 of its \d+ scores lie outside \[0, 1\] .*\(--scores\)"):
        predictions_from_csv(tmp_path / "p.csv", tiny_synth)
    r = runner.invoke(app, ["audit", str(tiny_synth), "--predictions", str(tmp_path / "p.csv"), *FAST,
                            "--out", str(tmp_path / "o")])
    _err(r, "p.csv", "probabilities with stray values")
    p, _ = predictions_from_csv(tmp_path / "p.csv", tiny_synth, scores="logit")  # said, it is read as asked
    assert p.attrs["scores"] == {"p": "logit"}


def test_each_model_of_a_predictions_file_is_read_as_probabilities_or_logits_on_its_own(tiny_synth, tmp_path, preds):
    """A file of two models, one giving logits and one probabilities, was decided once: the probabilities went
    through the sigmoid too, squeezed into [0.5, 0.73], and the audit said that model had no gap."""
    logit = np.log(preds.score.clip(1e-6, 1 - 1e-6) / (1 - preds.score.clip(1e-6, 1 - 1e-6)))
    both = pd.concat([preds.assign(model="probs"), preds.assign(model="logits", score=logit)])
    both.to_csv(tmp_path / "p.csv", index=False)
    p, _ = predictions_from_csv(tmp_path / "p.csv", tiny_synth)
    assert p.attrs["scores"] == {"probs": "prob", "logits": "logit"}
    a = p[p.model == "probs"].set_index("image")["y_score"]
    b = p[p.model == "logits"].set_index("image")["y_score"]
    np.testing.assert_allclose(a, preds.set_index(preds.image.astype(str)).loc[a.index, "score"])
    np.testing.assert_allclose(a, b.loc[a.index], atol=1e-5)  # the same model, read back the same


@pytest.mark.parametrize("names", [[1, 2], [1.0, 2.0], [True, False]])
def test_model_names_that_look_like_numbers_are_names(tiny_synth, tmp_path, preds, names):
    """A model column of 1 and 2 (read by pandas as numbers) crashed the report's headline with an IndexError."""
    both = pd.concat([preds.assign(model=names[0]), preds.assign(model=names[1])])
    both.to_csv(tmp_path / "p.csv", index=False)
    r = _ok(runner.invoke(app, ["audit", str(tiny_synth), "--predictions", str(tmp_path / "p.csv"), *FAST,
                                "--out", str(tmp_path / "o")]))
    got = set(pd.read_csv(tmp_path / "o" / "predictions.csv", dtype={"model": str})["model"])
    assert got == {str(n) if not isinstance(n, float) else str(int(n)) for n in names}, (got, r.output)


@pytest.mark.parametrize("edit,match", [
    (lambda p: p.assign(y_score=p.score), "has the columns score, y_score: give one score per row"),
    (lambda p: p.assign(model=["a"] * (len(p) - 1) + [np.nan]), "the model name is empty on line(s) "),
    # every id was then read as a float, and the message named '360.0' as not in the split
    (lambda p: p.assign(image=p.image.astype(object).where(p.index != 5, None)), "the image id is empty on line(s) 7"),
])
def test_ambiguous_score_and_model_columns_are_refused_by_line(tiny_synth, tmp_path, preds, edit, match):
    edit(preds).to_csv(tmp_path / "p.csv", index=False)
    with pytest.raises(PredictionsError, match=match.replace("(", r"\(").replace(")", r"\)")):
        predictions_from_csv(tmp_path / "p.csv", tiny_synth)


def test_a_native_threshold_column_beside_scores_is_not_taken_for_decisions(tiny_synth, tmp_path, preds):
    """A file with a 'native_threshold' column (the audit's own output has one) was refused with "'prediction'
    must be 0 or 1", though it had no prediction column."""
    preds.assign(native_threshold=0.5).to_csv(tmp_path / "p.csv", index=False)
    p, _ = predictions_from_csv(tmp_path / "p.csv", tiny_synth)
    assert "native_threshold" not in p.columns or p["native_threshold"].isna().all()


def test_empty_and_header_only_prediction_files(tiny_synth, tmp_path):
    (tmp_path / "p.csv").write_text("image,score\n")
    with pytest.raises(PredictionsError, match="only a header"):
        predictions_from_csv(tmp_path / "p.csv", tiny_synth)


# ---- 5. scores never depend on batch make-up -----------------------------------------------------

def test_logit_model_scores_do_not_depend_on_batch_size(tiny_synth, tmp_path):
    a = run_audit(tiny_synth, [LOGIT], AuditConfig(by=("skin_group",), n_boot=20, min_n=5, thumbnails=False,
                                                   batch_size=1), tmp_path / "a")
    b = run_audit(tiny_synth, [LOGIT], AuditConfig(by=("skin_group",), n_boot=20, min_n=5, thumbnails=False,
                                                   batch_size=256), tmp_path / "b")
    assert np.array_equal(a.predictions.y_score.to_numpy(), b.predictions.y_score.to_numpy())
    raw = a.predictions.y_score.to_numpy()
    assert raw.min() > 0 and raw.max() < 1  # all mapped through the sigmoid, including raw outputs within [0, 1]


# ---- 6. merge refuses an incomplete or mixed set of shards ---------------------------------------

def test_merge_refuses_missing_and_mixed_shards(tiny_synth, tmp_path):
    for k in range(2):
        _ok(runner.invoke(app, ["audit", str(tiny_synth), "-m", FAKE, "--shard", f"{k}/2", "--out", str(tmp_path / f"s{k}")]))
    _ok(runner.invoke(app, ["audit", str(tiny_synth), "-m", LOGIT, "--shard", "1/2", "--out", str(tmp_path / "x1")]))
    _err(runner.invoke(app, ["report", "merge", str(tmp_path / "s0"), *FAST[:2], "--out", str(tmp_path / "m")]),
         "missing 1/2")
    _err(runner.invoke(app, ["report", "merge", str(tmp_path / "s0"), str(tmp_path / "x1"), *FAST[:2],
                             "--out", str(tmp_path / "m")]), "different models")
    _err(runner.invoke(app, ["report", "merge", str(tmp_path / "s0"), str(tmp_path / "s0"), *FAST[:2],
                             "--out", str(tmp_path / "m")]), "missing 1/2", "given twice 0/2")
    p = pd.read_csv(tmp_path / "s1" / "predictions.csv")  # a shard whose predictions its shard.json does not describe
    p.assign(y_score=1 - p.y_score).to_csv(tmp_path / "s1" / "predictions.csv", index=False)
    _err(runner.invoke(app, ["report", "merge", str(tmp_path / "s0"), str(tmp_path / "s1"), *FAST[:2],
                             "--out", str(tmp_path / "m")]), "s1/predictions.csv is not the file that", "shard.json")


# ---- 7. every option is validated before any work ------------------------------------------------

@pytest.mark.parametrize("opt,value,match", [
    ("--threshold", "nan", "threshold=nan"), ("--threshold", "2", "threshold=2.0"), ("--min-n", "-1", "--min-n=-1"),
    ("--n-boot", "0", "--n-boot=0"), ("--n-boot", "-5", "--n-boot=-5"), ("--batch-size", "0", "--batch-size=0"),
    ("--size", "0", "size=0"), ("--by", "", "by=()"), ("--fail-on", "gap>>1", "--fail-on 'gap>>1'"),
    ("--scores", "probability", "scores='probability'"),
    ("--by", "skin_group,skin_group", "--by names skin_group more than once"),  # was an AttributeError traceback
])
def test_bad_audit_options_fail_before_any_work(tiny_synth, tmp_path, opt, value, match):
    r = runner.invoke(app, ["audit", str(tiny_synth), "-m", FAKE, "--out", str(tmp_path / "o"), opt, value])
    _err(r, match)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("opt,value,match", [
    ("--lr", "nan", "lr=nan"), ("--face-ratio", "1.5", "--face-ratio=1.5"), ("--latent-dim", "0", "--latent-dim=0"),
    ("--max-train", "-5", "--max-train=-5"), ("--bins", "0", "bins=0"), ("--batch-size", "0", "--batch-size=0"),
    ("--balance-by", "", "--balance-by=()"), ("--epochs", "0", "epochs=0"),
])
def test_bad_train_options_fail_before_any_work(tiny_synth, tmp_path, opt, value, match):
    r = runner.invoke(app, ["train", str(tiny_synth), "--out", str(tmp_path / "run"), opt, value])
    _err(r, match)
    assert not (tmp_path / "run").exists()


# ---- 8, 9, 11, 12: outputs ------------------------------------------------------------------------

def _refuse_constant(c):
    raise ValueError(f"non-standard JSON constant {c}")


def test_summary_is_strict_json_with_a_reason_beside_each_null(tmp_path, ppb_sample):
    _ok(runner.invoke(app, ["data", "import", "folder", "--faces", str(ppb_sample), "--csv",
                            str(ppb_sample / "labels.csv"), "--out", str(tmp_path / "ppb")]))
    _ok(runner.invoke(app, ["audit", str(tmp_path / "ppb"), "-m", FAKE, "--by", "skin_group", "--split", "all",
                            "--min-n", "5", "--n-boot", "20", "--threshold", "0.5", "--out", str(tmp_path / "o")]))
    text = (tmp_path / "o" / "summary.json").read_text()
    s = json.loads(text, parse_constant=_refuse_constant)  # no NaN / Infinity tokens
    found = []

    def walk(d):
        if isinstance(d, dict):
            for k, v in d.items():
                if v is None and k + "_note" in d:
                    found.append(k)
                walk(v)
        elif isinstance(d, list):
            for v in d:
                walk(v)

    walk(s)
    assert "false_positive_rate" in found  # no non-faces among the PPB crops


def test_a_second_audit_removes_its_own_stale_outputs_and_nothing_else(tiny_synth, tmp_path):
    out = tmp_path / "o"
    _ok(runner.invoke(app, ["audit", str(tiny_synth), "-m", FAKE, "-m", LOGIT, *FAST, "--out", str(out)]))
    assert (out / "paired.csv").exists()
    (out / "my-notes.txt").write_text("mine")
    _ok(runner.invoke(app, ["audit", str(tiny_synth), "-m", FAKE, *FAST, "--out", str(out)]))
    assert not (out / "paired.csv").exists()  # one model: no paired comparison, the stale one is gone
    assert (out / "my-notes.txt").read_text() == "mine"
    assert not list(out.glob(".*.tmp"))
    s = json.loads((out / "summary.json").read_text())
    assert set(s["outputs"]) == {"predictions.csv", "metrics.csv", "disparities.csv", "model_card.json", "report.html",
                                 "summary.json"}


def test_a_failed_write_leaves_the_earlier_report_whole(tiny_synth, tmp_path, monkeypatch):
    out = tmp_path / "o"
    _ok(runner.invoke(app, ["audit", str(tiny_synth), "-m", FAKE, *FAST, "--out", str(out)]))
    before = (out / "report.html").read_bytes()
    import debias.report.outputs as engine

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")

    real = engine.atomic_write

    def failing(path, write):
        if str(path).endswith("report.html"):
            return real(path, lambda t: (t.write_text("partial"), disk_full()))
        return real(path, write)

    monkeypatch.setattr(engine, "atomic_write", failing)
    with pytest.raises(OSError):
        run_audit(tiny_synth, [FAKE], AuditConfig(by=("skin_group",), n_boot=20, min_n=5, thumbnails=False), out)
    assert (out / "report.html").read_bytes() == before
    assert not list(out.glob(".*.tmp"))


def test_predictions_carry_the_decision_at_the_audit_threshold(tiny_synth, tmp_path):
    _ok(runner.invoke(app, ["audit", str(tiny_synth), "-m", FAKE, *FAST, "--threshold", "0.4", "--out", str(tmp_path / "o")]))
    p = pd.read_csv(tmp_path / "o" / "predictions.csv")
    assert (p.y_pred == (p.y_score >= 0.4).astype(int)).all()
    # a comparison reads audits that already carry y_pred: its own table holds the column once
    _ok(runner.invoke(app, ["audit", str(tiny_synth), "-m", LOGIT, *FAST, "--threshold", "0.4", "--out", str(tmp_path / "b")]))
    _ok(runner.invoke(app, ["report", "compare", str(tmp_path / "o"), str(tmp_path / "b"), *FAST[:2], "--threshold",
                            "0.4", "--out", str(tmp_path / "c")]))
    c = pd.read_csv(tmp_path / "c" / "predictions.csv")
    assert list(c.columns).count("y_pred") == 1 and "y_pred.1" not in c.columns
    assert (c.y_pred == (c.y_score >= 0.4).astype(int)).all()


def test_a_very_long_group_name_gives_a_bounded_figure(tiny_synth, tmp_path):
    from PIL import Image as PILImage

    data = tmp_path / "d"
    shutil.copytree(tiny_synth, data)
    m = pd.read_csv(data / "manifest.csv")
    m.loc[m.skin_group == "darker", "skin_group"] = "x" * 10_000
    m.to_csv(data / "manifest.csv", index=False)
    _ok(runner.invoke(app, ["audit", str(data), "-m", FAKE, *FAST, "--out", str(tmp_path / "o")]))
    html = (tmp_path / "o" / "report.html").read_text()
    assert len(html) < 3_000_000
    import base64
    import io
    import re

    for b64 in re.findall(r'data:image/png;base64,([A-Za-z0-9+/=]+)', html):
        w, h = PILImage.open(io.BytesIO(base64.b64decode(b64))).size
        assert w < 2000 and h < 2000, (w, h)
    assert ("x" * 10_000) in set(pd.read_csv(tmp_path / "o" / "metrics.csv").group)  # tables keep the full name


def test_no_readable_image_is_a_clear_error(tmp_path):
    root = tmp_path / "d"
    root.mkdir()
    for i in range(3):
        (root / f"{i}.png").write_bytes(b"not an image")
    pd.DataFrame({"image": [f"{i}.png" for i in range(3)], "label": 1, "split": "test",
                  "skin_group": "a"}).to_csv(root / "manifest.csv", index=False)
    r = runner.invoke(app, ["audit", str(root), "-m", FAKE, *FAST, "--out", str(tmp_path / "o")])
    _err(r, "none of the 3 images", "0.png")


# ---- 13. code that runs code ----------------------------------------------------------------------

def test_python_models_run_only_what_was_asked_for(tiny_synth, tmp_path, monkeypatch):
    (tmp_path / "sneaky.py").write_text("import pathlib\npathlib.Path('RAN').write_text('x')\n"
                                        "def f(images):\n    return images.mean(axis=(1, 2, 3)) / 255\n")
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["audit", str(tiny_synth), "-m", "python:sneaky:f", *FAST, "--out", "o"])
    _err(r, "not found", "current folder is not searched")
    assert not (tmp_path / "RAN").exists()
    # asked for explicitly, as a file: it runs
    _ok(runner.invoke(app, ["audit", str(tiny_synth), "-m", "python:sneaky.py:f", *FAST, "--out", "o"]))
    assert (tmp_path / "RAN").exists()


def test_a_recipe_naming_python_code_needs_allow_code(tiny_synth, tmp_path):
    (tmp_path / "r.toml").write_text(f'data = "{tiny_synth}"\nmodel = ["{FAKE}"]\nby = ["skin_group"]\nmin_n = 5\n'
                                     f'n_boot = 20\nout = "{tmp_path / "o"}"\n')
    _err(runner.invoke(app, ["audit", "--recipe", str(tmp_path / "r.toml")]), "runs Python code", "--allow-code")
    assert not (tmp_path / "o").exists()
    _ok(runner.invoke(app, ["audit", "--recipe", str(tmp_path / "r.toml"), "--allow-code", "--no-thumbnails"]))


def test_a_crafted_pickle_is_refused_without_torchs_unsafe_advice(tmp_path):
    import pickle

    class Boom:
        def __reduce__(self):
            return (print, ("pwned",))

    run = tmp_path / "run"
    run.mkdir()
    (run / "model.pt").write_bytes(pickle.dumps({"x": Boom()}))
    r = runner.invoke(app, ["audit", str(tmp_path), "-m", f"run:{run}", "--out", str(tmp_path / "o")])
    text = _err(r, "is not a debias run or checkpoint", "will not be loaded")
    assert "weights_only" not in text and "pwned" not in text


def test_verdict_sentence_follows_the_interval():
    from debias.report.html import verdicts

    paired = pd.DataFrame([
        dict(statistic="max_min_gap", model="dbvae", baseline="standard", grouping="skin_group",
             model_value=0.82, baseline_value=0.76, difference=0.06, ci_low=0.004, ci_high=0.11),
        dict(statistic="max_min_gap", model="balanced", baseline="standard", grouping="skin_group",
             model_value=0.05, baseline_value=0.76, difference=-0.71, ci_low=-0.8, ci_high=-0.6),
        dict(statistic="max_min_gap", model="x", baseline="standard", grouping="pose",
             model_value=0.20, baseline_value=0.21, difference=-0.01, ci_low=-0.05, ci_high=0.03),
    ])
    v = verdicts(paired)
    assert v[0] == ("dbvae widened the skin_group gap compared with standard: 82.0 vs 76.0 points "
                    "(difference +6.0, 95% CI +0.4 to +11.0).")
    assert v[1].startswith("balanced narrowed the skin_group gap") and "difference -71.0" in v[1]
    assert v[2].startswith("x did not measurably change the pose gap")


def test_a_gap_narrowed_by_detecting_fewer_faces_says_so(tiny_synth, tmp_path, preds):
    """A model that detects nothing has no gap: the verdict said it "narrowed the skin_group gap ... beyond
    noise", with nothing on its detection rate falling from 50% to 0%."""
    dead = preds.assign(score=0.0)
    pd.concat([preds.assign(model="a"), dead.assign(model="b")]).to_csv(tmp_path / "p.csv", index=False)
    r = _ok(runner.invoke(app, ["audit", str(tiny_synth), "--predictions", str(tmp_path / "p.csv"), *FAST,
                                "--threshold", "0.5", "--out", str(tmp_path / "o")]))
    text = " ".join(r.output.split())
    assert "b narrowed the skin_group gap" in text
    assert "but it detects fewer faces overall: 0.0% against" in text and "is no gain" in text
    html = (tmp_path / "o" / "report.html").read_text()
    assert "but it detects fewer faces overall" in html


def test_read_recipe_normalises_values_and_names_unknown_keys(tmp_path):
    from pathlib import Path

    from debias.cli import RECIPE_KEYS
    from debias.config import read_recipe
    from debias.errors import DebiasError

    r = tmp_path / "r.toml"
    r.write_text('data = "d"\nmodel = "opencv:haar-frontal-default"\nby = "skin_group, gender"\nmean = [0.5, 0.5, 0.5]\n')
    assert read_recipe(r, RECIPE_KEYS) == {"data": Path("d"), "model": ["opencv:haar-frontal-default"],
                                           "by": ["skin_group", "gender"], "mean": ["0.5", "0.5", "0.5"]}
    r.write_text('data = "d"\nmodels = ["x"]\n')
    with pytest.raises(DebiasError, match=r"r.toml has unknown key\(s\) models"):
        read_recipe(r, RECIPE_KEYS)
    r.write_text('data = "d\n')
    with pytest.raises(DebiasError, match="could not be read"):
        read_recipe(r, RECIPE_KEYS)
    _err(runner.invoke(app, ["audit", "--recipe", str(r)]), "r.toml could not be read")


# ---- the attribute columns are checked before anything is scored -----------------------------------

def test_default_by_keeps_the_columns_the_manifest_has_and_a_named_missing_column_fails_before_scoring(
        tiny_synth, tmp_path, monkeypatch):
    data = tmp_path / "nopose"
    shutil.copytree(tiny_synth, data)
    pd.read_csv(data / "manifest.csv").drop(columns="pose").to_csv(data / "manifest.csv", index=False)
    r = _ok(runner.invoke(app, ["audit", str(data), "-m", FAKE, "--min-n", "5", "--n-boot", "20", "--no-thumbnails",
                                "--out", str(tmp_path / "o")]))
    assert "auditing by skin_group, gender" in " ".join(r.output.split())
    groupings = set(pd.read_csv(tmp_path / "o" / "metrics.csv").grouping)
    assert {"skin_group", "gender"} <= groupings and not any("pose" in g for g in groupings)
    # a column named with --by that the manifest lacks: exit 2 before any model is loaded or image scored
    import debias.audit.adapters as adapters

    def no_loading(*a, **k):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(adapters, "load_adapter", no_loading)
    text = _err(runner.invoke(app, ["audit", str(data), "-m", FAKE, "--by", "skin_group,pose",
                                    "--out", str(tmp_path / "p")]), "--by: attribute column(s) 'pose' not in",
                "audit by columns it has")
    assert "`" not in text and not (tmp_path / "p").exists()
    from debias import Audit, DebiasError

    with pytest.raises(DebiasError, match="`by`: attribute column"):  # the documented error, not a KeyError
        Audit.from_models(data, [FAKE], by=["pose"])
    monkeypatch.undo()
    a = Audit.from_models(data, [FAKE], min_n=5, n_boot=20)  # the Python default adapts the same way
    assert a.config.by == ("skin_group", "gender")


def test_an_empty_manifest_or_one_without_default_columns_gives_one_clear_error(tmp_path):
    (tmp_path / "manifest.csv").write_text("")
    _err(runner.invoke(app, ["audit", str(tmp_path), "-m", FAKE]), "has no rows (the file is empty)")
    (tmp_path / "manifest.csv").write_text("image,split,label\n1,test,1\n")
    text = _err(runner.invoke(app, ["audit", str(tmp_path), "-m", FAKE]), "has none of the default attribute columns",
                "--by")
    assert text.startswith("error: /") and not text.rstrip().endswith("'")  # the message, not a KeyError's repr


def test_a_predictions_path_that_does_not_exist_is_named_before_any_work(tiny_synth, tmp_path):
    r = runner.invoke(app, ["audit", str(tiny_synth), "--predictions", str(tmp_path / "nope.csv"), *FAST,
                            "--out", str(tmp_path / "o")])
    _err(r, "nope.csv does not exist")
    assert "scoring" not in r.output and not (tmp_path / "o").exists()


def test_without_a_dataset_two_models_are_paired_by_image_id(tmp_path):
    """With no manifest to take rows from, each image gets one row number across models whatever the CSV's order
    (before the fix the rows were numbered by line, so no image of model b shared a row with model a)."""
    a = pd.DataFrame({"image": ["x", "y", "z"], "score": [0.9, 0.2, 0.7], "label": [1, 1, 0], "model": "a"})
    b = a.assign(model="b", score=[0.1, 0.8, 0.3]).iloc[[2, 0, 1]]
    pd.concat([a, b]).to_csv(tmp_path / "p.csv", index=False)
    p, _ = predictions_from_csv(tmp_path / "p.csv", None)
    rows = p.pivot(index="image", columns="model", values="row")
    assert (rows["a"] == rows["b"]).all() and sorted(rows["a"]) == [0, 1, 2]
    b.iloc[:2].pipe(lambda d: pd.concat([a, d])).to_csv(tmp_path / "q.csv", index=False)
    with pytest.raises(PredictionsError, match="image 'y' has a row for model 'a' but not for model 'b'"):
        predictions_from_csv(tmp_path / "q.csv", None)


def test_decisions_with_ties_at_the_top_are_audited_at_their_own_threshold_and_the_report_says_so(tiny_synth,
                                                                                                 tmp_path, preds):
    """A 'prediction' column of 0/1 decisions whose non-faces say 1 more than 1% of the time: no threshold at the
    target rate detects anything. It reported a detection rate of 0 for every group; now the decisions are
    audited as given (the model's own threshold) and summary.json and the report say why."""
    m = pd.read_csv(tiny_synth / "manifest.csv").set_index("image")
    label = m.loc[preds.image, "label"].to_numpy()
    rng = np.random.default_rng(1)
    decision = np.where(label == 1, rng.random(len(preds)) < 0.8, rng.random(len(preds)) < 0.1).astype(int)
    preds.drop(columns="score").assign(prediction=decision).to_csv(tmp_path / "p.csv", index=False)
    _ok(runner.invoke(app, ["audit", str(tiny_synth), "--predictions", str(tmp_path / "p.csv"), *FAST,
                            "--out", str(tmp_path / "o")]))
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    (model,) = s["models"]
    assert s["thresholds"][model] == 0.5 and s["models"][model]["threshold_source"].startswith("the model's own")
    assert s["models"][model]["detection_rate"] == pytest.approx(decision[label == 1].mean())
    assert "share its highest score" in (tmp_path / "o" / "report.html").read_text()


@pytest.mark.parametrize("line, needles", [
    ("data = 3", ["key data = 3 must be a string"]),
    ('data = "d"\nmodel = [1, 2]', ["key model = [1, 2] must be a string or a list of strings"]),
    ('data = "d"\nn_boot = "many"', ["key n_boot = 'many' must be an integer"]),
    ('data = "d"\nn_boot = 2.5', ["key n_boot = 2.5 must be an integer"]),
    ('data = "d"\ntarget_fpr = [0.1]', ["key target_fpr = [0.1] must be one value (a number), not a list"]),
    ('data = "d"\nthumbnails = "perhaps"', ["key thumbnails = 'perhaps' must be true or false"]),
])
def test_a_recipe_value_of_the_wrong_type_is_one_error_naming_the_key(tmp_path, line, needles):
    """`data = 3` raised a TypeError traceback (exit 1): read_recipe converted values without checking their type."""
    r = tmp_path / "r.toml"
    r.write_text(line + "\n")
    _err(runner.invoke(app, ["audit", "--recipe", str(r)]), "r.toml", *needles)


def test_recipe_values_are_converted_as_the_command_line_would(tiny_synth, tmp_path):
    """A TOML integer where the option is a float, and a number as a string, are what the flag would accept."""
    r = tmp_path / "r.toml"
    r.write_text(f'data = "{tiny_synth}"\nmodel = "opencv:haar-frontal-default"\nthreshold = 1\nn_boot = "20"\n'
                 f'thumbnails = false\nout = "{tmp_path / "o"}"\nsplit = "test"\n')
    _ok(runner.invoke(app, ["audit", "--recipe", str(r)]))
    import json
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert s["config"]["n_boot"] == 20 and s["config"]["threshold"] == 1.0


# ---- hostile inputs, second round ------------------------------------------------------------------

CFG = AuditConfig(by=("skin_group",), n_boot=50, min_n=5, thumbnails=False, threshold=0.4)


def test_compare_keeps_audits_whose_folders_share_a_name_apart(tiny_synth, tmp_path):
    """x/std and y/std were merged as one model "std": every face counted twice, no paired test."""
    run_audit(tiny_synth, [FAKE], CFG, tmp_path / "x" / "std")
    run_audit(tiny_synth, [LOGIT], CFG, tmp_path / "y" / "std")
    r = runner.invoke(app, ["report", "compare", str(tmp_path / "x" / "std"), str(tmp_path / "y" / "std"), *FAST[:6],
                            "--threshold", "0.4", "--out", str(tmp_path / "c")])
    _ok(r)
    m = pd.read_csv(tmp_path / "c" / "metrics.csv")
    faces = m[(m.grouping == "overall") & (m.group == "all faces") & (m.metric == "detection_rate")]
    n_test_faces = int(((pd.read_csv(tiny_synth / "manifest.csv").split == "test")
                        & (pd.read_csv(tiny_synth / "manifest.csv").label == 1)).sum())
    assert sorted(faces.model) == ["x/std", "y/std"] and (faces.n == n_test_faces).all()
    paired = pd.read_csv(tmp_path / "c" / "paired.csv")
    assert (paired.baseline == "x/std").all() and (paired.model == "y/std").all()


def test_compare_refuses_the_same_audit_twice(tiny_synth, tmp_path):
    run_audit(tiny_synth, [FAKE], CFG, tmp_path / "a")
    r = runner.invoke(app, ["report", "compare", str(tmp_path / "a"), str(tmp_path / "." / "a"), *FAST[:6],
                            "--out", str(tmp_path / "c")])
    _err(r, "given twice", str(tmp_path / "a"))
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("model,needles", [
    ("nan_for_some", ["python:fake_models:nan_for_some", "non-finite", "of the 216 images"]),
    ("all_nan", ["python:fake_models:all_nan", "216 non-finite", "of the 216 images"]),
    ("all_inf", ["python:fake_models:all_inf", "216 non-finite", "of the 216 images"]),
])
def test_a_model_that_returns_non_finite_scores_is_refused_naming_it_and_nothing_is_written(tiny_synth, tmp_path,
                                                                                           model, needles):
    """NaN images were dropped from the audit (faces n 73 of 90) with 0 skipped; all-NaN gave ZeroDivisionError;
    all +inf was read as a probability, with partial CSVs left behind."""
    r = runner.invoke(app, ["audit", str(tiny_synth), "-m", f"python:fake_models:{model}", *FAST,
                            "--out", str(tmp_path / "o")])
    _err(r, *needles)
    assert not list((tmp_path / "o").glob("*.csv")) if (tmp_path / "o").exists() else True


@pytest.mark.parametrize("opt,value,needles", [
    ("--std", "0,0,0", ["--std", "0,0,0", "greater than 0"]),
    ("--std", "1,nan,1", ["--std", "greater than 0"]),
    ("--mean", "0.5", ["--mean", "0.5", "three finite numbers", "R,G,B"]),
    ("--mean", "a,b,c", ["--mean", "'a,b,c'", "three numbers"]),
])
def test_bad_normalisation_values_are_refused_before_scoring(tiny_synth, tmp_path, opt, value, needles):
    """--std 0,0,0 divided by zero (NaN scores); --mean 0.5 gave torch's 'shape [1, 3, 1, 1] is invalid'."""
    r = runner.invoke(app, ["audit", str(tiny_synth), "-m", FAKE, *FAST, opt, value, "--out", str(tmp_path / "o")])
    _err(r, *needles)
    assert not (tmp_path / "o").exists()


def _with_manifest(tiny_synth, preds):
    m = pd.read_csv(tiny_synth / "manifest.csv")
    m = m[m.split == "test"].assign(image=lambda d: d.image.astype(str))
    return preds.assign(image=preds.image.astype(str)).merge(m, on="image")


@pytest.mark.parametrize("column", ["label", "skin_group"])
def test_a_predictions_column_that_contradicts_the_manifest_is_refused(tiny_synth, tmp_path, preds, column):
    """A label column turned non-faces into faces and an attribute column replaced the manifest's groups, silently."""
    p = _with_manifest(tiny_synth, preds)[["image", "score", "label", "skin_group"]]
    p.to_csv(tmp_path / "agree.csv", index=False)  # the same values as the manifest: audited as without them
    a, _ = predictions_from_csv(tmp_path / "agree.csv", tiny_synth)
    assert (a.y_true == p.label.to_numpy()).all()
    nonface = int(np.flatnonzero(p.label.to_numpy() == 0)[0])
    p.loc[nonface, column] = 1 if column == "label" else "lighter"
    p.to_csv(tmp_path / "p.csv", index=False)
    r = runner.invoke(app, ["audit", str(tiny_synth), "--predictions", str(tmp_path / "p.csv"), *FAST,
                            "--out", str(tmp_path / "o")])
    _err(r, "p.csv", f"line {nonface + 2}", repr(column), "manifest")
    assert not (tmp_path / "o").exists()  # nothing written, and no empty folder left


def test_a_group_spelled_two_ways_in_predictions_is_refused(tiny_synth, tmp_path, preds):
    """'darker' and 'Darker ' were audited as two groups, in a predictions file and in Audit.from_predictions."""
    import debias

    p = _with_manifest(tiny_synth, preds)
    p["camera"] = np.where(np.arange(len(p)) % 2, "phone", "Phone ")  # a column the manifest does not have
    p[["image", "score", "camera"]].to_csv(tmp_path / "p.csv", index=False)
    with pytest.raises(debias.DebiasError, match="column 'camera' spells one group several ways"):
        predictions_from_csv(tmp_path / "p.csv", tiny_synth)
    p["skin_group"] = p.skin_group.where(np.arange(len(p)) % 3 > 0, p.skin_group.str.capitalize() + " ")
    with pytest.raises(debias.DebiasError, match="column 'skin_group' spells one group several ways"):
        debias.Audit.from_predictions(p, groups=["skin_group"], threshold=0.5)


def test_an_audit_removes_only_its_own_files_whatever_an_old_summary_lists(tiny_synth, tmp_path):
    """A summary.json already in --out made the audit delete every file it listed (a user's thesis.docx)."""
    out = tmp_path / "o"
    out.mkdir()
    (out / "thesis.docx").write_text("years of work")
    (tmp_path / "outside.txt").write_text("not the audit's")
    listed = ["thesis.docx", "../outside.txt", str(tmp_path / "outside.txt")]
    (out / "summary.json").write_text(json.dumps({"outputs": listed}))
    _ok(runner.invoke(app, ["audit", str(tiny_synth), "-m", FAKE, *FAST, "--out", str(out)]))
    assert (out / "thesis.docx").read_text() == "years of work"
    assert (tmp_path / "outside.txt").read_text() == "not the audit's"


def _compare(tmp_path, *dirs):
    return runner.invoke(app, ["report", "compare", *map(str, dirs), *FAST[:6], "--threshold", "0.4",
                               "--out", str(tmp_path / "c")])


def test_compare_refuses_predictions_that_its_summary_does_not_describe(tiny_synth, tmp_path):
    """After a crash, new predictions.csv sat beside the old summary.json and compare used them together."""
    run_audit(tiny_synth, [FAKE], CFG, tmp_path / "a")
    run_audit(tiny_synth, [FAKE], CFG, tmp_path / "b")
    old = (tmp_path / "b" / "summary.json").read_text()
    run_audit(tiny_synth, [LOGIT], CFG, tmp_path / "b")
    (tmp_path / "b" / "summary.json").write_text(old)  # the old seal beside the new set, as a crash left them
    _err(_compare(tmp_path, tmp_path / "a", tmp_path / "b"), "predictions.csv is not the file that",
         "summary.json describes", "Re-run the audit")
    s = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert set(s["outputs_sha256"]) == set(s["outputs"]) - {"summary.json"}


def test_a_crash_while_an_audit_replaces_its_outputs_leaves_no_summary_beside_a_mixed_set(tiny_synth, tmp_path,
                                                                                        monkeypatch):
    import debias.files as files

    run_audit(tiny_synth, [FAKE], CFG, tmp_path / "a")
    real, moved = files.os.replace, []

    def killed_after_two(src, dst):
        if Path(dst).parent != tmp_path / "a":  # a file written into the staging folder
            return real(src, dst)
        if len(moved) == 2:
            raise KeyboardInterrupt  # the process dies part-way through moving the new files in
        moved.append(dst)
        return real(src, dst)

    monkeypatch.setattr(files.os, "replace", killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        run_audit(tiny_synth, [LOGIT], CFG, tmp_path / "a")
    monkeypatch.undo()
    assert not (tmp_path / "a" / "summary.json").exists()  # no seal: nothing claims the mixed folder is one audit
    assert not list((tmp_path / "a").glob(".staging-*"))


def test_an_audit_into_a_folder_another_audit_is_writing_is_refused(tiny_synth, tmp_path):
    from debias.files import exclusive

    (tmp_path / "o").mkdir()
    with exclusive(tmp_path / "o", "audit"):
        _err(runner.invoke(app, ["audit", str(tiny_synth), "-m", FAKE, *FAST, "--out", str(tmp_path / "o")]),
             "another process is writing an audit", "choose another --out")


@pytest.mark.parametrize("cmd", ["audit", "box", "compare"])
def test_an_out_that_is_a_file_is_refused_before_any_image_is_scored(tiny_synth, tmp_path, cmd):
    """--out naming a file gave a traceback, and only after every image had been scored."""
    (tmp_path / "f").write_text("a file")
    out = ["--out", str(tmp_path / "f")]
    if cmd == "audit":
        r = runner.invoke(app, ["audit", str(tiny_synth), "-m", FAKE, *FAST, *out])
    elif cmd == "box":
        r = runner.invoke(app, ["audit", str(tiny_synth), "-m", "opencv:haar-frontal-default", "--iou", "0.5", *out])
    else:
        run_audit(tiny_synth, [FAKE], CFG, tmp_path / "a")
        run_audit(tiny_synth, [LOGIT], CFG, tmp_path / "b")
        r = runner.invoke(app, ["report", "compare", str(tmp_path / "a"), str(tmp_path / "b"), *FAST[:6], *out])
    _err(r, f"{tmp_path / 'f'} is a file, not a folder")
    assert "scoring" not in r.output and "detecting" not in r.output
    r = runner.invoke(app, ["audit", str(tiny_synth), "-m", FAKE, *FAST, "--out", str(tmp_path / "f" / "sub")])
    _err(r, "cannot create the output folder", "choose a writable --out")


@pytest.mark.parametrize("model,shape", [("one_per_batch", "(1,)"), ("two_columns", "(8, 2)")])
def test_a_python_model_must_return_one_score_per_image_and_is_named_when_it_does_not(tiny_synth, tmp_path, model,
                                                                                     shape):
    """One value per batch was copied to every image (scores that depend on the batch size); a (B, 2) output was
    flattened to 2B scores and failed without naming the model."""
    spec = f"python:fake_models:{model}"
    r = runner.invoke(app, ["audit", str(tiny_synth), "-m", spec, *FAST, "--batch-size", "8",
                            "--out", str(tmp_path / "o")])
    _err(r, f"model {spec} returned shape {shape} for a batch of 8 images", "one face score per image")


def test_a_model_pt_without_arch_is_named_with_what_to_do(tmp_path):
    import torch

    (tmp_path / "run").mkdir()
    torch.save({"conv.weight": torch.zeros(2, 3)}, tmp_path / "run" / "model.pt")  # a bare state_dict
    (tmp_path / "manifest.csv").write_text("image,label,split,x\n0,1,test,a\n")
    r = runner.invoke(app, ["audit", str(tmp_path), "-m", f"run:{tmp_path / 'run'}", "--by", "x",
                            "--out", str(tmp_path / "o")])
    _err(r, "model.pt has no 'arch' and 'state_dict' entries", "conv.weight", "torchscript:FILE")


@pytest.mark.parametrize("gate", ["detection_rate_gap>5", "max_min_gap>1", "miss_rate_gap>1.5"])
def test_a_fail_on_bound_no_gap_can_exceed_is_refused_before_scoring(tiny_synth, tmp_path, gate):
    """Gaps are fractions: 'detection_rate_gap>5' could never fail, and the gate said "passed"."""
    r = runner.invoke(app, ["audit", str(tiny_synth), "-m", FAKE, *FAST, "--fail-on", gate,
                            "--out", str(tmp_path / "o")])
    _err(r, f"--fail-on {gate!r}", "between 0 and 1", "5 points is 0.05")
    assert "scoring" not in r.output


@pytest.mark.parametrize("gate", ["detection_rate_gap>0", "max_min_gap>0"])
def test_a_gate_that_could_judge_no_group_says_so_and_does_not_pass(tiny_synth, tmp_path, gate):
    """With every group under --min-n faces nothing was judged, and the gate said "passed" (exit 0)."""
    r = runner.invoke(app, ["audit", str(tiny_synth), "-m", FAKE, "--by", "skin_group", "--n-boot", "50",
                            "--min-n", "1000", "--no-thumbnails", "--threshold", "0.35", "--fail-on", gate,
                            "--out", str(tmp_path / "o")])
    assert r.exit_code == 4, r.output
    assert "fairness gate not judged" in r.output and "passed" not in r.output


def test_compare_pairs_faces_by_image_id_not_by_row_number(tiny_synth, tmp_path):
    """Two audits that number the same images differently (a hand-made predictions.csv) were paired row by row:
    each face compared with another face."""
    run_audit(tiny_synth, [FAKE], CFG, tmp_path / "a")
    p = pd.read_csv(tmp_path / "a" / "predictions.csv")
    (tmp_path / "b").mkdir()
    p.assign(row=p.row.to_numpy()[::-1], model="b").to_csv(tmp_path / "b" / "predictions.csv", index=False)
    both = compare_audits([tmp_path / "a", tmp_path / "b"])
    a, b = (both[both.model == m].set_index("row").sort_index() for m in ("a", "b"))
    assert (a.image == b.image).all() and np.allclose(a.y_score, b.y_score)  # the same face, the same score


def test_an_audit_never_overwrites_its_own_predictions_file(tiny_synth, tmp_path, preds):
    """`--predictions dd/predictions.csv --out dd` replaced the user's file with the audit's own output."""
    (tmp_path / "dd").mkdir()
    preds.to_csv(tmp_path / "dd" / "predictions.csv", index=False)
    before = (tmp_path / "dd" / "predictions.csv").read_bytes()
    r = runner.invoke(app, ["audit", str(tiny_synth), "--predictions", str(tmp_path / "dd" / "predictions.csv"),
                            *FAST, "--out", str(tmp_path / "dd")])
    _err(r, "predictions.csv", "choose another --out")
    assert (tmp_path / "dd" / "predictions.csv").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "dd").iterdir()) == ["predictions.csv"]


def test_a_failed_audit_leaves_no_empty_output_folder(tiny_synth, tmp_path, preds):
    preds.assign(score="x").to_csv(tmp_path / "p.csv", index=False)
    r = runner.invoke(app, ["audit", str(tiny_synth), "--predictions", str(tmp_path / "p.csv"), *FAST,
                            "--out", str(tmp_path / "new" / "audit")])
    _err(r, "p.csv")
    assert not (tmp_path / "new").exists()
    (tmp_path / "kept").mkdir()  # a folder that was there before stays
    runner.invoke(app, ["audit", str(tiny_synth), "--predictions", str(tmp_path / "p.csv"), *FAST,
                        "--out", str(tmp_path / "kept")])
    assert (tmp_path / "kept").is_dir()


def test_a_grouping_column_of_many_levels_is_refused_not_given_intervals_of_zero_width(tiny_synth, tmp_path, preds):
    """Audited by skin_group and a yaw column of many values, every finest cell held a face or two; the stratified
    bootstrap resampled each cell from itself and the gap's interval shrank to a point (58.3 to 58.3), failing the
    gate on noise."""
    m = pd.read_csv(tiny_synth / "manifest.csv")
    with_yaw = preds.merge(m[["image", "yaw"]], on="image") if "yaw" in m.columns else preds.assign(
        yaw=np.arange(len(preds)) % 40)
    with_yaw.to_csv(tmp_path / "p.csv", index=False)
    r = runner.invoke(app, ["audit", str(tiny_synth), "--predictions", str(tmp_path / "p.csv"), "--by",
                            "skin_group,yaw", "--n-boot", "50", "--no-thumbnails", "--out", str(tmp_path / "o")])
    _err(r, "'yaw' has", "levels among the audited faces", "Bin it")


def test_compare_keeps_the_threshold_each_audit_used(tiny_synth, tmp_path, preds):
    """An audit run at --threshold 0.5 reappeared in `report compare` at a threshold chosen again for a 1%
    false-positive rate, with other detection rates and gaps than its own audit's."""
    preds.to_csv(tmp_path / "p.csv", index=False)
    for name, opt in (("a", ["--threshold", "0.5"]), ("b", [])):
        _ok(runner.invoke(app, ["audit", str(tiny_synth), "--predictions", str(tmp_path / "p.csv"), *FAST, *opt,
                                "--out", str(tmp_path / name)]))
    own = {d: json.loads((tmp_path / d / "summary.json").read_text())["thresholds"] for d in ("a", "b")}
    _ok(runner.invoke(app, ["report", "compare", str(tmp_path / "a"), str(tmp_path / "b"), *FAST[:6],
                            "--out", str(tmp_path / "c")]))
    got = json.loads((tmp_path / "c" / "summary.json").read_text())["thresholds"]
    assert got == {"a": own["a"]["p"], "b": own["b"]["p"]} and own["a"]["p"] == 0.5 != own["b"]["p"]
    _ok(runner.invoke(app, ["report", "compare", str(tmp_path / "a"), str(tmp_path / "b"), *FAST[:6],
                            "--target-fpr", "0.01", "--out", str(tmp_path / "d")]))
    again = json.loads((tmp_path / "d" / "summary.json").read_text())["thresholds"]
    assert again["a"] == again["b"] == pytest.approx(own["b"]["p"], abs=1e-5)  # asked for: the same rule for both


def test_a_comparison_of_equal_gaps_says_they_are_equal():
    """It said "widens the pose gap from 16.7 to 16.7 points (difference +0.0)"."""
    from types import SimpleNamespace

    from debias.report.text import headline

    paired = pd.DataFrame([dict(statistic="max_min_gap", model="b", baseline="a", grouping="pose",
                                model_value=0.167, baseline_value=0.167, difference=0.0, ci_low=0.0, ci_high=0.0)])
    lines = headline(SimpleNamespace(by=(), summary={}, disparities=pd.DataFrame(), paired=paired))
    assert lines == ["b leaves the pose gap at 16.7 points, as a (difference +0.0, 95% CI +0.0 to +0.0): within noise."]

