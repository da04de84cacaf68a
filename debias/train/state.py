"""What a run keeps: the checkpoint (``State``), the files of a finished run, and the resume check."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from debias.config import TrainConfig
from debias.data.augment import augment
from debias.data.manifest import host_batch, on_device
from debias.files import atomic_write
from debias.models.run import load_weights
from debias.sampling import GroupDRO
from debias.train.loop import arch_of
from debias.train.trainset import DIAGNOSTIC_COLUMNS, TrainingError, TrainSet

RUN_FILES = ("config.json", "model.pt", "checkpoint.pt", "history.csv", "timing.csv", "sampling_weights.csv")


def save_atomic(obj, path: Path) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


@dataclasses.dataclass
class State:
    """Everything a checkpoint holds: the model, the optimiser and what sampling carries across epochs."""

    model: nn.Module
    opt: torch.optim.Optimizer
    epoch: int = 0  # the next epoch to train
    history: list = dataclasses.field(default_factory=list)
    timing: list = dataclasses.field(default_factory=list)
    jtt_err: np.ndarray | None = None  # JTT: the identification model's errors on the training split
    p_latent: np.ndarray | None = None  # the latest resampling weights (dbvae, loss-resample); kept with --freeze-weights
    dro_q: np.ndarray | None = None  # the checkpoint's Group DRO weights
    swa: torch.optim.swa_utils.AveragedModel | None = None  # swa_from: the running average of the epochs' weights
    steps: int = 0  # weights_only: the steps of the epoch the freeze hook stopped (0: it ran to its end)

    def save(self, path: Path, dro: GroupDRO | None) -> None:
        def tensor(a):
            return torch.from_numpy(a) if a is not None else None

        save_atomic({"model": self.model.state_dict(), "opt": self.opt.state_dict(), "epoch": self.epoch - 1,
                      "history": json.dumps(self.history), "timing": json.dumps(self.timing),
                      "jtt_err": tensor(self.jtt_err), "dro_q": tensor(dro.q if dro is not None else None),
                      "p_latent": tensor(self.p_latent),
                      "swa": self.swa.state_dict() if self.swa is not None else None, "steps": self.steps}, path)

    def restore(self, path: Path, device: torch.device) -> None:
        ck = load_weights(path, device)
        self.model.load_state_dict(ck["model"])
        self.opt.load_state_dict(ck["opt"])
        self.epoch = int(ck["epoch"]) + 1
        self.history, self.timing = json.loads(ck["history"]), json.loads(ck["timing"])
        self.jtt_err = ck["jtt_err"].numpy() if ck.get("jtt_err") is not None else None
        self.dro_q = ck["dro_q"].numpy() if ck.get("dro_q") is not None else None
        self.p_latent = ck["p_latent"].numpy() if ck.get("p_latent") is not None else None
        if ck.get("swa") is not None:
            self.swa = torch.optim.swa_utils.AveragedModel(self.model, use_buffers=False)
            self.swa.load_state_dict(ck["swa"])
        self.steps = int(ck.get("steps", 0))


def check_resume_options(record: dict[str, Any], out: Path) -> None:
    """``resume``: refuse options that differ from those the run in ``out`` recorded in its config.json."""
    if not (out / "config.json").exists():
        return
    old = json.loads((out / "config.json").read_text())
    default = json.loads(json.dumps(dataclasses.asdict(TrainConfig())))  # an option newer than the run had its default
    changed = [k for k, v in json.loads(json.dumps(record)).items()
               if k not in ("device", "workers") and v != old.get(k, default.get(k))]
    if changed:
        raise TrainingError(f"`resume`: option(s) {', '.join(changed)} differ from the run in {out}; resume with "
                            f"the same options, or train into a new `out`.")


def write_run(out: Path, st: State, cfg: TrainConfig, ts: TrainSet, p_face: np.ndarray) -> None:
    save_atomic({"state_dict": st.model.state_dict(), "arch": arch_of(cfg, ts.size)}, out / "model.pt")
    pd.DataFrame(st.history).to_csv(out / "history.csv", index=False, float_format="%.6g")
    pd.DataFrame(st.timing).to_csv(out / "timing.csv", index=False, float_format="%.4g")
    ff = ts.face_frame
    sw = ff[[c for c in ("image", *DIAGNOSTIC_COLUMNS, "skin_tone") if c in ff.columns]].copy()
    sw["p"] = p_face
    sw.to_csv(out / "sampling_weights.csv", index=False, float_format="%.6g")


def swa_into_model(st: State, cfg: TrainConfig, ts: TrainSet, batches, device: torch.device,
                    log: Callable[[str], None]) -> None:
    """Put the averaged weights into ``st.model``, with BatchNorm statistics recomputed over the last epoch's batches
    (the method's own sampling, augmented as in training): an average of weights has no running statistics of its own.
    """
    gen = torch.Generator().manual_seed(int(np.random.SeedSequence([cfg.seed, 17]).generate_state(1)[0]))
    if batches is None:
        batches = np.array_split(np.arange(len(ts.ds)), ts.n_batches(cfg.batch_size))

    def inputs():
        for pos in batches:
            x = on_device(host_batch(ts.batch_images(pos), device), device)
            yield augment(x, gen, cfg.augmentation()) if cfg.augment else x

    torch.optim.swa_utils.update_bn(inputs(), st.swa.module, device)
    st.model.load_state_dict(st.swa.module.state_dict())
    log(f"saved the average of the weights of {int(st.swa.n_averaged)} epochs (from epoch {cfg.swa_from + 1} of the "
        f"final model), BatchNorm statistics recomputed over {len(batches)} batches")
