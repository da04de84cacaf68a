"""The manifest format shared by every dataset, synthetic or real, and a torch Dataset over it.

A dataset is a folder with ``manifest.csv``: one row per image, with at least ``image`` (a path
relative to the folder, or an integer index into ``images.npy``), ``label`` (1 face, 0 non-face)
and ``split`` (train / val / test), plus optional attribute columns (``skin_tone``,
``skin_group``, ``yaw``, ``pose``, ``gender``, ...; empty for non-faces). Images are either files or
one packed, memory-mapped ``images.npy`` array of shape (N, H, W, 3), uint8.
"""
from __future__ import annotations

import csv
import io
import itertools
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from debias.errors import DebiasError

REQUIRED_COLUMNS = ("image", "label", "split")
SPLITS = ("train", "val", "test")
ATTRIBUTE_COLUMNS = ("skin_tone", "skin_group", "yaw", "pose", "gender")
BOX_COLUMNS = ("box_x", "box_y", "box_w", "box_h")  # optional: a face's box in pixels (x, y, width, height)
PACKED = "images.npy"
GENERATED = "generated"  # optional column: True on a face a generative model made (``debias generate``)

MISSING_MANIFEST = ("No manifest.csv in {root}. A dataset folder needs manifest.csv with columns "
                    "image,label,split; create one with `debias data synth` or `debias data import`.")
MISSING_COLUMN = ("manifest {path} has no column {col!r} (columns: {cols}). Required columns are "
                  "image, label and split.")
BAD_LABEL = ("manifest {path}, line {row}: label {value!r} is not 0 or 1. Use 1 for a face and 0 for "
             "a non-face.")
BAD_SPLIT = "manifest {path}, line {row}: split {value!r} is not one of train, val, test."
MISSING_IMAGE = ("manifest {path}, line {row}: image file {value!r} does not exist under {root}. Paths "
                 "are relative to the dataset folder.")
BAD_INDEX = ("manifest {path}, line {row}: image index {value!r} is outside the packed array "
             "images.npy of {n} images.")
DUPLICATE_IMAGE = ("manifest {path}: image {value!r} appears more than once (lines {lines}); every image must "
                   "have one row, or its metrics would count it twice. Remove the repeated rows (an image with "
                   "several faces has one row per face, each with its own box_x, box_y, box_w, box_h).")
PARTIAL_BOX = ("manifest {path} has box column(s) {have} but not {missing}; a face box needs all of box_x, box_y, "
               "box_w and box_h (pixels).")
BAD_BOX = ("manifest {path}, line {row}: box ({value}) is not a face box; box_x and box_y must be numbers and box_w "
           "and box_h numbers > 0 (pixels), all four given or all four empty.")
NONFACE_BOX = ("manifest {path}, line {row}: a non-face row (label 0) has a box; only face rows have boxes. An image "
               "without faces has one label-0 row with empty box columns.")
DUPLICATE_COLUMN = ("{path} has two columns named {name!r} (columns {a} and {b} of its header); which one holds the "
                    "values is not clear. Remove or rename one of them.")
EMPTY_MANIFEST = "manifest {path} has no rows{detail}; it needs a header image,label,split and one row per image."
NOT_UTF8 = ("manifest {path} is not UTF-8 text (line {line}: {reason}). Save it as UTF-8 (for example "
            "`iconv -f latin1 -t utf-8`) and try again.")


MAX_GROUPS = 50  # a text column with more distinct values is an identifier (a file name), not a grouping


def check_spellings(df: pd.DataFrame, where: str, *, lines: bool = True) -> None:
    """Refuse a group written several ways in one attribute column ('Darker', 'darker ', 'darker'): each spelling
    would be audited as a group of its own. Raises ManifestError listing the spellings, each with its first line
    (``lines``: the rows are the file's, after its header) or its count."""
    for col in df.columns:
        if col in ("image", "label", "split", *BOX_COLUMNS) or not (
                pd.api.types.is_object_dtype(df[col]) or pd.api.types.is_string_dtype(df[col])):
            continue
        values = df[col].dropna().unique()  # distinct values only: 18 ms on a 105,000-row manifest, not 140
        if len(values) > MAX_GROUPS:
            continue
        by_key: dict[str, list[str]] = {}
        for x in map(str, values):
            by_key.setdefault(x.strip().casefold(), []).append(x)
        many = [xs for xs in by_key.values() if len(xs) > 1]
        if many:
            full = df[col].astype(str).where(df[col].notna()).to_numpy()
            said = [f"{x!r} (line {int(np.flatnonzero(full == x)[0]) + 2})" if lines else
                    f"{x!r} ({int((full == x).sum())})" for x in sorted(many[0])]
            raise ManifestError(f"{where}: column {col!r} spells one group several ways: {', '.join(said)}; each "
                                f"spelling would be audited as a group of its own. Write each group one way.")


GENERATED_IN_AUDIT = ("{where}, line {row}: a generated face ({col} is true; {n} such row(s)). An audit "
                      "measures how often a model finds real faces, so it never scores generated ones: audit the real "
                      "dataset, or remove those rows.")


def generated_mask(df: pd.DataFrame) -> np.ndarray:
    """(N,) bool: the rows a generative model made (column ``generated`` true: True, true, 1); all False without it."""
    if GENERATED not in df.columns:
        return np.zeros(len(df), dtype=bool)
    col = df[GENERATED]
    if pd.api.types.is_bool_dtype(col):
        return col.fillna(False).to_numpy(dtype=bool)
    return col.astype(str).str.strip().str.lower().isin(("true", "1", "1.0", "yes")).to_numpy()


def refuse_generated(df: pd.DataFrame, where: str) -> None:
    """Raise ManifestError naming the first generated row of ``df`` (lines as in its file, after a header), if it
    has one; ``where`` names the file ("manifest data/x/manifest.csv")."""
    gen = generated_mask(df)
    if gen.any():
        raise ManifestError(GENERATED_IN_AUDIT.format(where=where, row=int(np.flatnonzero(gen)[0]) + 2, col=GENERATED,
                                                      n=int(gen.sum())))


def _v(x):
    """A cell value as the user wrote it (numpy scalars print as np.int64(2) otherwise)."""
    return x.item() if hasattr(x, "item") else x


class ManifestError(DebiasError):
    """A dataset folder or its manifest is malformed; the message names the row and the fix."""


def is_packed(root: str | Path) -> bool:
    return (Path(root) / PACKED).exists()


def first_refused_row(df: pd.DataFrame) -> tuple[str, int] | None:
    """The first row a manifest may not hold, as (column, position): a label other than 0 or 1, or a split other
    than train, val or test; None when every row is fine. Shared by the reader and the importers' writer."""
    label = pd.to_numeric(df["label"], errors="coerce")
    for col, bad in (("label", ~label.isin([0, 1])), ("split", ~df["split"].isin(SPLITS))):
        if bad.any():
            return col, int(np.flatnonzero(bad.to_numpy())[0])
    return None


def read_manifest(root: str | Path, *, check_files: bool = True) -> pd.DataFrame:
    """Read and validate ``root/manifest.csv``.

    Parameters
    ----------
    root : dataset folder.
    check_files : also check that every image file (or packed index) exists.

    Returns
    -------
    DataFrame with one row per image; ``label`` is int, ``split`` is str.

    Raises
    ------
    ManifestError naming the first bad row and value.
    """
    root = Path(root)
    path = root / "manifest.csv"
    if not path.exists():
        raise ManifestError(MISSING_MANIFEST.format(root=root))
    df = read_csv_checked(path, EMPTY_MANIFEST, NOT_UTF8)
    for col in REQUIRED_COLUMNS:
        if col not in df.columns:
            raise ManifestError(MISSING_COLUMN.format(path=path, col=col, cols=", ".join(df.columns)))
    refused = first_refused_row(df)
    if refused is not None:
        col, i = refused
        raise ManifestError((BAD_LABEL if col == "label" else BAD_SPLIT).format(path=path, row=i + 2,
                                                                               value=_v(df[col].iloc[i])))
    df["label"] = pd.to_numeric(df["label"]).astype(int)
    check_spellings(df, f"manifest {path}")
    boxed = any(c in df.columns for c in BOX_COLUMNS)
    # an integer column (a packed manifest) is compared as is: 8 ms less than as 20,000 strings
    ids = df["image"] if pd.api.types.is_integer_dtype(df["image"]) and not boxed else df["image"].astype(str)
    if boxed:
        _check_boxes(df, path)
        for c in BOX_COLUMNS:  # one row per face: an image repeats, a face box does not
            ids = ids + "|" + df[c].map(repr)
    dup = ids.duplicated(keep=False)
    if dup.any():
        first = df["image"].astype(str)[dup].iloc[0]
        lines = (np.flatnonzero((ids == ids[dup].iloc[0]).to_numpy()) + 2).tolist()
        raise ManifestError(DUPLICATE_IMAGE.format(path=path, value=first, lines=", ".join(map(str, lines[:5]))))
    if check_files:
        if is_packed(root):
            n = np.load(root / PACKED, mmap_mode="r").shape[0]
            idx = pd.to_numeric(df["image"], errors="coerce")
            bad = idx.isna() | (idx < 0) | (idx >= n) | (idx % 1 != 0)
            if bad.any():
                i = int(np.flatnonzero(bad.to_numpy())[0])
                raise ManifestError(BAD_INDEX.format(path=path, row=i + 2, value=_v(df["image"].iloc[i]), n=n))
            df["image"] = idx.astype(int)
        else:
            exists = np.array([(root / str(p)).is_file() for p in df["image"]])
            if not exists.all():
                i = int(np.flatnonzero(~exists)[0])
                raise ManifestError(MISSING_IMAGE.format(path=path, row=i + 2, value=_v(df["image"].iloc[i]),
                                                         root=root))
    return df


def _check_boxes(df: pd.DataFrame, path: Path) -> None:
    """Box columns: all four or none; numbers, w and h > 0, on face rows only. Converts them to float."""
    have = [c for c in BOX_COLUMNS if c in df.columns]
    if len(have) < 4:
        raise ManifestError(PARTIAL_BOX.format(path=path, have=", ".join(have),
                                               missing=", ".join(c for c in BOX_COLUMNS if c not in have)))
    raw = df[list(BOX_COLUMNS)]
    num = raw.apply(pd.to_numeric, errors="coerce")
    given = raw.notna()
    bad = (given & (num.isna() | ~np.isfinite(num.fillna(0)))).any(axis=1) | (given.any(axis=1) & ~given.all(axis=1))
    bad |= given.all(axis=1) & ((num["box_w"] <= 0) | (num["box_h"] <= 0))
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise ManifestError(BAD_BOX.format(path=path, row=i + 2, value=", ".join(map(str, raw.iloc[i].tolist()))))
    bad = given.any(axis=1) & (df["label"] == 0)
    if bad.any():
        raise ManifestError(NONFACE_BOX.format(path=path, row=int(np.flatnonzero(bad.to_numpy())[0]) + 2))
    df[list(BOX_COLUMNS)] = num


def read_csv_checked(path: Path, empty: str, not_utf8: str, error: type | None = None) -> pd.DataFrame:
    """``pd.read_csv`` with one clear error for a folder or a missing file, an empty or header-only file, non-UTF-8
    text, a column name given twice, and a file separated by another character than commas.

    ``empty`` and ``not_utf8`` are message templates with ``{path}``, ``{detail}``, ``{line}`` and
    ``{reason}`` fields. Line numbers are 1-based, as an editor shows them. ``error`` is the
    exception class raised (default :class:`ManifestError`).
    """
    error = error or ManifestError
    if Path(path).is_dir():
        raise error(f"{path} is a folder, not a CSV file; give the path of the CSV file itself.")
    if not Path(path).is_file():
        raise error(f"{path} does not exist; give the path of an existing CSV file.")
    raw = Path(path).read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise error(not_utf8.format(path=path, line=line, reason=f"byte 0x{raw[e.start]:02x}")) from None
    if not raw.strip():
        raise error(empty.format(path=path, detail=" (the file is empty)"))
    header = next(csv.reader(io.StringIO(raw.decode("utf-8-sig").split("\n", 1)[0])), [])
    seen: dict[str, int] = {}
    for i, name in enumerate(header):
        if name.strip() in seen:  # pandas would rename the second one (label.1) and every reader would ignore it
            raise error(DUPLICATE_COLUMN.format(path=path, name=name.strip(), a=seen[name.strip()] + 1, b=i + 1))
        seen[name.strip()] = i
    df = pd.read_csv(io.BytesIO(raw), low_memory=False)  # the bytes already read: the file is read once
    if df.empty:
        raise error(empty.format(path=path, detail=" (only a header)"))
    if df.shape[1] == 1:  # one column whose name holds another separator: a spreadsheet's ;- or tab-separated export
        sep = next((c for c in (";", "\t", "|") if c in str(df.columns[0])), None)
        if sep is not None:
            raise error(f"{path} is separated by {sep!r}, not commas (its header reads {str(df.columns[0])!r}); "
                        f"save it as comma-separated values.")
    return df


def select_split(df: pd.DataFrame, split: str) -> pd.DataFrame:
    """Rows of one split (``"all"`` keeps every row). Raises if the split is empty."""
    if split == "all":
        return df
    if split not in SPLITS:
        raise ManifestError(f"split {split!r} is not one of train, val, test, all.")
    out = df[df["split"] == split]
    if out.empty:
        raise ManifestError(f"the manifest has no rows with split={split!r} "
                            f"(splits present: {', '.join(sorted(df['split'].unique()))}).")
    return out


class PackedImages:
    """The rows of a packed ``images.npy`` (N, H, W, 3) uint8, read with positional reads (``os.preadv``).

    Why not the memory map numpy gives: every fresh map takes a page fault per 4 KiB on first touch, and
    an audit opens the array afresh each time; gathering the 4,320 test images of the synthetic
    benchmark (53 MB, in the page cache) took ~100 ms through ``np.load(mmap_mode="r")`` and ~8 ms by
    reading each run of consecutive rows straight into the output with one ``preadv``, on this
    project's 2-core machine (loaded by training, same process, same rows). Reads name their own
    offset, so prefetch threads can share one reader. Platforms without ``preadv`` (Windows) and arrays
    numpy stores otherwise (Fortran order, another dtype) fall back to the memory map.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with open(self.path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(f)
            self.offset = f.tell()
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        self._fd = None
        self._map = None
        if hasattr(os, "preadv") and not fortran and self.dtype == np.uint8 and len(self.shape) >= 1:
            self._fd = os.open(self.path, os.O_RDONLY)
        else:
            self._map = np.load(self.path, mmap_mode="r")

    def __len__(self) -> int:
        return self.shape[0]

    def __getstate__(self) -> dict:  # a file descriptor does not cross processes: workers reopen the file
        return {"path": self.path}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"])

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)
            self._fd = None

    def __getitem__(self, i: int) -> np.ndarray:
        return self.rows(np.array([int(i)]))[0]

    def rows(self, rows: np.ndarray) -> np.ndarray:
        """Rows ``rows`` in the order asked, as a new (len(rows), H, W, 3) array."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self)):
            bad = rows[(rows < 0) | (rows >= len(self))][0]
            raise IndexError(f"row {bad} is outside {self.path} of {len(self)} images.")
        if self._map is not None:
            return _gather_sorted(self._map, rows)
        order = np.argsort(rows, kind="stable")
        s = rows[order]
        buf = np.empty((len(rows),) + self.shape[1:], self.dtype)
        if len(rows):
            cut = np.flatnonzero(np.diff(s) != 1) + 1  # runs of consecutive rows: one read each
            for a, b in zip(np.r_[0, cut], np.r_[cut, len(s)]):
                self._read_into(memoryview(buf[a:b]).cast("B"), self.offset + int(s[a]) * self.row_bytes)
        if np.array_equal(order, np.arange(len(rows))):
            return buf
        out = np.empty_like(buf)
        out[order] = buf
        return out

    def _read_into(self, view: memoryview, offset: int) -> None:
        done = 0
        while done < len(view):  # a read may return fewer bytes than asked; 0 means the file ended
            n = os.preadv(self._fd, [view[done:]], offset + done)
            if n == 0:
                raise ManifestError(f"{self.path} ends before its header says (truncated?); re-pack the dataset "
                                    "with `debias data pack`.")
            done += n


def open_packed(root: str | Path) -> PackedImages:
    """The packed images of a dataset folder (``images.npy``), for :func:`read_rows`."""
    return PackedImages(Path(root) / PACKED)


def _gather_sorted(packed: np.ndarray, rows: np.ndarray) -> np.ndarray:
    order = np.argsort(rows)
    out = np.empty((len(rows),) + packed.shape[1:], packed.dtype)
    out[order] = packed[rows[order]]
    return out


def read_rows(packed: PackedImages | np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Rows of a packed (N, H, W, 3) array, in the order asked: a :class:`PackedImages` reads them by
    positional reads, an array (a memory map) in sorted order, which is sequential on the map."""
    if isinstance(packed, PackedImages):
        return packed.rows(rows)
    return _gather_sorted(packed, np.asarray(rows, dtype=np.int64))


def to_rgb8(im):
    """Any PIL image -> 8-bit RGB, upright, with its pixel values kept.

    PIL's ``convert("RGB")`` alone clips 16- and 32-bit integer images to 255 (a 16-bit grayscale
    PNG becomes all white) and ignores the EXIF orientation a camera wrote. Handled here: EXIF
    orientation; 16-bit (``I;16*``) and 32-bit integer (``I``, taken as 16-bit when its values fit)
    grayscale, scaled by 1/257 so 65535 -> 255; float (``F``, taken as [0, 1] when its values fit,
    else [0, 255]); palette, grayscale, CMYK and alpha modes through PIL (alpha is dropped, the colour
    underneath is kept).
    """
    from PIL import Image, ImageOps

    im = ImageOps.exif_transpose(im)
    if im.mode.startswith("I") or im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        if im.mode == "F":
            a = a * 255.0 if a.size and np.nanmax(a) <= 1.0 else a
        elif im.mode.startswith("I;16") or (a.size and a.max() > 255):
            a = a / 257.0
        im = Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), "L")
    elif im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")  # PIL warns when a palette image with transparency goes straight to RGB
    return im.convert("RGB")


def load_image(root: Path, rel: str, size: int | None) -> np.ndarray:
    """Decode one image file to (H, W, 3) uint8 RGB, optionally resized to size x size.

    PIL rather than torchvision.io: torchvision 0.29 deprecates its image decoders (warning on
    every call) in favour of torchcodec, which is not a dependency here.
    """
    from PIL import Image

    with Image.open(root / rel) as im:
        im = to_rgb8(im)
        if size is not None and im.size != (size, size):
            im = im.resize((size, size), Image.BILINEAR, reducing_gap=3.0)
        return np.asarray(im, dtype=np.uint8)


def image_loader(root: str | Path):
    """Reader from a manifest ``image`` value to its full-size (H, W, 3) uint8 image: a row of the packed
    ``images.npy`` when the dataset is packed, else the file (see :func:`load_image`)."""
    root = Path(root)
    if is_packed(root):
        arr = open_packed(root)
        return lambda image: arr[int(image)]
    return lambda image: load_image(root, str(image), None)


class ManifestDataset(torch.utils.data.Dataset):
    """A torch Dataset over one split of a manifest folder.

    Items are ``(image, label)``: image a float tensor (3, H, W) in [0, 1], label a float scalar.
    Packed datasets read from the memory map; file datasets decode with PIL (see :func:`load_image`) and resize to
    ``size``.
    """

    def __init__(self, root: str | Path, split: str = "train", *, size: int | None = 64,
                 frame: pd.DataFrame | None = None) -> None:
        self.root = Path(root)
        full = read_manifest(self.root) if frame is None else frame
        self.frame = select_split(full, split).reset_index(drop=True)
        self.size = size
        self.packed = open_packed(self.root) if is_packed(self.root) else None
        self.labels = torch.tensor(self.frame["label"].to_numpy(), dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.frame)

    def images_uint8(self, idx: np.ndarray) -> np.ndarray:
        """Images at positions ``idx`` of this split as (B, H, W, 3) uint8."""
        if self.packed is not None:
            return read_rows(self.packed, self.frame["image"].to_numpy()[idx])
        imgs = [load_image(self.root, self.frame["image"].iloc[i], self.size) for i in idx]
        return np.stack(imgs) if self.size is not None else imgs  # native sizes differ: a list

    def __getitem__(self, i: int):
        img = torch.from_numpy(self.images_uint8(np.array([i]))[0]).permute(2, 0, 1).float() / 255.0
        return img, self.labels[i]


def to_tensor(batch_uint8: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float32 in [0, 1]."""
    return _normalise(torch.from_numpy(np.ascontiguousarray(batch_uint8)))


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2).float().div_(255.0)


def host_batch(batch_uint8: np.ndarray, device: torch.device) -> torch.Tensor:
    """The first half of moving a (B, H, W, 3) uint8 batch to ``device`` (safe to run in a loader thread).

    For the CPU, the float32 (B, 3, H, W) batch in [0, 1] itself (:func:`to_tensor`). For CUDA, the uint8
    batch in page-locked memory: a quarter of float32's bytes cross the bus, asynchronously, and
    :func:`on_device` converts them on the GPU.
    """
    if device.type == "cuda":
        return torch.from_numpy(np.ascontiguousarray(batch_uint8)).pin_memory()
    return to_tensor(batch_uint8)


def on_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The second half: ``x`` from :func:`host_batch` on ``device`` as float32 (B, 3, H, W) in [0, 1]."""
    x = x.to(device, non_blocking=True)
    return _normalise(x) if x.dtype == torch.uint8 else x


def prefetch(batches, load: Callable, workers: int):
    """Yield ``load(b)`` for each batch in order; with workers > 0, threads load the next batches ahead.

    Gathering a batch from a large memory map and converting it to float overlaps with the
    optimisation or inference step this way; order is kept, so results do not depend on ``workers``.
    """
    if workers <= 0:
        yield from (load(b) for b in batches)
        return
    it = iter(batches)
    with ThreadPoolExecutor(workers) as ex:
        queue = deque(ex.submit(load, b) for b in itertools.islice(it, 2 * workers))
        while queue:
            fut = queue.popleft()
            nxt = next(it, None)
            if nxt is not None:
                queue.append(ex.submit(load, nxt))
            yield fut.result()
