"""Which factors the first stage's latent encodes, and which faces its weights favour, as the KL weight beta and the
latent size vary. One row per (setting, rec_region, c_rec, freeze_after, beta, latent_dim, seed, n_train) appended to
results/latent_factors.csv; runs already there are skipped, so a stopped study continues where it stopped.

    PYTHONPATH=. .venv/bin/python benchmarks/latent_factors.py --betas 5e-4 5e-3 5e-2 0.5 --latent-dims 100 16 --seeds 0

Each run trains the default recipe's first stage (the DB-VAE that `debias train` trains into RUN/latent/: centre
reconstruction, SAM 0.05, weights kept after about 20,000 training images, smoothed over 50 neighbours) on the
setting's cached data (`benchmarks/debiasing.py` renders it), with only the grid's options (``beta``, ``latent_dim``, ...) changed, and stops
once its weights are saved (``weights_only``). Then, over the training faces (labels read only to report):

- ``active``: the active units, mean KL(q(z_d|x) || N(0, 1)) > 0.01 nats (``active_var``: Var_x mu_d > 0.01 instead);
- ``rho_<attr>`` / ``rho_<attr>_active``: the strongest |Spearman rho| of a latent dimension with abs_yaw,
  skin_tone, light and gender, over all dimensions / over the active ones;
- ``mass_profile`` / ``mass_darker``: the sampling mass the saved weights give profile / darker faces, beside their
  share of the faces (``share_*``); ``*_active_dims``: the same weights recomputed (same options) from the active
  dimensions of the latent means only; ``p_check``: the largest difference between the saved weights and the ones
  recomputed here from all dimensions (a check that the recomputation is the run's own);
- ``rec`` / ``kl``: the last epoch's mean reconstruction and KL of a face.

``--probe`` trains nothing: for every recorded run whose folder is still under --keep, it fits a linear probe
(ridge regression, 5-fold cross-validated R^2, scikit-learn) from the latent means to abs_yaw, skin_tone and light,
on all dimensions and on the active ones (``r2_<attr>`` / ``r2_<attr>_active``), into results/latent_factors_probe.csv:
a factor spread over many dimensions shows there although no single dimension tracks it.

``--rec-regions full`` trains the same first stage reconstructing the whole image instead of its centre;
``--c-recs`` weighs its reconstruction term otherwise (the encoder is shared with the face logit, and the
classification loss favours features that ignore pose); ``--freeze-afters`` computes its weights after more training
images (20,000 images is about 310 steps, when the reconstructions are still blurred).

The run folders are kept under --keep (default /tmp/debias-latent-factors), for `debias latent RUN DATA`.
"""
from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import debiasing as bench  # noqa: E402

from debias.data.manifest import ManifestDataset  # noqa: E402
from debias.latent import active_units, attribute_encoding, encode_faces, latent_attribute_correlation  # noqa: E402
from debias.models.run import load_run, read_sampling_weights  # noqa: E402
from debias.sampling import latent_weights  # noqa: E402
from debias.train import fit, load_train_set, recipes  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "latent_factors.csv"
PROBE = OUT.with_name("latent_factors_probe.csv")
KEY = ["setting", "rec_region", "c_rec", "freeze_after", "beta", "latent_dim", "seed", "n_train"]
ATTRIBUTES = ("abs_yaw", "yaw", "skin_tone", "light", "gender")


def first_stage(setting: str, seed: int, n_train: int, cache: Path, **opts):
    """The data set and the default recipe's first-stage config of one run, with ``opts`` (beta, latent_dim) set."""
    root, cfg = bench.run_setup(dict(setting=setting, method="default", seed=seed, epochs=6, n_train=n_train,
                                     cache=cache), "cpu")
    cfg = dataclasses.replace(cfg, **opts)
    ts = load_train_set(root, cfg)
    resolved = recipes.resolve(cfg, n_faces=len(ts.face_pos))
    first = recipes.latent_stage(resolved, epoch_images=ts.n_batches(cfg.batch_size) * cfg.batch_size)
    # every option is set, so 'paper' resolves nothing and fit trains this one network (not both stages)
    return root, dataclasses.replace(first, recipe="paper")


def describe(run: Path, root: Path, cfg) -> dict:
    model, _ = load_run(run)
    _, w = read_sampling_weights(run)
    ds = ManifestDataset(root, "train")
    faces = ds.frame[ds.frame.image.astype(str).isin(w.index)].reset_index(drop=True)
    pos = np.flatnonzero(ds.frame.image.astype(str).isin(w.index).to_numpy())
    mu, logvar = encode_faces(model, ds.images_uint8(pos))
    p = w.loc[faces.image.astype(str)].to_numpy(np.float64)
    p = p / p.sum()
    units = active_units(mu, logvar)
    enc = attribute_encoding(latent_attribute_correlation(mu, faces, ATTRIBUTES), units.active)
    opts = dict(bins=cfg.bins, alpha=cfg.alpha, combine=cfg.combine, temperature=cfg.temperature, min_ess=cfg.min_ess,
                smooth_k=cfg.smooth_k)
    again = latent_weights(mu, **opts)
    act = units.active.to_numpy()
    on_active = latent_weights(mu[:, act], **opts) if act.any() else None
    profile, darker = (faces.pose == "profile").to_numpy(), (faces.skin_group == "darker").to_numpy()
    row = dict(active=int(act.sum()), active_var=int((units.mu_var > 0.01).sum()))
    for a in ATTRIBUTES:
        row[f"rho_{a}"] = enc.abs_rho.get(a, np.nan)
        row[f"rho_{a}_active"] = enc.abs_rho_active.get(a, np.nan)
    for name, m in (("profile", profile), ("darker", darker)):
        row[f"share_{name}"] = m.mean()
        row[f"mass_{name}"] = p[m].sum()
        row[f"mass_{name}_active_dims"] = on_active.p[m].sum() if on_active is not None else np.nan
    row["ess_active_dims"] = on_active.ess if on_active is not None else np.nan
    row["p_check"] = float(np.abs(again.p - p).max())
    last = pd.read_csv(run / "history.csv").dropna(subset=["rec"]).iloc[-1]  # not the weights-only row
    row.update(rec=last.get("rec", np.nan), kl=last.get("kl", np.nan))
    return row


def _key(row: dict) -> tuple:
    """A run's key as text, numbers in one format whether they were read back from the CSV or not."""
    return tuple(f"{float(row[c]):g}" if isinstance(row[c], (int, float, np.number)) else str(row[c]) for c in KEY)


def run_name(key: dict) -> str:
    extra = "".join(f"_{c}{key[c]:g}" for c, default in (("c_rec", 1.0), ("freeze_after", recipes.FREEZE_IMAGES))
                    if key[c] != default)
    return (f"{key['setting']}_{key['rec_region']}{extra}_beta{key['beta']:g}_k{key['latent_dim']}_seed{key['seed']}"
            f"_n{key['n_train']}")


def probe(run: Path, root: Path) -> dict:
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold, cross_val_score

    model, _ = load_run(run)
    _, w = read_sampling_weights(run)
    ds = ManifestDataset(root, "train")
    is_face = ds.frame.image.astype(str).isin(w.index).to_numpy()
    faces = ds.frame[is_face].reset_index(drop=True)
    mu, logvar = encode_faces(model, ds.images_uint8(np.flatnonzero(is_face)))
    act = active_units(mu, logvar).active.to_numpy()
    row = {}
    for a, y in (("abs_yaw", faces.yaw.abs()), ("skin_tone", faces.skin_tone), ("light", faces.light)):
        for tag, x in (("", mu), ("_active", mu[:, act])):
            cv = KFold(5, shuffle=True, random_state=0)
            row[f"r2_{a}{tag}"] = (cross_val_score(RidgeCV(alphas=np.logspace(-3, 3, 7)), x, y.to_numpy(float), cv=cv)
                                   .mean() if x.shape[1] else np.nan)
    return row


def run_probes(a) -> None:
    done = pd.read_csv(OUT)
    have = {_key(r) for r in pd.read_csv(PROBE)[KEY].to_dict("records")} if PROBE.exists() else set()
    for key in done[KEY].to_dict("records"):
        run = a.keep / run_name(key)
        if _key(key) in have or not (run / "model.pt").exists():
            continue
        root, _ = bench.run_setup(dict(setting=key["setting"], method="default", seed=key["seed"], epochs=6,
                                       n_train=key["n_train"], cache=a.cache), "cpu")
        row = {**key, **probe(run, root)}
        print(", ".join(f"{c} {v:.3g}" if isinstance(v, float) else f"{c} {v}" for c, v in row.items()), flush=True)
        pd.DataFrame([row]).to_csv(PROBE, mode="a", header=not PROBE.exists(), index=False, float_format="%.4g")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--setting", default="pose", choices=list(bench.SETTINGS))
    ap.add_argument("--betas", type=float, nargs="+", default=[5e-4, 5e-3, 5e-2, 0.5])
    ap.add_argument("--latent-dims", type=int, nargs="+", default=[100, 16])
    ap.add_argument("--rec-regions", nargs="+", default=["center"], choices=["center", "full"],
                    help="what the DB-VAE reconstructs (the recipe's: center)")
    ap.add_argument("--c-recs", type=float, nargs="+", default=[1.0],
                    help="weights of the reconstruction term (the recipe's: 1)")
    ap.add_argument("--freeze-afters", type=int, nargs="+", default=[recipes.FREEZE_IMAGES],
                    help="training images before the weights are computed (the recipe's: 20,000)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--n-train", type=int, default=20_000)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/debias-bench"))
    ap.add_argument("--keep", type=Path, default=Path("/tmp/debias-latent-factors"))
    ap.add_argument("--probe", action="store_true", help="train nothing; probe the recorded runs still kept")
    a = ap.parse_args()
    torch.set_num_threads(1)
    if a.probe:
        return run_probes(a)
    done = pd.read_csv(OUT) if OUT.exists() else pd.DataFrame(columns=KEY)
    have = {_key(r) for r in done[KEY].to_dict("records")}
    grid = [dict(setting=a.setting, rec_region=region, c_rec=c_rec, freeze_after=freeze, beta=beta, latent_dim=k,
                 seed=seed, n_train=a.n_train)
            for seed in a.seeds for region in a.rec_regions for c_rec in a.c_recs for freeze in a.freeze_afters
            for k in a.latent_dims for beta in a.betas]
    for key in grid:
        if _key(key) in have:
            continue
        t = time.perf_counter()
        root, cfg = first_stage(a.setting, key["seed"], a.n_train, a.cache, **{c: key[c] for c in KEY[1:-2]})
        run = a.keep / run_name(key)
        shutil.rmtree(run, ignore_errors=True)
        fit(root, cfg, run)
        row = {**key, **describe(run, root, cfg), "seconds": round(time.perf_counter() - t, 1)}
        print(", ".join(f"{c} {v:.4g}" if isinstance(v, float) else f"{c} {v}" for c, v in row.items()),
              flush=True)
        OUT.parent.mkdir(exist_ok=True)
        pd.DataFrame([row]).to_csv(OUT, mode="a", header=not OUT.exists(), index=False, float_format="%.4g")


if __name__ == "__main__":
    main()
