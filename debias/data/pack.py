"""Decode a file-based dataset into one memory-mapped uint8 array, ``images.npy`` (N, S, S, 3).

Decoding runs in a thread pool (PIL releases the GIL while decoding) over chunks, so memory holds at
most one chunk of decoded images besides the memory map. Unreadable files are skipped, listed in
``import_report.csv`` and dropped from the manifest; they never stop the import.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from PIL import Image

from debias.data.manifest import PACKED, read_manifest, to_rgb8
from debias.files import exclusive, write_csv

CHUNK = 256


def _square(im: Image.Image, size: int, mode: str) -> np.ndarray:
    w, h = im.size
    if mode == "center":
        s = min(w, h)
        im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    else:  # letterbox: pad the short side with black
        s = max(w, h)
        canvas = Image.new("RGB", (s, s))
        canvas.paste(im, ((s - w) // 2, (s - h) // 2))
        im = canvas
    return np.asarray(im.resize((size, size), Image.BILINEAR, reducing_gap=3.0), dtype=np.uint8)


def _load(path: Path, size: int, mode: str):
    try:
        with Image.open(path) as im:
            im.draft("RGB", (size * 2, size * 2))  # JPEG: decode at reduced scale when much larger
            return _square(to_rgb8(im), size, mode), None
    except Exception as e:  # noqa: BLE001 - any decode error: skip the file and report it
        return None, f"{type(e).__name__}: {e}"[:200]


def pack(root: str | Path, *, size: int = 64, mode: str = "center", workers: int = 4,
         progress: Callable | None = None) -> pd.DataFrame:
    """Pack ``root``'s image files into ``root/images.npy``; rewrite the manifest to point into it.

    Returns the new manifest: ``image`` is the row index in images.npy, ``path`` the original file.
    """
    if mode not in ("center", "letterbox"):
        raise ValueError(f"crop mode {mode!r} is not one of center, letterbox.")
    root = Path(root)
    with exclusive(root, "dataset"):
        return _pack(root, size, mode, workers, progress)


def _pack(root: Path, size: int, mode: str, workers: int, progress: Callable | None) -> pd.DataFrame:
    m = read_manifest(root, check_files=False)
    if "path" in m.columns and pd.api.types.is_integer_dtype(m["image"]):
        raise ValueError(f"{root} is already packed (manifest image column holds indices).")
    paths = m["image"].astype(str).tolist()
    n = len(paths)
    tmp = root / (PACKED + ".tmp")
    arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
    keep, problems = [], []
    k = 0
    if progress:
        progress(0, total=n, description="packing")
    with ThreadPoolExecutor(max(1, workers)) as ex:
        for s in range(0, n, CHUNK):
            batch = paths[s:s + CHUNK]
            for j, (img, err) in enumerate(ex.map(lambda p: _load(root / p, size, mode), batch)):
                if img is None:
                    problems.append({"item": batch[j], "problem": f"unreadable image skipped ({err})"})
                    continue
                arr[k] = img
                keep.append(s + j)
                k += 1
            if progress:
                progress(len(batch))
    arr.flush()
    del arr
    if k < n:  # drop the unused tail so images.npy has exactly one row per kept image
        src = np.load(tmp, mmap_mode="r")
        dst = np.lib.format.open_memmap(str(tmp) + ".kept", mode="w+", dtype=np.uint8, shape=(k, size, size, 3))
        for s in range(0, k, 4096):
            dst[s:s + 4096] = src[s:min(k, s + 4096)]
        dst.flush()
        del dst, src
        os.replace(str(tmp) + ".kept", tmp)
    new = m.iloc[keep].copy()
    new.insert(1, "path", new["image"])
    new["image"] = np.arange(k)
    report_path = root / "import_report.csv"
    old = pd.read_csv(report_path) if report_path.exists() else pd.DataFrame(columns=["item", "problem"])
    write_csv(pd.concat([old, pd.DataFrame(problems, columns=["item", "problem"])]), report_path)
    # the array whole first, then the manifest that indexes it: a kill between leaves a manifest of file paths
    # beside a packed array, which read_manifest refuses (an index that is not a number), never a silent mix
    os.replace(tmp, root / PACKED)
    write_csv(new, root / "manifest.csv")
    return new
