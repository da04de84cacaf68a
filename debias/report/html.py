"""Render an :class:`~debias.audit.engine.AuditResult` as one self-contained HTML file.

Jinja2 with autoescaping: group names, file names and model names are user data and may contain
HTML. Every figure is a base64 PNG; the page loads nothing from anywhere.
"""
from __future__ import annotations

from typing import Callable, Sequence

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from debias.audit.metrics import TOO_FEW
from debias.report import plots
from debias.report.text import headline, pct, slice_sentences, verdicts

METHODS = [
    "Scores are thresholded once per model with the same threshold for every group: either the value given "
    "with --threshold, or the smallest threshold whose false-positive rate over all non-faces is at most "
    "--target-fpr. A detector without non-faces in the set uses its own decision point (0.5 for probabilities, "
    "'detected' for OpenCV cascades).",
    "Groups contain faces only. Detection rate (recall, TPR) = detected faces / faces; miss rate (FNR) = 1 - "
    "detection rate; accuracy on a faces-only group equals the detection rate. Mean score is the mean face score. "
    "AUC compares a group's faces with all non-faces; ECE (10 equal-width bins) uses a group's faces plus all "
    "non-faces. The false-positive rate is reported once, over all non-faces.",
    "Intervals: Wilson score intervals (95%) for proportions. A stratified bootstrap (--n-boot resamples, seeded) "
    "resamples with replacement within every finest intersection cell and within the non-faces, so group sizes "
    "are fixed; coarser groups, gaps, the max-min gap and Var[A] are recomputed from the same resamples and "
    "reported as 95% percentile intervals. AUC intervals resample a group's faces with the non-face set held "
    "fixed (they are conditional on the negatives). ECE intervals resample, within each cell, how many faces fall "
    "in each of the 10 calibration bins (multinomial), with each bin's mean face score held at its cell value and "
    "the non-faces fixed.",
    "Gap = detection rate of the reference group minus that of the group (positive: the group is detected less). "
    "The reference is the largest group, the best group, or a named group (--reference). Each group is tested "
    "against the reference with a two-sided Fisher exact test; p-values are Holm-adjusted across all comparisons "
    "of a model. E[A] and Var[A] are the mean and (population) variance, in percent and percent squared, of the "
    "detection rate across the judged groups of a grouping, as in Amini et al. (AIES 2019).",
    "Cells with fewer faces than --min-n are flagged 'too few to judge': they are shown with their numbers but "
    "excluded from references, worst/best groups, gaps statistics and the headline.",
    "Ordinal skin tone (Monk 1-10 or Fitzpatrick I-VI) is also tested for a monotone trend with Kendall's tau-b "
    "between tone and detection.",
    "Two or more models on the same images are compared in pairs with the first model as the baseline: an exact "
    "McNemar test on the faces each detects, and a paired stratified bootstrap of the difference in max-min gap "
    "(faces resampled jointly for both models within cells).",
    "Image covariates are measured on the images as audited: width and height in pixels, brightness and contrast "
    "(mean and standard deviation of grey levels) and sharpness (variance of the Laplacian at 64 x 64). A group "
    "that differs in these can differ in detection for reasons that are not its demographics.",
]


def _env() -> Environment:
    return Environment(loader=PackageLoader("debias.report", "templates"), autoescape=select_autoescape(["html", "j2"]))


def _thumbs(rows: pd.DataFrame, images: Callable) -> list[dict]:
    """A thumbnail (base64 PNG and caption) of each prediction row whose image can be read."""
    return [{"b64": plots.image_to_base64(im), "caption": f"{r['image']} score {r['y_score']:.2f}"}
            for _, r in rows.iterrows() if (im := images(int(r["row"]))) is not None]


def _gallery(pred: pd.DataFrame, model: str, col: str, threshold: float, images: Callable, per_group: int = 8):
    out = []
    d = pred[(pred["model"] == model) & (pred["y_true"] == 1) & pred["y_score"].notna()]
    for g, dg in d.groupby(col):
        missed = dg[dg["y_score"] < threshold].nsmallest(per_group, "y_score")
        out.append({"group": str(g), "n_missed": int((dg["y_score"] < threshold).sum()), "n": len(dg),
                    "thumbs": _thumbs(missed, images)})
    return out


def _figures(pred: pd.DataFrame, metrics: pd.DataFrame, by: list, models: list, thresholds: dict) -> list:
    """(section, title, base64 PNG) of every figure in the report."""
    figs = []  # (section, title, b64)
    for col in by:
        figs.append(("groups", f"Detection rate by {col}", plots.fig_to_base64(plots.group_bars(metrics, col))))
    if len(by) >= 2:
        for m in models:
            figs.append(("heatmap", f"{m}: {by[0]} x {by[1]}", plots.fig_to_base64(plots.heatmap(metrics, m, by[0], by[1]))))
    dist_cols = by[:2]
    for m in models:
        for col in dist_cols:
            figs.append(("scores", f"{m}: scores by {col}",
                         plots.fig_to_base64(plots.score_distributions(pred, m, col, thresholds.get(m, 0.5)))))
            figs.append(("roc", f"{m}: ROC by {col}", plots.fig_to_base64(plots.roc_by_group(pred, m, col))))
            figs.append(("calibration", f"{m}: calibration by {col}",
                         plots.fig_to_base64(plots.calibration_by_group(pred, m, col))))
    for col in by:
        figs.append(("covariates", f"Image covariates by {col}", plots.fig_to_base64(plots.covariates(pred, col))))
    return figs


def _discovery(result, images: Callable | None, thumbnails: bool, per_slice: int = 8, worst: int = 3) -> dict | None:
    """The "Discovered slices" section: sentences, a table and a bar chart per model, the rarity curve and, with
    thumbnails, the missed faces of each model's worst slices."""
    d = result.discovery
    if d is None:
        return None
    pred = result.predictions.merge(d.faces, on=["row", "model"])
    thresholds = result.summary.get("thresholds", {})
    models, galleries = list(dict.fromkeys(d.slices["model"])), []
    figs = [(f"{m}: slices", plots.fig_to_base64(plots.slice_bars(d.slices, m))) for m in models]
    figs.append(("detection by rarity", plots.fig_to_base64(plots.rarity_curve(d.rarity))))
    for m in models if images is not None and thumbnails else ():
        for _, s in d.slices[d.slices["model"] == m].head(worst).iterrows():
            faces = pred[(pred["model"] == m) & (pred["slice"] == s["slice"])]
            faces = faces.assign(missed=faces["y_score"] < thresholds.get(m, 0.5)).sort_values(
                ["missed", "y_score"], ascending=[False, True]).head(per_slice)
            galleries.append({"title": f"{m}, slice {s['slice']}: {pct(s['detection_rate'], '%')} of its "
                              f"{s['n_held_out']} held-out faces detected ({s['n']} faces)",
                              "thumbs": _thumbs(faces, images)})
    rows = [{"model": r["model"], "slice": r["slice"], "n": r["n"], "n_held_out": r["n_held_out"],
             "fit": pct(r["fit_rate"]), "dr": pct(r["detection_rate"]),
             "ci": f"{pct(r['ci_low'])} to {pct(r['ci_high'])}", "rarity": f"{r['rarity']:.2f}",
             "made_of": r["description"] or "-"} for _, r in d.slices.iterrows()]
    return {"source": d.source, "sentences": slice_sentences(d), "rows": rows, "figs": figs, "galleries": galleries}


def render_report(result, cfg, *, title: str, images: Callable | None = None, extra_sections: Sequence[dict] = (),
                  summary: dict | None = None, lead: tuple[str, str] | None = None) -> str:
    """HTML text of the report for an AuditResult.

    ``lead = (model, grouping)``: that model's verdict on that grouping's gap opens the report.
    """
    by = list(cfg.by)
    pred, metrics, disp = result.predictions, result.metrics, result.disparities
    models = list(dict.fromkeys(pred["model"]))
    thresholds = result.summary.get("thresholds", {})
    with plots.report_style():  # the report's look, never the caller's global matplotlib state
        figs = _figures(pred, metrics, by, models, thresholds)
        discovery = _discovery(result, images, cfg.thumbnails)
    full = " x ".join(by)
    cov = metrics[(metrics["metric"] == "detection_rate") & (metrics["grouping"] == full) & (metrics["model"] == models[0])]
    coverage = [{"group": r["group"], "n": int(r["n"]), "flag": r["flag"]} for _, r in cov.iterrows()]
    summaries = []
    for m in models:
        s = result.summary["models"][m]
        for col in by + ([full] if len(by) > 1 else []):
            v = s.get(col, {})
            summaries.append({"model": m, "grouping": col, "worst": v.get("worst_group", "too few to judge"),
                              "worst_rate": pct(v.get("worst_detection_rate")),
                              "gap": pct(v.get("max_min_gap")),
                              "gap_ci": " to ".join(pct(x) for x in v.get("max_min_gap_ci", [])),
                              "ea": f"{v['E[A]']:.1f}" if "E[A]" in v else "n/a",
                              "va": f"{v['Var[A]']:.1f}" if "Var[A]" in v else "n/a",
                              "va_ci": " to ".join(f"{x:.1f}" for x in v.get("Var[A]_ci", []))})
    disp_rows = []
    for _, r in disp.iterrows():
        disp_rows.append({k: r[k] for k in ("model", "grouping", "group", "reference", "n", "flag")} |
                         {"dr": pct(r["detection_rate"]), "gap": pct(r["gap"]),
                          "ci": f"{pct(r['gap_ci_low'])} to {pct(r['gap_ci_high'])}",
                          "p": "" if pd.isna(r.get("p_holm")) else f"{r['p_holm']:.2g}",
                          "sig": bool(r.get("significant")) if pd.notna(r.get("p_holm")) else False})
    galleries = []
    if images is not None and cfg.thumbnails:
        for m in models:
            galleries.append({"model": m, "col": by[0], "groups": _gallery(pred, m, by[0], thresholds.get(m, 0.5), images)})
    paired = result.paired.to_dict("records") if len(result.paired) else []
    model_info = [{"model": m, "threshold": f"{thresholds.get(m, float('nan')):.4g}",
                   "threshold_source": result.summary["models"][m].get("threshold_source", ""),
                   "fpr": pct(result.summary["models"][m].get("false_positive_rate")),
                   "dr": pct(result.summary["models"][m].get("detection_rate")),
                   "trend": result.summary["models"][m].get("skin_tone_trend")} for m in models]
    return _env().get_template("report.html.j2").render(
        title=title, headline=headline(result), verdicts=verdicts(result.paired, lead=lead), estimated=result.estimated,
        skipped=result.skipped.to_dict("records"),
        figs=figs, coverage=coverage, summaries=summaries, disp_rows=disp_rows, galleries=galleries, paired=paired,
        model_info=model_info, methods=METHODS, discovery=discovery, too_few=TOO_FEW, cfg=cfg, extra_sections=list(extra_sections),
        versions=(summary or {}).get("versions", {}), created=(summary or {}).get("created", ""), pct=pct)
