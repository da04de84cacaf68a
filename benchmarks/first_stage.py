"""The two-stage recipe's first command with and without `--weights-only`: are the saved weights the same, and how
much time does stopping once they are computed save? One row per (n_train, seed) in results/first_stage.csv.

    PYTHONPATH=. .venv/bin/python benchmarks/first_stage.py --n-train 20000 --seeds 0
    PYTHONPATH=. .venv/bin/python benchmarks/first_stage.py --n-train 100000 --seeds 0

The first stage is trained exactly as `benchmarks/debiasing.py` trains it for `standard sam0.05 dbvae-weights`
(20,000 images) or `... at20k` (100,000: `--freeze-after 20000`), on the same cached data set, one CPU thread, once in
full (2 epochs, what the benchmark's rows used) and once with `weights_only`.
"""
import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from debiasing import WEIGHTS_FROM, run_setup  # noqa: E402

from debias.train import fit  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "first_stage.csv"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-train", type=int, default=20000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--cache", default="/tmp/debias-bench")
    args = ap.parse_args()
    torch.set_num_threads(1)
    label = "standard sam0.05 dbvae-weights" + (" at20k" if args.n_train > 20000 else "")
    src, epochs = WEIGHTS_FROM[label]
    done = pd.read_csv(OUT) if OUT.exists() else pd.DataFrame(columns=["n_train", "seed"])
    Path(args.cache).mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        if ((done.n_train == args.n_train) & (done.seed == seed)).any():
            print(f"n_train {args.n_train} seed {seed}: already in {OUT.name}")
            continue
        job = dict(setting="skin", method=src, seed=seed, epochs=epochs, n_train=args.n_train, cache=args.cache)
        root, cfg = run_setup(job, "cpu")
        row = dict(n_train=args.n_train, seed=seed, first_stage=src, epochs=epochs)
        with tempfile.TemporaryDirectory() as d:
            p = {}
            for name, c in (("full", cfg), ("weights_only", dataclasses.replace(cfg, weights_only=True))):
                t = time.perf_counter()
                hist = fit(root, c, Path(d) / name)
                row[f"{name}_s"] = round(time.perf_counter() - t, 1)
                p[name] = pd.read_csv(Path(d) / name / "sampling_weights.csv")
                row[f"{name}_mass_darker"] = float(p[name].loc[p[name].skin_group == "darker", "p"].sum())
                print(name, row[f"{name}_s"], "s", len(hist), "history rows", flush=True)
        row["same_images"] = p["full"]["image"].tolist() == p["weights_only"]["image"].tolist()
        row["max_abs_p_diff"] = float(np.abs(p["full"]["p"].to_numpy() - p["weights_only"]["p"].to_numpy()).max())
        row["speedup"] = round(row["full_s"] / row["weights_only_s"], 2)
        print(row, flush=True)
        done = pd.concat([done, pd.DataFrame([row])], ignore_index=True) if len(done) else pd.DataFrame([row])
        done.to_csv(OUT, index=False, float_format="%.6g")


if __name__ == "__main__":
    main()
