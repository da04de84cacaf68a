"""Render a box-level audit: sentences, figures, CSV/JSON tables and a self-contained HTML page."""
from __future__ import annotations

import datetime
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from debias.audit import boxes
from debias.report import plots
from debias.report.html import _env
from debias.report.text import pct

SMALL = 30  # fewer faces per group than this: say that the audit decides little


def verdicts(result: boxes.BoxAuditResult) -> list[str]:
    """One sentence per detector and grouping: who is found least, by how much, beyond noise or not."""
    lines, unmet = [], {}
    for s in result.summary.to_dict("records"):
        if not np.isfinite(s["threshold"]):
            unmet[s["model"]] = s
            native = (f"; at its own operating point it finds {pct(s['recall_native'])}% of faces with "
                      f"{s['fppi_native']:.2f} false positives per image" if s.get("recall_native") is not None else "")
            lines.append(f"{s['model']}: no threshold keeps its false positives at or below {s['fppi_target']:g} per "
                         f"image, so no group can be compared there{native}.")
    for g in result.gaps.itertuples():
        if g.model in unmet:
            continue
        beyond = ("beyond noise (the image-bootstrap interval excludes 0)" if g.significant
                  else "within noise (the interval includes 0)")
        if g.gap == 0:
            lines.append(f"{g.model}: by {g.grouping}, every group is found equally often "
                         f"(95% CI of the gap {100 * g.gap_ci_low:.1f} to {100 * g.gap_ci_high:.1f} points).")
            continue
        lines.append(f"{g.model}: by {g.grouping}, {g.worst} faces are found least; {g.best} faces are found "
                     f"{100 * g.gap:.1f} points more often (95% CI {100 * g.gap_ci_low:.1f} to {100 * g.gap_ci_high:.1f}), "
                     f"{beyond}.")
    return lines or ["No grouping has two groups with enough faces to compare."]


def missed_gallery(faces: pd.DataFrame, by: str, images: Callable, per_group: int = 8, margin: float = 0.25) -> list:
    """Per detector and group of ``by``: the faces it missed at its operating point, cropped around the true box
    (``margin`` x the box on each side), captioned with the miss reason. The faces with the highest score
    come first (the nearest misses), so the gallery shows what it almost found."""
    out = []
    for model, fm in faces.groupby("model", sort=False):
        groups = []
        for g, fg in fm.groupby(by, sort=False) if by in fm.columns else []:
            missed = fg[~fg["found"].astype(bool)].sort_values("score", ascending=False, na_position="last")
            thumbs = []
            for r in missed.head(per_group).itertuples():
                im = images(r.image)
                if im is None:
                    continue
                mx, my = margin * r.box_w, margin * r.box_h
                x0, y0 = max(int(r.box_x - mx), 0), max(int(r.box_y - my), 0)
                crop = im[y0:int(r.box_y + r.box_h + my) + 1, x0:int(r.box_x + r.box_w + mx) + 1]
                if crop.size:
                    thumbs.append({"b64": plots.image_to_base64(crop),
                                   "caption": f"{r.image}: {r.miss_reason or 'missed'}"})
            groups.append({"group": str(g), "n_missed": int((~fg["found"].astype(bool)).sum()), "n": len(fg),
                           "thumbs": thumbs})
        out.append({"model": model, "col": by, "groups": groups})
    return out


def write_box_outputs(result: boxes.BoxAuditResult, out: str | Path, *, title: str = "Face detector audit: boxes",
                      images: Callable | None = None) -> Path:
    """Write by_group.csv, gaps.csv, summary.json, detections.csv, faces.csv and report.html into ``out``.

    ``images`` (see :func:`debias.report.outputs.image_reader`) adds a gallery of each detector's missed faces to the report."""
    from debias.report.outputs import audit_set

    out = Path(out)
    summary = [{k: v for k, v in r.items() if not (k.endswith("_note") and v is None)}  # notes only where they apply
               for r in result.summary.replace({np.nan: None}).to_dict("records")]
    long = result.long()
    figures = []
    with plots.report_style():
        for grouping in dict.fromkeys(long["grouping"]):
            for metric in ("recall", "ap"):
                fig = plots.group_bars(long, grouping, metric)
                fig.axes[0].set_title(f"{'recall at the FPPI point' if metric == 'recall' else 'average precision'} "
                                      f"by {grouping} (95% image bootstrap)")
                figures.append({"png": plots.fig_to_base64(fig), "alt": f"{metric} by {grouping}"})
    n_small = result.by_group["n_faces"].min() if len(result.by_group) else 0
    small = (f"The smallest group has {n_small} faces: with fewer than {SMALL} faces per group the intervals are "
             f"wide and differences between detectors or groups decide little." if n_small < SMALL else "")
    s0 = summary[0] if summary else {}
    html = _env().get_template("boxes.html.j2").render(
        title=title, created=datetime.datetime.now().isoformat(timespec="seconds"), iou=s0.get("iou"),
        fppi=s0.get("fppi_target"), n_images=s0.get("n_images"), n_faces=s0.get("n_faces"),
        verdicts=verdicts(result), small=small, summary=summary, figures=figures,
        galleries=missed_gallery(result.faces, result.by_group["grouping"].iloc[0], images)
        if images is not None and len(result.by_group) else [],
        rows=result.by_group.to_dict("records"), gaps=result.gaps.to_dict("records"), pct=pct,
        methods=[p.strip().replace("\n", " ") for p in boxes.__doc__.split("\n\n")[1:]])
    with audit_set(out) as (put, seal):  # one set: summary.json, last, lists every file with its sha256
        for name, frame in (("by_group.csv", result.by_group), ("gaps.csv", result.gaps),
                            ("detections.csv", result.detections), ("faces.csv", result.faces)):
            put(name, lambda t, f=frame: f.to_csv(t, index=False))
        put("report.html", lambda t: t.write_text(html, encoding="utf-8"))
        seal({"detectors": summary, "methods": boxes.__doc__})
    return out / "report.html"
