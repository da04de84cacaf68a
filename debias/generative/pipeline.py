"""``generate``: new training faces from a generative model, drawn toward the rare regions of a DB-VAE's latent,
written as a dataset folder that ``debias train --extra`` adds to a training set, with their quality measured.

The folder holds manifest.csv (split train, label 1, ``generated`` true, ``source`` the generator, ``log_rarity``
where a latent run weighed the faces, and skin tone estimated from pixels, ITA, marked ``_est``), images.npy,
config.json (what made it), quality.json and gallery.png.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from debias.config import GenerateConfig, to_json
from debias.data.manifest import GENERATED, ManifestDataset, ManifestError, generated_mask, read_manifest
from debias.errors import DebiasError
from debias.files import exclusive, prepare_dataset_dir, write_csv, write_json
from debias.generative import dcgan, quality
from debias.generative.decoder import decoder_samples
from debias.generative.gallery import write_gallery
from debias.generative.rarity import LatentModel, draw_by_rarity, load_latent
from debias.models.run import resolve_device

Log = Callable[[str], None]
RARE_QUANTILE = 0.9  # a face is in a "rare region" when its log-rarity exceeds this quantile of the training faces'


@dataclass
class GenerateResult:
    """What ``generate`` wrote: the folder, its manifest, the quality measures and the gallery's path."""

    out: Path
    manifest: pd.DataFrame
    quality: dict
    gallery: Path


@dataclass
class _Faces:
    """The real faces of a dataset that generation reads: training faces (what the generator learns) and held-out
    ones (val and test, what quality is measured against)."""

    train: np.ndarray  # (N, S, S, 3) uint8
    train_frame: pd.DataFrame
    held_out: np.ndarray  # (M, S, S, 3) uint8


def generate(data: str | Path, cfg: GenerateConfig, out: str | Path, *, overwrite: bool = False,
             progress: Callable | None = None, log: Log | None = None) -> GenerateResult:
    """Train ``cfg.generator`` on the training faces of ``data`` and write ``cfg.n`` new faces to ``out``.

    Parameters
    ----------
    data : dataset folder (manifest.csv, images of 64 x 64 for the DCGAN).
    cfg : GenerateConfig.
    out : the new dataset folder (refused if it holds a dataset, unless ``overwrite``).
    progress : called as progress(n, info=..., total=..., description=...) for a progress bar.
    log : called with one line per notable event.

    Returns
    -------
    GenerateResult. Raises DebiasError for unusable input (no training faces, sizes that do not fit, a run that is
    not a DB-VAE).
    """
    data, out, log = Path(data), Path(out), log or (lambda msg: None)
    if out.resolve() == data.resolve():
        raise DebiasError(f"`out` {out} is the dataset the faces are generated from; choose a new folder.")
    device = resolve_device(cfg.device)
    faces = _real_faces(data, cfg)
    latent = load_latent(cfg.latent_run, device) if cfg.latent_run else None
    _check_sizes(faces, cfg, latent, data)
    if cfg.generator == "decoder":  # it draws around the faces the run's saved weights name
        from debias.models.run import check_trained_on

        check_trained_on(latent.path, data)
    prepare_dataset_dir(out, overwrite=overwrite)
    with exclusive(out, "dataset"):
        t0 = time.perf_counter()
        torch.manual_seed(cfg.seed)
        mu_train, logvar_train = latent.encode(faces.train) if latent else (None, None)
        if cfg.generator == "dcgan":
            images, log_rarity, made = _from_dcgan(faces, cfg, latent, mu_train, device, progress, log)
        else:
            images, log_rarity, made = _from_decoder(faces, cfg, latent, mu_train, logvar_train, log)
        log(f"measuring quality against {len(faces.held_out):,} held-out real faces, estimating skin tone (ITA)")
        q = _measure(faces, images, latent, mu_train, log_rarity, cfg)
        made = {**made, "seconds": time.perf_counter() - t0, "n_train_faces": len(faces.train)}
        return _write(out, data, cfg, images, log_rarity, q, made, _darker_share(faces.train))


def _real_faces(data: Path, cfg: GenerateConfig) -> _Faces:
    """The real training and held-out faces of ``data`` (rows marked generated left out)."""
    m = read_manifest(data)
    real = m[~generated_mask(m)]
    ds = ManifestDataset(data, "all", frame=real)
    face = (ds.frame["label"] == 1).to_numpy()
    train_pos = np.flatnonzero(face & (ds.frame["split"] == "train").to_numpy())
    held_pos = np.flatnonzero(face & (ds.frame["split"] != "train").to_numpy())
    if len(train_pos) < cfg.batch_size:
        raise ManifestError(f"{data} has {len(train_pos)} real training faces (label 1, split train); a generator "
                            f"needs at least `batch_size`={cfg.batch_size} to learn from.")
    if cfg.max_train and len(train_pos) > cfg.max_train:
        train_pos = np.sort(np.random.default_rng(cfg.seed).choice(train_pos, cfg.max_train, replace=False))
    if len(held_pos) < 2 * cfg.k + 2:
        raise ManifestError(f"{data} has {len(held_pos)} real faces outside its train split; the quality measures "
                            f"compare generated faces with at least {2 * cfg.k + 2} held-out (val or test) faces.")
    if len(held_pos) > cfg.n_quality:
        held_pos = np.sort(np.random.default_rng([cfg.seed, 1]).choice(held_pos, cfg.n_quality, replace=False))
    return _Faces(ds.images_uint8(train_pos), ds.frame.iloc[train_pos].reset_index(drop=True),
                  ds.images_uint8(held_pos))


def _check_sizes(faces: _Faces, cfg: GenerateConfig, latent: LatentModel | None, data: Path) -> None:
    side = faces.train.shape[1]
    if cfg.generator == "dcgan" and side != dcgan.SIZE:
        raise DebiasError(f"the DCGAN is built for {dcgan.SIZE} x {dcgan.SIZE} images and {data} holds {side} x "
                          f"{side}; pack the dataset at --size {dcgan.SIZE} (`debias data pack`).")
    if latent is not None and latent.size != side:
        raise DebiasError(f"`latent_run` {latent.path} reads {latent.size} x {latent.size} images and {data} holds "
                          f"{side} x {side}; give a run trained on this dataset.")


def _from_dcgan(faces: _Faces, cfg: GenerateConfig, latent: LatentModel | None, mu_train: np.ndarray | None,
                device: torch.device, progress: Callable | None,
                log: Log) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """Train the DCGAN, then draw ``cfg.n`` of its faces: by rarity from a pool with a latent run, else its first."""
    log(f"training a DCGAN (width {cfg.width}) on {len(faces.train):,} training faces for {cfg.epochs} epochs")
    gen, hist = dcgan.train_dcgan(faces.train, epochs=cfg.epochs, batch_size=cfg.batch_size, nz=cfg.nz,
                                  width=cfg.width, lr=cfg.lr, seed=cfg.seed, device=device, progress=progress)
    made = {"dcgan_d_loss": hist.d_loss, "dcgan_g_loss": hist.g_loss, "dcgan_epoch_s": hist.epoch_s}
    if latent is None:
        log("no latent run: the faces are drawn uniformly from the generator, not toward rare latent regions")
        return dcgan.sample(gen, cfg.n, seed=cfg.seed), None, {**made, "drawn": "uniform"}
    pool = dcgan.sample(gen, cfg.pool * cfg.n, seed=cfg.seed)
    log_w = latent.log_rarity(mu_train, latent.encode(pool)[0])
    pos, temper = draw_by_rarity(log_w, cfg.n, min_ess=cfg.min_ess, random_state=cfg.seed)
    log(f"drew {cfg.n:,} of {len(pool):,} generated faces by the rarity of their latent region"
        + (f" (weights tempered with exponent {temper:.3f} to keep the effective sample size at `min_ess`)"
           if temper < 1 else ""))
    rare = np.quantile(latent.log_rarity(mu_train, mu_train), RARE_QUANTILE)
    return pool[pos], log_w[pos], {**made, "drawn": "by rarity", "temper": temper,
                                   "pool_rare_share": float((log_w > rare).mean())}


def _from_decoder(faces: _Faces, cfg: GenerateConfig, latent: LatentModel, mu_train: np.ndarray,
                  logvar_train: np.ndarray, log: Log) -> tuple[np.ndarray, np.ndarray, dict]:
    """Decode ``cfg.n`` faces around training faces drawn by the run's saved sampling weights."""
    from debias.models.run import read_sampling_weights

    f, weights = read_sampling_weights(latent.path)
    images = faces.train_frame["image"].astype(str)
    known = images.isin(weights.index).to_numpy()
    if not known.any():
        raise DebiasError(f"{f} holds weights for none of the training faces of this dataset; give the run trained "
                          f"on it.")
    p = weights.loc[images[known].to_numpy()].to_numpy()
    log(f"decoding {cfg.n:,} faces around {int(known.sum()):,} training faces drawn by the weights in {f}")
    out, _ = decoder_samples(latent.model, mu_train[known], logvar_train[known], p / p.sum(), cfg.n,
                             random_state=cfg.seed)
    return out, latent.log_rarity(mu_train, latent.encode(out)[0]), {"drawn": "by the run's sampling weights"}


def _measure(faces: _Faces, images: np.ndarray, latent: LatentModel | None, mu_train: np.ndarray | None,
             log_rarity: np.ndarray | None, cfg: GenerateConfig) -> dict:
    """Quality against the held-out real faces, on the latent (with a run) or the real faces' pixel PCA."""
    fake = images
    if len(fake) > cfg.n_quality:
        fake = fake[np.sort(np.random.default_rng([cfg.seed, 2]).choice(len(fake), cfg.n_quality, replace=False))]
    if latent is not None:
        real_e, fake_e, embedding = latent.encode(faces.held_out)[0], latent.encode(fake)[0], "DB-VAE latent means"
    else:
        real_e, fake_e = quality.pixel_embedding(faces.held_out, fake, random_state=cfg.seed)
        embedding = "pixel PCA of the held-out real faces"
    q = {"embedding": embedding, **quality.quality(real_e, fake_e, k=cfg.k, random_state=cfg.seed)}
    if log_rarity is not None:
        rare = np.quantile(latent.log_rarity(mu_train, mu_train), RARE_QUANTILE)
        q["rare_share"] = float((log_rarity > rare).mean())  # training faces: 1 - RARE_QUANTILE
        q["rare_share_train"] = round(1.0 - RARE_QUANTILE, 6)
    return q


def _darker_share(images: np.ndarray) -> float:
    """The share of ``images`` whose skin tone estimated from pixels (ITA) is darker: the yardstick, measured the same
    way, for the generated faces' estimated share."""
    from debias.data.skin_tone import annotate

    return float((annotate(lambda pos: images[pos], len(images))["skin_group_est"] == "darker").mean())


def _write(out: Path, data: Path, cfg: GenerateConfig, images: np.ndarray, log_rarity: np.ndarray | None,
           q: dict, made: dict, train_darker: float) -> GenerateResult:
    """images.npy, manifest.csv (last: it marks the dataset complete), config.json, quality.json, gallery.png."""
    from debias.data.skin_tone import annotate
    from debias.files import atomic_write

    def save(t: Path) -> None:
        with open(t, "wb") as f:  # a file object: np.save would add .npy to a temporary name
            np.save(f, images)

    atomic_write(out / "images.npy", save)
    m = pd.DataFrame({"image": np.arange(len(images)), "label": 1, "split": "train", GENERATED: True,
                      "source": cfg.generator})
    if log_rarity is not None:
        m["log_rarity"] = log_rarity
    est = annotate(lambda pos: images[pos], len(images))
    for c in ("skin_group_est", "skin_tone_est", "skin_tone_confidence"):
        m[c] = est[c].to_numpy()
    q["skin_group_est_darker_share"] = float((est["skin_group_est"] == "darker").mean())
    q["skin_group_est_darker_share_train"] = train_darker
    gallery = write_gallery(images, log_rarity, out / "gallery.png", title=_title(cfg, log_rarity is not None))
    write_json(out / "quality.json", q)
    to_json(cfg, out / "config.json", data=str(data.resolve()), generated_by="debias.generative", **made)
    write_csv(m, out / "manifest.csv", float_format="%.6g")
    return GenerateResult(out, m, q, gallery)


def _title(cfg: GenerateConfig, by_rarity: bool) -> str:
    what = "DCGAN" if cfg.generator == "dcgan" else "DB-VAE decoder"
    if not by_rarity:
        return f"faces generated by the {what}"
    return f"faces generated by the {what}, one row per band of latent rarity (top: most common region)"


__all__ = ["generate", "GenerateResult"]
