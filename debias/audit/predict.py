"""Run adapters over a dataset split: one prediction row per image and model, plus image covariates.

Images are decoded once and given to every model. Unreadable or corrupt files are skipped, counted
and listed; they never end the audit.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np
import pandas as pd

from debias.audit.adapters import Adapter, to_probability
from debias.data.manifest import (GENERATED, check_spellings, is_packed, load_image, open_packed, read_manifest,
                                  read_rows, refuse_generated, select_split)
from debias.errors import DebiasError
from debias.files import atomic_write, sha256_file

COVARIATES = ("width", "height", "brightness", "contrast", "sharpness")


class PredictionsError(DebiasError):
    """A predictions CSV cannot be audited as it is; the message names the lines and the fix."""


DEFAULT_BY = ("skin_group", "pose", "gender")
NON_FINITE = ("model {spec} returned {k} non-finite score(s) (NaN or infinite) of the {n} images it scored (first "
              "{value} for image {image!r}); an image without a score cannot be audited as found or missed. Fix the "
              "model so that every image gets a finite score (0, or a low logit, where it finds no face).")


NOT_ATTRIBUTES = ("image", "label", "split", "path", "generated")  # what a face is, not whom it shows


def resolve_by(columns: Sequence[str], by: Sequence[str] | None = None, *, where: str = "the manifest",
               computed: Sequence[str] = COVARIATES) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The attribute columns to audit by, checked against ``columns`` before any image is scored.

    ``by`` given: every column must be present (or be one the audit computes, ``computed``: the image
    covariates of a crop-level audit), else a KeyError names the missing ones and the columns there
    are. ``by`` None: the default ``DEFAULT_BY`` columns that are present; a KeyError if none is.
    Returns (by, left_out): the defaults left out, for a note.
    """
    columns = [c for c in columns if c not in NOT_ATTRIBUTES]
    have = set(columns) | set(computed)
    if by is None:
        kept = tuple(c for c in DEFAULT_BY if c in have)
        if not kept:
            there = f"columns there: {', '.join(columns)}" if columns else "it has no column besides image, label and split"
            raise KeyError(f"{where} has none of the default attribute columns {', '.join(DEFAULT_BY)}; name the "
                           f"ones to audit by with `by` ({there}). The audit reports by at least one column; slice "
                           f"discovery (`discover`) reads none, but an unlabelled set needs one column to group by, such "
                           f"as the site or camera of each image.")
        return kept, tuple(c for c in DEFAULT_BY if c not in have)
    missing = [c for c in by if c not in have]
    if missing:
        raise KeyError(f"`by`: attribute column(s) {', '.join(map(repr, missing))} not in {where} (columns there: "
                       f"{', '.join(columns)}); audit by columns it has.")
    return tuple(by), ()


def manifest_columns(root: str | Path) -> list[str]:
    """The column names of ``root/manifest.csv`` (its header only); [] when there is none or it cannot be
    parsed, which :func:`~debias.data.manifest.read_manifest` then reports with its clear message. A manifest with
    generated faces is refused here, before any option is checked against its columns."""
    path = Path(root) / "manifest.csv"
    try:
        columns = list(pd.read_csv(path, nrows=0).columns) if path.exists() else []
    except ValueError:  # empty, or not UTF-8 (pandas' EmptyDataError and UnicodeDecodeError are ValueErrors)
        return []
    if GENERATED in columns:
        refuse_generated(pd.read_csv(path, usecols=[GENERATED]), f"manifest {path}")
    return columns


def image_covariates(im: np.ndarray) -> tuple[int, int, float, float, float]:
    """(width, height, brightness, contrast, sharpness) of an (H, W, 3) uint8 RGB image.

    Brightness and contrast are the mean and standard deviation of grey levels in [0, 1]; sharpness
    is the variance of the Laplacian of the grey image, measured at a common 64 x 64 size so that
    resolution does not masquerade as sharpness.
    """
    g = cv2.cvtColor(im, cv2.COLOR_RGB2GRAY)
    g64 = cv2.resize(g, (64, 64), interpolation=cv2.INTER_AREA) if g.shape != (64, 64) else g
    lap = cv2.Laplacian(g64.astype(np.float32) / 255.0, cv2.CV_32F)
    return im.shape[1], im.shape[0], float(g.mean() / 255), float(g.std() / 255), float(lap.var())


def batch_covariates(images: np.ndarray) -> np.ndarray:
    """:func:`image_covariates` for a same-size (B, H, W, 3) uint8 batch, vectorised. Returns (B, 5).

    Packed datasets arrive as one array; computing grey levels and the Laplacian for the whole batch
    in numpy avoids a Python loop of OpenCV calls that cost more than the model itself.
    """
    B, h, w, _ = images.shape
    # (B, H, W) grey in [0, 1] with OpenCV's weights; float32 first so the product runs in BLAS
    g = images.astype(np.float32) @ (np.array([0.299, 0.587, 0.114], np.float32) / 255.0)
    if (h, w) != (64, 64):
        g64 = np.stack([cv2.resize(x, (64, 64), interpolation=cv2.INTER_AREA) for x in g])
    else:
        g64 = g
    p = np.pad(g64, ((0, 0), (1, 1), (1, 1)), mode="reflect")  # OpenCV's default border (reflect 101)
    lap = p[:, :-2, 1:-1] + p[:, 2:, 1:-1] + p[:, 1:-1, :-2] + p[:, 1:-1, 2:] - 4 * g64
    out = np.empty((B, 5))
    out[:, 0], out[:, 1] = w, h
    out[:, 2] = g.mean((1, 2))
    out[:, 3] = g.std((1, 2))
    out[:, 4] = lap.reshape(B, -1).var(1)
    return out


COVARIATE_CACHE = "covariates.npz"


class CovariateCache:
    """Image covariates of a packed dataset, computed once and kept beside its manifest.

    ``covariates.npz`` holds one row per image of ``images.npy`` (NaN where not yet computed) and
    the key it was computed under: the sha256 of ``manifest.csv`` plus the size and modification
    time of ``images.npy``. A changed manifest or array makes the cache stale and it is rebuilt. A
    read-only dataset folder only loses the cache, never the audit.
    """

    def __init__(self, root: Path, n_images: int):
        self.path = root / COVARIATE_CACHE
        st = (root / "images.npy").stat()
        self.key = f"{sha256_file(root / 'manifest.csv')}:{st.st_size}:{st.st_mtime_ns}"
        self.values = np.full((n_images, len(COVARIATES)), np.nan)
        self.dirty = False
        try:
            with np.load(self.path, allow_pickle=False) as z:
                if str(z["key"]) == self.key and z["values"].shape == self.values.shape:
                    self.values = z["values"].copy()
        except (OSError, KeyError, ValueError):  # absent, unreadable or another layout: recompute
            pass

    def get(self, idx: np.ndarray, images: np.ndarray) -> np.ndarray:
        """Covariates of images ``idx`` (their pixels are ``images``), computed only for those not cached."""
        missing = np.isnan(self.values[idx, 0])
        if missing.any():
            self.values[idx[missing]] = batch_covariates(images[missing])
            self.dirty = True
        return self.values[idx]

    def save(self) -> None:
        if not self.dirty:
            return

        def write(t: Path) -> None:
            with open(t, "wb") as f:  # a file object: np.savez would add .npz to a temporary name
                np.savez(f, values=self.values, key=np.array(self.key))

        try:
            atomic_write(self.path, write)
        except OSError:  # read-only dataset: the audit goes on without a cache
            pass


def predict(root: str | Path, adapters: Sequence[Adapter], *, split: str = "test", batch_size: int = 256,
            shard: tuple[int, int] = (0, 1), progress: Callable | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score every image of ``split`` with every adapter.

    Returns
    -------
    predictions : long table, one row per (image, model): ``row`` (manifest row), ``image``, ``model``,
        ``y_true``, ``y_score``, ``native_threshold``, the manifest's attribute columns and covariates.
    skipped : one row per unreadable image: ``row``, ``image``, ``reason``.
    """
    root = Path(root)
    manifest = read_manifest(root, check_files=is_packed(root))
    refuse_generated(manifest, f"manifest {root / 'manifest.csv'}")
    frame = select_split(manifest, split)
    frame = frame.assign(row=frame.index)
    k, n = shard
    frame = frame.iloc[k::n]
    packed = open_packed(root) if is_packed(root) else None
    cache = CovariateCache(root, len(packed)) if packed is not None else None
    attr_cols = [c for c in frame.columns if c not in ("image", "label", "split", "row", "path")]
    scores = {a.name: np.full(len(frame), np.nan) for a in adapters}
    cov = np.full((len(frame), len(COVARIATES)), np.nan)
    done = np.zeros(len(frame), bool)  # images read and scored (the rest were skipped as unreadable)
    skipped = []
    if progress:
        progress(0, total=len(frame), description="scoring")
    # the columns the loop reads, taken out of the frame once (17 .iloc slices of a 4,320-row split cost ~3 ms)
    images, rows = frame["image"].to_numpy(), frame["row"].to_numpy()
    for s in range(0, len(frame), batch_size):
        part = slice(s, min(s + batch_size, len(frame)))
        imgs, pos = [], []
        if packed is not None:
            ids = images[part].astype(int)  # row indices into images.npy, for the reader and the covariate cache
            imgs, pos = read_rows(packed, ids), np.arange(part.start, part.stop)
        else:
            for j in range(part.start, part.stop):
                try:
                    imgs.append(load_image(root, str(images[j]), None))
                    pos.append(j)
                except Exception as e:  # noqa: BLE001 - any decode failure: skip, record, go on
                    skipped.append({"row": int(rows[j]), "image": str(images[j]),
                                    "reason": f"{type(e).__name__}: {e}"[:200]})
        if len(imgs):
            if cache is not None:
                cov[pos] = cache.get(ids, imgs)
            else:
                for j, im in zip(pos, imgs):
                    cov[j] = image_covariates(im)
            done[pos] = True
            for a in adapters:
                scores[a.name][pos] = a.score(imgs)
        if progress:
            progress(part.stop - part.start)
    if cache is not None:
        cache.save()
    if len(skipped) == len(frame) and len(frame):
        first = "; ".join(f"{d['image']} ({d['reason']})" for d in skipped[:3])
        raise PredictionsError(f"none of the {len(frame)} images of the {split} split of {root} could be read; "
                               f"first: {first}. Check the image files and the manifest's paths.")
    for a in adapters:
        bad = done & ~np.isfinite(scores[a.name])
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            raise PredictionsError(NON_FINITE.format(spec=a.spec, k=int(bad.sum()), n=int(done.sum()),
                                                     value=scores[a.name][j], image=images[j]))
    parts = []
    for a in adapters:
        prob, _ = to_probability(scores[a.name], a.output, what=f"model {a.spec}")
        df = frame[["row", "image"] + attr_cols].copy()
        df.insert(2, "model", a.name)
        df.insert(3, "y_true", frame["label"].to_numpy())
        df.insert(4, "y_score", prob)
        df.insert(5, "native_threshold", a.native_threshold)
        for i, c in enumerate(COVARIATES):
            df[c] = cov[:, i]
        parts.append(df)
    return pd.concat(parts, ignore_index=True), pd.DataFrame(skipped, columns=["row", "image", "reason"])


# the reason given for an image a predictions CSV has no row for, in the skipped-images table (the CLI counts them)
NO_PREDICTION = "no prediction from model"


def _unscored(p: pd.DataFrame, m: pd.DataFrame) -> pd.DataFrame:
    """The split's images (manifest ``m``: row, image) that each model of ``p`` has no row for: row, image, model,
    reason."""
    parts = []
    for name, g in p.groupby("model", sort=False):
        miss = m[~m["image"].isin(set(g["image"]))]
        parts.append(pd.DataFrame({"row": miss["row"].to_numpy(), "image": miss["image"].to_numpy(), "model": name,
                                   "reason": f"{NO_PREDICTION} {name!r}"}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["row", "image", "model", "reason"])


def _lines(mask: np.ndarray, limit: int = 5) -> str:
    """1-based line numbers in the CSV (the header is line 1) of the first rows where ``mask`` holds."""
    idx = np.flatnonzero(mask)
    shown = ", ".join(str(i + 2) for i in idx[:limit])
    return shown + (f" and {len(idx) - limit} more" if len(idx) > limit else "")


def check_one_row_per_image(p: pd.DataFrame, where: str) -> None:
    """Raise PredictionsError, naming the image, its model and its lines, if a model lists an image twice."""
    image = p["image"].astype(str)
    dup = p.assign(image=image).duplicated(["image", "model"], keep=False).to_numpy()
    if dup.any():
        raise PredictionsError(f"{where}: image {image[dup].iloc[0]!r} is listed more than once for model "
                               f"{p['model'][dup].iloc[0]!r} (line(s) {_lines(dup)}); give one score per image and "
                               f"model.")


def pair_rows(p: pd.DataFrame, where: str) -> np.ndarray:
    """The ``row`` of every prediction such that equal rows are the same image across models (paired tests).

    With an ``image`` column, rows are paired by image id: every model must list the same images (row = the image's
    position in the first model's rows), each once (:func:`check_one_row_per_image`, which callers run first).
    Without one, the models' rows are paired in order, so every model must have as many rows. Raises
    PredictionsError naming the model and image.
    """
    models = list(dict.fromkeys(p["model"]))
    if "image" not in p.columns:
        counts = p.groupby("model", sort=False).size()
        if counts.nunique() > 1:
            short = counts.idxmin() if counts.idxmin() != models[0] else counts.idxmax()
            raise PredictionsError(f"{where}: model {short!r} has {counts[short]} rows and model {models[0]!r} "
                                   f"{counts[models[0]]}. Without an 'image' column the models' rows are paired in "
                                   f"order; give every model a row for each image, or add an 'image' column.")
        return p.groupby("model", sort=False).cumcount().to_numpy()
    image = p["image"].astype(str)
    first = image[(p["model"] == models[0]).to_numpy()]
    pos = pd.Series(np.arange(len(first)), index=first.to_numpy())
    for m in models[1:]:
        own = image[(p["model"] == m).to_numpy()]
        extra, lacking = own[~own.isin(pos.index)], first[~first.isin(set(own))]
        if len(extra) or len(lacking):
            img, has, lacks = (extra.iloc[0], m, models[0]) if len(extra) else (lacking.iloc[0], models[0], m)
            raise PredictionsError(f"{where}: image {img!r} has a row for model {has!r} but not for model {lacks!r}. "
                                   f"Models are compared image by image, so every model needs a row for the same "
                                   f"images.")
    return pos.loc[image.to_numpy()].to_numpy()


DISAGREES = ("predictions file {path}, line {line}: column {col!r} says {value!r} for image {image!r}, but the "
             "manifest {manifest} says {truth!r}. The manifest decides labels and groups; drop the column from the "
             "predictions file, or fix the manifest.")


def _check_agrees(p: pd.DataFrame, m: pd.DataFrame, columns: Sequence[str], path, root) -> None:
    """Refuse a predictions column that the manifest ``m`` also has (label as y_true, an attribute) where their
    values differ: one source must never silently replace the other."""
    truth = p[["image"]].merge(m[["image", *columns]], on="image", how="left")
    for c in columns:
        a, b = p[c].reset_index(drop=True), truth[c]
        na, nb = pd.to_numeric(a, errors="coerce"), pd.to_numeric(b, errors="coerce")
        numeric = (na.notna() | a.isna()).all() and (nb.notna() | b.isna()).all()
        same = (np.isclose(na, nb) | (na.isna() & nb.isna())) if numeric else \
            ((a.astype(str) == b.astype(str)) | (a.isna() & b.isna()))
        if not same.all():
            i = int(np.flatnonzero(~same.to_numpy())[0])
            shown = {k: _cell(v[i]) for k, v in (("value", a), ("truth", b))}
            raise PredictionsError(DISAGREES.format(path=path, line=i + 2, col="label" if c == "y_true" else c,
                                                    image=p["image"].iloc[i], manifest=Path(root) / "manifest.csv",
                                                    **shown))


def _cell(x):
    """A value as a CSV writes it: numpy scalars as plain numbers, a whole float as an integer, NaN as empty."""
    x = x.item() if hasattr(x, "item") else x
    if isinstance(x, float):
        return "" if np.isnan(x) else int(x) if x.is_integer() else x
    return x


def _join_manifest(p: pd.DataFrame, path, root, split: str, allow_missing: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Predictions ``p`` with the manifest's label and attributes joined on ``image``, and the images of the split
    that a model has no row for; raises PredictionsError for an image not in the split, a column that disagrees
    with the manifest, or (unless ``allow_missing``) a missing row."""
    m = read_manifest(root, check_files=False)
    refuse_generated(m, f"manifest {Path(root) / 'manifest.csv'}")
    m = select_split(m, split)
    m = m.assign(row=m.index, image=m["image"].astype(str))
    unknown = ~p["image"].isin(set(m["image"])).to_numpy()
    if unknown.any():
        raise PredictionsError(f"predictions file {path}: {int(unknown.sum())} image id(s) are not in the {split} "
                               f"split of {root} (line(s) {_lines(unknown)}, first {p['image'][unknown].iloc[0]!r}). "
                               f"Use the manifest's image ids, and `split` to audit another split.")
    m = m.rename(columns={"label": "y_true"})
    shared = [c for c in p.columns if c in m.columns and c != "image"]
    _check_agrees(p, m, shared, path, root)
    p = p.drop(columns=shared).merge(m, on="image", how="left")
    unscored = _unscored(p, m)
    if len(unscored) and not allow_missing:
        raise PredictionsError(
            f"predictions file {path}: model {unscored['model'].iloc[0]!r} has no row for "
            f"{int((unscored['model'] == unscored['model'].iloc[0]).sum())} of the {len(m)} images of the {split} "
            f"split of {root} (first {unscored['image'].iloc[0]!r}). A missing row is "
            f"not a miss: give every image a row, with score 0 (or prediction 0) where the detector found no face. "
            f"To audit only the images each model scored, pass --allow-missing (the rest are listed in the report).")
    return p, unscored


def _score_column(p: pd.DataFrame, path) -> tuple[pd.DataFrame, np.ndarray]:
    """``p`` with its one score column as ``y_score`` (0/1 ``prediction``s marked by ``native_threshold``), and those
    scores as finite floats; PredictionsError, by line, for anything else."""
    given = [c for c in ("score", "prediction", "y_score") if c in p.columns]
    if len(given) > 1:
        raise PredictionsError(f"predictions file {path} has the columns {', '.join(given)}: give one score per "
                               f"row, in a 'score' column (or 0/1 decisions in a 'prediction' column).")
    if "native_threshold" in p.columns:
        p = p.drop(columns="native_threshold")  # a column of the audit's own output: the decisions come from here
    if "score" in p.columns:
        p = p.rename(columns={"score": "y_score"})
    elif "prediction" in p.columns:
        p = p.rename(columns={"prediction": "y_score"})
        p["native_threshold"] = 0.5
    else:
        raise PredictionsError(f"predictions file {path} needs a 'score' or 'prediction' column "
                               f"(columns: {', '.join(p.columns)}).")
    raw = pd.to_numeric(p["y_score"], errors="coerce").to_numpy(dtype=np.float64, copy=True)
    bad = ~np.isfinite(raw)
    if bad.any():
        first = p["y_score"].iloc[int(np.flatnonzero(bad)[0])]
        shown = "empty" if pd.isna(first) else repr(first) if isinstance(first, str) else str(first)
        raise PredictionsError(f"predictions file {path}: the score is missing, not a number or infinite on line(s) "
                               f"{_lines(bad)} (first value: {shown}). "
                               f"Every row needs a finite score; drop the rows of images the model did not score.")
    if "native_threshold" in p.columns and not np.isin(raw, (0, 1)).all():
        raise PredictionsError(f"predictions file {path}: 'prediction' must be 0 or 1 (line(s) "
                               f"{_lines(~np.isin(raw, (0, 1)))}); give continuous scores as a 'score' column.")
    return p, raw


def _model_column(p: pd.DataFrame, path, model: str | None) -> pd.DataFrame:
    """``p`` with a ``model`` column of names as text: ``model`` (or the file's stem) when the file has none."""
    if "model" not in p.columns:
        return p.assign(model=model or Path(path).stem)
    empty = p["model"].isna().to_numpy() | (p["model"].astype(str).str.strip() == "").to_numpy()
    if empty.any():
        raise PredictionsError(f"predictions file {path}: the model name is empty on line(s) {_lines(empty)}; name "
                               f"the model on every row, or drop the column for a file of one model.")
    names = p["model"].map(_name)
    if model is not None and set(names) != {str(model)}:
        raise PredictionsError(f"predictions file {path}: `model`={model!r} was given, but its model column names "
                               f"{', '.join(dict.fromkeys(names))}; leave out `model`, or drop the column.")
    return p.assign(model=names)


def _name(x) -> str:
    """A model name as text: 1 and 1.0 (a column pandas read as numbers) are both "1"."""
    return str(int(x)) if isinstance(x, float) and x.is_integer() else str(x)


def predictions_from_csv(path: str | Path, root: str | Path | None, *, split: str = "test",
                         model: str | None = None, scores: str = "auto",
                         allow_missing: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A model-agnostic prediction table from a CSV made elsewhere, validated, and the images it leaves out.

    The CSV needs ``image`` and ``score`` (or ``prediction``, 0/1); ``model`` and ``y_true`` (or
    ``label``) are optional. Attributes come from the CSV or, when ``root`` is given, from that
    dataset's manifest, joined on ``image``. ``scores`` says whether ``score`` holds probabilities
    (``prob``), logits (``logit``) or either (``auto``: decided over all of each model's scores).

    Raises
    ------
    PredictionsError for an empty file, a missing column, a non-numeric or non-finite score, a
    label other than 0/1, an image listed twice for one model, an image not in the dataset's
    split, or (unless ``allow_missing``) an image of the split that a model has no row for; each
    message lists the first offending lines or images.

    A face with no row is not a miss: a detector's output often leaves out the images where it found
    no face, and auditing only the rows given would then overstate its detection rate. So every
    image of the split must be scored; with ``allow_missing`` the unscored ones are left out of the
    audit.

    Returns
    -------
    (predictions, skipped) as :func:`predict` returns them: ``skipped`` (row, image, reason) lists each
    image of the split a model has no row for (empty without ``root``), for the report.
    """
    from debias.data.manifest import read_csv_checked

    p = read_csv_checked(Path(path), "predictions file {path} has no rows{detail}; it needs a header with image "
                         "and score (or prediction) and one row per image.",
                         "predictions file {path} is not UTF-8 text (line {line}: {reason}); save it as UTF-8.",
                         PredictionsError)
    refuse_generated(p, f"predictions file {path}")
    if "image" not in p.columns:
        raise PredictionsError(f"predictions file {path} has no 'image' column (columns: {', '.join(p.columns)}).")
    blank = p["image"].isna().to_numpy()
    if blank.any():  # pandas also reads every other id of that column as a float ("360.0"), not in the manifest
        raise PredictionsError(f"predictions file {path}: the image id is empty on line(s) {_lines(blank)}; give "
                               f"every row the manifest's image id, or drop the row.")
    p, raw = _score_column(p, path)
    p = _model_column(p, path, model)
    kind = {}  # each model's scores read as probabilities or logits on their own
    for m, idx in p.groupby("model", sort=False).indices.items():
        try:
            raw[idx], kind[m] = to_probability(raw[idx], scores, what=f"predictions file {path}, model {m!r}")
        except ValueError as e:
            raise PredictionsError(str(e)) from None
    p["y_score"] = raw
    if "label" in p.columns and "y_true" not in p.columns:
        p = p.rename(columns={"label": "y_true"})
    p["image"] = p["image"].astype(str)
    check_one_row_per_image(p, f"predictions file {path}")
    check_spellings(p.drop(columns=["model"]), f"predictions file {path}")
    unscored = pd.DataFrame(columns=["row", "image", "model", "reason"])
    if root is not None:
        p, unscored = _join_manifest(p, path, root, split, allow_missing)
    if "y_true" not in p.columns:
        raise PredictionsError(f"predictions file {path} has no y_true/label column and no dataset was given to "
                               f"take it from.")
    y = pd.to_numeric(p["y_true"], errors="coerce")
    if not y.isin([0, 1]).all():
        raise PredictionsError(f"predictions file {path}: label must be 0 or 1 (line(s) {_lines(~y.isin([0, 1]).to_numpy())}).")
    p["y_true"] = y.astype(int)
    if "row" not in p.columns:  # no dataset to take the manifest's rows from: pair the models by image id
        p["row"] = pair_rows(p, f"predictions file {path}")
    p.attrs["scores"] = kind  # model -> prob or logit, as read or as inferred from all of that model's scores
    return p, unscored[["row", "image", "reason"]]
