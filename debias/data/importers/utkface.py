"""UTKFace: files named ``age_gender_race_datetime.jpg`` (gender 0 male, 1 female; race 0-4).

Names that do not parse are reported in import_report.csv and skipped. ``race`` is kept as its own
column (White, Black, Asian, Indian, Others), never as skin tone.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from debias.data.importers._common import ImportResult, list_images, require, write

NAME = re.compile(r"^(\d{1,3})_([01])_([0-4])_(\d+)")
RACES = ("White", "Black", "Asian", "Indian", "Others")


def run(src: str | Path, out: str | Path, *, split: str = "test") -> ImportResult:
    src = require(Path(src), "UTKFace folder", "utkface")
    rows, problems = [], []
    for p in list_images(src):
        m = NAME.match(p.name)
        if not m:
            problems.append({"item": p.name, "problem": "file name is not age_gender_race_datetime.jpg; skipped"})
            continue
        age, g, race, _ = m.groups()
        rows.append({"image": p, "label": 1, "split": split, "age": int(age),
                     "gender": "male" if g == "0" else "female", "race": RACES[int(race)]})
    if not rows:
        raise ValueError(f"no UTKFace-named images under {src}.")
    return write(out, pd.DataFrame(rows), problems)
