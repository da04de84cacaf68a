"""FairFace (Karkkainen & Joo 2021).

    SRC/train/*.jpg, SRC/val/*.jpg, SRC/fairface_label_train.csv, SRC/fairface_label_val.csv

CSV columns ``file`` (e.g. ``train/1.jpg``), ``age``, ``gender``, ``race``. ``race`` is kept as its
own column and is never relabelled as skin tone: race is not a skin colour. FairFace's ``val`` set
is its held-out evaluation set and becomes split ``test``.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from debias.data.importers._common import ImportResult, require, write
from debias.data.manifest import read_csv_checked
from debias.errors import DebiasError

PARTS = {"train": "train", "val": "test"}


def run(src: str | Path, out: str | Path) -> ImportResult:
    src = Path(src)
    rows, problems = [], []
    found_any = False
    for part, split in PARTS.items():
        path = src / f"fairface_label_{part}.csv"
        if not path.exists():
            continue
        found_any = True
        df = read_csv_checked(path, "FairFace labels {path} have no rows{detail}; they need a header and one row "
                              "per image.", "FairFace labels {path} are not UTF-8 text (line {line}: {reason}).",
                              DebiasError)
        missing = [c for c in ("file", "age", "gender", "race") if c not in df.columns]
        if missing:
            raise KeyError(f"{path} lacks column(s) {', '.join(missing)} (columns: {', '.join(df.columns)}).")
        for r in df.itertuples(index=False):
            p = src / str(r.file)
            if not p.exists():
                problems.append({"item": str(r.file), "problem": "CSV row has no image file"})
                continue
            rows.append({"image": p, "label": 1, "split": split, "gender": str(r.gender).strip().lower(),
                         "age": r.age, "race": r.race})
    if not found_any:
        require(src / "fairface_label_train.csv", "fairface_label_train.csv or fairface_label_val.csv", "fairface")
    return write(out, pd.DataFrame(rows), problems)
