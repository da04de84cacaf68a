"""Figures for the audit report. Each function draws data it is given; nothing here computes a metric.

matplotlib is imported lazily (scikit-learn's Display pattern) so that importing debias stays light.
"""
from __future__ import annotations

import contextlib
from typing import Sequence

import numpy as np
import pandas as pd


MAX_LABEL = 28  # characters of a group or model name shown in a figure; tables and CSVs keep the full name
MAX_FIGSIZE = (16.0, 12.0)  # inches: no figure grows past this, however many or long the groups


def _plt():
    """pyplot and seaborn, imported on first use; no global style or backend is changed here."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    return plt, sns


@contextlib.contextmanager
def report_style():
    """The report's look, applied only to figures drawn inside the ``with`` block."""
    import matplotlib
    import seaborn as sns

    with matplotlib.rc_context(), sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.85):
        yield


def short(label, n: int = MAX_LABEL) -> str:
    """A label cut to ``n`` characters with an ellipsis, for figures only."""
    s = str(label)
    return s if len(s) <= n else s[:n - 1] + "\u2026"


def _figure(ax, w: float, h: float):
    """(figure, axes): the caller's axes, or a new figure of at most MAX_FIGSIZE."""
    if ax is not None:
        return ax.figure, ax
    plt, _ = _plt()
    return plt.subplots(figsize=(min(w, MAX_FIGSIZE[0]), min(h, MAX_FIGSIZE[1])))


def group_bars(metrics: pd.DataFrame, grouping: str, metric: str = "detection_rate", ax=None):
    """Bars per group (hue = model) with the interval in ci_low / ci_high as error bars."""
    _, sns = _plt()
    d = metrics[(metrics["grouping"] == grouping) & (metrics["metric"] == metric)].copy()
    _, ax = _figure(ax, max(4.5, 0.9 * d["group"].nunique() * max(1, d["model"].nunique()) ** 0.5), 3.2)
    groups = list(dict.fromkeys(d["group"]))
    models = list(dict.fromkeys(d["model"]))
    width = 0.8 / len(models)
    pal = sns.color_palette("colorblind", len(models))
    for i, m in enumerate(models):
        dm = d[d["model"] == m].set_index("group").reindex(groups)
        x = np.arange(len(groups)) + (i - (len(models) - 1) / 2) * width
        v = dm["value"].to_numpy(float)
        err = np.vstack([v - dm["ci_low"].to_numpy(float), dm["ci_high"].to_numpy(float) - v])
        ax.bar(x, v, width, label=short(m), color=pal[i], yerr=np.clip(np.nan_to_num(err), 0, None), capsize=3)
        for xi, flag in zip(x, dm["flag"].fillna("")):
            if flag:
                ax.text(xi, 0.02, "n<min", rotation=90, fontsize=7, ha="center", va="bottom")
    ax.set_xticks(np.arange(len(groups)), [short(g) for g in groups], rotation=20 if len(groups) > 4 else 0, ha="right" if len(groups) > 4 else "center")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(f"{metric.replace('_', ' ')} by {short(grouping, 40)} (95% Wilson CI)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)  # beside the bars, never on them
    return ax.figure


def heatmap(metrics: pd.DataFrame, model: str, row: str, col: str, metric: str = "detection_rate", ax=None):
    """Intersectional heatmap of one metric over two attributes."""
    _, sns = _plt()
    d = metrics[(metrics["model"] == model) & (metrics["grouping"] == f"{row} x {col}") & (metrics["metric"] == metric)]
    from debias.data.groups import sort_levels

    table = d.pivot_table(index=row, columns=col, values="value", aggfunc="first", dropna=False)
    table = table.reindex(index=sort_levels(table.index), columns=sort_levels(table.columns))
    ns = d.pivot_table(index=row, columns=col, values="n", aggfunc="first", dropna=False).reindex_like(table)
    annot = table.map(lambda v: "n/a" if pd.isna(v) else f"{100 * v:.0f}%").astype(str) + "\nn=" + ns.fillna(0).astype(int).astype(str)
    fig, ax = _figure(ax, 1.3 * table.shape[1] + 2, 0.8 * table.shape[0] + 1.2)
    shown = table.astype(float).rename(index=short, columns=short)
    sns.heatmap(shown, annot=annot.to_numpy(), fmt="", vmin=0, vmax=1, cmap="rocket", ax=ax, cbar_kws={"label": metric})
    ax.set_title(f"{short(model)}: {metric.replace('_', ' ')}, {short(row)} x {short(col)}")
    return fig


def score_distributions(pred: pd.DataFrame, model: str, col: str, threshold: float, ax=None):
    _, sns = _plt()
    d = pred[pred["model"] == model].copy()
    d["group"] = np.where(d["y_true"] == 1, d[col].astype(str).map(short), "non-faces")
    fig, ax = _figure(ax, 5.5, 3.0)
    sns.histplot(d, x="y_score", hue="group", stat="density", common_norm=False, element="step", fill=False,
                 bins=30, ax=ax)
    ax.axvline(threshold, color="k", ls="--", lw=1)
    ax.set_title(f"{short(model)}: score distribution by {short(col)} (dashed: threshold)")
    return fig


def _finish_curves(ax, xlabel: str, ylabel: str, title: str):
    """The chance / perfect-calibration diagonal, labels and legend shared by per-group curve plots."""
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7)
    return ax.figure


def roc_by_group(pred: pd.DataFrame, model: str, col: str, ax=None):
    """ROC of each group's faces against all non-faces."""
    from sklearn.metrics import roc_curve

    d = pred[(pred["model"] == model) & pred["y_score"].notna()]
    neg = d[d["y_true"] == 0]["y_score"].to_numpy()
    fig, ax = _figure(ax, 4.0, 3.6)
    if len(neg) == 0:
        ax.text(0.5, 0.5, "no non-faces: ROC undefined", ha="center")
        return fig
    for g, dg in d[d["y_true"] == 1].groupby(col):
        y = np.r_[np.ones(len(dg)), np.zeros(len(neg))]
        fpr, tpr, _ = roc_curve(y, np.r_[dg["y_score"].to_numpy(), neg])
        ax.plot(fpr, tpr, label=f"{short(g)} (n={len(dg)})")
    return _finish_curves(ax, "false positive rate (all non-faces)", "detection rate", f"{short(model)}: ROC by {short(col)}")


def calibration_by_group(pred: pd.DataFrame, model: str, col: str, ax=None):
    """Reliability curve per group (its faces plus all non-faces) on the ECE's own 10 equal-width bins.

    Not sklearn's ``calibration_curve``: its bin edges come from ``linspace`` and put a score of
    exactly 0.3 in a different bin than the ECE's ``floor(10 p)``; the plot must show the bins the
    ECE in the tables was computed on.
    """
    from debias.audit.metrics import calibration_sums

    d = pred[(pred["model"] == model) & pred["y_score"].notna()]
    fig, ax = _figure(ax, 4.0, 3.6)
    if not ((d["y_score"] >= 0) & (d["y_score"] <= 1)).all() or not (d["y_true"] == 0).any():
        ax.text(0.5, 0.5, "scores are not probabilities, or no non-faces", ha="center")
        return fig
    neg = d[d["y_true"] == 0]
    for g, dg in d[d["y_true"] == 1].groupby(col):
        both = pd.concat([dg, neg])
        n, sum_y, sum_p = calibration_sums(both["y_true"], both["y_score"])
        seen = n > 0
        ax.plot(sum_p[seen] / n[seen], sum_y[seen] / n[seen], marker="o", ms=3, label=short(g))
    return _finish_curves(ax, "mean predicted probability", "fraction of faces",
                          f"{short(model)}: calibration by {short(col)}")


def covariates(pred: pd.DataFrame, col: str, names: Sequence[str] = ("width", "brightness", "contrast", "sharpness")):
    """Image covariates per group (one model's rows: covariates do not depend on the model)."""
    from debias.data.groups import sort_levels

    plt, sns = _plt()
    first = pred["model"].iloc[0]
    d = pred[(pred["model"] == first) & (pred["y_true"] == 1)]
    fig, axes = plt.subplots(1, len(names), figsize=(min(3.0 * len(names), MAX_FIGSIZE[0]), 3.0))
    order = sort_levels(d[col].dropna().astype(str).unique())
    for ax, c in zip(np.atleast_1d(axes), names):
        if c in d and d[c].notna().any():
            sns.boxplot(d.assign(**{col: d[col].astype(str)}), x=col, y=c, ax=ax, fliersize=1.5, order=order)
            ax.set_xticks(range(len(order)), [short(g) for g in order])
            ax.tick_params(axis="x", rotation=20)
        ax.set_title(c)
        ax.set_xlabel("")
    fig.suptitle(f"image covariates of faces by {short(col)}", y=1.02)
    fig.tight_layout()
    return fig


def slice_bars(slices: pd.DataFrame, model: str, ax=None):
    """Detection rate of each discovered slice of ``model`` (worst first) on its held-out faces, with its Wilson
    interval and their number."""
    d = slices[slices["model"] == model]
    _, ax = _figure(ax, max(4.5, 0.55 * len(d) + 1.5), 3.2)
    x = np.arange(len(d))
    v = d["detection_rate"].to_numpy(float)
    err = np.vstack([v - d["ci_low"].to_numpy(float), d["ci_high"].to_numpy(float) - v])
    colors = _plt()[0].get_cmap("magma")(0.15 + 0.7 * d["rarity"].to_numpy(float))
    ax.bar(x, v, 0.7, color=colors, yerr=np.clip(err, 0, None), capsize=3)
    for xi, n, top, rate in zip(x, d["n_held_out"], np.nan_to_num(d["ci_high"].to_numpy(float)), np.nan_to_num(v)):
        ax.text(xi, 0.03 if rate > 0.5 else top + 0.02, f"n={n}", rotation=90, fontsize=7, ha="center", va="bottom",
                color="white" if rate > 0.5 else "black")  # inside a tall bar, above a short one
    ax.set_xticks(x, [str(s) for s in d["slice"]])
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("slice (worst first; darker bar: rarer faces on average)")
    ax.set_ylabel("detection rate, held-out faces")
    ax.set_title(f"{short(model)}: discovered slices (95% Wilson CI)")
    return ax.figure


def rarity_curve(rarity: pd.DataFrame, ax=None):
    """Detection rate by rarity decile (1: most typical faces, 10: rarest), one line per model, with intervals."""
    _, sns = _plt()
    _, ax = _figure(ax, 5.5, 3.2)
    models = list(dict.fromkeys(rarity["model"]))
    for color, m in zip(sns.color_palette("colorblind", len(models)), models):
        d = rarity[rarity["model"] == m]
        ax.plot(d["decile"], d["detection_rate"], marker="o", color=color, label=short(m))
        ax.fill_between(d["decile"], d["ci_low"], d["ci_high"], color=color, alpha=0.2, linewidth=0)
    ax.set_xticks(range(1, int(rarity["decile"].max()) + 1))
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("rarity decile among the audited faces (10: rarest in the training faces' latent)")
    ax.set_ylabel("detection rate")
    ax.set_title("detection by rarity (95% Wilson CI)")
    ax.legend(fontsize=7, frameon=False)
    return ax.figure


def fig_to_base64(fig) -> str:
    import base64
    import io

    plt, _ = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def image_to_base64(im: np.ndarray, size: int = 72) -> str:
    import base64
    import io

    from PIL import Image

    p = Image.fromarray(im)
    p.thumbnail((size, size))
    buf = io.BytesIO()
    p.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")
