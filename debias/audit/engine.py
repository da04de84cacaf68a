"""The audit as one function: predictions in, tidy tables, paired comparisons and a headline out."""
from __future__ import annotations

import datetime
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from debias.audit.metrics import MISSING, TOO_FEW, audit_model, cell_codes
from debias.audit.paired import paired_comparison
from debias.config import AuditConfig
from debias.files import atomic_write, write_csv, write_json

FAIL_ON = re.compile(r"^\s*(detection_rate_gap|max_min_gap|miss_rate_gap)\s*>\s*([0-9]*\.?[0-9]+)\s*$")


@dataclass
class AuditResult:
    predictions: pd.DataFrame
    metrics: pd.DataFrame
    disparities: pd.DataFrame
    paired: pd.DataFrame
    summary: dict
    skipped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["row", "image", "reason"]))
    headline: list[str] = field(default_factory=list)
    estimated: tuple[str, ...] = ()  # grouping columns that are estimates (e.g. skin_group_est)


def _fmt_pct(x: float) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.1f}%"


def headline(result_models: dict, paired: pd.DataFrame, by: Sequence[str]) -> list[str]:
    """Plain-language sentences: who is failed most, by how much, and whether it is beyond noise."""
    lines = []
    for m, ma in result_models.items():
        d = ma.disparities
        for col in by:
            s = ma.summary.get(col, {})
            if not s.get("worst_group"):
                lines.append(f"{m}: by {col}, every group has fewer faces than the minimum: too few to judge.")
                continue
            rows = d[(d["grouping"] == col)]
            w = rows[rows["group"] == s["worst_group"]].iloc[0]
            ref = rows[rows["group"] == s["reference"]].iloc[0]
            if w["group"] == ref["group"]:
                lines.append(f"{m}: by {col}, the reference group {ref['group']} is also the worst detected "
                             f"({_fmt_pct(ref['detection_rate'])}).")
                continue
            sig = "significant" if bool(w.get("significant")) else "not significant"
            lines.append(
                f"{m}: by {col}, {w['group']} faces are detected least: {_fmt_pct(w['detection_rate'])} against "
                f"{_fmt_pct(ref['detection_rate'])} for {ref['group']}, a gap of {100 * w['gap']:.1f} points "
                f"(95% CI {100 * w['gap_ci_low']:.1f} to {100 * w['gap_ci_high']:.1f}; Fisher exact, Holm-adjusted "
                f"p = {w['p_holm']:.2g}, {sig}).")
        full = " x ".join(by)
        s = ma.summary.get(full, {})
        if s.get("worst_group"):
            lines.append(f"{m}: the worst intersection is {s['worst_group']} at {_fmt_pct(s['worst_detection_rate'])}.")
    if len(paired):
        for _, r in paired[paired["statistic"] == "max_min_gap"].iterrows():
            beyond = r["ci_high"] < 0 or r["ci_low"] > 0
            verb = "narrows" if r["difference"] < 0 else "widens"
            lines.append(
                f"{r['model']} {verb} the {r['grouping']} gap from {100 * r['baseline_value']:.1f} to "
                f"{100 * r['model_value']:.1f} points compared with {r['baseline']} (difference "
                f"{100 * r['difference']:+.1f}, 95% CI {100 * r['ci_low']:+.1f} to {100 * r['ci_high']:+.1f}): "
                + ("beyond noise." if beyond else "within noise."))
    return lines


def audit_table(pred: pd.DataFrame, cfg: AuditConfig, *, progress: Callable | None = None) -> AuditResult:
    """Statistics on a prediction table (from ``predict``, a CSV, merged shards or several audits)."""
    by = list(cfg.by)
    missing = [c for c in by if c not in pred.columns]
    if missing:
        raise KeyError(f"attribute column(s) {', '.join(map(repr, missing))} not found; columns present: "
                       f"{', '.join(c for c in pred.columns if c not in ('y_score', 'native_threshold'))}.")
    audits = {}
    for m, d in pred.groupby("model", sort=False):
        audits[m] = audit_model(d, by, threshold=cfg.threshold, target_fpr=cfg.target_fpr, reference=cfg.reference,
                                n_boot=cfg.n_boot, min_n=cfg.min_n, random_state=cfg.seed, model=str(m))
        if progress:
            progress(1)
    thresholds = {m: a.threshold for m, a in audits.items()}
    paired = paired_comparison(pred, by, thresholds, n_boot=cfg.n_boot, min_n=cfg.min_n, random_state=cfg.seed)
    summary = {"models": {m: a.summary for m, a in audits.items()}, "thresholds": thresholds}
    metrics = pd.concat([a.metrics for a in audits.values()], ignore_index=True)
    disp = pd.concat([a.disparities for a in audits.values()], ignore_index=True)
    return AuditResult(pred, metrics, disp, paired, summary, headline=headline(audits, paired, by),
                       estimated=tuple(c for c in by if c.endswith("_est")))


def check_fail_on(result: AuditResult, expr: str) -> list[str]:
    """Groups whose named gap has a lower 95% bound above the bound in ``expr``; [] if none.

    ``detection_rate_gap>B`` (or ``miss_rate_gap``, the same gap): any group's gap to its reference.
    ``max_min_gap>B``: a grouping's best-minus-worst gap.
    """
    m = FAIL_ON.match(expr)
    if not m:
        raise ValueError(f"--fail-on {expr!r} is not understood; use for example 'detection_rate_gap>0.05' or "
                         f"'max_min_gap>0.1'.")
    name, bound = m.group(1), float(m.group(2))
    failed = []
    if name in ("detection_rate_gap", "miss_rate_gap"):
        d = result.disparities
        bad = d[(d["flag"] != TOO_FEW) & (d["gap_ci_low"] > bound)]
        for _, r in bad.iterrows():
            failed.append(f"{r['model']}: {r['grouping']} = {r['group']} is detected {100 * r['gap']:.1f} points below "
                          f"{r['reference']} (95% CI lower bound {100 * r['gap_ci_low']:.1f} > {100 * bound:.1f})")
    else:
        for model, s in result.summary["models"].items():
            for grouping, v in s.items():
                if isinstance(v, dict) and "max_min_gap_ci" in v and v["max_min_gap_ci"][0] > bound:
                    failed.append(f"{model}: {grouping} max-min gap {100 * v['max_min_gap']:.1f} points, worst group "
                                  f"{v['worst_group']} (95% CI lower bound {100 * v['max_min_gap_ci'][0]:.1f} > "
                                  f"{100 * bound:.1f})")
    return failed


def _versions() -> dict:
    import cv2
    import scipy
    import sklearn
    import torch

    import debias

    return {"debias": getattr(debias, "__version__", "0"), "torch": torch.__version__, "numpy": np.__version__,
            "pandas": pd.__version__, "scikit-learn": sklearn.__version__, "scipy": scipy.__version__,
            "opencv": cv2.__version__}


def write_outputs(result: AuditResult, out: str | Path, cfg: AuditConfig, *, data: str | Path | None = None,
                  model_files: dict | None = None, title: str = "Face detection fairness audit",
                  images: Callable | None = None, extra_sections: Sequence[dict] = ()) -> Path:
    """Write predictions.csv, metrics.csv, disparities.csv, paired.csv, summary.json and report.html."""
    from debias.audit.adapters import sha256_file
    from debias.report.html import render_report

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []

    def put(name: str, write) -> None:
        atomic_write(out / name, write)
        written.append(name)

    put("predictions.csv", lambda t: _with_decision(result).to_csv(t, index=False, float_format="%.6g"))
    put("metrics.csv", lambda t: result.metrics.to_csv(t, index=False, float_format="%.6g"))
    put("disparities.csv", lambda t: result.disparities.to_csv(t, index=False, float_format="%.6g"))
    if len(result.paired):
        put("paired.csv", lambda t: result.paired.to_csv(t, index=False, float_format="%.6g"))
    summary = {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(), "config": asdict(cfg), "seed": cfg.seed,
        "data": str(data) if data else None,
        "manifest_sha256": sha256_file(Path(data) / "manifest.csv") if data and (Path(data) / "manifest.csv").exists() else None,
        "model_files_sha256": model_files or {},
        "skipped_images": {"count": len(result.skipped), "images": result.skipped.to_dict("records")},
        "estimated_groupings": list(result.estimated),
        "headline": result.headline,
        **result.summary,
    }
    html = render_report(result, cfg, title=title, images=images, extra_sections=extra_sections, summary=summary)
    put("report.html", lambda t: t.write_text(html, encoding="utf-8"))
    summary["outputs"] = [*written, "summary.json"]
    _remove_stale(out, set(summary["outputs"]))
    write_json(out / "summary.json", summary)
    return out


def _with_decision(result: AuditResult) -> pd.DataFrame:
    """Predictions with ``y_pred``, the decision at each model's audit threshold."""
    p = result.predictions.drop(columns="y_pred", errors="ignore")  # audits read back (compare) carry one
    t = p["model"].map(result.summary.get("thresholds", {})).astype(float)
    y_pred = (p["y_score"] >= t).astype("Int64").where(p["y_score"].notna())
    p.insert(p.columns.get_loc("y_score") + 1, "y_pred", y_pred)
    return p


def _remove_stale(out: Path, keep: set[str]) -> None:
    """Remove files an earlier audit into ``out`` wrote (listed in its summary.json) that this one did not."""
    old = out / "summary.json"
    if not old.exists():
        return
    try:
        listed = json.loads(old.read_text()).get("outputs", [])
    except (ValueError, OSError):
        return
    for name in listed:
        if name not in keep and "/" not in name and (out / name).is_file():
            (out / name).unlink()


def run_audit(data: str | Path, models: Sequence[str], cfg: AuditConfig, out: str | Path, *,
              predictions_csv: str | Path | None = None, progress: Callable | None = None,
              torch_device: str = "cpu", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
              title: str = "Face detection fairness audit", extra_sections: Sequence[dict] = ()) -> AuditResult:
    """Audit ``models`` (adapter specs) or a predictions CSV on dataset ``data``; write ``out``.

    ``title`` and ``extra_sections`` go to the HTML report (the demo adds its latent analysis there).
    """
    from debias.audit.adapters import sha256_file
    from debias.audit.predict import predictions_from_csv

    skipped = pd.DataFrame(columns=["row", "image", "reason"])
    files = {}
    if predictions_csv is not None:
        pred = predictions_from_csv(predictions_csv, data, split=cfg.split, scores=cfg.scores)
        files[str(predictions_csv)] = sha256_file(predictions_csv)
    else:
        if not models:
            raise ValueError("give at least one --model SPEC, or --predictions FILE.csv.")
        pred, skipped, files = score_models(data, models, cfg, torch_device=torch_device, mean=mean, std=std,
                                            progress=progress)
    if cfg.shard != (0, 1):  # a shard only predicts; statistics run on the merged table
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_csv(pred, out / "predictions.csv", float_format="%.6g")
        write_csv(skipped, out / "skipped.csv")
        manifest = Path(data) / "manifest.csv" if data else None
        write_json(out / "shard.json", ({
            "shard": list(cfg.shard), "data": str(Path(data).resolve()) if data else None,
            "manifest_sha256": sha256_file(manifest) if manifest and manifest.exists() else None,
            "models": list(models) or [str(predictions_csv)], "model_files_sha256": files}))
        return AuditResult(pred, pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), {}, skipped)
    result = audit_table(pred, cfg)
    result.skipped = skipped
    images = thumbnail_reader(data) if cfg.thumbnails and data is not None else None
    write_outputs(result, out, cfg, data=data, model_files=files, images=images, title=title,
                  extra_sections=extra_sections)
    return result


def score_models(data: str | Path, models: Sequence[str], cfg: AuditConfig, *, torch_device: str = "cpu",
                 mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                 progress: Callable | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Load each model spec and score ``cfg.split`` (this shard) of ``data``.

    Returns (predictions, skipped images, sha256 of every model file by spec).
    """
    from debias.audit.adapters import load_adapter, sha256_file
    from debias.audit.predict import predict

    adapters = [load_adapter(s, size=cfg.size, device=torch_device, pad=cfg.pad, mean=mean, std=std, scores=cfg.scores)
                for s in models]
    names = [a.name for a in adapters]
    for i, a in enumerate(adapters):  # two runs both called "run" must stay apart
        if names.count(a.name) > 1:
            a.name = f"{a.name}#{i + 1}"
    files = {a.spec: sha256_file(f) for a in adapters for f in a.files if Path(f).exists()}
    pred, skipped = predict(data, adapters, split=cfg.split, batch_size=cfg.batch_size, shard=cfg.shard,
                            progress=progress)
    return pred, skipped, files


def thumbnail_reader(root: str | Path) -> Callable[[int], np.ndarray | None] | None:
    """Reader from manifest row to image, for the report's gallery; None when ``root`` is no dataset."""
    from debias.data.manifest import is_packed, load_image, read_manifest

    root = Path(root)
    if not (root / "manifest.csv").exists():
        return None
    packed = is_packed(root)

    m = read_manifest(root, check_files=False)
    arr = np.load(root / "images.npy", mmap_mode="r") if packed else None

    def read(row: int):
        try:
            return np.asarray(arr[int(m["image"].iloc[row])]) if packed else load_image(root, str(m["image"].iloc[row]), None)
        except Exception:  # noqa: BLE001 - a thumbnail that cannot be read is simply not shown
            return None

    return read


def merge_predictions(dirs: Sequence[str | Path]) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Concatenate shard folders' predictions.csv (and skipped.csv) after checking they form one whole.

    Every folder must hold a ``shard.json`` written by ``debias audit --shard K/N``; the set must
    have the same N, every K from 0 to N-1 exactly once, the same data and the same models with the
    same file hashes.
    """
    preds, skips, metas = [], [], []
    for d in dirs:
        d = Path(d)
        if not (d / "predictions.csv").exists() or not (d / "shard.json").exists():
            raise FileNotFoundError(f"{d} has no predictions.csv and shard.json; is it a folder written by "
                                    f"`debias audit --shard K/N`?")
        metas.append((d, json.loads((d / "shard.json").read_text())))
        preds.append(pd.read_csv(d / "predictions.csv", low_memory=False))
        if (d / "skipped.csv").exists():
            skips.append(pd.read_csv(d / "skipped.csv"))
    _check_shards(metas)
    pred = pd.concat(preds, ignore_index=True)
    dup = pred.duplicated(["row", "model"])
    if dup.any():
        raise ValueError(f"{int(dup.sum())} image/model pairs appear in more than one shard; merge each shard once.")
    skipped = pd.concat(skips, ignore_index=True) if skips else pd.DataFrame(columns=["row", "image", "reason"])
    files = metas[0][1].get("model_files_sha256", {})
    return pred.sort_values(["model", "row"], kind="stable").reset_index(drop=True), skipped, files


def _check_shards(metas: list[tuple[Path, dict]]) -> None:
    n = {m["shard"][1] for _, m in metas}
    if len(n) > 1:
        raise ValueError(f"the shard folders split the data into different numbers of shards ({sorted(n)}); "
                         f"merge shards of one `--shard K/N` run.")
    n = n.pop()
    ks = sorted(m["shard"][0] for _, m in metas)
    missing = sorted(set(range(n)) - set(ks))
    repeated = sorted({k for k in ks if ks.count(k) > 1})
    if missing or repeated:
        raise ValueError(f"the shards do not cover the data once: of {n} shards, " +
                         (f"missing {', '.join(f'{k}/{n}' for k in missing)}" if missing else "") +
                         ("; " if missing and repeated else "") +
                         (f"given twice {', '.join(f'{k}/{n}' for k in repeated)}" if repeated else "") +
                         ". Merge every shard folder exactly once.")
    d0, m0 = metas[0]
    for d, m in metas[1:]:
        for key, what in (("data", "datasets"), ("models", "models"), ("model_files_sha256", "model files")):
            if m.get(key) != m0.get(key):
                raise ValueError(f"shards {d0} and {d} audited different {what} ({m0.get(key)} vs {m.get(key)}); "
                                 f"merge shards of one audit.")


def compare_audits(dirs: Sequence[str | Path]) -> pd.DataFrame:
    """Stack several audits' predictions (model names made unique by folder) for a paired comparison.

    Pairing is only meaningful on the same images: the audits must share the manifest (by hash, when
    their summary.json records it), the split, and the exact set of image ids.
    """
    preds, seen = [], []
    for d in dirs:
        d = Path(d)
        if not (d / "predictions.csv").exists():
            raise FileNotFoundError(f"{d} has no predictions.csv; is it a folder written by `debias audit`?")
        p = pd.read_csv(d / "predictions.csv", low_memory=False)
        s = json.loads((d / "summary.json").read_text()) if (d / "summary.json").exists() else {}
        if p["model"].nunique() == 1:
            p["model"] = d.name if len(dirs) > 1 else p["model"]
        ids = frozenset(p["image"].astype(str))
        for d0, s0, ids0 in seen:  # pairwise: a hash or split may be missing from some summaries
            h, h0 = s.get("manifest_sha256"), s0.get("manifest_sha256")
            if h and h0 and h != h0:
                raise ValueError(f"audits {d0} and {d} were run on different manifests (sha256 {h0[:12]} vs "
                                 f"{h[:12]}); a paired comparison needs the same test set.")
            sp, sp0 = s.get("config", {}).get("split"), s0.get("config", {}).get("split")
            if sp and sp0 and sp != sp0:
                raise ValueError(f"audits {d0} and {d} cover different splits ({sp0} vs {sp}); a paired comparison "
                                 f"needs the same test set.")
            if ids != ids0:
                only0, only = sorted(ids0 - ids)[:3], sorted(ids - ids0)[:3]
                raise ValueError(f"audits {d0} and {d} cover different images ({len(ids0 - ids)} only in the first, "
                                 f"e.g. {only0}; {len(ids - ids0)} only in the second, e.g. {only}); a paired "
                                 f"comparison needs the same test set.")
        seen.append((d, s, ids))
        preds.append(p)
    return pd.concat(preds, ignore_index=True)


__all__ = ["AuditResult", "run_audit", "audit_table", "write_outputs", "check_fail_on", "merge_predictions",
           "compare_audits", "score_models", "thumbnail_reader"]
