"""Pilot Parliaments Benchmark (Buolamwini & Gebru 2018).

    SRC/<images>  and a metadata CSV (default SRC/PPB-2017-metadata.csv, or --csv)

with a file-name column (``file``, ``filename`` or ``image``), ``gender`` and a Fitzpatrick type
column (``fitzpatrick``, ``numeric`` or ``skin_type``; I-VI or 1-6). ``skin_tone`` keeps the
Fitzpatrick type as I-VI; ``skin_group`` is lighter (I-III) or darker (IV-VI).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from debias.data.groups import FITZPATRICK
from debias.data.importers._common import ImportResult, list_images, match_rows, require, write
from debias.data.manifest import read_csv_checked
from debias.errors import DebiasError

ROMAN = list(FITZPATRICK)
EMPTY_META = "PPB metadata {path} has no rows{detail}; it needs a header and one row per image."
NOT_UTF8_META = "PPB metadata {path} is not UTF-8 text (line {line}: {reason}); save it as UTF-8."


def _col(df: pd.DataFrame, names: tuple[str, ...], what: str, path: Path) -> str:
    low = {c.lower().strip(): c for c in df.columns}
    for n in names:
        if n in low:
            return low[n]
    raise KeyError(f"PPB metadata {path} has no {what} column (looked for {', '.join(names)}; "
                   f"columns: {', '.join(df.columns)}).")


def fitzpatrick(v) -> str | None:
    s = str(v).strip().upper()
    if s in ROMAN:
        return s
    try:
        i = int(float(s))
        return ROMAN[i - 1] if 1 <= i <= 6 else None
    except ValueError:
        return None


def run(src: str | Path, out: str | Path, *, csv: str | Path | None = None, split: str = "test") -> ImportResult:
    src = Path(src)
    meta_path = Path(csv) if csv else src / "PPB-2017-metadata.csv"
    meta = read_csv_checked(require(meta_path, "PPB metadata CSV", "ppb", "Pass it as `csv`."), EMPTY_META,
                            NOT_UTF8_META, DebiasError)
    fcol = _col(meta, ("file", "filename", "image", "path"), "file name", meta_path)
    gcol = _col(meta, ("gender", "sex"), "gender", meta_path)
    tcol = _col(meta, ("fitzpatrick", "numeric", "skin_type", "skin type"), "Fitzpatrick type", meta_path)
    files = list_images(src)
    rel = [p.relative_to(src).as_posix() for p in files]
    row_of = match_rows(meta[fcol].tolist(), rel, f"PPB metadata {meta_path}")
    rows, problems = [], []
    for p, i in zip(files, row_of):
        if i is None:
            problems.append({"item": p.relative_to(src).as_posix(), "problem": "image has no metadata row"})
            continue
        r = meta.iloc[i]
        tone = fitzpatrick(r[tcol])
        if tone is None:
            problems.append({"item": str(r[fcol]), "problem": f"Fitzpatrick type {r[tcol]!r} is not I-VI"})
        rows.append({"image": p, "label": 1, "split": split, "skin_tone": tone,
                     "skin_group": None if tone is None else ("lighter" if ROMAN.index(tone) < 3 else "darker"),
                     "gender": str(r[gcol]).strip().lower()})
    used = {i for i in row_of if i is not None}
    problems += [{"item": str(meta[fcol].iloc[i]), "problem": "metadata row has no image file"}
                 for i in range(len(meta)) if i not in used]
    return write(out, pd.DataFrame(rows, columns=["image", "label", "split", "skin_tone", "skin_group", "gender"]),
                 problems)
