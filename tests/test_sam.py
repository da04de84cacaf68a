"""Sharpness-aware minimisation (`--sam-rho`): the step against a hand computation, BatchNorm statistics, refusals."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from debias.cli import app
from debias.config import TrainConfig
from debias.sampling import GroupDRO
from debias.train import fit, train_one_epoch

CPU = torch.device("cpu")


class _Squares(torch.nn.Module):
    """Per-image loss (x . w - y)^2 on the flattened image, no bias: its gradient is known in closed form."""

    def __init__(self, w0: np.ndarray, norm: bool = False):
        super().__init__()
        self.norm = torch.nn.BatchNorm1d(len(w0), affine=False) if norm else torch.nn.Identity()
        self.w = torch.nn.Parameter(torch.tensor(w0, dtype=torch.float32))

    def forward(self, x, y):
        per = (self.norm(x.flatten(1)) @ self.w - y) ** 2
        z = per.mean() * 0
        return per, None, per.mean(), z, z


def _batch(seed=0, n=8):
    rng = np.random.default_rng(seed)
    imgs = rng.integers(0, 256, (n, 2, 2, 3), dtype=np.uint8)
    y = rng.normal(size=n).astype(np.float32)
    # the (B, 12) features the step sees: host_batch's (B, 3, H, W) float in [0, 1], flattened channel-first
    X = imgs.transpose(0, 3, 1, 2).reshape(n, -1).astype(np.float64) / 255
    return imgs, y, X


@pytest.mark.parametrize("rho", [0.0, 0.05, 0.5])
def test_sam_step_equals_the_gradient_at_the_perturbed_weights(rho):
    """One SGD step with SAM: w - lr * grad L(w + rho g/|g|), g = grad L(w), with grad L(v) = 2/B X^T (X v - y) by hand.
    rho = 0 is the plain step, so the check also tells the two apart."""
    imgs, y, X = _batch()
    w0 = np.random.default_rng(1).normal(size=12)
    step = _Squares(w0)
    train_one_epoch(step, torch.optim.SGD(step.parameters(), lr=0.1), [np.arange(8)], lambda p: imgs[p], y, CPU,
                    sam_rho=rho)

    def grad(v):
        return 2 / len(y) * X.T @ (X @ v - y)

    g = grad(w0)
    expected = w0 - 0.1 * grad(w0 + rho * g / np.linalg.norm(g))
    np.testing.assert_allclose(step.w.detach().numpy(), expected, rtol=1e-4, atol=1e-6)
    if rho:
        assert not np.allclose(expected, w0 - 0.1 * g, rtol=1e-4, atol=1e-6)


def test_sam_with_group_dro_weights_both_passes_alike_and_updates_the_weights_once():
    """With Group DRO the second pass weights each image by the first pass's DRO weights, and the group weights q
    take one update a step (a reference GroupDRO fed the first pass's losses, by hand)."""
    imgs, y, X = _batch(seed=2)
    groups = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    w0 = np.random.default_rng(3).normal(size=12)
    rho = 0.3
    dro, ref = GroupDRO(2, eta=0.5), GroupDRO(2, eta=0.5)
    step = _Squares(w0)
    train_one_epoch(step, torch.optim.SGD(step.parameters(), lr=0.1), [np.arange(8)], lambda p: imgs[p], y, CPU,
                    groups=groups, dro=dro, sam_rho=rho)
    weights = ref.sample_weights((X @ w0 - y) ** 2, groups)  # the weights the first pass's losses give

    def grad(v):
        return X.T @ (weights * 2 * (X @ v - y))

    g = grad(w0)
    expected = w0 - 0.1 * grad(w0 + rho * g / np.linalg.norm(g))
    np.testing.assert_allclose(step.w.detach().numpy(), expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(dro.q, ref.q, rtol=1e-6)


def test_sam_updates_batchnorm_statistics_once_a_step():
    """BatchNorm first in the step sees the same inputs in both passes; its running mean after one step is
    momentum x the batch mean (0.1 m from 0), not the 0.19 m two updates would give, and one batch is counted."""
    imgs, y, X = _batch(seed=4)
    step = _Squares(np.random.default_rng(5).normal(size=12), norm=True)
    train_one_epoch(step, torch.optim.SGD(step.parameters(), lr=0.1), [np.arange(8)], lambda p: imgs[p], y, CPU,
                    sam_rho=0.05)
    np.testing.assert_allclose(step.norm.running_mean.numpy(), 0.1 * X.mean(0), rtol=1e-5)
    np.testing.assert_allclose(step.norm.running_var.numpy(), 0.9 + 0.1 * X.var(0, ddof=1), rtol=1e-5)
    assert int(step.norm.num_batches_tracked) == 1


def test_sam_is_refused_where_it_cannot_work(tiny_synth, tmp_path):
    with pytest.raises(ValueError, match="sam_rho"):
        TrainConfig(sam_rho=-0.1)
    for extra in (["--sam-rho", "-1"], ["--sam-rho", "0.05", "--precision", "fp16"]):
        r = CliRunner().invoke(app, ["train", str(tiny_synth), "--out", str(tmp_path / "r"), "--epochs", "1", *extra])
        assert r.exit_code == 2 and "sam_rho" in r.output.replace("-", "_") and "Traceback" not in r.output, r.output
        assert not (tmp_path / "r").exists()
    with pytest.raises(ValueError, match="float16"):
        train_one_epoch(_Squares(np.zeros(12)), torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1), [],
                        lambda p: p, np.zeros(0, np.float32), CPU, sam_rho=0.05,
                        scaler=torch.amp.GradScaler("cpu"))


@pytest.mark.parametrize("method, extra", [("group-dro", {}),
                                           ("dbvae", dict(recipe="paper", refresh_weights=False))])
def test_a_sam_run_trains_and_moves_differently(tiny_synth, tmp_path, method, extra):
    """A short run with SAM finishes with finite losses (compiled-step path included where the run compiles) and its
    weights differ from the same run without it."""
    from debias.models.run import load_weights

    fast = dict(epochs=2, batch_size=32, width=4, latent_dim=8, max_train=256, seed=0, compile=False)
    runs = {}
    for rho in (0.0, 0.05):
        cfg = TrainConfig(method=method, sam_rho=rho, **fast, **extra)
        fit(tiny_synth, cfg, tmp_path / f"r{rho}")
        runs[rho] = load_weights(tmp_path / f"r{rho}" / "model.pt", CPU)["state_dict"]
    a, b = runs[0.0], runs[0.05]
    assert all(torch.isfinite(v).all() for v in b.values() if v.is_floating_point())
    assert any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())
