"""Generic import: image folders given as faces or non-faces, with an optional attribute CSV.

This is how PPB-style crops, ImageNet negatives or any in-house set come in.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from debias.data.importers._common import ImportResult, list_images, match_rows, require, write
from debias.data.manifest import SPLITS, read_csv_checked
from debias.errors import DebiasError

EMPTY_CSV = ("attribute CSV {path} has no rows{detail}; it needs a header (with the image path column) and one row "
             "per image.")
NOT_UTF8_CSV = "attribute CSV {path} is not UTF-8 text (line {line}: {reason}); save it as UTF-8."
BAD_CSV_LABEL = ("attribute CSV {csv}, line {line}: label {value!r} is not 0 or 1. Write 1 for a face and 0 for a "
                 "non-face, or leave it empty to keep the folder's (--faces 1, --non-faces 0).")
BAD_CSV_SPLIT = ("attribute CSV {csv}, line {line}: split {value!r} is not one of train, val, test (written in lower "
                 "case); leave it empty to give the image `split`.")
BAD_SPLIT_OPTION = "`split` {value!r} is not one of train, val, test."
LISTED_TWICE = ("image {image} is under both {a} and {b} (given as {what}); it would be listed twice, and an image is "
                "a face or a non-face, not both. Give folders that do not overlap.")


def parse_map(pairs: Sequence[str]) -> dict[str, str]:
    """['skin=skin_group', ...] -> {'skin': 'skin_group'}."""
    out = {}
    for p in pairs:
        src, sep, dst = p.partition("=")
        if not sep or not src or not dst:
            raise ValueError(f"`map` {p!r} must look like SOURCE_COLUMN=NEW_NAME, for example skin=skin_group.")
        out[src.strip()] = dst.strip()
    return out


def run(src: str | Path | None, out: str | Path, *, faces: Sequence[str | Path] = (), non_faces: Sequence[str | Path] = (),
        csv: str | Path | None = None, key: str = "path", rename: dict[str, str] | None = None,
        split: str = "test") -> ImportResult:
    """Import image folders.

    Parameters
    ----------
    src : a folder of faces (same as one ``faces`` entry), or None.
    faces, non_faces : folders whose images are faces (label 1) or non-faces (label 0).
    csv : attribute file; its ``key`` column holds paths relative to the folder (``LF/1.png``, ``./LF/1.png``),
        or bare file names where those are unique. A ``label`` column (0 or 1), where given, decides face or
        non-face per image; a ``split`` column (train, val, test), where given, its split.
    rename : column mapping applied to the CSV, e.g. {'skin': 'skin_group'}.
    split : split given to every image.

    Raises
    ------
    DebiasError naming the CSV line for a row that would label two images, two rows naming one image, a
    label other than 0/1 or a split other than train/val/test; and naming the file for an image listed
    both as a face and as a non-face.
    """
    if split not in SPLITS:
        raise DebiasError(BAD_SPLIT_OPTION.format(value=split))
    face_dirs = [Path(f) for f in ([src] if src else []) + list(faces)]
    non_dirs = [Path(f) for f in non_faces]
    if not face_dirs and not non_dirs:
        raise ValueError("give at least one folder: `faces` or `non_faces`.")
    rows, problems, seen = [], [], {}
    for dirs, label in ((face_dirs, 1), (non_dirs, 0)):
        for d in dirs:
            require(d, "image folder", "folder")
            for p in list_images(d):
                where = seen.setdefault(p.resolve(), (d, label))
                if where != (d, label):
                    what = " and ".join(("`faces`", "`non_faces`")[1 - lab] for lab in (where[1], label))
                    raise DebiasError(LISTED_TWICE.format(image=p, a=where[0], b=d, what=what))
                rows.append({"image": p, "label": label, "split": split, "_key": p.relative_to(d).as_posix()})
    if not rows:
        raise ValueError(f"no images ({', '.join(['jpg', 'png', 'bmp', 'webp', 'tif'])}) found under "
                         f"{', '.join(map(str, face_dirs + non_dirs))}.")
    df = pd.DataFrame(rows)
    if csv is not None:
        df = _join_csv(df, Path(csv), key, rename or {}, problems)
    df = df.drop(columns=[c for c in df.columns if c.startswith("_")])
    return write(out, df, problems)


def _join_csv(df: pd.DataFrame, csv: Path, key: str, rename: dict[str, str], problems: list[dict]) -> pd.DataFrame:
    """The images ``df`` with the attribute CSV's columns joined, each row on the one image its path names."""
    attrs = read_csv_checked(require(csv, "attribute CSV", "folder"), EMPTY_CSV, NOT_UTF8_CSV, DebiasError)
    if key not in attrs.columns:
        raise KeyError(f"attribute CSV {csv} has no {key!r} column (columns: {', '.join(attrs.columns)}); "
                       f"name the column that holds image paths as `key`.")
    attrs = attrs.rename(columns=rename)
    row = match_rows(attrs[key].tolist(), df["_key"].tolist(), f"attribute CSV {csv}")
    for image, i in zip(df["image"], row):
        if i is None:
            problems.append({"item": str(image), "problem": "image has no row in the attribute CSV"})
    used = {i for i in row if i is not None}
    if not used and len(attrs):
        raise DebiasError(f"attribute CSV {csv}: none of its {len(attrs)} rows names an image found in the folders "
                          f"(its first: {attrs[key].iloc[0]!r}; the images are named like {df['_key'].iloc[0]!r}). "
                          f"Check the case and form of the paths in its {key!r} column.")
    problems += [{"item": str(attrs[key].iloc[i]), "problem": "CSV row has no image file"}
                 for i in range(len(attrs)) if i not in used]
    extra = attrs.drop(columns=[key]).reset_index(drop=True)
    joined = extra.reindex([-1 if i is None else i for i in row])  # -1: no CSV row, all NaN
    joined.index = df.index
    lines = pd.Series([i + 2 if i is not None else 0 for i in row], index=df.index)
    if "label" in joined.columns:
        lab = pd.to_numeric(joined["label"], errors="coerce")
        bad = joined["label"].notna() & ~lab.isin([0, 1])
        if bad.any():
            j = bad.idxmax()
            raise DebiasError(BAD_CSV_LABEL.format(csv=csv, line=lines[j], value=_cell(joined["label"][j])))
        df["label"] = lab.where(lab.notna(), df["label"]).astype(int)
    if "split" in joined.columns:
        bad = joined["split"].notna() & ~joined["split"].isin(SPLITS)
        if bad.any():
            j = bad.idxmax()
            raise DebiasError(BAD_CSV_SPLIT.format(csv=csv, line=lines[j], value=_cell(joined["split"][j])))
        df["split"] = joined["split"].where(joined["split"].notna(), df["split"])
    return pd.concat([df, joined.drop(columns=["label", "split"], errors="ignore")], axis=1)


def _cell(x):
    """A CSV value as the file has it (a float 2.0 read from "2" prints as 2; numpy scalars as plain numbers)."""
    x = x.item() if hasattr(x, "item") else x
    return int(x) if isinstance(x, float) and x.is_integer() else x
