"""The audit as data: predictions in; tidy tables, paired comparisons and the CI gate out.

Nothing here writes files or sentences: :mod:`debias.report` turns an :class:`AuditResult` into
the headline, the HTML and the CSV/JSON outputs.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from debias.audit.discover import Discovery
from debias.audit.metrics import TOO_FEW, audit_model
from debias.audit.paired import paired_comparison
from debias.config import AuditConfig
from debias.errors import DebiasError
from debias.files import check_set, sha256_file

FAIL_ON = re.compile(r"^\s*(detection_rate_gap|max_min_gap|miss_rate_gap)\s*>\s*([0-9]*\.?[0-9]+)\s*$")


@dataclass
class AuditResult:
    predictions: pd.DataFrame
    metrics: pd.DataFrame
    disparities: pd.DataFrame
    paired: pd.DataFrame
    summary: dict
    skipped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["row", "image", "reason"]))
    by: tuple[str, ...] = ()  # the attribute columns audited (every combination is a grouping)
    estimated: tuple[str, ...] = ()  # grouping columns that are estimates (e.g. skin_group_est)
    discovery: Discovery | None = None  # slices found without labels (``debias audit --discover K``)


def audit_table(pred: pd.DataFrame, cfg: AuditConfig, *, progress: Callable | None = None,
                thresholds: dict | None = None) -> AuditResult:
    """Statistics on a prediction table (from ``predict``, a CSV, merged shards or several audits).

    ``thresholds`` (model -> threshold) fixes a model's threshold instead of ``cfg``'s rule (a comparison keeps
    each audit's own)."""
    by = list(cfg.by)
    missing = [c for c in by if c not in pred.columns]
    if missing:
        raise KeyError(f"attribute column(s) {', '.join(map(repr, missing))} not found; columns present: "
                       f"{', '.join(c for c in pred.columns if c not in ('y_score', 'native_threshold'))}.")
    _check_levels(pred, by)
    audits = {}
    for m, d in pred.groupby("model", sort=False):
        fixed = (thresholds or {}).get(str(m), cfg.threshold)
        audits[m] = audit_model(d, by, threshold=fixed, target_fpr=cfg.target_fpr, reference=cfg.reference,
                                n_boot=cfg.n_boot, min_n=cfg.min_n, random_state=cfg.seed, model=str(m))
        if progress:
            progress(1)
    thresholds = {m: a.threshold for m, a in audits.items()}
    paired = paired_comparison(pred, by, thresholds, n_boot=cfg.n_boot, min_n=cfg.min_n, random_state=cfg.seed)
    summary = {"models": {m: a.summary for m, a in audits.items()}, "thresholds": thresholds}
    metrics = pd.concat([a.metrics for a in audits.values()], ignore_index=True)
    disp = pd.concat([a.disparities for a in audits.values()], ignore_index=True)
    return AuditResult(pred, metrics, disp, paired, summary, by=tuple(by),
                       estimated=tuple(c for c in by if c.endswith("_est")))


MAX_LEVELS = 20  # levels an attribute column may have among the audited faces


def _check_levels(pred: pd.DataFrame, by: Sequence[str]) -> None:
    """A DebiasError for a ``by`` column with more than :data:`MAX_LEVELS` levels among the faces: its groups (and
    their intersections) would hold a face or two each, where a stratified bootstrap cannot vary and its intervals
    shrink to a point."""
    faces = pred[pred["y_true"] == 1] if "y_true" in pred.columns else pred
    for c in by:
        n = faces[c].nunique(dropna=True)
        if n > MAX_LEVELS:
            raise DebiasError(f"attribute column {c!r} has {n} levels among the audited faces; an audit compares a "
                              f"few groups (at most {MAX_LEVELS} levels a column), each with enough faces to judge. Bin "
                              f"it into a few groups (e.g. with pandas.cut) or leave it out of `by`.")


FAIL_ON_SYNTAX = "`fail_on` {expr!r} is not understood; use for example 'detection_rate_gap>0.05' or 'max_min_gap>0.1'."
FAIL_ON_RANGE = ("`fail_on` {expr!r}: the bound {bound:g} can never be exceeded, as gaps are fractions between 0 "
                 "and 1; give a bound from 0 up to (not including) 1: 5 points is 0.05.")


def parse_fail_on(expr: str) -> tuple[str, float]:
    """(gap name, bound) of a ``fail_on`` expression such as ``detection_rate_gap>0.05``. Raises DebiasError for
    one that is not understood, or a bound outside [0, 1) that no gap could exceed."""
    m = FAIL_ON.match(expr)
    if not m:
        raise DebiasError(FAIL_ON_SYNTAX.format(expr=expr))
    bound = float(m.group(2))
    if not 0 <= bound < 1:
        raise DebiasError(FAIL_ON_RANGE.format(expr=expr, bound=bound))
    return m.group(1), bound


def _gate_rows(result: AuditResult, name: str) -> list[tuple]:
    """What a gate on ``name`` judges: (model, grouping, group, gap, lower bound, reference or worst group), for
    each group with at least ``min_n`` faces (a gap to its reference) or each grouping with two such groups."""
    if name in ("detection_rate_gap", "miss_rate_gap"):
        d = result.disparities
        if d.empty:
            return []
        d = d[(d["flag"] != TOO_FEW) & (d["group"] != d["reference"]) & d["gap_ci_low"].notna()]
        return [(r["model"], r["grouping"], r["group"], r["gap"], r["gap_ci_low"], r["reference"])
                for _, r in d.iterrows()]
    return [(model, grouping, None, v["max_min_gap"], v["max_min_gap_ci"][0], v["worst_group"])
            for model, s in result.summary["models"].items() for grouping, v in s.items()
            if isinstance(v, dict) and v.get("max_min_gap_ci") is not None]


def check_fail_on(result: AuditResult, expr: str) -> list[str]:
    """Groups whose named gap has a lower 95% bound above the bound in ``expr``; [] if none.

    ``detection_rate_gap>B`` (or ``miss_rate_gap``, the same gap): any group's gap to its reference.
    ``max_min_gap>B``: a grouping's best-minus-worst gap. Whether anything could be judged at all is
    :func:`fail_on_judged`'s to say.
    """
    name, bound = parse_fail_on(expr)
    failed = []
    for model, grouping, group, gap, low, other in _gate_rows(result, name):
        if not low > bound:
            continue
        if group is not None:
            failed.append(f"{model}: {grouping} = {group} is detected {100 * gap:.1f} points below {other} "
                          f"(95% CI lower bound {100 * low:.1f} > {100 * bound:.1f})")
        else:
            failed.append(f"{model}: {grouping} max-min gap {100 * gap:.1f} points, worst group {other} "
                          f"(95% CI lower bound {100 * low:.1f} > {100 * bound:.1f})")
    return failed


def fail_on_judged(result: AuditResult, expr: str) -> int:
    """How many gaps the gate ``expr`` judged; 0 when every group is too small (fewer than ``min_n`` faces), and
    a gate that judged nothing has not passed."""
    return len(_gate_rows(result, parse_fail_on(expr)[0]))


def score_models(data: str | Path, models: Sequence[str], cfg: AuditConfig, *, torch_device: str = "cpu",
                 mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                 progress: Callable | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Load each model spec and score ``cfg.split`` (this shard) of ``data``.

    Returns (predictions, skipped images, sha256 of every model file by spec).
    """
    from debias.audit.adapters import load_adapter
    from debias.audit.predict import manifest_columns, predict, resolve_by

    columns = manifest_columns(data)
    if columns:  # a missing `by` column fails here, before any model loads or image is scored
        resolve_by(columns, cfg.by, where=f"{Path(data) / 'manifest.csv'}")
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
                                    f"a sharded audit (`shard` K/N)?")
        metas.append((d, check_set(d, "shard.json", ("predictions.csv", "skipped.csv"))))
        preds.append(pd.read_csv(d / "predictions.csv", low_memory=False))
        if (d / "skipped.csv").exists():
            skips.append(pd.read_csv(d / "skipped.csv"))
    _check_shards(metas)
    skipped = pd.concat(skips, ignore_index=True) if skips else pd.DataFrame(columns=["row", "image", "reason"])
    return concat_shards(preds), skipped, metas[0][1].get("model_files_sha256", {})


def concat_shards(preds: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Shards' predictions as one table in the order an unsharded audit has: models as given, rows ascending.

    The model order matters: the first model is the baseline of every paired comparison.
    """
    pred = pd.concat(preds, ignore_index=True)
    dup = pred.duplicated(["row", "model"])
    if dup.any():
        raise ValueError(f"{int(dup.sum())} image/model pairs appear in more than one shard; merge each shard once.")
    rank = {m: i for i, m in enumerate(dict.fromkeys(preds[0]["model"]))}
    order = np.lexsort((pred["row"].to_numpy(), pred["model"].map(rank).fillna(len(rank)).to_numpy()))
    return pred.iloc[order].reset_index(drop=True)


def _check_shards(metas: list[tuple[Path, dict]]) -> None:
    n = {m["shard"][1] for _, m in metas}
    if len(n) > 1:
        raise ValueError(f"the shard folders split the data into different numbers of shards ({sorted(n)}); "
                         f"merge the shards of one sharded audit (`shard` K/N).")
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


SAME_AUDIT_TWICE = ("audit folder {d} is given twice; a model compared with itself would be counted twice. "
                    "Give each audit once.")
SAME_MODEL_NAME = ("audits {a} and {b} both hold a model named {model!r}; its predictions would be merged into one "
                   "model. Re-run one of them with the model under another name, or compare them one model each.")


def audit_labels(dirs: Sequence[Path]) -> list[str]:
    """A short name for each audit folder: its own name, or as many of its parent folders as keep the names
    apart (``x/std`` and ``y/std``). Raises DebiasError when a folder is given twice."""
    full = [Path(d).resolve() for d in dirs]
    for i, f in enumerate(full):
        if f in full[:i]:
            raise DebiasError(SAME_AUDIT_TWICE.format(d=dirs[i]))
    for k in range(1, max(len(f.parts) for f in full) + 1):
        labels = ["/".join(f.parts[-k:]) for f in full]
        if len(set(labels)) == len(labels):
            return labels
    return [str(f) for f in full]


def compare_audits(dirs: Sequence[str | Path]) -> pd.DataFrame:
    """Stack several audits' predictions (model names made unique by folder) for a paired comparison; the
    threshold each model's audit used is in ``attrs["thresholds"]``.

    Pairing is only meaningful on the same images: the audits must share the manifest (by hash, when
    their summary.json records it), the split, and the exact set of image ids.
    """
    dirs = [Path(d) for d in dirs]
    labels = audit_labels(dirs)
    preds, seen, owner, thresholds = [], [], {}, {}
    for d, label in zip(dirs, labels):
        if not (d / "predictions.csv").exists():
            raise FileNotFoundError(f"{d} has no predictions.csv; is it a folder written by `debias audit`?")
        p = pd.read_csv(d / "predictions.csv", low_memory=False)
        s = check_set(d, "summary.json", ("predictions.csv",))
        own = {str(k): float(v) for k, v in s.get("thresholds", {}).items()}
        if p["model"].nunique() == 1 and len(dirs) > 1:
            own = {label: own[str(p["model"].iloc[0])]} if str(p["model"].iloc[0]) in own else {}
            p["model"] = label
        thresholds.update(own)
        for m in dict.fromkeys(p["model"].astype(str)):
            if m in owner:
                raise DebiasError(SAME_MODEL_NAME.format(model=m, a=owner[m], b=d))
            owner[m] = d
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
    # pair faces by image id, never by a row number that another audit may give another image
    row_of = dict(zip(preds[0]["image"].astype(str), preds[0]["row"]))
    out = pd.concat([p.assign(row=p["image"].astype(str).map(row_of)) for p in preds], ignore_index=True)
    out.attrs["thresholds"] = thresholds  # model -> the threshold its audit used
    return out


__all__ = ["AuditResult", "audit_table", "check_fail_on", "fail_on_judged", "parse_fail_on", "merge_predictions",
           "concat_shards", "compare_audits", "score_models"]
