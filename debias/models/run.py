"""A trained run as a model: build from its arch, load ``RUN/model.pt`` safely, score images.

Everything that *uses* a run (the audit, the latent analysis, export) imports this module, never
the trainer.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import torch
from torch import nn

from debias.data.manifest import host_batch, on_device, prefetch
from debias.errors import DebiasError
from debias.models.classifier import FaceClassifier
from debias.models.dbvae import DBVAE


class RunError(DebiasError):
    """A run folder or weights file that cannot be used; the message says why."""


# the folder, inside a run, of the DB-VAE whose latent weights the two-stage recipe's classifier draws its faces by
LATENT_DIR = "latent"


def latent_run(run_dir: str | Path) -> Path:
    """The DB-VAE run of ``run_dir``: its ``latent/`` first stage when it has one (two-stage recipe), else itself."""
    inner = Path(run_dir) / LATENT_DIR
    return inner if (inner / "model.pt").exists() else Path(run_dir)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RunError("`device` cuda was asked for but torch sees no CUDA device; use `device` auto or cpu.")
    return torch.device(device)


def model_from_arch(arch: dict) -> nn.Module:
    if arch.get("input_norm", "none") != "none":
        raise RunError(f"this run's model reads its input with input_norm={arch['input_norm']!r}, which this version "
                       f"of debias no longer builds; retrain it, or load it with debias 0.1.0 at commit f8d2744.")
    if arch["kind"] == "dbvae":
        return DBVAE(latent_dim=arch["latent_dim"], arch=arch["arch"], width=arch["width"], size=arch["size"])
    return FaceClassifier(arch=arch["arch"], width=arch["width"], size=arch["size"])


NOT_A_RUN_MODEL = ("{path} has no 'arch' and 'state_dict' entries (its keys: {keys}), so it is not a model written "
                   "by `debias train`. Audit your own PyTorch model as torchscript:FILE (save it with "
                   "torch.jit.script(model).save(FILE)) or as python:FILE.py:FUNCTION.")


def load_run(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Load ``RUN_DIR/model.pt`` (weights-only safe). Returns (model in eval mode, arch dict)."""
    path = Path(run_dir) / "model.pt"
    if not path.exists():
        raise RunError(f"{path} does not exist; is {run_dir} a folder written by `debias train`?")
    blob = load_weights(path, device)
    if not isinstance(blob.get("arch"), dict) or "state_dict" not in blob:
        raise RunError(NOT_A_RUN_MODEL.format(path=path, keys=", ".join(map(str, list(blob)[:6])) or "none"))
    try:
        model = model_from_arch(blob["arch"])
        model.load_state_dict(blob["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise RunError(f"{path}: its weights do not fit the architecture it records ({type(e).__name__}: "
                       f"{str(e)[:160]}); the file is damaged or was edited. Re-train the run.") from None
    return model.to(device).eval(), blob["arch"]


def load_weights(path: Path, device) -> dict:
    """torch.load with weights_only=True; a file that needs arbitrary unpickling is refused plainly.

    torch's own message suggests ``weights_only=False``, which would run code from the file: that
    advice never reaches the user, nor does its warning about the pickle protocol of a foreign file.
    """
    import pickle
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*weights_only Unpickler", category=UserWarning)
            blob = torch.load(path, map_location=device, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as e:
        raise RunError(f"{path} is not a debias run or checkpoint (it holds more than tensors and plain data, "
                       f"or is damaged: {type(e).__name__}); it will not be loaded.") from None
    if not isinstance(blob, dict):
        raise RunError(f"{path} is not a debias run or checkpoint; it will not be loaded.")
    return blob


def check_trained_on(run: str | Path, data: str | Path) -> None:
    """RunError when ``run``'s config.json records a dataset that still exists and is not ``data``. A run's saved
    per-face results (its sampling weights) name faces by image id, which in a packed set is a row number that any
    other packed set has too, so they would match another set's faces without complaint."""
    try:
        recorded = json.loads((Path(run) / "config.json").read_text()).get("data")
    except (OSError, ValueError):
        return
    if recorded and Path(recorded).exists() and Path(recorded).resolve() != Path(data).resolve():
        raise RunError(f"{run} was trained on {recorded}, not {data}: its sampling weights name the faces of that "
                       f"dataset. Give {recorded}, or a run trained on {data}.")


def check_input_side(side: int, arch: dict, run: str | Path, data: str | Path) -> None:
    """RunError when the images of ``data`` (``side`` pixels square) are not the size the model of ``run`` reads."""
    if side != arch["size"]:
        raise RunError(f"{run} reads {arch['size']} x {arch['size']} images and {data} holds {side} x {side}; give a "
                       f"run trained at this size, or pack the dataset at --size {arch['size']} (`debias data pack`).")


def read_sampling_weights(path: str | Path) -> tuple[Path, pd.Series]:
    """The face sampling weights a run saved: ``path`` is its folder or its sampling_weights.csv (columns image and
    p). Returns (the CSV's path, p indexed by image as text, as saved: not normalised). Match it against
    ``frame["image"].astype(str)``: one image name that is not a number makes pandas read the whole column as text.

    Raises RunError, naming the file and the first row at fault, for a missing file or column, a p that is not a
    number >= 0, an image listed twice, or weights that sum to 0. Which faces they must cover is the caller's to
    check (training: exactly its training faces; the latent analysis: a subset of the data's, for a run trained
    with ``max_train``)."""
    f = Path(path)
    f = f / "sampling_weights.csv" if f.is_dir() else f
    if not f.is_file():
        raise RunError(f"{f} does not exist; give a debias run folder (it holds sampling_weights.csv) or the CSV "
                       f"itself.")
    w = pd.read_csv(f)
    if not {"image", "p"} <= set(w.columns):
        raise RunError(f"{f} has no 'image' and 'p' columns; it must be a run's sampling_weights.csv.")
    p = pd.to_numeric(w["p"], errors="coerce").to_numpy(np.float64)
    bad = np.flatnonzero(~np.isfinite(p) | (p < 0))
    if len(bad):
        raise RunError(f"{f}: row {bad[0] + 2} has p={w['p'].iloc[bad[0]]} (must be a number >= 0).")
    twice = w["image"][w["image"].duplicated()]
    if len(twice):
        raise RunError(f"{f}: image {twice.iloc[0]} appears twice.")
    if not p.sum() > 0:
        raise RunError(f"{f}: its weights sum to 0.")
    return f, pd.Series(p, index=w["image"].astype(str).to_numpy())


@torch.no_grad()
def predict_scores(model: nn.Module, images: Callable, n: int, device: torch.device, *, batch_size: int = 512,
                   with_latent: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Face probabilities (n,) for positions 0..n-1 and, for a DB-VAE and ``with_latent``, mu (n, k)."""
    model.eval()
    scores, mus = [], []
    batches = (np.arange(s, min(n, s + batch_size)) for s in range(0, n, batch_size))
    # on a GPU one thread reads and pins the next batch while the device works; on the CPU the model's own
    # threads already use every core, so batches are read in turn (as they were when the CPU speeds were measured)
    for x in prefetch(batches, lambda pos: host_batch(images(pos), device), 1 if device.type == "cuda" else 0):
        x = on_device(x, device)
        if isinstance(model, DBVAE):
            logit, mu, _ = model.encode(x)
            if with_latent:
                mus.append(mu.float().cpu())
        else:
            logit = model(x)
        scores.append(torch.sigmoid(logit.float()).cpu())
    mu_all = torch.cat(mus).numpy() if mus else None
    return torch.cat(scores).numpy(), mu_all


@torch.no_grad()
def encode_posterior(model: DBVAE, images: np.ndarray, *, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """The DB-VAE's posterior q(z|x) of (N, H, W, 3) uint8 images: (mu, logvar), each (N, k) float32, logvar = log
    sigma^2 (eval mode, on the model's device)."""
    from debias.data.manifest import to_tensor

    model.eval()
    device = next(model.parameters()).device
    mus, logvars = [np.zeros((0, model.latent_dim), np.float32)], [np.zeros((0, model.latent_dim), np.float32)]
    for s in range(0, len(images), batch_size):
        _, mu, logvar = model.encode(to_tensor(images[s:s + batch_size]).to(device))  # (B, k) each
        mus.append(mu.float().cpu().numpy())
        logvars.append(logvar.float().cpu().numpy())
    return np.concatenate(mus), np.concatenate(logvars)


@contextlib.contextmanager
def distributed(device: str = "auto") -> Iterator[tuple[int, int, str]]:
    """The ``torchrun`` process group for the duration of the block; yields ``(rank, world, device)``.

    Reads WORLD_SIZE, RANK and LOCAL_RANK from the environment (torchrun sets them). nccl on CUDA
    unless ``device`` is cpu (each rank takes its LOCAL_RANK GPU and ``device`` becomes ``cuda``),
    gloo otherwise. Outside torchrun it yields ``(0, 1, device)`` and sets nothing up. Training
    (DDP) and the audit (each rank scores a shard, rank 0 gathers) both use it.
    """
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    if world == 1:
        yield 0, 1, device
        return
    import torch.distributed as dist

    cuda = torch.cuda.is_available() and device != "cpu"
    dist.init_process_group("nccl" if cuda else "gloo")
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        device = "cuda"
    try:
        yield rank, world, device
    finally:
        dist.destroy_process_group()


__all__ = ["encode_posterior", "RunError", "resolve_device", "model_from_arch", "load_run", "load_weights", "read_sampling_weights",
           "predict_scores", "distributed"]
