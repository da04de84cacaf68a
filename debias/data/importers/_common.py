"""Shared by the importers: result type, writing the manifest and the problem report."""
from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from debias.data.manifest import check_spellings, first_refused_row
from debias.errors import DebiasError
from debias.files import write_csv

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
SOURCE_MISSING = ("{what} not found at {path}. {hint} The {card} dataset card (datasets/{card}/README.md in the "
                  "debias source repository) describes the layout expected.")


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


ROW_MATCHES_TWO = ("{csv}, line {line}: {key!r} matches {n} images ({images}); write the image's path relative to its "
                   "folder, so that one row labels one image.")
TWO_ROWS_ONE_IMAGE = ("{csv}, lines {lines} all name the image {image}; give each image one row.")


def norm_key(key: object) -> str:
    """A path as a CSV writes it, in one form: / separators, no ./ or repeated slashes (``.\\LF\\1.png`` ->
    ``LF/1.png``)."""
    return posixpath.normpath(str(key).strip().replace("\\", "/"))


def match_rows(keys: Sequence[object], rel: Sequence[str], csv: str | Path) -> list[int | None]:
    """The CSV row (0-based) that labels each image, or None.

    ``keys`` are the CSV's path column; ``rel`` each image's path relative to its folder. A key with a
    folder in it matches the image at that relative path; a bare file name matches the image of that
    name. A row that would label two images, and an image that two rows name, are refused (DebiasError
    naming the lines), never resolved by a guess.
    """
    by_rel: dict[str, list[int]] = {}
    by_name: dict[str, list[int]] = {}
    for j, r in enumerate(rel):
        by_rel.setdefault(norm_key(r), []).append(j)
        by_name.setdefault(posixpath.basename(norm_key(r)), []).append(j)
    row_of: list[int | None] = [None] * len(rel)
    named: dict[int, list[int]] = {}
    for i, k in enumerate(map(norm_key, keys)):
        hits = by_rel.get(k, []) if "/" in k else by_name.get(k, [])
        if len(hits) > 1:
            raise DebiasError(ROW_MATCHES_TWO.format(csv=csv, line=i + 2, key=k, n=len(hits),
                                                     images=", ".join(norm_key(rel[j]) for j in hits[:4])))
        for j in hits:
            named.setdefault(j, []).append(i)
            row_of[j] = i
    for j, rows in named.items():
        if len(rows) > 1:
            lines = [str(i + 2) for i in rows]
            raise DebiasError(TWO_ROWS_ONE_IMAGE.format(csv=csv, image=norm_key(rel[j]),
                                                        lines=", ".join(lines[:-1]) + " and " + lines[-1]))
    return row_of


TOO_LARGE = ("too large to decode safely (more than {limit} pixels, which PIL treats as a possible decompression "
             "bomb); resize it first")


def unreadable(path: Path) -> str | None:
    """Why an image file cannot be decoded (its header read by PIL), or None when it can."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.size  # noqa: B018 - the header is parsed here
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        return TOO_LARGE.format(limit=Image.MAX_IMAGE_PIXELS)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        return f"not a readable image ({type(e).__name__})"
    return None


NOT_A_MANIFEST_ROW = ("the import into {path} would give image {image} {what} {value!r}, which the manifest refuses "
                      "(label 0 or 1; split train, val or test); nothing was written. Fix it in the source.")


def _check_rows(rows: pd.DataFrame, path: Path) -> None:
    """Refuse rows that :func:`~debias.data.manifest.read_manifest` would refuse, before they are written."""
    refused = first_refused_row(rows)
    if refused is not None:
        col, i = refused
        raise DebiasError(NOT_A_MANIFEST_ROW.format(path=path, image=rows["image"].iloc[i], what=col,
                                                    value=rows[col].iloc[i]))


def write(out: str | Path, rows: pd.DataFrame, problems: list[dict]) -> ImportResult:
    """Write manifest.csv (paths made relative to ``out``) and import_report.csv.

    Files whose header cannot be read are left out of the manifest and listed in the report.
    """
    out = Path(out)
    check_spellings(rows, f"the import into {out / 'manifest.csv'}", lines=False)  # before anything is written
    _check_rows(rows, out / "manifest.csv")
    out.mkdir(parents=True, exist_ok=True)
    why = [unreadable(Path(p)) for p in rows["image"]]
    problems = problems + [{"item": str(p), "problem": w} for p, w in zip(rows["image"], why) if w]
    rows = rows[[w is None for w in why]].copy()
    rows["image"] = [os.path.relpath(Path(p).resolve(), out.resolve()) for p in rows["image"]]
    first = ["image", "label", "split"]
    rows = rows[first + [c for c in rows.columns if c not in first]]
    report = pd.DataFrame(problems, columns=["item", "problem"])
    write_csv(report, out / "import_report.csv")
    write_csv(rows, out / "manifest.csv")  # last, and whole: a dataset's manifest marks it complete
    return ImportResult(rows, report)
