"""How well the ITA skin-tone estimate tracks the true Monk tone on the synthetic benchmark.

    .venv/bin/python benchmarks/ita.py [--seed 0]

Renders the default balanced test split, estimates ITA on every face and reports the Spearman rank
correlation with the true tone overall and per lighting level, plus the lighter/darker confusion.
Writes benchmarks/results/ita.csv.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from debias.config import SynthConfig
from debias.data.manifest import ManifestDataset
from debias.data.skin_tone import annotate
from debias.data.synth import generate

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        generate(SynthConfig(n_train=100, n_val=0, seed=a.seed), d)
        ds = ManifestDataset(d, "test")
        faces = np.flatnonzero(ds.frame.label.to_numpy() == 1)
        est = annotate(lambda pos: ds.images_uint8(faces[pos]), len(faces))
    t = ds.frame.iloc[faces].reset_index(drop=True).join(est)
    t["lighting"] = pd.cut(t.light, [0.55, 0.70, 0.85, 1.00, 1.15], include_lowest=True).astype(str)
    rows = [{"lighting": "all", "faces": len(t), "spearman": spearmanr(t.skin_tone.astype(float), t.ita).statistic}]
    for k, g in t.groupby("lighting"):
        rows.append({"lighting": k, "faces": len(g), "spearman": spearmanr(g.skin_tone.astype(float), g.ita).statistic})
    res = pd.DataFrame(rows)
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    res.to_csv(out / "ita.csv", index=False, float_format="%.4f")
    print(res.to_string(index=False))
    print(pd.crosstab(t.skin_group, t.skin_group_est))
