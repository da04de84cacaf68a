"""The training set as ``fit`` reads it: the train split (optionally subsampled), its faces and non-faces, the
validation split, and readers from positions to uint8 images."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from debias.config import TrainConfig
from debias.data.manifest import ManifestDataset, ManifestError, is_packed, read_manifest
from debias.errors import DebiasError

DIAGNOSTIC_COLUMNS = ("skin_group", "pose", "gender")
NOT_PACKED = ("{root} holds image files, not a packed images.npy. Training reads the packed array; run "
              "`debias data pack {root}` first.")


class TrainingError(DebiasError):
    """Training cannot go on (for example a non-finite loss); the last good checkpoint is kept."""


@dataclasses.dataclass
class TrainSet:
    """The training split (optionally subsampled), its validation split and their image readers."""

    ds: ManifestDataset
    val: ManifestDataset | None
    images: Callable
    val_images: Callable | None
    labels: np.ndarray  # (n,) float32 0/1
    face_pos: np.ndarray  # positions of faces in ds
    nonface_pos: np.ndarray
    size: int

    @property
    def face_frame(self) -> pd.DataFrame:
        return self.ds.frame.iloc[self.face_pos]

    def n_batches(self, batch_size: int) -> int:
        """Optimisation steps in an epoch: whole batches of the training split (at least one)."""
        return max(1, len(self.ds) // batch_size)


def load_train_set(data: Path, cfg: TrainConfig) -> TrainSet:
    """The training set exactly as ``fit`` reads it for ``cfg`` (its ``max_train`` subsample, faces and non-faces,
    the validation split): for diagnostics that need the faces a run trained on, in the order of its weights."""
    if not is_packed(data):
        read_manifest(data, check_files=False)  # a folder with no manifest is told how to make one, not to pack it
        raise ManifestError(NOT_PACKED.format(root=data))
    manifest = read_manifest(data)
    ds = ManifestDataset(data, "train", frame=manifest)
    if cfg.max_train and len(ds) > cfg.max_train:
        keep = np.sort(np.random.default_rng(cfg.seed).choice(len(ds), cfg.max_train, replace=False))
        ds.frame = ds.frame.iloc[keep].reset_index(drop=True)
        ds.labels = ds.labels[keep]
    val = ManifestDataset(data, "val", frame=manifest) if (manifest["split"] == "val").any() else None
    labels = ds.frame["label"].to_numpy().astype(np.float32)
    if not (labels == 1).any():
        raise ManifestError(f"the train split of {data} has no faces (label 1); nothing to learn or debias.")
    return TrainSet(ds, val, image_reader(ds), image_reader(val) if val is not None else None, labels,
                     np.flatnonzero(labels == 1), np.flatnonzero(labels == 0), ds.packed.shape[1])


def image_reader(ds: ManifestDataset) -> Callable[[np.ndarray], np.ndarray]:
    """Reader from split positions to (B, H, W, 3) uint8.

    A split that fits in 2 GiB is copied into memory once; larger ones are read from the memory map
    batch by batch, so peak memory stays near one batch plus the page cache.
    """
    n, shape = len(ds), ds.packed.shape[1:]
    if n * int(np.prod(shape)) <= 2 * 2**30:
        arr = ds.images_uint8(np.arange(n))
        return lambda pos: arr[pos]
    return ds.images_uint8
