"""Training throughput of `debias train` against a bare PyTorch loop, in one process, same data.

    .venv/bin/python benchmarks/train_speed.py [--data DIR] [--steps 300] [--batch-size 64]

The bare loop is what the MIT lab notebook does for the standard classifier: shuffled batches from an
in-memory array, forward, BCE, backward, Adam step, no extras. `debias train` is timed from its own
per-epoch train_s (the optimisation loop; data prep and validation excluded on both sides).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from _results import append_result
from debias.config import SynthConfig, TrainConfig
from debias.data.manifest import to_tensor
from debias.data.synth import generate
from debias.models.classifier import FaceClassifier
from debias.train import fit


def bare_loop(x_all: np.ndarray, y_all: np.ndarray, steps: int, bs: int, warmup: int = 20,
              device: str = "cpu") -> float:
    """Images/s of the bare loop. On a GPU the training images go to it once, as uint8, and every batch is
    gathered and converted there: the fastest a loop can be fed."""
    dev = torch.device(device)
    torch.manual_seed(0)
    net = FaceClassifier().to(dev)
    opt = torch.optim.Adam(net.parameters(), 5e-4)
    rng = np.random.default_rng(0)
    if dev.type != "cpu":
        x_all, y_all = torch.from_numpy(x_all).to(dev), torch.from_numpy(y_all).to(dev)
    t = 0.0
    for i in range(steps + warmup):
        if i == warmup:
            _sync(dev)
            t = time.perf_counter()
        b = rng.integers(0, len(x_all), bs)
        if dev.type == "cpu":
            x, y = to_tensor(x_all[b]), torch.from_numpy(y_all[b])
        else:
            b = torch.from_numpy(b).to(dev)
            x, y = x_all[b].permute(0, 3, 1, 2).float().div_(255.0), y_all[b]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    _sync(dev)
    return steps * bs / (time.perf_counter() - t)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def second_epoch_rate(data: Path, cfg: TrainConfig, out: Path) -> float:
    """`debias train` images/s in the second epoch of ``cfg`` (warm, and compiled if it compiles)."""
    fit(data, cfg, out, overwrite=True)
    return float(pd.read_csv(out / "timing.csv")["img_per_s"].iloc[-1])


def debias_fit(data: Path, method: str, steps: int, bs: int, compile: bool, out: Path) -> float:
    cfg = TrainConfig(method=method, recipe="paper", epochs=2, batch_size=bs, max_train=steps * bs, compile=compile,
                      resample_from=1)
    return second_epoch_rate(data, cfg, out)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--no-compile", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        data = a.data or Path(d) / "data"
        if a.data is None:
            generate(SynthConfig(n_train=a.steps * a.batch_size, n_val=256, n_test_per_cell=1), data)
        m = pd.read_csv(data / "manifest.csv")
        tr = m[m.split == "train"]
        x = np.load(data / "images.npy")[tr.image.to_numpy()]
        y = tr.label.to_numpy().astype(np.float32)
        rows = []
        bare = bare_loop(x, y, a.steps, a.batch_size)
        rows.append(("bare eager loop (lab-style)", bare))
        rows.append(("debias train --method standard", debias_fit(data, "standard", a.steps, a.batch_size, False,
                                                                    Path(d) / "s")))
        if not a.no_compile:
            rows.append(("debias train --method standard --compile",
                         debias_fit(data, "standard", a.steps, a.batch_size, True, Path(d) / "sc")))
        bare2 = bare_loop(x, y, a.steps, a.batch_size)  # again, to bracket drift
        rows.append(("bare eager loop (again)", bare2))
        ref = (bare + bare2) / 2
        print(f"batch {a.batch_size}, {a.steps} steps, {torch.get_num_threads()} threads")
        for name, v in rows:
            print(f"{name:45s} {v:8.0f} img/s   {v / ref:5.2f}x bare")
        for name, v in rows[1:-1]:
            append_result("train_throughput_ratio", v / ref, "x bare loop", f"{name}, batch {a.batch_size}",
                          "python benchmarks/train_speed.py")
