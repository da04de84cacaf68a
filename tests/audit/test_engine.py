from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from debias.audit.adapters import load_adapter
from debias.report.outputs import run_audit
from debias.cli import app
from debias.config import AuditConfig

runner = CliRunner()
FAKE = "python:fake_models:centre_brightness"


@pytest.fixture()
def folder_set(tmp_path):
    """A file dataset: 40 faces in two groups with HTML in a group and a file name, 20 non-faces, 1 corrupt."""
    root = tmp_path / "set"
    (root / "img").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(61):
        name = f"img/{i}.png" if i != 7 else "img/<b>bold.png"
        face = i < 40
        group = "<script>alert(1)</script>" if face and i % 2 else ("plain" if face else None)
        v = int(rng.integers(140, 250) if face and i % 2 == 0 else rng.integers(60, 200))
        if i == 60:
            (root / name).write_bytes(b"not a png at all")
        else:
            Image.fromarray(np.full((48, 48, 3), v if face else int(rng.integers(0, 120)), np.uint8)).save(root / name)
        rows.append({"image": name, "label": int(face), "split": "test", "skin_group": group})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root


def test_corrupt_image_skipped_listed_and_html_escaped(folder_set, tmp_path):
    cfg = AuditConfig(by=("skin_group",), n_boot=50, min_n=5)
    res = run_audit(folder_set, [FAKE], cfg, tmp_path / "out")
    assert len(res.skipped) == 1 and res.skipped.image.item() == "img/60.png"
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["skipped_images"]["count"] == 1
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>bold" not in html
    assert "http://" not in html and "https://" not in html  # self-contained
    assert summary["manifest_sha256"] and len(summary["manifest_sha256"]) == 64
    for f in ("predictions.csv", "metrics.csv", "disparities.csv"):
        assert (tmp_path / "out" / f).exists()


def test_missing_attribute_column_names_it_and_lists_columns(folder_set, tmp_path):
    r = runner.invoke(app, ["audit", str(folder_set), "-m", FAKE, "--by", "ethnicity", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert "'ethnicity' not in" in r.output and "skin_group" in r.output and not (tmp_path / "o").exists()


def test_torchscript_wrong_shape_and_unloadable(tmp_path):
    class Bad(torch.nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3))  # (B, 3): not a score per image

    torch.jit.script(Bad()).save(str(tmp_path / "bad.pt"))
    a = load_adapter(f"torchscript:{tmp_path / 'bad.pt'}", size=16)
    with pytest.raises(ValueError, match=r"bad.pt returned shape \(2, 3\) for a batch of 2"):
        a.score([np.zeros((16, 16, 3), np.uint8)] * 2)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.pt could not be loaded"):
        load_adapter(f"torchscript:{tmp_path / 'junk.pt'}")


def test_onnx_without_onnxruntime_gives_install_hint(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # None in sys.modules makes the import raise ImportError
    with pytest.raises(ImportError, match=r"pip install -e '\.\[onnx\]'"):
        load_adapter(f"onnx:{tmp_path / 'm.onnx'}")


def test_fail_on_gate_exit_code(tiny_synth, tmp_path):
    args = ["audit", str(tiny_synth), "-m", FAKE, "--by", "skin_group", "--min-n", "5", "--n-boot", "100",
            "--no-thumbnails", "--threshold", "0.35", "--out", str(tmp_path / "o")]
    r = runner.invoke(app, args + ["--fail-on", "detection_rate_gap>0.0"])
    # centre brightness detects lighter faces better: the darker gap's lower bound is above 0
    assert r.exit_code == 3, r.output
    assert "darker" in r.output and "fairness gate failed" in r.output
    r = runner.invoke(app, args + ["--fail-on", "detection_rate_gap>0.99"])
    assert r.exit_code == 0 and "fairness gate passed" in r.output
    r = runner.invoke(app, args + ["--fail-on", "nonsense"])
    assert r.exit_code == 2


def test_predictions_csv_audit_matches_model_audit(tiny_synth, tmp_path):
    cfg = AuditConfig(by=("skin_group",), n_boot=50, min_n=5, thumbnails=False)
    a = run_audit(tiny_synth, [FAKE], cfg, tmp_path / "a")
    p = a.predictions[["image", "y_score"]].rename(columns={"y_score": "score"})
    p.to_csv(tmp_path / "p.csv", index=False)
    b = run_audit(tiny_synth, [], cfg, tmp_path / "b", predictions_csv=tmp_path / "p.csv")
    ma = a.metrics.set_index(["grouping", "group", "metric"])["value"]
    mb = b.metrics.set_index(["grouping", "group", "metric"])["value"]
    assert np.allclose(ma.to_numpy(float), mb.reindex(ma.index).to_numpy(float), equal_nan=True)


def test_shards_merge_to_the_full_audit(tiny_synth, tmp_path):
    # two models, the baseline (first given) not first in alphabetical order: merging keeps it the baseline
    models = ["-m", "python:fake_models:centre_logit", "-m", FAKE]
    full = runner.invoke(app, ["audit", str(tiny_synth), *models, "--by", "skin_group", "--min-n", "5",
                               "--n-boot", "50", "--no-thumbnails", "--out", str(tmp_path / "full")])
    assert full.exit_code == 0, full.output
    for k in range(3):
        r = runner.invoke(app, ["audit", str(tiny_synth), *models, "--shard", f"{k}/3", "--out", str(tmp_path / f"s{k}")])
        assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["report", "merge", *(str(tmp_path / f"s{k}") for k in range(3)), "--by", "skin_group",
                            "--min-n", "5", "--n-boot", "50", "--out", str(tmp_path / "merged")])
    assert r.exit_code == 0, r.output
    for f in ("metrics.csv", "paired.csv", "predictions.csv"):
        a = pd.read_csv(tmp_path / "full" / f)
        b = pd.read_csv(tmp_path / "merged" / f)
        pd.testing.assert_frame_equal(a, b, obj=f)
    assert pd.read_csv(tmp_path / "full" / "paired.csv").baseline.eq("centre_logit").all()


def test_compare_runs_mcnemar_by_hand(tiny_synth, tmp_path):
    cfg = AuditConfig(by=("skin_group",), n_boot=50, min_n=5, thumbnails=False, threshold=0.3)
    run_audit(tiny_synth, [FAKE], cfg, tmp_path / "a")
    p = pd.read_csv(tmp_path / "a" / "predictions.csv")
    p["y_score"] = np.sqrt(p["y_score"])  # a second 'model' on the same images
    (tmp_path / "b").mkdir()
    p.to_csv(tmp_path / "b" / "predictions.csv", index=False)
    r = runner.invoke(app, ["report", "compare", str(tmp_path / "a"), str(tmp_path / "b"), "--by", "skin_group",
                            "--threshold", "0.3", "--min-n", "5", "--n-boot", "50", "--out", str(tmp_path / "c")])
    assert r.exit_code == 0, r.output
    paired = pd.read_csv(tmp_path / "c" / "paired.csv")
    mc = paired[paired.test == "McNemar exact"].iloc[0]
    a = pd.read_csv(tmp_path / "a" / "predictions.csv")
    faces = a[a.y_true == 1]
    ha, hb = faces.y_score >= 0.3, np.sqrt(faces.y_score) >= 0.3
    n10, n01 = int((ha & ~hb).sum()), int((~ha & hb).sum())  # discordant pairs, counted by hand
    from scipy.stats import binomtest

    pv = binomtest(min(n10, n01), n10 + n01, 0.5).pvalue if n10 + n01 else 1.0  # exact McNemar, independently
    assert mc.p_value == pytest.approx(pv) and f"{n10} faces only a detects, {n01} only b" in mc.note


def test_real_ppb_sample_with_haar_runs_and_flags_all_cells(tmp_path, ppb_sample):
    r = runner.invoke(app, ["data", "import", "folder", "--faces", str(ppb_sample), "--csv",
                            str(ppb_sample / "labels.csv"), "--out", str(tmp_path / "ppb")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["audit", str(tmp_path / "ppb"), "-m", "opencv:haar-frontal-default", "--by",
                            "skin_group,gender", "--out", str(tmp_path / "audit")])
    assert r.exit_code == 0, r.output
    m = pd.read_csv(tmp_path / "audit" / "metrics.csv")
    cells = m[(m.grouping == "skin_group x gender") & (m.metric == "detection_rate")]
    assert len(cells) == 4 and (cells.flag == "too few to judge").all() and (cells.n == 5).all()
    pred = pd.read_csv(tmp_path / "audit" / "predictions.csv")
    # the resolution confound of this sample is visible in the covariates
    w = pred.groupby("skin_group").width.median()
    assert w["lighter"] < 80 and w["darker"] > 150


def test_report_renders_in_headless_chromium(tiny_synth, tmp_path):
    import subprocess

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("chromium is not installed")
    cfg = AuditConfig(by=("skin_group", "pose"), n_boot=50, min_n=5)
    run_audit(tiny_synth, [FAKE], cfg, tmp_path / "out")
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2000", f"--screenshot={shot}",
                    (tmp_path / "out" / "report.html").as_uri()], capture_output=True, timeout=120)
    img = np.asarray(Image.open(shot).convert("L"))
    assert img.shape == (2000, 1200)
    assert img.std() > 20  # the page drew text and figures, not a blank screen


def test_recipe_fills_options_and_command_line_wins(tiny_synth, tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'data = "{tiny_synth}"\nmodel = ["{FAKE}"]\nby = "pose"\nout = "{tmp_path / "o"}"\n'
                      'min_n = 5\nn_boot = 40\nthumbnails = false\n')
    r = runner.invoke(app, ["audit", "--recipe", str(recipe), "--by", "skin_group", "--allow-code"])
    assert r.exit_code == 0, r.output
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert s["config"]["by"] == ["skin_group"] and s["config"]["n_boot"] == 40 and s["config"]["min_n"] == 5
    recipe.write_text('data = "x"\ncolour = "blue"\n')
    r = runner.invoke(app, ["audit", "--recipe", str(recipe)])
    assert r.exit_code == 2 and "unknown key(s) colour" in " ".join(r.output.split())


def test_onnx_export_and_audit_match_the_run(tiny_synth, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from debias.config import TrainConfig
    from debias.train import fit

    fit(tiny_synth, TrainConfig(method="dbvae", recipe="paper", epochs=1, width=4, latent_dim=8, max_train=128,
                                compile=False), tmp_path / "run")
    r = runner.invoke(app, ["export", str(tmp_path / "run"), "--onnx", str(tmp_path / "m.onnx"),
                            "--torchscript", str(tmp_path / "m.pt")])
    assert r.exit_code == 0, r.output
    imgs = [np.random.default_rng(i).integers(0, 255, (64, 64, 3), dtype=np.uint8) for i in range(5)]
    ref = load_adapter(f"run:{tmp_path / 'run'}").score(imgs)
    for spec in (f"onnx:{tmp_path / 'm.onnx'}", f"torchscript:{tmp_path / 'm.pt'}"):
        assert np.allclose(load_adapter(spec).score(imgs), ref, atol=1e-5), spec


def test_torchrun_audit_scores_shards_and_rank0_runs_the_statistics(tiny_synth, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    models = ["-m", "python:fake_models:centre_logit", "-m", FAKE]
    opts = ["--by", "skin_group", "--min-n", "5", "--n-boot", "50", "--no-thumbnails", "--device", "cpu"]
    full = runner.invoke(app, ["audit", str(tiny_synth), *models, *opts, "--out", str(tmp_path / "full")])
    assert full.exit_code == 0, full.output
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    here = str(Path(__file__).parent)  # fake_models
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", "-m", "debias", "audit", str(tiny_synth), *models,
                        *opts, "--out", str(tmp_path / "ddp")], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "2 processes scored 2 shards" in r.stderr
    for f in ("metrics.csv", "paired.csv", "predictions.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "full" / f), pd.read_csv(tmp_path / "ddp" / f), obj=f)


def test_model_card_holds_metrics_csv_in_the_toolkits_shape(tiny_synth, tmp_path):
    import json

    cfg = AuditConfig(by=("skin_group", "pose"), n_boot=20, min_n=5, thumbnails=False)
    run_audit(tiny_synth, [FAKE], cfg, tmp_path)
    card = json.loads((tmp_path / "model_card.json").read_text())["model_cards"][0]
    assert card["model_details"]["name"] == "centre_brightness"
    pm = {(e["type"], e["slice"]): e for e in card["quantitative_analysis"]["performance_metrics"]}
    m = pd.read_csv(tmp_path / "metrics.csv")
    r = m[(m.grouping == "skin_group x pose") & (m.group == "darker / profile") & (m.metric == "detection_rate")].iloc[0]
    e = pm[("detection_rate", "skin_group=darker, pose=profile")]
    assert float(e["value"]) == pytest.approx(r.value, rel=1e-5)
    assert float(e["confidence_interval"]["lower_bound"]) == pytest.approx(r.ci_low, rel=1e-5)
    assert float(e["confidence_interval"]["upper_bound"]) == pytest.approx(r.ci_high, rel=1e-5)
    fpr = m[m.metric == "false_positive_rate"].iloc[0]
    assert float(pm[("false_positive_rate", "overall (non-faces)")]["value"]) == pytest.approx(fpr.value, rel=1e-5)
    judged = m[(m.flag.fillna("") != "too few to judge") & m.value.notna() & (m.metric != "accuracy")]
    assert len(pm) == len(judged)


def test_every_shipped_recipe_reads_with_the_audit_options():
    from pathlib import Path

    from debias.cli import RECIPE_KEYS
    from debias.config import read_recipe

    recipes = sorted((Path(__file__).resolve().parents[2] / "audits").glob("*.toml"))
    assert len(recipes) >= 5
    for r in recipes:
        v = read_recipe(r, RECIPE_KEYS)
        assert v["data"] and v["model"] and v["out"], r.name


def _mean_onnx(path, shape):
    """An ONNX 'detector' whose score is each image's mean value, exported with the input shape ``shape``."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    node = helper.make_node("ReduceMean", ["x"], ["y"], axes=[1, 2, 3], keepdims=0)
    graph = helper.make_graph([node], "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape[:1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_an_onnx_model_with_a_fixed_batch_size_scores_every_image(tmp_path):
    """A model exported for batches of 1 failed with onnxruntime's InvalidArgument traceback on a batch of 5."""
    _mean_onnx(tmp_path / "m.onnx", [1, 3, 16, 16])
    imgs = [np.full((16, 16, 3), 51 * i, np.uint8) for i in range(5)]
    scores = load_adapter(f"onnx:{tmp_path / 'm.onnx'}", size=16).score(imgs)
    assert np.allclose(scores, [0.0, 0.2, 0.4, 0.6, 0.8])  # 51 i / 255, by hand


def test_an_onnx_model_of_another_fixed_image_size_is_named_before_scoring(tmp_path):
    from debias.errors import DebiasError

    _mean_onnx(tmp_path / "m.onnx", [1, 3, 112, 112])
    with pytest.raises(DebiasError, match=r"m.onnx takes inputs of shape \(1, 3, 112, 112\), not 64 x 64 images; "
                                          r"pass `size` 112"):
        load_adapter(f"onnx:{tmp_path / 'm.onnx'}", size=64)
