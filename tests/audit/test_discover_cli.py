"""`debias audit --discover K` and `Audit.discover`, end to end on a tiny set."""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from debias.cli import app

runner = CliRunner()
FAKE = "python:fake_models:centre_brightness"
FAST = ["--by", "skin_group", "--min-n", "5", "--n-boot", "50"]


def _ok(r):
    assert r.exit_code == 0, r.output
    return r


@pytest.fixture(scope="module")
def latent(tiny_synth, tmp_path_factory):
    """A DB-VAE of the tiny set's training faces, one short epoch."""
    from debias.config import TrainConfig
    from debias.train import fit

    out = tmp_path_factory.mktemp("latent") / "run"
    fit(tiny_synth, TrainConfig(method="vae-uniform", epochs=1, compile=False, device="cpu", latent_dim=8), out)
    return out


@pytest.fixture(scope="module")
def audits(tiny_synth, latent, tmp_path_factory):
    root = tmp_path_factory.mktemp("audits")
    _ok(runner.invoke(app, ["audit", str(tiny_synth), "-m", FAKE, *FAST, "--out", str(root / "plain")]))
    r = _ok(runner.invoke(app, ["audit", str(tiny_synth), "-m", FAKE, *FAST, "--out", str(root / "found"),
                                "--discover", "4", "--latent-run", str(latent)]))
    return root, r.output


def test_the_audit_without_discover_is_unchanged_by_it(audits):
    root, _ = audits
    plain, found = root / "plain", root / "found"
    for name in ("metrics.csv", "disparities.csv", "model_card.json"):
        assert (plain / name).read_bytes() == (found / name).read_bytes(), name
    p, f = pd.read_csv(plain / "predictions.csv"), pd.read_csv(found / "predictions.csv")
    assert list(f.columns) == [*p.columns, "slice", "rarity", "held_out"]
    pd.testing.assert_frame_equal(p, f[p.columns])
    assert not (plain / "slices.csv").exists() and "Discovered slices" not in (plain / "report.html").read_text()
    assert "discovery" not in json.loads((plain / "summary.json").read_text())


def test_discover_writes_slices_rarity_and_a_report_section(audits, tiny_synth):
    root, output = audits
    out = root / "found"
    pred, slices = pd.read_csv(out / "predictions.csv"), pd.read_csv(out / "slices.csv")
    faces = pred[pred["y_true"] == 1]
    assert faces["slice"].notna().all() and pred.loc[pred["y_true"] == 0, "slice"].isna().all()
    assert faces["rarity"].between(0, 1).all()
    # each slice's numbers recomputed from predictions.csv by hand
    by_hand = faces.groupby("slice").agg(n=("y_pred", "size"), rarity=("rarity", "mean"))
    held_out = faces["held_out"].astype(bool)  # empty on the non-faces, so read back as objects
    held = faces[held_out].groupby("slice").agg(n_held_out=("y_pred", "size"), detected=("y_pred", "sum"))
    fit = faces[~held_out].groupby("slice")["y_pred"].mean()
    s = slices.set_index("slice")
    assert list(s.index) == sorted(by_hand.index) and len(s) <= 4
    np.testing.assert_array_equal(s["n"], by_hand.loc[s.index, "n"])
    held = held.reindex(s.index, fill_value=0)
    np.testing.assert_array_equal(s["n_held_out"], held["n_held_out"])
    np.testing.assert_array_equal(s["detected"], held["detected"])
    np.testing.assert_allclose(s["rarity"], by_hand.loc[s.index, "rarity"], atol=1e-4)
    np.testing.assert_allclose(s["fit_rate"], fit.reindex(s.index), atol=1e-4)
    assert s["fit_rate"].dropna().is_monotonic_increasing  # worst first, as found on the fitting half
    html = (out / "report.html").read_text()
    assert "Discovered slices" in html and "detection by rarity" in html
    assert re.search(r"slice \d+ of \d+ \(\d+ faces?\) is the worst found|too few to name|no slice stands out", html)
    summary = json.loads((out / "summary.json").read_text())["discovery"]
    assert "slices.csv" in json.loads((out / "summary.json").read_text())["outputs"]
    assert summary["findings"][0][:40] in " ".join(output.split())
    assert len(pd.read_csv(out / "rarity.csv")) == 10
    assert summary["latent"].endswith(f"training faces of {tiny_synth}")  # which faces rarity is measured among


def test_discover_on_a_predictions_file_with_the_fitted_default_latent(tiny_synth, tmp_path, monkeypatch, audits):
    import shutil

    import debias.discovery

    data = tmp_path / "data"
    shutil.copytree(tiny_synth, data)
    monkeypatch.setattr(debias.discovery, "IMAGES_SEEN", 600)  # one epoch of the tiny set
    pred = pd.read_csv(audits[0] / "plain" / "predictions.csv")[["image", "y_score"]].rename(
        columns={"y_score": "score"})
    pred.to_csv(tmp_path / "p.csv", index=False)
    r = _ok(runner.invoke(app, ["audit", str(data), "--predictions", str(tmp_path / "p.csv"), *FAST,
                                "--discover", "3", "--out", str(tmp_path / "a"), "--no-thumbnails"]))
    assert "a DB-VAE fitted on the" in r.output
    cached = list((data / ".debias").glob("latent-*/model.pt"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    _ok(runner.invoke(app, ["audit", str(data), "--predictions", str(tmp_path / "p.csv"), *FAST,
                            "--discover", "3", "--out", str(tmp_path / "b"), "--no-thumbnails"]))
    assert cached[0].stat().st_mtime_ns == stamp  # the second audit reuses the fitted latent
    a, b = pd.read_csv(tmp_path / "a" / "slices.csv"), pd.read_csv(tmp_path / "b" / "slices.csv")
    pd.testing.assert_frame_equal(a, b)  # the same seed, the same slices
    assert "Discovered slices" in (tmp_path / "a" / "report.html").read_text()


@pytest.mark.parametrize("args, needle", [
    (["--discover", "1"], "number of slices from 2 to 50"),
    (["--latent-run", "somewhere"], "which --discover 0 leaves off"),
    (["--discover", "4", "--latent-run", "no-such-run"], "is no folder"),
    (["--discover", "4", "--shard", "0/2"], "leave out --shard"),
])
def test_bad_discover_options_are_refused_before_scoring(tiny_synth, tmp_path, args, needle):
    r = runner.invoke(app, ["audit", str(tiny_synth), "-m", FAKE, *FAST, "--out", str(tmp_path / "a"), *args])
    assert r.exit_code == 2, r.output
    assert needle in " ".join(r.output.split()) and "Traceback" not in r.output
    assert not (tmp_path / "a" / "predictions.csv").exists()


def test_a_set_without_training_images_needs_a_latent_run_and_is_told_before_scoring(tiny_synth, tmp_path):
    import shutil

    data = tmp_path / "test-only"
    shutil.copytree(tiny_synth, data)
    m = pd.read_csv(data / "manifest.csv")
    m[m["split"] == "test"].to_csv(data / "manifest.csv", index=False)
    r = runner.invoke(app, ["audit", str(data), "-m", FAKE, *FAST, "--out", str(tmp_path / "a"), "--discover", "3"])
    assert r.exit_code == 2 and "no training images" in " ".join(r.output.split()) and "--latent-run RUN" in r.output
    assert "scoring" not in r.output


def test_a_classifier_run_is_refused_as_a_latent(tiny_synth, tmp_path):
    from debias.config import TrainConfig
    from debias.train import fit

    fit(tiny_synth, TrainConfig(method="standard", epochs=1, compile=False, device="cpu"), tmp_path / "std")
    r = runner.invoke(app, ["audit", str(tiny_synth), "-m", FAKE, *FAST, "--out", str(tmp_path / "a"),
                            "--discover", "3", "--latent-run", str(tmp_path / "std")])
    assert r.exit_code == 2 and "needs a DB-VAE" in " ".join(r.output.split())


def test_audit_discover_in_python_and_its_plots(tiny_synth, latent, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import debias

    audit = debias.Audit.from_models(tiny_synth, [FAKE], by="skin_group", n_boot=50, min_n=5)
    with pytest.raises(debias.DebiasError, match="discover"):
        audit.plot.slices()
    slices = audit.discover(3, latent_run=latent, random_state=1)
    assert slices["slice"].tolist() == list(range(1, len(slices) + 1))
    assert audit.plot.slices().axes and audit.plot.rarity().axes
    audit.save(tmp_path / "a", thumbnails=False)
    assert (tmp_path / "a" / "slices.csv").exists()


def test_an_audit_of_predictions_alone_cannot_discover_and_says_why():
    import debias

    df = pd.DataFrame({"label": [1, 0] * 20, "score": [0.9, 0.1] * 20, "skin_group": ["a"] * 20 + ["b"] * 20})
    audit = debias.Audit.from_predictions(df, min_n=1, n_boot=10)
    with pytest.raises(debias.DebiasError, match="built from predictions alone"):
        audit.discover(3)


def test_a_recipe_names_the_latent_run_as_a_string(tiny_synth, latent, tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'data = "{tiny_synth}"\nmodel = ["{FAKE}"]\nout = "{tmp_path / "a"}"\nby = "skin_group"\n'
                      f'min_n = 5\nn_boot = 50\ndiscover = 3\nlatent_run = "{latent}"\nthumbnails = false\n')
    r = runner.invoke(app, ["audit", "--recipe", str(recipe), "--allow-code"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "a" / "slices.csv").exists()


def test_a_test_only_set_measures_rarity_among_the_latent_runs_training_faces(tiny_synth, latent, tmp_path):
    import shutil

    data = tmp_path / "test-only"
    shutil.copytree(tiny_synth, data)
    m = pd.read_csv(data / "manifest.csv")
    m.loc[m["split"] == "train", "split"] = "val"  # the images stay where they are; none is a training image now
    m.to_csv(data / "manifest.csv", index=False)
    _ok(runner.invoke(app, ["audit", str(data), "-m", FAKE, *FAST, "--out", str(tmp_path / "a"), "--discover", "3",
                            "--latent-run", str(latent), "--no-thumbnails"]))
    assert pd.read_csv(tmp_path / "a" / "predictions.csv").query("y_true == 1")["rarity"].between(0, 1).all()


def test_an_unlabelled_set_is_told_it_needs_one_column_to_group_by(tiny_synth, latent, tmp_path):
    import shutil

    data = tmp_path / "unlabelled"
    shutil.copytree(tiny_synth, data)
    pd.read_csv(data / "manifest.csv")[["image", "label", "split"]].to_csv(data / "manifest.csv", index=False)
    r = runner.invoke(app, ["audit", str(data), "-m", FAKE, "--out", str(tmp_path / "a"), "--discover", "3"])
    text = " ".join(r.output.split())
    assert r.exit_code == 2 and "site or camera" in text and "columns there: image" not in text
    r = runner.invoke(app, ["audit", str(data), "-m", FAKE, "--by", "split", "--out", str(tmp_path / "a")])
    assert r.exit_code == 2 and "'split' not in" in " ".join(r.output.split())
    assert not (tmp_path / "a" / "predictions.csv").exists()


def test_a_predictions_file_with_generated_rows_is_refused(tiny_synth, audits, tmp_path):
    pred = pd.read_csv(audits[0] / "plain" / "predictions.csv")[["image", "y_score"]].rename(
        columns={"y_score": "score"})
    pred["generated"] = False
    pred.loc[4, "generated"] = True
    pred.to_csv(tmp_path / "p.csv", index=False)
    r = runner.invoke(app, ["audit", str(tiny_synth), "--predictions", str(tmp_path / "p.csv"), *FAST,
                            "--out", str(tmp_path / "a")])
    assert r.exit_code == 2 and "generated face" in " ".join(r.output.split()) and "line 6" in r.output


def test_the_cached_latent_is_not_reused_for_new_images_under_the_same_manifest(tiny_synth, tmp_path):
    """A re-rendered set can keep its manifest byte for byte (the synth manifest holds no pixel statistics): keyed by
    the manifest alone, the latent fitted on the old images was reused for the new ones."""
    import shutil

    import numpy as np

    from debias.discovery import data_version

    data = tmp_path / "data"
    shutil.copytree(tiny_synth, data)
    before = data_version(data)
    images = np.load(data / "images.npy")
    np.save(data / "images.npy", 255 - images)  # other pixels, the same shape and manifest
    assert data_version(data) != before
    assert data_version(data) == data_version(data)


def test_overwriting_a_dataset_removes_what_was_computed_from_the_old_one(tmp_path):
    from debias.files import prepare_dataset_dir

    data = tmp_path / "d"
    (data / ".debias" / "latent-x-0").mkdir(parents=True)
    (data / "manifest.csv").write_text("image,label,split\n")
    prepare_dataset_dir(data, overwrite=True)
    assert not (data / ".debias").exists() and not (data / "manifest.csv").exists()


def test_a_latent_run_of_another_image_size_is_refused_with_what_to_do(tiny_synth, latent, tmp_path):
    """A packed 32-pixel set under a 64-pixel DB-VAE gave the convolutional encoder's shape error (or, with a
    ResNet, latents of the wrong images without complaint)."""
    import shutil

    small = tmp_path / "small"
    small.mkdir()
    shutil.copy(tiny_synth / "manifest.csv", small / "manifest.csv")
    np.save(small / "images.npy", np.load(tiny_synth / "images.npy")[:, ::2, ::2])
    r = runner.invoke(app, ["audit", str(small), "-m", FAKE, *FAST, "--out", str(tmp_path / "a"), "--discover", "3",
                            "--latent-run", str(latent)])
    assert r.exit_code == 2, r.output
    text = " ".join(r.output.split())
    assert "reads 64 x 64 images" in text and "holds 32 x 32" in text and "--size 64" in text


def test_the_latent_analysis_refuses_a_dataset_the_run_was_not_trained_on(tiny_synth, latent, tmp_path):
    """Its sampling weights name faces by image id, a row number in any packed set: given a copy of the data, the
    weights of one set were read as those of the other's faces."""
    import shutil

    other = tmp_path / "other"
    shutil.copytree(tiny_synth, other)
    r = runner.invoke(app, ["latent", str(latent), str(other), "--out", str(tmp_path / "lat")])
    text = " ".join(r.output.split())
    assert r.exit_code == 2 and f"was trained on {tiny_synth}, not {other}" in text, r.output
