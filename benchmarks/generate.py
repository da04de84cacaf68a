"""Generated faces where resampling stops: `standard` and the default recipe, each with and without DCGAN faces drawn
toward the rare regions of the default run's DB-VAE latent (`debias generate`, `debias train --extra`), paired by
seed; resumable.

    .venv/bin/python benchmarks/generate.py run                      # skin, 24 epochs, seeds 0-9, 20,000 images
    .venv/bin/python benchmarks/generate.py summary                  # paired differences, shares closed, quality
    .venv/bin/python benchmarks/generate.py run --epochs 6 --n-train 8000 --seeds 0 1 --workers 2   # the CPU pilot
    .venv/bin/python benchmarks/generate.py summary --epochs 6 --n-train 8000
    .venv/bin/python benchmarks/generate.py pixel-quality DATA GEN   # quality.json's measures on the pixel PCA

``run`` trains, per seed, the arms ``default`` (its run folder kept in the cache: its latent/ stage weighs the
generated faces), ``standard``, ``intrinsic`` (the skin-balanced composition, for the representation gap), then one
GEN per seed (``debias generate DATA --out GEN --latent-run RUN``, the design fixed in DESIGN), then ``standard +gen``
and ``default +gen`` (the same training with ``--extra GEN --extra-share``). It appends one row per finished run to
``benchmarks/results/generate_runs.csv`` and skips runs already there. Data sets, metrics and the seed pairing are
those of ``benchmarks/debiasing.py`` (the same cache folder renders the same images), so its rows of ``standard``,
``default`` and ``intrinsic`` at the same epochs, seeds and size are the same runs, up to the host.
"""
from __future__ import annotations

import argparse
import dataclasses
import fcntl
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
import debiasing as bench  # noqa: E402 - benchmarks/ is not a package

RUNS = bench.RESULTS / "generate_runs.csv"
ARMS = ("default", "standard", "intrinsic", "standard +gen", "default +gen")
PAIRS = (("standard", "standard +gen"), ("default", "default +gen"))
# the generation, fixed before any run (benchmarks/RESULTS.md, "Generated faces"): a DCGAN of base width 32 trained
# gan_epochs on every training face; n_gen faces drawn from pool * n_gen by latent rarity; extra_share of each batch's
# faces generated
DESIGN = dict(n_gen=4000, pool=4, width=32, extra_share=0.25)
KEY = ["setting", "method", "seed", "epochs", "n_train", "gan_epochs"]
HOW = ("cache", "device", "render_workers")


def _locked(path: Path):
    """An exclusive lock on ``path`` (a file beside the cache entry it guards), held while the handle is open."""
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "w")
    fcntl.flock(f, fcntl.LOCK_EX)
    return f


def default_run(job: dict, device: str) -> Path:
    """The seed's `default` run, trained on first use and kept in the cache (its latent/ weighs the generated faces)."""
    from debias.train import fit

    base = {**job, "method": "default"}
    out = Path(job["cache"]) / "runs" / f"{job['setting']}_default_seed{job['seed']}_e{job['epochs']}_n{job['n_train']}"
    with _locked(out.with_name(out.name + ".lock")):
        if not (out / "model.pt").exists():
            root, cfg = bench.run_setup(base, device)
            fit(root, cfg, out, overwrite=True)
    return out


def generated(job: dict, device: str) -> Path:
    """The seed's GEN folder (``debias generate`` with DESIGN and the default run's latent), made on first use."""
    from debias.config import GenerateConfig
    from debias.generative import generate

    run = default_run(job, device)
    root, _ = bench.run_setup({**job, "method": "standard"}, device)
    out = Path(job["cache"]) / f"gen_{job['setting']}_seed{job['seed']}_e{job['epochs']}_n{job['n_train']}" \
                               f"_g{job['gan_epochs']}"
    with _locked(out.with_name(out.name + ".lock")):
        if not (out / "manifest.csv").exists():
            cfg = GenerateConfig(latent_run=str(run), n=DESIGN["n_gen"], pool=DESIGN["pool"], width=DESIGN["width"],
                                 epochs=job["gan_epochs"], seed=job["seed"], device=device)
            generate(root, cfg, out, overwrite=True)
    return out


def _one(job: dict) -> dict:
    import torch

    torch.set_num_threads(1)  # parallel runs, one core each
    from debias.data.manifest import read_manifest
    from debias.models.run import resolve_device
    from debias.train import fit, load_run

    t0 = time.perf_counter()
    device = resolve_device(job["device"])
    arm, gen = job["method"].removesuffix(" +gen"), job["method"].endswith(" +gen")
    root, cfg = bench.run_setup({**job, "method": arm}, device.type)
    row = {k: v for k, v in job.items() if k not in HOW}
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "run"
        if gen:
            g = generated(job, device.type)
            cfg = dataclasses.replace(cfg, extra=str(g), extra_share=DESIGN["extra_share"])
            row.update(_quality(g))
        if arm == "default" and not gen:
            out = default_run(job, device.type)
        else:
            fit(root, cfg, out)
        model, _ = load_run(out)
        hist = pd.read_csv(out / "history.csv")
    m = read_manifest(root)
    test, train = m[m.split == "test"], m[m.split == "train"]
    y = test.label.to_numpy()
    row.update(bench.measure(y, bench._scores(model, root, test, device), test[y == 1]))
    tf = train[(train.label == 1) & (train.skin_group == "darker")]  # memorisation: darker training faces found
    row["train_rate_darker"] = float((bench._scores(model, root, tf, device) >= row["threshold"]).mean())
    row["ess"] = float(hist.iloc[-1]["ess"])
    row["mass_darker"] = float(hist.iloc[-1].get("mass[skin_group=darker]", np.nan))
    row["seconds"] = time.perf_counter() - t0
    row["device"] = device.type if device.type == "cpu" else torch.cuda.get_device_name(device)
    return row


def _quality(gen: Path) -> dict:
    """The GEN folder's quality.json and DCGAN timing, as row columns."""
    q = json.loads((gen / "quality.json").read_text())
    c = json.loads((gen / "config.json").read_text())
    keep = ("precision", "recall", "density", "coverage", "probe_auc", "rare_share", "skin_group_est_darker_share",
            "skin_group_est_darker_share_train")
    return {**{f"q_{k}": q.get(k, np.nan) for k in keep}, "gan_epoch_s": float(np.mean(c["dcgan_epoch_s"])),
            "gen_seconds": c["seconds"]}


def _append(row: dict) -> None:
    frame = pd.DataFrame([row])
    if RUNS.exists():
        cols = list(pd.read_csv(RUNS, nrows=0).columns)
        frame = frame.reindex(columns=cols + [c for c in frame.columns if c not in cols])
        if len(frame.columns) > len(cols):  # a first +gen row after rows without its quality columns
            old = pd.read_csv(RUNS)
            pd.concat([old, frame], ignore_index=True).to_csv(RUNS, index=False, float_format="%.5g")
            return
    frame.to_csv(RUNS, mode="a", header=not RUNS.exists(), index=False, float_format="%.5g")


def plan(a) -> list[dict]:
    """The runs without generated faces seed by seed, then each +gen arm across seeds: parallel workers then make
    different seeds' GEN folders at once instead of one waiting for the other's."""
    how = {"cache": str(a.cache), "device": a.device, "render_workers": 1}
    base = [(s, arm) for s in a.seeds for arm in ARMS if not arm.endswith("+gen")]
    gen = [(s, arm) for arm in ARMS if arm.endswith("+gen") for s in a.seeds]
    return [{"setting": "skin", "method": arm, "seed": s, "epochs": a.epochs, "n_train": a.n_train,
             "gan_epochs": a.gan_epochs, **how} for s, arm in base + gen]


def run(a) -> None:
    done = pd.read_csv(RUNS) if RUNS.exists() else pd.DataFrame(columns=KEY)
    seen = set(done[KEY].astype(str).itertuples(index=False, name=None))
    todo = [j for j in plan(a) if tuple(str(j[k]) for k in KEY) not in seen]
    print(f"{len(todo)} runs to do, {len(plan(a)) - len(todo)} already in {RUNS.name}", flush=True)
    with ProcessPoolExecutor(a.workers) as ex:
        bench._each_finished({ex.submit(_one, j): j for j in todo}, _record_run)


def _record_run(progress: str, job: dict, row: dict) -> None:
    """Append a finished run's row to RUNS and say so."""
    _append(row)
    print(f"{progress} {row['method']} seed {row['seed']} ({row['seconds']:.0f}s): acc {row['accuracy']:.4f} skin gap "
          f"{row['skin_gap']:.4f} worst {row['worst_group_rate']:.4f} darker train {row['train_rate_darker']:.4f}",
          flush=True)


def summary_tables(runs: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Paired differences of each arm with and without generated faces, and the share of the representation gap each
    closes (seeds on which standard, intrinsic and both arms ran)."""
    wide = {m: g.set_index("seed") for m, g in runs.groupby("method")}
    rows, md = [], ["| arm | seeds | share closed without | with | difference | lighter-darker gap | accuracy | "
                    "worst group | darker training faces found |", "|---|---|---|---|---|---|---|---|---|"]
    for before, after in PAIRS:
        if not {before, after, "standard", "intrinsic"} <= set(wide):
            continue
        seeds = sorted(set.intersection(*(set(wide[m].index) for m in (before, after, "standard", "intrinsic"))))
        if len(seeds) < 2:
            continue
        gaps = {m: wide[m].loc[seeds, "skin_gap"].to_numpy() for m in (before, after, "standard", "intrinsic")}
        s, i = gaps["standard"], gaps["intrinsic"]
        c0, c1 = bench.closed_fraction(gaps[before], s, i), bench.closed_fraction(gaps[after], s, i)
        dc = bench.closed_difference((gaps[after], s, i), (gaps[before], s, i))
        diffs = {r["metric"]: r for r in bench.paired_differences(wide[before].loc[seeds], wide[after].loc[seeds],
                                                                   method=before)}
        cell = {k: f"{r['at_from']:.1f} -> {r['at_to']:.1f}: {r['diff']:+.1f} [{r['ci_low']:+.1f}, {r['ci_high']:+.1f}]"
                for k, r in diffs.items()}
        mem = f"{100 * wide[before].loc[seeds, 'train_rate_darker'].mean():.1f}% -> " \
              f"{100 * wide[after].loc[seeds, 'train_rate_darker'].mean():.1f}%"
        pct = lambda t: f"{100 * t[0]:.0f}% [{100 * t[1]:.0f}, {100 * t[2]:.0f}]"  # noqa: E731
        md.append(f"| {before} | {len(seeds)} | {pct(c0)} | {pct(c1)} | {pct(dc)} | {cell['skin_gap']} | "
                  f"{cell['accuracy']} | {cell['worst_group_rate']} | {mem} |")
        rows += [{**r, "after": after} for r in diffs.values()]
    q = runs[runs["method"].str.endswith("+gen")].drop_duplicates("seed")
    cols = [c for c in q.columns if c.startswith("q_") or c in ("gan_epoch_s", "gen_seconds")]
    if len(q) and cols:
        md += ["", "Generated faces, per seed (quality on the DB-VAE latent means against held-out real faces):", "",
               "| seed | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        md += [f"| {r.seed} | " + " | ".join(f"{getattr(r, c):.3g}" for c in cols) + " |" for r in q.itertuples()]
    return pd.DataFrame(rows), "\n".join(md)


def summary(a) -> None:
    runs = pd.read_csv(RUNS)
    runs = runs[(runs.epochs == a.epochs) & (runs.n_train == a.n_train) & (runs.gan_epochs == a.gan_epochs)]
    table, md = summary_tables(runs)
    stem = bench.RESULTS / f"generate_summary_e{a.epochs}_n{a.n_train}"
    table.to_csv(stem.with_suffix(".csv"), index=False, float_format="%.4g")
    stem.with_suffix(".md").write_text(md + "\n")
    print(md)


def pixel_quality(a) -> None:
    """Quality of a GEN folder on the pixel PCA (the embedding `debias generate` uses without a latent run) against
    DATA's held-out real faces: the same subsets and measures as quality.json."""
    from debias.data.manifest import ManifestDataset, read_manifest
    from debias.generative.quality import pixel_embedding, quality

    ds = ManifestDataset(a.data, "all", frame=read_manifest(a.data))
    held = np.flatnonzero(((ds.frame.label == 1) & (ds.frame.split != "train")).to_numpy())
    held = np.sort(np.random.default_rng([0, 1]).choice(held, min(2000, len(held)), replace=False))
    fake = np.load(a.gen / "images.npy")
    fake = fake[np.sort(np.random.default_rng([0, 2]).choice(len(fake), min(2000, len(fake)), replace=False))]
    print(json.dumps(quality(*pixel_embedding(ds.images_uint8(held), fake)), indent=1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("run", "summary"):
        s = sub.add_parser(name)
        s.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
        s.add_argument("--epochs", type=int, default=24)
        s.add_argument("--n-train", type=int, default=20_000)
        s.add_argument("--gan-epochs", type=int, default=25)
        s.add_argument("--workers", type=int, default=2)
        s.add_argument("--device", default="auto")
        s.add_argument("--cache", type=Path, default=Path(os.environ.get("DEBIAS_BENCH_CACHE", "/tmp/debias-bench")))
    q = sub.add_parser("pixel-quality")
    q.add_argument("data", type=Path)
    q.add_argument("gen", type=Path)
    a = p.parse_args()
    {"run": run, "summary": summary, "pixel-quality": pixel_quality}[a.cmd](a)


if __name__ == "__main__":
    main()
