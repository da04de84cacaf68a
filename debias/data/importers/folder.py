"""Generic import: image folders given as faces or non-faces, with an optional attribute CSV.

This is how PPB-style crops, ImageNet negatives or any in-house set come in.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from debias.data.importers._common import ImportResult, list_images, require, write


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
    csv : attribute file; its ``key`` column holds paths relative to the folder (or file names). A
        ``label`` column, where present, decides face or non-face per image.
    rename : column mapping applied to the CSV, e.g. {'skin': 'skin_group'}.
    split : split given to every image.
    """
    face_dirs = [Path(f) for f in ([src] if src else []) + list(faces)]
    non_dirs = [Path(f) for f in non_faces]
    if not face_dirs and not non_dirs:
        raise ValueError("give at least one folder: `faces` or `non_faces`.")
    rows, problems = [], []
    for dirs, label in ((face_dirs, 1), (non_dirs, 0)):
        for d in dirs:
            require(d, "image folder", "folder")
            for p in list_images(d):
                rows.append({"image": p, "label": label, "split": split, "_key": p.relative_to(d).as_posix(),
                             "_name": p.name, "_dir": d})
    if not rows:
        raise ValueError(f"no images ({', '.join(['jpg', 'png', 'bmp', 'webp', 'tif'])}) found under "
                         f"{', '.join(map(str, face_dirs + non_dirs))}.")
    df = pd.DataFrame(rows)
    if csv is not None:
        attrs = pd.read_csv(require(Path(csv), "attribute CSV", "folder"))
        if key not in attrs.columns:
            raise KeyError(f"attribute CSV {csv} has no {key!r} column (columns: {', '.join(attrs.columns)}); "
                           f"name the column that holds image paths as `key`.")
        attrs = attrs.rename(columns=rename or {})
        attrs[key] = attrs[key].astype(str).str.replace("\\", "/", regex=False)
        # match on the relative path, or on the bare file name when the CSV holds names only
        by_key = dict(zip(attrs[key], range(len(attrs))))
        by_name = dict(zip(attrs[key].map(lambda s: Path(s).name), range(len(attrs))))
        idx = [by_key.get(k, by_name.get(n)) for k, n in zip(df["_key"], df["_name"])]
        df["_row"] = idx
        for r in df[df["_row"].isna()].itertuples():
            problems.append({"item": str(r.image), "problem": "image has no row in the attribute CSV"})
        used = set(int(i) for i in df["_row"].dropna())
        for i in range(len(attrs)):
            if i not in used:
                problems.append({"item": attrs[key].iloc[i], "problem": "CSV row has no image file"})
        extra = attrs.drop(columns=[key]).reset_index(drop=True)
        joined = extra.reindex(df["_row"].fillna(-1).astype(int).to_numpy())  # -1: no CSV row, all NaN
        joined.index = df.index
        if "label" in joined.columns:
            lab = pd.to_numeric(joined["label"], errors="coerce")
            df["label"] = lab.where(lab.notna(), df["label"]).astype(int)
            joined = joined.drop(columns=["label"])
        if "split" in joined.columns:
            df["split"] = joined["split"].where(joined["split"].notna(), df["split"])
            joined = joined.drop(columns=["split"])
        df = pd.concat([df, joined], axis=1)
    df = df.drop(columns=[c for c in df.columns if c.startswith("_")])
    return write(out, df, problems)
