"""One training step and one epoch: the loss module, the optimiser, ``train_one_epoch``, ``evaluate``.

``train_one_epoch`` is the whole optimisation loop of every method: batches of training positions in, the mean
of each loss part out. Group DRO weights, sharpness-aware minimisation and float16 loss scaling act inside it;
which faces a batch holds is decided by the sampler (debias/train/samplers.py).
"""
from __future__ import annotations

import contextlib
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from debias.config import TrainConfig
from debias.data.augment import AugmentConfig, augment
from debias.data.manifest import ManifestDataset, host_batch, on_device, prefetch
from debias.models.dbvae import DBVAE, dbvae_loss
from debias.models.run import model_from_arch, predict_scores
from debias.sampling import GroupDRO
from debias.train.trainset import DIAGNOSTIC_COLUMNS, TrainingError

VAE_METHODS = ("dbvae", "vae-uniform")

Callback = Callable[..., None]


def build_model(cfg: TrainConfig, size: int) -> nn.Module:
    return model_from_arch(arch_of(cfg, size))


def arch_of(cfg: TrainConfig, size: int) -> dict:
    kind = "dbvae" if cfg.method in VAE_METHODS else "classifier"
    return {"kind": kind, "arch": cfg.arch, "width": cfg.width, "size": size, "latent_dim": cfg.latent_dim}


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

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
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
        if self.vae:
            if self.cfg.rec_region == "center":  # the central half, where a face crop has the face
                h, w = x.shape[-2:]
                x, x_hat = (t[..., h // 4:h - h // 4, w // 4:w - w // 4] for t in (x, x_hat))
            p = dbvae_loss(x, x_hat, y, logit, mu, logvar, beta=self.cfg.beta, c_rec=self.cfg.c_rec,
                           rec_norm=self.cfg.rec_norm)
            return p.per_sample, p.per_sample_bce, p.bce, p.rec, p.kl
        bce = F.binary_cross_entropy_with_logits(logit, y, reduction="none")  # (B,)
        zero = torch.zeros((), device=x.device)
        return bce, None, bce.mean(), zero, zero


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam at ``cfg.lr``."""
    return torch.optim.Adam(model.parameters(), lr=cfg.lr)


def train_one_epoch(step: nn.Module, opt: torch.optim.Optimizer, batches, images: Callable, labels: np.ndarray,
                    device: torch.device, *, rank: int = 0, world: int = 1, workers: int = 0,
                    aug: torch.Generator | None = None, groups: np.ndarray | None = None,
                    dro: GroupDRO | None = None, scaler: torch.amp.GradScaler | None = None,
                    progress: Callback | None = None, read_every: int | None = None,
                    aug_cfg: AugmentConfig = AugmentConfig(),
                    on_step: Callable[[int], bool | None] | None = None,
                    sam_rho: float = 0.0) -> dict[str, float]:
    """Run one epoch of optimisation over ``batches`` (arrays of training positions).

    ``workers`` threads prefetch batches. ``aug``, a generator, turns on geometric augmentation with the
    ranges of ``aug_cfg``.
    ``dro`` with ``groups`` (group index of every training position) weights the loss by Group DRO.
    ``scaler`` scales the loss for float16 autocast (CUDA), so small gradients do not underflow.
    ``read_every`` steps, the loss parts are read back, checked for non-finite values and shown (default: every
    step on the CPU, every 25 on CUDA). ``on_step(k)`` runs after the k-th optimisation step of the epoch;
    if it returns true, the epoch ends there.
    ``sam_rho`` > 0 takes each step's gradient by sharpness-aware minimisation (``_sam_second_pass``); not with
    ``scaler``.
    Returns the mean of each loss part over the epoch.
    """
    if sam_rho and scaler is not None:
        raise ValueError("sharpness-aware minimisation (`sam_rho`) does not undo float16 loss scaling; use bf16 or fp32.")
    step.train()
    # Reading a value back from a GPU waits for its queue to drain, so on CUDA the loss parts are summed on the
    # device and read every 25 steps; the CPU has no queue and reads each step.
    meter = _LossMeter(read_every or (1 if device.type == "cpu" else 25), progress)

    def load(pos):
        pos = pos[rank::world]  # this rank's slice of the global batch
        return host_batch(images(pos), device), torch.from_numpy(labels[pos]), pos

    for x, y, pos in prefetch(batches, load, workers):
        x, y = on_device(x, device), y.to(device, non_blocking=True)
        if aug is not None:
            x = augment(x, aug, aug_cfg)
        per_image, per_cls, *parts = step(x, y)
        w = None
        if dro is not None:
            # Group DRO weighs the classifier's risk: groups are compared, and weighted, by their classification
            # loss alone; the DB-VAE's reconstruction and KL terms (faces only) stay an unweighted batch mean
            cls = per_image if per_cls is None else per_cls
            w = dro.sample_weights(cls.detach().double().cpu().numpy(), groups[pos])
        loss = _step_loss(per_image, per_cls, w)
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            if sam_rho:
                _sam_second_pass(step, opt, sam_rho, lambda: _step_loss(*step(x, y)[:2], w))
            opt.step()
        meter.add(torch.stack([loss.detach(), *(p.detach() for p in parts)]).double())
        if on_step is not None and on_step(meter.n):
            break
    return meter.means()


class _LossMeter:
    """Sums the loss parts of an epoch's steps, reads them back every ``every`` steps, stops on a non-finite loss
    and reports progress."""

    def __init__(self, every: int, progress: Callback | None) -> None:
        self.every, self.progress = every, progress
        self.sums, self.n = np.zeros(4), 0
        self.window, self.pending = None, 0

    def add(self, vals: torch.Tensor) -> None:
        self.window = vals if self.window is None else self.window + vals
        self.n += 1
        self.pending += 1
        if self.pending == self.every:
            self.flush()

    def flush(self) -> None:
        w, k = self.window.cpu().numpy(), self.pending
        if not np.isfinite(w[0]):
            raise TrainingError(f"the loss became non-finite ({w[0]}) at step {self.n}" +
                                (f" or one of the {k - 1} before it." if k > 1 else "."))
        self.sums += w
        if self.progress:
            self.progress(k, info=f"loss {w[0] / k:.3f} bce {w[1] / k:.3f} rec {w[2] / k:.3f} kl {w[3] / k:.1f}")
        self.window, self.pending = None, 0

    def means(self) -> dict[str, float]:
        if self.pending:
            self.flush()
        m = self.sums / max(self.n, 1)
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


# torch.compile costs ~20-40 s per model on a cold cache (2-core CPU; the quick demo went from 66 s warm to
# 125 s cold) and then runs the lab CNN's step ~1.5x faster than eager (1.61x vs 1.04x a bare loop, measured
# against a bare PyTorch loop on the same model and data). At ~2,500 eager images/s that saves ~0.14 ms an image: compiling pays from roughly
# 300k images (epochs x training images). Shorter runs train eagerly.
COMPILE_MIN_IMAGES = 300_000


def wrap_step(model: nn.Module, cfg: TrainConfig, device: torch.device, world: int, n_images: int,
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
