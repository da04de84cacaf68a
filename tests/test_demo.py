from __future__ import annotations

import json

import pandas as pd
from typer.testing import CliRunner

from debias.cli import app


def test_quick_demo_end_to_end(tmp_path):
    r = CliRunner().invoke(app, ["demo", "--quick", "--no-compile", "--epochs", "1", "--out", str(tmp_path)])
    assert r.exit_code == 0, r.output
    for f in ("report.html", "metrics.csv", "disparities.csv", "paired.csv", "summary.json", "preview.png",
              "latent/traversals.png", "runs/dbvae/model.pt", "runs/balanced/history.csv"):
        assert (tmp_path / f).exists(), f
    s = json.loads((tmp_path / "summary.json").read_text())
    assert set(s["models"]) == {"standard", "dbvae", "balanced"}
    paired = pd.read_csv(tmp_path / "paired.csv")
    assert set(paired.model) == {"dbvae", "balanced"} and (paired.baseline == "standard").all()
    html = (tmp_path / "report.html").read_text()
    assert "What the DB-VAE learned" in html and "Headline" in html
