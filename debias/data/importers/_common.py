"""Shared by the importers: result type, writing the manifest and the problem report."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from debias.data.manifest import check_spellings

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
SOURCE_MISSING = ("{what} not found at {path}. {hint} See datasets/{card}/README.md for the layout expected.")


@dataclass
class ImportResult:
    manifest: pd.DataFrame  # what was written to out/manifest.csv
    report: pd.DataFrame  # one row per problem: item, problem


def require(path: Path, what: str, card: str, hint: str = "") -> Path:
    if not path.exists():
        raise FileNotFoundError(SOURCE_MISSING.format(what=what, path=path, hint=hint, card=card))
    return path


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())


def unreadable(path: Path) -> str | None:
    """Why an image file cannot be decoded (its header read by PIL), or None when it can."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.size  # noqa: B018 - the header is parsed here
    except (UnidentifiedImageError, OSError, ValueError) as e:
        return f"not a readable image ({type(e).__name__})"
    return None


def write(out: str | Path, rows: pd.DataFrame, problems: list[dict]) -> ImportResult:
    """Write manifest.csv (paths made relative to ``out``) and import_report.csv.

    Files whose header cannot be read are left out of the manifest and listed in the report.
    """
    out = Path(out)
    check_spellings(rows, f"the import into {out / 'manifest.csv'}", lines=False)  # before anything is written
    out.mkdir(parents=True, exist_ok=True)
    why = [unreadable(Path(p)) for p in rows["image"]]
    problems = problems + [{"item": str(p), "problem": w} for p, w in zip(rows["image"], why) if w]
    rows = rows[[w is None for w in why]].copy()
    rows["image"] = [os.path.relpath(Path(p).resolve(), out.resolve()) for p in rows["image"]]
    first = ["image", "label", "split"]
    rows = rows[first + [c for c in rows.columns if c not in first]]
    rows.to_csv(out / "manifest.csv", index=False)
    report = pd.DataFrame(problems, columns=["item", "problem"])
    report.to_csv(out / "import_report.csv", index=False)
    return ImportResult(rows, report)
