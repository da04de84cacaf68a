"""The latent that slice discovery places faces in: a DB-VAE run the user names, or one fitted on the dataset's
training faces and cached beside its manifest.

:mod:`debias.audit.discover` does the statistics; this module reads images, trains and encodes.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from debias.audit.discover import DiscoverConfig, Discovery, LatentSpace, discover
from debias.data.manifest import ManifestDataset, read_manifest
from debias.errors import DebiasError
from debias.files import DATASET_CACHE as CACHE  # beside manifest.csv: the fitted latent, one per data version
IMAGES_SEEN = 20_000  # training images the fitted latent sees, whatever the size of the set
NO_IMAGES = ("slice discovery reads the audited images, and {data} is no dataset folder with manifest.csv; audit "
             "the dataset the predictions are for (debias audit DATA --predictions FILE, or Audit.from_models(DATA, ...)).")
NO_DATA = ("slice discovery reads the audited images, and this audit was built from predictions alone; audit with "
           "the dataset they are for: Audit.from_models(DATA, ...) or debias audit DATA --predictions FILE.")
NOT_WRITABLE = ("cannot cache a fitted latent in {cache} ({err}); train one yourself with `debias train {data} "
                "--method vae-uniform --out RUN` and give it with --latent-run RUN.")


NO_TRAIN = ("{data} has no training images to fit a latent on; give a DB-VAE run of the faces the model was trained "
            "on with --latent-run RUN (`debias train DATA --method vae-uniform --out RUN` trains one).")
NO_TRAIN_FACES = ("{data} has no training faces to measure rarity among, nor has {where}; give the dataset the latent "
                  "was trained on, or a latent run whose training data is still at the path its config.json records.")


def _train_faces(data: str | Path) -> np.ndarray:
    m = read_manifest(data, check_files=False)
    return np.flatnonzero(((m["split"] == "train") & (m["label"] == 1)).to_numpy())


def check_fittable(data: str | Path) -> int:
    """The number of training images of ``data``; a DebiasError when there are none to fit a latent on."""
    m = read_manifest(data, check_files=False)
    n_train = int((m["split"] == "train").sum())
    if n_train == 0:
        raise DebiasError(NO_TRAIN.format(data=data))
    return n_train


def training_source(data: str | Path, latent_run: str | Path | None = None) -> tuple[Path, np.ndarray]:
    """The dataset whose training faces rarity is measured among, and their manifest rows: ``data`` when it has
    training faces; else, with a latent run, the dataset that run was trained on (its config.json's ``data``). Raises
    DebiasError when neither has."""
    rows = _train_faces(data)
    if len(rows) >= 2:
        return Path(data), rows
    if latent_run is None:
        raise DebiasError(NO_TRAIN.format(data=data))
    from debias.models.run import latent_run as stage

    cfg = Path(stage(latent_run)) / "config.json"
    try:
        recorded = json.loads(cfg.read_text()).get("data")
    except (OSError, ValueError):
        recorded = None
    rows = _train_faces(recorded) if recorded and (Path(recorded) / "manifest.csv").exists() else []
    if len(rows) >= 2:
        return Path(recorded), rows
    where = f"the dataset {cfg} names ({recorded})" if recorded else f"{latent_run}, whose config.json names none"
    raise DebiasError(NO_TRAIN_FACES.format(data=data, where=where))


def data_version(data: str | Path) -> str:
    """12 hex digits that change when the manifest or the packed images of ``data`` change (the images by size and
    modification time: a re-rendered set can keep its manifest byte for byte)."""
    import hashlib

    h = hashlib.sha256((Path(data) / "manifest.csv").read_bytes())
    packed = Path(data) / "images.npy"
    if packed.exists():
        st = packed.stat()
        h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:12]


def fitted_latent(data: str | Path, *, seed: int = 0, device: str = "auto", progress: Callable | None = None,
                  log: Callable[[str], None] = lambda s: None) -> Path:
    """The run folder of a DB-VAE fitted (``vae-uniform``) on the training faces of ``data``, trained on first use
    and cached in ``data/.debias/latent-<data version>-<seed>`` (:func:`data_version`). Returns the run folder."""
    from debias.config import TrainConfig
    from debias.train import fit
    from debias.train.trainset import TrainingError

    data = Path(data)
    cache = data / CACHE / f"latent-{data_version(data)}-{seed}"
    if (cache / "model.pt").exists():
        return cache
    n_train = check_fittable(data)
    epochs = int(np.clip(round(IMAGES_SEEN / n_train), 1, 30))
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DebiasError(NOT_WRITABLE.format(cache=cache.parent, err=e.strerror or e, data=data)) from None
    log(f"fitting a latent of the {n_train:,} training images of {data} ({epochs} epoch(s)); cached in {cache}")
    cfg = TrainConfig(method="vae-uniform", epochs=epochs, seed=seed, device=device)
    try:
        fit(data, cfg, cache, overwrite=True, progress=progress)
    except TrainingError as e:
        raise DebiasError(str(e)) from None
    return cache


def encode_rows(run: str | Path, parts: Sequence[tuple[str | Path, np.ndarray]], *,
                device: str = "cpu") -> list[np.ndarray]:
    """Encoder means (len(rows), latent) of the manifest rows of each ``(data, rows)`` in ``parts``, under the DB-VAE
    of ``run`` (loaded once)."""
    from debias.latent import NOT_A_DBVAE
    from debias.models.dbvae import DBVAE
    from debias.models.run import check_input_side, latent_run, load_run, predict_scores, resolve_device

    run = latent_run(run)
    dev = resolve_device(device)
    model, arch = load_run(run, dev)
    if not isinstance(model, DBVAE):
        raise DebiasError(NOT_A_DBVAE.format(run=run, kind=arch["kind"]))
    out = []
    for data, rows in parts:
        ds = ManifestDataset(data, "all", size=arch["size"])  # image files are resized to it; packed ones must match
        pos = np.asarray(rows, int)
        if len(pos):
            check_input_side(ds.images_uint8(pos[:1]).shape[1], arch, run, data)
        out.append(predict_scores(model, lambda p: ds.images_uint8(pos[p]), len(pos), dev, with_latent=True)[1])
    return out


def discover_in_audit(pred: pd.DataFrame, thresholds: dict, data: str | Path | None, cfg: DiscoverConfig, *,
                      latent_run: str | Path | None = None, device: str = "auto", progress: Callable | None = None,
                      log: Callable[[str], None] = lambda s: None) -> Discovery:
    """Discovery on an audit's predictions: its faces placed in the latent of ``latent_run`` (default: one fitted
    on the training faces of ``data``), sliced per model, each given a rarity among the training faces."""
    if data is None or not (Path(data) / "manifest.csv").exists():
        raise DebiasError(NO_DATA if data is None else NO_IMAGES.format(data=data))
    run = Path(latent_run) if latent_run is not None else fitted_latent(data, seed=cfg.seed, device=device,
                                                                       progress=progress, log=log)
    train_data, train_rows = training_source(data, run)
    faces = pred[(pred["y_true"] == 1) & pred["y_score"].notna()].reset_index(drop=True)
    if faces.empty:
        raise DebiasError(f"slice discovery needs audited faces with scores, and the audit of {data} has none.")
    face_rows = faces["row"].astype(int).to_numpy()
    unique, inverse = np.unique(face_rows, return_inverse=True)
    with torch.no_grad():
        z_train, z = encode_rows(run, [(train_data, train_rows), (data, unique)], device=device)
    z = z[inverse]
    space = LatentSpace(z_train, n_dims=cfg.n_dims)
    return discover(faces, z, space, thresholds, cfg,
                    source=_source(run, latent_run is None, len(train_rows), train_data))


def _source(run: Path, fitted: bool, n_train: int, train_data: Path) -> str:
    """Where the latent came from and which faces rarity is measured among, as the report and the console say it."""
    if not fitted:
        return f"the DB-VAE of {run}, rarity among the {n_train:,} training faces of {train_data}"
    try:
        epochs = json.loads((Path(run) / "config.json").read_text()).get("epochs")
    except (OSError, ValueError):
        epochs = None
    return f"a DB-VAE fitted on the {n_train:,} training faces" + (f" for {epochs} epochs" if epochs else "")


__all__ = ["training_source", "check_fittable", "data_version", "discover_in_audit", "encode_rows", "fitted_latent"]
