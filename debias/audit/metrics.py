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
from debias.errors import DebiasError

MISSING = "(missing)"
TOO_FEW = "too few to judge"


N_BINS = 10  # calibration bins: the ECE, its intervals and the report's calibration plot share them


def calibration_bin(y_prob: np.ndarray, n_bins: int = N_BINS) -> np.ndarray:
    """Equal-width calibration bin of each probability in [0, 1]; 1.0 falls in the last bin."""
    return np.minimum((np.asarray(y_prob, float) * n_bins).astype(int), n_bins - 1)


def calibration_sums(y_true: np.ndarray, y_prob: np.ndarray,
                     n_bins: int = N_BINS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width bin: (count, sum of labels, sum of probabilities); the ECE and the reliability plot."""
    y_true, y_prob = np.asarray(y_true, float), np.asarray(y_prob, float)
    b = calibration_bin(y_prob, n_bins)
    return np.bincount(b, minlength=n_bins), np.bincount(b, y_true, n_bins), np.bincount(b, y_prob, n_bins)


def expected_calibration_error(y_true: np.ndarray, y_prob: np.ndarray, n_bins: int = N_BINS) -> float:
    """ECE with equal-width bins: sum_b (n_b / n) * |mean(y_b) - mean(p_b)|."""
    if len(y_true) == 0:
        return float("nan")
    _, sum_y, sum_p = calibration_sums(y_true, np.clip(np.asarray(y_prob, float), 0, 1), n_bins)
    return float(np.abs(sum_y - sum_p).sum() / len(y_true))


def choose_threshold(scores: np.ndarray, y_true: np.ndarray, target_fpr: float) -> float:
    """Smallest threshold t with FPR = mean(non-face score >= t) <= target_fpr (one t for all groups)."""
    neg = np.sort(np.asarray(scores)[np.asarray(y_true) == 0])
    if len(neg) == 0:
        raise ValueError("no non-faces to choose a threshold at a target FPR; give a `threshold`.")
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
    by = list(by)
    p = _scored_rows(pred, by)
    y_true = p["y_true"].to_numpy(int)
    score = p["y_score"].to_numpy(float)
    threshold, source = _resolve_threshold(p, score, y_true, threshold, target_fpr)
    faces = y_true == 1
    attrs = p.loc[faces, by].astype("string").fillna(MISSING).astype(str)
    levels = {c: sort_levels(attrs[c].unique()) for c in by}
    if reference not in ("largest", "best") and not any(reference in v for v in levels.values()):
        raise ValueError(f"`reference` {reference!r} is not a group of {', '.join(by)}; use largest, best, or one "
                         f"of: {', '.join(sorted({x for v in levels.values() for x in v}))}.")
    st = _Stats.build(score, (score >= threshold).astype(float), faces, attrs, by, n_boot, min_n, random_state)

    rows = [st.false_positive_row()]
    summary = {"false_positive_rate": rows[0]["value"], "threshold": float(threshold), "threshold_source": source}
    rows += st.group_rows("overall", "all faces", {c: "*" for c in by}, faces, np.ones(st.n_cells, bool))[0]
    summary["detection_rate"] = float(st.hit[faces].mean()) if faces.any() else float("nan")

    disp_rows, tested = [], []
    for grouping in _groupings(by):
        gname = " x ".join(grouping)
        groups = []
        for combo in itertools.product(*(levels[c] for c in grouping)):
            keyvals = {c: (combo[grouping.index(c)] if c in grouping else "*") for c in by}
            cells_in = np.array([all(ct[by.index(c)] == keyvals[c] for c in grouping) for ct in st.cells], bool)
            member = faces.copy()
            member[faces] = cells_in[st.codes]  # a face is in the group when its finest cell is
            g_rows, g = st.group_rows(gname, " / ".join(combo), keyvals, member, cells_in)
            rows += g_rows
            groups.append(g)
        g_disp, g_tested, summary[gname] = _compare_groups(groups, gname, reference, min_n, len(grouping) == 1)
        tested += [len(disp_rows) + i for i in g_tested]
        disp_rows += g_disp
    disp = _with_holm(pd.DataFrame(disp_rows), tested)
    if "skin_tone" in p.columns:
        tau, pv = trend_test(ordinal_tone(p.loc[faces, "skin_tone"]).to_numpy(float), st.hit[faces])
        summary["skin_tone_trend"] = {"kendall_tau": tau, "p_value": pv,
                                      "note": "Kendall tau-b between ordinal skin tone and detection (faces)"}
    metrics = pd.DataFrame(rows)
    metrics.insert(0, "model", model)
    disp.insert(0, "model", model)
    return ModelAudit(model=model, threshold=float(threshold), metrics=metrics, disparities=disp, summary=summary)


def _scored_rows(pred: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """The rows with a score, after checking the attribute columns and the labels."""
    missing = [c for c in by if c not in pred.columns]
    if missing:
        raise KeyError(f"attribute column(s) {', '.join(map(repr, missing))} not found; columns present: "
                       f"{', '.join(pred.columns)}.")
    y = pd.to_numeric(pred["y_true"], errors="coerce")
    if not y.dropna().isin([0, 1]).all() or y.isna().any():
        bad = pred["y_true"][~y.isin([0, 1])].iloc[0]
        raise ValueError(f"label values must be 0 or 1; found {bad!r}.")
    return pred[pred["y_score"].notna().to_numpy()].reset_index(drop=True)


def _resolve_threshold(p: pd.DataFrame, score: np.ndarray, y_true: np.ndarray, threshold: float | None,
                       target_fpr: float) -> tuple[float, str]:
    """(threshold, where it came from): the given one; else the one at ``target_fpr``; else the model's own (a
    detector's, or 0.5 for a 'prediction' column of decisions); else 0.5. A face-only set (PPB, say) has no non-faces
    to set a threshold at a false-positive rate; scores tied at the top (0/1 decisions) reach the target only by
    detecting nothing, which is the model's own threshold where it has one and an error where it has none."""
    if threshold is not None:
        return threshold, "given"
    native = float(p["native_threshold"].dropna().iloc[0]) if "native_threshold" in p and \
        p["native_threshold"].notna().any() else None
    if (y_true == 0).any():
        t = choose_threshold(score, y_true, target_fpr)
        if not (score >= t).any():  # ties at the top: only detecting nothing meets the target
            neg = score[y_true == 0]
            m = int((neg == neg.max()).sum())
            if native is not None:  # decisions, or a detector's own operating point: audit at that, and say so
                return native, (f"the model's own: {m} of the {len(neg)} non-faces share its highest score, so no "
                                f"threshold at a false-positive rate of {target_fpr:g} detects anything")
            raise DebiasError(
                f"no threshold detects anything at a false-positive rate of at most {target_fpr:g}: {m} of the "
                f"{len(neg)} non-faces share the highest score, {neg.max():g} (scores with few distinct values, such "
                f"as 0/1 decisions). Give a `threshold` (0.5 for decisions), or a `target_fpr` of at least "
                f"{m / len(neg):.3g}.")
        return t, f"false-positive rate {target_fpr:g} over the non-faces"
    if native is not None:
        return native, "the model's own: no non-faces to set one at a false-positive rate"
    return 0.5, "0.5: no non-faces to set one at a false-positive rate, and the model has no threshold of its own"


def auc_parts(score: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Each image's share of the non-faces scored below it (ties count half); NaN without non-faces.

    The AUC of any face subset against all non-faces is the mean of its faces' parts: one sorted
    pass instead of a ``roc_auc_score`` call per group, and a per-face value the bootstrap can
    resample like the score.
    """
    neg_sorted = np.sort(score[~faces])
    if not len(neg_sorted):
        return np.full(len(score), np.nan)
    below = np.searchsorted(neg_sorted, score, "left")
    tied = np.searchsorted(neg_sorted, score, "right") - below
    return (below + 0.5 * tied) / len(neg_sorted)


@dataclass
class _Calibration:
    """ECE of a group's faces plus all non-faces, with a bootstrap interval, from per-bin sums.

    The interval resamples, within each cell, how many faces fall in each bin (multinomial, exact
    for the counts) with each bin's mean face score held at its cell value and the non-faces fixed.
    """

    neg_n: np.ndarray  # (bins,) non-faces per bin
    neg_p: np.ndarray  # (bins,) sum of non-face scores per bin
    cell_bin_mean: np.ndarray  # (cells, bins) mean face score
    boot_bins: np.ndarray  # (n_boot, cells, bins) resampled face counts

    @classmethod
    def build(cls, score: np.ndarray, faces: np.ndarray, codes: np.ndarray, n_cells: int, n_boot: int,
              random_state: int) -> "_Calibration":
        neg_bins = calibration_bin(score[~faces])
        fbins = calibration_bin(score[faces])
        cell_bin_n = np.zeros((n_cells, N_BINS))
        np.add.at(cell_bin_n, (codes, fbins), 1.0)
        cell_bin_s = np.zeros((n_cells, N_BINS))
        np.add.at(cell_bin_s, (codes, fbins), score[faces])
        cell_bin_mean = np.divide(cell_bin_s, cell_bin_n, out=np.zeros_like(cell_bin_s), where=cell_bin_n > 0)
        rng = np.random.default_rng([random_state, 11])
        boot_bins = np.stack([rng.multinomial(int(m), cell_bin_n[c] / m, n_boot) if m else
                              np.zeros((n_boot, N_BINS)) for c, m in enumerate(cell_bin_n.sum(1))], 1)
        return cls(np.bincount(neg_bins, minlength=N_BINS), np.bincount(neg_bins, score[~faces], N_BINS),
                   cell_bin_mean, boot_bins)

    def ece(self, face_scores: np.ndarray, cells_in: np.ndarray) -> tuple[float, float, float]:
        fb = calibration_bin(face_scores)
        count = self.neg_n + np.bincount(fb, minlength=N_BINS)
        pos = np.bincount(fb, minlength=N_BINS).astype(float)
        conf = self.neg_p + np.bincount(fb, face_scores, N_BINS)
        kb = self.boot_bins[:, cells_in, :]  # (n_boot, cells in group, bins)
        b_conf = self.neg_p + (kb * self.cell_bin_mean[cells_in]).sum(1)
        lo, hi = percentile_ci(np.abs(kb.sum(1) - b_conf).sum(1) / count.sum())
        return float(np.abs(pos - conf).sum() / count.sum()), lo, hi


@dataclass
class _Stats:
    """One model's hits, scores and bootstrap sums, from which every group's rows are read."""

    hit: np.ndarray  # (images,) 0/1 at the threshold
    score: np.ndarray
    faces: np.ndarray  # (images,) bool
    codes: np.ndarray  # (faces,) finest cell of each face, an index into ``cells``
    auc_part: np.ndarray
    boot: object  # stats.Bootstrap: sums per stratum (cells, then the non-faces)
    cells: list  # the finest intersection cells, as tuples of levels
    n_boot: int
    min_n: int
    calibration: _Calibration | None  # None when scores are not probabilities or there are no non-faces

    @property
    def n_cells(self) -> int:
        return len(self.cells)

    @classmethod
    def build(cls, score, hit, faces, attrs, by, n_boot, min_n, random_state) -> "_Stats":
        codes, cells = cell_codes(attrs, by)
        cell = np.full(len(score), len(cells), dtype=np.int64)  # non-faces form one extra stratum
        cell[faces] = codes
        auc_part = auc_parts(score, faces)
        n_neg = int((~faces).sum())
        # hits (faces and non-faces) by exact binomial draws; scores only where a metric uses them (faces)
        boot = stratified_bootstrap(cell, {"hit": hit}, n_boot=n_boot, random_state=random_state)
        face_vals = {"score": score[faces]} | ({"auc": auc_part[faces]} if n_neg else {})
        boot.sums.update(stratified_bootstrap(codes, face_vals, n_boot=n_boot, random_state=random_state + 1).sums)
        probs = bool(np.all((score >= 0) & (score <= 1)))
        calibration = _Calibration.build(score, faces, codes, len(cells), n_boot, random_state) \
            if probs and n_neg else None
        return cls(hit, score, faces, codes, auc_part, boot, cells, n_boot, min_n, calibration)

    def false_positive_row(self) -> dict:
        """The false-positive rate over all non-faces (the bootstrap's last stratum)."""
        nf = int((~self.faces).sum())
        fp = self.hit[~self.faces].sum()
        lo, hi = wilson_interval(fp, nf)
        blo, bhi = percentile_ci(self.boot.sums["hit"][:, -1] / nf) if nf else (np.nan, np.nan)
        return dict(grouping="overall", group="non-faces", metric="false_positive_rate",
                    value=fp / nf if nf else np.nan, ci_low=lo, ci_high=hi, boot_low=blo, boot_high=bhi,
                    n=nf, flag="")

    def group_rows(self, grouping: str, name: str, keyvals: dict, member: np.ndarray,
                   cells_in: np.ndarray) -> tuple[list[dict], dict]:
        """The six metric rows of one group, and its detection rate with bootstrap draws for gaps."""
        n, k = int(member.sum()), float(self.hit[member].sum())
        dr = k / n if n else np.nan
        lo, hi = wilson_interval(k, n)
        sums = {key: v[:, :self.n_cells][:, cells_in].sum(1) for key, v in self.boot.sums.items()}
        bn = self.boot.n[:self.n_cells][cells_in].sum()
        b_dr = sums["hit"] / bn if bn else np.full(self.n_boot, np.nan)
        dlo, dhi = percentile_ci(b_dr)
        mlo, mhi = percentile_ci(sums["score"] / bn if bn else np.full(self.n_boot, np.nan))
        auc = ece = alo = ahi = elo = ehi = np.nan
        if "auc" in sums and bn:
            alo, ahi = percentile_ci(sums["auc"] / bn)
        if n and "auc" in sums:
            auc = float(self.auc_part[member].mean())
            if self.calibration is not None:
                ece, elo, ehi = self.calibration.ece(self.score[member], cells_in)
        base = dict(grouping=grouping, group=name, **keyvals, n=n, flag=TOO_FEW if n < self.min_n else "")
        rows = [{**base, "metric": metric, "value": v, "ci_low": cl, "ci_high": ch, "boot_low": bl, "boot_high": bh}
                for metric, v, cl, ch, bl, bh in (
                    ("detection_rate", dr, lo, hi, dlo, dhi),
                    ("miss_rate", 1 - dr, 1 - hi, 1 - lo, 1 - dhi, 1 - dlo),
                    ("accuracy", dr, lo, hi, dlo, dhi),
                    ("mean_score", self.score[member].mean() if n else np.nan, mlo, mhi, mlo, mhi),
                    ("auc", auc, alo, ahi, alo, ahi),
                    ("ece", ece, elo, ehi, elo, ehi))]
        return rows, dict(name=name, dr=dr, b=b_dr, n=n, k=k)


def _compare_groups(groups: list[dict], gname: str, reference: str, min_n: int,
                    single: bool) -> tuple[list[dict], list[int], dict]:
    """Disparity rows of one grouping (gap to its reference, Fisher p), the rows tested, its summary.

    ``single``: the grouping is one attribute, so a named ``reference`` level can be its reference.
    """
    judged = [g for g in groups if g["n"] >= min_n]
    if not judged:
        rows = [dict(grouping=gname, group=g["name"], reference="", n=g["n"], detection_rate=g["dr"], gap=np.nan,
                     gap_ci_low=np.nan, gap_ci_high=np.nan, ratio=np.nan, p_value=np.nan,
                     flag=TOO_FEW if g["n"] < min_n else "") for g in groups]
        return rows, [], {"judged_groups": 0, "note": "every group has fewer than min_n faces: too few to judge"}
    if reference == "largest":  # ties (balanced sets) go to the better-detected group
        ref = max(judged, key=lambda g: (g["n"], g["dr"]))
    elif reference == "best":
        ref = max(judged, key=lambda g: g["dr"])
    else:
        # a named level is the reference of its own attribute; other groupings use the largest group
        named = [g for g in judged if single and g["name"] == reference]
        ref = named[0] if named else max(judged, key=lambda g: (g["n"], g["dr"]))
    rows, tested = [], []
    for g in groups:
        glo, ghi = percentile_ci(ref["b"] - g["b"])
        pv = fisher_vs_reference(int(g["k"]), g["n"], int(ref["k"]), ref["n"]) if g is not ref else np.nan
        rows.append(dict(grouping=gname, group=g["name"], reference=ref["name"], n=g["n"], detection_rate=g["dr"],
                         gap=ref["dr"] - g["dr"], gap_ci_low=glo, gap_ci_high=ghi,
                         ratio=g["dr"] / ref["dr"] if ref["dr"] else np.nan, p_value=pv,
                         flag=TOO_FEW if g["n"] < min_n else ""))
        if g is not ref and g["n"] >= min_n:
            tested.append(len(rows) - 1)
    acc = np.array([g["dr"] for g in judged]) * 100
    b_acc = np.stack([g["b"] for g in judged], 1) * 100  # (n_boot, groups)
    worst, best = min(judged, key=lambda g: g["dr"]), max(judged, key=lambda g: g["dr"])
    summary = {
        "reference": ref["name"], "worst_group": worst["name"], "worst_detection_rate": worst["dr"],
        "best_group": best["name"], "best_detection_rate": best["dr"],
        "max_min_gap": (best["dr"] - worst["dr"]),
        "max_min_gap_ci": [x / 100 for x in percentile_ci(b_acc.max(1) - b_acc.min(1))],
        "E[A]": float(acc.mean()), "Var[A]": float(acc.var()), "Var[A]_ci": list(percentile_ci(b_acc.var(1))),
        "judged_groups": len(judged), "too_few": [g["name"] for g in groups if g["n"] < min_n],
    }
    return rows, tested, summary


def _with_holm(disp: pd.DataFrame, tested: list[int]) -> pd.DataFrame:
    """Holm-adjusted p-values over every tested group of a model, and the 5% significance flag."""
    if len(disp):
        disp["p_holm"] = np.nan
        if tested:
            disp.loc[tested, "p_holm"] = holm(disp.loc[tested, "p_value"].to_numpy())
        disp["significant"] = disp["p_holm"] < 0.05
    return disp
