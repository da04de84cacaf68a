"""Per-group metrics on a prediction table, with intervals, disparities and significance tests.

Groups contain faces only: non-faces carry no demographics. So per group:

- ``detection_rate`` (recall, TPR) = hits / faces; ``miss_rate`` (FNR) = 1 - detection_rate;
  ``accuracy`` on a faces-only group equals the detection rate (it is what the DB-VAE paper's E[A]
  and Var[A] average and spread);
- ``mean_score``: mean face score of the group's faces;
- ``auc``: ROC AUC of the group's faces against *all* non-faces;
- ``ece``: expected calibration error (10 equal-width bins) on the group's faces plus all non-faces.

The false-positive rate is reported once, over all non-faces.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from debias.audit.stats import (fisher_vs_reference, holm, percentile_ci, stratified_bootstrap, trend_test,
                                wilson_interval)
from debias.data.groups import FITZPATRICK, sort_levels

MISSING = "(missing)"
TOO_FEW = "too few to judge"


def expected_calibration_error(y_true: np.ndarray, y_prob: np.ndarray, n_bins: int = 10) -> float:
    """ECE with equal-width bins: sum_b (n_b / n) * |mean(y_b) - mean(p_b)|."""
    y_true, y_prob = np.asarray(y_true, float), np.clip(np.asarray(y_prob, float), 0, 1)
    if len(y_true) == 0:
        return float("nan")
    b = np.minimum((y_prob * n_bins).astype(int), n_bins - 1)
    n_b = np.bincount(b, minlength=n_bins)
    gap = np.abs(np.bincount(b, y_true, n_bins) - np.bincount(b, y_prob, n_bins))
    return float(gap.sum() / len(y_true)) if n_b.sum() else float("nan")


def choose_threshold(scores: np.ndarray, y_true: np.ndarray, target_fpr: float) -> float:
    """Smallest threshold t with FPR = mean(non-face score >= t) <= target_fpr (one t for all groups)."""
    neg = np.sort(np.asarray(scores)[np.asarray(y_true) == 0])
    if len(neg) == 0:
        raise ValueError("no non-faces to choose a threshold at a target FPR; give --threshold.")
    k = int(np.floor(target_fpr * len(neg)))  # at most k negatives may be at or above t
    if k >= len(neg):
        return float(neg[0])
    # t just above the (k+1)-th largest negative: the k largest stay at or above it, ties included
    t = float(neg[len(neg) - k - 1])
    return float(np.nextafter(t, np.inf))


def cell_codes(attrs: pd.DataFrame, by: Sequence[str]) -> tuple[np.ndarray, list[tuple[str, ...]]]:
    """Finest intersection cell of each row: (codes (N,), the cells as tuples of levels, sorted).

    ``attrs`` holds the ``by`` columns as strings (missing values already filled).
    """
    keys = attrs[by[0]].str.cat([attrs[c] for c in by[1:]], sep="\x1f") if len(by) else \
        pd.Series("", index=attrs.index)
    codes, uniq = pd.factorize(keys, sort=True)
    return codes, [tuple(k.split("\x1f")) for k in uniq]


def ordinal_tone(values: pd.Series) -> pd.Series:
    """Skin tone as a number: Monk 1-10 as is, Fitzpatrick I-VI as 1-6; anything else NaN."""
    s = values.astype(str).str.strip().str.upper()
    num = pd.to_numeric(values, errors="coerce")
    return num.fillna(s.map(FITZPATRICK))


@dataclass
class ModelAudit:
    """Everything measured for one model: tidy tables plus headline numbers."""

    model: str
    threshold: float
    metrics: pd.DataFrame  # tidy: grouping, group, <by columns>, metric, value, ci_low, ci_high, boot_low, boot_high, n, flag
    disparities: pd.DataFrame  # one row per group: gap to reference, ratio, CI, p, Holm p
    summary: dict = field(default_factory=dict)  # per grouping: worst group, max-min gap, E[A], Var[A]; FPR; trend


def _groupings(by: Sequence[str]) -> list[tuple[str, ...]]:
    return [c for r in range(1, len(by) + 1) for c in itertools.combinations(by, r)]


def audit_model(pred: pd.DataFrame, by: Sequence[str], *, threshold: float | None = None, target_fpr: float = 0.01,
                reference: str = "largest", n_boot: int = 1000, min_n: int = 30, random_state: int = 0,
                model: str = "model") -> ModelAudit:
    """Audit one model's predictions.

    Parameters
    ----------
    pred : one row per image with ``y_true`` (0/1), ``y_score`` (higher = more face-like; NaN for a
        skipped image) and the attribute columns named in ``by``.
    by : attribute columns; every non-empty combination of them is a grouping (intersections).
    threshold : decision threshold on y_score; None picks one at ``target_fpr`` on all non-faces.
    reference : ``largest`` (most faces), ``best`` (highest detection rate) or a group name.

    Returns
    -------
    ModelAudit
    """
    missing = [c for c in by if c not in pred.columns]
    if missing:
        raise KeyError(f"attribute column(s) {', '.join(map(repr, missing))} not found; columns present: "
                       f"{', '.join(pred.columns)}.")
    y = pd.to_numeric(pred["y_true"], errors="coerce")
    if not y.dropna().isin([0, 1]).all() or y.isna().any():
        bad = pred["y_true"][~y.isin([0, 1])].iloc[0]
        raise ValueError(f"label values must be 0 or 1; found {bad!r}.")
    ok = pred["y_score"].notna().to_numpy()
    p = pred[ok].reset_index(drop=True)
    y_true = p["y_true"].to_numpy(int)
    score = p["y_score"].to_numpy(float)
    if threshold is None:
        if (y_true == 0).any():
            threshold = choose_threshold(score, y_true, target_fpr)
        elif "native_threshold" in p and p["native_threshold"].notna().any():
            threshold = float(p["native_threshold"].dropna().iloc[0])
        else:
            threshold = 0.5
    hit = (score >= threshold).astype(float)
    faces = y_true == 1
    attrs = p.loc[faces, list(by)].astype("string").fillna(MISSING).astype(str)
    levels = {c: sort_levels(attrs[c].unique()) for c in by}
    if reference not in ("largest", "best") and not any(reference in v for v in levels.values()):
        raise ValueError(f"--reference {reference!r} is not a group of {', '.join(by)}; use largest, best, or one "
                         f"of: {', '.join(sorted({x for v in levels.values() for x in v}))}.")

    # cells: finest intersection of faces; non-faces form one extra stratum
    codes, cell_tuples = cell_codes(attrs, by)
    n_cells = len(cell_tuples)
    cell = np.full(len(p), n_cells, dtype=np.int64)
    cell[faces] = codes
    # AUC of any face subset against all non-faces = mean over its faces of the share of non-faces
    # scored lower (ties count half): one sorted pass instead of a roc_auc_score call per group, and
    # a per-face value the bootstrap can resample like the score
    neg_sorted = np.sort(score[~faces])
    n_neg = len(neg_sorted)
    auc_part = np.full(len(score), np.nan)
    if n_neg:
        below = np.searchsorted(neg_sorted, score, "left")
        tied = np.searchsorted(neg_sorted, score, "right") - below
        auc_part = (below + 0.5 * tied) / n_neg
    # hits (faces and non-faces) by exact binomial draws; scores only where a metric uses them (faces)
    boot = stratified_bootstrap(cell, {"hit": hit}, n_boot=n_boot, random_state=random_state)
    face_vals = {"score": score[faces]} | ({"auc": auc_part[faces]} if n_neg else {})
    boot.sums.update(stratified_bootstrap(codes, face_vals, n_boot=n_boot, random_state=random_state + 1).sums)
    probs = bool(np.all((score >= 0) & (score <= 1)))
    n_bins = 10
    neg_bins = np.minimum((score[~faces] * n_bins).astype(int), n_bins - 1) if probs else None
    neg_n = np.bincount(neg_bins, minlength=n_bins) if probs else None
    neg_p = np.bincount(neg_bins, score[~faces], n_bins) if probs else None
    if probs and n_neg:
        # ECE intervals: within each cell, resample how many faces fall in each calibration bin
        # (multinomial, exact for the counts) with each bin's mean face score held at its cell value
        fbins = np.minimum((score[faces] * n_bins).astype(int), n_bins - 1)
        cell_bin_n = np.zeros((n_cells, n_bins))
        np.add.at(cell_bin_n, (codes, fbins), 1.0)
        cell_bin_s = np.zeros((n_cells, n_bins))
        np.add.at(cell_bin_s, (codes, fbins), score[faces])
        cell_bin_mean = np.divide(cell_bin_s, cell_bin_n, out=np.zeros_like(cell_bin_s), where=cell_bin_n > 0)
        rng_ece = np.random.default_rng([random_state, 11])
        sizes = cell_bin_n.sum(1)
        boot_bins = np.stack([rng_ece.multinomial(int(m), cell_bin_n[c] / m, n_boot) if m else
                              np.zeros((n_boot, n_bins)) for c, m in enumerate(sizes)], 1)  # (n_boot, cells, bins)

    rows, disp_rows, summary = [], [], {}
    # overall rows
    nf = ~faces
    fp = hit[nf].sum()
    lo, hi = wilson_interval(fp, nf.sum())
    b_fpr = boot.sums["hit"][:, -1] / max(nf.sum(), 1)
    blo, bhi = percentile_ci(b_fpr)
    rows.append(dict(grouping="overall", group="non-faces", metric="false_positive_rate",
                     value=fp / nf.sum() if nf.sum() else np.nan, ci_low=lo, ci_high=hi, boot_low=blo, boot_high=bhi,
                     n=int(nf.sum()), flag=""))
    summary["false_positive_rate"] = rows[-1]["value"]
    summary["threshold"] = float(threshold)

    def add_group_rows(grouping: str, name: str, keyvals: dict, member: np.ndarray, cells_in: np.ndarray):
        n = int(member.sum())
        k = float(hit[member].sum())
        flag = TOO_FEW if n < min_n else ""
        dr = k / n if n else np.nan
        lo, hi = wilson_interval(k, n)
        bn = boot.n[:n_cells][cells_in].sum()
        b_dr = boot.sums["hit"][:, :n_cells][:, cells_in].sum(1) / bn if bn else np.full(n_boot, np.nan)
        b_ms = boot.sums["score"][:, cells_in].sum(1) / bn if bn else np.full(n_boot, np.nan)
        dlo, dhi = percentile_ci(b_dr)
        mlo, mhi = percentile_ci(b_ms)
        alo = ahi = elo = ehi = np.nan
        if n_neg and bn:
            alo, ahi = percentile_ci(boot.sums["auc"][:, cells_in].sum(1) / bn)
        base = dict(grouping=grouping, group=name, **keyvals, n=n, flag=flag)
        auc = ece = np.nan
        if n and n_neg:
            auc = float(auc_part[member].mean())
            if probs:  # ECE of the group's faces plus all non-faces, from per-bin sums
                fb = np.minimum((score[member] * n_bins).astype(int), n_bins - 1)
                count = neg_n + np.bincount(fb, minlength=n_bins)
                pos = np.bincount(fb, minlength=n_bins).astype(float)
                conf = neg_p + np.bincount(fb, score[member], n_bins)
                ece = float(np.abs(pos - conf).sum() / count.sum())
                kb = boot_bins[:, cells_in, :]  # (n_boot, cells in group, bins)
                b_pos = kb.sum(1)
                b_conf = neg_p + (kb * cell_bin_mean[cells_in]).sum(1)
                elo, ehi = percentile_ci(np.abs(b_pos - b_conf).sum(1) / count.sum())
        for metric, v, cl, ch, bl, bh in (
                ("detection_rate", dr, lo, hi, dlo, dhi),
                ("miss_rate", 1 - dr, 1 - hi, 1 - lo, 1 - dhi, 1 - dlo),
                ("accuracy", dr, lo, hi, dlo, dhi),
                ("mean_score", score[member].mean() if n else np.nan, mlo, mhi, mlo, mhi),
                ("auc", auc, alo, ahi, alo, ahi),
                ("ece", ece, elo, ehi, elo, ehi)):
            rows.append({**base, "metric": metric, "value": v, "ci_low": cl, "ci_high": ch, "boot_low": bl,
                         "boot_high": bh})
        return dr, b_dr, n, k

    all_cells = np.ones(n_cells, bool)
    add_group_rows("overall", "all faces", {c: "*" for c in by}, faces, all_cells)
    summary["detection_rate"] = float(hit[faces].mean()) if faces.any() else float("nan")

    pvals_index = []
    for grouping in _groupings(by):
        gname = " x ".join(grouping)
        groups = []
        for combo in itertools.product(*(levels[c] for c in grouping)):
            keyvals = {c: (combo[grouping.index(c)] if c in grouping else "*") for c in by}
            member = faces.copy()
            member[faces] = np.all([attrs[c].to_numpy() == keyvals[c] for c in grouping], axis=0)
            cells_in = np.array([all(ct[by.index(c)] == keyvals[c] for c in grouping) for ct in cell_tuples], bool)
            name = " / ".join(combo)
            dr, b_dr, n, k = add_group_rows(gname, name, keyvals, member, cells_in)
            groups.append(dict(name=name, keyvals=keyvals, dr=dr, b=b_dr, n=n, k=k))
        judged = [g for g in groups if g["n"] >= min_n]
        if not judged:
            for g in groups:
                disp_rows.append(dict(grouping=gname, group=g["name"], reference="", n=g["n"], detection_rate=g["dr"],
                                      gap=np.nan, gap_ci_low=np.nan, gap_ci_high=np.nan, ratio=np.nan,
                                      p_value=np.nan, flag=TOO_FEW if g["n"] < min_n else ""))
            summary[gname] = {"judged_groups": 0, "note": "every group has fewer than min_n faces: too few to judge"}
            continue
        if reference == "largest":  # ties (balanced sets) go to the better-detected group
            ref = max(judged, key=lambda g: (g["n"], g["dr"]))
        elif reference == "best":
            ref = max(judged, key=lambda g: g["dr"])
        else:
            # a named level is the reference of its own attribute; other groupings use the largest group
            named = [g for g in judged if len(grouping) == 1 and g["name"] == reference]
            ref = named[0] if named else max(judged, key=lambda g: (g["n"], g["dr"]))
        for g in groups:
            gap = ref["dr"] - g["dr"]
            glo, ghi = percentile_ci(ref["b"] - g["b"])
            pv = fisher_vs_reference(int(g["k"]), g["n"], int(ref["k"]), ref["n"]) if g is not ref else np.nan
            disp_rows.append(dict(grouping=gname, group=g["name"], reference=ref["name"], n=g["n"],
                                  detection_rate=g["dr"], gap=gap, gap_ci_low=glo, gap_ci_high=ghi,
                                  ratio=g["dr"] / ref["dr"] if ref["dr"] else np.nan, p_value=pv,
                                  flag=TOO_FEW if g["n"] < min_n else ""))
            if g is not ref and g["n"] >= min_n:
                pvals_index.append(len(disp_rows) - 1)
        acc = np.array([g["dr"] for g in judged]) * 100
        b_acc = np.stack([g["b"] for g in judged], 1) * 100  # (n_boot, groups)
        worst, best = min(judged, key=lambda g: g["dr"]), max(judged, key=lambda g: g["dr"])
        mm = b_acc.max(1) - b_acc.min(1)
        var_b = b_acc.var(1)
        summary[gname] = {
            "reference": ref["name"], "worst_group": worst["name"], "worst_detection_rate": worst["dr"],
            "best_group": best["name"], "best_detection_rate": best["dr"],
            "max_min_gap": (best["dr"] - worst["dr"]), "max_min_gap_ci": [x / 100 for x in percentile_ci(mm)],
            "E[A]": float(acc.mean()), "Var[A]": float(acc.var()), "Var[A]_ci": list(percentile_ci(var_b)),
            "judged_groups": len(judged), "too_few": [g["name"] for g in groups if g["n"] < min_n],
        }
    disp = pd.DataFrame(disp_rows)
    if len(disp):
        disp["p_holm"] = np.nan
        if pvals_index:
            disp.loc[pvals_index, "p_holm"] = holm(disp.loc[pvals_index, "p_value"].to_numpy())
        disp["significant"] = disp["p_holm"] < 0.05
    if "skin_tone" in p.columns:
        tone = ordinal_tone(p.loc[faces, "skin_tone"])
        tau, pv = trend_test(tone.to_numpy(float), hit[faces])
        summary["skin_tone_trend"] = {"kendall_tau": tau, "p_value": pv,
                                      "note": "Kendall tau-b between ordinal skin tone and detection (faces)"}
    metrics = pd.DataFrame(rows)
    metrics.insert(0, "model", model)
    disp.insert(0, "model", model)
    return ModelAudit(model=model, threshold=float(threshold), metrics=metrics, disparities=disp, summary=summary)
