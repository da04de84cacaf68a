"""The manifest format shared by every dataset, synthetic or real, and a torch Dataset over it.

A dataset is a folder with ``manifest.csv``: one row per image, with at least ``image`` (a path
relative to the folder, or an integer index into ``images.npy``), ``label`` (1 face, 0 non-face)
and ``split`` (train / val / test), plus optional attribute columns (``skin_tone``,
``skin_group``, ``yaw``, ``pose``, ``gender``, ...; empty for non-faces). Images are either files or
one packed, memory-mapped ``images.npy`` array of shape (N, H, W, 3), uint8.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

REQUIRED_COLUMNS = ("image", "label", "split")
SPLITS = ("train", "val", "test")
ATTRIBUTE_COLUMNS = ("skin_tone", "skin_group", "yaw", "pose", "gender")
PACKED = "images.npy"

MISSING_MANIFEST = ("No manifest.csv in {root}. A dataset folder needs manifest.csv with columns "
                    "image,label,split; create one with `debias data synth` or `debias data import`.")
MISSING_COLUMN = ("manifest {path} has no column {col!r} (columns: {cols}). Required columns are "
                  "image, label and split.")
BAD_LABEL = ("manifest {path}, row {row}: label {value!r} is not 0 or 1. Use 1 for a face and 0 for "
             "a non-face.")
BAD_SPLIT = "manifest {path}, row {row}: split {value!r} is not one of train, val, test."
MISSING_IMAGE = ("manifest {path}, row {row}: image file {value!r} does not exist under {root}. Paths "
                 "are relative to the dataset folder.")
BAD_INDEX = ("manifest {path}, row {row}: image index {value!r} is outside the packed array "
             "images.npy of {n} images.")


def _v(x):
    """A cell value as the user wrote it (numpy scalars print as np.int64(2) otherwise)."""
    return x.item() if hasattr(x, "item") else x


class ManifestError(ValueError):
    """A dataset folder or its manifest is malformed; the message names the row and the fix."""


def is_packed(root: str | Path) -> bool:
    return (Path(root) / PACKED).exists()


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
    df = pd.read_csv(path, low_memory=False)
    for col in REQUIRED_COLUMNS:
        if col not in df.columns:
            raise ManifestError(MISSING_COLUMN.format(path=path, col=col, cols=", ".join(df.columns)))
    label = pd.to_numeric(df["label"], errors="coerce")
    bad = ~label.isin([0, 1])
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise ManifestError(BAD_LABEL.format(path=path, row=i, value=_v(df["label"].iloc[i])))
    df["label"] = label.astype(int)
    bad = ~df["split"].isin(SPLITS)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise ManifestError(BAD_SPLIT.format(path=path, row=i, value=_v(df["split"].iloc[i])))
    if check_files:
        if is_packed(root):
            n = np.load(root / PACKED, mmap_mode="r").shape[0]
            idx = pd.to_numeric(df["image"], errors="coerce")
            bad = idx.isna() | (idx < 0) | (idx >= n) | (idx % 1 != 0)
            if bad.any():
                i = int(np.flatnonzero(bad.to_numpy())[0])
                raise ManifestError(BAD_INDEX.format(path=path, row=i, value=_v(df["image"].iloc[i]), n=n))
            df["image"] = idx.astype(int)
        else:
            exists = np.array([(root / str(p)).is_file() for p in df["image"]])
            if not exists.all():
                i = int(np.flatnonzero(~exists)[0])
                raise ManifestError(MISSING_IMAGE.format(path=path, row=i, value=_v(df["image"].iloc[i]),
                                                         root=root))
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


def read_rows(packed: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Rows of a packed (N, H, W, 3) array, in the order asked; read in sorted order, which is
    sequential on a memory map."""
    rows = np.asarray(rows, dtype=np.int64)
    order = np.argsort(rows)
    out = np.empty((len(rows),) + packed.shape[1:], np.uint8)
    out[order] = packed[rows[order]]
    return out


def load_image(root: Path, rel: str, size: int | None) -> np.ndarray:
    """Decode one image file to (H, W, 3) uint8 RGB, optionally resized to size x size.

    PIL rather than torchvision.io: torchvision 0.29 deprecates its image decoders (warning on
    every call) in favour of torchcodec, which is not a dependency here.
    """
    from PIL import Image

    with Image.open(root / rel) as im:
        im = im.convert("RGB")
        if size is not None and im.size != (size, size):
            im = im.resize((size, size), Image.BILINEAR, reducing_gap=3.0)
        return np.asarray(im, dtype=np.uint8)


class ManifestDataset(torch.utils.data.Dataset):
    """A torch Dataset over one split of a manifest folder.

    Items are ``(image, label)``: image a float tensor (3, H, W) in [0, 1], label a float scalar.
    Packed datasets read from the memory map; file datasets decode with torchvision and resize to
    ``size``.
    """

    def __init__(self, root: str | Path, split: str = "train", *, size: int | None = 64,
                 frame: pd.DataFrame | None = None) -> None:
        self.root = Path(root)
        full = read_manifest(self.root) if frame is None else frame
        self.frame = select_split(full, split).reset_index(drop=True)
        self.size = size
        self.packed = np.load(self.root / PACKED, mmap_mode="r") if is_packed(self.root) else None
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
    return torch.from_numpy(np.ascontiguousarray(batch_uint8)).permute(0, 3, 1, 2).float().div_(255.0)
