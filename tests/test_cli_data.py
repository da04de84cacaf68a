from __future__ import annotations

import pandas as pd
from typer.testing import CliRunner

from debias.cli import app

runner = CliRunner()


def test_help_lists_commands():
    r = runner.invoke(app, ["--help"])
    assert r.exit_code == 0
    for cmd in ("data",):
        assert cmd in r.output


def test_synth_and_preview(tmp_path):
    out = tmp_path / "ds"
    r = runner.invoke(app, ["data", "synth", "--out", str(out), "--n-train", "200", "--n-val", "20",
                            "--n-test-per-cell", "2", "--workers", "1", "--png"])
    assert r.exit_code == 0, r.output
    m = pd.read_csv(out / "manifest.csv")
    assert len(m) == 200 + 20 + 72 and (out / m.path[0]).exists()
    r = runner.invoke(app, ["data", "preview", str(out), "--out", str(tmp_path / "g.png")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "g.png").stat().st_size > 10_000


def test_synth_rejects_bad_share(tmp_path):
    r = runner.invoke(app, ["data", "synth", "--out", str(tmp_path), "--darker-share", "2"])
    assert r.exit_code == 2 and "darker_share=2.0 must be between 0 and 1" in r.output


def test_preview_unknown_column(tmp_path, tiny_synth):
    r = runner.invoke(app, ["data", "preview", str(tiny_synth), "--by", "ethnicity", "--out", str(tmp_path / "x.png")])
    assert r.exit_code == 2 and "ethnicity" in r.output and "skin_group" in r.output
