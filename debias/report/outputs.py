"""Write an audit to disk: predictions, tidy tables, summary.json (with provenance) and report.html.

:func:`run_audit` is the whole audit job behind ``debias audit``: score the models (or read a
predictions CSV), compute the statistics (:mod:`debias.audit`), then write everything here.
"""
from __future__ import annotations

import contextlib
import datetime
import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import pandas as pd

from debias.audit.engine import AuditResult, audit_table, concat_shards, score_models
from debias.audit.metrics import TOO_FEW
from debias.config import AuditConfig
from debias.errors import DebiasError
from debias.files import (atomic_write, check_out_dir, exclusive, output_set, removed_on_failure, sha256_file,
                          write_json)
from debias.report.text import discovery_summary, headline


def versions() -> dict:
    """Versions of debias and the libraries that shape its numbers, for summary.json."""
    import cv2
    import scipy
    import sklearn
    import torch

    import debias

    return {"debias": getattr(debias, "__version__", "0"), "torch": torch.__version__, "numpy": np.__version__,
            "pandas": pd.__version__, "scikit-learn": sklearn.__version__, "scipy": scipy.__version__,
            "opencv": cv2.__version__}


# every file an audit (crop, box or shard) can write into its folder: the only names it ever removes there
AUDIT_OUTPUTS = ("predictions.csv", "metrics.csv", "disparities.csv", "paired.csv", "model_card.json", "report.html",
                 "summary.json", "skipped.csv", "shard.json", "by_group.csv", "gaps.csv", "detections.csv", "faces.csv",
                 "slices.csv", "rarity.csv")


def prepare_audit_dir(out: str | Path) -> Path:
    """``out`` checked (a folder, or one that can be made, and writable) before any image is scored."""
    return check_out_dir(out, what="audit", marker="summary.json", overwrite=True)


@contextlib.contextmanager
def audit_set(out: str | Path, seal: str = "summary.json", *, locked: bool = False) -> Iterator[Callable]:
    """Write an audit's files into ``out`` as one set (:func:`~debias.files.output_set`), under the folder's lock
    unless the caller holds it (``locked``). Yields ``put(name, write)``, which writes one file of the set
    (``write(path)``), and ``seal(obj)``, which writes the seal (JSON) with the list and sha256 of every file put."""
    out = prepare_audit_dir(out)
    with (contextlib.nullcontext() if locked else exclusive(out, "audit")), \
            output_set(out, seal=seal, known=AUDIT_OUTPUTS) as staging:
        written = {}

        def put(name: str, write: Callable[[Path], object]) -> None:
            atomic_write(staging / name, write)
            written[name] = sha256_file(staging / name)

        def seal_with(obj: dict) -> None:
            write_json(staging / seal, {**obj, "outputs": [*written, seal], "outputs_sha256": written})

        yield put, seal_with


def write_outputs(result: AuditResult, out: str | Path, cfg: AuditConfig, *, data: str | Path | None = None,
                  model_files: dict | None = None, title: str = "Face detection fairness audit",
                  images: Callable | None = None, extra_sections: Sequence[dict] = (),
                  lead: tuple[str, str] | None = None, locked: bool = False) -> Path:
    """Write predictions.csv, metrics.csv, disparities.csv, paired.csv, model_card.json, summary.json, report.html
    into ``out``, as one set: summary.json, written last, lists every file with its sha256."""
    from debias.report.html import render_report

    out = Path(out)
    manifest = Path(data) / "manifest.csv" if data else None
    with audit_set(out, locked=locked) as (put, seal):
        put("predictions.csv", lambda t: _with_decision(result).to_csv(t, index=False, float_format="%.6g"))
        put("metrics.csv", lambda t: result.metrics.to_csv(t, index=False, float_format="%.6g"))
        put("disparities.csv", lambda t: result.disparities.to_csv(t, index=False, float_format="%.6g"))
        if len(result.paired):
            put("paired.csv", lambda t: result.paired.to_csv(t, index=False, float_format="%.6g"))
        if result.discovery is not None:
            put("slices.csv", lambda t: result.discovery.slices.to_csv(t, index=False, float_format="%.6g"))
            put("rarity.csv", lambda t: result.discovery.rarity.to_csv(t, index=False, float_format="%.6g"))
        summary = {
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "versions": versions(), "config": asdict(cfg), "seed": cfg.seed,
            "data": str(data) if data else None,
            "manifest_sha256": sha256_file(manifest) if manifest and manifest.exists() else None,
            "model_files_sha256": model_files or {},
            "skipped_images": {"count": len(result.skipped), "images": result.skipped.to_dict("records")},
            "estimated_groupings": list(result.estimated),
            "headline": headline(result),
            **result.summary,
            **({"discovery": discovery_summary(result.discovery)} if result.discovery is not None else {}),
        }
        put("model_card.json", lambda t: t.write_text(json.dumps(model_cards(result, data), indent=1) + "\n"))
        extra_sections = [*extra_sections, *_generated_sections(model_files or {})]
        html = render_report(result, cfg, title=title, images=images, extra_sections=extra_sections, summary=summary,
                             lead=lead)
        put("report.html", lambda t: t.write_text(html, encoding="utf-8"))
        seal(summary)
    return out


def model_cards(result: AuditResult, data: str | Path | None = None) -> dict:
    """The audit as Model Card Toolkit quantitative analyses, one card per model.

    Each ``performance_metrics`` entry has the toolkit's fields: ``type`` (the metric), ``value``,
    ``slice`` (``overall``, or ``attribute=level`` joined by ``, `` for intersections) and
    ``confidence_interval`` (``lower_bound``, ``upper_bound``: the Wilson or bootstrap 95% interval
    of metrics.csv). As in the toolkit's schema, numbers are strings. Groups with fewer faces than
    the audit's minimum are left out (too few to judge), and so are undefined values.
    """
    def fmt(x) -> str:
        return f"{float(x):.6g}"

    cards = []
    m = result.metrics
    keep = m[(m["flag"] != TOO_FEW) & m["value"].notna() & (m["metric"] != "accuracy")]
    for model, rows in keep.groupby("model", sort=False):
        metrics = []
        for _, r in rows.iterrows():
            if r["grouping"] == "overall":
                slc = "overall" if r["group"] == "all faces" else f"overall ({r['group']})"
            else:
                slc = ", ".join(f"{c}={v}" for c, v in zip(r["grouping"].split(" x "), r["group"].split(" / ")))
            entry = {"type": r["metric"], "value": fmt(r["value"]), "slice": slc}
            if pd.notna(r["ci_low"]) and pd.notna(r["ci_high"]):
                entry["confidence_interval"] = {"lower_bound": fmt(r["ci_low"]), "upper_bound": fmt(r["ci_high"])}
            metrics.append(entry)
        cards.append({"model_details": {"name": str(model)},
                      "considerations": {"use_cases": [{"description": f"face detection audited on {data}"}]
                                         if data else []},
                      "quantitative_analysis": {"performance_metrics": metrics}})
    return {"schema": "Model Card Toolkit quantitative analysis (model_card.proto fields)", "model_cards": cards}


def _generated_sections(model_files: dict) -> list[dict]:
    """A report section per audited run (``run:`` spec) that trained with generated faces: what they were, their
    quality and their gallery."""
    from debias.generative.gallery import generated_section, trained_with

    sections = []
    for spec in model_files:
        kind, _, rest = str(spec).partition(":")
        found = trained_with(rest) if kind == "run" else None
        if found is not None:
            sections.append(generated_section(Path(rest).name, *found))
    return sections


def _with_decision(result: AuditResult) -> pd.DataFrame:
    """Predictions with ``y_pred``, the decision at each model's audit threshold."""
    p = result.predictions.drop(columns="y_pred", errors="ignore")  # audits read back (compare) carry one
    t = p["model"].map(result.summary.get("thresholds", {})).astype(float)
    y_pred = (p["y_score"] >= t).astype("Int64").where(p["y_score"].notna())
    p.insert(p.columns.get_loc("y_score") + 1, "y_pred", y_pred)
    if result.discovery is not None:  # every audited face's slice and rarity; other rows left empty
        p = p.merge(result.discovery.faces, on=["row", "model"], how="left", validate="many_to_one")
        p["slice"] = p["slice"].astype("Int64")
        p["held_out"] = p["held_out"].astype("boolean")
    return p


def run_audit(data: str | Path, models: Sequence[str], cfg: AuditConfig, out: str | Path, *,
              predictions_csv: str | Path | None = None, progress: Callable | None = None,
              torch_device: str = "cpu", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
              title: str = "Face detection fairness audit", extra_sections: Sequence[dict] = (),
              lead: tuple[str, str] | None = None, gather: bool = False,
              allow_missing: bool = False, discover: Callable[[AuditResult], object] | None = None
              ) -> AuditResult | None:
    """Audit ``models`` (adapter specs) or a predictions CSV on dataset ``data``; write ``out``.

    ``title`` and ``extra_sections`` go to the HTML report (the demo adds its latent analysis there);
    ``lead = (model, grouping)`` opens the report with that model's verdict on that grouping's gap.

    ``allow_missing``: a predictions CSV may leave out images of the split; they are not audited and are listed
    with the skipped images (by default a missing row is an error: see ``predictions_from_csv``).

    ``discover``: a function of the audit's result that returns its :class:`~debias.audit.discover.Discovery`
    (``debias.discovery.discover_in_audit`` bound to its options); its slices go into the outputs.

    ``gather``: under ``torchrun`` (the process group initialised, ``cfg.shard`` = (rank, world)),
    every rank scores its shard and rank 0 gathers the predictions, runs the statistics and writes;
    the other ranks return None.
    """
    _refuse_overwriting(predictions_csv, out)
    with removed_on_failure(out):
        out = prepare_audit_dir(out)  # a file, or a folder that cannot be written, fails before anything is scored
        # the folder stays locked from scoring to the last write; under torchrun rank 0 locks it only to write
        with contextlib.nullcontext() if gather else exclusive(out, "audit"):
            return _run_audit(data, models, cfg, out, predictions_csv, progress, torch_device, mean, std, title,
                              extra_sections, lead, gather, allow_missing, discover)


def _refuse_overwriting(predictions_csv: str | Path | None, out: str | Path) -> None:
    """A DebiasError when the predictions file is one of the files the audit writes into ``out``."""
    if predictions_csv is None:
        return
    p = Path(predictions_csv).resolve()
    if p.parent == Path(out).resolve() and p.name in AUDIT_OUTPUTS:
        raise DebiasError(f"the predictions file {predictions_csv} is one the audit would write into `out` {out} "
                          f"({p.name}); choose another `out`, or move the file.")


def _run_audit(data, models, cfg, out, predictions_csv, progress, torch_device, mean, std, title, extra_sections,
               lead, gather, allow_missing, discover=None) -> AuditResult | None:
    from debias.audit.predict import predictions_from_csv

    files = {}
    if predictions_csv is not None:
        pred, skipped = predictions_from_csv(predictions_csv, data, split=cfg.split, scores=cfg.scores,
                                             allow_missing=allow_missing)
        files[str(predictions_csv)] = sha256_file(predictions_csv)
    else:
        if not models:
            raise ValueError("give at least one `model` spec, or a `predictions` CSV file.")
        pred, skipped, files = score_models(data, models, cfg, torch_device=torch_device, mean=mean, std=std,
                                            progress=progress)
    if gather:
        pred, skipped = _gather_shards(pred, skipped)
        if pred is None:
            return None
        cfg = replace(cfg, shard=(0, 1))
    elif cfg.shard != (0, 1):  # a shard only predicts; statistics run on the merged table
        manifest = Path(data) / "manifest.csv" if data else None
        with audit_set(out, "shard.json", locked=True) as (put, seal):
            put("predictions.csv", lambda t: pred.to_csv(t, index=False, float_format="%.6g"))
            put("skipped.csv", lambda t: skipped.to_csv(t, index=False))
            seal({"shard": list(cfg.shard), "data": str(Path(data).resolve()) if data else None,
                  "manifest_sha256": sha256_file(manifest) if manifest and manifest.exists() else None,
                  "models": list(models) or [str(predictions_csv)], "model_files_sha256": files})
        return AuditResult(pred, pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), {}, skipped)
    result = audit_table(pred, cfg)
    result.skipped = skipped
    if discover is not None:
        result.discovery = discover(result)
    images = thumbnail_reader(data) if cfg.thumbnails and data is not None else None
    write_outputs(result, out, cfg, data=data, model_files=files, images=images, title=title,
                  extra_sections=extra_sections, lead=lead, locked=not gather)
    return result


def _gather_shards(pred: pd.DataFrame, skipped: pd.DataFrame):
    """Every rank's (predictions, skipped) to rank 0, in the order of an unsharded audit; (None, None) elsewhere."""
    import torch.distributed as dist

    parts = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object((pred, skipped), parts, dst=0)
    if dist.get_rank() != 0:
        return None, None
    return concat_shards([p for p, _ in parts]), pd.concat([s for _, s in parts], ignore_index=True)


def image_reader(root: str | Path) -> Callable[[object], np.ndarray | None]:
    """Reader from a manifest ``image`` value (packed index or relative path) to its full image, or None."""
    from debias.data.manifest import image_loader

    load = image_loader(root)

    def read(image):
        try:
            return load(image)
        except Exception:  # noqa: BLE001 - a thumbnail that cannot be read is simply not shown
            return None

    return read


def thumbnail_reader(root: str | Path) -> Callable[[int], np.ndarray | None] | None:
    """Reader from manifest row to image, for the report's gallery; None when ``root`` is no dataset."""
    from debias.data.manifest import read_manifest

    root = Path(root)
    if not (root / "manifest.csv").exists():
        return None
    images = read_manifest(root, check_files=False)["image"]
    read = image_reader(root)
    return lambda row: read(images.iloc[int(row)])


__all__ = ["run_audit", "write_outputs", "image_reader", "thumbnail_reader", "model_cards"]
