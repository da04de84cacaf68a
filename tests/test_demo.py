from __future__ import annotations

import json

import pandas as pd
from typer.testing import CliRunner

from debias.cli import app


def test_quick_demo_end_to_end(tmp_path):
    r = CliRunner().invoke(app, ["demo", "--quick", "--no-compile", "--epochs", "1", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    for f in ("report.html", "metrics.csv", "disparities.csv", "paired.csv", "summary.json", "preview.png",
              "latent/traversals.png", "runs/dbvae/model.pt", "runs/dbvae/latent/model.pt"):
        assert (tmp_path / f).exists(), f
    assert not (tmp_path / "runs" / "balanced").exists()  # the labelled reference only with --oracle
    s = json.loads((tmp_path / "summary.json").read_text())
    assert set(s["models"]) == {"standard", "dbvae"}
    paired = pd.read_csv(tmp_path / "paired.csv")
    assert set(paired.model) == {"dbvae"} and (paired.baseline == "standard").all()
    html = (tmp_path / "report.html").read_text()
    assert "What the DB-VAE learned" in html and "Headline" in html and "standard vs DB-VAE" in html
    assert "Every model trained for 1 epoch with flips and small scale and shift jitter (never colour)" in html


def test_demo_report_says_how_every_model_trained():
    from debias.demo import DemoConfig, _training_sentence

    assert _training_sentence(DemoConfig()) == (
        "Every model trained for 6 epochs with flips and small scale and shift jitter (never colour), each with the "
        "defaults of `debias train`: the DB-VAE's two-stage recipe also trains with sharpness-aware minimisation.")


def test_demo_trains_at_the_budget_its_benchmark_figures_were_measured_at():
    """The demo trains at the debiasing benchmark's default budget (`benchmarks/debiasing.py --epochs`)."""
    import re
    from pathlib import Path

    from debias.demo import DemoConfig

    bench = (Path(__file__).resolve().parents[1] / "benchmarks" / "debiasing.py").read_text()
    budget = int(re.search(r'add_argument\("--epochs", type=int, default=(\d+)\)', bench).group(1))
    for quick in (False, True):
        assert {DemoConfig(quick=quick).train(m).epochs for m in ("standard", "dbvae", "balanced")} == {budget}
    assert DemoConfig(epochs=2).train("dbvae").epochs == 2


def test_demo_refuses_bad_options_before_rendering_anything(tmp_path):
    """`demo --epochs -1` rendered the data, then died with a traceback (exit 1)."""
    out = tmp_path / "epochs"
    r = CliRunner().invoke(app, ["demo", "--quick", "--out", str(out), "--epochs", "-1"])
    assert r.exit_code == 2 and "epochs" in r.output and "Traceback" not in r.output, r.output
    assert not out.exists()


def test_demo_trains_exactly_what_the_default_command_and_the_benchmark_default_train(bench_debiasing):
    """The demo's DB-VAE is `debias train DATA --out RUN` with no other option, which is the benchmark's `default`
    label; `--oracle` adds the labelled reference with its own defaults."""
    import dataclasses

    from debias.config import TrainConfig
    from debias.demo import DemoConfig

    cfg = DemoConfig()
    assert cfg.methods == ("standard", "dbvae")
    for method, label in (("dbvae", "default"), ("standard", "standard"), ("balanced", "balanced")):
        demo = cfg.train(method)
        run = TrainConfig(seed=demo.seed, epochs=demo.epochs, compile=demo.compile, device=demo.device,
                          **bench_debiasing.METHODS[label])
        assert dataclasses.asdict(demo) == dataclasses.asdict(run), (method, label)
    assert dataclasses.asdict(cfg.train("dbvae")) == dataclasses.asdict(TrainConfig(seed=0, epochs=6))
