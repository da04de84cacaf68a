"""The Python front door: :class:`Audit` (fairlearn's MetricFrame shape, scikit-learn's Display
constructors), :func:`fit` and :func:`generate`.

    import debias
    audit = debias.Audit.from_models("data/ppb", ["opencv:haar-frontal-default"], by=["skin_group", "gender"])
    audit.by_group("detection_rate")
    audit.difference("detection_rate", by="skin_group")
    audit.save("out/")

An ``Audit`` holds data only; nothing is written until :meth:`Audit.save`. This module sits on top
of ``debias.audit`` (numbers) and ``debias.report`` (figures and files), beside the CLI.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from debias.config import AuditConfig, TrainConfig
from debias.errors import DebiasError

BY_GROUP_COLUMNS = ["model", "grouping", "group", "value", "ci_low", "ci_high", "n", "flag"]
# metrics whose max-min gap has a bootstrap interval in the audit (they are one statistic: the hit rate)
RATE_METRICS = {"detection_rate", "accuracy", "miss_rate"}


MODEL_TWICE = ("`model`={model!r} was given, but the predictions' model column names {models}; one name would "
               "replace the others and merge their rows. Leave out `model`, or drop the model column.")


class Audit:
    """A subgroup audit of one or more models: tidy tables, gaps with intervals, paired comparisons.

    Build one with :meth:`from_models` or :meth:`from_predictions`. Every table is a pandas
    DataFrame; :attr:`plot` draws on the caller's axes; :meth:`save` writes CSV, JSON and the HTML
    report, only when asked.
    """

    def __init__(self, result, config: AuditConfig, *, data: str | Path | None = None,
                 model_files: dict | None = None) -> None:
        self.result, self.config = result, config
        self.data = Path(data) if data is not None else None
        self.model_files = model_files or {}

    # ---- constructors ------------------------------------------------------------------------

    @classmethod
    def from_models(cls, data: str | Path, models: Sequence[str], *, by: Sequence[str] | None = None,
                    split: str = "test", threshold: float | None = None, target_fpr: float = 0.01,
                    reference: str = "largest", n_boot: int = 1000, min_n: int = 30, random_state: int = 0,
                    scores: str = "auto", device: str = "auto", batch_size: int = 256, size: int = 64,
                    pad: float = 0.5, mean: Sequence[float] = (0.0, 0.0, 0.0), std: Sequence[float] = (1.0, 1.0, 1.0),
                    progress: Callable | None = None) -> "Audit":
        """Score every image of ``split`` of the dataset folder ``data`` with each model, then audit.

        Parameters
        ----------
        data : dataset folder with manifest.csv (``debias data synth`` or ``debias data import``).
        models : model specs: ``run:DIR``, ``torchscript:FILE``, ``onnx:FILE``, ``python:MODULE:FN``
            (runs that code), ``opencv:haar-frontal-default`` ...
        by : attribute columns to group faces by; every combination is audited too. None: those of
            skin_group, pose and gender that the manifest has. A column it lacks is refused before scoring.
        threshold : one decision threshold for every group; None picks it at ``target_fpr``.
        reference : ``largest``, ``best`` or a group name, for gaps to a reference.
        n_boot, random_state : stratified bootstrap resamples and seed.
        min_n : groups with fewer faces are flagged "too few to judge" and never ranked.
        scores : ``auto`` | ``prob`` | ``logit``, what torchscript/onnx/python models output.

        Returns
        -------
        Audit
        """
        from debias.audit.engine import audit_table, score_models
        from debias.models.run import resolve_device

        if isinstance(models, str):
            models = [models]
        if not models or not all(isinstance(m, str) for m in models):
            raise DebiasError(f"`models`={models!r} must be one or more model specs (strings), e.g. "
                              f"['run:runs/standard'].")
        by = [by] if isinstance(by, str) else by
        if by is None:
            from debias.audit.predict import DEFAULT_BY, manifest_columns, resolve_by

            columns = manifest_columns(data)  # none readable: scoring reports the manifest's own error
            by = resolve_by(columns, None, where=f"{Path(data) / 'manifest.csv'}")[0] if columns else DEFAULT_BY
        cfg = AuditConfig(by=tuple(by), split=split, threshold=threshold, target_fpr=target_fpr, reference=reference,
                          n_boot=n_boot, min_n=min_n, seed=random_state, batch_size=batch_size, device=device,
                          size=size, pad=pad, scores=scores)
        try:
            pred, skipped, files = score_models(data, models, cfg, torch_device=str(resolve_device(device)),
                                                mean=mean, std=std, progress=progress)
        except KeyError as e:  # a `by` column the manifest lacks; str() of a KeyError is its quoted repr
            raise DebiasError(e.args[0]) from None
        result = audit_table(pred, cfg)
        result.skipped = skipped
        return cls(result, cfg, data=data, model_files=files)

    @classmethod
    def from_predictions(cls, predictions: pd.DataFrame | str | Path, *, y_true: str = "label",
                         y_score: str = "score", groups: Sequence[str] = ("skin_group",), model: str | None = None,
                         scores: str = "auto", threshold: float | None = None, target_fpr: float = 0.01,
                         reference: str = "largest", n_boot: int = 1000, min_n: int = 30,
                         random_state: int = 0) -> "Audit":
        """Audit predictions made elsewhere: a DataFrame (or CSV path) with one row per image.

        Parameters
        ----------
        predictions : rows of one or more models; a ``model`` column separates models, else
            ``model`` names the one model. Models are compared image by image: by the ``image``
            column when there is one (every model must list the same images, each once), else by
            row order (every model must have as many rows).
        y_true, y_score : the label (1 face, 0 non-face) and score columns.
        groups : attribute columns (faces only; non-face rows may leave them empty).
        scores : ``auto`` | ``prob`` | ``logit``; auto decides once over the whole table.

        Returns
        -------
        Audit
        """
        from debias.audit.adapters import to_probability
        from debias.audit.engine import audit_table
        from debias.audit.predict import check_one_row_per_image, pair_rows
        from debias.data.manifest import check_spellings, refuse_generated

        groups = [groups] if isinstance(groups, str) else groups
        if not isinstance(groups, (list, tuple)) or not all(isinstance(g, str) for g in groups):
            raise DebiasError(f"`groups`={groups!r} must be a list of column names, e.g. ['skin_group'].")
        cfg = AuditConfig(by=tuple(groups), split="all", threshold=threshold, target_fpr=target_fpr,
                          reference=reference, n_boot=n_boot, min_n=min_n, seed=random_state, scores=scores)
        if isinstance(predictions, (str, Path)):
            from debias.data.manifest import read_csv_checked

            df = read_csv_checked(Path(predictions), "predictions file {path} has no rows{detail}; it needs a header "
                                  "and one row per image.", "predictions file {path} is not UTF-8 text (line {line}: "
                                  "{reason}); save it as UTF-8.", DebiasError)
        elif isinstance(predictions, pd.DataFrame):
            df = predictions
        else:
            raise DebiasError(f"`predictions` must be a DataFrame or the path of a CSV file, not a "
                              f"{type(predictions).__name__}.")
        groups = list(groups)
        missing = [c for c in (y_true, y_score, *groups) if c not in df.columns]
        if missing:
            raise DebiasError(f"the predictions have no column(s) {', '.join(map(repr, missing))} (columns: "
                              f"{', '.join(map(str, df.columns))}); name them with y_true=, y_score= and groups=.")
        check_spellings(df[groups], "the predictions")
        refuse_generated(df, "the predictions")
        raw = pd.to_numeric(df[y_score], errors="coerce").to_numpy(float)
        if not np.isfinite(raw).all():
            raise DebiasError(f"column {y_score!r} has {int((~np.isfinite(raw)).sum())} missing or non-finite "
                              f"score(s) (first at row {int(np.flatnonzero(~np.isfinite(raw))[0])}).")
        label = pd.to_numeric(df[y_true], errors="coerce")
        if not label.isin([0, 1]).all():
            raise DebiasError(f"column {y_true!r} must hold 0 (non-face) or 1 (face) only.")
        if not (label == 1).any():
            none = " and no rows at all" if df.empty else ""
            raise DebiasError(f"the predictions hold no face (no row with {y_true} 1{none}); an audit measures how "
                              f"often faces are found, so it needs face rows.")
        if model is not None and "model" in df.columns and set(df["model"].astype(str)) != {str(model)}:
            raise DebiasError(MODEL_TWICE.format(model=model, models=", ".join(map(str, dict.fromkeys(df["model"])))))
        prob, _ = to_probability(raw, scores, what=f"column {y_score!r}")
        names = df["model"].astype(str).to_numpy() if "model" in df.columns and model is None else (model or "model")
        pred = pd.DataFrame({"row": np.arange(len(df)), "image": df["image"] if "image" in df else np.arange(len(df)),
                             "model": names, "y_true": label.astype(int).to_numpy(), "y_score": prob})
        for g in groups:
            pred[g] = df[g].to_numpy()
        if "image" in df:
            check_one_row_per_image(pred, "the predictions")
        if "model" in df.columns and model is None:  # equal rows = the same image, across models
            pred["row"] = pair_rows(pred if "image" in df else pred.drop(columns="image"), "the predictions")
        return cls(audit_table(pred, cfg), cfg)

    # ---- tables ------------------------------------------------------------------------------

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(self.result.predictions["model"]))

    @property
    def metrics(self) -> pd.DataFrame:
        """The tidy long table of every metric, group and model (``metrics.csv``)."""
        return self.result.metrics

    @property
    def predictions(self) -> pd.DataFrame:
        return self.result.predictions

    def by_group(self, metric: str = "detection_rate", by: str | Sequence[str] | None = None) -> pd.DataFrame:
        """One row per model and group: value, 95% interval, number of faces and flag.

        ``by`` picks a grouping (``"skin_group"``, or ``["skin_group", "pose"]`` for an
        intersection); None returns every grouping.
        """
        m = self.metrics
        if metric not in set(m["metric"]):
            raise DebiasError(f"metric {metric!r} is not one of {', '.join(sorted(set(m['metric'])))}.")
        d = m[m["metric"] == metric]
        if by is not None:
            d = d[d["grouping"] == self._grouping(by)]
        return d[BY_GROUP_COLUMNS].reset_index(drop=True)

    def difference(self, metric: str = "detection_rate", by: str | Sequence[str] = "skin_group", *,
                   method: str = "between_groups") -> pd.DataFrame:
        """The gap of a metric across groups, with its 95% interval, for each model.

        ``method="between_groups"``: best minus worst of the groups with at least ``min_n`` faces
        (bootstrap interval for the detection, miss and accuracy rates). ``method="to_reference"``:
        each group's gap below the reference group (``reference=`` of the constructor), with its
        interval and Holm-adjusted Fisher p-value.
        """
        grouping = self._grouping(by)
        if method == "to_reference":
            if metric not in RATE_METRICS:
                raise DebiasError("difference(..., method='to_reference') is measured for detection_rate "
                                  "(and its complements miss_rate, accuracy).")
            d = self.result.disparities
            return d[d["grouping"] == grouping].reset_index(drop=True)
        if method != "between_groups":
            raise DebiasError(f"method={method!r} is not one of between_groups, to_reference.")
        judged = self._judged(metric, grouping)
        rows = []
        for model in self.models:
            s = self.result.summary["models"][model].get(grouping, {})
            g = judged[judged["model"] == model]
            row = {"model": model, "grouping": grouping, "metric": metric}
            if len(g) < 2:
                rows.append({**row, "difference": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                             "note": "fewer than two groups with min_n faces: too few to judge"})
                continue
            hi, lo = g.loc[g["value"].idxmax()], g.loc[g["value"].idxmin()]
            ci = s.get("max_min_gap_ci", [np.nan, np.nan]) if metric in RATE_METRICS else [np.nan, np.nan]
            rows.append({**row, "difference": float(hi["value"] - lo["value"]), "ci_low": ci[0], "ci_high": ci[1],
                         "highest": hi["group"], "lowest": lo["group"],
                         "note": "" if metric in RATE_METRICS else "no interval for this metric's gap"})
        return pd.DataFrame(rows)

    def ratio(self, metric: str = "detection_rate", by: str | Sequence[str] = "skin_group") -> pd.DataFrame:
        """Lowest over highest group value of a metric (1 = parity), for each model; no interval."""
        grouping = self._grouping(by)
        judged = self._judged(metric, grouping)
        rows = []
        for model in self.models:
            g = judged[judged["model"] == model]
            r = float(g["value"].min() / g["value"].max()) if len(g) >= 2 and g["value"].max() > 0 else np.nan
            rows.append({"model": model, "grouping": grouping, "metric": metric, "ratio": r,
                         "lowest": g.loc[g["value"].idxmin(), "group"] if len(g) else None,
                         "highest": g.loc[g["value"].idxmax(), "group"] if len(g) else None})
        return pd.DataFrame(rows)

    def compare(self, baseline: str, model: str) -> pd.DataFrame:
        """Paired tests of ``model`` against ``baseline`` on the same faces, as ``debias report compare``:
        McNemar on every face, and a paired bootstrap of each grouping's best-minus-worst gap."""
        from debias.audit.paired import paired_comparison

        for m in (baseline, model):
            if m not in self.models:
                raise DebiasError(f"model {m!r} is not in this audit (models: {', '.join(self.models)}).")
        p = self.result.predictions
        pred = pd.concat([p[p["model"] == baseline], p[p["model"] == model]], ignore_index=True)
        c = self.config
        return paired_comparison(pred, list(c.by), self.result.summary["thresholds"], n_boot=c.n_boot,
                                 min_n=c.min_n, random_state=c.seed)

    # ---- figures and files -------------------------------------------------------------------

    @property
    def plot(self) -> "AuditPlot":
        """Figures drawn from this audit's tables: ``audit.plot.bars(by="skin_group", ax=ax)``."""
        return AuditPlot(self)

    def save(self, out: str | Path, *, title: str = "Face detection fairness audit", thumbnails: bool = True) -> Path:
        """Write predictions.csv, metrics.csv, disparities.csv, paired.csv, summary.json and report.html."""
        from debias.report.outputs import thumbnail_reader, write_outputs

        images = thumbnail_reader(self.data) if thumbnails and self.data is not None else None
        return write_outputs(self.result, out, replace(self.config, thumbnails=thumbnails), data=self.data,
                             model_files=self.model_files, images=images, title=title)

    def _judged(self, metric: str, grouping: str) -> pd.DataFrame:
        """Rows of :meth:`by_group` with at least ``min_n`` faces and a value."""
        g = self.by_group(metric, grouping)
        return g[(g["flag"] == "") & g["value"].notna()]

    def _grouping(self, by: str | Sequence[str]) -> str:
        name = by if isinstance(by, str) else " x ".join(by)
        known = set(self.metrics["grouping"])
        if name not in known:
            raise DebiasError(f"grouping {name!r} is not in this audit (groupings: "
                              f"{', '.join(sorted(g for g in known if g != 'overall'))}).")
        return name

    def discover(self, k: int = 8, *, latent_run: str | Path | None = None, random_state: int = 0,
                 device: str = "auto", progress: Callable | None = None) -> pd.DataFrame:
        """Cut the audited faces into ``k`` slices without group labels, and give each face a rarity.

        Faces are placed in a generative latent of the training faces: the DB-VAE of ``latent_run``, or by
        default one fitted on the training faces of the audited dataset on first use (cached in
        ``DATA/.debias/``). Slices are regions of the latent found by an error-aware mixture on a random half of
        each model's faces, numbered worst first on that half and measured on the other; rarity is the share of training faces
        in denser latent neighbourhoods (1: rarer than every training face). :meth:`save` then writes
        slices.csv, rarity.csv and the report's "Discovered slices".

        Returns
        -------
        slices : one row per (model, slice), worst first: n (faces), fit_rate (on the fitting half), then on its
            held-out faces n_held_out, detected, detection_rate, ci_low, ci_high; mean rarity, a description of the
            labelled levels it over-represents, and the share of each level.
            ``audit.result.discovery`` holds the rarity deciles, per-face results and AUCs too.
        """
        from debias.audit.discover import DiscoverConfig
        from debias.discovery import discover_in_audit

        cfg = DiscoverConfig(k=k, seed=random_state, min_n=self.config.min_n)
        self.result.discovery = discover_in_audit(self.predictions, self.result.summary["thresholds"], self.data,
                                                  cfg, latent_run=latent_run, device=device, progress=progress)
        return self.result.discovery.slices

    def __repr__(self) -> str:
        return f"Audit(models={self.models}, by={list(self.config.by)}, split={self.config.split!r})"


@dataclass(frozen=True)
class AuditPlot:
    """Plots of an :class:`Audit`. Each takes ``ax=None`` and never changes global matplotlib state."""

    audit: Audit

    def bars(self, by: str = "skin_group", metric: str = "detection_rate", ax=None):
        from debias.report import plots

        return plots.group_bars(self.audit.metrics, self.audit._grouping(by), metric, ax=ax)

    def heatmap(self, row: str, col: str, model: str | None = None, metric: str = "detection_rate", ax=None):
        from debias.report import plots

        return plots.heatmap(self.audit.metrics, model or self.audit.models[0], row, col, metric, ax=ax)

    def roc(self, by: str = "skin_group", model: str | None = None, ax=None):
        from debias.report import plots

        return plots.roc_by_group(self.audit.predictions, model or self.audit.models[0], by, ax=ax)

    def calibration(self, by: str = "skin_group", model: str | None = None, ax=None):
        from debias.report import plots

        return plots.calibration_by_group(self.audit.predictions, model or self.audit.models[0], by, ax=ax)

    def slices(self, model: str | None = None, ax=None):
        """Detection rate of each slice :meth:`Audit.discover` found, worst first."""
        from debias.report import plots

        return plots.slice_bars(self._discovery().slices, model or self.audit.models[0], ax=ax)

    def rarity(self, ax=None):
        """Detection rate by rarity decile, one line per model (after :meth:`Audit.discover`)."""
        from debias.report import plots

        return plots.rarity_curve(self._discovery().rarity, ax=ax)

    def _discovery(self):
        if self.audit.result.discovery is None:
            raise DebiasError("no slices yet: call audit.discover(k) first.")
        return self.audit.result.discovery


@dataclass(frozen=True)
class Run:
    """A finished training run: its folder, config and per-epoch history."""

    path: Path
    config: TrainConfig
    history: pd.DataFrame

    @property
    def spec(self) -> str:
        """The model spec to audit this run: ``run:PATH``."""
        return f"run:{self.path}"


def fit(data: str | Path, *, out: str | Path, method: str = "dbvae", resume: bool = False, overwrite: bool = False,
        log: Callable[[str], None] | None = None, **options) -> Run:
    """Train a face classifier (``standard``) or a debiased one (``dbvae``, ``balanced``, ``group-dro``, ...).

    ``method="dbvae"`` with no other option trains what ``debias train DATA --out RUN`` trains: the two-stage
    recipe (a DB-VAE's latent weights, then a classifier with sharpness-aware minimisation drawing its faces by
    them, both in ``out``); ``recipe="paper"`` trains the published DB-VAE.

    Parameters
    ----------
    data : dataset folder with manifest.csv and a packed images.npy.
    out : run folder to write (refused if it holds a run, unless ``resume`` or ``overwrite``).
    method : dbvae | standard | vae-uniform | balanced | group-dro | jtt | loss-resample.
    **options : any :class:`debias.TrainConfig` field, e.g. ``epochs=6``, ``seed=1``, ``recipe="paper"``.

    Returns
    -------
    Run, whose ``spec`` audits it: ``debias.Audit.from_models(data, [run.spec])``.
    """
    from debias.train import fit as _fit

    unknown = sorted(set(options) - set(TrainConfig.__dataclass_fields__))
    if unknown:
        raise DebiasError(f"unknown training option(s) {', '.join(unknown)}; see debias.TrainConfig for the options.")
    try:
        cfg = TrainConfig(method=method, **options)
    except (ValueError, TypeError) as e:  # an option's value: one DebiasError, as the documentation says
        raise DebiasError(str(e)) from None
    hist = _fit(data, cfg, out, resume=resume, overwrite=overwrite, log=log)
    return Run(Path(out), cfg, hist)


def generate(data: str | Path, *, out: str | Path, generator: str = "dcgan", latent_run: str | Path | None = None,
             overwrite: bool = False, log: Callable[[str], None] | None = None, **options):
    """New training faces from a generative model, as ``debias generate DATA --out GEN`` writes them.

    Parameters
    ----------
    data : dataset folder; its training faces teach the generator, its val and test faces measure quality.
    out : the new dataset folder (manifest.csv, images.npy, config.json, quality.json, gallery.png).
    generator : ``dcgan`` (trained on the training faces) or ``decoder`` (the DB-VAE's own; needs ``latent_run``).
    latent_run : a DB-VAE run folder (a default run's ``latent/`` is found): faces are drawn toward its rare latent
        regions and quality is measured on its latent means.
    **options : any :class:`debias.GenerateConfig` field, e.g. ``n=2000``, ``epochs=25``, ``seed=1``.

    Returns
    -------
    debias.generative.GenerateResult: ``out``, ``manifest``, ``quality`` (dict) and ``gallery`` (path). Train with
    the faces: ``debias.fit(data, out=RUN, method="standard", extra=str(out), extra_share=0.25)``.
    """
    from debias.config import GenerateConfig
    from debias.generative import generate as _generate

    unknown = sorted(set(options) - set(GenerateConfig.__dataclass_fields__))
    if unknown:
        raise DebiasError(f"unknown generation option(s) {', '.join(unknown)}; see debias.GenerateConfig.")
    try:
        cfg = GenerateConfig(generator=generator, latent_run=str(latent_run or ""), **options)
    except (ValueError, TypeError) as e:
        raise DebiasError(str(e)) from None
    return _generate(data, cfg, out, overwrite=overwrite, log=log)


__all__ = ["Audit", "AuditPlot", "Run", "fit", "generate"]
