"""``fit``: train one run (every method), or the two runs of the two-stage DB-VAE recipe inside one run folder.

Determinism: every epoch reseeds torch and the batch plan from (seed, epoch), so a run resumed from the checkpoint
of epoch e repeats epochs e+1... exactly as an uninterrupted run would. Augmentation (geometry only, never colour:
debias/data/augment.py) draws from its own generator seeded the same way.
"""
from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from debias.config import TrainConfig, to_json
from debias.errors import DebiasError
from debias.files import check_out_dir, exclusive
from debias.models.run import resolve_device
from debias.sampling import ess_fraction, mass_by_group
from debias.train import recipes
from debias.train.loop import Callback, build_model, evaluate, make_optimizer, train_one_epoch, wrap_step
from debias.train.samplers import (Sampling, epoch_batches, fixed_sampling, freeze_hook, mass_columns,
                                   weights_row)
from debias.train.state import RUN_FILES, State, check_resume_options, swa_into_model, write_run
from debias.train.trainset import DIAGNOSTIC_COLUMNS, TrainingError, TrainSet, load_train_set

Log = Callable[[str], None]


def fit(data: str | Path, cfg: TrainConfig, out: str | Path, *, resume: bool = False, overwrite: bool = False,
        rank: int = 0, world: int = 1, progress: Callback | None = None, log: Log | None = None) -> pd.DataFrame:
    """Train ``cfg.method`` on the ``train`` split of the dataset folder ``data``; write ``out``.

    With ``method='dbvae'`` and the default ``recipe='two-stage'`` this trains two networks inside ``out``: the
    DB-VAE that computes the sampling weights (``out/latent/``), then the classifier that draws its faces by them
    (``out/model.pt``). Options left at None are set by the recipe; ``out/config.json`` records every value used.

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
    history : one row per epoch of the run's model (also written to ``out/history.csv``).

    Raises
    ------
    TrainingError (a DebiasError) for a folder that holds a run (without ``resume`` or ``overwrite``),
    ``resume`` without a checkpoint, another process training into ``out``, or a ``precision`` the
    device cannot run (fp16 off CUDA, bf16 on a GPU without it).
    """
    out, data, log = Path(out), Path(data), log or (lambda msg: None)
    _check_precision(cfg, resolve_device(cfg.device), log)  # before anything is written
    ts = load_train_set(data, cfg)
    resolved = _absolute_paths(recipes.resolve(cfg, n_faces=len(ts.face_pos)))
    if rank != 0:
        return _train_stages(data, resolved, out, ts, resume=resume, rank=rank, world=world, progress=progress,
                             log=log)
    if resume and not (out / "checkpoint.pt").exists() and not (out / recipes.LATENT_DIR).is_dir():
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
            if (out / recipes.LATENT_DIR / "config.json").exists():
                shutil.rmtree(out / recipes.LATENT_DIR)
        return _train_stages(data, resolved, out, ts, resume=resume, rank=rank, world=world, progress=progress,
                             log=log)


def _absolute_paths(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with its folder options as absolute paths: config.json then names the same folders wherever the run is
    resumed from."""
    return dataclasses.replace(cfg, **{k: str(Path(v).resolve()) for k in ("weights_from", "extra")
                                       if (v := getattr(cfg, k))})


def _train_stages(data: Path, cfg: TrainConfig, out: Path, ts: TrainSet, *, resume: bool, rank: int, world: int,
                  progress: Callback | None, log: Log) -> pd.DataFrame:
    """One run, or the two-stage recipe's two (the first skipped on resume once its weights are saved)."""
    record = dataclasses.asdict(cfg)
    if not recipes.is_two_stage(cfg):
        return _fit_one(data, cfg, out, ts, record=record, resume=resume, rank=rank, world=world,
                        progress=progress, log=log)
    first = recipes.latent_stage(cfg, epoch_images=ts.n_batches(cfg.batch_size) * cfg.batch_size)
    latent = out / recipes.LATENT_DIR
    if cfg.min_ess >= 1.0:
        log(f"note: with {len(ts.face_pos):,} training faces, the recipe's floor of {recipes.MIN_EFFECTIVE_FACES:,} "
            f"effective faces leaves sampling uniform: too few faces to resample without repeating a handful")
    done = (latent / "sampling_weights.csv").exists() and (latent / "model.pt").exists()
    if not (resume and done):
        if rank == 0:
            shutil.rmtree(latent, ignore_errors=True)
        log(f"stage 1 of 2: a DB-VAE finds the rare regions of its latent (weights computed after about "
            f"{cfg.freeze_after or len(ts.ds):,} training images) -> {latent}")
        _fit_one(data, first, latent, ts, record=dataclasses.asdict(first), resume=False, rank=rank, world=world,
                 progress=progress, log=log)
    else:
        log(f"stage 1 of 2: kept the latent weights already in {latent}")
    if world > 1:  # every rank reads the weights rank 0 has just written
        torch.distributed.barrier()
    second = _absolute_paths(recipes.classifier_stage(cfg, latent))
    log("stage 2 of 2: a classifier trained with sharpness-aware minimisation draws its faces by those weights")
    record = {**record, "stages": {"latent": dataclasses.asdict(first), "classifier": dataclasses.asdict(second)}}
    return _fit_one(data, second, out, ts, record=record,
                    resume=resume and (out / "checkpoint.pt").exists(), rank=rank, world=world, progress=progress,
                    log=log)


@dataclasses.dataclass
class _Run:
    """What every epoch of one run reads: its options, data, sampling, state and step."""

    cfg: TrainConfig
    ts: TrainSet
    fixed: Sampling
    st: State
    step: torch.nn.Module
    device: torch.device
    n_batches: int
    total_epochs: int
    rank: int
    world: int
    scaler: torch.amp.GradScaler | None


def _fit_one(data: Path, cfg: TrainConfig, out: Path, ts: TrainSet, *, record: dict[str, Any], resume: bool,
             rank: int, world: int, progress: Callback | None, log: Log) -> pd.DataFrame:
    """Train one network of ``cfg`` (every option resolved) into ``out``; ``record`` is written as config.json."""
    r = _start(data, cfg, out, ts, record=record, resume=resume, rank=rank, world=world, log=log)
    p_face = np.full(len(ts.face_pos), 1.0 / len(ts.face_pos))
    batches = None  # resumed after the last epoch: no batches of this process (swa_from then reads uniform ones)
    for epoch in range(r.st.epoch, r.total_epochs):
        if cfg.weights_only and r.st.p_latent is not None:  # computed mid-epoch by the freeze hook, or before a resume
            break
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        t0 = time.perf_counter()
        batches, p_face, resample_s = epoch_batches(cfg, ts, r.st, r.fixed, epoch, r.n_batches, r.device, log)
        if cfg.weights_only and r.st.p_latent is not None:  # computed at the start of this epoch
            break
        _one_epoch(r, epoch, batches, p_face, resample_s, t0, progress, log)
        if rank == 0:
            r.st.save(out / "checkpoint.pt", r.fixed.dro)
    if cfg.weights_only:
        p_face = r.st.p_latent
        st = r.st
        seen = ((st.epoch - 1) * r.n_batches + st.steps if st.steps else st.epoch * r.n_batches) * cfg.batch_size
        weights_row(st, ts, p_face, seen, log)
    if rank == 0:
        if r.st.swa is not None and r.st.epoch == r.total_epochs:
            swa_into_model(r.st, cfg, ts, batches, r.device, log)
        write_run(out, r.st, cfg, ts, p_face)
    return pd.DataFrame(r.st.history)


def _start(data: Path, cfg: TrainConfig, out: Path, ts: TrainSet, *, record: dict[str, Any], resume: bool,
           rank: int, world: int, log: Log) -> _Run:
    """The run's model, optimiser, sampling and step, restored from ``out/checkpoint.pt`` with ``resume``; writes
    config.json."""
    device = resolve_device(cfg.device)
    fixed = fixed_sampling(cfg, ts, log)
    if cfg.extra_share and ts.extra is not None:
        log(f"{cfg.extra_share:.0%} of each batch's faces are generated ones, drawn from the {len(ts.extra):,} in "
            f"{cfg.extra}")
    if resume:
        check_resume_options(record, out)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        extra = {"n_extra_faces": len(ts.extra)} if cfg.extra_share and ts.extra is not None else {}
        to_json(record, out / "config.json", data=str(data.resolve()), size=ts.size, n_train=len(ts.ds),
                n_train_faces=len(ts.face_pos), torch=torch.__version__, world_size=world, **extra)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, ts.size).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    st = State(model, make_optimizer(model, cfg))
    if resume:
        ckpt = out / "checkpoint.pt"
        if not ckpt.exists():
            raise TrainingError(f"`resume`: no checkpoint at {ckpt}; start without `resume`.")
        st.restore(ckpt, device)
        if fixed.dro is not None:
            fixed.dro.q = st.dro_q
        log(f"resumed from {ckpt} after epoch {st.epoch - 1}")
    # JTT trains its identification model for jtt_epochs first, then the final model for `epochs`
    total_epochs = cfg.epochs + (cfg.jtt_epochs if cfg.method == "jtt" else 0)
    n_batches = ts.n_batches(cfg.batch_size)
    n_images = total_epochs * len(ts.ds)
    if cfg.weights_only:  # it trains only until its weights are computed
        n_images = min(cfg.resample_from * n_batches * cfg.batch_size, cfg.freeze_after or n_images)
    step = wrap_step(model, cfg, device, world, n_images, log)
    scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" else None
    return _Run(cfg, ts, fixed, st, step, device, n_batches, total_epochs, rank, world, scaler)


def _one_epoch(r: _Run, epoch: int, batches, p_face: np.ndarray, resample_s: float, t0: float,
               progress: Callback | None, log: Log) -> None:
    """Train one epoch on ``batches``, evaluate, and append its history and timing rows to ``r.st``."""
    cfg, ts, st = r.cfg, r.ts, r.st
    ess = ess_fraction(p_face)
    if progress:
        progress(0, total=r.n_batches, description=f"epoch {epoch + 1}/{r.total_epochs}", info=f"ESS {ess:.2f}")
    tt = time.perf_counter()
    aug = None
    if cfg.augment:
        aug_seed = np.random.SeedSequence([cfg.seed, epoch, r.rank, 11]).generate_state(1)[0]
        aug = torch.Generator().manual_seed(int(aug_seed))
    dro = r.fixed.dro
    losses = train_one_epoch(r.step, st.opt, batches, ts.batch_images, ts.batch_labels, r.device, rank=r.rank,
                             world=r.world, workers=cfg.workers, aug=aug, groups=r.fixed.groups, dro=dro,
                             scaler=r.scaler, progress=progress, aug_cfg=cfg.augmentation(),
                             on_step=freeze_hook(cfg, ts, st, epoch, r.n_batches, r.device, log),
                             sam_rho=cfg.sam_rho)
    train_s = time.perf_counter() - tt
    row = {"epoch": epoch, **losses, "lr": st.opt.param_groups[0]["lr"], "ess": ess}
    if dro is not None:
        row.update({f"dro_q[{k}]": float(v) for k, v in zip(r.fixed.names, dro.q)})
    if ts.val is not None:
        row.update(evaluate(st.model, ts.val, ts.val_images, r.device))
    row.update(mass_columns(mass_by_group(p_face, ts.face_frame, DIAGNOSTIC_COLUMNS)))
    st.history.append(row)
    trained = (st.steps or r.n_batches) * cfg.batch_size  # st.steps: the epoch weights_only stopped
    st.timing.append({"epoch": epoch, "epoch_s": time.perf_counter() - t0, "train_s": train_s,
                      "resample_s": resample_s, "img_per_s": trained / train_s})
    log(f"epoch {epoch + 1}/{r.total_epochs}: loss {losses['loss']:.4f}, ESS {ess:.3f}"
        + (f", val acc {row['val_acc']:.4f}" if "val_acc" in row else "")
        + (f", resampling {resample_s:.2f}s of {st.timing[-1]['epoch_s']:.2f}s" if resample_s else ""))
    if cfg.swa_from and epoch >= cfg.swa_from + r.total_epochs - cfg.epochs:
        if st.swa is None:
            st.swa = torch.optim.swa_utils.AveragedModel(st.model, use_buffers=False)
        st.swa.update_parameters(st.model)
    st.epoch = epoch + 1


def _native_bf16_cpu() -> bool:
    """Whether this CPU computes bfloat16 natively (avx512_bf16 or AMX); elsewhere oneDNN emulates it, slowly."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False


def _check_precision(cfg: TrainConfig, device: torch.device, log: Log) -> None:
    if cfg.precision == "fp16" and device.type != "cuda":
        raise TrainingError("`precision`='fp16' needs a CUDA device (float16 autocast with grad scaling); use 'bf16' "
                            "on a CPU with avx512_bf16 or AMX, or 'fp32'.")
    if cfg.precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise TrainingError("`precision`='bf16': this GPU has no bfloat16; use 'fp16' or 'fp32'.")
    if cfg.precision == "bf16" and device.type == "cpu" and not _native_bf16_cpu():
        log("`precision`='bf16' on a CPU without native bfloat16 (avx512_bf16/AMX): expect it to be slower than fp32")
