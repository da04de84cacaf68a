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
from debias.data.importers._common import ImportResult, list_images, require, write

ROMAN = list(FITZPATRICK)


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
    meta = pd.read_csv(require(meta_path, "PPB metadata CSV", "ppb", "Pass it as `csv`."))
    fcol = _col(meta, ("file", "filename", "image", "path"), "file name", meta_path)
    gcol = _col(meta, ("gender", "sex"), "gender", meta_path)
    tcol = _col(meta, ("fitzpatrick", "numeric", "skin_type", "skin type"), "Fitzpatrick type", meta_path)
    files = {p.name: p for p in list_images(src)}
    rows, problems = [], []
    for r in meta.itertuples(index=False):
        name = Path(str(getattr(r, fcol))).name
        tone = fitzpatrick(getattr(r, tcol))
        if name not in files:
            problems.append({"item": name, "problem": "metadata row has no image file"})
            continue
        if tone is None:
            problems.append({"item": name, "problem": f"Fitzpatrick type {getattr(r, tcol)!r} is not I-VI"})
        rows.append({"image": files[name], "label": 1, "split": split, "skin_tone": tone,
                     "skin_group": None if tone is None else ("lighter" if ROMAN.index(tone) < 3 else "darker"),
                     "gender": str(getattr(r, gcol)).strip().lower()})
    named = {Path(str(v)).name for v in meta[fcol]}
    problems += [{"item": n, "problem": "image has no metadata row"} for n in files if n not in named]
    return write(out, pd.DataFrame(rows), problems)
