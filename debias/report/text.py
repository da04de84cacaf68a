"""Sentences about an audit: the headline findings and one verdict per compared model.

Compute, then render: :func:`debias.audit.engine.audit_table` returns numbers; this module words them.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def pct(x, unit: str = "") -> str:
    """A proportion as percent with one decimal (``0.123`` -> ``12.3``), ``n/a`` when missing."""
    if x is None or (isinstance(x, (float, np.floating)) and not np.isfinite(x)):
        return "n/a"
    return f"{100 * float(x):.1f}{unit}"


def headline(result) -> list[str]:
    """Plain-language sentences: who is failed most, by how much, and whether it is beyond noise.

    ``result`` is an :class:`~debias.audit.engine.AuditResult`.
    """
    lines = []
    by = list(result.by)
    for m, s_model in result.summary.get("models", {}).items():
        d = result.disparities[result.disparities["model"] == m]
        for col in by:
            s = s_model.get(col, {})
            if not s.get("worst_group"):
                lines.append(f"{m}: by {col}, every group has fewer faces than the minimum: too few to judge.")
                continue
            rows = d[(d["grouping"] == col)]
            w = rows[rows["group"] == s["worst_group"]].iloc[0]
            ref = rows[rows["group"] == s["reference"]].iloc[0]
            if w["group"] == ref["group"]:
                lines.append(f"{m}: by {col}, the reference group {ref['group']} is also the worst detected "
                             f"({pct(ref['detection_rate'], '%')}).")
                continue
            sig = "significant" if bool(w.get("significant")) else "not significant"
            lines.append(
                f"{m}: by {col}, {w['group']} faces are detected least: {pct(w['detection_rate'], '%')} against "
                f"{pct(ref['detection_rate'], '%')} for {ref['group']}, a gap of {pct(w['gap'])} points "
                f"(95% CI {pct(w['gap_ci_low'])} to {pct(w['gap_ci_high'])}; Fisher exact, Holm-adjusted "
                f"p = {w['p_holm']:.2g}, {sig}).")
        s = s_model.get(" x ".join(by), {}) if len(by) > 1 else {}  # one attribute: said above
        if s.get("worst_group"):
            lines.append(f"{m}: the worst intersection is {s['worst_group']} at {pct(s['worst_detection_rate'], '%')}.")
    paired = result.paired
    if len(paired):
        for _, r in paired[paired["statistic"] == "max_min_gap"].iterrows():
            beyond = r["ci_high"] < 0 or r["ci_low"] > 0
            verb = "narrows" if r["difference"] < 0 else "widens" if r["difference"] > 0 else "leaves"
            lines.append(
                f"{r['model']} {verb} the {r['grouping']} gap " + (
                    f"at {pct(r['model_value'])} points, as " if verb == "leaves" else
                    f"from {pct(r['baseline_value'])} to {pct(r['model_value'])} points compared with ")
                + f"{r['baseline']} (difference "
                f"{100 * r['difference']:+.1f}, 95% CI {100 * r['ci_low']:+.1f} to {100 * r['ci_high']:+.1f}): "
                + ("beyond noise" if beyond else "within noise")
                + (_levelled_down(paired, r) if r["difference"] < 0 else "") + ".")
    return lines


def verdicts(paired: pd.DataFrame, lead: tuple[str, str] | None = None) -> list[str]:
    """One plain sentence per compared model and grouping: did it narrow the gap, with the interval.

    ``lead = (model, grouping)`` puts that sentence first.
    """
    out = []
    if paired is None or not len(paired):
        return out
    rows = paired[paired["statistic"] == "max_min_gap"]
    if lead is not None:
        first = (rows["model"] == lead[0]) & (rows["grouping"] == lead[1])
        rows = pd.concat([rows[first], rows[~first]])
    for _, r in rows.iterrows():
        d, lo, hi = (100 * r[k] for k in ("difference", "ci_low", "ci_high"))
        if hi < 0:
            verb = "narrowed"
        elif lo > 0:
            verb = "widened"
        else:
            verb = "did not measurably change"
        # one decimal, as the headline: whole points printed an interval that excludes 0 as "-5 to -0"
        out.append(f"{r['model']} {verb} the {r['grouping']} gap compared with {r['baseline']}: "
                   f"{100 * r['model_value']:.1f} vs {100 * r['baseline_value']:.1f} points (difference {d:+.1f}, "
                   f"95% CI {lo:+.1f} to {hi:+.1f})" + (_levelled_down(paired, r) if d < 0 else "") + ".")
    return out


def _levelled_down(paired: pd.DataFrame, r) -> str:
    """A clause for a narrower gap that came with fewer faces detected overall (McNemar p < 0.05): a gap closed by
    failing the best-served group too is no gain."""
    o = paired[(paired["statistic"] == "detection_rate") & (paired["model"] == r["model"])
               & (paired["baseline"] == r["baseline"])]
    if o.empty or not (o["difference"].iloc[0] < 0 and o["p_value"].iloc[0] < 0.05):
        return ""
    o = o.iloc[0]
    return (f", but it detects fewer faces overall: {pct(o['model_value'], '%')} against "
            f"{pct(o['baseline_value'], '%')} (McNemar p = {o['p_value']:.2g}); a gap narrowed by detecting fewer "
            f"faces is no gain")


__all__ = ["pct", "headline", "verdicts"]


def _faces(n: int) -> str:
    return f"{n} face" + ("" if n == 1 else "s")


def _worst_slice(m: str, s: pd.DataFrame, cfg) -> str:
    """The sentence on a model's worst slice among those with at least ``cfg.min_n`` held-out faces."""
    overall = s["detected"].sum() / s["n_held_out"].sum()
    fewer = f" ({cfg.k} asked; the other components were empty)" if len(s) < cfg.k else ""
    judged = s[s["n_held_out"] >= cfg.min_n]
    if judged.empty:
        return (f"{m}: every one of its {len(s)} slices{fewer} has fewer than {cfg.min_n} held-out faces: too few to "
                f"name a worst one.")
    if judged["fit_rate"].max() - judged["fit_rate"].min() < 1e-12:
        return (f"{m}: every slice with at least {cfg.min_n} held-out faces was found at the same detection rate: no "
                f"slice stands out.")
    w = judged.iloc[0]
    made_of = f"; where labelled, it holds {w['description']}" if w["description"] else ""
    return (f"{m}: slice {w['slice']} of {len(s)}{fewer} ({_faces(int(w['n']))}) is the worst found: "
            f"{pct(w['detection_rate'], '%')} of its {int(w['n_held_out'])} held-out faces detected (95% CI "
            f"{pct(w['ci_low'])} to {pct(w['ci_high'])}) against {pct(overall, '%')} of all held-out faces; its faces "
            f"are on average rarer than {w['rarity']:.0%} of the training faces{made_of}.")


def slice_sentences(discovery) -> list[str]:
    """Per model: its worst discovered slice (among slices with enough faces), and its detection rate among the
    rarest and the most typical faces.

    ``discovery`` is a :class:`~debias.audit.discover.Discovery`.
    """
    lines = []
    for m, s in discovery.slices.groupby("model", sort=False):
        lines.append(_worst_slice(m, s, discovery.config))
        r = discovery.rarity[discovery.rarity["model"] == m]
        auc = discovery.auc.get(m, float("nan"))
        if len(r) >= 2:
            lines.append(f"{m}: the rarest tenth of faces is detected at {pct(r['detection_rate'].iloc[-1], '%')}, "
                         f"the most typical tenth at {pct(r['detection_rate'].iloc[0], '%')}"
                         + (f" (AUC of rarity against a miss {auc:.2f}; 0.5 would mean rarity says nothing)."
                            if np.isfinite(auc) else "."))
    return lines


def discovery_summary(discovery) -> dict:
    """summary.json's record of a discovery: where its latent came from, the sentences and the AUC per model."""
    return {"latent": discovery.source, "slices": int(discovery.slices.groupby("model").size().max()),
            "rarity_miss_auc": discovery.auc, "findings": slice_sentences(discovery)}
