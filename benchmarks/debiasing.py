"""The debiasing benchmark: every method over seeds and two bias settings, plus a dose-response sweep.

    .venv/bin/python benchmarks/debiasing.py table   [--seeds 0 1 2] [--n-train 10000] [--epochs 3]
    .venv/bin/python benchmarks/debiasing.py dose    [--seeds 0]
    .venv/bin/python benchmarks/debiasing.py summary   # aggregate + figure + README table from the CSVs

Each run trains one model, audits it on the balanced test split at the threshold where the overall
false-positive rate is 1%, and appends one row to benchmarks/results/debiasing_runs.csv (or
dose_response.csv). Runs already in the CSV are skipped, so an interrupted benchmark resumes.

Settings:
- ``skin``: the default synthetic bias (2% darker, 5% medium, 3% profile, 5% three-quarter faces).
- ``pose``: pose is the rare factor (2% profile, 5% three-quarter) while skin groups are balanced
  (33% darker, 33% medium).
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

RESULTS = Path(__file__).parent / "results"
SETTINGS = {
    "skin": dict(),
    "pose": dict(darker_share=0.33, medium_share=0.33, profile_share=0.02, three_quarter_share=0.05),
}
Z = 1.959963984540054


def methods() -> list[dict]:
    out = [dict(method="standard"), dict(method="vae-uniform")]
    for alpha, combine in itertools.product((0.1, 0.01, 0.001), ("product", "max", "tempered")):
        out.append(dict(method="dbvae", alpha=alpha, combine=combine))
    out += [dict(method="balanced"), dict(method="jtt")]
    return out


def _diff_ci(k1, n1, k2, n2):
    """Difference of two independent proportions with a Wald 95% interval."""
    p1, p2 = k1 / n1, k2 / n2
    se = np.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    return p1 - p2, p1 - p2 - Z * se, p1 - p2 + Z * se


def measure(pred: pd.DataFrame, target_fpr: float = 0.01) -> dict:
    """Benchmark metrics of one model's test predictions (computed here from the raw table)."""
    from debias.audit.metrics import choose_threshold

    t = choose_threshold(pred.y_score.to_numpy(), pred.y_true.to_numpy(), target_fpr)
    hit = pred.y_score.to_numpy() >= t
    y = pred.y_true.to_numpy()
    f = pred[y == 1].assign(hit=hit[y == 1])
    out = {"threshold": t, "accuracy": float((hit == (y == 1)).mean()), "fpr": float(hit[y == 0].mean()),
           "recall": float(f.hit.mean())}
    cells = f.groupby(["skin_group", "gender"]).hit.mean() * 100
    out["E_A"], out["Var_A"] = float(cells.mean()), float(cells.var(ddof=0))
    sp = f.groupby(["skin_group", "pose"]).hit.mean()
    out["worst_group"], out["worst_group_rate"] = " / ".join(sp.idxmin()), float(sp.min())
    for name, col, a, b in (("skin", "skin_group", "lighter", "darker"), ("pose", "pose", "frontal", "profile")):
        ga, gb = f[f[col] == a].hit, f[f[col] == b].hit
        out[f"gap_{name}"], out[f"gap_{name}_lo"], out[f"gap_{name}_hi"] = _diff_ci(ga.sum(), len(ga), gb.sum(), len(gb))
        out[f"rate_{b}"] = float(gb.mean())
    return out


def _one(job: dict) -> dict:
    import torch

    torch.set_num_threads(1)  # two runs in parallel, one core each
    from debias.audit.adapters import load_adapter
    from debias.audit.predict import predict
    from debias.config import TrainConfig
    from debias.train import fit

    kw = {k: job[k] for k in ("method", "alpha", "combine") if k in job and not pd.isna(job[k])}
    cfg = TrainConfig(seed=job["seed"], epochs=job["epochs"], compile=False, **kw)
    with tempfile.TemporaryDirectory() as d:
        hist = fit(job["data"], cfg, Path(d) / "run")
        pred, _ = predict(job["data"], [load_adapter(f"run:{Path(d) / 'run'}")], split="test")
    row = {k: v for k, v in job.items() if k != "data"}
    row.update(measure(pred))
    last = hist.iloc[-1]
    row["ess"] = float(last["ess"])
    for c in ("mass[skin_group=darker]", "mass[pose=profile]"):
        row[c.replace("[", "_").replace("]", "").replace("=", "_")] = float(last.get(c, np.nan))
    return row


def _data(setting: str, seed: int, n_train: int, shares: dict, root: Path) -> Path:
    from debias.config import SynthConfig
    from debias.data.synth import generate

    tag = "_".join(f"{k}{v}" for k, v in sorted(shares.items())) or "default"
    out = root / f"{setting}_{tag}_seed{seed}_n{n_train}"
    if not (out / "manifest.csv").exists():
        generate(SynthConfig(n_train=n_train, n_val=1000, seed=seed, **shares), out)
    return out


def _run(jobs: list[dict], csv: Path, workers: int) -> None:
    done = pd.read_csv(csv) if csv.exists() else pd.DataFrame()
    key = ["setting", "method", "alpha", "combine", "seed", "share_factor", "share"]

    def k(d):
        return tuple(str(d.get(c, "")) if not pd.isna(d.get(c, np.nan)) else "" for c in key)

    seen = {k(r) for r in done.to_dict("records")}
    todo = [j for j in jobs if k(j) not in seen]
    print(f"{len(todo)} runs to do ({len(jobs) - len(todo)} already in {csv.name})", flush=True)
    with ProcessPoolExecutor(workers) as ex:
        for row in ex.map(_one, todo):
            pd.DataFrame([row]).to_csv(csv, mode="a", header=not csv.exists(), index=False, float_format="%.5g")
            print(f"{row['setting']} {row['method']} a={row.get('alpha', '')} {row.get('combine', '')} seed {row['seed']}"
                  f"{' share ' + str(row.get('share')) if 'share' in row else ''}: acc {row['accuracy']:.3f} "
                  f"Var[A] {row['Var_A']:.1f} worst {row['worst_group_rate']:.3f} gap_skin {row['gap_skin']:.3f} "
                  f"gap_pose {row['gap_pose']:.3f} ESS {row['ess']:.2f}", flush=True)


def table(a) -> None:
    jobs = []
    for setting, seed in itertools.product(a.settings, a.seeds):
        data = _data(setting, seed, a.n_train, SETTINGS[setting], a.cache)
        for m in methods():
            jobs.append({"setting": setting, "seed": seed, "epochs": a.epochs, "n_train": a.n_train, "data": str(data),
                         "alpha": m.get("alpha", np.nan), "combine": m.get("combine", np.nan), "method": m["method"]})
    _run(jobs, RESULTS / "debiasing_runs.csv", a.workers)


def dose(a) -> None:
    jobs = []
    for factor, share, seed in itertools.product(("darker_share", "profile_share"), (0.0, 0.01, 0.02, 0.05, 0.10, 0.25),
                                                 a.seeds):
        data = _data("dose", seed, a.n_train, {factor: share}, a.cache)
        for method in ("standard", "dbvae", "balanced"):
            jobs.append({"setting": "dose", "seed": seed, "epochs": a.epochs, "n_train": a.n_train, "data": str(data),
                         "method": method, "share_factor": factor, "share": share})
    _run(jobs, RESULTS / "dose_response.csv", a.workers)


def _label(r) -> str:
    if r["method"] == "dbvae":
        return f"dbvae a={r['alpha']:g} {r['combine']}"
    return r["method"]


def summary(a) -> None:
    runs = pd.read_csv(RESULTS / "debiasing_runs.csv")
    runs["label"] = runs.apply(_label, axis=1)
    cols = ["accuracy", "E_A", "Var_A", "worst_group_rate", "gap_skin", "gap_pose", "ess"]
    agg = runs.groupby(["setting", "label"], sort=False)[cols].agg(["mean", "std", "count"])
    rows = []
    for (setting, label), r in agg.iterrows():
        row = {"setting": setting, "method": label, "seeds": int(r[("accuracy", "count")])}
        for c in cols:
            row[f"{c}_mean"], row[f"{c}_sd"] = r[(c, "mean")], r[(c, "std")]
        rows.append(row)
    s = pd.DataFrame(rows)
    s.to_csv(RESULTS / "debiasing.csv", index=False, float_format="%.4f")

    def pm(m, sd, scale=100, d=1):
        return f"{m * scale:.{d}f} ± {0 if pd.isna(sd) else sd * scale:.{d}f}"

    lines = []
    for setting in s.setting.unique():
        lines += [f"\n**Setting `{setting}`** (mean ± sd over seeds; rates in %, gaps in points, Var[A] in %²)\n",
                  "| method | seeds | accuracy | E[A] | Var[A] | worst group (skin x pose) | lighter-darker gap | "
                  "frontal-profile gap | ESS |", "|---|---|---|---|---|---|---|---|---|"]
        for r in s[s.setting == setting].itertuples():
            lines.append(f"| {r.method} | {r.seeds} | {pm(r.accuracy_mean, r.accuracy_sd)} | "
                         f"{pm(r.E_A_mean, r.E_A_sd, 1)} | {pm(r.Var_A_mean, r.Var_A_sd, 1)} | "
                         f"{pm(r.worst_group_rate_mean, r.worst_group_rate_sd)} | {pm(r.gap_skin_mean, r.gap_skin_sd)} | "
                         f"{pm(r.gap_pose_mean, r.gap_pose_sd)} | {r.ess_mean:.2f} |")
    (RESULTS / "debiasing_table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if (RESULTS / "dose_response.csv").exists():
        _dose_figure(pd.read_csv(RESULTS / "dose_response.csv"))


def _dose_figure(d: pd.DataFrame) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", font_scale=0.85)
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    pal = dict(zip(("standard", "dbvae", "balanced"), sns.color_palette("colorblind", 3)))
    for i, (factor, gap, name) in enumerate((("darker_share", "gap_skin", "lighter - darker"),
                                             ("profile_share", "gap_pose", "frontal - profile"))):
        sub = d[d.share_factor == factor]
        for m, g in sub.groupby("method"):
            g = g.groupby("share").agg(gap=(gap, "mean"), lo=(f"{gap}_lo", "mean"), hi=(f"{gap}_hi", "mean"),
                                       worst=("worst_group_rate", "mean")).reset_index()
            x = g.share * 100
            axes[i, 0].plot(x, g.gap * 100, marker="o", label=m, color=pal[m])
            axes[i, 0].fill_between(x, g.lo * 100, g.hi * 100, alpha=0.2, color=pal[m])
            # Wilson-free band for a rate of a 240-face cell: +-1.96 sqrt(p(1-p)/240)
            se = np.sqrt(g.worst * (1 - g.worst) / 240)
            axes[i, 1].plot(x, g.worst * 100, marker="o", label=m, color=pal[m])
            axes[i, 1].fill_between(x, (g.worst - Z * se) * 100, (g.worst + Z * se) * 100, alpha=0.2, color=pal[m])
        for j in range(2):
            axes[i, j].set_xscale("symlog", linthresh=1)
            axes[i, j].set_xticks([0, 1, 2, 5, 10, 25], ["0", "1", "2", "5", "10", "25"])
            axes[i, j].set_xlabel(f"{factor.replace('_', ' ')} of training faces (%)")
        axes[i, 0].set_ylabel(f"{name} detection gap (points)")
        axes[i, 1].set_ylabel("worst group detection rate (%)")
        axes[i, 0].axhline(0, color="k", lw=0.8)
        axes[i, 0].legend()
    fig.suptitle("Dose-response: where debiasing matters (95% CI bands)")
    fig.tight_layout()
    fig.savefig(RESULTS / "dose_response.png", dpi=110)
    print(f"wrote {RESULTS / 'dose_response.png'}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["table", "dose", "summary"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS))
    ap.add_argument("--n-train", type=int, default=10_000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("DEBIAS_BENCH_CACHE", "/tmp/debias-bench")))
    a = ap.parse_args()
    RESULTS.mkdir(exist_ok=True)
    a.cache.mkdir(parents=True, exist_ok=True)
    {"table": table, "dose": dose, "summary": summary}[a.what](a)
    sys.exit(0)
