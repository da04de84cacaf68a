"""New faces from a generative model: a DCGAN (``dcgan``) or a DB-VAE's decoder (``decoder``), drawn toward the rare
regions of a DB-VAE's latent (``rarity``), measured against held-out real faces (``quality``), drawn in a gallery
(``gallery``), and written as a dataset folder that training can add to its faces (``pipeline``)."""
from __future__ import annotations

from debias.generative.pipeline import GenerateResult, generate
from debias.generative.quality import prdc, probe_auc

__all__ = ["generate", "GenerateResult", "prdc", "probe_auc"]
