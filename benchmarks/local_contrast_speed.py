"""Cost of `--input-norm local`'s contrast channels (``LocalContrast``) against a whole lab-CNN training step.

    .venv/bin/python benchmarks/local_contrast_speed.py [--batch-size 64] [--threads 1] [--repeats 30]

In one process: the contrast channels with torch's ``avg_pool2d`` (stride 1, ``count_include_pad=False``), the
same with ``box_mean`` (running sums, what the model uses), and one forward-backward-Adam step of the plain lab
CNN on the same batch. Milliseconds a batch, median of ``--repeats``. The reason ``box_mean`` exists.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from debias.models.classifier import FaceClassifier, LocalContrast


def ms(fn, repeats: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def pooled_contrast(x: torch.Tensor, k: int = 9, eps: float = 0.02) -> torch.Tensor:
    pool = dict(kernel_size=k, stride=1, padding=k // 2, count_include_pad=False)
    mean = F.avg_pool2d(x, **pool)
    var = (F.avg_pool2d(x * x, **pool) - mean * mean).clamp(min=0.0)
    return torch.cat([x, (x - mean) / (var + eps ** 2).sqrt()], 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=30)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    x = torch.rand(a.batch_size, 3, 64, 64)
    local = LocalContrast(9)
    assert torch.allclose(local(x), pooled_contrast(x), atol=1e-4)
    net = FaceClassifier()
    opt = torch.optim.Adam(net.parameters())

    def step() -> None:
        opt.zero_grad()
        F.binary_cross_entropy_with_logits(net(x), torch.ones(len(x))).backward()
        opt.step()

    with torch.no_grad():
        pool_ms, box_ms = ms(lambda: pooled_contrast(x), a.repeats), ms(lambda: local(x), a.repeats)
    step_ms = ms(step, a.repeats)
    print(f"batch {a.batch_size}, {a.threads} thread(s): contrast channels with avg_pool2d {pool_ms:.1f} ms, "
          f"with box_mean {box_ms:.1f} ms ({pool_ms / box_ms:.1f}x faster); one lab-CNN step {step_ms:.1f} ms")


if __name__ == "__main__":
    main()
