"""debias: audit face detectors for bias across skin tone, pose and gender, and retrain them with
debiased sampling (DB-VAE).

    import debias
    audit = debias.Audit.from_models("data/synthfaces", ["run:runs/standard", "run:runs/dbvae"])
    audit.difference("detection_rate", by="skin_group")
    run = debias.fit("data/synthfaces", method="dbvae", out="runs/dbvae", epochs=6)

``import debias`` is light: torch, OpenCV and matplotlib load only when a function needs them.
"""
from __future__ import annotations

from debias.errors import DebiasError

__version__ = "0.1.0"
__all__ = ["Audit", "fit", "generate", "Run", "DebiasError", "AuditConfig", "TrainConfig", "SynthConfig",
           "GenerateConfig", "__version__"]

_LAZY = {"Audit": "debias.api", "fit": "debias.api", "generate": "debias.api", "Run": "debias.api",
         "AuditConfig": "debias.config", "TrainConfig": "debias.config", "SynthConfig": "debias.config",
         "GenerateConfig": "debias.config"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'debias' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
