"""CelebA in the official layout torchvision's ``CelebA`` expects.

    SRC/img_align_celeba/*.jpg, SRC/list_attr_celeba.txt, SRC/list_eval_partition.txt
    (or the same under SRC/celeba/)

The label files are parsed with pandas in the format torchvision's loader reads. torchvision's
``CelebA`` class itself is not used because it verifies MD5 sums of the whole archive before
reading, which rejects the subsets and re-compressed copies that users often have.
Every image is a face (label 1); ``Male`` maps to gender; ``Pale_Skin`` is kept as ``pale_skin``
and is *not* a skin tone.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from debias.data.importers._common import ImportResult, require, write

SPLITS = {0: "train", 1: "val", 2: "test"}


def run(src: str | Path, out: str | Path) -> ImportResult:
    src = Path(src)
    if (src / "celeba").is_dir() and not (src / "list_attr_celeba.txt").exists():
        src = src / "celeba"
    hint = "Download CelebA yourself (see the dataset card); nothing is fetched at run time."
    attr_path = require(src / "list_attr_celeba.txt", "list_attr_celeba.txt", "celeba", hint)
    part_path = require(src / "list_eval_partition.txt", "list_eval_partition.txt", "celeba", hint)
    img_dir = require(src / "img_align_celeba", "img_align_celeba/", "celeba", hint)
    # line 1: count, line 2: 40 attribute names, then "file v1 ... v40" with -1 / 1
    attrs = pd.read_csv(attr_path, sep=r"\s+", skiprows=1, header=0)
    if "Male" not in attrs.columns:
        raise KeyError(f"{attr_path} has no 'Male' column (columns: {', '.join(attrs.columns[:12])}...).")
    part = pd.read_csv(part_path, sep=r"\s+", header=None, names=["file", "partition"], index_col=0)
    problems = []
    rows = []
    for f, r in attrs.iterrows():
        p = img_dir / f
        if not p.exists():
            problems.append({"item": f, "problem": "listed in list_attr_celeba.txt but no image file"})
            continue
        if f not in part.index:
            problems.append({"item": f, "problem": "no entry in list_eval_partition.txt"})
            continue
        rows.append({"image": p, "label": 1, "split": SPLITS[int(part.loc[f, "partition"])],
                     "gender": "male" if r["Male"] == 1 else "female",
                     "pale_skin": int(r.get("Pale_Skin", 0) == 1), "young": int(r.get("Young", 0) == 1),
                     "eyeglasses": int(r.get("Eyeglasses", 0) == 1)})
    listed = set(attrs.index)
    for p in sorted(img_dir.glob("*.jpg")):
        if p.name not in listed:
            problems.append({"item": p.name, "problem": "image file not listed in list_attr_celeba.txt"})
    return write(out, pd.DataFrame(rows), problems)
