"""Training: ``train_one_epoch``, ``evaluate``, ``fit``; checkpoints, resume, DDP and export.

One method per ``TrainConfig.method``:

- ``standard``: classifier, uniform sampling (a permutation of the training split each epoch).
- ``dbvae``: DB-VAE, faces resampled each epoch from the latent histograms (debias/sampling.py); with
  ``latent_dro``, Group DRO over clusters of its latent means, or (``latent_groups='rarity'``) over strata of
  equal mass under its latent weights, instead (no labels).
- ``vae-uniform``: DB-VAE loss, uniform face sampling (ablation: the VAE loss without resampling).
- ``balanced``: classifier, faces sampled with p ~ n_g^-balance_power over the groups of ``balance_by``
  (labelled reference; power 1 gives every group equal mass, 0.5 is a tempered balance).
- ``group-dro``: Group DRO (Sagawa et al. 2020): group-balanced sampling plus online group weights on
  the loss; non-faces form one more group.
- ``jtt``: Just Train Twice: a classifier trained ``jtt_epochs``, its training errors upweighted by
  ``jtt_lambda`` for a second classifier trained from scratch.
- ``loss-resample``: classifier, faces resampled each epoch in proportion to their loss under the
  current model (no labels beyond face / non-face; debias/sampling.py ``loss_weights``).

Determinism: every epoch reseeds torch and the batch plan from (seed, epoch), so a run resumed from
the checkpoint of epoch e repeats epochs e+1... exactly as an uninterrupted run would. Augmentation
(geometry only, never colour: debias/data/augment.py) draws from its own generator seeded the same way.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from debias.config import TrainConfig, to_json
from debias.data.augment import AugmentConfig, augment, mix_within
from debias.errors import DebiasError
from debias.files import atomic_write, check_out_dir, exclusive
from debias.data.manifest import (ManifestDataset, ManifestError, host_batch, is_packed, on_device, prefetch,
                                  read_manifest)
from debias.models.dbvae import DBVAE, dbvae_loss, standardise
from debias.models.run import (RunError, load_run, load_weights, model_from_arch, predict_scores, read_sampling_weights,
                               resolve_device)
from debias.sampling import (BatchPlan, GroupDRO, cap_weights, cluster_balanced_weights, ess_fraction,
                             fit_latent_clusters, gmm_weights, group_adjustment, group_balanced_weights, group_keys,
                             jtt_weights, latent_clusters, latent_weights, loss_weights, mass_by_group, rarity_margins,
                             rarity_strata)

DIAGNOSTIC_COLUMNS = ("skin_group", "pose", "gender")
NOT_PACKED = ("{root} holds image files, not a packed images.npy. Training reads the packed array; run "
              "`debias data pack {root}` first.")
VAE_METHODS = ("dbvae", "vae-uniform")

Callback = Callable[..., None]


class TrainingError(DebiasError):
    """Training cannot go on (for example a non-finite loss); the last good checkpoint is kept."""


def build_model(cfg: TrainConfig, size: int) -> nn.Module:
    return model_from_arch(_arch(cfg, size))


def _arch(cfg: TrainConfig, size: int) -> dict:
    kind = "dbvae" if cfg.method in VAE_METHODS else "classifier"
    return {"kind": kind, "arch": cfg.arch, "width": cfg.width, "size": size, "latent_dim": cfg.latent_dim,
            "input_norm": cfg.input_norm}


def _save_atomic(obj, path: Path) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


# ------------------------------------------------------------------------------------------------
# one step, one epoch, evaluation
# ------------------------------------------------------------------------------------------------

class _Step(nn.Module):
    """Forward pass plus loss, as one module so DDP and torch.compile see the whole step.

    Returns (per-image loss (B,), per-image classification loss (B,) or None where it is the per-image loss (a
    plain classifier), mean BCE, mean reconstruction, mean KL). The loss optimised is the mean of the first, or for
    Group DRO the DRO-weighted sum of the classification losses plus the batch mean of the rest (the DB-VAE's
    reconstruction and KL terms).
    """

    def __init__(self, model: nn.Module, cfg: TrainConfig) -> None:
        super().__init__()
        self.model, self.cfg = model, cfg
        self.vae = isinstance(model, DBVAE)
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.precision)

    def forward(self, x: torch.Tensor, y: torch.Tensor, margin: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """``margin`` (B,), optional: lowered from each image's logit before its loss (``cfg.margin``)."""
        if self.cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        # the network runs in the autocast dtype; every loss is computed in float32 on float32 outputs
        amp = torch.autocast(x.device.type, dtype=self.amp_dtype) if self.amp_dtype else contextlib.nullcontext()
        with amp:
            if self.vae:
                logit, mu, logvar = self.model.encode(x)
                x_hat = self.model.decode(DBVAE.reparameterize(mu, logvar))
            else:
                logit = self.model(x)
        if self.amp_dtype is not None:
            logit = logit.float()
            if self.vae:
                mu, logvar, x_hat = mu.float(), logvar.float(), x_hat.float()
        if margin is not None:
            logit = logit - margin
        if self.vae:
            if self.cfg.rec_region == "center":  # the central half, where a face crop has the face
                h, w = x.shape[-2:]
                x, x_hat = (t[..., h // 4:h - h // 4, w // 4:w - w // 4] for t in (x, x_hat))
            if self.cfg.rec_target == "standardised":  # brightness and contrast of the whole region left out
                x, x_hat = standardise(x), standardise(x_hat)
            p = dbvae_loss(x, x_hat, y, logit, mu, logvar, beta=self.cfg.beta, c_rec=self.cfg.c_rec,
                           rec_norm=self.cfg.rec_norm)
            return p.per_sample, p.per_sample_bce, p.bce, p.rec, p.kl
        bce = F.binary_cross_entropy_with_logits(logit, y, reduction="none")  # (B,)
        zero = torch.zeros((), device=x.device)
        return bce, None, bce.mean(), zero, zero


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam, or AdamW decaying only the conv and linear weights when ``cfg.weight_decay`` > 0.

    Biases and normalisation parameters (tensors of fewer than 2 dimensions) are not decayed, as in nanoGPT.
    """
    if not cfg.weight_decay:
        return torch.optim.Adam(model.parameters(), lr=cfg.lr)
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr)


def lr_schedule(cfg: TrainConfig, epoch: int, n_batches: int) -> Callable[[int], float] | None:
    """The learning rate of each step of ``epoch`` (for ``train_one_epoch``), or None for the constant rate.

    Cosine: step t of T gets ``lr * (1 + cos(pi t / T)) / 2``. A pure function of the global step, as in nanoGPT,
    so a resumed run takes exactly the rates of an uninterrupted one and the checkpoint holds no scheduler state.
    JTT anneals over its final model's epochs; its identification model keeps the constant rate.
    """
    start = cfg.jtt_epochs if cfg.method == "jtt" else 0
    if cfg.lr_schedule == "constant" or epoch < start:
        return None
    done, total = (epoch - start) * n_batches, cfg.epochs * n_batches
    return lambda k: cfg.lr * 0.5 * (1.0 + math.cos(math.pi * (done + k) / total))


def train_one_epoch(step: nn.Module, opt: torch.optim.Optimizer, batches, images: Callable, labels: np.ndarray,
                    device: torch.device, *, rank: int = 0, world: int = 1, workers: int = 0,
                    aug: torch.Generator | None = None, groups: np.ndarray | None = None,
                    dro: GroupDRO | None = None, scaler: torch.amp.GradScaler | None = None,
                    progress: Callback | None = None, read_every: int | None = None,
                    aug_cfg: AugmentConfig = AugmentConfig(),
                    on_step: Callable[[int], bool | None] | None = None,
                    lr: Callable[[int], float] | None = None,
                    margins: np.ndarray | None = None,
                    mix: tuple[float, np.random.Generator] | None = None,
                    sam_rho: float = 0.0) -> dict[str, float]:
    """Run one epoch of optimisation over ``batches`` (arrays of training positions).

    ``workers`` threads prefetch batches. ``aug``, a generator, turns on geometric augmentation with the
    ranges of ``aug_cfg``.
    ``dro`` with ``groups`` (group index of every training position) weights the loss by Group DRO.
    ``scaler`` scales the loss for float16 autocast (CUDA), so small gradients do not underflow.
    ``read_every`` steps, the loss parts are read back, checked for non-finite values and shown (default: every
    step on the CPU, every 25 on CUDA). ``on_step(k)`` runs after the k-th optimisation step of the epoch;
    if it returns true, the epoch ends there.
    ``margins`` (a logit margin for every training position) are lowered from the logits before the loss.
    ``mix`` = (alpha, generator) mixes every image with another of its group in the batch (``groups``, else its
    label) after augmentation (``TrainConfig.mixup``).
    ``sam_rho`` > 0 takes each step's gradient by sharpness-aware minimisation (``_sam_second_pass``); not with
    ``scaler``.
    Returns the mean of each loss part over the epoch.
    """
    if sam_rho and scaler is not None:
        raise ValueError("sharpness-aware minimisation (`sam_rho`) does not undo float16 loss scaling; use bf16 or fp32.")
    step.train()
    sums = np.zeros(4)
    n = 0
    # Reading a value back from a GPU waits for its queue to drain, so on CUDA the loss parts are summed on the
    # device and read every 25 steps; the CPU has no queue and reads each step.
    every = read_every or (1 if device.type == "cpu" else 25)
    window, pending = None, 0

    def flush():
        nonlocal sums, window, pending
        w = window.cpu().numpy()
        if not np.isfinite(w[0]):
            raise TrainingError(f"the loss became non-finite ({w[0]}) at step {n}" +
                                (f" or one of the {pending - 1} before it." if pending > 1 else "."))
        sums += w
        if progress:
            progress(pending, info=f"loss {w[0] / pending:.3f} bce {w[1] / pending:.3f} rec {w[2] / pending:.3f} "
                                   f"kl {w[3] / pending:.1f}")
        window, pending = None, 0

    def load(pos):
        pos = pos[rank::world]  # this rank's slice of the global batch
        return host_batch(images(pos), device), torch.from_numpy(labels[pos]), pos

    for x, y, pos in prefetch(batches, load, workers):
        x, y = on_device(x, device), y.to(device, non_blocking=True)
        if aug is not None:
            x = augment(x, aug, aug_cfg)
        if mix is not None:
            x = mix_within(x, (groups if groups is not None else labels)[pos], mix[1], mix[0])
        extra = (torch.from_numpy(margins[pos]).to(device, torch.float32),) if margins is not None else ()
        per_image, per_cls, *parts = step(x, y, *extra)
        w = None
        if dro is not None:
            # Group DRO weighs the classifier's risk: groups are compared, and weighted, by their classification
            # loss alone; the DB-VAE's reconstruction and KL terms (faces only) stay an unweighted batch mean, as
            # without DRO. Fed the whole per-image loss, DRO saw every face group as worse than the non-faces by its
            # reconstruction error, drained the non-faces' weight and ranked face groups by how hard they are to
            # reconstruct, not to detect.
            cls = per_image if per_cls is None else per_cls
            w = dro.sample_weights(cls.detach().double().cpu().numpy(), groups[pos])
        loss = _step_loss(per_image, per_cls, w)
        if lr is not None:
            for g in opt.param_groups:
                g["lr"] = lr(n)
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            if sam_rho:
                _sam_second_pass(step, opt, sam_rho, lambda: _step_loss(*step(x, y, *extra)[:2], w))
            opt.step()
        vals = torch.stack([loss.detach(), *(p.detach() for p in parts)]).double()
        window = vals if window is None else window + vals
        n += 1
        pending += 1
        if pending == every:
            flush()
        if on_step is not None and on_step(n):
            break
    if pending:
        flush()
    m = sums / max(n, 1)
    return {"loss": m[0], "bce": m[1], "rec": m[2], "kl": m[3]}


def _step_loss(per_image: torch.Tensor, per_cls: torch.Tensor | None, w: np.ndarray | None) -> torch.Tensor:
    """The loss a step optimises: the batch mean of the per-image loss, or with Group DRO weights ``w`` (B,) the
    weighted sum of the classification losses plus the batch mean of the rest (the DB-VAE's reconstruction and KL)."""
    if w is None:
        return per_image.mean()
    cls = per_image if per_cls is None else per_cls
    loss = (cls * torch.from_numpy(w).to(cls)).sum()
    if per_cls is not None:
        loss = loss + (per_image - per_cls).mean()
    return loss


def _sam_second_pass(step: nn.Module, opt: torch.optim.Optimizer, rho: float,
                     loss_at: Callable[[], torch.Tensor]) -> None:
    """Sharpness-aware minimisation (Foret et al. 2021), its second pass: with the batch's gradient g in ``.grad``,
    move the weights to w + rho g / |g|, replace ``.grad`` by the gradient of ``loss_at()`` there, and move them back,
    so that ``opt.step()`` updates w with the gradient of the perturbed weights.

    BatchNorm's running statistics are put back after the second forward pass, so each batch updates them once, at
    the unperturbed weights. Written here: torch has no SAM, and the usual third-party one (a wrapper optimizer)
    would not fit this loop's DRO weights, compiled step and loss scaling.
    """
    params = [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
    with torch.no_grad():
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params]))
        eps = [p.grad * (rho / (norm + 1e-12)) for p in params]
        for p, e in zip(params, eps):
            p.add_(e)
    norms = [m for m in step.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    kept = [[b.clone() for b in (m.running_mean, m.running_var, m.num_batches_tracked)] for m in norms]
    opt.zero_grad(set_to_none=True)
    loss_at().backward()
    with torch.no_grad():
        for p, e in zip(params, eps):
            p.sub_(e)
        for m, (mean, var, count) in zip(norms, kept):
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            m.num_batches_tracked.copy_(count)


def evaluate(model: nn.Module, ds: ManifestDataset, images: Callable, device: torch.device,
             groups: np.ndarray | None = None) -> dict[str, float]:
    """Validation accuracy at threshold 0.5, face recall per subgroup where attributes exist and, given ``groups``
    (a group code for every image of ``ds``), ``val_worst_group_loss``: the largest of the groups' mean
    cross-entropies."""
    s, _ = predict_scores(model, images, len(ds), device)
    frame = ds.frame
    y = frame["label"].to_numpy()
    pred = (s >= 0.5).astype(int)
    out = {"val_acc": float((pred == y).mean())}
    if groups is not None:
        out["val_worst_group_loss"] = worst_group_loss(s, y, groups)
    faces = y == 1
    if faces.any():
        out["val_recall"] = float(pred[faces].mean())
    for c in DIAGNOSTIC_COLUMNS:
        if c in frame.columns:
            g = pd.Series(pred[faces]).groupby(frame.loc[faces, c].astype(str).to_numpy()).mean()
            out.update({f"val_recall[{c}={k}]": float(v) for k, v in g.items()})
    return out


def worst_group_loss(s: np.ndarray, y: np.ndarray, groups: np.ndarray) -> float:
    """The largest mean binary cross-entropy of any group: scores ``s`` (probabilities), labels ``y``, group codes
    ``groups`` (non-negative ints; empty codes are skipped). Probabilities are clipped to [1e-7, 1 - 1e-7], so one
    image adds at most ~16.1 (the scores are float32 sigmoids, which reach 1.0 exactly from a logit of ~17)."""
    p = np.clip(np.asarray(s, dtype=np.float64), 1e-7, 1 - 1e-7)
    loss = -np.where(np.asarray(y) == 1, np.log(p), np.log1p(-p))
    n = np.bincount(groups)
    return float(np.max(np.bincount(groups, weights=loss)[n > 0] / n[n > 0]))


# ------------------------------------------------------------------------------------------------
# fit
# ------------------------------------------------------------------------------------------------

def _image_reader(ds: ManifestDataset) -> Callable[[np.ndarray], np.ndarray]:
    """Reader from split positions to (B, H, W, 3) uint8.

    A split that fits in 2 GiB is copied into memory once; larger ones are read from the memory map
    batch by batch, so peak memory stays near one batch plus the page cache.
    """
    n, shape = len(ds), ds.packed.shape[1:]
    if n * int(np.prod(shape)) <= 2 * 2**30:
        arr = ds.images_uint8(np.arange(n))
        return lambda pos: arr[pos]
    return ds.images_uint8


# torch.compile costs ~20-40 s per model on a cold cache (2-core CPU; the quick demo went from 66 s warm to
# 125 s cold) and then runs the lab CNN's step ~1.5x faster than eager (benchmarks/train_speed.py: 1.61x vs
# 1.04x a bare loop). At ~2,500 eager images/s that saves ~0.14 ms an image: compiling pays from roughly
# 300k images (epochs x training images). Shorter runs train eagerly.
COMPILE_MIN_IMAGES = 300_000
# a frozen DB-VAE whose kept weights would be read after more training images than this gets a note suggesting
# --freeze-after: the variant was chosen on 20,000-image sets, and on 100,000 images, read after the first epoch, its
# latent put 2.6% of the sampling mass on darker faces instead of 25-28% (benchmarks/debiasing.py, scale setting)
FREEZE_HINT_IMAGES = 30_000
# a labelled group with less than this share of the training faces is "rare" for the latent weights' mass note
RARE_SHARE = 0.10
RUN_FILES = ("config.json", "model.pt", "checkpoint.pt", "history.csv", "timing.csv", "sampling_weights.csv")


def fit(data: str | Path, cfg: TrainConfig, out: str | Path, *, resume: bool = False, overwrite: bool = False,
        rank: int = 0, world: int = 1, progress: Callback | None = None,
        log: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Train ``cfg.method`` on the ``train`` split of the dataset folder ``data``; write ``out``.

    Parameters
    ----------
    data : dataset folder with manifest.csv and a packed images.npy.
    cfg : TrainConfig.
    out : run folder: config.json, model.pt, history.csv, sampling_weights.csv, timing.csv, checkpoint.pt.
    resume : continue from ``out/checkpoint.pt`` (same config) instead of starting over.
    overwrite : replace a run already in ``out`` (without it, a folder holding a run is refused).
    rank, world : DDP rank and world size (the process group must already be initialised when world > 1).
    progress : called as progress(n_steps, info=..., total=..., description=...) for a progress bar.
    log : called with one line per notable event (resampling, ESS guard, epoch summary).

    Returns
    -------
    history : one row per epoch (also written to ``out/history.csv``).

    Raises
    ------
    TrainingError (a DebiasError) for a folder that holds a run (without ``resume`` or ``overwrite``),
    ``resume`` without a checkpoint, another process training into ``out``, or a ``precision`` the
    device cannot run (fp16 off CUDA, bf16 on a GPU without it).
    """
    out = Path(out)
    _check_precision(cfg, resolve_device(cfg.device), log or (lambda msg: None))  # before anything is written
    if rank != 0:
        return _fit(Path(data), cfg, out, resume=resume, rank=rank, world=world, progress=progress, log=log)
    if resume and not (out / "checkpoint.pt").exists():
        raise TrainingError(f"`resume`: no checkpoint at {out / 'checkpoint.pt'}; start without `resume`.")
    if not resume:
        try:
            check_out_dir(out, what="training run", marker="config.json", overwrite=overwrite)
        except DebiasError as e:
            raise TrainingError(str(e).replace("`overwrite`", "`overwrite` (or `resume` to continue it)")) from None
    out.mkdir(parents=True, exist_ok=True)
    with exclusive(out, "training run"):
        if not resume:  # a replaced run never leaves a config.json that disagrees with its model.pt
            for f in RUN_FILES:
                (out / f).unlink(missing_ok=True)
        return _fit(Path(data), cfg, out, resume=resume, rank=rank, world=world, progress=progress, log=log)


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
    return TrainSet(ds, val, _image_reader(ds), _image_reader(val) if val is not None else None, labels,
                     np.flatnonzero(labels == 1), np.flatnonzero(labels == 0), ds.packed.shape[1])


@dataclasses.dataclass
class _Labelled:
    """Face weights and Group DRO's groups: from the labels (balanced, group-dro), from another run's saved weights
    (standard with ``weights_from``), or from the DB-VAE's latent clusters once they are found (dbvae with
    ``latent_dro``)."""

    p_face: np.ndarray | None = None
    groups: np.ndarray | None = None  # (n,) group code of every training image; non-faces the last
    dro: GroupDRO | None = None
    names: tuple = ()


def read_face_weights(path: str | Path, face_frame: pd.DataFrame) -> np.ndarray:
    """The face sampling weights a run saved (``path``: its folder or its sampling_weights.csv, columns image and p),
    in the order of ``face_frame`` (the training faces of this run, matched by ``image``), normalised to sum to 1.
    Raises TrainingError, naming the file and what to do, when they are malformed or do not fit these faces."""
    try:
        f, by_image = read_sampling_weights(path)
    except RunError as e:
        raise TrainingError(f"`weights_from`: {e}") from None
    images = face_frame["image"].astype(str)
    missing = images[~images.isin(by_image.index)]
    extra = len(by_image) - (len(face_frame) - len(missing))
    if len(missing) or extra:
        raise TrainingError(f"`weights_from`: {f} holds weights for {len(by_image)} faces, and this run trains on "
                            f"{len(face_frame)} ({len(missing)} of them without a weight"
                            + (f", e.g. image {missing.iloc[0]}" if len(missing) else "") + f", {extra} weights for "
                            f"images it does not train on). Use a run trained on the same data, split and "
                            f"`max_train`.")
    q = by_image.loc[images.to_numpy()].to_numpy()
    return q / q.sum()


def _labelled(cfg: TrainConfig, ts: TrainSet, log: Callable[[str], None]) -> _Labelled:
    if cfg.weights_from:
        p = read_face_weights(cfg.weights_from, ts.face_frame)
        log(f"faces drawn by the weights of {cfg.weights_from} (ESS {ess_fraction(p):.3f} of the faces)")
        return _Labelled(p)
    if cfg.method not in ("balanced", "group-dro"):
        return _Labelled()
    keys = group_keys(ts.face_frame, cfg.balance_by)  # fails early on a missing column
    # Sagawa et al. sample groups uniformly for Group DRO and reweight the loss on top
    p = group_balanced_weights(ts.face_frame, cfg.balance_by, cfg.balance_power if cfg.method == "balanced" else 1.0)
    if cfg.method == "balanced":
        return _Labelled(p)
    codes, uniques = pd.factorize(keys, sort=True)
    groups = np.full(len(ts.ds), len(uniques), dtype=np.int64)  # non-faces: one more group
    groups[ts.face_pos] = codes
    names = (*uniques, "non-face")
    adjust = group_adjustment(groups, len(uniques) + 1, cfg.dro_adjust)
    log(f"Group DRO over {len(uniques)} face groups ({', '.join(map(str, uniques))}) and non-faces"
        + _adjust_words(adjust, names))
    return _Labelled(p, groups, GroupDRO(len(uniques) + 1, cfg.dro_eta, adjust), names)


def _adjust_words(adjust: np.ndarray | None, names: tuple) -> str:
    """The log's account of --dro-adjust: each group's C / sqrt(n_g)."""
    if adjust is None:
        return ""
    return "; group adjustment C/sqrt(n): " + ", ".join(f"{n} {a:.3f}" for n, a in zip(names, adjust))


# latent_groups -> (the dro_q column prefix, one group, the groups) for the log and history.csv
_LATENT_GROUP_WORDS = {"clusters": ("cluster", "cluster", "latent clusters"),
                       "rarity": ("rarity", "stratum", "strata of equal latent-weight mass (rarest first)")}


def _latent_groups(mu: np.ndarray, cfg: TrainConfig, epoch: int,
                   log: Callable[[str], None]) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray] | None]:
    """``latent_dro``'s group of every training face, from the faces' latent means ``mu`` (never the labels):
    clusters of the means, or strata of equal mass under the DB-VAE's density weights; and, for clusters, the
    function that puts other latent means in them (None for strata, which have no rule for new faces)."""
    if cfg.latent_groups == "clusters":
        return fit_latent_clusters(mu, n_clusters=cfg.latent_dro, random_state=cfg.seed)
    return rarity_strata(_latent_weights(mu, cfg, epoch, log), cfg.latent_dro), None


def _latent_dro(lab: _Labelled, cfg: TrainConfig, ts: TrainSet, clusters: np.ndarray,
                log: Callable[[str], None]) -> None:
    """Turn ``lab`` into Group DRO over the latent clusters of the training faces (non-faces one more group)."""
    k = int(clusters.max()) + 1
    lab.groups = np.full(len(ts.ds), k, dtype=np.int64)
    lab.groups[ts.face_pos] = clusters
    adjust = group_adjustment(lab.groups, k + 1, cfg.dro_adjust)
    lab.dro = GroupDRO(k + 1, cfg.dro_eta, adjust)
    name, unit, what = _LATENT_GROUP_WORDS[cfg.latent_groups]
    lab.names = (*(f"{name}{c}" for c in range(k)), "non-face")
    sampling = (f"each {unit}'s mass follows its DRO weight" if cfg.dro_resample else
                f"each {unit} gets the DB-VAE density's mass on it, spread evenly" if cfg.flatten_clusters else
                f"every {unit} gets equal mass")
    log(f"Group DRO over {k} {what} of the training faces (sizes {', '.join(map(str, np.bincount(clusters)))}) "
        f"and non-faces; sampling: {sampling}{_adjust_words(adjust, lab.names)}")


def _fixed_val_groups(cfg: TrainConfig, ts: TrainSet) -> np.ndarray | None:
    """``keep='best'``: the group of every validation image, where it is known before training: Group DRO's labelled
    groups (``balance_by``) and the non-faces, or, for methods without groups, faces and non-faces. None for
    ``latent_dro``, whose validation groups come with its clusters (``_keep_latent``)."""
    if cfg.keep != "best" or cfg.latent_dro:
        return None
    frame = ts.val.frame
    faces = frame["label"].to_numpy() == 1
    groups = np.zeros(len(frame), dtype=np.int64)  # faces 0, non-faces 1
    if cfg.method == "group-dro":
        codes, uniques = pd.factorize(group_keys(frame[faces], cfg.balance_by), sort=True)
        groups[faces], groups[~faces] = codes, len(uniques)
    else:
        groups[~faces] = 1
    return groups


def _keep_if_best(st: _State, cfg: TrainConfig, row: dict, epoch: int, log: Callable[[str], None]) -> None:
    """``keep='best'``: remember this epoch's weights if its worst validation group has the lowest loss so far. Only
    epochs that have their groups count (``latent_dro``: from the epoch its clusters were found), and for JTT only the
    final model's."""
    if "val_worst_group_loss" not in row or (cfg.method == "jtt" and epoch < cfg.jtt_epochs):
        return
    if row["val_worst_group_loss"] < st.best_loss:
        st.best_loss, st.best_epoch = row["val_worst_group_loss"], epoch
        st.best = {k: v.detach().to("cpu", copy=True) for k, v in st.model.state_dict().items()}


def _check_resume_options(cfg: TrainConfig, out: Path) -> None:
    if not (out / "config.json").exists():
        return
    old = json.loads((out / "config.json").read_text())
    default = dataclasses.asdict(TrainConfig())  # an option newer than the run's config.json had its default there
    changed = [k for k, v in dataclasses.asdict(cfg).items()
               if k not in ("device", "workers") and json.loads(json.dumps(v)) != old.get(k, default[k])]
    if changed:
        raise TrainingError(f"`resume`: option(s) {', '.join(changed)} differ from the run in {out}; resume with "
                            f"the same options, or train into a new `out`.")


@dataclasses.dataclass
class _State:
    """Everything a checkpoint holds: the model, the optimiser and what sampling carries across epochs."""

    model: nn.Module
    opt: torch.optim.Optimizer
    epoch: int = 0  # the next epoch to train
    history: list = dataclasses.field(default_factory=list)
    timing: list = dataclasses.field(default_factory=list)
    jtt_err: np.ndarray | None = None  # JTT: the identification model's errors on the training split
    p_latent: np.ndarray | None = None  # the latest resampling weights (dbvae, loss-resample); kept with --freeze-weights
    clusters: np.ndarray | None = None  # latent_dro: the latent cluster of every training face, found once
    dro_q: np.ndarray | None = None  # the checkpoint's Group DRO weights (labelled groups or latent clusters)
    swa: torch.optim.swa_utils.AveragedModel | None = None  # swa_from: the running average of the epochs' weights
    val_groups: np.ndarray | None = None  # keep='best': the group of every validation image (latent_dro: once found)
    best: dict | None = None  # keep='best': the weights (on the CPU) of the epoch with the lowest worst-group loss
    best_epoch: int = -1
    best_loss: float = float("inf")
    steps: int = 0  # weights_only: the steps of the epoch the freeze hook stopped (0: it ran to its end)

    def save(self, path: Path, dro: GroupDRO | None) -> None:
        def tensor(a):
            return torch.from_numpy(a) if a is not None else None

        _save_atomic({"model": self.model.state_dict(), "opt": self.opt.state_dict(), "epoch": self.epoch - 1,
                      "history": json.dumps(self.history), "timing": json.dumps(self.timing),
                      "jtt_err": tensor(self.jtt_err), "dro_q": tensor(dro.q if dro is not None else None),
                      "p_latent": tensor(self.p_latent), "clusters": tensor(self.clusters),
                      "swa": self.swa.state_dict() if self.swa is not None else None,
                      "val_groups": tensor(self.val_groups), "best": self.best, "best_epoch": self.best_epoch,
                      "best_loss": self.best_loss, "steps": self.steps}, path)

    def restore(self, path: Path, device: torch.device) -> None:
        ck = load_weights(path, device)
        self.model.load_state_dict(ck["model"])
        self.opt.load_state_dict(ck["opt"])
        self.epoch = int(ck["epoch"]) + 1
        self.history, self.timing = json.loads(ck["history"]), json.loads(ck["timing"])
        self.jtt_err = ck["jtt_err"].numpy() if ck.get("jtt_err") is not None else None
        self.dro_q = ck["dro_q"].numpy() if ck.get("dro_q") is not None else None
        self.p_latent = ck["p_latent"].numpy() if ck.get("p_latent") is not None else None
        self.clusters = ck["clusters"].numpy() if ck.get("clusters") is not None else None
        if ck.get("swa") is not None:
            self.swa = torch.optim.swa_utils.AveragedModel(self.model, use_buffers=False)
            self.swa.load_state_dict(ck["swa"])
        self.val_groups = ck["val_groups"].numpy() if ck.get("val_groups") is not None else None
        self.best = {k: v.cpu() for k, v in ck["best"].items()} if ck.get("best") is not None else None
        self.best_epoch, self.best_loss = int(ck.get("best_epoch", -1)), float(ck.get("best_loss", float("inf")))
        self.steps = int(ck.get("steps", 0))


def _wrap_step(model: nn.Module, cfg: TrainConfig, device: torch.device, world: int, n_images: int,
               log: Callable[[str], None]) -> nn.Module:
    """The training step module: DDP when distributed, compiled when the run is long enough to pay."""
    step: nn.Module = _Step(model, cfg)
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        step = DDP(step, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile and n_images < COMPILE_MIN_IMAGES:
        log(f"running eagerly: {n_images:,} training images is below the {COMPILE_MIN_IMAGES:,} where torch.compile "
            f"pays for its first-run compile time")
    elif cfg.compile:
        step = _try_compile(step, log)
    return step


def _native_bf16_cpu() -> bool:
    """Whether this CPU computes bfloat16 natively (avx512_bf16 or AMX); elsewhere oneDNN emulates it, slowly."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def _check_precision(cfg: TrainConfig, device: torch.device, log: Callable[[str], None]) -> None:
    if cfg.precision == "fp16" and device.type != "cuda":
        raise TrainingError("`precision`='fp16' needs a CUDA device (float16 autocast with grad scaling); use 'bf16' "
                            "on a CPU with avx512_bf16 or AMX, or 'fp32'.")
    if cfg.precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise TrainingError("`precision`='bf16': this GPU has no bfloat16; use 'fp16' or 'fp32'.")
    if cfg.precision == "bf16" and device.type == "cpu" and not _native_bf16_cpu():
        log("`precision`='bf16' on a CPU without native bfloat16 (avx512_bf16/AMX): expect it to be slower than fp32")


def _guarded(w, cfg: TrainConfig, epoch: int, log: Callable[[str], None]) -> np.ndarray:
    """``w.p``, with a line in the log when the ESS guard had to temper the weights."""
    if w.guarded:
        log(f"epoch {epoch + 1}: ESS guard: raw ESS {w.ess_raw:.4f} of faces is below `min_ess` {cfg.min_ess}; "
            f"weights tempered with exponent {w.temper:.3f} -> ESS {w.ess:.3f}")
    return w.p


def _latent_weights(mu: np.ndarray, cfg: TrainConfig, epoch: int, log: Callable[[str], None],
                    clusters: np.ndarray | None = None) -> np.ndarray:
    """The DB-VAE's face weights from the density of the faces' latent means ``mu`` (never the labels); with
    ``flatten_clusters``, spread evenly within the latent ``clusters`` (found here when not given)."""
    if cfg.density == "gmm":
        w = gmm_weights(mu, random_state=cfg.seed, min_ess=cfg.min_ess)
    else:
        w = latent_weights(mu, bins=cfg.bins, alpha=cfg.alpha, combine=cfg.combine, temperature=cfg.temperature,
                           min_ess=cfg.min_ess, smooth_k=cfg.smooth_k)
    p = _guarded(w, cfg, epoch, log)
    if cfg.flatten_clusters:
        if clusters is None:
            clusters = latent_clusters(mu, n_clusters=cfg.flatten_clusters, random_state=cfg.seed)
        # each cluster keeps the density's total mass on it, shared alike by its faces (the ESS guard rarely binds)
        flat = cluster_balanced_weights(clusters, cfg.min_ess, mass=np.bincount(clusters, weights=p))
        log(f"epoch {epoch + 1}: density weights spread evenly within {clusters.max() + 1} latent clusters "
            f"(`flatten_clusters`): ESS {w.ess:.3f} -> {flat.ess:.3f}")
        return _guarded(flat, cfg, epoch, log)
    if not cfg.max_weight:
        return p
    capped = cap_weights(w, cfg.max_weight)  # ``w`` itself when no face is above the cap
    if capped is not w:
        log(f"epoch {epoch + 1}: no face above {cfg.max_weight:g}x its uniform rate (`max_weight`): "
            f"{int(np.sum(capped.p * len(p) >= cfg.max_weight * (1 - 1e-9)))} faces capped -> ESS {capped.ess:.3f}")
    return capped.p


def _loss_weights(s: np.ndarray, cfg: TrainConfig, epoch: int, log: Callable[[str], None],
                  prior: np.ndarray | None = None) -> np.ndarray:
    """Face weights ~ each training face's loss -log s under the current model (``s``: its face probability;
    never the groups), times ``prior``: ``loss-resample``'s weights, or the DB-VAE's latent weights tilted by
    the loss (``loss_tilt``)."""
    return _guarded(loss_weights(-np.log(np.clip(s.astype(np.float64), 1e-12, 1.0)), cfg.min_ess, prior=prior),
                    cfg, epoch, log)


def _score_faces(st: _State, ts: TrainSet, device: torch.device, *, with_latent: bool):
    """One pass of the current model over the training faces: their face probabilities (the loss) and, with
    ``with_latent``, their latent means."""
    return predict_scores(st.model, lambda pos: ts.images(ts.face_pos[pos]), len(ts.face_pos), device,
                          with_latent=with_latent)


def _freeze_note(cfg: TrainConfig, st: _State, n_batches: int, log: Callable[[str], None]) -> None:
    """Suggest ``freeze_after`` when a frozen DB-VAE's kept weights, not yet computed, would be read after more than
    FREEZE_HINT_IMAGES training images (the start of epoch ``resample_from``). Not for ``latent_dro``: on 100,000
    images its clusters found after the first epoch did as well as after 20,000 images (RESULTS.md, session 31)."""
    read_at = cfg.resample_from * n_batches * cfg.batch_size
    if (cfg.method == "dbvae" and not cfg.refresh_weights and not cfg.freeze_after and not cfg.latent_dro
            and st.p_latent is None and read_at > FREEZE_HINT_IMAGES):
        log(f"note: the kept latent weights will be read after {read_at:,} training images; on sets this large "
            f"`--freeze-after 20000` reads them where the variant was chosen (benchmarks/RESULTS.md, scale setting: the gap closed "
            f"67% with it, widened without)")


def _keep_latent(mu: np.ndarray, cfg: TrainConfig, ts: TrainSet, st: _State, lab: _Labelled, epoch: int,
                 device: torch.device, log: Callable[[str], None]) -> None:
    """The DB-VAE's latent weights from the training faces' latent means ``mu``, into ``st.p_latent``; with
    ``latent_dro`` its groups too (``st.clusters``, kept with the weights), and ``lab`` becomes Group DRO over them.
    With ``keep='best'`` the validation faces, read by the same encoder, go to the same clusters (``st.val_groups``)."""
    if not cfg.latent_dro:
        st.p_latent = _latent_weights(mu, cfg, epoch, log)
        _rare_group_note(st.p_latent, ts.face_frame, log)
        return
    st.clusters, assign = _latent_groups(mu, cfg, epoch, log)
    if cfg.keep == "best":  # TrainConfig allows it with clusters only, so `assign` is set
        val_faces = np.flatnonzero(ts.val.frame["label"].to_numpy() == 1)
        _, val_mu = predict_scores(st.model, lambda pos: ts.val_images(val_faces[pos]), len(val_faces), device,
                                   with_latent=True)
        st.val_groups = np.full(len(ts.val), int(st.clusters.max()) + 1, dtype=np.int64)  # non-faces: one more
        st.val_groups[val_faces] = assign(val_mu)
        log(f"validation faces per latent cluster (for `keep` best): "
            f"{', '.join(map(str, np.bincount(st.val_groups[val_faces], minlength=st.val_groups.max())))}")
    st.p_latent = _latent_weights(mu, cfg, epoch, log, clusters=st.clusters) if cfg.flatten_clusters \
        else _guarded(cluster_balanced_weights(st.clusters, cfg.min_ess), cfg, epoch, log)
    _rare_group_note(st.p_latent, ts.face_frame, log)
    _latent_dro(lab, cfg, ts, st.clusters, log)


def _rare_group_note(p: np.ndarray, faces: pd.DataFrame, log: Callable[[str], None]) -> None:
    """Read label-free latent weights ``p`` against the labels the training faces have (a diagnostic: sampling never
    sees them): the sampling mass on each labelled group with less than RARE_SHARE of the faces, beside that share,
    and a note naming any such group the weights draw less often than uniform sampling would. On the benchmark's
    `pose` setting the DB-VAE's latent found tone, not pose, and its weights gave profile faces 0.8-2.3% of the mass
    (2% natural), which widened the pose gap (benchmarks/RESULTS.md): the README asked users to check this by hand."""
    natural = mass_by_group(np.full(len(p), 1.0 / len(p)), faces, DIAGNOSTIC_COLUMNS)
    mass = mass_by_group(p, faces, DIAGNOSTIC_COLUMNS)
    rare = {g: n for g, n in natural.items() if n < RARE_SHARE and not g.endswith("=nan")}
    if not rare:
        return
    log("latent weights' mass on the rare labelled groups, beside their share of the training faces (labels read for "
        "this note only): " + ", ".join(f"{g} {mass[g]:.1%} ({n:.1%})" for g, n in rare.items()))
    below = [g for g, n in rare.items() if mass[g] < n]
    if below:
        them = "it" if len(below) == 1 else "them"
        log(f"note: the latent weights give {' and '.join(below)} less than {'its' if len(below) == 1 else 'their'} "
            f"share of the training faces, so resampling by them draws {them} less often than uniform sampling: the "
            f"latent does not find {them} rare. With labels, `method`='balanced' with `balance_by`=ATTRIBUTE upweights "
            f"{them} (as on the pose setting of benchmarks/RESULTS.md)")


def _freeze_hook(cfg: TrainConfig, ts: TrainSet, st: _State, lab: _Labelled, epoch: int, n_batches: int,
                 device: torch.device, log: Callable[[str], None]) -> Callable[[int], bool] | None:
    """``freeze_after``: a step hook that computes the kept latent weights (and ``latent_dro``'s groups) once
    ``freeze_after`` training images have been seen, if that comes before the start of epoch ``resample_from`` (which
    otherwise computes them). Group DRO over the groups starts with the next epoch. With ``weights_only`` it then
    ends the epoch (returns True), and so the run."""
    if not cfg.freeze_after or st.p_latent is not None or epoch >= cfg.resample_from:
        return None
    seen_before = epoch * n_batches * cfg.batch_size

    def hook(k: int) -> bool:
        seen = seen_before + k * cfg.batch_size
        if st.p_latent is None and seen >= cfg.freeze_after:
            _, mu = _score_faces(st, ts, device, with_latent=True)
            _keep_latent(mu, cfg, ts, st, lab, epoch, device, log)  # keep='best' reads the validation faces too
            st.model.train()  # predict_scores left it in eval mode, mid-epoch
            log(f"epoch {epoch + 1}, step {k}: latent weights computed after {seen} training images "
                f"(`freeze_after` {cfg.freeze_after}) and kept; resampling starts at epoch {cfg.resample_from + 1}")
            if cfg.weights_only:
                st.steps = k
                return True
        return False
    return hook


def _weights_row(st: _State, ts: TrainSet, p: np.ndarray, seen: int, log: Callable[[str], None]) -> None:
    """``weights_only``: a last history row for the epoch that would have sampled by the kept weights ``p`` (not
    trained, so no losses): their ESS and the mass each labelled group gets, as a full run's next epoch reports them."""
    mass, ess = mass_by_group(p, ts.face_frame, DIAGNOSTIC_COLUMNS), ess_fraction(p)
    st.history.append({"epoch": st.epoch, "ess": ess, **_mass_columns(mass)})
    log(f"`weights_only`: stopped after {seen:,} training images with the kept weights (ESS {ess:.3f}"
        + "".join(f", {k} {v:.1%}" for k, v in mass.items()) + ")")


def _mass_columns(mass: dict[str, float]) -> dict[str, float]:
    """History columns of ``mass_by_group``'s shares: {'mass[skin_group=darker]': 0.21, ...}."""
    return {f"mass[{k}]": v for k, v in mass.items()}


def _start_jtt_final_model(st: _State, cfg: TrainConfig, ts: TrainSet, device: torch.device,
                           log: Callable[[str], None]) -> None:
    """JTT's second stage: record the identification model's errors, then start a fresh model."""
    s, _ = predict_scores(st.model, ts.images, len(ts.ds), device)
    st.jtt_err = (s >= 0.5).astype(np.float32) != ts.labels
    log(f"JTT: identification model errs on {int(st.jtt_err.sum())} of {len(ts.ds)} training images; "
        f"upweighting them x{cfg.jtt_lambda} and retraining from scratch")
    torch.manual_seed(cfg.seed + 1)
    st.model.load_state_dict(build_model(cfg, ts.size).to(device).state_dict())
    st.opt = make_optimizer(st.model, cfg)


def _epoch_batches(cfg: TrainConfig, ts: TrainSet, st: _State, lab: _Labelled, epoch: int, n_batches: int,
                   device: torch.device, log: Callable[[str], None]) -> tuple[list | BatchPlan, np.ndarray, float]:
    """This epoch's batches, the face sampling distribution they follow, and the seconds spent resampling."""
    resample_s, p_nonface = 0.0, None
    p_face = np.full(len(ts.face_pos), 1.0 / len(ts.face_pos))
    if cfg.method in ("dbvae", "loss-resample") and epoch >= cfg.resample_from:
        refresh = st.p_latent is None or cfg.refresh_weights  # --freeze-weights keeps the first resampling's weights
        if refresh or cfg.loss_tilt:
            tr = time.perf_counter()
            # one pass over the training faces gives both the scores (the loss) and the latent means
            s, mu = _score_faces(st, ts, device, with_latent=refresh and cfg.method == "dbvae")
            if refresh and cfg.method == "dbvae":
                _keep_latent(mu, cfg, ts, st, lab, epoch, device, log)
            elif refresh:
                st.p_latent = _loss_weights(s, cfg, epoch, log)
            # the latent weights (frozen or not) tilted by this epoch's loss
            p_face = _loss_weights(s, cfg, epoch, log, prior=st.p_latent) if cfg.loss_tilt else st.p_latent
            resample_s = time.perf_counter() - tr
        else:
            p_face = st.p_latent
    elif lab.p_face is not None:
        p_face = lab.p_face
    elif cfg.method == "jtt" and st.jtt_err is not None:
        p_face = jtt_weights(st.jtt_err[ts.face_pos], cfg.jtt_lambda)
        p_nonface = jtt_weights(st.jtt_err[ts.nonface_pos], cfg.jtt_lambda)
    if cfg.dro_resample and lab.dro is not None:  # each face group's mass ~ its DRO weight at the epoch's start
        p_face = _guarded(cluster_balanced_weights(lab.groups[ts.face_pos], cfg.min_ess, mass=lab.dro.q[:-1]), cfg,
                          epoch, log)
    if (cfg.method == "standard" and lab.p_face is None) or (cfg.method == "jtt" and st.jtt_err is None):
        perm = np.random.default_rng([cfg.seed, epoch, 7]).permutation(len(ts.ds))
        return [perm[i:i + cfg.batch_size] for i in range(0, n_batches * cfg.batch_size, cfg.batch_size)], p_face, 0.0
    return BatchPlan(ts.face_pos, p_face, ts.nonface_pos, batch_size=cfg.batch_size, face_ratio=cfg.face_ratio,
                     n_batches=n_batches, seed=cfg.seed, epoch=epoch, p_nonface=p_nonface), p_face, resample_s


def _margins(cfg: TrainConfig, ts: TrainSet, p_face: np.ndarray) -> np.ndarray | None:
    """``cfg.margin``: every training position's logit margin from this epoch's face weights (non-faces 0)."""
    if not cfg.margin:
        return None
    m = np.zeros(len(ts.ds), dtype=np.float32)
    m[ts.face_pos] = rarity_margins(p_face, cfg.margin)
    return m


def _swa_into_model(st: _State, cfg: TrainConfig, ts: TrainSet, batches, device: torch.device,
                    log: Callable[[str], None]) -> None:
    """Put the averaged weights into ``st.model``, with BatchNorm statistics recomputed over the last epoch's batches
    (the method's own sampling, augmented as in training): an average of weights has no running statistics of its own.
    """
    gen = torch.Generator().manual_seed(int(np.random.SeedSequence([cfg.seed, 17]).generate_state(1)[0]))
    if batches is None:
        batches = np.array_split(np.arange(len(ts.ds)), max(1, len(ts.ds) // cfg.batch_size))

    def inputs():
        for pos in batches:
            x = on_device(host_batch(ts.images(pos), device), device)
            yield augment(x, gen, cfg.augmentation()) if cfg.augment else x

    torch.optim.swa_utils.update_bn(inputs(), st.swa.module, device)
    st.model.load_state_dict(st.swa.module.state_dict())
    log(f"saved the average of the weights of {int(st.swa.n_averaged)} epochs (from epoch {cfg.swa_from + 1} of the "
        f"final model), BatchNorm statistics recomputed over {len(batches)} batches")


def _write_run(out: Path, st: _State, cfg: TrainConfig, ts: TrainSet, p_face: np.ndarray) -> None:
    _save_atomic({"state_dict": st.model.state_dict(), "arch": _arch(cfg, ts.size)}, out / "model.pt")
    pd.DataFrame(st.history).to_csv(out / "history.csv", index=False, float_format="%.6g")
    pd.DataFrame(st.timing).to_csv(out / "timing.csv", index=False, float_format="%.4g")
    ff = ts.face_frame
    sw = ff[[c for c in ("image", *DIAGNOSTIC_COLUMNS, "skin_tone") if c in ff.columns]].copy()
    sw["p"] = p_face
    sw.to_csv(out / "sampling_weights.csv", index=False, float_format="%.6g")


def _fit(data: Path, cfg: TrainConfig, out: Path, *, resume: bool, rank: int, world: int,
         progress: Callback | None, log: Callable[[str], None] | None) -> pd.DataFrame:
    log = log or (lambda msg: None)
    device = resolve_device(cfg.device)
    ts = load_train_set(data, cfg)
    lab = _labelled(cfg, ts, log)
    if cfg.keep == "best" and ts.val is None:
        raise TrainingError("`keep` best picks the epoch by its validation loss, and this dataset has no `val` split; "
                            "add one or use `keep` last.")
    if resume:
        _check_resume_options(cfg, out)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        to_json(cfg, out / "config.json", data=str(data.resolve()), size=ts.size, n_train=len(ts.ds),
                n_train_faces=len(ts.face_pos), torch=torch.__version__, world_size=world)
    ckpt_path = out / "checkpoint.pt"
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, ts.size).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    st = _State(model, make_optimizer(model, cfg), val_groups=_fixed_val_groups(cfg, ts))
    if resume:
        if not ckpt_path.exists():
            raise TrainingError(f"`resume`: no checkpoint at {ckpt_path}; start without `resume`.")
        st.restore(ckpt_path, device)
        if cfg.latent_dro and st.clusters is not None:  # the clusters found before the cut
            _latent_dro(lab, cfg, ts, st.clusters, log)
        if lab.dro is not None:
            lab.dro.q = st.dro_q
        log(f"resumed from {ckpt_path} after epoch {st.epoch - 1}")
    # JTT trains its identification model for jtt_epochs first, then the final model for `epochs`
    total_epochs = cfg.epochs + (cfg.jtt_epochs if cfg.method == "jtt" else 0)
    n_batches = max(1, len(ts.ds) // cfg.batch_size)
    n_images = total_epochs * len(ts.ds)
    if cfg.weights_only:  # it trains only until its weights are computed
        n_images = min(cfg.resample_from * n_batches * cfg.batch_size, cfg.freeze_after or n_images)
    step = _wrap_step(model, cfg, device, world, n_images, log)
    _freeze_note(cfg, st, n_batches, log)
    scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" else None
    aug_cfg = cfg.augmentation()
    p_face = np.full(len(ts.face_pos), 1.0 / len(ts.face_pos))
    batches = None  # resumed after the last epoch: no batches of this process (swa_from then reads uniform ones)
    for epoch in range(st.epoch, total_epochs):
        if cfg.weights_only and st.p_latent is not None:  # computed mid-epoch by the freeze hook, or before a resume
            break
        t0 = time.perf_counter()
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        if cfg.method == "jtt" and epoch == cfg.jtt_epochs and st.jtt_err is None:
            _start_jtt_final_model(st, cfg, ts, device, log)
        batches, p_face, resample_s = _epoch_batches(cfg, ts, st, lab, epoch, n_batches, device, log)
        if cfg.weights_only and st.p_latent is not None:  # computed at the start of this epoch
            break
        ess = ess_fraction(p_face)
        if progress:
            progress(0, total=n_batches, description=f"epoch {epoch + 1}/{total_epochs}", info=f"ESS {ess:.2f}")
        tt = time.perf_counter()
        aug = None
        if cfg.augment:
            aug_seed = np.random.SeedSequence([cfg.seed, epoch, rank, 11]).generate_state(1)[0]
            aug = torch.Generator().manual_seed(int(aug_seed))
        mix = None
        # latent_dro mixes within its clusters only: before they are found (the first epoch, or the one they are
        # found in) it does not mix, rather than mix faces across the groups it has not found yet
        if cfg.mixup and not (cfg.latent_dro and lab.groups is None):
            mix_seed = np.random.SeedSequence([cfg.seed, epoch, rank, 13]).generate_state(1)[0]
            mix = (cfg.mixup, np.random.default_rng(int(mix_seed)))
        dro = lab.dro  # Group DRO of this epoch (latent groups found by the freeze hook mid-epoch act from the next)
        losses = train_one_epoch(step, st.opt, batches, ts.images, ts.labels, device, rank=rank, world=world,
                                 workers=cfg.workers, aug=aug, groups=lab.groups, dro=dro, scaler=scaler,
                                 progress=progress, aug_cfg=aug_cfg,
                                 on_step=_freeze_hook(cfg, ts, st, lab, epoch, n_batches, device, log),
                                 lr=lr_schedule(cfg, epoch, n_batches), margins=_margins(cfg, ts, p_face),
                                 mix=mix, sam_rho=cfg.sam_rho)
        train_s = time.perf_counter() - tt
        row = {"epoch": epoch, **losses, "lr": st.opt.param_groups[0]["lr"], "ess": ess}
        if dro is not None:
            row.update({f"dro_q[{k}]": float(v) for k, v in zip(lab.names, dro.q)})
        if ts.val is not None:
            row.update(evaluate(st.model, ts.val, ts.val_images, device, st.val_groups))
            _keep_if_best(st, cfg, row, epoch, log)
        row.update(_mass_columns(mass_by_group(p_face, ts.face_frame, DIAGNOSTIC_COLUMNS)))
        st.history.append(row)
        trained = (st.steps or n_batches) * cfg.batch_size  # st.steps: the epoch weights_only stopped
        st.timing.append({"epoch": epoch, "epoch_s": time.perf_counter() - t0, "train_s": train_s,
                          "resample_s": resample_s, "img_per_s": trained / train_s})
        log(f"epoch {epoch + 1}/{total_epochs}: loss {losses['loss']:.4f}, ESS {ess:.3f}"
            + (f", val acc {row['val_acc']:.4f}" if "val_acc" in row else "")
            + (f", resampling {resample_s:.2f}s of {st.timing[-1]['epoch_s']:.2f}s" if resample_s else ""))
        if cfg.swa_from and epoch >= cfg.swa_from + total_epochs - cfg.epochs:
            if st.swa is None:
                st.swa = torch.optim.swa_utils.AveragedModel(st.model, use_buffers=False)
            st.swa.update_parameters(st.model)
        st.epoch = epoch + 1
        if rank == 0:
            st.save(ckpt_path, lab.dro)
    if cfg.weights_only:
        p_face = st.p_latent
        seen = ((st.epoch - 1) * n_batches + st.steps if st.steps else st.epoch * n_batches) * cfg.batch_size
        _weights_row(st, ts, p_face, seen, log)
    if rank == 0:
        if st.swa is not None and st.epoch == total_epochs:
            _swa_into_model(st, cfg, ts, batches, device, log)
        if cfg.keep == "best" and st.best is not None:
            st.model.load_state_dict(st.best)
            log(f"saved the weights of epoch {st.best_epoch + 1} of {total_epochs}, whose worst validation group had "
                f"the lowest loss ({st.best_loss:.4f}; the last epoch's: {st.history[-1]['val_worst_group_loss']:.4f})")
        _write_run(out, st, cfg, ts, p_face)
    return pd.DataFrame(st.history)


class _CompileOrEager(nn.Module):
    """Runs the torch.compile'd step; if compiling fails (no C++ compiler, unsupported op), runs eagerly.

    torch.compile is lazy, so failures surface on the first call, which is where this catches them.
    """

    def __init__(self, step: nn.Module, log: Callable[[str], None]) -> None:
        super().__init__()
        self.step, self.log = step, log
        self.compiled: Callable | None = torch.compile(step)

    def forward(self, *args):
        if self.compiled is not None:
            try:
                return self.compiled(*args)
            except Exception as e:  # noqa: BLE001 - any backend failure means: run eagerly
                self.log(f"torch.compile failed ({type(e).__name__}: {str(e)[:200]}); running eagerly")
                self.compiled = None
        return self.step(*args)


def _try_compile(step: nn.Module, log: Callable[[str], None]) -> nn.Module:
    try:
        return _CompileOrEager(step, log)
    except Exception as e:  # noqa: BLE001
        log(f"torch.compile unavailable ({type(e).__name__}); running eagerly")
        return step


def export_torchscript(run_dir: str | Path, out: str | Path) -> Path:
    """Write a TorchScript classifier: (B, 3, H, W) float in [0, 1] -> face logit (B,)."""
    model, arch = load_run(run_dir)
    example = torch.rand(2, 3, arch["size"], arch["size"])
    with torch.no_grad():
        traced = torch.jit.trace(_LogitOnly(model), example)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    traced.save(str(out))
    return out


def export_onnx(run_dir: str | Path, out: str | Path) -> Path:
    """Write an ONNX classifier (input ``x``: (B, 3, H, W) float in [0, 1]; output ``logit``: (B,))."""
    model, arch = load_run(run_dir)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    example = torch.rand(2, 3, arch["size"], arch["size"])
    # the TorchScript-based exporter: the dynamo exporter needs onnxscript, which is not a dependency
    torch.onnx.export(_LogitOnly(model).eval(), (example,), str(out), dynamo=False, input_names=["x"],
                      output_names=["logit"], dynamic_axes={"x": {0: "batch"}, "logit": {0: "batch"}})
    return out


class _LogitOnly(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


__all__ = ["fit", "train_one_epoch", "evaluate", "predict_scores", "load_run", "export_torchscript", "export_onnx",
           "TrainingError", "resolve_device"]
