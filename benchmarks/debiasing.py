"""The debiasing benchmark: methods x settings x seeds, paired by seed, resumable.

    .venv/bin/python benchmarks/debiasing.py run [--settings skin pose] [--seeds 0 1 2 3 4] [--epochs 6]
    .venv/bin/python benchmarks/debiasing.py summary   # intervals, decomposition, figures, markdown table
    .venv/bin/python benchmarks/debiasing.py run --seeds 5 6 7 8 9 --settings skin --methods standard intrinsic LABEL
    .venv/bin/python benchmarks/debiasing.py confirm   # the same summary on seeds 5-9, which chose nothing
    .venv/bin/python benchmarks/debiasing.py pooled    # all seeds 0-9, methods that ran on every one
    .venv/bin/python benchmarks/debiasing.py length    # each metric from one training length to the next
    .venv/bin/python benchmarks/debiasing.py variants --epochs 24   # each method with and without a training variant
    .venv/bin/python benchmarks/debiasing.py options --epochs 24    # each label against the label it extends
    .venv/bin/python benchmarks/debiasing.py compositions --epochs 24   # each method with more rare faces vs without
    .venv/bin/python benchmarks/debiasing.py pair --epochs 24 --settings skin --methods balanced group-dro
        # any two labels paired by seed: metric differences, shares closed, distance from the 2/3 target
    .venv/bin/python benchmarks/debiasing.py cells --settings skin-cos --epochs 24 --seeds 0 1 --methods standard
        # retrain runs recorded before runs wrote their skin x pose cells; appended only if the run reproduces
    .venv/bin/python benchmarks/debiasing.py run --settings skin --n-train 100000 --device cuda --workers 4 \
        --methods standard intrinsic balanced "dbvae center ess0.1 frozen smooth50 loss" --long-seeds
    .venv/bin/python benchmarks/debiasing.py summary --n-train 100000   # the scale setting: *_n100000.* files

``run`` trains one model per (setting, method, seed), scores the balanced test split, picks the
threshold where the overall false-positive rate is 1%, and appends one row to
``benchmarks/results/debiasing_runs.csv`` as soon as that run finishes. Runs already in the CSV are
skipped, so a killed benchmark continues where it stopped. Jobs are submitted seed by seed, so the runs
finished at any time cover the earliest seeds, and the summaries pair only seeds on which both methods ran.

Each seed renders its own data set (``debias data synth --seed S``), so the intervals across seeds
include the variation of the data, not just of the initialisation.

Settings (training composition; the test split is always balanced):
- ``skin``: the default bias (2% darker, 5% medium, 3% profile, 5% three-quarter faces).
- ``pose``: pose is the rare factor (2% profile, 5% three-quarter); skin groups are balanced.
Each setting also trains ``standard`` on a *balanced composition* of the same size (``intrinsic``):
the gap left there is what the pixels themselves make hard; the rest of the gap of ``standard`` is
the representation gap that resampling exists to close.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # the library is imported where a run needs it, in the worker (see _one)
    from debias.config import TrainConfig

RESULTS = Path(__file__).parent / "results"
RUNS = RESULTS / "debiasing_runs.csv"
SETTINGS = {
    "skin": dict(),
    # the second family: benchmarks/render_b.py draws the faces (geometry, shading, backgrounds, noise and non-faces of
    # its own) with the skin setting's bias, and a skin tone the training set never shows
    "b-skin": dict(),
    "pose": dict(darker_share=0.33, medium_share=0.33, profile_share=0.02, three_quarter_share=0.05),
}
# the balanced composition used for each setting's intrinsic gap
INTRINSIC = {
    "skin": dict(darker_share=0.33, medium_share=0.33),
    "b-skin": dict(darker_share=0.33, medium_share=0.33),
    "pose": dict(darker_share=0.33, medium_share=0.33, profile_share=0.33, three_quarter_share=0.33),
}
TARGET_GAP = {"skin": "skin_gap", "pose": "pose_gap", "b-skin": "skin_gap"}
FAMILY_B = ("b-skin",)  # settings rendered by benchmarks/render_b.py instead of debias data synth  # the gap each setting is about
# `pose` at 24 epochs (session 34): the convergence length of `skin`, where every conclusion drawn at 6 epochs moved
# (RESULTS.md), had never been run on `pose`. Methods: standard, intrinsic, group-dro (by pose), loss-resample (the
# label-free method that closed 44% [24, 60] there at 6 epochs). Predictions written before any run (seeds 0-4):
# (1) `standard`'s frontal-profile gap narrower than at 6 epochs (12.5 [8.3, 16.8]): 3-9 points; (2) Group DRO closes
# 60-100% of the representation gap; (3) `loss-resample` closes less than at 6 epochs (it lost its share on `skin` at
# convergence once every face was fitted): -20% to 30%, below Group DRO beyond noise.
# Outcome (session 34): (1) 1.8 [1.3, 2.4], failed in the good direction; (2) 45% [25, 70], failed; (3) -2% [-57, 51],
# below Group DRO by -47 [-91, -6] points: held.
# Then the latent-cluster Group DRO (resampled) on the same seeds, prediction written before it ran: (4) it closes
# -40% to 25% of the pose representation gap, within noise of `standard` (the DB-VAE latent does not encode pose:
# |rho| with yaw <= 0.08), below Group DRO in point estimate.
# Outcome: -50% [-154, 29], pose gap +0.9 [-1.4, +3.2] vs standard (51-57% of the mass on darker faces): held.
# Session 35: the same four methods on the confirmation seeds 5-9, which chose nothing. Predictions written before
# they ran: (5) `standard`'s frontal-profile gap on seeds 5-9 is 0.5-4 points (1.8 [1.3, 2.4] on seeds 0-4); (6) over
# seeds 0-9 Group DRO closes 20-70% of the pose representation gap and narrows the gap against `standard` (paired
# interval below 0); (7) `loss-resample` within noise of `standard` on the pose gap over seeds 0-9.
# Outcome (session 36): (5) held as a mean (3.3 points on seeds 5-9; 1.8 on 0-4), not seed by seed (5.0 and 4.2 on
# seeds 5 and 8); (6) held: 59% [34, 79] over seeds 0-9, pose gap -1.5 [-2.6, -0.4]; (7) held: -0.8 [-2.1, +0.5] (33%
# [-8, 64]).
# Training variants: a setting's data with every method (intrinsic included) trained with other options, summarised
# as a setting of its own so closure is measured against `standard` and `intrinsic` trained the same way.
# skin-aug+ (session 10): stronger geometric augmentation, +-15 degrees rotation and +-20% zoom (default: none and
# +-10%). At 24 epochs every method fits all ~185 darker training faces yet recalls ~95% of darker test faces;
# more varied views of the same faces is the training change that could narrow that. Still geometry only.
# skin-wdX (session 12): decoupled weight decay X on every method. Sagawa et al. (2020): reweighting and Group DRO
# improve worst groups at convergence only under strong regularisation. The decay is chosen on `standard` alone,
# by a rule fixed before any run: the largest of 0.1, 0.3, 1.0 whose accuracy over seeds 0-1 (24 epochs) is at most
# 0.3 points below `standard` without decay on the same seeds; every other method then runs at that decay only.
# skin-cos (session 18): every method anneals its learning rate along a cosine to ~0 (`lr_schedule`). At 24 epochs
# with the constant rate, the smoothed DB-VAE's seed 8 ended collapsed (accuracy 93.6) with no trend in its history:
# the model is wherever the last noisy step left it. Annealing is the standard end of training (nanoGPT, torchvision).
# skin-lcn (session 32): every method reads each image's local contrast beside its pixels (`--input-norm local`,
# models.classifier.LocalContrast: 9x9 windows, eps 0.02, both fixed before any run). At 24 epochs on `skin` what is
# left of the gap is mostly the darker profile cell (2-10 training faces; detected 81% by `standard`, 89-90% by Group
# DRO and the latent-cluster Group DRO, 98.5% by `intrinsic`, 20 seeds): profile views are learnt from ~280 lighter
# ones, whose features have more pixel contrast than the same features on darker skin. Normalised, a feature has
# about the same contrast on either skin, so what is learnt on lighter profiles can transfer to darker ones: a change
# to compositional generalisation, which no reweighting of the same ~6 faces supplies. Methods, seeds 0-4, 24 epochs:
# standard, intrinsic, group-dro and the latent-cluster Group DRO, resampled (the best label-free method there).
# Predictions, written before any run: (1) `standard`'s lighter-darker gap is narrower than on `skin` (paired by
# seed, interval below 0) and its darker profile recall higher; (2) `intrinsic`'s gap within noise of `skin`'s;
# (3) the latent-cluster Group DRO closes at least 2/3 of skin-lcn's representation gap in point estimate, with
# accuracy not below skin-lcn `standard`'s (interval) and worst group within 3 points of skin-lcn Group DRO's.
# If (1) holds strongly the representation gap shrinks and (3) is measured on a small gap: say so.
# skin-swa (session 33): every method saves the average of its weights at the end of epochs 13-24 (`--swa-from 12`,
# stochastic weight averaging, Izmailov et al. 2018; BatchNorm statistics recomputed over the last epoch's batches).
# At convergence each method fits every darker training face and what is left is generalisation from few of them;
# an average of weights sits in a flatter region than the last noisy step, which generalises better, and most where
# the model is least sure: the darker faces. The second half of training (12 of 24), fixed before any run, constant
# rate as in the paper's recipe. Methods, seeds 0-4, 24 epochs: standard, intrinsic, the latent-cluster Group DRO
# (resampled) and Group DRO. Predictions written before any run: (1) accuracy of `standard` not lower than on `skin`
# (paired interval reaching 0 or above) and its gap within noise of `skin`'s; (2) the latent-cluster Group DRO closes
# 40-75% of skin-swa's representation gap (58% [36, 78] on `skin`, same seeds), within noise of itself without SWA;
# reaching 2/3 about 1 in 3; (3) no seed of any method collapses (accuracy >= 97%).
# Seeds 0-4 (session 33): `standard`'s gap narrowed 6.5 -> 4.2 (-2.4 [-3.7, -1.0]) with SWA, accuracy +0.5 [+0.2, +0.8].
# Confirmation on seeds 5-9, `standard` only (time), prediction written before they ran: its lighter-darker gap is
# narrower with SWA than on `skin` on these seeds in point estimate, and over seeds 0-9 the paired interval excludes 0;
# accuracy not lower.
# Session 34: intrinsic, Group DRO and the latent-cluster Group DRO (resampled) on seeds 5-9, so every skin-swa
# method has 10 seeds. Predictions written before they ran: (4) over seeds 0-9 the latent-cluster Group DRO closes
# 25-60% of skin-swa's representation gap, its interval below 2/3's reach at its upper end or just touching it, and
# within noise of Group DRO's share; (5) Group DRO with SWA keeps accuracy at or above Group DRO without it (paired
# interval reaching 0 or above) over seeds 0-9; (6) no run collapses (accuracy >= 97%).
# Outcome (session 34): (4) 35% [17, 51], in range, but below Group DRO's 58% [44, 69] beyond noise; (5) +0.6 [+0.3,
# +0.8]: held; (6) held (98.6-99.4).
# skin-wN (session 37): every method with the lab CNN at width N instead of 12 (conv widths N, 2N, 4N, 6N; the FC
# layer's input shrinks with them). Sagawa, Raghunathan, Koh & Liang (ICML 2020, "An investigation of why
# overparameterization exacerbates spurious correlations"): upweighting a rare group helps its test accuracy at
# convergence only when the model is too small to memorise its training examples; an overparameterised model fits
# them and learns nothing general from them. That is this benchmark's floor: at 24 epochs every resampled model
# recalls 100% of the ~185 darker training faces and 94-98% of darker test faces; weight decay 0.1 (skin-wd0.1),
# stronger jitter (skin-aug+) and mixup did not stop that fitting. Capacity is the lever the paper measured. Pilot,
# rule fixed before any run: `standard` and Group DRO at widths 6 and 3, seeds 0-1, 24 epochs; the full batch
# (standard, intrinsic, Group DRO, the latent-cluster Group DRO resampled; seeds 0-4) runs at the largest of the two
# widths at which Group DRO's recall of darker *training* faces (mean over seeds 0-1) is below 99% and `standard`'s
# accuracy is at most 1.0 point below width 12's on the same seeds (97.6, 98.1). If neither width qualifies, the full
# batch does not run and the pilot is the result.
# Pilot predictions, written before any run: (P1) at width 6 Group DRO still recalls >= 99% of the darker training
# faces (the FC layer alone can memorise ~185 faces); (P2) at width 3 it recalls 97-100%; (P3) `standard`'s accuracy
# at width 6 is within 0.5 points of width 12's, at width 3 0.5-2 points below it. So most likely neither width
# qualifies.
# Pilot outcome (session 37): neither width qualifies; the full batch did not run. Group DRO recalls 100% of the
# darker training faces at width 6 and 99.7% at width 3 (P1, P2 held); `standard`'s accuracy is 0.6 points below width
# 12's at width 6 (P3 failed narrowly: predicted within 0.5) and 4.1 below at width 3 (P3 failed: predicted 0.5-2).
# Smaller is worse for Group DRO too: accuracy 96.4 and 96.6 against 98.2, worst group 82 against 89 (2 seeds).
# skin-sam0.05 (session 38): `intrinsic` trained with SAM (`--sam-rho 0.05`), the reference the SAM labels below
# (`standard sam0.05`, ... `sam0.05`, all on `skin`) lacked: with it, the share of the representation gap each closes
# is measured against a balanced composition trained the same way. Only `intrinsic` runs under this setting; the
# other methods with SAM are the `skin` rows labelled `sam0.05` (the same TrainConfig). Seeds 0-4, 24 epochs.
# Predictions written before any run: (S6) `intrinsic`'s gap with SAM within noise of itself without (paired interval
# includes 0; 0.2 without on seeds 0-4), mean in [-0.5, +1.0]; so (S7) `standard sam0.05` closes 35-55% of the
# representation gap measured against it (43% against `intrinsic` without SAM), and the latent-cluster Group DRO with
# SAM 50-70% (58%).
# Outcome (session 38): (S6) held: `intrinsic`'s gap 0.2 -> 0.1 (-0.1 [-1.0, +0.8]); with SAM its accuracy rises 0.3
# [0.1, 0.4] and its pose gap narrows 1.1 [0.3, 1.8]. (S7) held: measured against `standard` and this `intrinsic`,
# `standard sam0.05` closes 43% [32, 53], the latent clusters with SAM 57% [43, 68] (Group DRO with SAM 63% [50,
# 76]); measured against `standard sam0.05` and this `intrinsic` (`pair --references "standard sam0.05"
# skin-sam0.05`), the representation gap SAM leaves, 3.7 points, is closed 26% [-10, 45] by the latent clusters with
# SAM and 36% [-2, 62] by Group DRO with SAM.
# skin-wd*, skin-cos and skin-lcn describe committed rows of training options that left the product (weight_decay,
# lr_schedule, input_norm; RESULTS.md, rejected experiments): check out f8d2744 to rerun them.
VARIANTS = {"skin-aug+": ("skin", dict(aug_rotate=15.0, aug_scale=0.2)),
            **{f"skin-w{w}": ("skin", dict(width=w)) for w in (6, 3)},
            **{f"skin-wd{wd:g}": ("skin", dict(weight_decay=wd)) for wd in (0.1, 0.3, 1.0)},
            "skin-cos": ("skin", dict(lr_schedule="cosine")),
            "skin-lcn": ("skin", dict(input_norm="local")),
            "skin-swa": ("skin", dict(swa_from=12)),
            "skin-sam0.05": ("skin", dict(sam_rho=0.05)),
            # pose-sam0.05 (session 50): pose's `intrinsic` trained with SAM, the pose analogue of skin-sam0.05 (S37)
            "pose-sam0.05": ("pose", dict(sam_rho=0.05))}


# Composition variants: a setting or training variant whose training set has another composition (its test split,
# and its intrinsic composition, stay those of its base setting). skin-cos-darker6 (session 21): skin-cos with 6%
# darker training faces instead of 2%, ~550 distinct darker faces instead of ~185, same size and training. At 24
# epochs (cosine) even the labelled Group DRO closes only 42% [24, 53] of the representation gap (10 seeds); the
# reading then: every method fits all the darker training faces and what is left is generalisation from too few
# distinct ones. Prediction, written before any run: with 3x as many distinct darker faces, Group DRO closes a
# clearly larger share. A diagnosis of the benchmark, not a setting to choose methods on.
COMPOSITIONS = {"skin-cos-darker6": ("skin-cos", dict(darker_share=0.06))}


def _variant(setting: str) -> tuple[str, dict]:
    """(the data setting it trains on, its extra TrainConfig options) for a setting or training variant."""
    if setting in COMPOSITIONS:
        return _variant(COMPOSITIONS[setting][0])
    return VARIANTS.get(setting, (setting, {}))


def _composition(setting: str, intrinsic: bool) -> tuple[dict, str]:
    """(SynthConfig shares, cache tag) of the training data a run of ``setting`` renders: the base setting's, or its
    balanced composition for ``intrinsic``, with a composition variant's shares on top (and in its tag, so that it
    never shares a cache folder with data of another composition)."""
    base = _base(setting)
    if intrinsic:
        return INTRINSIC[base], f"{base}-balanced"
    extra = COMPOSITIONS[setting][1] if setting in COMPOSITIONS else {}
    return {**SETTINGS[base], **extra}, "-".join([base, *(f"{k}{v:g}" for k, v in extra.items())])


def _base(setting: str) -> str:
    return _variant(setting)[0]

TONE_GROUP = {**{t: "lighter" for t in range(1, 5)}, 5: "medium", 6: "medium", **{t: "darker" for t in range(7, 11)}}

# the smoothed DB-VAE (its weights averaged over each face's 50 nearest latent neighbours), which many labels extend
SMOOTH50 = dict(method="dbvae", recipe="paper", rec_region="center", min_ess=0.1, refresh_weights=False, smooth_k=50)
# label -> TrainConfig options. Every method trains with augmentation unless its label says no-aug.
METHODS = {
    # what `debias train DATA --out RUN` trains, with no other option (the two-stage recipe, resolved for the data)
    "default": dict(),
    "standard": dict(method="standard"),
    "standard no-aug": dict(method="standard", augment=False),
    "vae-uniform": dict(method="vae-uniform"),
    "dbvae (paper)": dict(method="dbvae", recipe="paper"),
    "dbvae ess0.1": dict(method="dbvae", recipe="paper", min_ess=0.1),
    # weights computed once, after the first epoch, and kept (--freeze-weights): the pilot saw the
    # per-epoch density find darker faces early and lose them as the shared encoder specialises
    "dbvae frozen": dict(method="dbvae", recipe="paper", refresh_weights=False),
    "dbvae center ess0.1": dict(method="dbvae", recipe="paper", rec_region="center", min_ess=0.1),  # ablation: the same, refreshed
    "dbvae center ess0.1 frozen": dict(method="dbvae", recipe="paper", rec_region="center", min_ess=0.1, refresh_weights=False),
    # the same, each face's log-weight averaged over its 20 nearest latent neighbours (session 5)
    "dbvae center ess0.1 frozen smooth20": dict(method="dbvae", recipe="paper", rec_region="center", min_ess=0.1,
                                                refresh_weights=False, smooth_k=20),
    "dbvae center ess0.1 frozen smooth50": dict(SMOOTH50),
    # the same, its weights read after at most 20,000 training images (--freeze-after 20000) instead of after the first
    # epoch: on the 20,000-image sets the same run (an epoch is 19,968 images); on the scale setting (100,000 images) it
    # reads the latent at the point of training the variant was chosen at (session 13: frozen after one 100,000-image
    # epoch the latent put 0.9% of the mass on darker faces, one trained on 20,000 images 26%; seed 0)
    "dbvae center ess0.1 frozen smooth50 at20k": dict(SMOOTH50, freeze_after=20_000),
    # training precision (issue 13): bf16 autocast + channels_last, adopted only if accuracy holds
    "standard bf16-cl": dict(method="standard", precision="bf16", channels_last=True),
    "dbvae center ess0.1 frozen smooth50 bf16-cl": dict(SMOOTH50, precision="bf16", channels_last=True),
    # deferred resampling (session 25; for 24-epoch runs): the smoothed DB-VAE's weights, read at the same point
    # (after 20,000 images, --freeze-after 20000), but sampling stays uniform until epoch 19 of 24 (--resample-from
    # 18): deferred re-weighting (DRW, Cao et al. 2019), whose finding on imbalanced classes is that re-weighting
    # from the start learns worse features than re-weighting only the last stage. Over 24 epochs the resampled
    # DB-VAE shows each of ~185 darker faces ~370 times; deferred, ~115. 18 = the last quarter, fixed before any run
    # (Cao et al. defer at 160 of 200 epochs). Prediction written before any run: closes more of the representation
    # gap at 24 epochs on `skin` than the smoothed DB-VAE resampling from epoch 2 (18%), whose weights it shares
    "dbvae center ess0.1 frozen smooth50 defer18": dict(SMOOTH50, freeze_after=20_000, resample_from=18),
    # Group DRO over the skin x pose cells (labelled; session 20): at 24 epochs most of the skin gap is the darker
    # profile cell, 2-10 training faces a seed, which Group DRO by skin alone gives ~1/3 x 6/185 of its mass. Does a
    # reference that targets the intersection close more, or is the floor the handful of faces?
    "group-dro skin x pose": dict(method="group-dro", balance_by=("skin_group", "pose")),
    "balanced": dict(method="balanced"),
    "balanced no-aug": dict(method="balanced", augment=False),
    "balanced sqrt": dict(method="balanced", balance_power=0.5),
    "group-dro": dict(method="group-dro"),
    # Model selection (session 35; --keep best): save the epoch whose worst validation group has the lowest loss
    # instead of the last epoch's. Sagawa et al. (2020) found the worst group at convergence depends on where training
    # stops, and select by the worst group on validation data; GEORGE (Sohoni et al. 2020) does the same without
    # labels, with the validation faces put in the training faces' clusters. At 24 epochs with a constant rate every
    # method fits all ~185 darker training faces and the end point is wherever the last noisy step left it (seed 8's
    # smoothed DB-VAE ended collapsed). The criterion (the largest mean cross-entropy of any group: Group DRO's groups,
    # or faces and non-faces) was fixed before any run. The validation split is small: 500 faces, 8 darker on seed 0.
    # Predictions written before any run (24 epochs, `skin`, seeds 0-4, paired with the rows already there):
    # (1) the latent-cluster Group DRO with `best` closes 45-85% of the representation gap (58% [36, 78] without),
    # within noise of itself without, reaching 2/3 about 1 in 2; accuracy within 0.5 points of itself without;
    # (2) `standard best`'s gap within noise of `standard`'s (it selects on faces vs non-faces, which says nothing
    # about skin); (3) Group DRO `best` within noise of Group DRO on the gap; (4) most kept epochs in the second half
    # (13-24), since validation loss keeps falling slowly at a constant rate.
    # Outcome (seeds 0-4, session 35): (1) failed: 18% [4, 30], gap +2.5 [+1.0, +4.0] and accuracy -0.5 [-0.9, -0.1]
    # against itself without; (2) held (+1.0 [-1.1, +3.1]); (3) held in interval (+1.8 [-2.3, +6.0], 37% [22, 55]);
    # (4) held: kept epochs 14-24. Off by default (RESULTS.md).
    # A larger Group DRO step (session 35; --dro-eta 0.03, 3x Sagawa et al.'s 0.01, the one value fixed before any
    # run). Why: the latent-cluster Group DRO's weights, which set each cluster's sampling mass under --dro-resample,
    # grow slowly (the darker-holding cluster 0.13 -> 0.27 over epochs 2-6 on seed 0; 8-17% of the mass on darker
    # faces at 6 epochs, 13-27% at 24, against the labelled Group DRO's 33%): it upweights the rare faces less, and
    # later, than the labelled reference it trails. A 3x step triples the drift of the log-weights. Predictions
    # written before any run (24 epochs, `skin`, seeds 0-4, paired with the rows at 0.01): (1) the latent-cluster
    # variant ends with 25-45% of the mass on darker faces; (2) it closes 45-85% of the representation gap (58%
    # [36, 78] at 0.01), within noise of itself at 0.01, reaching 2/3 about 1 in 3; (3) its accuracy within 0.5
    # points of itself at 0.01 and no seed below 97%; (4) Group DRO at 0.03 within noise of Group DRO on the gap
    # (it samples its groups equally; the step moves only its loss weights).
    # Outcome (session 36): (1) held: 27-30% of the mass on darker faces (22-26% at 0.01); (2) failed: 39% [22, 52]
    # (58% [36, 78] at 0.01; -19 [-43, +0] points, at the edge of noise), its gap 2.9 -> 4.1 (+1.2 [-0.8, +3.2]), no
    # seed at 2/3; (3) held: accuracy -0.3 [-0.9, +0.2], every seed 98.0-98.7; (4) held on the gap (+1.5 [-0.9, +4.0]),
    # though its share fell 66% -> 42% (-24 [-46, -0]). More mass on the darker faces, a wider gap: not the lever.
    "group-dro eta0.03": dict(method="group-dro", dro_eta=0.03),
    # Session 37: sharpness-aware minimisation (`--sam-rho 0.05`, Foret et al. 2021's radius, fixed before any run;
    # Rangwani et al. 2022 use it for SAM on a reweighted loss in their GLMC runs). Why: at convergence every
    # reweighted model fits all ~185 darker training faces and recalls 94-98% of darker test faces; Rangwani et al.
    # find that a reweighted loss leaves the minority's loss at a saddle point and that SAM on it lifts the
    # minority's test accuracy, the generalisation the other levers (jitter, decay, mixup, averaging, capacity) did
    # not buy here. Labels: Group DRO and the latent-cluster Group DRO (resampled) with SAM, then `standard sam0.05`,
    # the control (does SAM alone narrow the gap?). 24 epochs, `skin`, seeds 0-4, paired with the same label without
    # SAM. Predictions written before any run: (1) the latent-cluster variant closes 40-80% of the representation gap
    # (58% [36, 78] without SAM), within noise of itself without; at least 2/3 in point estimate about 1 in 3;
    # (2) Group DRO with SAM within noise of Group DRO on the gap; (3) neither's accuracy below itself without SAM
    # (paired interval reaching 0 or above), no run below 97%; (4) both still recall >= 99% of the darker training
    # faces; (5) `standard sam0.05` narrows `standard`'s gap in point estimate, not beyond noise.
    # Outcome (session 37): (1) held, and the lever does nothing for the gap: 58% [44, 72] closed, 58% [36, 78] without
    # (gap 2.9 -> 2.8, -0.0 [-1.6, +1.5]; no seed at 2/3 in the mean's sense), 16-24% of the mass on darker faces
    # (22-26% without); (2) held: Group DRO's gap 2.4 -> 2.4 (+0.1 [-1.9, +2.1]), 64% [53, 77] closed; (3) held:
    # accuracy +0.5 [+0.2, +0.8] (Group DRO) and +0.2 [-0.2, +0.6] (latent clusters), every run 98.5-99.2; (4) held:
    # every run recalls 100% of its darker training faces. What SAM did buy: Group DRO's frontal-profile gap -2.5
    # [-4.4, -0.6] and worst group +3.4 [-0.5, +7.3].
    # (5) failed: SAM alone narrows `standard`'s gap beyond noise, 6.5 -> 3.8 (-2.8 [-4.1, -1.4]), accuracy +0.6 [+0.3,
    # +0.9], worst group +4.4 [+1.8, +7.0]; against `standard sam0.05` the latent clusters with SAM narrow the gap only
    # within noise (-0.9 [-2.8, +1.0]): 26% [-10, 43] of the 3.6 points left to `intrinsic` (without SAM, not run).
    # Session 38: `standard sam0.05` on the confirmation seeds 5-9, which chose nothing, because (5) failed: the
    # finding that SAM alone narrows `standard`'s gap was not predicted. Predictions written before any run: (S8) over
    # seeds 5-9 `standard sam0.05`'s gap is below `standard`'s in point estimate (6.2 without), and over seeds 0-9 the
    # paired interval of the difference lies below 0; (S9) its accuracy over seeds 0-9 is above `standard`'s (paired
    # interval above 0), no run below 97%.
    # Outcome (session 38): (S8) held: every seed 5-9 narrower (8.8 -> 4.0, 5.6 -> 3.5, 3.5 -> 1.0, 6.8 -> 3.2, 6.4 ->
    # 2.6); over seeds 0-9 the gap 6.4 -> 3.3, -3.0 [-3.8, -2.3], 52% [41, 63] of the representation gap closed (seeds
    # 5-9: 62% [48, 75]), as much as the latent-cluster Group DRO without SAM (51% [35, 67]; paired gap -0.0 [-1.4,
    # +1.3]). (S9) held: accuracy +0.7 [+0.5, +0.9], every run 98.4-99.1; worst group +5.3 [+3.6, +6.9], pose gap
    # -2.2 [-3.2, -1.2].
    # Then the latent-cluster Group DRO with SAM on seeds 5-9, so that the label-free method's SAM comparison stands on
    # 10 seeds. Predictions written before it ran: (S10) over seeds 0-9 its gap within noise of itself without SAM
    # (paired interval includes 0) and its share closed within 20 points of itself without; (S11) accuracy not below
    # itself without (paired interval reaching 0 or above), every run recalls >= 99% of its darker training faces.
    # Outcome (session 38): (S10) held: over seeds 0-9 gap 3.4 -> 3.0 (-0.4 [-1.6, +0.9]), share 51% -> 57% [40, 73]
    # (+6 [-9, +24] points); (S11) held: accuracy +0.2 [-0.0, +0.5], every run 98.4-99.2, every run recalls 100% of its
    # darker training faces. Against `standard sam0.05` (seeds 0-9): gap -0.3 [-1.6, +0.9], share +5 [-13, +20].
    # Then `standard sam0.05` at 6 epochs (the demo's length, where the representation gap is ~21 points and the
    # smoothed DB-VAE closes 65%), seeds 0-4, paired with the 6-epoch `standard` and `intrinsic` rows. Prediction
    # written before it ran: (S12) SAM narrows `standard`'s gap in point estimate, closing 10-50% of the representation
    # gap, less than the smoothed DB-VAE on the same seeds; accuracy within noise of `standard`'s.
    # Outcome (session 38): (S12) failed narrowly on its range: gap 19.5 -> 17.8 (-1.7 [-7.8, +4.3]), 9% [-11, 28]
    # closed (predicted 10-50%); the smoothed DB-VAE closes 67% [58, 73] on the same seeds, its gap 10.6 [7.6, 13.6]
    # points narrower than SAM's; accuracy +1.1 [-0.2, +2.5]. At the demo's length SAM is no substitute for resampling.
    # Then the smoothed DB-VAE with SAM at 6 epochs, seeds 0-4 (does SAM add to resampling at a short budget?).
    # Prediction written before it ran: (S13) within noise of the smoothed DB-VAE without SAM on the gap (paired
    # interval includes 0), share 50-80% (67% [58, 73] without); accuracy not below it (interval reaching 0 or above).
    # Outcome (session 38): (S13) failed, the other way: gap 7.1 -> 2.5 (-4.6 [-8.1, -1.1]), 91% [85, 98] closed (+25
    # [+14, +38] points), its gap 4.6 [2.0, 7.2] points below the 2/3 line; accuracy +1.4 [-0.6, +3.5] (held), +2.7
    # [+0.9, +4.5] over `standard`; worst group +4.2 [-3.1, +11.6] over Group DRO. 5 seeds; seeds 5-9 not yet run.
    "dbvae center ess0.1 frozen smooth50 sam0.05": dict(SMOOTH50, sam_rho=0.05),
    # Session 40: the labelled references trained the same way, on 10 seeds. Group DRO with SAM on seeds 5-9 at 6 and
    # at 24 epochs, and `balanced sam0.05` (the demo's labelled reference) at 6 epochs, seeds 0-9. Without SAM at 6
    # epochs over seeds 0-9: Group DRO closes 84% [72, 96] (gap 4.0), `balanced` 77% [64, 91] (gap 5.4). Predictions
    # written before any of these ran: (S20) over seeds 0-9 at 6 epochs Group DRO with SAM narrows its own gap without
    # SAM in point estimate and closes 85-100%; the tilted DB-VAE with SAM's worst group is within 3 points of it
    # (paired interval reaching -3 or above) while its gap stays wider (paired interval above 0, as on seeds 0-4);
    # (S21) `balanced sam0.05` (seeds 0-9, 6 epochs) narrows `balanced`'s gap in point estimate, closes 80-100%, and its
    # accuracy is above `balanced`'s (paired interval above 0); the tilted DB-VAE with SAM's worst group within 3 points
    # of it in point estimate; (S22) at 24 epochs over seeds 0-9 Group DRO with SAM closes 50-75% and the smoothed
    # DB-VAE with SAM is within noise of it on gap, worst group and accuracy (each paired interval includes 0).
    # Outcome (session 40): (S20) held: over seeds 0-9 Group DRO with SAM narrows its own gap in point estimate, 4.0 ->
    # 2.6 (-1.4 [-4.1, +1.3]; beyond noise on seeds 0-4 only), closes 90% [84, 98]; accuracy +2.1 [+1.4, +2.8], worst
    # group +9.9 [+6.1, +13.6]. The tilted DB-VAE with SAM against it: worst group +0.6 [-2.6, +3.8] (the whole interval
    # within 3 points), gap +2.7 [+1.4, +3.9] wider, accuracy +0.5 [+0.0, +1.0], pose gap -3.0 [-5.2, -0.7].
    # (S21) held: `balanced sam0.05` over seeds 0-9 narrows `balanced`'s gap in point estimate, 5.4 -> 2.6 (-2.8 [-6.3,
    # +0.6]), closes 91% [84, 99] (77% [64, 91] without; +14 [+1, +25] points); accuracy +2.1 [+1.0, +3.1], worst group
    # +9.6 [+3.6, +15.5]; level with Group DRO with SAM on every metric (gap -0.1 [-1.6, +1.5]). The tilted DB-VAE with
    # SAM against it: worst group +0.2 [-2.6, +3.0] (within 3 points, the whole interval), gap +2.7 [+0.9, +4.5] wider
    # (78% against 91% closed), accuracy +0.5 [+0.0, +0.9], pose gap -2.7 [-5.1, -0.2].
    # (S22) first two parts held, the worst-group part failed: at 24 epochs over seeds 0-9 Group DRO with SAM closes 68%
    # [59, 76] (69% [49, 87] without; gap 2.3 -> 2.4, +0.1 [-1.0, +1.2]), accuracy +0.5 [+0.3, +0.8] and worst group
    # +3.5 [+1.3, +5.6] over itself without. The smoothed DB-VAE with SAM against it: gap +0.4 [-0.4, +1.2], accuracy
    # -0.2 [-0.5, +0.1], but worst group -1.3 [-2.4, -0.2] (below it beyond noise, though the whole interval within 3
    # points) and pose gap +1.2 [+0.3, +2.1].
    "group-dro sam0.05": dict(method="group-dro", sam_rho=0.05),
    # Session 41: `balanced sam0.05` at 24 epochs, the labelled reference the demo trains, never run at convergence
    # (Group DRO with SAM was the 24-epoch reference). Prediction written before any run: (S25) over seeds 0-9 at 24
    # epochs it closes 45-80% of the representation gap; it narrows `balanced`'s gap in point estimate; its gap is
    # within noise of Group DRO with SAM's (paired interval includes 0); its accuracy is not below `balanced`'s beyond
    # noise.
    # Outcome (session 41): (S25) held in every part: over seeds 0-9 at 24 epochs `balanced sam0.05` closes 69% [59, 78]
    # (its gap -0.2 [-0.8, +0.5] points from the 2/3 line); `balanced`'s gap 3.5 -> 2.3 (-1.3 [-2.9, +0.4]); against
    # Group DRO with SAM gap -0.1 [-0.7, +0.5], accuracy +0.1 [-0.0, +0.2], worst group +0.3 [-1.5, +2.1]; accuracy
    # +0.7 [+0.4, +1.1] and worst group +4.5 [+2.3, +6.7] over `balanced`. The smoothed DB-VAE with SAM against it:
    # gap +0.5 [-0.4, +1.4], worst group -1.7 [-3.9, +0.6], accuracy -0.3 [-0.6, +0.1].
    # Session 42: `balanced sam0.05` on seeds 10-19 as well, so the labelled reference is measured on the same 20 seeds
    # as the smoothed DB-VAE with SAM (S26), and the issue's first target (the labelled reference closes 2/3) is
    # judged there too. Prediction written before any of these runs and before S26 was judged: (S27) over seeds 0-19
    # at 24 epochs `balanced sam0.05` closes 55-80% of the representation gap and is within noise of the 2/3 line
    # (its above-the-line interval includes 0); the smoothed DB-VAE with SAM against it: gap and accuracy within noise
    # (paired intervals include 0), worst group within 3 points beyond noise (the lower end of the paired interval
    # above -3).
    # Outcome (session 42): (S27) held for `balanced` and failed against the DB-VAE. Over seeds 0-19 `balanced sam0.05`
    # closes 67% [58, 75] (-0.0 [-0.7, +0.7] points from the 2/3 line; seeds 10-19 alone: 66% [51, 77]). The smoothed
    # DB-VAE with SAM falls behind it beyond noise on all three: gap +0.8 [+0.0, +1.6], accuracy -0.3 [-0.5, -0.1],
    # worst group -2.4 [-4.2, -0.6] (lower end below -3); share -11 [-20, -2] points, frontal-profile gap +1.5 [+0.6,
    # +2.4]. Against `standard sam0.05`, `balanced sam0.05`'s gap is -0.9 [-1.9, +0.0], share +12 [+0, +23] points.
    "balanced sam0.05": dict(method="balanced", sam_rho=0.05),
    "standard sam0.05": dict(method="standard", sam_rho=0.05),
    # Session 40, started at its end (resumable; one row per finished run): a twice larger SAM radius at 24 epochs,
    # where the smoothed DB-VAE with SAM 0.05 closes 61% [53, 70] (10 seeds) and SAM 0.05 alone 52% [41, 63]; the
    # radius was Foret et al.'s default, never varied. Labels `standard sam0.1` (the control) and the smoothed DB-VAE
    # with it, seeds 0-4, then 5-9. Prediction written before any run: (S24) over seeds 0-4 the smoothed DB-VAE with
    # SAM 0.1 is within noise of itself with 0.05 on the gap (paired interval includes 0), closes 45-80%; `standard
    # sam0.1` narrows `standard sam0.05`'s gap in point estimate; neither's accuracy below its 0.05 version beyond noise.
    # Outcome (session 41): (S24) held in every part, and the larger radius does not help: over seeds 0-4 the smoothed
    # DB-VAE with SAM 0.1 closes 53% [45, 61] (64% [51, 77] with 0.05; share -12 [-27, +1] points), its gap 2.4 -> 3.2
    # (+0.7 [-0.7, +2.2]) and +0.9 [+0.1, +1.6] points above the 2/3 line; accuracy -0.2 [-0.6, +0.2]. `standard
    # sam0.1` narrows `standard sam0.05`'s gap in point estimate only, 3.8 -> 3.4 (-0.3 [-1.3, +0.6]), 49% [37, 68]
    # closed against 43% [31, 58]; accuracy +0.1 [-0.1, +0.2]. With 0.1 the DB-VAE is level with SAM 0.1 alone (gap
    # -0.3 [-1.9, +1.4]). Seeds 5-9 not run: the radius was the lever, and it moves the DB-VAE the wrong way.
    # Session 41: the 24-epoch smoothed DB-VAE with SAM 0.05 (61% [53, 70] over seeds 0-9, its gap +0.3 [-0.3, +0.9]
    # points from the 2/3 line: the label-free target at convergence is undecided) and its control `standard sam0.05`
    # on seeds 10-19, where `standard` and `intrinsic` already ran, to decide it. Prediction written before any run:
    # (S26) over seeds 0-19 the smoothed DB-VAE with SAM closes 50-70% of the representation gap, and it does not
    # reach the 2/3 line beyond noise (the upper end of its above-the-line interval >= 0); its accuracy is above
    # `standard`'s beyond noise; its gap is within noise of `standard sam0.05`'s (paired interval includes 0).
    # Outcome (session 42): (S26) held in every part. Over seeds 0-19 at 24 epochs the smoothed DB-VAE with SAM closes
    # 56% [44, 67] (seeds 10-19 alone: 53% [32, 68]); its gap is +0.8 [-0.1, +1.7] points above the 2/3 line, so it
    # neither reaches the line nor falls short of it beyond noise (49 seeds would be needed for 80% power); accuracy
    # +0.9 [+0.5, +1.2] over `standard`; against `standard sam0.05` gap -0.1 [-1.2, +0.9], share +1 [-12, +14] points,
    # accuracy -0.1 [-0.4, +0.1], worst group -0.5 [-2.8, +1.7], frontal-profile gap +1.0 [+0.1, +1.9] (wider beyond
    # noise). `standard sam0.05` over the same 20 seeds closes 55% [46, 63], +0.9 [+0.2, +1.6] above the line.
    "standard sam0.1": dict(method="standard", sam_rho=0.1),
    "dbvae center ess0.1 frozen smooth50 sam0.1": dict(SMOOTH50, sam_rho=0.1),
    # Session 33: the methods of the issue's list never run to convergence (24 epochs, `skin`, seeds 0-4, paired with
    # the `standard`, `intrinsic` and Group DRO rows already there; defaults unchanged, nothing chosen on results):
    # `jtt` and `loss-resample` (label-free, driven by the loss, so they target the faces still missed, whatever
    # their cell), `vae-uniform` (does the VAE loss alone do anything at convergence?), `balanced sqrt` (the tempered
    # labelled balance) and `dbvae (paper)`. Predictions written before any run: `loss-resample` closes less than at 6
    # epochs (35%), -20-40%, because at convergence the training losses of the darker faces fall to ~0 and its
    # weights flatten toward uniform; `jtt` (2-epoch identification model, its errors upweighted 5x, then 24 epochs)
    # closes 10-50%, below the latent-cluster Group DRO's 58% [36, 78] on the same seeds in point estimate;
    # `vae-uniform` within noise of `standard` on the gap (interval includes 0); `balanced sqrt` closes less than
    # `balanced` (39% [-10, 66]) in point estimate; `dbvae (paper)` within noise of `standard` on the gap. None meets
    # the 2/3 target.
    "jtt": dict(method="jtt"),
    "loss-resample": dict(method="loss-resample"),  # unlabelled: faces resampled by their current loss
    "standard sam0.05 dbvae-weights": dict(method="standard", sam_rho=0.05),  # weights: WEIGHTS_FROM
    # Session 48, the scale setting (`--n-train 100000`, 12 epochs): the two-stage recipe as the README tells a user
    # to run it on a set this large, its first stage with `--freeze-after 20000` (the at20k first-stage label below).
    "dbvae center ess0.1 frozen smooth50 sam0.05 at20k": dict(SMOOTH50, sam_rho=0.05, freeze_after=20_000),
    "standard sam0.05 dbvae-weights at20k": dict(method="standard", sam_rho=0.05),  # weights: WEIGHTS_FROM
}
# Two-stage runs (session 43): label -> (the label whose run's face sampling weights it trains with, that run's
# epochs). The first run is trained in the same job, on the same data and seed, and only its saved weights are read
# (`weights_from`). The smoothed DB-VAE keeps the weights it computes at the start of its second epoch (frozen), so a
# 2-epoch run of it saves the very weights its 24-epoch run samples by (training on the CPU is deterministic; the
# rows' `mass_darker` shows it).
# Why (prediction S28): at 24 epochs with SAM the smoothed DB-VAE closes 56% [44, 67] over 20 seeds, no more than
# `standard sam0.05` (55%), and `balanced sam0.05` closes 67% [58, 75], ahead of it beyond noise on gap, accuracy and
# worst group. Two things differ between the DB-VAE and `balanced`: which faces get the mass (its latent's rare
# regions, ~27% of the mass on darker faces, against 33% spread evenly over them), and the VAE's reconstruction and
# KL terms trained on the same encoder that detects (`vae-uniform`, that loss without resampling, sat 2.0 [-3.5,
# +7.5] gap points and 0.6 accuracy points behind `standard` at 24 epochs, 5 seeds). A plain classifier with SAM
# drawing its faces by the DB-VAE's weights keeps the first and drops the second: the paired design tells which holds
# the DB-VAE back, and a practitioner can debias any detector this way without labels.
# Prediction written before any run (S28), 24 epochs, `skin`, seeds 0-4 then 5-9, paired by seed: (1) it closes
# 50-80% of the representation gap; (2) its gap is within noise of `balanced sam0.05`'s (paired interval includes 0)
# and narrower than the smoothed DB-VAE with SAM's in point estimate; (3) its accuracy is not below `standard
# sam0.05`'s beyond noise, and above the DB-VAE with SAM's in point estimate; (4) its gap is narrower than `standard
# sam0.05`'s in point estimate; (5) its mass on darker faces equals the DB-VAE with SAM's row to 3 decimals.
# Seeds 10-19 are queued behind seeds 0-9 (before any result was read), so that it pairs with the smoothed DB-VAE
# with SAM, `balanced sam0.05` and `standard sam0.05` over the same 20 seeds; S28 is judged on every seed done.
# Outcome on seeds 0-9 (session 43): (S28) held in every part. It closes 75% [68, 80] (-0.5 [-0.9, -0.0] points from
# the 2/3 line); against the smoothed DB-VAE with SAM gap 2.8 -> 2.0 (-0.8 [-1.3, -0.3]), accuracy +0.2 [-0.0, +0.5],
# worst group +1.8 [+0.3, +3.3]; against `balanced sam0.05` gap -0.3 [-1.0, +0.3], accuracy -0.0 [-0.2, +0.1];
# against `standard sam0.05` gap -1.3 [-2.1, -0.6], accuracy +0.1 [-0.0, +0.2]; mass on darker faces equal to the
# DB-VAE's row on every seed (0.17-0.32).
# Outcome over seeds 0-19 (session 44): (S28) held in parts (1)-(4) and failed in (5) on seeds 10-19. It closes 74%
# [66, 80] (seeds 10-19 alone: 73% [61, 82]), its gap -0.5 [-1.1, +0.1] points from the 2/3 line (beyond it in point
# estimate, not beyond noise over 20 seeds); against the smoothed DB-VAE with SAM gap 3.7 -> 2.4 (-1.3 [-2.0, -0.6]),
# accuracy +0.3 [+0.1, +0.5], worst group +2.9 [+1.3, +4.5]; against `balanced sam0.05` gap -0.5 [-1.0, +0.1],
# accuracy +0.0 [-0.1, +0.1], worst group +0.5 [-0.9, +1.9]; against `standard sam0.05` gap -1.4 [-2.2, -0.7],
# accuracy +0.2 [+0.0, +0.3]. (5) failed on seeds 10-19: their two-stage runs ran after this session's restart (a new
# host and a rebuilt `.venv`, same pinned torch), which does not reproduce the earlier rows (a 2-epoch DB-VAE on seed 0 gives mass 0.2888 on darker faces here,
# 0.2765 recorded, same code and same training cells), so their first stage's weights differ from the 24-epoch
# DB-VAE rows' (mass on darker 0.18-0.34 against 0.18-0.34, differences -0.049 to +0.034): seeds 10-19 pair by
# design and data, not by the very same weights.
# Session 44, queued behind seeds 10-19: the same two-stage label at the demo's budget, 6 epochs, seeds 0-9, where
# the smoothed DB-VAE with SAM closes 85% [78, 94], `standard sam0.05` 33% [11, 51] and `balanced sam0.05` 91% [84,
# 99]: does the recipe the README gives for convergence also hold at a short budget, where the VAE loss has had
# little time to cost anything? Prediction written before any run (S29), 6 epochs, `skin`, seeds 0-9, paired by
# seed: (1) it closes 65-95% of the representation gap; (2) its gap and accuracy are within noise of the smoothed
# DB-VAE with SAM's (paired intervals include 0); (3) its gap is narrower than `standard sam0.05`'s beyond noise;
# (4) its mass on darker faces equals the 6-epoch DB-VAE with SAM row's to 3 decimals on each seed.
# Outcome (session 44): (S29) held in parts (1)-(3) and failed in (4). It closes 83% [72, 96] at 6 epochs (its gap
# -3.4 [-6.1, -0.8] points from the 2/3 line); against the smoothed DB-VAE with SAM gap 3.7 -> 4.2 (+0.5 [-1.4,
# +2.4]), accuracy -0.1 [-0.7, +0.4], worst group -1.3 [-3.5, +1.0], share -2 [-10, +5] points; against `standard
# sam0.05` gap -10.5 [-15.1, -5.9]. Against `balanced sam0.05` it trails on accuracy (-1.0 [-1.4, -0.6]) and worst
# group (-8.0 [-10.3, -5.7]), as the DB-VAE does. (4) failed on every seed, for the reason S28's (5) failed on seeds
# 10-19: these runs ran on the host this session restarted on (seed 0's first stage gives 0.2888, the recorded
# DB-VAE rows 0.2765; mass on darker 0.21-0.31 against 0.17-0.32). So at the demo's budget the two-stage recipe is
# level with the DB-VAE, at convergence ahead of it.
# Session 45, seeds 20-29 (no GPU; 2 cores): over seeds 0-19 the two-stage label sits -0.5 [-1.1, +0.1] points from
# the 2/3 line at 24 epochs, SD 1.3 across seeds, so the label-free target is met in point estimate, not beyond
# noise. More seeds of the same design decide it either way: `standard`, `intrinsic` and the two-stage label on seeds
# 20-29 (in that order, seed by seed), then `balanced sam0.05` on the same seeds, which sits on the line (67% [58,
# 75]). Nothing else changes. Prediction written before any run (S30), 24 epochs, `skin`, paired by seed: (1) on seeds
# 20-29 alone the two-stage label closes 60-85%; (2) over every seed done (0-19 and those of 20-29 that finish), its
# share stays within 70-78% and its accuracy and worst group stay above `standard`'s beyond noise; (3) its distance
# from the 2/3 line falls below 0 beyond noise (the interval's upper end < 0) -- at the spread of seeds 0-19 that has
# about even odds with 30 seeds, so this part may fail without the method changing; (4) `balanced sam0.05` stays
# within noise of the 2/3 line (interval includes 0).
# Outcome (session 45): (S30) held in parts (1)-(4), (4) on 2 of its 10 seeds. Seeds 20-29 alone close 73% [61, 83] (-0.5
# [-1.5, +0.5] from the line); over seeds 0-29 the two-stage label closes 74% [67, 79], accuracy +1.2 [+0.9, +1.4] and
# worst group +10.1 [+7.9, +12.2] over `standard`, and its distance from the 2/3 line is -0.51 [-0.99, -0.03] points
# (one-sided p = 0.02): beyond noise, just. `balanced sam0.05` was queued last: seeds 20-21 finished before the
# session ended (22-29 not run); over seeds 0-21 it closes 69% [60, 77], -0.2 [-0.9, +0.5] from the line (held), and
# the two-stage label against it: gap -0.4 [-0.9, +0.1], accuracy +0.0 [-0.1, +0.1], worst group +0.4 [-0.9, +1.7].
# Session 46, the training-length check of the headline (no GPU; 2 cores): the issue asks that a longer run move no
# metric beyond its CI. Only `standard` (seeds 0-2) and `balanced` (seed 0) ever trained 48 epochs, and `standard`'s
# gap kept narrowing (-2.8 [-8.9, +3.3] points from 24 to 48 epochs): if the plain classifier is not converged at 24
# epochs, the two-stage label's 74% is measured against an undertrained baseline. So: the two-stage label, `standard`
# (seeds 3-4; 0-2 exist) and `intrinsic` at 48 epochs, seeds 0-4, seed by seed in that order, then `balanced sam0.05`
# on seeds 22-29 at 24 epochs (S30's unfinished part (4)). Nothing else changes; the two-stage label's first stage
# stays the 2-epoch DB-VAE. Prediction written before any run (S31), `skin`, paired by seed: (1) `standard` 24 -> 48
# epochs narrows its gap in point estimate (interval may include 0) and gains accuracy in point estimate; (2) the
# two-stage label 24 -> 48 moves its gap by less than 1 point in point estimate and its accuracy by less than 0.3,
# both intervals including 0; (3) `intrinsic` 24 -> 48 moves no metric beyond noise; (4) at 48 epochs the two-stage
# label's gap is narrower than `standard`'s in point estimate, and its share of the (48-epoch) representation gap is
# lower than at 24 epochs in point estimate, 40-80%: five seeds cannot place it against the 2/3 line.
# Outcome (session 46): (S31) held in parts (1), (2) and (4) and failed in (3) by a hair. 24 -> 48 epochs, seeds 0-4:
# `standard`'s gap 6.5 -> 4.8 (-1.7 [-4.6, +1.2]), accuracy +0.3 [-0.2, +0.8]; the two-stage label's gap 1.9 -> 2.1
# (+0.1 [-1.0, +1.2]), accuracy +0.1 [-0.2, +0.4], worst group -0.0 [-3.6, +3.6]; `intrinsic`'s accuracy +0.2 [+0.0,
# +0.4] (beyond noise), nothing else. At 48 epochs the two-stage label against `standard`: gap -2.7 [-3.8, -1.7],
# accuracy +0.5 [+0.2, +0.7], worst group +5.7 [+2.1, +9.2]; it closes 61% [44, 79] of the 48-epoch representation
# gap (72% [62, 82] at 24 epochs on the same seeds), +0.3 [-1.1, +1.6] points from the 2/3 line. So the gap the
# recipe reaches does not move with twice the training, while `standard` keeps narrowing its own in point estimate:
# at 48 epochs five seeds neither meet nor miss 2/3. The 24-epoch two-stage rows of seeds 0-4 ran on an earlier host
# whose first stage saved slightly different weights (mass on darker 0.26-0.30 there, 0.21-0.29 here), so their
# 24 -> 48 difference carries that too. `balanced sam0.05` ran on seeds 22-25 (26-29 not run, no time left): over
# seeds 0-25 it closes 70% [62, 77], -0.2 [-0.8, +0.4] from the 2/3 line (S30 part (4) holds on 6 of its 10 seeds);
# the two-stage label against it: gap -0.2 [-0.7, +0.3], accuracy -0.0 [-0.1, +0.1], worst group -0.1 [-1.2, +1.1].
# Session 47: two checks in one queue (2 workers, longest first). (a) The labelled reference at 48 epochs, which S31
# lacked: `balanced sam0.05` on seeds 0-4, so that the worst-group target and the labelled share are measured at the
# length the two-stage recipe was checked at. (b) The pose setting with SAM, where nothing with SAM had run:
# `standard sam0.05` and the two-stage label (its first stage trained on `pose`) at 24 epochs, seeds 0-4, measured
# against `standard sam0.05` and pose's own `intrinsic` (trained without SAM; on `skin`, SAM moved `intrinsic`'s gap
# by -0.1 [-1.0, +0.8]). Prediction written before any run (S32), paired by seed: (1) `balanced sam0.05` 24 -> 48
# moves no metric beyond noise and its gap by less than 1 point in point estimate; (2) at 48 epochs the two-stage
# label's worst group is within 3 points of `balanced sam0.05`'s (the paired interval's lower end above -3) and their
# gap difference's interval includes 0; (3) at 48 epochs `balanced sam0.05` closes 50-80% of the representation gap
# in point estimate, its interval including 2/3; (4) on `pose`, `standard sam0.05`'s pose gap is narrower than
# `standard`'s (2.6 points) in point estimate; (5) on `pose` the two-stage label's first stage puts less than 3% of
# the sampling mass on profile faces (2% natural), its pose gap and accuracy stay within noise of `standard sam0.05`'s
# (intervals include 0), and it closes less than 1/3 of the pose representation gap in point estimate: the latent
# that finds darker faces does not find profile ones, so the recipe is not expected to help there.
# Outcome (session 47): (S32) parts (1), (3) and (4) held; (2) held for the gap and failed for the worst group; (5)
# held for the mass and the share and failed, in the bad direction, for the gap and accuracy. `balanced sam0.05` 24 ->
# 48: gap 2.1 -> 1.9 (-0.2 [-1.3, +0.9]), accuracy +0.1 [-0.0, +0.2], nothing beyond noise; at 48 epochs it closes
# 66% [52, 78] (+0.0 [-0.9, +1.0] points from the line); the two-stage label against it: gap +0.2 [-0.9, +1.3],
# accuracy -0.1 [-0.3, +0.1], worst group -0.9 [-4.1, +2.2] (within 3 points in point estimate only). On `pose`:
# `standard sam0.05` narrows the pose gap 1.8 -> 0.8 (-1.0 [-2.4, +0.4]); the first stage puts 0.8-1.9% of the mass
# on profile faces (26-55% on darker ones), and the two-stage label against `standard sam0.05` widens the pose gap by
# +2.0 [+0.6, +3.4], with accuracy -0.3 [-0.6, -0.1] and worst group -2.7 [-4.7, -0.8]: with the ESS floor at 0.1 it
# draws profile faces less often than uniform sampling does, and recalls 97-99.5% of its profile training faces
# (`standard sam0.05`: 100%).
# Queued after S32 (session 47), prediction written before any of these runs (S33): (1) `balanced sam0.05` on seeds
# 26-29 (24 epochs), completing the 30 seeds the two-stage label ran on: over seeds 0-29 it stays within noise of the
# 2/3 line, and the two-stage label stays level with it (gap and accuracy intervals include 0, worst group's interval
# within +-3 points); (2) `balanced sam0.05` on `pose` (balanced by pose), seeds 0-4: its pose gap narrower than
# `standard sam0.05`'s in point estimate, and it closes more of the pose representation gap than the two-stage label
# in point estimate.
# Outcome (session 47): (S33) part (2) held: on `pose` `balanced sam0.05` narrows the pose gap 0.8 -> 0.4 against
# `standard sam0.05` (-0.4 [-1.4, +0.7]) and closes 82% [69, 98] of `standard`'s pose representation gap; against the
# two-stage label: pose gap -2.4 [-3.7, -1.0], worst group +3.3 [+1.5, +5.2]. Part (1) held: over seeds 0-29
# `balanced sam0.05` closes 70% [63, 76], -0.2 [-0.7, +0.3] points from the 2/3 line; the two-stage label against it:
# gap -0.3 [-0.7, +0.1], accuracy -0.0 [-0.1, +0.1], worst group +0.0 [-1.1, +1.2], share +4 [-1, +9] points.
# Session 48 (prediction S34, written before any run): the two-stage recipe on the scale setting, 100,000 images, 12
# epochs (where `standard`, `intrinsic`, Group DRO and the label-free DB-VAEs ran on seeds 0-9), its first stage
# frozen after 20,000 training images (the README's advice for sets this large), seeds 0-5 paired by seed with those
# rows. No `standard sam0.05` at this size (two CPU cores, ~35 min a run), so SAM's share of any effect is not
# separated here. Predictions: (1) its mass on darker faces is 15-40% on every seed (the latent read after 20,000
# images, as on the 20,000-image sets, where the recipe's is 27-37%); (2) its lighter-darker gap is narrower than
# `standard`'s in point estimate and it closes at least half of the representation gap in point estimate (the
# interval is wide at this size: the gap to close is 1.8 [0.7, 2.8] points); (3) its accuracy is not below
# `standard`'s beyond noise; (4) its worst group is within 3 points of Group DRO's (labelled) in point estimate;
# (5) its gap is narrower than the smoothed DB-VAE at20k's (one network, no SAM; 46% [-17, 81]) in point estimate.
# Seeds 6-7 were queued after seeds 0-3 had finished and been read (before seeds 4-5): S34 is judged on seeds 0-5
# as written; seeds 6-7 are reported beside it, not used to judge it.
# Outcome on seeds 0-5 (session 48; `pair --n-train 100000 --epochs 12 --settings skin --seeds 0 1 2 3 4 5 --methods B
# "standard sam0.05 dbvae-weights at20k"`, 1,633-2,173 s a run on one core): (S34) held in every part. (1) darker mass
# 19.7-30.5%; (2) gap 2.4 -> 0.2 against `standard` (-2.2 [-4.0, -0.3]), closes 103% [96, 124] (-0.8 [-1.3, -0.2]
# points from the 2/3 line); (3) accuracy +0.4 [+0.1, +0.7]; (4) worst group 99.4 against Group DRO's 98.7 (+0.8
# [+0.3, +1.3]); (5) gap -0.6 [-0.9, -0.3] against the smoothed DB-VAE at20k. It is level with `intrinsic` (gap -0.1
# [-0.4, +0.2], accuracy +0.0 [-0.0, +0.1]): at this size the benchmark's ceiling.
# Seeds 0-7 (6-7 reported, not judged): closes 101% [95, 114]; against `standard` gap -2.0 [-3.3, -0.8], accuracy
# +0.4 [+0.2, +0.6], worst group +4.2 [+1.9, +6.5]; against Group DRO worst group +0.8 [+0.4, +1.1]; darker mass
# 19.7-30.5% on every seed.
# S35, written before any run: `standard sam0.05` on the scale setting (100,000 images, 12 epochs, seeds 0-5, not yet
# run: ~30 min a run on one core), to separate SAM's share of S34's effect. Prediction: SAM alone closes 40-90% of the
# representation gap (55% [46, 63] on 20,000 images at 24 epochs), and the two-stage label's gap is narrower than its
# in point estimate; its worst group below the two-stage label's in point estimate.
# Session 48, seeds 0-1 only (not judged; seeds 2-5 to run): SAM alone closes 90% (gaps 0.3 and 0.7 against the
# two-stage label's 0.1 and 0.4, worst group 98.8 against 99.2): at this size most of S34's effect may be SAM's.
# S36, written in session 49 after reading S35's seeds 0-3 (SAM alone 86% [43, 91]; two-stage minus SAM alone: gap -0.3
# [-0.5, -0.1], worst group +0.6 [+0.2, +1.0]) and before running `standard sam0.05` on seeds 6-8 and the two-stage
# label (first stage with weights_only, the same weights) on seed 8: paired over every seed both have (0-7, then
# 0-8), (1) the two-stage label's gap is narrower than SAM alone's and the interval of the difference excludes 0;
# (2) its worst group is higher in point estimate; (3) accuracy differs by less than 0.2 points in point estimate;
# (4) SAM alone closes 60-95% of the representation gap, the two-stage label more than SAM alone in point estimate.
# Extended before any of its runs had finished: seed 9 for both labels too, so each has seeds 0-9 (pairs over 0-9).
# S35 judged on seeds 0-5 as written (session 49): held in every part. SAM alone closes 83% [45, 98]; the two-stage
# label minus SAM alone: gap -0.4 [-0.8, -0.0], worst group +1.0 [+0.2, +1.8], accuracy +0.1 [+0.0, +0.1], share
# closed +20 [+7, +71] points: the DB-VAE's weights add to SAM at this size, by less than SAM adds to `standard`.
# S36 judged (session 49): held in every part, on seeds 0-7 and on 0-9. Seeds 0-9: two-stage minus SAM alone, gap -0.3
# [-0.6, -0.1], worst group +0.9 [+0.5, +1.4], accuracy +0.1 [+0.0, +0.1]; SAM alone closes 81% [60, 92], the two-stage
# label 101% [95, 112].
# Session 50 (no GPU; 2 cores): the pose results with SAM (S32, S33) rest on seeds 0-4, and pose's `intrinsic` had never
# trained with SAM. So: `standard sam0.05`, the two-stage label (first stage trained on `pose`) and `balanced sam0.05`
# (by pose) on `pose` seeds 5-9 at 24 epochs, seed by seed, then `intrinsic` with SAM (setting pose-sam0.05) on seeds
# 0-4. Nothing else changes. Prediction written before any of these runs (S37), paired by seed over seeds 0-9: (1)
# the two-stage label widens the pose gap against `standard sam0.05`, the interval excluding 0, and its worst group is
# lower beyond noise; (2) its first stage puts less than 3% of the sampling mass on profile faces on every new seed;
# (3) `balanced sam0.05` closes at least 2/3 of `standard`'s pose representation gap in point estimate, and its pose
# gap is within noise of `standard sam0.05`'s; (4) on seeds 0-4 pose's `intrinsic` with SAM has a pose gap within
# noise of itself without SAM (paired interval includes 0), and measured against `standard sam0.05` and it (`pair
# --references "standard sam0.05" pose-sam0.05`) the two-stage label closes less than 0% of what SAM leaves.
# Queued after the above (after reading seeds 5-6 of the three labels, before any pose-sam0.05 run): pose-sam0.05
# `intrinsic` on seeds 5-9 too, reported beside S37 part (4), not used to judge it.
# Outcome (session 50; `pair --epochs 24 --settings pose --seeds 0 1 2 3 4 5 6 7 8 9 --methods A B`, 403-754 s a run):
# (S37) parts (1)-(3) held. (1) the two-stage label minus `standard sam0.05`: pose gap 0.7 -> 3.8 (+3.0 [+1.7, +4.3]),
# worst group -4.9 [-7.6, -2.3], accuracy -0.5 [-0.8, -0.3], lighter-darker gap -1.0 [-2.0, -0.0]; (2) profile mass
# 0.9-2.3% on seeds 5-9 (darker 29-71%); (3) `balanced sam0.05` closes 86% [75, 94] (0.5 [0.1, 0.9] points below the
# 2/3 line), its pose gap -0.4 [-0.8, +0.1] against SAM alone's; SAM alone closes 71% [48, 87]. (4) held: on seeds
# 0-4 (`variants --epochs 24`) pose's `intrinsic` with SAM against without: pose gap 0.1 -> 0.1 (-0.0 [-0.2, +0.1]),
# accuracy +0.0 [+0.0, +0.0]; against `standard sam0.05` and it (`pair --references "standard sam0.05" pose-sam0.05`)
# the two-stage label closes -273% [-1317, -82] of what SAM leaves, `balanced sam0.05` 54% [-67, 83]. Seeds 0-9
# (reported, not judged): `intrinsic` with SAM against without +0.0 [-0.2, +0.2] points of pose gap; of what SAM
# leaves the two-stage label closes -434% [-764, -227], `balanced sam0.05` 54% [12, 77].
WEIGHTS_FROM = {"standard sam0.05 dbvae-weights": ("dbvae center ess0.1 frozen smooth50 sam0.05", 2),
                "standard sam0.05 dbvae-weights at20k": ("dbvae center ess0.1 frozen smooth50 sam0.05 at20k", 2)}
# the pose setting balances by pose: the labelled references use the attribute that is rare there
BALANCE_BY = {"skin": ("skin_group",), "pose": ("pose",), "b-skin": ("skin_group",)}
POSE_METHODS = ("standard", "vae-uniform", "dbvae (paper)", "dbvae center ess0.1 frozen",
                "dbvae center ess0.1 frozen smooth50", "jtt", "loss-resample", "balanced", "group-dro")
T975 = {n: v for n, v in zip(range(2, 31), (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                                            2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                                            2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045))}


# ------------------------------------------------------------------------------------------------
# one run
# ------------------------------------------------------------------------------------------------

def measure(y_true: np.ndarray, y_score: np.ndarray, faces: pd.DataFrame, target_fpr: float = 0.01) -> dict:
    """Benchmark metrics of one model on the balanced test split.

    ``faces`` holds the test faces' attributes, in the order of ``y_score[y_true == 1]``. Rates in
    [0, 1]; E_A and Var_A in percent and percent squared over skin_group x gender cells (the
    paper's definitions: mean and variance of the cell accuracies).
    """
    from debias.audit.metrics import choose_threshold

    t = choose_threshold(y_score, y_true, target_fpr)
    hit = y_score >= t
    f = faces.assign(hit=hit[y_true == 1])
    out = {"threshold": t, "accuracy": float((hit == (y_true == 1)).mean()), "fpr": float(hit[y_true == 0].mean()),
           "recall": float(f.hit.mean())}
    cells = f.groupby(["skin_group", "gender"]).hit.mean() * 100
    out["E_A"], out["Var_A"] = float(cells.mean()), float(cells.var(ddof=0))
    sp = f.groupby(["skin_group", "pose"]).hit.mean()
    out["worst_group"], out["worst_group_rate"] = " / ".join(sp.idxmin()), float(sp.min())
    out["skin_gap"] = float(f[f.skin_group == "lighter"].hit.mean() - f[f.skin_group == "darker"].hit.mean())
    out["pose_gap"] = float(f[f.pose == "frontal"].hit.mean() - f[f.pose == "profile"].hit.mean())
    out["rate_darker"] = float(f[f.skin_group == "darker"].hit.mean())
    out["rate_profile"] = float(f[f.pose == "profile"].hit.mean())
    return out


def _scores(model, root: Path, frame: pd.DataFrame, device) -> np.ndarray:
    from debias.data.manifest import read_rows
    from debias.models.run import predict_scores

    packed = np.load(root / "images.npy", mmap_mode="r")
    rows = frame["image"].to_numpy(int)
    s, _ = predict_scores(model.to(device), lambda pos: read_rows(packed, rows[pos]), len(rows), device)
    return s


def run_setup(job: dict, device: str) -> tuple[Path, TrainConfig]:
    """The data set (rendered on first use) and training config of one run (setting, method, seed, epochs, n_train,
    cache): what ``_one`` trains, and what a diagnostic must train to see the same run."""
    from debias.config import TrainConfig

    (setting, variant_opts), intrinsic = _variant(job["setting"]), job["method"] == "intrinsic"
    shares, tag = _composition(job["setting"], intrinsic)
    root = _data(job["seed"], job["n_train"], shares, Path(job["cache"]), tag, job.get("render_workers", 1))
    # intrinsic: standard training on the balanced composition
    opts = {"balance_by": BALANCE_BY[setting], **{**METHODS, "intrinsic": METHODS["standard"]}[job["method"]],
            **variant_opts}
    return root, TrainConfig(seed=job["seed"], epochs=job["epochs"], compile=False, device=device, **opts)


def _one(job: dict) -> dict:
    import torch

    torch.set_num_threads(1)  # two runs in parallel, one core each
    from debias.data.manifest import read_manifest
    from debias.models.run import resolve_device
    from debias.train import fit, load_run

    t0 = time.perf_counter()
    device = resolve_device(job["device"])
    root, cfg = run_setup(job, device.type)
    m = read_manifest(root)
    test, train = m[m.split == "test"], m[m.split == "train"]
    with tempfile.TemporaryDirectory() as d:
        if job["method"] in WEIGHTS_FROM:  # the first stage: the run whose saved weights this one samples by
            src, src_epochs = WEIGHTS_FROM[job["method"]]
            # weights_only: the first stage stops once its kept weights are computed; the same weights as training it
            # the full src_epochs, which the rows before session 49 did (benchmarks/first_stage.py: identical on seed 0
            # at 20,000 and 100,000 images, and 7.6x less time for this stage at 100,000)
            wroot, wcfg = run_setup({**job, "method": src, "epochs": src_epochs}, device.type)
            fit(wroot, dataclasses.replace(wcfg, weights_only=True), Path(d) / "weights")
            cfg = dataclasses.replace(cfg, weights_from=str(Path(d) / "weights"))
        hist = fit(root, cfg, Path(d) / "run")
        model, _ = load_run(Path(d) / "run")
    y = test.label.to_numpy()
    row = {k: v for k, v in job.items() if k not in HOW}
    s = _scores(model, root, test, device)
    row.update(measure(y, s, test[y == 1]))
    row["_cells"] = cell_rates(test[y == 1], s[y == 1] >= row["threshold"], train[train.label == 1])
    # memorisation: recall of the rare group's *training* faces at the test threshold
    tf = train[(train.label == 1) & (train.skin_group == "darker") | (train.label == 1) & (train.pose == "profile")]
    st = _scores(model, root, tf, device) >= row["threshold"]
    row["train_rate_darker"] = float(st[(tf.skin_group == "darker").to_numpy()].mean())
    row["train_rate_profile"] = float(st[(tf.pose == "profile").to_numpy()].mean())
    last = hist.iloc[-1]
    row["kept_epoch"] = np.nan  # the epoch `--keep best` saved; that option left the product (RESULTS.md)
    row["ess"] = float(last["ess"])
    for c in ("skin_group=darker", "pose=profile"):
        row[f"mass_{c.split('=')[1]}"] = float(last.get(f"mass[{c}]", np.nan))
    row["seconds"] = time.perf_counter() - t0
    row["device"] = device.type if device.type == "cpu" else torch.cuda.get_device_name(device)
    return row


def _data(seed: int, n_train: int, shares: dict, cache: Path, tag: str, workers: int = 1) -> Path:
    """The dataset of one seed, rendered on first use (by ``workers`` processes: the same images for any number,
    tests/data/test_synth.py); a lock keeps two runs from rendering it twice."""
    import fcntl

    from debias.config import SynthConfig
    from debias.data.synth import generate

    out = cache / f"{tag}_seed{seed}_n{n_train}"
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / f"{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "manifest.csv").exists():
            if tag.split("-balanced")[0] in FAMILY_B:
                from render_b import generate_b

                generate_b(n_train, seed=seed, out=out, n_val=1000, workers=workers, **shares)
            else:
                generate(SynthConfig(n_train=n_train, n_val=1000, seed=seed, workers=workers, **shares), out)
    return out


KEY = ["setting", "method", "seed", "epochs", "n_train"]
# the job keys that say how a run is done, not which run it is: never written to its row
HOW = ("cache", "device", "render_workers")


def _how(a) -> dict:
    """A job's HOW keys from the command line."""
    return {"cache": str(a.cache), "device": a.device, "render_workers": a.render_workers}


def _key(job: dict) -> tuple[str, ...]:
    """A run's identity in RUNS and CELLS, as text so a job's 6 and a CSV's 6 are one key."""
    return tuple(str(job[k]) for k in KEY)


def _keys(frame: pd.DataFrame) -> list[tuple[str, ...]]:
    """``_key`` of every row of a RUNS or CELLS frame, in order."""
    return list(frame[KEY].astype(str).itertuples(index=False, name=None))


def _append(row: dict) -> None:
    """Append one run to RUNS in the file's own column order (to_csv appends in the dict's order,
    which silently misaligns a row whose keys were built in another order)."""
    frame = pd.DataFrame([row])
    if RUNS.exists():
        cols = list(pd.read_csv(RUNS, nrows=0).columns)
        extra = [c for c in frame.columns if c not in cols]
        if extra:
            raise ValueError(f"run row has columns {extra} that {RUNS.name} lacks")
        frame = frame.reindex(columns=cols)
    frame.to_csv(RUNS, mode="a", header=not RUNS.exists(), index=False, float_format="%.5g")


CELLS = RESULTS / "debiasing_cells.csv"


def cell_rates(test_faces: pd.DataFrame, hit: np.ndarray, train_faces: pd.DataFrame) -> pd.DataFrame:
    """Every skin_group x pose cell: its test detection rate (``hit``: the test faces detected at the run's
    threshold) and how many training faces it had. The skin gap at convergence lives in the cells with a handful of
    training faces (a seed of the default set has 2-10 darker profile faces), which the summary metrics do not
    show."""
    rate = test_faces.assign(hit=np.asarray(hit, bool)).groupby(["skin_group", "pose"]).hit.mean().rename("rate")
    n = train_faces.groupby(["skin_group", "pose"]).size().rename("n_train_faces")
    return pd.concat([rate, n], axis=1).fillna({"n_train_faces": 0}).astype({"n_train_faces": int}).reset_index()


def _append_cells(row: dict, cells: pd.DataFrame) -> None:
    """One line per cell of a finished run in CELLS, keyed like RUNS (from session 20 on; earlier runs have none)."""
    out = cells.assign(**{k: row[k] for k in KEY})[[*KEY, "skin_group", "pose", "n_train_faces", "rate"]]
    out.to_csv(CELLS, mode="a", header=not CELLS.exists(), index=False, float_format="%.5g")


def backfill_cells(a) -> None:
    """Cells for runs recorded before runs wrote them: each (setting, method, seed) of the arguments that has a row
    in RUNS and none in CELLS is trained again (training on the CPU is deterministic) and its cells appended, but
    only if the retrained run reproduces its recorded accuracy, gaps and worst group; otherwise it says so and
    appends nothing."""
    runs = pd.read_csv(RUNS)
    recorded = dict(zip(_keys(runs), (r for _, r in runs.iterrows())))
    have = set(_keys(pd.read_csv(CELLS))) if CELLS.exists() else set()
    jobs = []
    for setting in a.settings:
        for seed in a.seeds:
            for m in a.methods or []:
                job = {"setting": setting, "method": m, "seed": seed, "epochs": a.epochs, "n_train": a.n_train}
                if _key(job) in recorded and _key(job) not in have:
                    jobs.append({**job, **_how(a)})
    print(f"{len(jobs)} runs to retrain for their cells", flush=True)

    def keep_if_reproduced(progress: str, job: dict, row: dict, cells: pd.DataFrame) -> None:
        rec = recorded[_key(job)]
        same = reproduces(row, rec)
        print(f"{progress} {job['setting']} {job['method']} seed {job['seed']}: " + ", ".join(
            f"{c} {rec[c]:.5g} -> {row[c]:.5g}" for c in REPRODUCE) + ("" if same else "  NOT REPRODUCED"), flush=True)
        if same:
            _append_cells(row, cells)

    with ProcessPoolExecutor(a.workers) as ex:
        _each_finished({ex.submit(_one, j): j for j in jobs}, keep_if_reproduced)


REPRODUCE = ("accuracy", "skin_gap", "pose_gap", "worst_group_rate")


def reproduces(row: dict, recorded: pd.Series) -> bool:
    """Whether a retrained run's metrics equal its recorded row's to the 5 significant digits RUNS keeps."""
    return all(float(f"{row[c]:.5g}") == float(recorded[c]) for c in REPRODUCE)


def run(a) -> None:
    """Every job in priority order: the skin setting seed by seed, the length check, then pose."""
    unknown = sorted((set(a.methods or ()) | set(a.long_methods)) - {*METHODS, "intrinsic"})
    if unknown:
        sys.exit(f"unknown method label(s) {unknown}; choose from {[*METHODS, 'intrinsic']}")
    jobs = plan(a)
    done = pd.read_csv(RUNS) if RUNS.exists() else pd.DataFrame(columns=KEY)
    seen = set(_keys(done))
    todo = [j for j in jobs if _key(j) not in seen]
    print(f"{len(todo)} runs to do, {len(jobs) - len(todo)} already in {RUNS.name}", flush=True)
    with ProcessPoolExecutor(a.workers) as ex:
        record_as_done({ex.submit(_one, j): j for j in todo})


def plan(a) -> list[dict]:
    """The jobs of ``run``, in priority order. Labels named with --methods run on every setting given, in the order
    given; without --methods each setting runs its default list (``pose`` a shorter one). Named labels used to be
    filtered by that default list, so a label missing from it ran nowhere on ``pose`` and ``run`` said "0 runs to
    do"."""
    jobs = []
    for setting in a.settings:
        for seed in a.seeds:
            labels = (list(a.methods) if a.methods
                      else [*(METHODS if _base(setting) == "skin" else POSE_METHODS), "intrinsic"])
            base = {"setting": setting, "seed": seed, "epochs": a.epochs, "n_train": a.n_train, **_how(a)}
            jobs += [{**base, "method": m} for m in labels]
        if _base(setting) == "skin":
            for seed in a.long_seeds:  # the training-length check: the same runs, twice as long
                jobs += [{"setting": setting, "method": m, "seed": seed, "epochs": 2 * a.epochs,
                          "n_train": a.n_train, **_how(a)} for m in a.long_methods]
    return jobs


def _each_finished(futures: dict[Future, dict], record) -> None:
    """Hand each run to ``record(progress, job, row, cells)`` the moment it finishes, whichever finishes first (in
    submission order, a finished run waited for every run submitted before it, and a killed benchmark lost it). A
    failed run is reported and skipped: it must not stop the others."""
    for i, fut in enumerate(as_completed(futures), 1):
        job, progress = futures[fut], f"[{i}/{len(futures)}]"
        try:
            row = fut.result()
        except Exception as e:  # noqa: BLE001 - one failed run must not stop the others
            print(f"{progress} FAILED {job['setting']} {job['method']} seed {job['seed']}: {type(e).__name__}: {e}",
                  flush=True)
            continue
        record(progress, job, row, row.pop("_cells"))


def _record_run(progress: str, job: dict, row: dict, cells: pd.DataFrame) -> None:
    """Append a finished run's row to RUNS and its cells to CELLS, and say so."""
    _append(row)
    _append_cells(row, cells)
    print(f"{progress} {row['setting']} {row['method']} seed {row['seed']} ({row['epochs']} ep, "
          f"{row['seconds']:.0f}s): acc {row['accuracy']:.3f} worst {row['worst_group_rate']:.3f} "
          f"skin gap {row['skin_gap']:.3f} pose gap {row['pose_gap']:.3f} ESS {row['ess']:.2f} "
          f"mass darker {row['mass_darker']:.3f}", flush=True)


def record_as_done(futures: dict[Future, dict]) -> None:
    """``run``'s recorder: each run's row and cells appended the moment it finishes."""
    _each_finished(futures, _record_run)


# ------------------------------------------------------------------------------------------------
# summary
# ------------------------------------------------------------------------------------------------

METRICS = ("worst_group_rate", "skin_gap", "pose_gap", "E_A", "Var_A", "accuracy", "rate_darker", "rate_profile")


def t_interval(x: np.ndarray) -> tuple[float, float, float]:
    """Mean and 95% t-interval across seeds."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return (float(x.mean()) if len(x) else np.nan), np.nan, np.nan
    h = T975[min(len(x), 30)] * x.std(ddof=1) / np.sqrt(len(x))
    return float(x.mean()), float(x.mean() - h), float(x.mean() + h)


def _share_closed(m: np.ndarray, s: np.ndarray, i: np.ndarray, k: np.ndarray) -> np.ndarray:
    """The share of the representation gap closed, (std - method) / (std - intrinsic) as a ratio of means, on the
    seeds ``k`` (positions; a 2-d ``k`` gives one share per row: one bootstrap resample each)."""
    return (s[k] - m[k]).mean(-1) / (s[k] - i[k]).mean(-1)


def _seed_bootstrap(stat, n: int, n_boot: int, random_state: int) -> tuple[float, float, float]:
    """``stat(k)`` on all ``n`` seeds and its 95% percentile-bootstrap interval over seeds: ``stat`` takes seed
    positions ``k`` (1-d, or 2-d with one resample per row), so every array it reads is resampled on the same seeds
    and the interval carries the pairing. Non-finite resamples (a zero denominator) are dropped."""
    est = stat(np.arange(n))
    if n < 2:
        return float(est), np.nan, np.nan
    boot = stat(np.random.default_rng(random_state).integers(0, n, (n_boot, n)))
    lo, hi = np.percentile(boot[np.isfinite(boot)], [2.5, 97.5])
    return float(est), float(lo), float(hi)


def closed_fraction(method_gap: np.ndarray, standard_gap: np.ndarray, intrinsic_gap: np.ndarray, *,
                    n_boot: int = 10_000, random_state: int = 0) -> tuple[float, float, float]:
    """Share of the representation gap a method closes, (std - method) / (std - intrinsic).

    The three arrays are paired by seed. The point estimate is the ratio of the mean differences; the
    95% interval resamples seeds (percentile bootstrap), so it carries the pairing.
    """
    m, s, i = (np.asarray(v, dtype=float) for v in (method_gap, standard_gap, intrinsic_gap))
    return _seed_bootstrap(lambda k: _share_closed(m, s, i, k), len(m), n_boot, random_state)


def closed_difference(after: tuple, before: tuple, *, n_boot: int = 10_000,
                      random_state: int = 0) -> tuple[float, float, float]:
    """How much larger a share of the representation gap a method closes in ``after`` than in ``before``: each a
    (method_gap, standard_gap, intrinsic_gap) triple as ``closed_fraction`` takes, all six arrays paired by seed.
    The 95% interval resamples the same seeds for both (percentile bootstrap), so it carries the pairing."""
    a, b = ([np.asarray(v, dtype=float) for v in t] for t in (after, before))
    return _seed_bootstrap(lambda k: _share_closed(*a, k) - _share_closed(*b, k), len(a[0]), n_boot, random_state)


def summarise(runs: pd.DataFrame, epochs: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(debiasing_summary, gap_decomposition) from the per-run table, over seeds complete for a setting."""
    rows, decomp = [], []
    runs = runs[runs.epochs == epochs]
    for setting, r in runs.groupby("setting", sort=False):
        wide = {m: g.set_index("seed") for m, g in r.groupby("method")}
        if "standard" not in wide or "intrinsic" not in wide:
            continue
        gap = TARGET_GAP[_base(setting)]
        seeds = sorted(set(wide["standard"].index) & set(wide["intrinsic"].index))
        std, intr = wide["standard"].loc[seeds, gap].to_numpy(), wide["intrinsic"].loc[seeds, gap].to_numpy()
        d = {"setting": setting, "gap": gap, "n_seeds": len(seeds)}
        for name, v in (("total", std), ("intrinsic", intr), ("representation", std - intr)):
            d[name], d[f"{name}_ci_low"], d[f"{name}_ci_high"] = t_interval(v * 100)
        if "standard no-aug" in wide:
            s_na = wide["standard no-aug"].reindex(seeds)[gap].to_numpy()
            d["total_no_aug"], d["total_no_aug_ci_low"], d["total_no_aug_ci_high"] = t_interval(s_na * 100)
        decomp.append(d)
        for label in [m for m in (*METHODS, "intrinsic") if m in wide]:
            g = wide[label]
            common = [s for s in seeds if s in g.index]
            if not common:
                continue
            g = g.loc[common]
            aug = "no-aug" not in label
            for metric in METRICS + ("train_rate_darker", "train_rate_profile", "ess", "mass_darker",
                                     "mass_profile"):
                if metric not in g:
                    continue
                mean, lo, hi = t_interval(g[metric])
                rows.append(dict(setting=setting, method=label, augment=aug, n_seeds=len(g), metric=metric,
                                 mean=mean, ci_low=lo, ci_high=hi))
                if metric in METRICS and label != "standard":
                    diff = g[metric].to_numpy() - wide["standard"].loc[common, metric].to_numpy()
                    mean, lo, hi = t_interval(diff)
                    rows.append(dict(setting=setting, method=label, augment=aug, n_seeds=len(g),
                                     metric=f"{metric}_minus_standard", mean=mean, ci_low=lo, ci_high=hi))
            if label not in ("standard", "intrinsic") and len(common) >= 1:
                est, lo, hi = closed_fraction(g[gap].to_numpy(), wide["standard"].loc[common, gap].to_numpy(),
                                              wide["intrinsic"].loc[common, gap].to_numpy())
                rows.append(dict(setting=setting, method=label, augment=aug, n_seeds=len(common),
                                 metric="representation_gap_closed", mean=est, ci_low=lo, ci_high=hi))
    return pd.DataFrame(rows), pd.DataFrame(decomp)


def hard_negative_shares(cache: Path, seeds, n_train: int) -> pd.DataFrame:
    """Share of faces and of skin-toned hard negatives in each tone group, per setting (training split)."""
    from debias.data.manifest import read_manifest

    rows = []
    for setting in SETTINGS:
        for seed in seeds:
            root = cache / f"{setting}_seed{seed}_n{n_train}"
            if not (root / "manifest.csv").exists():
                continue
            m = read_manifest(root)
            m = m[m.split == "train"]
            faces = m[m.label == 1].skin_group.value_counts(normalize=True)
            neg = m[(m.label == 0) & m.nonface_tone.notna()].nonface_tone.astype(int).map(TONE_GROUP)
            negs = neg.value_counts(normalize=True)
            for g in ("lighter", "medium", "darker"):
                rows.append(dict(setting=setting, seed=seed, tone_group=g, face_share=float(faces.get(g, 0)),
                                 hard_negative_share=float(negs.get(g, 0))))
    return pd.DataFrame(rows)


def _ci_cell(r, name: str, fmt: str = ".1f") -> str:
    """'mean [low, high]' from the ``name``, ``name_ci_low`` and ``name_ci_high`` fields of the table row ``r``;
    empty where the row has no such value."""
    if pd.isna(getattr(r, name, np.nan)):
        return ""
    return f"{getattr(r, name):{fmt}} [{getattr(r, name + '_ci_low'):{fmt}}, {getattr(r, name + '_ci_high'):{fmt}}]"


def _fmt(s: pd.DataFrame, setting: str, method: str, metric: str, scale: float = 100, d: int = 1) -> str:
    r = s[(s.setting == setting) & (s.method == method) & (s.metric == metric)]
    if r.empty:
        return ""
    r = r.iloc[0]
    if pd.isna(r.ci_low):
        return f"{r['mean'] * scale:.{d}f}"
    return f"{r['mean'] * scale:.{d}f} [{r.ci_low * scale:.{d}f}, {r.ci_high * scale:.{d}f}]"


def markdown(s: pd.DataFrame, dec: pd.DataFrame) -> str:
    lines = []
    for setting in s.setting.unique():
        sub = s[s.setting == setting]
        n = int(sub.n_seeds.max())
        lines += [f"\n**Setting `{setting}`**: mean [95% CI across {n} seeds, paired by seed]; rates and gaps in "
                  "points, Var[A] in points squared; *closed* = share of the representation gap closed, in %.\n",
                  "| method | accuracy | worst group (skin x pose) | lighter-darker gap | frontal-profile gap | "
                  "E[A] | Var[A] | closed | gap minus standard |",
                  "|---|---|---|---|---|---|---|---|---|"]
        gap = TARGET_GAP[_base(setting)]
        for m in sub.method.unique():
            k = int(sub[sub.method == m].n_seeds.max())  # a method not yet run on every seed says on how many
            name = m if k == n else f"{m} ({k} seeds)"
            lines.append(f"| {name} | {_fmt(s, setting, m, 'accuracy')} | {_fmt(s, setting, m, 'worst_group_rate')} | "
                         f"{_fmt(s, setting, m, 'skin_gap')} | {_fmt(s, setting, m, 'pose_gap')} | "
                         f"{_fmt(s, setting, m, 'E_A', 1)} | {_fmt(s, setting, m, 'Var_A', 1, 0)} | "
                         f"{_fmt(s, setting, m, 'representation_gap_closed', 100, 0)} | "
                         f"{_fmt(s, setting, m, gap + '_minus_standard')} |")
    if not dec.empty:
        lines += ["\n**Gap decomposition** (`standard` with augmentation; points, 95% CI across seeds)\n",
                  "| setting | gap | seeds | total | intrinsic | representation | total without augmentation |",
                  "|---|---|---|---|---|---|---|"]
        for r in dec.itertuples():
            lines.append(f"| {r.setting} | {r.gap} | {r.n_seeds} | " + " | ".join(
                _ci_cell(r, c) for c in ("total", "intrinsic", "representation", "total_no_aug")) + " |")
    return "\n".join(lines) + "\n"


def figure(s: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # a script, not a library: no notebook state to protect
    import matplotlib.pyplot as plt

    settings = list(s.setting.unique())
    # a grid of at most 3 panels a row (one row of 9 was 7,920 px wide), each tall enough for its longest method list;
    # constrained layout keeps room for long method labels and the legend outside each axis
    ncols = min(3, len(settings))
    nrows = -(-len(settings) // ncols)
    most = max(s[s.setting == st].method.nunique() for st in settings)
    fig, axes = plt.subplots(nrows, ncols, figsize=(9 * ncols, nrows * max(4.8, 0.3 * most + 1.5)), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[len(settings):]:
        ax.set_visible(False)
    for ax, setting in zip(axes.flat, settings):
        gap = TARGET_GAP[_base(setting)]
        sub = s[(s.setting == setting) & (s.metric == gap)].reset_index(drop=True)
        y = np.arange(len(sub))
        ax.errorbar(sub["mean"] * 100, y, xerr=[(sub["mean"] - sub.ci_low) * 100, (sub.ci_high - sub["mean"]) * 100],
                    fmt="o", capsize=3)
        ax.set_yticks(y, sub.method)
        ax.invert_yaxis()
        ax.axvline(0, color="k", lw=0.8)
        std = sub[sub.method == "standard"]
        if not std.empty:
            ax.axvline(std["mean"].iloc[0] * 100, color="grey", ls="--", lw=0.8, label="standard")
        intr = sub[sub.method == "intrinsic"]
        if not intr.empty:
            ax.axvline(intr["mean"].iloc[0] * 100, color="green", ls=":", lw=1, label="intrinsic (balanced data)")
        ax.set_xlabel(f"{gap.replace('_', ' ')} (points; 95% CI across seeds)")
        ax.set_title(f"setting: {setting}")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)  # outside: never over a method's point
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _runs(a) -> pd.DataFrame:
    """The per-run table at this training-set size (the default 20,000, or the scale setting's)."""
    runs = pd.read_csv(RUNS)
    return runs[runs.n_train == a.n_train]


def _out(a, name: str, *, by_length: bool = True) -> Path:
    """A results file; another size (the scale setting) or length carries it in its name, so that it never
    overwrites the default's (20,000 images, 6 epochs)."""
    stem, ext = name.rsplit(".", 1)
    tag = (f"_n{a.n_train}" if a.n_train != 20_000 else "") + (f"_e{a.epochs}" if a.epochs != 6 and by_length else "")
    return RESULTS / f"{stem}{tag}.{ext}"


def confirm(a) -> None:
    """The chosen variants on seeds that took no part in choosing them: the same summary over those seeds only."""
    runs = _runs(a)
    s, dec = summarise(runs[runs.seed.isin(a.seeds)], a.epochs)
    s.to_csv(_out(a, "debiasing_confirmation.csv"), index=False, float_format="%.5g")
    md = (f"Confirmation on seeds {', '.join(map(str, a.seeds))} (not used to choose any variant):\n"
          + markdown(s, dec))
    _out(a, "debiasing_confirmation.md").write_text(md)
    print(md)


def seed_span(seeds) -> str:
    """'0-9' for a run of consecutive seeds, else every seed listed ('0-6, 8, 9' must not read as '0-9')."""
    seeds = sorted(set(seeds))
    if seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2:
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(map(str, seeds))


def pooled(a) -> None:
    """Every seed that ran (selection and confirmation together), methods with runs on all of them only, so
    that every difference stays paired by seed."""
    runs = _runs(a)
    runs = runs[runs.seed.isin(a.seeds) & (runs.epochs == a.epochs)]
    n = runs.groupby(["setting", "method"]).seed.transform("nunique")
    runs = runs[n == len(a.seeds)]
    s, dec = summarise(runs, a.epochs)
    s.to_csv(_out(a, "debiasing_pooled.csv"), index=False, float_format="%.5g")
    md = f"All seeds {seed_span(a.seeds)} pooled (methods that ran on every one of them):\n" + markdown(s, dec)
    _out(a, "debiasing_pooled.md").write_text(md)
    print(md)


PAIRED_METRICS = ("accuracy", "worst_group_rate", "skin_gap", "pose_gap")


def paired_differences(before: pd.DataFrame, after: pd.DataFrame, **key) -> list[dict]:
    """Each of PAIRED_METRICS in points under ``before`` and ``after`` (run rows of one method indexed by seed) and
    their difference after - before, paired by seed, 95% t-interval; [] when fewer than 2 seeds are common.
    ``key`` names the pair in every row (method and lengths, or method and training variant)."""
    common = sorted(set(before.index) & set(after.index))
    if len(common) < 2:
        return []
    rows = []
    for metric in PAIRED_METRICS:
        x0, x1 = before.loc[common, metric] * 100, after.loc[common, metric] * 100
        mean, lo, hi = t_interval(x1.to_numpy() - x0.to_numpy())
        rows.append(dict(**key, n_seeds=len(common), metric=metric, at_from=x0.mean(), at_to=x1.mean(), diff=mean,
                         ci_low=lo, ci_high=hi, moved=bool(lo > 0 or hi < 0)))
    return rows


def _paired_markdown(out: pd.DataFrame, by: list[str], head: str, column: str, first: str = "method") -> str:
    """One table row per group of ``by`` in ``out`` (rows of ``paired_differences``; ``by`` is the method and what
    it was compared between, e.g. two lengths): each metric as 'before -> after: difference [CI]', bold where the
    interval excludes 0. ``column`` heads the 'before -> after' column of the comparison, ``first`` the first."""
    md = [head, f"| {first} | {column} | seeds | accuracy | worst group | lighter-darker gap | frontal-profile gap |",
          "|---|---|---|---|---|---|---|"]
    for key, g in out.groupby(by, sort=False):
        cells = []
        for metric in PAIRED_METRICS:
            r = g[g.metric == metric].iloc[0]
            d = f"{r['diff']:+.1f} [{r.ci_low:+.1f}, {r.ci_high:+.1f}]"
            cells.append(f"{r.at_from:.1f} -> {r.at_to:.1f}: " + (f"**{d}**" if r.moved else d))
        method, before, after = key
        md.append(f"| {method} | {before} -> {after} | {g.n_seeds.iloc[0]} | " + " | ".join(cells) + " |")
    return "\n".join(md) + "\n"


def length_table(runs: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Does training longer move any metric? Every method trained at several lengths on the same seeds (skin
    setting): the paired difference of each metric from one length to the next, 95% t-interval across seeds.
    Returns the rows and their markdown table."""
    runs = runs[runs.setting == "skin"]
    rows = []
    for m, g in runs.groupby("method", sort=False):
        lengths = sorted(g.epochs.unique())
        for e0, e1 in zip(lengths, lengths[1:]):
            rows += paired_differences(g[g.epochs == e0].set_index("seed"), g[g.epochs == e1].set_index("seed"),
                                       method=m, from_epochs=e0, to_epochs=e1)
    out = pd.DataFrame(rows)
    if out.empty:
        return out, ""
    head = ("Training length (skin setting): each metric at one length and the next, same seeds; the difference is "
            "paired by seed, 95% CI; **bold** where the interval excludes 0.\n")
    return out, _paired_markdown(out, ["method", "from_epochs", "to_epochs"], head, "epochs")


def variant_table(runs: pd.DataFrame, epochs: int) -> tuple[pd.DataFrame, str]:
    """Does a training variant (VARIANTS: stronger augmentation, weight decay, the cosine schedule) move any
    metric? Every method trained both ways at ``epochs`` on the same seeds: the paired difference of each metric
    from its base setting to the variant, 95% t-interval across seeds. Returns the rows and their markdown table."""
    runs = runs[runs.epochs == epochs]
    rows = []
    for variant, (base, _) in VARIANTS.items():
        v, b = runs[runs.setting == variant], runs[runs.setting == base]
        for m, g in v.groupby("method", sort=False):
            rows += paired_differences(b[b.method == m].set_index("seed"), g.set_index("seed"), method=m,
                                       base=base, variant=variant)
    out = pd.DataFrame(rows)
    if out.empty:
        return out, ""
    head = (f"Training variants at {epochs} epochs: each metric trained on the base setting and with the variant, "
            "same method and seeds; the difference is paired by seed, 95% CI; **bold** where the interval excludes "
            "0.\n")
    return out, _paired_markdown(out, ["method", "base", "variant"], head, "training")


def option_table(runs: pd.DataFrame, epochs: int) -> tuple[pd.DataFrame, str]:
    """Does a method option move any metric? Within each setting at ``epochs``, every label against the label it
    extends by one or more words (``group-dro margin1`` against ``group-dro``, ``... smooth50 loss`` against
    ``... smooth50``), on the seeds both ran: the paired difference of each metric, 95% t-interval across seeds.
    Returns the rows and their markdown table."""
    runs = runs[runs.epochs == epochs]
    rows = []
    for setting, g in runs.groupby("setting", sort=False):
        labels = list(dict.fromkeys(g.method))
        for label in labels:
            bases = [b for b in labels if label.startswith(b + " ")]
            if bases:
                base = max(bases, key=len)  # the label it extends directly
                rows += paired_differences(g[g.method == base].set_index("seed"),
                                           g[g.method == label].set_index("seed"), setting=setting, base=base,
                                           label=label)
    out = pd.DataFrame(rows)
    if out.empty:
        return out, ""
    head = (f"Method options at {epochs} epochs: each label against the label it extends, same setting and seeds; the "
            "difference is paired by seed, 95% CI; **bold** where the interval excludes 0.\n")
    return out, _paired_markdown(out, ["setting", "base", "label"], head, "label", first="setting")


def composition_table(runs: pd.DataFrame, epochs: int) -> tuple[pd.DataFrame, str]:
    """What a training composition (COMPOSITIONS: the same set with more rare faces) changes, for every method run
    on both it and its base setting at ``epochs``, on the seeds where the method, ``standard`` and ``intrinsic`` ran
    on both: the lighter-darker gap it leaves above ``intrinsic`` in each (points; the paired difference, 95%
    t-interval across seeds), and the share of the representation gap it closes in each (the difference, bootstrap
    over seeds). Returns the rows and their markdown table."""
    runs = runs[runs.epochs == epochs]
    gap = lambda st, m: runs[(runs.setting == st) & (runs.method == m)].set_index("seed").skin_gap * 100  # noqa: E731
    rows = []
    for comp, (base, _) in COMPOSITIONS.items():
        for m in dict.fromkeys(runs[runs.setting == comp].method):
            if m == "intrinsic":
                continue
            g = {st: [gap(st, x) for x in (m, "standard", "intrinsic")] for st in (base, comp)}
            seeds = sorted(set.intersection(*(set(x.index) for st in g for x in g[st])))
            if len(seeds) < 2:
                continue
            t = {st: [x.loc[seeds].to_numpy() for x in g[st]] for st in g}
            left = {st: t[st][0] - t[st][2] for st in t}
            row = dict(composition=comp, base=base, method=m, n_seeds=len(seeds))
            for name, v in (("left_base", left[base]), ("left_composition", left[comp]),
                            ("left_diff", left[comp] - left[base])):
                row[name], row[f"{name}_ci_low"], row[f"{name}_ci_high"] = t_interval(v)
            if m != "standard":
                for name, v in (("closed_base", closed_fraction(*t[base])), ("closed_composition",
                                                                             closed_fraction(*t[comp])),
                                ("closed_diff", closed_difference(t[comp], t[base]))):
                    row[name], row[f"{name}_ci_low"], row[f"{name}_ci_high"] = (100 * x for x in v)
            rows.append(row)
    out = pd.DataFrame(rows)
    if out.empty:
        return out, ""
    md = [f"Training compositions at {epochs} epochs: each method on the base setting and on the same set with more "
          "rare faces, same seeds. *Left* = its lighter-darker gap minus `intrinsic`'s, in points (for `standard`: "
          "the representation gap); *closed* = the share of the representation gap it closes, in %. Differences "
          "paired by seed: t-interval for points, bootstrap over seeds for shares.\n",
          "| composition | method | seeds | left, base | left, composition | difference | closed, base | "
          "closed, composition | difference |", "|---|---|---|---|---|---|---|---|---|"]
    for r in out.itertuples():
        md.append(f"| {r.base} -> {r.composition} | {r.method} | {r.n_seeds} | " + " | ".join(
            [_ci_cell(r, c, "+.1f" if c.endswith("diff") else ".1f")
             for c in ("left_base", "left_composition", "left_diff")]
            + [_ci_cell(r, c, "+.0f" if c.endswith("diff") else ".0f")
               for c in ("closed_base", "closed_composition", "closed_diff")]) + " |")
    return out, "\n".join(md) + "\n"


TARGET = 2 / 3  # issue 9's target: a method closes at least 2/3 of the representation gap


def seeds_for_power(effect: float, power: float = 0.8, alpha: float = 0.05, n_max: int = 1000) -> int | None:
    """The fewest seeds at which a two-sided one-sample t-test at ``alpha`` tells a mean of ``effect`` standard
    deviations from 0 with probability ``power`` (the noncentral t, scipy); None beyond ``n_max`` or for 0."""
    from scipy import stats

    if not np.isfinite(effect) or effect == 0:
        return None
    for n in range(2, n_max + 1):
        crit = stats.t.ppf(1 - alpha / 2, n - 1)
        nc = abs(effect) * np.sqrt(n)
        if stats.nct.sf(crit, n - 1, nc) + stats.nct.cdf(-crit, n - 1, nc) >= power:
            return n
    return None


def pair_table(runs: pd.DataFrame, epochs: int, before: str, after: str, standard: str = "standard",
               intrinsic: pd.DataFrame | None = None) -> tuple[pd.DataFrame, str]:
    """Any two method labels of a setting at ``epochs``, paired by seed (``options`` pairs a label only with the
    label it extends): each of PAIRED_METRICS under both and ``after`` - ``before`` (95% t-interval), on the seeds
    both ran; and, on the seeds where the references ran too, the share of the representation gap each closes, the
    difference of the shares (bootstrap over seeds, paired), and how far each method's gap sits above the line where
    TARGET of each seed's representation gap would be closed (points, 95% t-interval), with the seeds a t-test needs
    to tell that distance from 0 at 80% power. The references are the label ``standard`` and the setting's
    ``intrinsic`` rows, or the ``intrinsic`` rows given (another setting's: a training variant's `intrinsic`, to
    measure labels trained with that variant's options against a reference trained the same way). Returns the rows
    and their markdown."""
    runs = runs[runs.epochs == epochs]
    rows, md = [], []
    for setting, g in runs.groupby("setting", sort=False):
        ref = g[g.method == "intrinsic"] if intrinsic is None else intrinsic[intrinsic.epochs == epochs]
        by = {"before": g[g.method == before], "after": g[g.method == after], "standard": g[g.method == standard],
              "intrinsic": ref}
        by = {k: v.set_index("seed") for k, v in by.items()}
        diffs = paired_differences(by["before"], by["after"], setting=setting, from_method=before, to_method=after)
        if not diffs:
            continue
        rows += diffs
        md.append(_paired_markdown(pd.DataFrame(diffs), ["setting", "from_method", "to_method"],
                                   f"**{setting}**, {epochs} epochs: `{after}` minus `{before}`, paired by seed, 95% "
                                   "CI; **bold** where the interval excludes 0.\n", "methods", first="setting"))
        seeds = sorted(set.intersection(*(set(v.index) for v in by.values())))
        refs = f"`{standard}` and " + ("`intrinsic`" if intrinsic is None else
                                       f"`intrinsic` of {', '.join(map(str, dict.fromkeys(ref.setting)))}")
        if len(seeds) < 2:
            md.append(f"({refs} ran on fewer than 2 of these seeds: no share closed.)\n")
            continue
        target_gap = TARGET_GAP[_base(setting)]  # pose_gap on `pose`, skin_gap on `skin` and its variants
        gap = {m: v.loc[seeds, target_gap].to_numpy() * 100 for m, v in by.items()}
        s, i = gap["standard"], gap["intrinsic"]
        line = s - TARGET * (s - i)  # per seed: the gap a method would leave if it closed exactly TARGET
        md.append(f"Share of the representation gap closed, seeds {', '.join(map(str, seeds))} (where {refs} ran "
                  "too); *above the 2/3 line* = the method's gap minus the gap that closing 2/3 of each seed's "
                  "representation gap would leave (points; > 0 falls short):\n")
        md += ["| method | closed | above the 2/3 line | SD across seeds | seeds for 80% power |",
               "|---|---|---|---|---|"]
        key = dict(setting=setting, from_method=before, to_method=after, n_seeds=len(seeds))
        for m, k in ((before, "before"), (after, "after")):
            c = closed_fraction(gap[k], s, i)
            short = gap[k] - line
            t = t_interval(short)
            sd = float(short.std(ddof=1))
            need = seeds_for_power(t[0] / sd if sd > 0 else np.nan)
            rows.append(dict(**key, metric=f"closed:{m}", diff=c[0], ci_low=c[1], ci_high=c[2],
                             moved=bool(c[1] > 0 or c[2] < 0)))
            rows.append(dict(**key, metric=f"above_target:{m}", diff=t[0], ci_low=t[1], ci_high=t[2],
                             moved=bool(t[1] > 0 or t[2] < 0), sd=sd, seeds_for_power=need))
            md.append(f"| {m} | {c[0] * 100:.0f}% [{c[1] * 100:.0f}, {c[2] * 100:.0f}] | "
                      f"{t[0]:+.1f} [{t[1]:+.1f}, {t[2]:+.1f}] | {sd:.1f} | {need if need else 'over 1000'} |")
        d = closed_difference((gap["after"], s, i), (gap["before"], s, i))
        rows.append(dict(**key, metric="closed_difference", diff=d[0], ci_low=d[1], ci_high=d[2],
                         moved=bool(d[1] > 0 or d[2] < 0)))
        md.append(f"\nShare closed, `{after}` minus `{before}`: {d[0] * 100:+.0f} [{d[1] * 100:+.0f}, "
                  f"{d[2] * 100:+.0f}] points (bootstrap over the same seeds).\n")
    return pd.DataFrame(rows), "\n".join(md)


def memorisation_table(runs: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Recall of darker *training* faces against darker *test* faces, at the test threshold, for every method
    trained at more than one length (skin setting, >= 2 seeds): where training recall is ~100% and test recall
    stays below it, the model has fit the faces it has and the rest of the gap is generalisation from too few of
    them, which no reweighting of the same faces supplies. Returns the rows and their markdown table."""
    runs = runs[runs.setting == "skin"]
    several = runs.groupby("method").epochs.nunique()
    rows = []
    for (m, e), g in runs[runs.method.isin(several[several > 1].index)].groupby(["method", "epochs"], sort=False):
        if len(g) < 2:
            continue
        tr, te = g.train_rate_darker.to_numpy() * 100, g.rate_darker.to_numpy() * 100
        row = dict(method=m, epochs=e, n_seeds=len(g))
        for name, v in (("train_darker", tr), ("test_darker", te), ("train_minus_test", tr - te),
                        ("skin_gap", g.skin_gap.to_numpy() * 100)):
            row[name], row[f"{name}_ci_low"], row[f"{name}_ci_high"] = t_interval(v)
        rows.append(row)
    out = pd.DataFrame(rows)
    if out.empty:
        return out, ""
    out = out.sort_values(["method", "epochs"], kind="stable")
    md = ["Memorisation (skin setting): recall of darker training faces and of darker test faces at the test "
          "threshold, points, mean [95% CI across seeds].\n",
          "| method | epochs | seeds | train darker | test darker | train minus test | lighter-darker gap |",
          "|---|---|---|---|---|---|---|"]
    for r in out.itertuples():
        cells = [_ci_cell(r, c) for c in ("train_darker", "test_darker", "train_minus_test", "skin_gap")]
        md.append(f"| {r.method} | {r.epochs} | {r.n_seeds} | " + " | ".join(cells) + " |")
    return out, "\n".join(md) + "\n"


def length(a) -> None:
    runs = _runs(a)
    runs = runs[runs.seed.isin(a.seeds) & (runs.n_train == a.n_train)]
    out, text = length_table(runs)
    out.to_csv(_out(a, "debiasing_length.csv"), index=False, float_format="%.4g")
    mem, mem_text = memorisation_table(runs)
    mem.to_csv(_out(a, "debiasing_memorisation.csv"), index=False, float_format="%.4g")
    text += "\n" + mem_text
    _out(a, "debiasing_length.md").write_text(text)
    print(text)


def _paired_report(a, table, stem: str) -> None:
    """``table`` (variant_table, option_table) over the runs of ``a.seeds`` at ``a.epochs``, to ``stem``.csv/.md."""
    runs = _runs(a)
    out, text = table(runs[runs.seed.isin(a.seeds)], a.epochs)
    out.to_csv(_out(a, f"{stem}.csv"), index=False, float_format="%.4g")
    _out(a, f"{stem}.md").write_text(text)
    print(text)


def compositions(a) -> None:
    """Every method on each composition against its base setting (default seeds 0-9)."""
    _paired_report(a, composition_table, "debiasing_compositions")


def variants(a) -> None:
    """Every method with and without a training variant (default seeds 0-4)."""
    _paired_report(a, variant_table, "debiasing_variants")


def options(a) -> None:
    """Every method option against the label it extends, on every seed both ran (default seeds 0-9)."""
    _paired_report(a, option_table, "debiasing_options")


def pair(a) -> None:
    """Two method labels against each other on every seed both ran (default seeds 0-9); printed only."""
    if not a.methods or len(a.methods) != 2:
        print("pair needs --methods BEFORE AFTER: two method labels, e.g. --methods balanced group-dro",
              file=sys.stderr)
        sys.exit(2)
    runs = _runs(a)
    runs = runs[runs.seed.isin(a.seeds)]
    standard, intrinsic = "standard", None
    if a.references:
        standard, setting = a.references
        intrinsic = runs[(runs.setting == setting) & (runs.method == "intrinsic") & (runs.epochs == a.epochs)]
        if intrinsic.empty:
            print(f"--references: setting {setting!r} has no `intrinsic` run at {a.epochs} epochs on these seeds; run "
                  f"it first (debiasing.py run --settings {setting} --epochs {a.epochs} --methods intrinsic ...)",
                  file=sys.stderr)
            sys.exit(2)
    runs = runs[runs.setting.isin(a.settings)]
    out, text = pair_table(runs, a.epochs, *a.methods, standard=standard, intrinsic=intrinsic)
    print(text or f"no setting has both {a.methods[0]!r} and {a.methods[1]!r} on 2 or more of these seeds at "
                  f"{a.epochs} epochs")


def summary(a) -> None:
    runs = _runs(a)
    runs = runs[runs.seed.isin(a.seeds)]  # the selection seeds; confirmation seeds are summarised by `confirm`
    s, dec = summarise(runs, a.epochs)
    s.to_csv(_out(a, "debiasing_summary.csv"), index=False, float_format="%.5g")
    dec.to_csv(_out(a, "gap_decomposition.csv"), index=False, float_format="%.4g")
    hn = hard_negative_shares(a.cache, a.seeds, a.n_train)
    ran = {(st, sd) for st, sd in zip(runs.setting, runs.seed) if st in SETTINGS}  # runs: already these seeds
    missing = sorted(ran - set(zip(hn.get("setting", []), hn.get("seed", []))))
    if missing:  # a partial cache would overwrite the committed shares with fewer settings or seeds than were run
        print(f"{_out(a, 'hard_negative_shares.csv', by_length=False).name} kept: no data in {a.cache} for "
              + ", ".join(f"{st} seed {sd}" for st, sd in missing), file=sys.stderr)
    else:
        hn.groupby(["setting", "tone_group"], sort=False)[["face_share", "hard_negative_share"]].mean() \
          .to_csv(_out(a, "hard_negative_shares.csv", by_length=False), float_format="%.4f")  # data only
    md = markdown(s, dec)
    if runs.epochs.nunique() > 1:  # the training-length check, as `length` prints it
        md += "\n" + length_table(runs)[1]
    _out(a, "debiasing_table.md").write_text(md)
    figure(s, _out(a, "debiasing_gaps.png"))
    print(md)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["run", "summary", "confirm", "pooled", "length", "variants", "options",
                                      "compositions", "cells", "pair"])
    ap.add_argument("--seeds", type=int, nargs="+", default=None,
                    help="default 0-4 (the seeds variants were chosen on); 5-9 for confirm; 0-9 for pooled, options, "
                         "compositions and pair")
    ap.add_argument("--long-seeds", type=int, nargs="*", default=[0, 1, 2],
                    help="seeds on which the --long-methods also train for twice the epochs")
    ap.add_argument("--long-methods", nargs="+", default=["standard", "balanced"], metavar="LABEL",
                    help="methods of the training-length check")
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=[*SETTINGS, *VARIANTS, *COMPOSITIONS])
    ap.add_argument("--methods", nargs="+", default=None, metavar="LABEL",
                    help="run only these method labels, in this order ('intrinsic' only if named); default all")
    ap.add_argument("--references", nargs=2, default=None, metavar=("STANDARD_LABEL", "INTRINSIC_SETTING"),
                    help="pair: measure the shares closed against this label as `standard` and the `intrinsic` runs "
                         "of this setting (e.g. \"standard sam0.05\" skin-sam0.05); default `standard` and the "
                         "setting's own `intrinsic`")
    ap.add_argument("--n-train", type=int, default=20_000)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--workers", type=int, default=2, help="runs in parallel (each uses one CPU thread)")
    ap.add_argument("--render-workers", type=int, default=1,
                    help="processes each run renders a data set it needs with (first use only; the same images for "
                         "any number): on the 2-core machine 1, as both cores train; on a GPU machine the idle cores")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                    help="where each run trains and scores; auto = cuda when torch sees one (recorded per row)")
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("DEBIAS_BENCH_CACHE", "/tmp/debias-bench")))
    a = ap.parse_args()
    a.seeds = a.seeds or {"confirm": [5, 6, 7, 8, 9], "pooled": list(range(10)),
                          "options": list(range(10)), "pair": list(range(10)),
                          "compositions": list(range(10))}.get(a.what, [0, 1, 2, 3, 4])
    RESULTS.mkdir(exist_ok=True)
    a.cache.mkdir(parents=True, exist_ok=True)
    {"run": run, "summary": summary, "confirm": confirm, "pooled": pooled, "length": length,
     "variants": variants, "options": options, "compositions": compositions,
     "cells": backfill_cells, "pair": pair}[a.what](a)
    sys.exit(0)
