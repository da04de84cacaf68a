"""Slice discovery measured as a method: are planted rare-and-hard groups found without labels?

Each setting renders a training split in which one factor (or two) is rare, and a test split in which a third of
the faces carry it: darker skin, profile pose (both named by the audit's labels), dim light and sunglasses (named
by no audit grouping). `standard` trains on it; then the audit's faces are cut into slices and scored for rarity
four ways, with the same mixture and the same k-NN density so that only the embedding differs:

- ``latent``: what ``debias audit --discover`` does (a DB-VAE fitted on the training faces; the product path);
- ``features``: the classifier's own penultimate features;
- ``pixels``: the raw pixels (standardised, then the same principal components);
- ``random``: random slices and random rarity.

Scored as Domino scores planted slices: for each planted group, the precision and recall of the best of the 3
worst slices (found: precision >= 0.6), the AUC of rarity against a miss, and the precision for the planted group
of the 10 faces rated rarest. The 3 worst slices are the product's slices 1-3 (numbered worst first on the half of
the faces the mixture was fitted on); random slices are ordered by their rate. One row per (setting, seed, method,
group) in benchmarks/results/discover_heldout.csv; finished runs are skipped, so the script resumes where it
stopped. (benchmarks/results/discover.csv holds the rows of the first method, commit 5740f2c, whose mixture cut
and ordered all the faces it was fitted on; `--out` reads or writes another file.)

    python benchmarks/discover.py run --seeds 0 1 2
    python benchmarks/discover.py summary
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

OUT = Path(__file__).parent / "results" / "discover_heldout.csv"
BALANCED_SKIN = dict(darker_share=0.33, medium_share=0.33)
BALANCED_POSE = dict(profile_share=0.33, three_quarter_share=0.33)
# setting -> (synth shares, {planted factor: its share of training faces})
SETTINGS = {
    "darker-1": (dict(darker_share=0.01, **BALANCED_POSE), {"darker": None}),
    "darker-2": (dict(darker_share=0.02, **BALANCED_POSE), {"darker": None}),
    "darker-5": (dict(darker_share=0.05, **BALANCED_POSE), {"darker": None}),
    "profile-2": (dict(profile_share=0.02, **BALANCED_SKIN), {"profile": None}),
    "profile-5": (dict(profile_share=0.05, **BALANCED_SKIN), {"profile": None}),
    "dim-2": (dict(**BALANCED_SKIN, **BALANCED_POSE), {"dim": 0.02}),
    "dim-5": (dict(**BALANCED_SKIN, **BALANCED_POSE), {"dim": 0.05}),
    "sunglasses-1": (dict(**BALANCED_SKIN, **BALANCED_POSE), {"sunglasses": 0.01}),
    "darker-2+profile-2": (dict(darker_share=0.02, profile_share=0.02), {"darker": None, "profile": None}),
    "darker-2+dim-2": (dict(darker_share=0.02, **BALANCED_POSE), {"darker": None, "dim": 0.02}),
}
DIM = (0.2, 0.35)  # light intensity of a dim face (the renderer's default range is 0.55-1.15)
TEST_SHARE = 1 / 3  # share of test faces that carry a planted factor the renderer does not balance
METHODS = ("latent", "features", "pixels", "random")
N_TRAIN, EPOCHS, PER_CELL, K = 6000, 4, 40, 8


def member(frame: pd.DataFrame, factor: str) -> np.ndarray:
    """Whether each face carries a planted factor."""
    return {"darker": lambda f: f["skin_group"] == "darker", "profile": lambda f: f["pose"] == "profile",
            "dim": lambda f: f["light"] < 0.45, "sunglasses": lambda f: f["glasses"] == "sunglasses"}[factor](
        frame).to_numpy()


def plant(attrs: pd.DataFrame, factors: dict, seed: int) -> pd.DataFrame:
    """Training and validation faces carry each unbalanced factor with its share; test faces with TEST_SHARE."""
    rng = np.random.default_rng(seed + 7919)
    a = attrs.copy()
    face = (a["label"] == 1).to_numpy()
    for factor, share in factors.items():
        if share is None:  # the renderer's shares plant it
            continue
        p = np.where(a["split"] == "test", TEST_SHARE, share)
        on = face & (rng.random(len(a)) < p)
        if factor == "dim":
            a.loc[face, "light"] = np.round(rng.uniform(0.55, 1.15, face.sum()), 3)
            a.loc[on, "light"] = np.round(rng.uniform(*DIM, on.sum()), 3)
        else:
            a.loc[face, "glasses"] = np.where(rng.random(face.sum()) < 0.13, "glasses", "none")
            a.loc[on, "glasses"] = "sunglasses"
    return a


def render(setting: str, seed: int, cache: Path) -> Path:
    from debias.config import SynthConfig
    from debias.data.synth import generate, synth_attributes

    out = cache / f"{setting}_seed{seed}"
    if not (out / "manifest.csv").exists():
        shares, factors = SETTINGS[setting]
        cfg = SynthConfig(n_train=N_TRAIN, n_val=500, n_test_per_cell=PER_CELL, seed=seed, workers=1, **shares)
        generate(cfg, out, attributes=plant(synth_attributes(cfg), factors, seed))
    return out


def penultimate(model, images: np.ndarray) -> np.ndarray:
    """The lab CNN's 512 hidden units before its output layer, for (n, H, W, 3) uint8 images."""
    import torch

    from debias.data.manifest import to_tensor

    feats = []
    hook = model.encoder.head[1].register_forward_hook(lambda m, i, o: feats.append(o.detach().clone()))
    with torch.no_grad():
        for s in range(0, len(images), 512):
            model(to_tensor(images[s:s + 512]))
    hook.remove()
    return torch.cat(feats).numpy()


def embeddings(root: Path, run: Path, faces: pd.DataFrame, train_rows: np.ndarray) -> dict:
    """method -> (training faces' embedding, audited faces' embedding) for features and pixels."""
    from debias.data.manifest import ManifestDataset
    from debias.models.run import load_run

    ds = ManifestDataset(root, "all")
    tr, te = ds.images_uint8(train_rows), ds.images_uint8(faces["row"].to_numpy(int))
    model, _ = load_run(run)
    model.eval()
    flat = lambda x: x.reshape(len(x), -1).astype(np.float32) / 255  # noqa: E731
    return {"features": (penultimate(model, tr), penultimate(model, te)), "pixels": (flat(tr), flat(te))}


def score(faces: pd.DataFrame, slices: np.ndarray, worst: list, rarity: np.ndarray, hit: np.ndarray,
          factor: str) -> dict:
    """Domino's scores for one planted group (``worst``: the 3 worst slices' ids)."""
    from sklearn.metrics import roc_auc_score

    g = member(faces, factor)
    best = max(((g[slices == s].mean(), g[slices == s].sum() / g.sum()) for s in worst))
    top10 = np.argsort(-rarity, kind="stable")[:10]
    return {"group": factor, "precision": best[0], "recall": best[1], "found": best[0] >= 0.6,
            "auc_miss": roc_auc_score(~hit, rarity) if 0 < hit.sum() < len(hit) else np.nan,
            "p_at_10": g[top10].mean(), "group_rate": hit[g].mean(), "rate": hit.mean(), "group_share": g.mean()}


def one(setting: str, seed: int, cache: Path) -> list[dict]:
    from debias.api import Audit
    from debias.audit.discover import DiscoverConfig, LatentSpace, discover
    from debias.config import TrainConfig
    from debias.data.manifest import read_manifest
    from debias.discovery import discover_in_audit
    from debias.train import fit

    t0 = time.perf_counter()
    root = render(setting, seed, cache)
    run = cache / f"{setting}_seed{seed}_standard"
    if not (run / "model.pt").exists():
        fit(root, TrainConfig(method="standard", epochs=EPOCHS, seed=seed, compile=False, device="cpu"), run,
            overwrite=True)
    audit = Audit.from_models(root, [f"run:{run}"], by=["skin_group", "pose"], n_boot=50, random_state=seed,
                              device="cpu")
    pred, thresholds = audit.result.predictions, audit.result.summary["thresholds"]
    faces = pred[pred["y_true"] == 1].reset_index(drop=True)
    hit = (faces["y_score"] >= thresholds[faces["model"].iloc[0]]).to_numpy()
    cfg = DiscoverConfig(k=K, seed=seed)
    found = {"latent": discover_in_audit(pred, thresholds, root, cfg, device="cpu")}
    m = read_manifest(root)
    train_rows = np.flatnonzero(((m["split"] == "train") & (m["label"] == 1)).to_numpy())
    for name, (z_train, z) in embeddings(root, run, faces, train_rows).items():
        found[name] = discover(faces, z, LatentSpace(z_train, n_dims=cfg.n_dims), thresholds, cfg)
    rows = []
    rng = np.random.default_rng(seed)
    for method in METHODS:
        if method == "random":
            slices, rarity = rng.integers(0, K, len(faces)), rng.random(len(faces))
            worst = list(pd.Series(hit).groupby(slices).mean().sort_values().index[:3])
        else:
            per_face = faces[["row"]].merge(found[method].faces, on="row", how="left")
            slices, rarity = per_face["slice"].to_numpy(), per_face["rarity"].to_numpy()
            worst = list(found[method].slices["slice"].head(3))
        for factor in SETTINGS[setting][1]:
            rows.append({"setting": setting, "seed": seed, "method": method,
                         **score(faces, slices, worst, rarity, hit, factor), "seconds": time.perf_counter() - t0})
    return rows


def run(a) -> None:
    import torch

    torch.set_num_threads(a.threads)
    done = set()
    if a.out.exists():
        done = set(map(tuple, pd.read_csv(a.out)[["setting", "seed"]].drop_duplicates().to_numpy().tolist()))
    for seed in a.seeds:  # every setting of a seed before the next seed
        for setting in a.settings:
            if (setting, seed) in done:
                continue
            rows = pd.DataFrame(one(setting, seed, Path(a.cache)))
            rows.to_csv(a.out, mode="a", header=not a.out.exists(), index=False, float_format="%.4f")
            print(rows.drop(columns="seconds").to_string(index=False), flush=True)


def summary(a) -> pd.DataFrame:
    r = pd.read_csv(a.out)
    r["found"] = r["found"].astype(bool)
    t = r.groupby(["method"]).agg(found=("found", "mean"), precision=("precision", "mean"),
                                  recall=("recall", "mean"), auc_miss=("auc_miss", "mean"), p_at_10=("p_at_10", "mean"),
                                  n=("found", "size"))
    by = r.pivot_table(index=["setting", "group"], columns="method", values=["found", "auc_miss"], aggfunc="mean")
    print(t.round(3).to_string())
    print(by.round(2).to_string())
    return t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    r.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    r.add_argument("--cache", default="/tmp/debias-discover")
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--out", type=Path, default=OUT)
    sm = sub.add_parser("summary")
    sm.add_argument("--out", type=Path, default=OUT)
    a = p.parse_args()
    run(a) if a.cmd == "run" else summary(a)


if __name__ == "__main__":
    main()
