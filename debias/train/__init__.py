"""Training: ``fit`` (every method, and the DB-VAE recipes), one epoch of optimisation, evaluation and export.

Rooms: ``trainset`` (the data as training reads it), ``loop`` (the step and the epoch), ``state`` (checkpoints and
run files), ``samplers`` (which faces each batch holds), ``recipes`` (what ``--method dbvae`` trains), ``fit``
(a run from start to end) and ``export``.

Methods (``TrainConfig.method``):

- ``standard``: classifier, uniform sampling (a permutation of the training split each epoch).
- ``dbvae``: the DB-VAE's label-free debiasing; ``recipe`` two-stage (default) or paper (``recipes``).
- ``vae-uniform``: DB-VAE loss, uniform face sampling (ablation: the VAE loss without resampling).
- ``balanced``: classifier, faces sampled with p ~ n_g^-balance_power over the groups of ``balance_by``
  (labelled reference; power 1 gives every group equal mass, 0.5 is a tempered balance).
- ``group-dro``: Group DRO (Sagawa et al. 2020): group-balanced sampling plus online group weights on
  the loss; non-faces form one more group.
- ``jtt``: Just Train Twice: a classifier trained ``jtt_epochs``, its training errors upweighted by
  ``jtt_lambda`` for a second classifier trained from scratch.
- ``loss-resample``: classifier, faces resampled each epoch in proportion to their loss under the
  current model (no labels beyond face / non-face).
"""
from __future__ import annotations

from debias.models.run import load_run, predict_scores, resolve_device
from debias.train.export import export_onnx, export_torchscript
from debias.train.fitting import fit
from debias.train.loop import build_model, evaluate, train_one_epoch
from debias.train.recipes import resolve
from debias.train.samplers import read_face_weights
from debias.train.trainset import TrainingError, TrainSet, load_train_set

__all__ = ["fit", "train_one_epoch", "evaluate", "predict_scores", "load_run", "export_torchscript", "export_onnx",
           "TrainingError", "resolve_device", "load_train_set", "read_face_weights", "build_model", "resolve",
           "TrainSet"]
