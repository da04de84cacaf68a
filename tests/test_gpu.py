"""The CUDA path: run with `pytest -m gpu` on a machine with a GPU. Every test here skips without one.

Each compares the GPU against the CPU on the same weights and images, so a wrong transfer, conversion or
precision setting shows as a difference, not as a crash only. DDP with nccl is in test_train.py
(`test_ddp_two_processes[cuda]`, also marked gpu; it needs 2 GPUs).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from debias.config import TrainConfig
from debias.data.manifest import host_batch, on_device, read_manifest, to_tensor
from debias.models.run import predict_scores
from debias.train import fit, load_run

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(),
                                 reason="needs a CUDA device (torch.cuda.is_available() is False)")]
FAST = dict(epochs=2, batch_size=32, width=4, latent_dim=8, max_train=256, compile=False)
CUDA = torch.device("cuda")


def _test_images(root):
    m = read_manifest(root)
    return np.load(root / "images.npy")[m[m.split == "test"].image.to_numpy()]


def test_uint8_batch_is_pinned_and_converted_on_the_gpu_exactly():
    b = np.random.default_rng(0).integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)
    h = host_batch(b, CUDA)
    assert h.dtype == torch.uint8 and h.is_pinned()
    x = on_device(h, CUDA)
    assert x.is_cuda and torch.equal(x.cpu(), to_tensor(b))


@pytest.mark.parametrize("method", ["standard", "dbvae", "group-dro"])
def test_training_on_cuda_and_its_scores_match_the_cpu(tiny_synth, tmp_path, method):
    hist = fit(tiny_synth, TrainConfig(method=method, device="cuda", **FAST), tmp_path)
    assert np.isfinite(hist["loss"]).all()
    model, _ = load_run(tmp_path)
    x = _test_images(tiny_synth)
    s_cpu, _ = predict_scores(model.cpu(), lambda pos: x[pos], len(x), torch.device("cpu"))
    s_gpu, _ = predict_scores(model.to(CUDA), lambda pos: x[pos], len(x), CUDA)
    assert np.allclose(s_cpu, s_gpu, atol=1e-4)


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_mixed_precision_training_on_cuda(tiny_synth, tmp_path, precision):
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16")
    hist = fit(tiny_synth, TrainConfig(method="dbvae", recipe="paper", device="cuda", precision=precision, **FAST), tmp_path)
    assert np.isfinite(hist["loss"]).all() and (tmp_path / "model.pt").exists()


def test_audit_on_cuda_matches_the_cpu(tiny_synth, tmp_path):
    from debias.audit.adapters import load_adapter

    fit(tiny_synth, TrainConfig(method="standard", **FAST), tmp_path / "run")
    x = list(_test_images(tiny_synth))
    cpu = load_adapter(f"run:{tmp_path / 'run'}", device="cpu").score(x)
    gpu = load_adapter(f"run:{tmp_path / 'run'}", device="cuda").score(x)
    assert np.allclose(cpu, gpu, atol=1e-4)
