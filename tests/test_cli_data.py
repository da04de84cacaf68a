from __future__ import annotations

import pandas as pd
from typer.testing import CliRunner

from debias.cli import app

runner = CliRunner()


def test_help_lists_commands():
    r = runner.invoke(app, ["--help"])
    assert r.exit_code == 0
    for cmd in ("data", "train", "export", "audit", "report", "demo"):
        assert f" {cmd} " in r.output, cmd
    r = runner.invoke(app, ["data", "--help"])
    for cmd in ("synth", "import", "pack", "annotate", "preview"):
        assert f" {cmd} " in r.output, cmd


def test_annotate_adds_estimates_to_face_rows_only(tmp_path, tiny_synth):
    import shutil

    import numpy as np

    from debias.data.manifest import ManifestDataset
    from debias.data.skin_tone import annotate

    root = tmp_path / "ds"
    shutil.copytree(tiny_synth, root)
    r = runner.invoke(app, ["data", "annotate", str(root), "--skin-tone"])
    assert r.exit_code == 0, r.output
    m = pd.read_csv(root / "manifest.csv")
    faces = m.label == 1
    assert m.loc[faces, "skin_group_est"].notna().all() and m.loc[~faces, "skin_group_est"].isna().all()
    ds = ManifestDataset(tiny_synth, "all")  # the estimates are annotate()'s on the same images, in row order
    f = np.flatnonzero(ds.frame.label.to_numpy() == 1)
    est = annotate(lambda pos: ds.images_uint8(f[pos]), len(f))
    np.testing.assert_allclose(m.loc[faces, "ita"].to_numpy(), est.ita.to_numpy(), rtol=1e-5)
    r = runner.invoke(app, ["data", "annotate", str(root)])
    assert r.exit_code == 2 and "--skin-tone" in r.output


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
    assert r.exit_code == 2 and "--darker-share=2.0 must be between 0 and 1" in r.output


def test_preview_unknown_column(tmp_path, tiny_synth):
    r = runner.invoke(app, ["data", "preview", str(tiny_synth), "--by", "ethnicity", "--out", str(tmp_path / "x.png")])
    assert r.exit_code == 2 and "ethnicity" in r.output and "skin_group" in r.output


def test_synth_names_the_flags_of_bad_values(tmp_path):
    for args, says in ((["--size", "8"], "--size=8 is too small"),
                       (["--darker-share", "0.7", "--medium-share", "0.5"], "--darker-share + --medium-share = 1.2"),
                       (["--light-min", "0"], "--light-min=0.0 to --light-max=1.15 must be positive")):
        r = runner.invoke(app, ["data", "synth", "--out", str(tmp_path / "d"), *args])
        assert r.exit_code == 2 and says in r.output and "Traceback" not in r.output, r.output
