"""The training set as ``fit`` reads it: the train split (optionally subsampled), its faces and non-faces, the
validation split, and readers from positions to uint8 images."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from debias.config import TrainConfig
from debias.data.manifest import ManifestDataset, ManifestError, generated_mask, is_packed, read_manifest
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
    extra: np.ndarray | None = None  # (m, H, W, 3) uint8 generated faces (`extra`), at positions len(ds)..len(ds)+m-1

    @property
    def face_frame(self) -> pd.DataFrame:
        return self.ds.frame.iloc[self.face_pos]

    @property
    def batch_labels(self) -> np.ndarray:
        """Labels of every position a batch may hold: the training split's, then 1 for each generated face."""
        if self.extra is None:
            return self.labels
        return np.concatenate([self.labels, np.ones(len(self.extra), np.float32)])

    def batch_images(self, pos: np.ndarray) -> np.ndarray:
        """(B, H, W, 3) uint8 images of batch positions: the training split's, and generated faces past its end."""
        pos = np.asarray(pos)
        gen = pos >= len(self.ds)
        if self.extra is None or not gen.any():
            return self.images(pos)
        out = np.empty((len(pos),) + self.extra.shape[1:], np.uint8)
        if (~gen).any():
            out[~gen] = self.images(pos[~gen])
        out[gen] = self.extra[pos[gen] - len(self.ds)]
        return out

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
    if generated_mask(manifest).any():
        raise ManifestError(f"{data / 'manifest.csv'} holds generated faces (`generated` true, line "
                            f"{int(np.flatnonzero(generated_mask(manifest))[0]) + 2}); train on a real dataset and add "
                            f"generated faces with `extra` and `extra_share`.")
    ds = ManifestDataset(data, "train", frame=manifest)
    if cfg.max_train and len(ds) > cfg.max_train:
        keep = np.sort(np.random.default_rng(cfg.seed).choice(len(ds), cfg.max_train, replace=False))
        ds.frame = ds.frame.iloc[keep].reset_index(drop=True)
        ds.labels = ds.labels[keep]
    val = ManifestDataset(data, "val", frame=manifest) if (manifest["split"] == "val").any() else None
    labels = ds.frame["label"].to_numpy().astype(np.float32)
    if not (labels == 1).any():
        raise ManifestError(f"the train split of {data} has no faces (label 1); nothing to learn or debias.")
    extra = read_extra(Path(cfg.extra), ds.packed.shape[1:]) if cfg.extra else None
    return TrainSet(ds, val, image_reader(ds), image_reader(val) if val is not None else None, labels,
                    np.flatnonzero(labels == 1), np.flatnonzero(labels == 0), ds.packed.shape[1], extra)


def read_extra(root: Path, shape: tuple[int, ...]) -> np.ndarray:
    """The generated faces of the dataset folder ``root`` (``debias generate``) as (m, H, W, 3) uint8, checked: every
    row a generated face (``generated`` true, label 1, split train), packed, of the training images' ``shape``."""
    if not is_packed(root):
        read_manifest(root, check_files=False)  # a folder with no manifest is told how to make one
        raise TrainingError(f"`extra`: {root} holds no packed images.npy; give a folder written by `debias generate`.")
    m = read_manifest(root)
    bad = ~generated_mask(m) | (m["label"] != 1).to_numpy() | (m["split"] != "train").to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise TrainingError(f"`extra`: {root / 'manifest.csv'}, line {i + 2}: not a generated training face (every row "
                            f"of an `extra` folder has generated true, label 1 and split train); give a folder "
                            f"written by `debias generate`.")
    ds = ManifestDataset(root, "train", frame=m)
    if tuple(ds.packed.shape[1:]) != tuple(shape):
        raise TrainingError(f"`extra`: the images of {root} are {ds.packed.shape[1:]} and the training images "
                            f"{tuple(shape)}; generate from this dataset.")
    return ds.images_uint8(np.arange(len(ds)))


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
