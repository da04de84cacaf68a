"""Export a trained run as a deployable classifier: TorchScript or ONNX, (B, 3, H, W) in [0, 1] -> face logit."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from debias.models.run import load_run


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
