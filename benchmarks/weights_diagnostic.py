"""How the DB-VAE's frozen sampling weights spread over the darker faces.

    PYTHONPATH=. .venv/bin/python benchmarks/weights_diagnostic.py --settings skin-cos skin-cos-darker6 \
        --seeds 0 1 2 3 4 --methods "dbvae center ess0.1 frozen smooth50" "dbvae center ess0.1 frozen smooth50 cap10"

Each run trains exactly as ``debiasing.py run`` would (same data cache, options and seed) until its weights are
computed and kept (``--freeze-weights``: at the start of epoch 2), then stops and reads them from the run's
checkpoint. No test image is looked at. Writes ``results/weights_diagnostic.csv``, one row per setting, method and
seed (rows already there are kept and not recomputed):

- ``mass_darker``: the sampling mass on darker training faces (labelled balance: 1/3);
- ``ess_within_darker``: the ESS of that mass as a fraction of the darker faces (1 = every darker face alike);
- ``top10_within_darker``: the share of it on the 10% most-drawn darker faces (0.1 = even);
- ``max_rate_darker`` / ``mean_rate_darker``: how many times its uniform rate the most-drawn darker face, and the
  average one, are drawn (Group DRO: every darker face 1/3 / share of darker faces);
- ``max_rate``: the same for the most-drawn face of all; ``ess``: the ESS of all the weights, as a fraction of the faces.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).parent))
import debiasing as bench  # noqa: E402

from debias.models.run import load_weights  # noqa: E402
from debias.sampling import ess_fraction  # noqa: E402
from debias.train import fit, load_train_set  # noqa: E402

OUT = Path(__file__).parent / "results" / "weights_diagnostic.csv"
KEY = ["setting", "method", "seed", "n_train"]


class _Stop(Exception):
    pass


def frozen_weights(setting: str, method: str, seed: int, n_train: int, epochs: int, cache: Path):
    """The kept latent weights of one benchmark run and its training faces, in the weights' order."""
    root, cfg = bench.run_setup(dict(setting=setting, method=method, seed=seed, epochs=epochs, n_train=n_train,
                                     cache=cache), "cpu")
    if cfg.method != "dbvae" or cfg.refresh_weights or cfg.resample_from != 1:
        raise SystemExit(f"{method!r}: not a DB-VAE whose weights are kept from the start of epoch 2")

    def stop_at_epoch_3(n=1, **kw):  # the checkpoint written at the end of epoch 2 holds the kept weights
        if str(kw.get("description", "")).startswith("epoch 3/"):
            raise _Stop

    with tempfile.TemporaryDirectory() as d:
        try:
            fit(root, cfg, Path(d) / "run", progress=stop_at_epoch_3)
        except _Stop:
            pass
        p = load_weights(Path(d) / "run" / "checkpoint.pt", torch.device("cpu"))["p_latent"].numpy()
    return p.astype(np.float64), load_train_set(root, cfg).face_frame.reset_index(drop=True)


def spread(p: np.ndarray, faces: pd.DataFrame) -> dict:
    d = (faces.skin_group == "darker").to_numpy()
    pd_, n = p[d], len(p)
    top = np.sort(pd_)[::-1][:max(1, round(0.1 * d.sum()))].sum() / pd_.sum()
    return dict(n_faces=n, n_darker=int(d.sum()), mass_darker=pd_.sum(), ess_within_darker=ess_fraction(pd_),
                top10_within_darker=top, max_rate_darker=pd_.max() * n, mean_rate_darker=pd_.mean() * n,
                max_rate=p.max() * n, ess=ess_fraction(p))


def run_diagnostic(describe, out: Path, doc: str, *, settings: list[str], methods: list[str]) -> None:
    """The command line of a kept-weights diagnostic: for each setting, method and seed not yet in ``out``, train
    until the weights are kept and append one row, ``describe(p, faces)`` after the run's key (resumable)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--settings", nargs="+", default=settings)
    ap.add_argument("--methods", nargs="+", default=methods)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--n-train", type=int, default=20_000)
    ap.add_argument("--epochs", type=int, default=24, help="the run's length (sets its learning-rate schedule)")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/debias-bench"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    a.cache.mkdir(parents=True, exist_ok=True)
    done = pd.read_csv(out) if out.exists() else pd.DataFrame(columns=KEY)
    have = set(map(tuple, done[KEY].astype(str).to_numpy()))
    for setting in a.settings:
        for method in a.methods:
            for seed in a.seeds:
                if (setting, method, str(seed), str(a.n_train)) in have:
                    continue
                p, faces = frozen_weights(setting, method, seed, a.n_train, a.epochs, a.cache)
                row = dict(setting=setting, method=method, seed=seed, n_train=a.n_train, **describe(p, faces))
                print(", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()),
                      flush=True)
                pd.DataFrame([row]).to_csv(out, mode="a", header=not out.exists(), index=False, float_format="%.4g")


def main() -> None:
    run_diagnostic(spread, OUT, __doc__, settings=["skin-cos", "skin-cos-darker6"],
                   methods=["dbvae center ess0.1 frozen smooth50"])


if __name__ == "__main__":
    main()
