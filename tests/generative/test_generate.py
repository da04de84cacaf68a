"""`debias generate` end to end on a tiny set: the dataset it writes, the rarity draw, the refusals, and training that
mixes its faces into each batch by a share checked by counting."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from debias.cli import app
from debias.config import GenerateConfig, TrainConfig
from debias.data.manifest import ManifestError, read_manifest
from debias.errors import DebiasError
from debias.generative import generate
from debias.generative.rarity import draw_by_rarity
from debias.sampling import MixedBatches
from debias.train import TrainingError, fit

TINY = dict(epochs=1, width=4, nz=8, batch_size=32, n_quality=100, device="cpu")
FAST = dict(epochs=2, batch_size=32, width=4, latent_dim=8, max_train=256, compile=False, device="cpu")


def _text(r) -> str:
    return " ".join(r.output.split())


@pytest.fixture(scope="module")
def latent_run(tiny_synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "dbvae"
    fit(tiny_synth, TrainConfig(method="dbvae", recipe="paper", **FAST), out)
    return out


@pytest.fixture(scope="module")
def gen(tiny_synth, tmp_path_factory):
    """40 DCGAN faces drawn uniformly (no latent run), written by the command line."""
    out = tmp_path_factory.mktemp("gen") / "gen"
    r = CliRunner().invoke(app, ["generate", str(tiny_synth), "--out", str(out), "--n", "40", "--epochs", "1",
                                 "--width", "4", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "drawn uniformly" in _text(r) and "probe AUC" in _text(r)
    return out


def test_a_generated_dataset_passes_validation_and_marks_every_face_generated(gen):
    m = read_manifest(gen)  # the validation every reader applies
    assert len(m) == 40 and (m["generated"] == True).all()  # noqa: E712 - the column's values, read back by pandas
    assert (m["label"] == 1).all() and (m["split"] == "train").all() and (m["source"] == "dcgan").all()
    assert set(m["skin_group_est"].dropna()) <= {"lighter", "darker"}
    assert np.load(gen / "images.npy").shape == (40, 64, 64, 3)
    q = json.loads((gen / "quality.json").read_text())
    assert q["embedding"].startswith("pixel PCA") and q["n_generated"] == 40
    assert all(0 <= q[k] <= 1 for k in ("precision", "recall", "coverage", "probe_auc")) and q["density"] >= 0
    cfg = json.loads((gen / "config.json").read_text())
    assert cfg["generator"] == "dcgan" and cfg["drawn"] == "uniform" and len(cfg["dcgan_epoch_s"]) == 1
    assert (gen / "gallery.png").stat().st_size > 0


def test_with_a_latent_run_faces_are_drawn_by_rarity_and_the_decoder_decodes(tiny_synth, latent_run, tmp_path):
    r = generate(tiny_synth, GenerateConfig(latent_run=str(latent_run), n=30, pool=3, **TINY), tmp_path / "g")
    assert r.quality["embedding"] == "DB-VAE latent means" and 0 <= r.quality["rare_share"] <= 1
    assert np.isfinite(r.manifest["log_rarity"]).all()
    assert json.loads((tmp_path / "g" / "config.json").read_text())["drawn"] == "by rarity"
    d = generate(tiny_synth, GenerateConfig(generator="decoder", latent_run=str(latent_run), n=30, **TINY),
                 tmp_path / "d")
    assert (d.manifest["source"] == "decoder").all() and np.load(tmp_path / "d" / "images.npy").shape == (30, 64, 64, 3)
    read_manifest(tmp_path / "d")


def test_the_rarity_draw_favours_rare_faces_and_tempers_to_its_ess_floor():
    log_w = np.log(np.r_[np.ones(90), np.full(10, 100.0)])  # ten faces 100 times as rare: ESS 0.119 of the pool
    pos, temper = draw_by_rarity(log_w, 10, min_ess=0.05, random_state=0)
    assert temper == 1.0 and len(set(pos)) == 10 and (pos >= 90).sum() >= 6  # uniform would give 1 on average
    _, temper = draw_by_rarity(log_w, 10, min_ess=0.5, random_state=0)
    assert temper < 1.0


def test_an_audit_never_scores_a_generated_face(gen, tiny_synth, tmp_path):
    r = CliRunner().invoke(app, ["audit", str(gen), "-m", "opencv:haar-frontal-default", "--out", str(tmp_path / "a")])
    assert r.exit_code == 2 and "a generated face" in _text(r) and "never scores generated ones" in _text(r)
    # a real dataset with one row marked generated is refused too, by the library
    from debias.audit.predict import predict

    m = pd.read_csv(tiny_synth / "manifest.csv")
    m["generated"] = False
    m.loc[len(m) - 1, "generated"] = True
    root = tmp_path / "mixed"
    root.mkdir()
    (root / "images.npy").symlink_to(tiny_synth / "images.npy")
    m.to_csv(root / "manifest.csv", index=False)
    with pytest.raises(ManifestError, match=f"line {len(m) + 1}: a generated face"):
        predict(root, [])
    import debias

    p = pd.DataFrame({"label": [1, 1], "score": [0.9, 0.2], "skin_group": ["a", "b"], "generated": [False, True]})
    with pytest.raises(DebiasError, match="the predictions, line 3: a generated face"):
        debias.Audit.from_predictions(p)


@pytest.mark.parametrize("args, says", [
    (["--generator", "gan"], "--generator='gan' is not one of dcgan, decoder"),
    (["--generator", "decoder"], "give the DB-VAE run folder as --latent-run"),
    (["--n", "0"], "--n=0 must be at least 1"),
    (["--n", "5"], "generate at least 6 faces"),
])
def test_bad_generate_options_exit_2_naming_the_flag(tiny_synth, tmp_path, args, says):
    r = CliRunner().invoke(app, ["generate", str(tiny_synth), "--out", str(tmp_path / "g"), *args])
    assert r.exit_code == 2 and says in _text(r), r.output


def test_generate_from_a_folder_without_manifest_or_a_run_that_is_not_a_dbvae_exits_2(tiny_synth, tmp_path):
    r = CliRunner().invoke(app, ["generate", str(tmp_path), "--out", str(tmp_path / "g")])
    assert r.exit_code == 2 and "No manifest.csv" in _text(r)
    r = CliRunner().invoke(app, ["generate", str(tiny_synth), "--out", str(tiny_synth), "--overwrite"])
    assert r.exit_code == 2 and "is the dataset the faces are generated from" in _text(r)
    assert (tiny_synth / "manifest.csv").exists()
    fit(tiny_synth, TrainConfig(method="standard", **{**FAST, "epochs": 1}), tmp_path / "std")
    r = CliRunner().invoke(app, ["generate", str(tiny_synth), "--out", str(tmp_path / "g"), "--latent-run",
                                 str(tmp_path / "std"), "--device", "cpu"])
    assert r.exit_code == 2 and "holds a classifier model" in _text(r)


def test_mixed_batches_hold_the_share_of_generated_faces_by_count():
    is_face = np.arange(100) % 3 != 0  # 66 faces, 34 non-faces
    batches = [np.arange(s, s + 20) for s in range(0, 100, 20)]
    mixed = MixedBatches(batches, is_face, n_real=100, n_extra=7, share=0.25, seed=0, epoch=0)
    got = list(mixed)
    assert len(mixed) == 5 and all(np.array_equal(a, b) for a, b in zip(got, mixed))  # a second pass is the same
    for before, after in zip(batches, got):
        faces = is_face[before]
        extra = after >= 100
        assert extra.sum() in (int(0.25 * faces.sum()), int(0.25 * faces.sum()) + 1)  # e.g. 13 faces -> 3 or 4
        assert not (extra & ~faces).any()  # only faces are replaced: the non-faces stay
        assert np.array_equal(after[~extra], before[~extra]) and (after[extra] < 107).all()


@pytest.mark.parametrize("share", [0.01, 0.1, 0.25])
def test_mixed_batches_hold_a_share_under_one_face_a_batch_on_average(share):
    """32 faces a batch (the default batch of 64, half faces): a 1% share is 0.32 faces a batch, which rounding to
    the nearest face made none at all."""
    is_face = np.arange(64) % 2 == 0
    batches = [np.arange(64)] * 2000
    got = sum(int((b >= 64).sum()) for b in MixedBatches(batches, is_face, n_real=64, n_extra=50, share=share,
                                                          seed=1, epoch=0))
    n = 2000 * 32
    assert abs(got / n - share) < 4 * np.sqrt(share * (1 - share) / n) + 1e-3, (got / n, share)


def test_training_with_extra_mixes_generated_faces_into_each_batch_by_count(tiny_synth, gen, tmp_path, monkeypatch):
    import debias.train.fitting as fitting

    seen = []
    real_epoch = fitting.train_one_epoch

    def record(step, opt, batches, images, labels, *a, **k):
        batches = [np.asarray(b) for b in batches]
        seen.append((batches, images, labels))
        return real_epoch(step, opt, batches, images, labels, *a, **k)

    monkeypatch.setattr(fitting, "train_one_epoch", record)
    fit(tiny_synth, TrainConfig(method="standard", extra=str(gen), extra_share=0.25, **FAST), tmp_path / "std")
    gen_images = np.load(gen / "images.npy")
    n_real = 256  # max_train
    for batches, images, labels in seen:
        for b in batches:
            extra = b >= n_real
            assert abs(extra.sum() - 0.25 * (labels[b] == 1).sum()) < 1  # the share, rounded up or down
            assert (labels[b[extra]] == 1).all()
            assert np.array_equal(images(b[extra]), gen_images[b[extra] - n_real])
    cfg = json.loads((tmp_path / "std" / "config.json").read_text())
    assert cfg["extra"] == str(gen) and cfg["extra_share"] == 0.25 and cfg["n_extra_faces"] == 40
    # the default recipe: its DB-VAE reads real faces only, its classifier gets the share
    seen.clear()
    fit(tiny_synth, TrainConfig(extra=str(gen), extra_share=0.5, freeze_after=128, **FAST), tmp_path / "two")
    first, second = seen[0], seen[1:]
    assert all((b < n_real).all() for b in first[0]) and len(second) == FAST["epochs"]
    assert sum((b >= n_real).sum() for batches, _, _ in second for b in batches) > 0
    for batches, _, labels in second:
        assert all(abs((b >= n_real).sum() - 0.5 * (labels[b] == 1).sum()) < 1 for b in batches)
    cfg = json.loads((tmp_path / "two" / "config.json").read_text())
    assert cfg["stages"]["latent"]["extra"] == "" and cfg["stages"]["classifier"]["extra_share"] == 0.5


def test_extra_is_refused_where_it_is_not_supported_and_must_be_generated_faces(tiny_synth, gen, tmp_path):
    with pytest.raises(ValueError, match="not `method`='balanced'"):
        TrainConfig(method="balanced", extra="g", extra_share=0.2)
    with pytest.raises(ValueError, match="with `recipe`='paper'"):
        TrainConfig(recipe="paper", extra="g", extra_share=0.2)
    with pytest.raises(ValueError, match="go together"):
        TrainConfig(method="standard", extra="g")
    with pytest.raises(ValueError, match=r"must be in \[0, 1\)"):
        TrainConfig(method="standard", extra="g", extra_share=1.0)
    with pytest.raises(ManifestError, match="holds generated faces .* add generated faces with `extra`"):
        fit(gen, TrainConfig(method="standard", **FAST), tmp_path / "g")
    with pytest.raises(TrainingError, match="not a generated training face"):
        fit(tiny_synth, TrainConfig(method="standard", extra=str(tiny_synth), extra_share=0.2, **FAST), tmp_path / "r")
    r = CliRunner().invoke(app, ["train", str(tiny_synth), "--out", str(tmp_path / "x"), "--method", "jtt", "--extra",
                                 "g", "--extra-share", "0.2"])
    assert r.exit_code == 2 and "--extra adds generated faces" in _text(r)


def test_the_python_api_generates_and_names_unknown_options(tiny_synth, tmp_path):
    import debias

    r = debias.generate(tiny_synth, out=tmp_path / "g", n=12, **TINY)
    assert len(r.manifest) == 12 and r.gallery.exists() and callable(debias.generate)
    with pytest.raises(DebiasError, match="unknown generation option.*colour"):
        debias.generate(tiny_synth, out=tmp_path / "h", colour=True)
    with pytest.raises(DebiasError, match="`n`=0 must be at least 1"):
        debias.generate(tiny_synth, out=tmp_path / "h", n=0)


def test_the_audit_report_shows_the_generated_faces_a_run_trained_with(tiny_synth, gen, tmp_path):
    import base64
    import re

    fit(tiny_synth, TrainConfig(method="standard", extra=str(gen), extra_share=0.25, **FAST), tmp_path / "std-gen")
    fit(tiny_synth, TrainConfig(method="standard", **FAST), tmp_path / "std")
    r = CliRunner().invoke(app, ["audit", str(tiny_synth), "-m", f"run:{tmp_path / 'std-gen'}", "-m",
                                 f"run:{tmp_path / 'std'}", "--by", "skin_group", "--n-boot", "20", "--min-n", "5",
                                 "--no-thumbnails", "--out", str(tmp_path / "a")])
    assert r.exit_code == 0, r.output
    html = (tmp_path / "a" / "report.html").read_text()
    q = json.loads((gen / "quality.json").read_text())
    assert html.count("<h2>Generated training faces") == 1  # the run without generated faces gets none
    section = html[html.index("<h2>Generated training faces: std-gen"):]
    assert f"std-gen was trained with 25% of each batch&#39;s faces generated: the 40 faces in {gen}" in section
    assert f"precision {q['precision']:.2f}, recall {q['recall']:.2f}" in section
    assert f"AUC {q['probe_auc']:.2f}" in section
    shown = re.search(r'src="data:image/png;base64,([^"]+)"', section).group(1)
    assert base64.b64decode(shown) == (gen / "gallery.png").read_bytes()  # the gallery, as generate drew it
