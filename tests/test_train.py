from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from debias.cli import app
from debias.config import TrainConfig
from debias.errors import DebiasError
from debias.train import TrainingError, fit, load_run

FAST = dict(epochs=2, batch_size=32, width=4, latent_dim=8, max_train=256, compile=False)


def _killer(after_steps: int):
    """A progress callback that interrupts training once it has counted ``after_steps`` steps."""
    calls = {"n": 0}

    def progress(n=1, **kw):
        calls["n"] += n if n > 0 else 0
        if calls["n"] > after_steps:
            raise KeyboardInterrupt

    return progress


def _state(run):
    return torch.load(run / "model.pt", weights_only=True)["state_dict"]


@pytest.mark.parametrize("method", ["standard", "dbvae", "vae-uniform", "balanced", "jtt", "loss-resample"])
def test_every_method_trains_and_writes_its_run_folder(tiny_synth, tmp_path, method):
    cfg = TrainConfig(method=method, jtt_epochs=1, **FAST)
    hist = fit(tiny_synth, cfg, tmp_path)
    for f in ("config.json", "model.pt", "history.csv", "sampling_weights.csv", "checkpoint.pt"):
        assert (tmp_path / f).exists(), f
    assert len(hist) == (3 if method == "jtt" else 2) and np.isfinite(hist["loss"]).all()
    assert "val_recall[skin_group=darker]" in hist and "mass[skin_group=darker]" in hist
    w = pd.read_csv(tmp_path / "sampling_weights.csv")
    assert w["p"].sum() == pytest.approx(1.0, abs=1e-4)
    model, arch = load_run(tmp_path)
    assert model(torch.rand(2, 3, 64, 64)).shape == (2,)


def test_dbvae_mass_is_a_diagnostic_of_its_weights(tiny_synth, tmp_path):
    hist = fit(tiny_synth, TrainConfig(method="dbvae", recipe="paper", **FAST), tmp_path)
    w = pd.read_csv(tmp_path / "sampling_weights.csv")
    share = w.groupby("skin_group")["p"].sum()
    assert hist["mass[skin_group=darker]"].iloc[-1] == pytest.approx(share["darker"], abs=1e-4)


def test_same_seed_same_history(tiny_synth, tmp_path):
    cfg = TrainConfig(method="dbvae", recipe="paper", **FAST)
    fit(tiny_synth, cfg, tmp_path / "a")
    fit(tiny_synth, cfg, tmp_path / "b")
    assert (tmp_path / "a" / "history.csv").read_bytes() == (tmp_path / "b" / "history.csv").read_bytes()


def test_resume_after_a_kill_mid_epoch_gives_the_same_weights(tiny_synth, tmp_path):
    cfg = TrainConfig(method="dbvae", recipe="paper", **{**FAST, "epochs": 3})
    fit(tiny_synth, cfg, tmp_path / "full")
    calls = {"n": 0}

    def kill_in_epoch_two(n=1, **kw):
        calls["n"] += n if n > 0 else 0
        if calls["n"] > 8 + 3:  # 8 steps per epoch: die 3 steps into the second epoch
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(tiny_synth, cfg, tmp_path / "cut", progress=kill_in_epoch_two)
    assert not (tmp_path / "cut" / "model.pt").exists()
    with pytest.raises(TrainingError, match="option.s. lr differ"):
        fit(tiny_synth, TrainConfig(method="dbvae", recipe="paper", **{**FAST, "epochs": 3, "lr": 1e-3}), tmp_path / "cut", resume=True)
    fit(tiny_synth, cfg, tmp_path / "cut", resume=True)
    a, b = _state(tmp_path / "full"), _state(tmp_path / "cut")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "full" / "history.csv").read_bytes() == (tmp_path / "cut" / "history.csv").read_bytes()


def test_non_finite_loss_stops_with_clear_error_and_keeps_checkpoint(tiny_synth, tmp_path, monkeypatch):
    cfg = TrainConfig(method="standard", **{**FAST, "epochs": 3})
    n_batches = FAST["max_train"] // FAST["batch_size"]
    real_step, calls = torch.optim.Adam.step, []

    def diverge_in_epoch_three(self, *a, **k):  # the weights blow up after two good epochs
        out = real_step(self, *a, **k)
        calls.append(1)
        if len(calls) == 2 * n_batches + 1:
            with torch.no_grad():
                for group in self.param_groups:
                    for prm in group["params"]:
                        prm.fill_(float("nan"))
        return out

    monkeypatch.setattr(torch.optim.Adam, "step", diverge_in_epoch_three)
    with pytest.raises(TrainingError, match="non-finite"):
        fit(tiny_synth, cfg, tmp_path)
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ck["epoch"] == 1  # the last good epoch (0-based) is kept for --resume
    assert all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())
    assert not (tmp_path / "model.pt").exists()  # no finished-looking run from a diverged one


def test_cli_train_export_and_script_loads(tiny_synth, tmp_path):
    r = CliRunner().invoke(app, ["train", str(tiny_synth), "--out", str(tmp_path / "run"), "--method", "standard",
                                 "--epochs", "1", "--width", "4", "--max-train", "128", "--batch-size", "32", "--no-compile"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["export", str(tmp_path / "run"), "--torchscript", str(tmp_path / "m.pt")])
    assert r.exit_code == 0, r.output
    scripted = torch.jit.load(str(tmp_path / "m.pt"))
    model, arch = load_run(tmp_path / "run")
    x = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(scripted(x), model(x), atol=1e-6)


def test_cli_train_bad_method_and_missing_balance_column(tiny_synth, tmp_path):
    r = CliRunner().invoke(app, ["train", str(tiny_synth), "--out", str(tmp_path), "--method", "magic"])
    assert r.exit_code == 2 and "--method='magic' is not one of" in r.output
    r = CliRunner().invoke(app, ["train", str(tiny_synth), "--out", str(tmp_path), "--method", "balanced",
                                 "--balance-by", "ethnicity", "--epochs", "1"])
    assert r.exit_code == 2 and "ethnicity" in r.output
    r = CliRunner().invoke(app, ["train", str(tiny_synth), "--out", str(tmp_path), "--recipe", "tilted"])
    assert r.exit_code == 2 and "--recipe='tilted' is not one of two-stage, paper" in r.output


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=[
    pytest.mark.gpu, pytest.mark.skipif(torch.cuda.device_count() < 2, reason="DDP with nccl needs at least 2 GPUs")])])
def test_ddp_two_processes(tiny_synth, tmp_path, device):
    """gloo on the CPU; nccl, one GPU per process, on CUDA."""
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    cmd = [torchrun, "--standalone", "--nproc_per_node=2", "-m", "debias", "train", str(tiny_synth),
           "--out", str(tmp_path), "--method", "dbvae", "--epochs", "2", "--width", "4", "--latent-dim", "8",
           "--max-train", "256", "--batch-size", "32", "--device", device, "--no-compile"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    cfg = pd.read_json(tmp_path / "config.json", typ="series")
    assert cfg["world_size"] == 2
    assert len(pd.read_csv(tmp_path / "history.csv")) == 2


def test_prefetch_workers_do_not_change_results(tiny_synth, tmp_path):
    fit(tiny_synth, TrainConfig(method="standard", **FAST), tmp_path / "a")
    fit(tiny_synth, TrainConfig(method="standard", workers=2, **FAST), tmp_path / "b")
    a, b = _state(tmp_path / "a"), _state(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_compile_failure_falls_back_to_eager(tiny_synth, tmp_path, monkeypatch):
    def broken_compile(module):
        def run(*a):
            raise RuntimeError("no C++ compiler")
        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    monkeypatch.setattr("debias.train.loop.COMPILE_MIN_IMAGES", 0)  # compile even this tiny run
    logs = []
    fit(tiny_synth, TrainConfig(method="standard", **{**FAST, "compile": True}), tmp_path, log=logs.append)
    assert any("torch.compile failed (RuntimeError: no C++ compiler); running eagerly" in m for m in logs)
    assert (tmp_path / "model.pt").exists()


def test_latent_cli_on_a_dbvae_run(tiny_synth, tmp_path):
    fit(tiny_synth, TrainConfig(method="dbvae", recipe="paper", **FAST), tmp_path / "run")
    r = CliRunner().invoke(app, ["latent", str(tmp_path / "run"), str(tiny_synth), "--out", str(tmp_path / "lat")])
    assert r.exit_code == 0, r.output
    for f in ("traversals.png", "prior_samples.png", "rare_region_samples.png", "rare_faces.png", "common_faces.png",
              "latent_correlation.csv", "mass_shares.csv", "latent_units.csv", "latent_attributes.csv"):
        assert (tmp_path / "lat" / f).exists(), f
    shares = pd.read_csv(tmp_path / "lat" / "mass_shares.csv")
    w = pd.read_csv(tmp_path / "run" / "sampling_weights.csv")
    darker = shares[(shares.attribute == "skin_group") & (shares.group == "darker")].iloc[0]
    assert darker.debiased == pytest.approx(w[w.skin_group == "darker"].p.sum(), abs=1e-4)
    assert darker.uniform == pytest.approx((w.skin_group == "darker").mean(), abs=1e-4)
    # the console shows the three tables: active units, what the latent encodes, the mass per labelled group
    out = "".join(r.output.split())  # rich wraps long lines anywhere
    units = pd.read_csv(tmp_path / "lat" / "latent_units.csv")
    assert f"activeunits:{(units.kl > 0.01).sum()}of8latentdimensions" in out
    attrs = pd.read_csv(tmp_path / "lat" / "latent_attributes.csv")
    assert "whichlabelledattributesthelatentencodes" in out and "samplingmassperlabelledgroup" in out
    for a in attrs.itertuples():
        assert f"│{a.attribute}│{a.abs_rho:.2f}│{a.dim}│" in out, a
    assert f"│skin_group│darker│{darker.uniform:.1%}│{darker.debiased:.1%}│" in out
    # the note naming a rare labelled group the weights draw less often than uniform sampling: halve its faces' weights
    three_quarter = (w.pose == "three-quarter").to_numpy()
    assert 0 < three_quarter.mean() < 0.1
    w.assign(p=np.where(three_quarter, 0.5, 1.0)).to_csv(tmp_path / "run" / "sampling_weights.csv", index=False)
    r = CliRunner().invoke(app, ["latent", str(tmp_path / "run"), str(tiny_synth), "--out", str(tmp_path / "lat")])
    assert r.exit_code == 0 and "note:thelatentweightsgivepose=three-quarterlessthanitsshare" in "".join(
        r.output.split()), r.output
    fit(tiny_synth, TrainConfig(method="standard", **FAST), tmp_path / "std")
    r = CliRunner().invoke(app, ["latent", str(tmp_path / "std"), str(tiny_synth), "--out", str(tmp_path / "l2")])
    assert r.exit_code == 2 and "needs a DB-VAE" in " ".join(r.output.split())


def test_latent_reads_a_runs_weights_as_training_does_and_refuses_bad_ones_with_exit_2(tiny_synth, tmp_path):
    """`debias latent` read sampling_weights.csv with a row count as its only check: a negative or non-numeric p, or
    weights that do not sum to 1, went into its mass shares (or crashed with a traceback)."""
    fit(tiny_synth, TrainConfig(method="dbvae", recipe="paper", **{**FAST, "epochs": 1}), tmp_path / "run")
    f = tmp_path / "run" / "sampling_weights.csv"
    w = pd.read_csv(f)
    darker = (w.skin_group == "darker").to_numpy()
    w.assign(p=np.where(darker, 3.0, 1.0)).to_csv(f, index=False)  # unnormalised, by hand: 3 on each darker face
    r = CliRunner().invoke(app, ["latent", str(tmp_path / "run"), str(tiny_synth), "--out", str(tmp_path / "lat")])
    assert r.exit_code == 0, r.output
    shares = pd.read_csv(tmp_path / "lat" / "mass_shares.csv").set_index(["attribute", "group"])
    assert shares.loc[("skin_group", "darker"), "debiased"] == pytest.approx(
        3 * darker.sum() / (3 * darker.sum() + (~darker).sum()), abs=1e-4)
    assert shares.groupby(level=0).debiased.sum().tolist() == pytest.approx([1.0] * 3, abs=1e-4)
    for edit, message in [(lambda w: w.drop(columns="p"), "no 'image' and 'p' columns"),
                          (lambda w: w.assign(p=w.p.where(w.index != 4, -1.0)), "row 6 has p=-1.0"),
                          (lambda w: w.assign(p=w.p.astype(str).where(w.index != 2, "x")), "row 4 has p=x"),
                          (lambda w: w.assign(p=0.0), "sum to 0"),
                          (lambda w: pd.concat([w, w.iloc[2:3]]), "appears twice"),
                          (lambda w: pd.concat([w, w.iloc[:1].assign(image="nowhere.png")]),
                           "1 of them not training faces")]:
        edit(w).to_csv(f, index=False)
        r = CliRunner().invoke(app, ["latent", str(tmp_path / "run"), str(tiny_synth), "--out", str(tmp_path / "l")])
        out = "".join(r.output.split())  # rich wraps the long path anywhere, so compare without whitespace
        assert r.exit_code == 2 and message.replace(" ", "") in out and str(f) in out, (message, r.output)
        assert "Traceback" not in out
    f.unlink()
    r = CliRunner().invoke(app, ["latent", str(tmp_path / "run"), str(tiny_synth), "--out", str(tmp_path / "l")])
    assert r.exit_code == 2 and f"{f}doesnotexist" in "".join(r.output.split())


def test_a_finished_run_is_never_silently_replaced(tiny_synth, tmp_path):
    args = ["train", str(tiny_synth), "--method", "standard", "--epochs", "1", "--width", "4", "--max-train", "128",
            "--batch-size", "32", "--no-compile", "--out", str(tmp_path / "run")]
    assert CliRunner().invoke(app, args).exit_code == 0
    before = (tmp_path / "run" / "model.pt").read_bytes()
    r = CliRunner().invoke(app, args + ["--seed", "1"])
    assert r.exit_code == 2 and "already holds a training run" in " ".join(r.output.split())
    assert (tmp_path / "run" / "model.pt").read_bytes() == before
    r = CliRunner().invoke(app, args + ["--seed", "1", "--overwrite"])
    assert r.exit_code == 0, r.output
    assert json_load(tmp_path / "run" / "config.json")["seed"] == 1


def json_load(p):
    import json

    return json.loads(p.read_text())


def test_resume_without_a_checkpoint_leaves_no_folder_and_out_over_a_file_is_refused(tiny_synth, tmp_path):
    r = CliRunner().invoke(app, ["train", str(tiny_synth), "--out", str(tmp_path / "new"), "--resume"])
    assert r.exit_code == 2 and "no checkpoint" in r.output and not (tmp_path / "new").exists()
    (tmp_path / "f").write_text("x")
    r = CliRunner().invoke(app, ["train", str(tiny_synth), "--out", str(tmp_path / "f"), "--epochs", "1"])
    assert r.exit_code == 2 and "is a file" in " ".join(r.output.split())


def test_library_errors_name_keywords_and_the_cli_names_the_flags(tiny_synth, tmp_path):
    with pytest.raises(TrainingError) as e:  # Python: the keyword argument, never a CLI flag
        fit(tiny_synth, TrainConfig(method="standard", **FAST), tmp_path / "new", resume=True)
    assert "`resume`: no checkpoint" in str(e.value) and "--" not in str(e.value)
    r = CliRunner().invoke(app, ["train", str(tiny_synth), "--out", str(tmp_path / "new"), "--resume"])
    out = " ".join(r.output.split())
    assert r.exit_code == 2 and "--resume: no checkpoint" in out and "start without --resume" in out and "`" not in out
    (tmp_path / "f").write_text("x")
    with pytest.raises(DebiasError, match="`out` .* is a file"):
        fit(tiny_synth, TrainConfig(method="standard", **FAST), tmp_path / "f")


def test_two_trainings_into_one_folder_the_second_is_refused(tiny_synth, tmp_path):
    from debias.errors import DebiasError
    from debias.files import exclusive

    (tmp_path / "run").mkdir()
    with exclusive(tmp_path / "run", "training run"):  # as if another process were training there
        with pytest.raises(DebiasError, match="another process is writing"):
            fit(tiny_synth, TrainConfig(method="standard", **FAST), tmp_path / "run")
    fit(tiny_synth, TrainConfig(method="standard", **FAST), tmp_path / "run")  # free again afterwards


def test_resume_refuses_a_changed_compile_setting(tiny_synth, tmp_path):
    cfg = TrainConfig(method="standard", **FAST)
    fit(tiny_synth, cfg, tmp_path)
    with pytest.raises(TrainingError, match="compile differ"):
        fit(tiny_synth, TrainConfig(method="standard", **{**FAST, "compile": True}), tmp_path, resume=True)


def test_synth_over_an_existing_dataset_is_refused_unless_overwrite(tmp_path):
    args = ["data", "synth", "--n-train", "40", "--n-val", "10", "--n-test-per-cell", "1", "--workers", "1",
            "--out", str(tmp_path / "d")]
    assert CliRunner().invoke(app, args).exit_code == 0
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2 and "already holds a dataset" in " ".join(r.output.split())
    assert CliRunner().invoke(app, args + ["--overwrite"]).exit_code == 0


def test_short_runs_train_eagerly_and_say_so(tiny_synth, tmp_path, monkeypatch):
    called = []
    monkeypatch.setattr(torch, "compile", lambda m: called.append(m) or m)
    logs = []
    fit(tiny_synth, TrainConfig(method="standard", **{**FAST, "compile": True}), tmp_path, log=logs.append)
    assert not called and any("running eagerly: 512 training images is below" in m for m in logs)


def test_freeze_weights_keeps_the_first_resampling_weights_across_epochs_and_resume(tiny_synth, tmp_path):
    cfg = TrainConfig(method="dbvae", recipe="paper", refresh_weights=False, **{**FAST, "epochs": 3})
    hist = fit(tiny_synth, cfg, tmp_path / "full")
    mass = hist.filter(like="mass[").to_numpy()
    assert not np.allclose(mass[0], mass[1])  # epoch 0 is uniform, epoch 1 resamples
    np.testing.assert_array_equal(mass[1], mass[2])  # and epoch 2 keeps epoch 1's weights
    refreshed = fit(tiny_synth, TrainConfig(method="dbvae", recipe="paper", **{**FAST, "epochs": 3}), tmp_path / "refresh")
    assert not np.allclose(refreshed.filter(like="mass[").to_numpy()[2], mass[2])
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_synth, cfg, tmp_path / "cut", progress=_killer(after_steps=16 + 3))  # 3 steps into epoch three
    fit(tiny_synth, cfg, tmp_path / "cut", resume=True)  # the kept weights come back from the checkpoint
    a, b = _state(tmp_path / "full"), _state(tmp_path / "cut")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_channels_last_and_bf16_steps_match_float32_within_their_precision(tiny_synth):
    """One training step's loss parts from the same weights and batch: channels_last is the same float32
    arithmetic in another memory layout (equal to float rounding); bf16 autocast keeps ~3 significant
    digits, and every loss is returned in float32."""
    from debias.data.manifest import read_manifest, to_tensor
    from debias.train.loop import _Step, build_model

    m = read_manifest(tiny_synth)
    m = m[m.split == "train"].iloc[:32]
    x = to_tensor(np.load(tiny_synth / "images.npy")[m.image.to_numpy()])
    y = torch.from_numpy(m.label.to_numpy().astype(np.float32))
    for method in ("standard", "dbvae"):
        cfg = TrainConfig(method=method, **FAST)
        torch.manual_seed(0)
        net = build_model(cfg, 64)
        parts = {}
        for name, kw in (("fp32", {}), ("cl", dict(channels_last=True)), ("bf16", dict(precision="bf16"))):
            model = build_model(cfg, 64)
            model.load_state_dict(net.state_dict())
            if kw.get("channels_last"):
                model = model.to(memory_format=torch.channels_last)
            torch.manual_seed(1)  # the same reparameterisation noise
            with torch.no_grad():
                parts[name] = _Step(model, TrainConfig(method=method, **FAST, **kw))(x, y)
        assert all(p.dtype == torch.float32 for p in parts["bf16"] if p is not None)
        for a, c, b in zip(parts["fp32"], parts["cl"], parts["bf16"]):
            if a is None:  # a plain classifier's classification loss is its per-image loss
                assert c is None and b is None
                continue
            assert torch.allclose(a, c, rtol=1e-4, atol=1e-5)
            assert torch.allclose(a, b, rtol=3e-2, atol=3e-2)


def test_bf16_channels_last_training_runs_and_fp16_needs_cuda(tiny_synth, tmp_path):
    hist = fit(tiny_synth, TrainConfig(method="dbvae", recipe="paper", precision="bf16", channels_last=True, **FAST), tmp_path / "bf")
    assert np.isfinite(hist.loss).all()
    model, _ = load_run(tmp_path / "bf")  # a float32 model, whatever it trained in
    assert next(model.parameters()).dtype == torch.float32
    with pytest.raises(ValueError, match="`precision`='fp8'"):
        TrainConfig(precision="fp8")
    if not torch.cuda.is_available():
        with pytest.raises(TrainingError, match="`precision`='fp16' needs a CUDA device"):
            fit(tiny_synth, TrainConfig(method="standard", precision="fp16", device="cpu", **FAST), tmp_path / "h")
        r = CliRunner().invoke(app, ["train", str(tiny_synth), "--out", str(tmp_path / "h2"), "--precision", "fp16",
                                     "--device", "cpu"])
        assert r.exit_code == 2 and "--precision='fp16' needs a CUDA device" in " ".join(r.output.split())
        assert not (tmp_path / "h").exists() and not (tmp_path / "h2").exists()  # refused before writing


def test_loss_resample_weights_are_each_faces_cross_entropy(tiny_synth):
    from debias import train as T
    from debias.train.samplers import _loss_weights

    cfg = TrainConfig(method="loss-resample", min_ess=1e-6, **FAST)
    ts = T.load_train_set(tiny_synth, cfg)
    torch.manual_seed(0)
    model = T.build_model(cfg, ts.size).eval()
    s, _ = T.predict_scores(model, lambda pos: ts.images(ts.face_pos[pos]), len(ts.face_pos), torch.device("cpu"))
    p = _loss_weights(s, cfg, 1, lambda m: None)
    # independently: binary cross-entropy of every training face against the label "face", normalised
    x = torch.from_numpy(np.asarray(ts.images(ts.face_pos))).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        bce = torch.nn.functional.binary_cross_entropy_with_logits(model(x), torch.ones(len(x)), reduction="none")
    want = (bce / bce.sum()).numpy()
    assert p.shape == (len(ts.face_pos),) and np.allclose(p, want, rtol=1e-4, atol=1e-7)


def test_losses_read_in_windows_equal_reading_every_step_and_catch_a_non_finite_loss():
    """On CUDA the loss parts are read back every 25 steps, not every step: the same epoch means, the same
    progress ticks, and a non-finite loss still stops training, naming the window it fell in."""
    import torch.nn.functional as F

    from debias.train import train_one_epoch

    class Step(torch.nn.Module):
        def __init__(self, nan_at=None):
            super().__init__()
            self.lin, self.calls, self.nan_at = torch.nn.Linear(12, 1), 0, nan_at

        def forward(self, x, y):
            self.calls += 1
            bce = F.binary_cross_entropy_with_logits(self.lin(x.flatten(1)).squeeze(1), y, reduction="none")
            if self.calls == self.nan_at:
                bce = bce * float("nan")
            z = torch.zeros(())
            return bce, None, bce.mean(), z, z

    rng = np.random.default_rng(0)
    imgs, labels = rng.integers(0, 256, (40, 2, 2, 3), dtype=np.uint8), rng.integers(0, 2, 40).astype(np.float32)
    batches = [np.arange(i, i + 4) for i in range(0, 40, 4)]  # 10 steps
    cpu = torch.device("cpu")
    seen = {}
    for every in (1, 3, 25):
        torch.manual_seed(0)
        step, ticks = Step(), []
        out = train_one_epoch(step, torch.optim.SGD(step.parameters(), 0.1), batches, lambda p: imgs[p], labels, cpu,
                              read_every=every, progress=lambda k, **kw: ticks.append(k))
        assert sum(ticks) == 10
        seen[every] = (out["loss"], step.lin.weight.detach().clone())
    for every in (3, 25):
        assert seen[every][0] == pytest.approx(seen[1][0], rel=1e-12)
        assert torch.equal(seen[every][1], seen[1][1])
    torch.manual_seed(0)
    step = Step(nan_at=6)
    with pytest.raises(TrainingError, match=r"non-finite \(nan\) at step 8 or one of the 3 before it"):
        train_one_epoch(step, torch.optim.SGD(step.parameters(), 0.1), batches, lambda p: imgs[p], labels, cpu,
                        read_every=4)


class _RecordingStep(torch.nn.Module):
    """A one-weight training step that appends every batch it is given to ``seen`` (what the model sees)."""

    def __init__(self, seen: list):
        super().__init__()
        self.w, self.seen = torch.nn.Parameter(torch.zeros(())), seen

    def forward(self, x, y):
        self.seen.append(x.clone())
        per = (self.w * x.mean((1, 2, 3)) - y) ** 2
        return per, None, per.mean(), per.mean() * 0, per.mean() * 0


def test_augmentation_ranges_reach_the_training_step(tiny_synth, tmp_path, monkeypatch):
    """--aug-rotate/--aug-scale/--aug-translate travel from the command line to the batches the model sees: the
    images the step receives equal augment() called directly with the same generator and ranges."""
    import debias.train.fitting as train_mod
    from debias.data.augment import AugmentConfig, augment

    imgs = np.random.default_rng(1).integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)
    labels = np.ones(8, np.float32)
    seen = []

    cfg = AugmentConfig(flip=0.5, scale=0.2, translate=0.05, rotate=20)
    step = _RecordingStep(seen)
    train_mod.train_one_epoch(step, torch.optim.SGD(step.parameters(), 0.1), [np.arange(8)], lambda p: imgs[p],
                              labels, torch.device("cpu"), aug=torch.Generator().manual_seed(7), aug_cfg=cfg)
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255
    assert torch.allclose(seen[0], augment(x, torch.Generator().manual_seed(7), cfg), atol=1e-6)
    assert not torch.allclose(seen[0], augment(x, torch.Generator().manual_seed(7), AugmentConfig()), atol=1e-3)

    captured = {}
    real = train_mod.train_one_epoch

    def spy(*a, **kw):
        captured["aug_cfg"] = kw["aug_cfg"]
        return real(*a, **kw)

    monkeypatch.setattr(train_mod, "train_one_epoch", spy)
    r = CliRunner().invoke(app, ["train", str(tiny_synth), "--out", str(tmp_path / "run"), "--method", "standard",
                                 "--epochs", "1", "--width", "4", "--max-train", "64", "--batch-size", "32",
                                 "--no-compile", "--aug-rotate", "12", "--aug-scale", "0.25", "--aug-translate", "0"])
    assert r.exit_code == 0, r.output
    assert captured["aug_cfg"] == AugmentConfig(scale=0.25, translate=0.0, rotate=12.0)
    r = CliRunner().invoke(app, ["train", str(tiny_synth), "--out", str(tmp_path / "bad"), "--aug-rotate", "60"])
    assert r.exit_code == 2 and "--aug-rotate=60.0 must be in [0, 45.0]" in r.output


def test_group_dro_on_a_dbvae_weighs_groups_by_classification_loss_not_reconstruction(tiny_synth):
    """Latent DRO fed Group DRO the DB-VAE's whole per-image loss (BCE + reconstruction + KL, the last two on faces
    only): every face group looked worse than the non-faces by its reconstruction error, and the non-faces' weight
    drained away (seed 3: 0.25 -> 0.14 in 8 epochs, where labelled Group DRO's rose 0.43 -> 0.51). The update must
    use each group's mean BCE, by hand: q_g ~ q_g exp(eta L_g)."""
    import torch.nn.functional as F

    from debias.data.manifest import read_manifest, to_tensor
    from debias.sampling import GroupDRO
    from debias.train.loop import _Step, build_model, train_one_epoch

    m = read_manifest(tiny_synth)
    m = m[m.split == "train"]
    pos = np.concatenate([np.flatnonzero(m.label.to_numpy() == 1)[:8], np.flatnonzero(m.label.to_numpy() == 0)[:8]])
    pixels = np.load(tiny_synth / "images.npy")[m.image.to_numpy()]
    labels = m.label.to_numpy().astype(np.float32)
    groups = np.full(len(m), 2)
    groups[pos[:8:2]], groups[pos[1:8:2]] = 0, 1  # two face groups, non-faces the third
    cfg = TrainConfig(method="dbvae", recipe="paper", **FAST)
    torch.manual_seed(0)
    model = build_model(cfg, 64)
    with torch.no_grad():  # train mode, as in the step: BatchNorm uses this batch's statistics either way
        logit = model.encode(to_tensor(pixels[pos]))[0]
    bce = F.binary_cross_entropy_with_logits(logit, torch.from_numpy(labels[pos]), reduction="none").numpy()
    group_bce = np.array([bce[groups[pos] == g].mean() for g in range(3)])
    dro = GroupDRO(3, eta=1.0)
    out = train_one_epoch(_Step(model, cfg), torch.optim.Adam(model.parameters(), lr=1e-4), [pos],
                          lambda p: pixels[p], labels, torch.device("cpu"), groups=groups, dro=dro)
    q = np.exp(group_bce) / np.exp(group_bce).sum()  # from q = 1/3 each
    assert dro.q == pytest.approx(q, rel=1e-4)
    # the step minimises sum_g q_g L_g (BCE) plus the batch mean of the faces' reconstruction and KL terms
    vae = 8 / 16 * (cfg.c_rec * out["rec"] + cfg.beta * out["kl"])
    assert out["loss"] == pytest.approx(float(q @ group_bce) + vae, rel=1e-4)
    # what the whole per-image loss would have given (face groups + their reconstruction): visibly different
    whole = group_bce + np.array([1, 1, 0]) * cfg.c_rec * out["rec"]
    assert not np.allclose(np.exp(whole) / np.exp(whole).sum(), q, rtol=0.02)



def test_resuming_a_run_whose_config_predates_a_new_option_takes_the_options_default(tiny_synth, tmp_path):
    import json

    cfg = TrainConfig(method="standard", **FAST)
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_synth, cfg, tmp_path, progress=_killer(8 + 3))
    conf = json.loads((tmp_path / "config.json").read_text())
    del conf["swa_from"]  # as written before the option existed
    (tmp_path / "config.json").write_text(json.dumps(conf))
    fit(tiny_synth, cfg, tmp_path, resume=True)  # used to fail: "option(s) swa_from differ"
    assert (tmp_path / "model.pt").exists()
    with pytest.raises(TrainingError, match="swa_from differ"):  # a real change is still refused
        fit(tiny_synth, TrainConfig(method="standard", swa_from=1, **FAST), tmp_path, resume=True)


@pytest.mark.parametrize("flag, value, says", [
    ("--min-ess", "0", "--min-ess=0.0 must be in (0, 1]"),
    ("--smooth-k", "-1", "--smooth-k=-1 must be >= 0"),
    ("--face-ratio", "0", "--face-ratio=0.0 must be in (0, 1]"),
    ("--batch-size", "1", "--batch-size=1 must be at least 2"),
    ("--epochs", "0", "--epochs=0 must be at least 1"),
    ("--beta", "-1", "--beta=-1.0"),
    ("--max-train", "-5", "--max-train=-5"),
    ("--sam-rho", "-1", "--sam-rho=-1.0 must be >= 0"),
])
def test_every_bad_train_option_is_named_by_its_flag(tiny_synth, tmp_path, flag, value, says):
    # before: range errors printed the keyword (min_ess=0.0), which is not what the user typed
    r = CliRunner().invoke(app, ["train", str(tiny_synth), "--out", str(tmp_path / "r"), flag, value])
    assert r.exit_code == 2 and says in r.output and "Traceback" not in r.output, r.output
    assert not (tmp_path / "r").exists()


def _count_steps(monkeypatch):
    """Count optimisation steps, and record the count (``latent_at``) and the means read (``latent``) whenever the
    latent means are read (the DB-VAE's weights)."""
    import debias.train.fitting as fit_mod
    import debias.train.samplers as samplers_mod

    seen = {"steps": 0, "latent_at": [], "latent": []}
    real_make, real_predict = fit_mod.make_optimizer, samplers_mod.predict_scores

    def make(model, cfg):
        opt = real_make(model, cfg)
        real_step = opt.step

        def step(*a, **k):
            seen["steps"] += 1
            return real_step(*a, **k)
        opt.step = step
        return opt

    def predict(*a, with_latent=False, **k):
        out = real_predict(*a, with_latent=with_latent, **k)
        if with_latent:
            seen["latent_at"].append(seen["steps"])
            seen["latent"].append(out[1])
        return out
    monkeypatch.setattr(fit_mod, "make_optimizer", make)
    monkeypatch.setattr(samplers_mod, "predict_scores", predict)
    return seen


def test_freeze_after_reads_the_latent_after_that_many_images_and_resumes_exactly(tiny_synth, tmp_path, monkeypatch):
    frozen = dict(method="dbvae", recipe="paper", refresh_weights=False, **{**FAST, "epochs": 3})  # 256 images / 32 = 8 steps an epoch
    seen = _count_steps(monkeypatch)
    fit(tiny_synth, TrainConfig(freeze_after=96, **frozen), tmp_path / "mid")
    assert seen["latent_at"] == [3]  # 96 images = 3 steps into the first epoch, read once, then kept
    hist = pd.read_csv(tmp_path / "mid" / "history.csv")
    assert hist.ess.iloc[0] == pytest.approx(1.0) and (hist.ess.iloc[1:] < 0.999).all()  # resampling from epoch 2
    seen.update(steps=0, latent_at=[])
    fit(tiny_synth, TrainConfig(**frozen), tmp_path / "epoch")
    assert seen["latent_at"] == [8]  # without it: at the start of epoch 2 (--resample-from 1), after 8 steps
    # a freeze point beyond the first epoch changes nothing: the start of --resample-from's epoch comes first
    fit(tiny_synth, TrainConfig(freeze_after=10_000, **frozen), tmp_path / "late")
    a, b = _state(tmp_path / "epoch"), _state(tmp_path / "late")
    assert all(torch.equal(a[k], b[k]) for k in a)
    mid = _state(tmp_path / "mid")
    assert not all(torch.equal(a[k], mid[k]) for k in a)
    # killed in epoch 2 and resumed: the weights read mid-epoch 1 come back from the checkpoint, not re-read
    cfg = TrainConfig(freeze_after=96, **frozen)
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_synth, cfg, tmp_path / "cut", progress=_killer(8 + 3))
    seen.update(latent_at=[])
    fit(tiny_synth, cfg, tmp_path / "cut", resume=True)
    assert seen["latent_at"] == []
    c = _state(tmp_path / "cut")
    assert all(torch.equal(mid[k], c[k]) for k in mid)


def test_freeze_after_needs_kept_dbvae_weights():
    for kw, says in ((dict(method="dbvae", recipe="paper"), "`freeze_after` sets when"),
                     (dict(method="standard", refresh_weights=False), "needs `method`='dbvae'")):
        with pytest.raises(ValueError, match=says):
            TrainConfig(freeze_after=100, **kw)
    with pytest.raises(ValueError, match="freeze_after`=-1"):
        TrainConfig(freeze_after=-1)


@pytest.mark.parametrize("freeze_after, steps", [(0, 8), (96, 3)])
def test_weights_only_saves_a_full_runs_weights_and_trains_only_until_they_are_computed(tiny_synth, tmp_path,
                                                                                      monkeypatch, freeze_after, steps):
    """The recipe's first command: ``weights_only`` stops once the kept weights are computed (at the start of epoch 2,
    8 steps of 32 into 256 images, or 3 steps in with ``freeze_after`` 96) and saves the weights a full 3-epoch run of
    the same options samples by from epoch 2 on; its history's last row reports them as that run's epoch 2 does."""
    frozen = dict(method="dbvae", recipe="paper", refresh_weights=False, freeze_after=freeze_after, **{**FAST, "epochs": 3})
    fit(tiny_synth, TrainConfig(**frozen), tmp_path / "full")
    seen = _count_steps(monkeypatch)
    logs = []
    hist = fit(tiny_synth, TrainConfig(weights_only=True, **frozen), tmp_path / "only", log=logs.append)
    assert seen["steps"] == steps and seen["latent_at"] == [steps]
    full = pd.read_csv(tmp_path / "full" / "sampling_weights.csv")
    only = pd.read_csv(tmp_path / "only" / "sampling_weights.csv")
    assert full["p"].std() > 0 and only["p"].tolist() == full["p"].tolist()
    assert only["image"].tolist() == full["image"].tolist()
    full_hist = pd.read_csv(tmp_path / "full" / "history.csv")
    assert hist["epoch"].tolist() == [0, 1] and np.isfinite(hist["loss"].iloc[0]) and np.isnan(hist["loss"].iloc[1])
    cols = ["ess", *[c for c in full_hist.columns if c.startswith("mass[")]]
    only_hist = pd.read_csv(tmp_path / "only" / "history.csv")  # both as written (6 significant digits)
    assert only_hist["epoch"].tolist() == [0, 1]
    assert only_hist[cols].iloc[1].tolist() == full_hist[cols].iloc[1].tolist()
    assert any(f"computed after {steps * 32} training images" in m for m in logs), logs
    # the second command reads them as it reads a full run's
    fit(tiny_synth, TrainConfig(method="standard", weights_from=str(tmp_path / "only"), **{**FAST, "epochs": 1}),
        tmp_path / "second")
    assert load_run(tmp_path / "only")[0] is not None


def test_weights_only_resumed_after_its_last_checkpoint_reports_the_images_it_trained(tiny_synth, tmp_path,
                                                                                    monkeypatch):
    """A ``weights_only`` run stopped mid-epoch by ``freeze_after`` (3 steps of 32), killed after that epoch's
    checkpoint and before its run folder is written, then resumed: it reports the 96 images it trained, as the
    uninterrupted run does, not the whole epoch's 256 (the stopping step was not in the checkpoint)."""
    import debias.train.fitting as train

    cfg = TrainConfig(method="dbvae", recipe="paper", refresh_weights=False, freeze_after=96, weights_only=True,
                      **{**FAST, "epochs": 3})
    real = train.weights_row

    def killed(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "weights_row", killed)
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_synth, cfg, tmp_path / "cut")
    assert (tmp_path / "cut" / "checkpoint.pt").exists() and not (tmp_path / "cut" / "model.pt").exists()
    monkeypatch.setattr(train, "weights_row", real)
    logs = []
    fit(tiny_synth, cfg, tmp_path / "cut", resume=True, log=logs.append)
    assert any("computed after 96 training images" in m for m in logs), logs
    fit(tiny_synth, cfg, tmp_path / "full")
    assert (pd.read_csv(tmp_path / "cut" / "sampling_weights.csv")["p"].tolist()
            == pd.read_csv(tmp_path / "full" / "sampling_weights.csv")["p"].tolist())


def test_weights_only_without_weights_to_keep_is_refused():
    for kw, says in ((dict(method="standard"), "needs `method`='dbvae'"),
                     (dict(method="dbvae", recipe="paper"), "refresh_weights=False"),
                     (dict(method="dbvae", recipe="paper", refresh_weights=False, epochs=1),
                      "`resample_from` \\(1\\) below `epochs` \\(1\\)"),
                     (dict(method="dbvae", recipe="paper", refresh_weights=False, epochs=3, swa_from=1),
                      "not a network to use")):
        with pytest.raises(ValueError, match=says):
            TrainConfig(weights_only=True, **kw)


def test_latent_weights_name_a_rare_labelled_group_they_draw_less_often_than_uniform_by_hand():
    """20 faces: 1 darker (5%) and 1 profile (5%), 10 female (50%, not rare). The weights put half the mass on the
    darker face and 1% on the profile one: both are reported beside their 5% share, and only profile is named."""
    from debias.train.samplers import rare_group_note as _rare_group_note

    faces = pd.DataFrame({"skin_group": ["darker"] + ["lighter"] * 19,
                          "pose": ["frontal"] * 19 + ["profile"],
                          "gender": ["female", "male"] * 10})
    p = np.full(20, 0.49 / 18)
    p[0], p[19] = 0.50, 0.01
    logs = []
    _rare_group_note(p, faces, logs.append)
    assert len(logs) == 2, logs
    assert logs[0].endswith("skin_group=darker 50.0% (5.0%), pose=profile 1.0% (5.0%)"), logs[0]
    assert "gender" not in logs[0] and "lighter" not in logs[0]
    assert logs[1].startswith("note: the latent weights give pose=profile less than its share"), logs[1]
    assert "darker" not in logs[1]
    logs.clear()
    _rare_group_note(np.full(20, 1 / 20), faces.assign(pose="frontal"), logs.append)  # uniform: nothing below
    assert logs == ["the latent weights are uniform: every face is drawn equally often, so they favour no group"]
    logs.clear()  # uniform up to rounding (vae-uniform, or tempered flat by the ESS floor): no group named below
    _rare_group_note(np.full(20, 1 / 20) * (1 + 1e-9 * np.arange(20)), faces, logs.append)
    assert len(logs) == 1 and "less than" not in logs[0]


def test_latent_weights_name_a_common_group_they_over_sample_by_hand():
    """On sets already balanced by skin tone the default's weights gave darker faces (a third of them) 36-67% of the
    mass, and lighter faces were then detected worse; nothing said so. 30 faces, 10 darker given 60% of the mass."""
    from debias.train.samplers import rare_group_note

    faces = pd.DataFrame({"skin_group": ["darker"] * 10 + ["lighter"] * 20})
    p = np.r_[np.full(10, 0.6 / 10), np.full(20, 0.4 / 20)]
    logs = []
    rare_group_note(p, faces, logs.append)
    assert logs == ["note: the latent weights give skin_group=darker 60% of the mass though it holds 33% of the "
                    "training faces. Where a group is not under-represented, resampling toward it can lower accuracy "
                    "for the others: audit this run against `standard` (debias audit DATA -m run:STANDARD -m "
                    "run:THIS)"], logs
    logs.clear()
    rare_group_note(np.r_[np.full(10, 0.45 / 10), np.full(20, 0.55 / 20)], faces, logs.append)  # 1.35x: no note
    assert logs == []


def test_a_dbvae_run_reports_its_weights_mass_on_rare_labelled_groups(tiny_synth, tmp_path):
    logs = []
    fit(tiny_synth, TrainConfig(method="dbvae", recipe="paper", refresh_weights=False, **FAST), tmp_path, log=logs.append)
    line = next(m for m in logs if m.startswith("latent weights' mass on the rare labelled groups"))
    sw = pd.read_csv(tmp_path / "sampling_weights.csv")  # the kept weights, read back independently
    checked = 0
    for attr in ("skin_group", "pose"):
        share = sw[attr].value_counts(normalize=True)
        mass = sw.groupby(attr)["p"].sum() / sw["p"].sum()
        for g in share[share < 0.10].index:
            assert f"{attr}={g} {mass[g]:.1%} ({share[g]:.1%})" in line, (line, g)
            checked += 1
    assert checked and line.count("=") == checked, line  # every rare group, and only those


@pytest.mark.parametrize("method", ["standard", "dbvae"])
def test_swa_saves_the_mean_of_the_epochs_weights_with_fresh_batchnorm_statistics(tiny_synth, tmp_path, method):
    """--swa-from 1 over 3 epochs: the saved weights are the mean, computed here, of the weights after epochs 2 and 3
    of the same run without averaging (averaging never changes training: runs of 2 and 3 epochs give them); the
    BatchNorm statistics are recomputed, so they are neither run's; a run cut in epoch 3 and resumed saves the same."""
    # dbvae: the DB-VAE network itself (the default recipe's averaged network is its stage-2 classifier, as standard)
    fast = {**FAST, "method": method, **({"recipe": "paper"} if method == "dbvae" else {})}
    two, three = (_state(_fit_to(tiny_synth, TrainConfig(**{**fast, "epochs": e}), tmp_path / f"e{e}")) for e in (2, 3))
    cfg = TrainConfig(**{**fast, "epochs": 3, "swa_from": 1})
    swa = _state(_fit_to(tiny_synth, cfg, tmp_path / "swa"))
    params = [k for k in swa if not any(b in k for b in ("running_", "num_batches"))]
    assert len(params) > 4 and any("running_mean" in k for k in swa)
    for k in params:
        assert torch.allclose(swa[k], (two[k] + three[k]) / 2, atol=1e-6), k
    for k in (k for k in swa if "running_mean" in k):
        assert not torch.allclose(swa[k], three[k]) and not torch.allclose(swa[k], two[k]), k
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_synth, cfg, tmp_path / "cut", progress=_killer(16 + 3))
    fit(tiny_synth, cfg, tmp_path / "cut", resume=True)
    cut = _state(tmp_path / "cut")
    assert all(torch.equal(cut[k], swa[k]) for k in swa)


def _fit_to(data, cfg, out):
    fit(data, cfg, out)
    return out


def test_swa_from_outside_the_run_is_refused_by_its_flag(tiny_synth, tmp_path):
    r = CliRunner().invoke(app, ["train", str(tiny_synth), "--out", str(tmp_path / "r"), "--epochs", "3",
                                 "--swa-from", "3"])
    assert r.exit_code == 2 and "swa_from" in r.output.replace("-", "_") and "epochs" in r.output, r.output
    assert "Traceback" not in r.output and not (tmp_path / "r").exists()


def test_train_on_a_missing_or_unpacked_folder_says_which(tmp_path):
    """A folder that does not exist was told it 'holds image files, not a packed images.npy'."""
    r = CliRunner().invoke(app, ["train", str(tmp_path / "nodir"), "--out", str(tmp_path / "r")])
    assert r.exit_code == 2 and "holds image files" not in r.output and "manifest" in r.output, r.output
    folder = tmp_path / "imgs"
    folder.mkdir()
    import cv2

    for i in range(2):
        cv2.imwrite(str(folder / f"{i}.png"), np.zeros((8, 8, 3), np.uint8))
    pd.DataFrame({"image": ["0.png", "1.png"], "label": [1, 0], "split": "train"}).to_csv(folder / "manifest.csv",
                                                                                        index=False)
    r = CliRunner().invoke(app, ["train", str(folder), "--out", str(tmp_path / "r2")])
    assert r.exit_code == 2 and "debias data pack" in r.output, r.output


@pytest.mark.parametrize("flag", ["--torchscript", "--onnx"])
def test_export_of_a_folder_that_is_not_a_run_is_an_error_not_a_traceback(tmp_path, flag):
    r = CliRunner().invoke(app, ["export", str(tmp_path), flag, str(tmp_path / "m.out")])
    out = " ".join(r.output.split())
    assert r.exit_code == 2 and "model.pt does not exist" in out and "debias train" in out, r.output
    assert "Traceback" not in out and isinstance(r.exception, SystemExit)


def test_worst_group_loss_is_the_largest_groups_log_loss_by_hand():
    from sklearn.metrics import log_loss

    from debias.train.loop import worst_group_loss

    s = np.array([0.9, 0.6, 0.2, 0.1, 0.7, 1.0])
    y = np.array([1, 1, 1, 0, 0, 0])
    g = np.array([0, 0, 2, 2, 2, 0])  # group 1 empty: skipped
    by_hand = {0: -(np.log(0.9) + np.log(0.6) + np.log(1e-7)) / 3, 2: -(np.log(0.2) + np.log(0.9) + np.log(0.3)) / 3}
    assert worst_group_loss(s, y, g) == pytest.approx(max(by_hand.values()))
    assert by_hand[2] == pytest.approx(log_loss(y[g == 2], s[g == 2], labels=[0, 1]))


def _val_worst_group_loss(data, run, groups_of):
    """The worst group's validation log-loss of a run's saved model, computed here with scikit-learn."""
    from sklearn.metrics import log_loss

    from debias.data.manifest import ManifestDataset
    from debias.models.run import predict_scores

    val = ManifestDataset(data, "val")
    s, _ = predict_scores(load_run(run)[0], val.images_uint8, len(val), torch.device("cpu"))
    y, g = val.frame["label"].to_numpy(), groups_of(val.frame)
    return max(log_loss(y[g == k], np.clip(s[g == k], 1e-7, 1 - 1e-7), labels=[0, 1]) for k in np.unique(g))


def test_weights_from_draws_a_plain_classifiers_faces_by_another_runs_weights(tiny_synth, tmp_path):
    cfg = TrainConfig(method="dbvae", recipe="paper", refresh_weights=False, **{**FAST, "epochs": 3})
    fit(tiny_synth, cfg, tmp_path / "first")
    # the README's recipe: a frozen DB-VAE trained 2 epochs saves the very weights its longer run samples by
    fit(tiny_synth, dataclasses.replace(cfg, epochs=2), tmp_path / "short")
    short = pd.read_csv(tmp_path / "short" / "sampling_weights.csv")
    first = pd.read_csv(tmp_path / "first" / "sampling_weights.csv")
    assert short["p"].std() > 0 and short["p"].tolist() == first["p"].tolist()
    # its weights, rewritten by hand: all the mass on three darker faces, rows shuffled
    w = pd.read_csv(tmp_path / "first" / "sampling_weights.csv")
    chosen = w.index[w.skin_group == "darker"][:3]
    w["p"] = 0.0
    w.loc[chosen, "p"] = [2.0, 1.0, 1.0]  # normalised to 0.5, 0.25, 0.25
    w.sample(frac=1.0, random_state=0).to_csv(tmp_path / "hand.csv", index=False)
    hist = fit(tiny_synth, TrainConfig(method="standard", weights_from=str(tmp_path / "hand.csv"), **FAST),
               tmp_path / "second")
    got = pd.read_csv(tmp_path / "second" / "sampling_weights.csv")
    assert got["image"].tolist() == w["image"].tolist()  # back in the training faces' order
    assert got["p"].to_numpy() == pytest.approx(np.where(w.index.isin(chosen), w["p"] / 4, 0.0), abs=1e-6)
    assert hist["mass[skin_group=darker]"].tolist() == pytest.approx([1.0, 1.0])  # every epoch, from the first
    assert hist["ess"].iloc[0] == pytest.approx(1.0 ** 2 / (0.5 ** 2 + 2 * 0.25 ** 2) / len(w))
    # a run folder works as well as its CSV, and uniform weights give the same mass as the data
    w["p"] = 1.0
    w.to_csv(tmp_path / "first" / "sampling_weights.csv", index=False)
    hist = fit(tiny_synth, TrainConfig(method="standard", weights_from=str(tmp_path / "first"), **FAST),
               tmp_path / "third")
    assert hist["mass[skin_group=darker]"].iloc[0] == pytest.approx((w.skin_group == "darker").mean(), abs=1e-6)


@pytest.mark.parametrize("edit, message", [
    (lambda w: w.drop(columns="p"), "no 'image' and 'p' columns"),
    (lambda w: w.assign(p=w.p.where(w.index != 4, -1.0)), "row 6 has p=-1.0"),
    (lambda w: w.iloc[1:], "1 of them without a weight"),
    (lambda w: pd.concat([w, w.iloc[:1].assign(image=10**6)]), "1 weights for images it does not train on"),
    (lambda w: w.assign(p=0.0), "sum to 0"),
    (lambda w: pd.concat([w, w.iloc[2:3]]), "appears twice"),
    # one image name that is not a number made pandas read every image as text, and no face matched its weight
    (lambda w: pd.concat([w, w.iloc[:1].assign(image="nowhere.png")]),
     "(0 of them without a weight, 1 weights for images it does not train on)"),
])
def test_weights_from_refuses_weights_that_do_not_fit_the_run_with_exit_2(tiny_synth, tmp_path, edit, message):
    fit(tiny_synth, TrainConfig(method="standard", **{**FAST, "epochs": 1}), tmp_path / "first")
    edit(pd.read_csv(tmp_path / "first" / "sampling_weights.csv")).to_csv(tmp_path / "w.csv", index=False)
    r = CliRunner().invoke(app, ["train", str(tiny_synth), "--out", str(tmp_path / "run"), "--method", "standard",
                                 "--weights-from", str(tmp_path / "w.csv"), "--epochs", "1", "--max-train", "256",
                                 "--width", "4", "--no-compile"])
    out = " ".join(r.output.split())  # rich wraps the message
    assert r.exit_code == 2, r.output
    assert message in out and str(tmp_path / "w.csv") in out and "Traceback" not in out


def test_weights_from_is_refused_for_methods_that_choose_their_own_weights_and_missing_files(tiny_synth, tmp_path):
    with pytest.raises(ValueError, match="use it with `method`='standard', not 'dbvae'"):
        TrainConfig(method="dbvae", recipe="paper", weights_from="runs/x")
    r = CliRunner().invoke(app, ["train", str(tiny_synth), "--out", str(tmp_path / "run"), "--method", "standard",
                                 "--weights-from", str(tmp_path / "nowhere"), "--epochs", "1", "--no-compile"])
    out = " ".join(r.output.split())
    assert r.exit_code == 2 and f"{tmp_path / 'nowhere'} does not exist" in out and "Traceback" not in out


# ------------------------------------------------------------------------------------------------
# the default recipe: `debias train DATA --out RUN` with no other option
# ------------------------------------------------------------------------------------------------

def test_the_recipe_resolves_by_hand_for_the_size_of_the_data():
    from debias.train.recipes import latent_stage, resolve

    dbvae = TrainConfig()
    # the effective-sample-size floor: 10% of the faces, and never fewer than 1,000 faces
    assert resolve(dbvae, n_faces=10_000).min_ess == pytest.approx(0.1)
    assert resolve(dbvae, n_faces=50_000).min_ess == pytest.approx(0.1)
    assert resolve(dbvae, n_faces=4_000).min_ess == pytest.approx(0.25)
    assert resolve(dbvae, n_faces=500).min_ess == 1.0
    r = resolve(dbvae, n_faces=10_000)
    assert (r.rec_region, r.refresh_weights, r.smooth_k, r.sam_rho, r.freeze_after) == ("center", False, 50, 0.05,
                                                                                        20_000)
    # the latent is read after ~20,000 training images: at the start of the nearest epoch, or mid-epoch
    for epoch_images, resample_from, freeze_after in ((19_968, 1, 0), (99_968, 1, 20_000), (7_936, 3, 20_000)):
        first = latent_stage(r, epoch_images=epoch_images)
        assert (first.resample_from, first.freeze_after, first.weights_only) == (resample_from, freeze_after, True)
        assert first.epochs == resample_from + 1
    # what the user sets is kept; the paper's recipe and the other methods take the paper's values
    assert resolve(TrainConfig(min_ess=0.5, sam_rho=0.0), n_faces=10_000).min_ess == 0.5
    assert resolve(TrainConfig(min_ess=0.5, sam_rho=0.0), n_faces=10_000).sam_rho == 0.0
    paper = resolve(TrainConfig(recipe="paper"), n_faces=10_000)
    assert (paper.rec_region, paper.min_ess, paper.refresh_weights, paper.smooth_k, paper.sam_rho) == (
        "full", 0.3, True, 0, 0.0)
    assert resolve(TrainConfig(method="standard"), n_faces=10_000).sam_rho == 0.0
    with pytest.raises(ValueError, match="two-stage recipe keeps the latent weights"):
        TrainConfig(refresh_weights=True)


TWO_STAGE_FAST = dict(FAST, freeze_after=256, min_ess=0.3)  # a tiny set: the latent read after one epoch


def test_the_default_trains_both_stages_in_one_run_as_the_two_commands_do(tiny_synth, tmp_path):
    """`debias train DATA --out RUN` against its two stages run by hand: a DB-VAE that saves its kept latent weights,
    then a plain classifier with SAM drawing by them. Same weights, same model, and one config.json that records
    both."""
    import json

    fit(tiny_synth, TrainConfig(**TWO_STAGE_FAST), tmp_path / "default")
    by_hand = dict(TWO_STAGE_FAST, recipe="paper", rec_region="center", smooth_k=50)
    fit(tiny_synth, TrainConfig(method="dbvae", refresh_weights=False, weights_only=True, resample_from=1,
                                sam_rho=0.05, **{**by_hand, "freeze_after": 0}), tmp_path / "first")
    fit(tiny_synth, TrainConfig(method="standard", sam_rho=0.05, weights_from=str(tmp_path / "first"), **FAST),
        tmp_path / "second")
    run = tmp_path / "default"
    for a, b in ((run / "latent" / "sampling_weights.csv", tmp_path / "first" / "sampling_weights.csv"),
                 (run / "sampling_weights.csv", tmp_path / "second" / "sampling_weights.csv")):
        assert a.read_bytes() == b.read_bytes()
    mine, want = load_run(run)[0].state_dict(), load_run(tmp_path / "second")[0].state_dict()
    assert all(torch.equal(mine[k], want[k]) for k in want)
    conf = json.loads((run / "config.json").read_text())
    assert (conf["method"], conf["recipe"], conf["sam_rho"], conf["min_ess"]) == ("dbvae", "two-stage", 0.05, 0.3)
    assert conf["stages"]["latent"]["weights_only"] and conf["stages"]["classifier"]["method"] == "standard"


def test_a_resumed_default_run_keeps_its_first_stage_and_finishes_the_second(tiny_synth, tmp_path):
    cfg = TrainConfig(**{**TWO_STAGE_FAST, "epochs": 3})
    with pytest.raises(KeyboardInterrupt):  # 8 steps an epoch: stage 1 stops after 8, stage 2 is cut in its 2nd epoch
        fit(tiny_synth, cfg, tmp_path / "cut", progress=_killer(8 + 8 + 3))
    weights = (tmp_path / "cut" / "latent" / "sampling_weights.csv").read_bytes()
    logs = []
    fit(tiny_synth, cfg, tmp_path / "cut", resume=True, log=logs.append)
    assert any("kept the latent weights already in" in m for m in logs), logs
    assert (tmp_path / "cut" / "latent" / "sampling_weights.csv").read_bytes() == weights
    fit(tiny_synth, cfg, tmp_path / "full")
    a, b = load_run(tmp_path / "cut")[0].state_dict(), load_run(tmp_path / "full")[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in b)


def test_a_default_run_started_at_a_relative_path_resumes_from_its_absolute_one(tiny_synth, tmp_path, monkeypatch):
    """The classifier stage recorded `weights_from` as the latent folder's path as typed ("cut/latent"), so resuming
    the same run by its absolute path (or from another directory) was refused as a changed option."""
    cfg = TrainConfig(**{**TWO_STAGE_FAST, "epochs": 3})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_synth, cfg, "cut", progress=_killer(8 + 8 + 3))
    monkeypatch.chdir(tmp_path.parent)
    fit(tiny_synth, cfg, tmp_path / "cut", resume=True)
    conf = json.loads((tmp_path / "cut" / "config.json").read_text())
    assert conf["stages"]["classifier"]["weights_from"] == str((tmp_path / "cut" / "latent").resolve())


def test_a_set_too_small_to_resample_says_so_and_samples_uniformly(tiny_synth, tmp_path):
    logs = []
    fit(tiny_synth, TrainConfig(**{**FAST, "freeze_after": 256, "epochs": 1}), tmp_path, log=logs.append)
    assert any("leaves sampling uniform" in m for m in logs), logs
    p = pd.read_csv(tmp_path / "sampling_weights.csv")["p"]
    np.testing.assert_allclose(p, 1 / len(p), rtol=1e-4)


def test_train_help_lists_only_options_kept_and_groups_them():
    r = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0
    for gone in ("--mixup", "--input-norm", "--keep", "--margin", "--max-weight", "--flatten-clusters",
                 "--latent-dro", "--dro-resample", "--latent-groups", "--dro-adjust", "--rec-target", "--density",
                 "--weight-decay", "--lr-schedule", "--loss-tilt"):
        assert gone not in r.output, gone
    for panel in ("Essentials", "DB-VAE", "Labelled references", "Optimisation", "Hardware"):
        assert panel in r.output
    assert r.output.index("─ Essentials") < r.output.index("─ DB-VAE ─") and "RESULTS" not in r.output


def test_balance_by_given_as_one_name_is_one_column_not_its_letters():
    """`debias.fit(..., balance_by="pose")` read the string letter by letter ('p', 'o', 's', 'e')."""
    assert TrainConfig(balance_by="pose").balance_by == ("pose",)
    assert TrainConfig(balance_by="skin_group, pose").balance_by == ("skin_group", "pose")
