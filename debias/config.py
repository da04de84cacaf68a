"""Frozen configuration objects for every job.

Each CLI command turns its options into one of these and passes it to a library function. The
config a run used is written next to its outputs as JSON (``dataclasses.asdict``), so every result
can be reproduced from that file alone.
"""
from __future__ import annotations

import dataclasses
import json
import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any


# Upper bounds of the augmentation ranges (all start at 0), shared by AugmentConfig and TrainConfig's aug_* options.
AUGMENT_LIMITS = {"flip": 1.0, "scale": 0.99, "translate": 0.5, "rotate": 45.0}


def _check_augment_ranges(cfg: Any, prefix: str = "") -> None:
    for name, hi in AUGMENT_LIMITS.items():
        value = getattr(cfg, prefix + name, None)
        if value is not None and not 0.0 <= value <= hi:
            raise ValueError(f"`{prefix}{name}`={value} must be in [0, {hi}].")


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random geometric transform (``debias.data.augment``); each image draws its own."""

    flip: float = 0.5  # probability of a horizontal flip
    scale: float = 0.1  # zoom factor drawn uniformly from [1 - scale, 1 + scale]
    translate: float = 0.1  # shift drawn uniformly from +-translate of the image side, per axis
    rotate: float = 0.0  # rotation drawn uniformly from +-rotate degrees (0: none)

    def __post_init__(self) -> None:
        _check_augment_ranges(self)


@dataclass(frozen=True)
class SynthConfig:
    """Procedural face / non-face benchmark (``debias data synth``)."""

    n_train: int = 20_000  # training images (faces + non-faces), biased by the shares below
    n_val: int = 2_000  # validation images, drawn from the same biased distribution as train
    n_test_per_cell: int = 120  # faces per skin_group x pose x gender cell in the balanced test split
    size: int = 64  # image side in pixels (the DB-VAE lab uses 64)
    seed: int = 0  # one seed drives everything; chunks get spawned child seeds
    face_fraction: float = 0.5  # share of faces among images in every split
    darker_share: float = 0.02  # MST 7-10 share of training faces (see datasets/synthfaces/README.md)
    medium_share: float = 0.05  # MST 5-6 share of training faces
    profile_share: float = 0.03  # |yaw| > 45 share of training faces
    three_quarter_share: float = 0.05  # 15 <= |yaw| <= 45 share of training faces
    female_share: float = 0.5  # female-presenting share of training faces
    light_min: float = 0.55  # lowest light intensity (1.0 = the exposure the camera is set for)
    light_max: float = 1.15  # highest light intensity
    light_azimuth: float = 60.0  # light direction is uniform in +-this many degrees
    noise: float = 0.02  # sensor read noise, std in linear intensity (shot noise is added on top)
    png: bool = False  # also write one PNG per image under images/
    workers: int = 2  # render processes; output does not depend on this

    def __post_init__(self) -> None:
        for name in ("darker_share", "medium_share", "profile_share", "three_quarter_share",
                     "female_share", "face_fraction"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"`{name}`={v!r} must be between 0 and 1.")
        for a, b, rest in (("darker_share", "medium_share", "lighter"), ("profile_share", "three_quarter_share", "frontal")):
            total = getattr(self, a) + getattr(self, b)
            if total > 1:
                raise ValueError(f"`{a}` + `{b}` = {total:g} must be at most 1 (the rest is {rest}).")
        for name in ("n_train", "n_val", "n_test_per_cell"):
            if getattr(self, name) < 0:
                raise ValueError(f"`{name}`={getattr(self, name)} must be >= 0.")
        if self.workers < 1:
            raise ValueError(f"`workers`={self.workers} must be at least 1.")
        if not (math.isfinite(self.noise) and self.noise >= 0):
            raise ValueError(f"`noise`={self.noise} must be a finite number >= 0.")
        if self.size < 32:
            raise ValueError(f"`size`={self.size} is too small; use at least 32 pixels.")
        if not (math.isfinite(self.light_max) and 0 < self.light_min <= self.light_max):
            raise ValueError(f"light range `light_min`={self.light_min} to `light_max`={self.light_max} must be positive and "
                             f"ordered.")


@dataclass(frozen=True)
class TrainConfig:
    """Training of a standard classifier or a DB-VAE (``debias train``)."""

    method: str = "dbvae"  # standard | dbvae | vae-uniform | balanced | group-dro | jtt | loss-resample
    arch: str = "cnn"  # cnn (the DB-VAE lab CNN) | resnet18 (torchvision, untrained)
    width: int = 12  # n in the lab CNN's conv widths n, 2n, 4n, 6n
    latent_dim: int = 100  # k, the DB-VAE latent size
    # none | local: the network also reads each image's local contrast (models.classifier.LocalContrast), in which a
    # feature on darker skin is about as strong as on lighter skin; the raw pixels stay. Part of the model (export,
    # audit and load apply it); never an augmentation, it is the same for every image, training and test
    input_norm: str = "none"
    beta: float = 5e-4  # weight of the KL term (beta-VAE); the lab's kl_weight, since rec is a pixel mean
    c_rec: float = 1.0  # weight of the reconstruction term
    rec_norm: str = "l1"  # l1 | l2 per-pixel reconstruction loss (mean over pixels)
    rec_region: str = "full"  # full image | center: reconstruct only the central half, where a face crop has its face
    # pixels | standardised: compare input and reconstruction after each is standardised per image (zero mean, unit
    # variance), so the latent need not spend capacity on overall brightness and contrast
    rec_target: str = "pixels"
    epochs: int = 6  # passes over the training split (sampled batches count as one epoch's worth)
    batch_size: int = 64  # images per optimisation step
    lr: float = 5e-4  # Adam learning rate
    # decoupled weight decay (AdamW) of the conv and linear weights, not of biases and norm parameters (nanoGPT's
    # split); 0 = plain Adam. Sagawa et al. (2020) found reweighted and DRO training helps worst groups at
    # convergence only with strong regularisation: an unregularised net fits every training face, whatever its weight
    weight_decay: float = 0.0
    # constant | cosine: the rate of step t of T is lr * (1 + cos(pi t / T)) / 2, falling to ~0 by the last step
    # (JTT: over its final model's epochs; the identification model keeps the constant rate). A constant rate ends
    # wherever the last noisy step lands; annealing ends near a minimum (nanoGPT and torchvision's recipes anneal)
    lr_schedule: str = "constant"
    # average the weights at the end of every epoch from this one (0-based; of the final model for jtt) to the last and
    # save the average, its BatchNorm statistics recomputed over the last epoch's batches: stochastic weight averaging
    # (Izmailov et al. 2018, torch.optim.swa_utils), a flatter solution than the last noisy step's; 0 = off
    swa_from: int = 0
    # which weights to save: last (those of the last epoch) | best (those of the epoch whose worst group has the lowest
    # validation loss, Sagawa et al. 2020's model selection, with the groups the run has without validation labels
    # for dbvae's `latent_dro`: the validation faces go to the training faces' latent clusters, as in GEORGE, Sohoni
    # et al. 2020). Groups: Group DRO's (labelled groups, or the latent clusters) and the non-faces; for other
    # methods the faces and the non-faces. Needs a `val` split. On the benchmark it made every method's gap wider in
    # point estimate (the latent-cluster Group DRO's beyond noise: 18% of the gap closed instead of 58%; RESULTS.md)
    keep: str = "last"
    seed: int = 0  # model init, sampling and augmentation all derive from this
    device: str = "auto"  # auto (cuda if available) | cpu | cuda
    workers: int = 0  # threads that prefetch batches from the packed array; 0 loads in the training loop
    compile: bool = True  # torch.compile the step when the run is long enough to pay for it (train.COMPILE_MIN_IMAGES); eager fallback
    precision: str = "fp32"  # fp32 | bf16 (autocast; CPUs with avx512_bf16/AMX, and CUDA) | fp16 (CUDA AMP, grad scaling)
    channels_last: bool = False  # NHWC memory layout for model and batches (pays together with bf16 on oneDNN)
    augment: bool = True  # random flip + scale/shift jitter per image (debias/data/augment.py); never colour
    aug_scale: float = 0.1  # zoom drawn from [1 - aug_scale, 1 + aug_scale] per image
    aug_translate: float = 0.1  # shift drawn from +-aug_translate of the image side, per axis
    aug_rotate: float = 0.0  # rotation drawn from +-aug_rotate degrees (0: none)
    # resampling (debias/sampling.py)
    density: str = "histogram"  # histogram (the paper's per-dimension histograms) | gmm (joint mixture on mu)
    bins: int = 10  # histogram bins per latent dimension
    alpha: float = 0.01  # histogram smoothing; large alpha -> uniform sampling
    combine: str = "product"  # product (the paper's) | max (the lab's) | tempered
    temperature: float = 0.0  # tempered exponent; 0 means 1/k, the geometric mean over dimensions
    min_ess: float = 0.3  # floor on effective sample size, as a fraction of training faces (dbvae, loss-resample)
    smooth_k: int = 0  # histogram: average each face's log-weight over its k nearest latent neighbours; 0 = off (the paper)
    max_weight: float = 0.0  # dbvae: no face drawn more than this many times its uniform rate (after the guard); 0 = off
    # dbvae: spread the density weights' mass evenly within each of this many latent clusters (latent_clusters, the
    # groups latent_dro uses): a cluster keeps the total mass the density gives it, but within it no face is drawn more
    # often than another (the density's few favoured darker faces were drawn 43-63x uniform; balanced labels draw every
    # darker face alike). With latent_dro (the same number) it replaces latent_dro's equal cluster mass as the sampling
    # Group DRO's loss weights act on. 0 = off
    flatten_clusters: int = 0
    resample_from: int = 1  # first epoch (0-based) that resamples (dbvae, loss-resample); earlier epochs are uniform
    refresh_weights: bool = True  # recompute the weights every epoch (the paper); False keeps the first
    loss_tilt: bool = False  # dbvae: each epoch, multiply the latent weights by each face's current loss (then the guard)
    # dbvae with refresh_weights=False: compute the kept latent weights (with latent_dro, find its clusters) after at most
    # this many training images (mid-epoch when an epoch is longer), else at the start of epoch resample_from as usual;
    # 0 = always at resample_from. The encoder's useful early state is a number of optimisation steps, not epochs: on
    # 100,000 images, frozen after one epoch, the latent put 0.9% of the face mass on darker faces; read by an encoder
    # trained on 20,000 of them, 26%
    freeze_after: int = 0
    # dbvae with refresh_weights=False: stop training as soon as the kept latent weights are computed (at
    # `freeze_after` images, else at the start of epoch `resample_from`) and save them, for another run's
    # `weights_from`. The weights are the same as a full run's (same `epochs`, so the same learning rates up to that
    # point); the epochs after them only train a network the second run does not use
    weights_only: bool = False
    # dbvae: Group DRO over this many groups of the faces (latent_groups: clusters of the latent means, GEORGE-style,
    # or rarity strata) instead of the density weights; the groups are found once, at resample_from, and kept;
    # sampling gives every group equal mass; 0 = off
    latent_dro: int = 0
    # latent_dro's groups: clusters (GEORGE: a mixture's components on the latent means) | rarity (strata of equal
    # total mass under the DB-VAE's own density weights, rarest first: Group DRO over how rare the latent says a face is)
    latent_groups: str = "clusters"
    # group-dro and latent_dro: each epoch, sample every group with total mass ~ its current DRO weight instead of
    # equal mass. The objective is unchanged (each step weights a group's batch mean by its DRO weight whatever its
    # count in the batch); the heavily weighted groups get more faces per batch, so the step varies less
    dro_resample: bool = False
    face_ratio: float = 0.5  # share of faces in every batch for weighted methods
    # logit margin for upweighted faces (sampling.rarity_margins): in training, each face's logit is lowered by
    # margin * max(0, log(N p_i)), p this epoch's face sampling weights, so a face sampled k times more often than
    # uniform must be detected by margin * log k logits more. Reweighting fades once a net fits every face; a margin
    # keeps acting at convergence. 0 = off; 1 = the logit adjustment's Bayes-consistent choice (Menon et al. 2021)
    margin: float = 0.0
    # mix every training image with another of the same group in its batch, x <- l x + (1 - l) x', l = max(b, 1 - b)
    # with b ~ Beta(mixup, mixup); its label stays (the two share it). The group is the image's Group DRO group (a
    # latent cluster under `latent_dro`, a labelled group under group-dro), else its label; `latent_dro` starts to
    # mix once its clusters are found (the epoch after), never across clusters it has not found yet. A few
    # hundred repeated minority faces are all fitted at convergence and what is left is generalisation from too few
    # distinct ones (benchmarks/RESULTS.md); mixing two faces of a cluster makes a new image of that cluster each time
    # (within-group mixup, as LISA's intra-label mixing; Zhang et al. 2018, Yao et al. 2022). Unlike colour jitter it
    # moves no face towards another group's tone: both images come from the same group. 0 = off. On the benchmark it
    # did not help (RESULTS.md, session 31: 45% of the gap closed against 58% without; within the label alone it
    # blends nearly every rare face with a common one and lowers the worst group by ~16 points)
    mixup: float = 0.0
    # sharpness-aware minimisation (Foret et al. 2021): each step takes its gradient at the weights moved by this radius
    # along the batch's own gradient, w + rho g/|g|, then updates w from there (two forward and backward passes a step;
    # BatchNorm statistics are updated by the first only). Rangwani et al. (NeurIPS 2022) found that a reweighted
    # loss leaves the minority classes' loss at a saddle point and that SAM on the reweighted loss lifts their test
    # accuracy. For the DRO methods the second pass weights the groups with the first pass's DRO weights. 0 = off
    sam_rho: float = 0.0
    # a run folder (or its sampling_weights.csv) whose saved face sampling weights p this run draws its faces by,
    # matched by image: with method='standard', a plain classifier debiased by another model's weights, e.g. a
    # DB-VAE's (its latent's rare regions, no labels), without the DB-VAE's reconstruction loss on the detector's own
    # encoder. The weights are read once and kept. '' = off
    weights_from: str = ""
    # labelled references
    balance_by: tuple[str, ...] = ("skin_group",)  # groups for method=balanced and group-dro
    balance_power: float = 1.0  # balanced: p_i ~ n_g^-power; 1 equal group mass, 0.5 a tempered balance
    # group-dro and latent_dro: step size of the online group weights (Sagawa et al. use 0.01). On the benchmark at 24
    # epochs 0.03 moved more mass to the darker faces and closed less of the gap, for both (RESULTS.md, session 36)
    dro_eta: float = 0.01
    # group-dro and latent_dro: Sagawa et al.'s group adjustment C (their Sec. 3.3). The DRO weights follow each
    # group's loss plus C / sqrt(n_g), n_g its training count: at convergence every group's training loss is ~0 and
    # plain DRO weights stop favouring the small groups, whose test loss is the higher. They searched C in 0-5 on
    # labelled validation data; on the benchmark C = 2 made Group DRO give up the lighter faces (RESULTS.md). 0 = off
    dro_adjust: float = 0.0
    jtt_epochs: int = 2  # epochs of the first (identification) model for method=jtt, before the `epochs` of the final one
    jtt_lambda: float = 5.0  # upweighting factor for the first model's training errors
    max_train: int = 0  # use at most this many training images (0 = all); for quick runs

    def __post_init__(self) -> None:
        choices = {
            "method": ("standard", "dbvae", "vae-uniform", "balanced", "group-dro", "jtt", "loss-resample"),
            "arch": ("cnn", "resnet18"),
            "input_norm": ("none", "local"),
            "rec_norm": ("l1", "l2"),
            "rec_region": ("full", "center"),
            "rec_target": ("pixels", "standardised"),
            "density": ("histogram", "gmm"),
            "combine": ("product", "max", "tempered"),
            "device": ("auto", "cpu", "cuda"),
            "precision": ("fp32", "bf16", "fp16"),
            "latent_groups": ("clusters", "rarity"),
            "lr_schedule": ("constant", "cosine"),
            "keep": ("last", "best"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"`{name}`={getattr(self, name)!r} is not one of {', '.join(allowed)}.")
        _positive(self, "width", "latent_dim", "epochs", "bins", "jtt_epochs")
        _finite(self, "beta", "c_rec", "lr", "weight_decay", "alpha", "temperature", "balance_power", "dro_eta",
                "jtt_lambda", "margin", "mixup", "dro_adjust", "sam_rho")
        if self.batch_size < 2:
            raise ValueError(f"`batch_size`={self.batch_size} must be at least 2.")
        if not self.lr > 0 or not self.dro_eta > 0 or not self.jtt_lambda > 0:
            raise ValueError(f"`lr`={self.lr}, `dro_eta`={self.dro_eta} and `jtt_lambda`={self.jtt_lambda} must be > 0.")
        if self.weight_decay < 0:
            raise ValueError(f"`weight_decay`={self.weight_decay} must be >= 0 (0 = off).")
        if self.beta < 0 or self.c_rec < 0 or self.alpha < 0 or self.temperature < 0 or self.balance_power < 0:
            raise ValueError(f"`beta`={self.beta}, `c_rec`={self.c_rec}, `alpha`={self.alpha}, `temperature`={self.temperature} and "
                             f"`balance_power`={self.balance_power} must be >= 0.")
        if not 0 < self.min_ess <= 1:
            raise ValueError(f"`min_ess`={self.min_ess} must be in (0, 1].")
        _check_augment_ranges(self, "aug_")
        if not 0 < self.face_ratio <= 1:
            raise ValueError(f"`face_ratio`={self.face_ratio} must be in (0, 1].")
        if self.loss_tilt and self.method != "dbvae":
            raise ValueError(f"`loss_tilt` tilts the DB-VAE's latent weights; it needs `method`='dbvae', not "
                             f"{self.method!r} (`method`='loss-resample' weights a plain classifier by the loss).")
        if not 0 <= self.swa_from < self.epochs:
            raise ValueError(f"`swa_from`={self.swa_from} must be an epoch before the last (0 <= swa_from < `epochs`="
                             f"{self.epochs}; 0 = off).")
        if self.keep == "best" and self.swa_from:
            raise ValueError("`keep`='best' saves one epoch's weights and `swa_from` the average of several; use one "
                             "or the other.")
        if self.keep == "best" and self.latent_dro and self.latent_groups != "clusters":
            raise ValueError("`keep`='best' with `latent_dro` puts the validation faces in the latent clusters; it "
                             "needs `latent_groups`='clusters' (rarity strata have no rule for new faces).")
        if self.mixup < 0:
            raise ValueError(f"`mixup`={self.mixup} must be >= 0 (0 = off; 1 mixes with a uniform share in [0.5, 1]).")
        if self.margin < 0:
            raise ValueError(f"`margin`={self.margin} must be >= 0 (0 = off).")
        if self.sam_rho < 0:
            raise ValueError(f"`sam_rho`={self.sam_rho} must be >= 0 (0 = off; Foret et al. use 0.05).")
        if self.sam_rho and self.precision == "fp16":
            raise ValueError("`sam_rho` is not supported with `precision`='fp16' (its loss scaling would have to be "
                             "undone between the two passes); use 'bf16' or 'fp32'.")
        if self.margin and self.method in ("standard", "vae-uniform"):
            raise ValueError(f"`margin` follows the face sampling weights, which are uniform for `method`="
                             f"{self.method!r}; use it with dbvae, balanced, group-dro, jtt or loss-resample.")
        if self.smooth_k < 0:
            raise ValueError(f"`smooth_k`={self.smooth_k} must be >= 0.")
        if self.weights_from and self.method != "standard":
            raise ValueError(f"`weights_from` gives a plain classifier the face weights another run saved; use it with "
                             f"`method`='standard', not {self.method!r} (which chooses its own weights).")
        if self.max_weight and not self.max_weight >= 1:
            raise ValueError(f"`max_weight`={self.max_weight} must be 0 (off) or at least 1 (1 = uniform sampling).")
        if self.max_weight and self.method != "dbvae":
            raise ValueError(f"`max_weight` caps the DB-VAE's latent weights; it needs `method`='dbvae', not "
                             f"{self.method!r}.")
        if self.max_weight and self.latent_dro:
            raise ValueError("`max_weight` caps the DB-VAE's density weights, which `latent_dro` replaces by "
                             "groups of the latent; use one or the other.")
        if self.flatten_clusters < 0 or self.flatten_clusters == 1:
            raise ValueError(f"`flatten_clusters`={self.flatten_clusters} must be 0 (off) or at least 2 clusters.")
        if self.flatten_clusters and self.method != "dbvae":
            raise ValueError(f"`flatten_clusters` spreads the DB-VAE's latent weights; it needs `method`='dbvae', not "
                             f"{self.method!r}.")
        if self.flatten_clusters and self.max_weight:
            raise ValueError("`flatten_clusters` and `max_weight` both limit how often the DB-VAE repeats a face; use "
                             "one or the other.")
        if self.flatten_clusters and self.latent_dro and (
                self.flatten_clusters != self.latent_dro or self.latent_groups != "clusters" or self.dro_resample):
            raise ValueError(f"`flatten_clusters` with `latent_dro` sets the sampling over the clusters of `latent_dro`: "
                             f"give both the same number (got {self.flatten_clusters} and {self.latent_dro}), with "
                             f"`latent_groups`='clusters' and without `dro_resample` (which sets the mass itself).")
        if self.latent_dro < 0 or self.latent_dro == 1:
            raise ValueError(f"`latent_dro`={self.latent_dro} must be 0 (off) or at least 2 clusters.")
        if self.dro_adjust < 0:
            raise ValueError(f"`dro_adjust`={self.dro_adjust} must be >= 0 (0 = off).")
        if self.dro_adjust and not (self.method == "group-dro" or self.latent_dro):
            raise ValueError(f"`dro_adjust` adjusts Group DRO's weights: it needs `method`='group-dro' or `latent_dro`, "
                             f"not `method`={self.method!r} without `latent_dro`.")
        if self.dro_resample and not (self.method == "group-dro" or self.latent_dro):
            raise ValueError(f"`dro_resample` samples by Group DRO weights: it needs `method`='group-dro' or `latent_dro`, not "
                             f"`method`={self.method!r} without `latent_dro`.")
        # options that act on the DB-VAE's kept (frozen) latent, each excluding at most one other option (a negative
        # `freeze_after` is reported by its own check just below)
        for option, does, excluded in (
                ("latent_dro", "runs Group DRO over clusters of the DB-VAE's latent, found once and kept", "loss_tilt"),
                ("freeze_after", "sets when the DB-VAE's kept latent weights (or `latent_dro`'s clusters) are computed",
                 None),
                ("weights_only", "stops once the DB-VAE's kept latent weights are computed (`loss_tilt` would change "
                 "them every epoch)", "loss_tilt")):
            if getattr(self, option) > 0 and (self.method != "dbvae" or self.refresh_weights
                                              or (excluded and getattr(self, excluded))):
                raise ValueError(f"`{option}` {does}: it needs `method`='dbvae'"
                                 + (f" (not {self.method!r})" if self.method != "dbvae" else "")
                                 + (f", refresh_weights=False (--freeze-weights) and no `{excluded}`." if excluded
                                    else " and refresh_weights=False (--freeze-weights)."))
        if self.weights_only and self.resample_from >= self.epochs:
            raise ValueError(f"`weights_only` stops once the DB-VAE's kept latent weights are computed, at the latest at "
                             f"`resample_from`: it needs `resample_from` ({self.resample_from}) below `epochs` "
                             f"({self.epochs}).")
        if self.weights_only and (self.keep == "best" or self.swa_from):
            raise ValueError("`weights_only` saves sampling weights, not a network to use, and stops before the epochs "
                             "that `keep`='best' would choose among or `swa_from` would average; leave those out.")
        if self.freeze_after < 0:
            raise ValueError(f"`freeze_after`={self.freeze_after} must be >= 0 (0 = at `resample_from`).")
        if self.workers < 0 or self.max_train < 0 or self.resample_from < 0:
            raise ValueError(f"`workers`={self.workers}, `max_train`={self.max_train} and `resample_from`="
                             f"{self.resample_from} must be >= 0.")
        if not self.balance_by or any(not c for c in self.balance_by):
            raise ValueError(f"`balance_by`={self.balance_by!r} must name at least one manifest column.")

    def augmentation(self) -> AugmentConfig:
        """The ranges of the training augmentation (used when ``augment`` is on)."""
        return AugmentConfig(scale=self.aug_scale, translate=self.aug_translate, rotate=self.aug_rotate)


def _positive(cfg: Any, *names: str) -> None:
    for name in names:
        v = getattr(cfg, name)
        if not v >= 1:
            raise ValueError(f"`{name}`={v!r} must be at least 1.")


def _finite(cfg: Any, *names: str) -> None:
    for name in names:
        v = getattr(cfg, name)
        if not math.isfinite(v):
            raise ValueError(f"`{name}`={v!r} must be a finite number.")  # backticks: the CLI names the flag


@dataclass(frozen=True)
class AuditConfig:
    """Subgroup audit of one or more models (``debias audit``)."""

    by: tuple[str, ...] = ("skin_group", "pose", "gender")  # attribute columns to group faces by
    split: str = "test"  # manifest split to audit; "all" uses every row
    threshold: float | None = None  # fixed decision threshold on the score; None -> chosen by target_fpr
    target_fpr: float = 0.01  # when threshold is None: one threshold for all groups at this overall FPR
    reference: str = "largest"  # largest | best | a group name
    n_boot: int = 1000  # stratified bootstrap resamples
    min_n: int = 30  # cells with fewer faces are flagged "too few to judge"
    seed: int = 0  # bootstrap seed
    batch_size: int = 256  # inference batch
    device: str = "auto"
    size: int = 64  # input side for neural models
    pad: float = 0.5  # context border for sliding-window detectors, as a fraction of the image side
    thumbnails: bool = True  # gallery of worst-missed faces in the report
    shard: tuple[int, int] = (0, 1)  # (k, n): audit only the k-th of n shards (predictions only)
    scores: str = "auto"  # what torchscript/onnx/python models and prediction CSVs output: auto | prob | logit

    def __post_init__(self) -> None:
        from debias.errors import DebiasError

        try:
            self._check()
        except (ValueError, TypeError) as e:  # a user's value: one DebiasError, whatever the check tripped on
            raise DebiasError(str(e)) from None

    def _check(self) -> None:
        for name in ("threshold", "target_fpr", "pad", "n_boot", "min_n", "seed", "batch_size", "size"):
            v, integer = getattr(self, name), name not in ("threshold", "target_fpr", "pad")
            if (v is None and name == "threshold") or (
                    not isinstance(v, bool) and isinstance(v, numbers.Integral if integer else numbers.Real)):
                continue
            raise TypeError(f"`{name}`={v!r} must be {'an integer' if integer else 'a number'}.")
        if isinstance(self.by, str) or not all(isinstance(c, str) for c in self.by):
            raise TypeError(f"`by`={self.by!r} must be a list of attribute column names, e.g. ['skin_group'].")
        if not self.by or any(not c for c in self.by):
            raise ValueError(f"`by`={self.by!r} must name at least one attribute column, e.g. skin_group,gender.")
        if self.threshold is not None and not 0 <= self.threshold <= 1:
            raise ValueError(f"`threshold`={self.threshold} must be a probability in [0, 1] (scores are probabilities "
                             f"once logits are mapped through the sigmoid).")
        if not 0 < self.target_fpr < 1:
            raise ValueError(f"`target_fpr`={self.target_fpr} must be in (0, 1).")
        _positive(self, "n_boot", "min_n", "batch_size", "size")
        if not (math.isfinite(self.pad) and self.pad >= 0):
            raise ValueError(f"`pad`={self.pad} must be a finite number >= 0.")
        if self.scores not in ("auto", "prob", "logit"):
            raise ValueError(f"`scores`={self.scores!r} is not one of auto, prob, logit.")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"`device`={self.device!r} is not one of auto, cpu, cuda.")
        k, n = self.shard
        if not (n >= 1 and 0 <= k < n):
            raise ValueError(f"`shard` {k}/{n} is invalid; use K/N with 0 <= K < N.")


def to_json(cfg: Any, path: str | Path, **extra: Any) -> None:
    """Write a config (plus extra keys) as pretty JSON next to a run's outputs."""
    d = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else dict(cfg)
    d.update(extra)
    Path(path).write_text(json.dumps(d, indent=2, default=str) + "\n")


def read_recipe(path: str | Path, keys: tuple[str, ...]) -> dict:
    """Read an audit recipe (TOML, see ``audits/``): only ``keys`` are allowed.

    Paths (``data``, ``out``, ``predictions``) become :class:`~pathlib.Path`, ``model`` a list of
    specs, and ``by``, ``mean`` and ``std`` lists of strings (a TOML list or one comma-separated
    string). Raises :class:`~debias.errors.DebiasError` naming the file for an unreadable recipe,
    an unknown key, or a path or model that is not a string (the command checks the other values' types).
    """
    import tomllib

    from debias.errors import DebiasError

    try:
        r = tomllib.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise DebiasError(f"recipe {path} could not be read: {e}") from None
    unknown = sorted(set(r) - set(keys))
    if unknown:
        raise DebiasError(f"recipe {path} has unknown key(s) {', '.join(unknown)}; known keys: {', '.join(keys)}.")
    for k, v in r.items():
        if k in ("data", "out", "predictions"):
            if not isinstance(v, str):
                raise DebiasError(f"recipe {path}: key {k} = {v!r} must be a string (a path in quotes).")
            r[k] = Path(v)
        elif k == "model":
            if not (isinstance(v, str) or isinstance(v, list) and all(isinstance(x, str) for x in v)):
                raise DebiasError(f"recipe {path}: key model = {v!r} must be a string or a list of strings (model specs "
                                  f"such as \"run:DIR\").")
            r[k] = [v] if isinstance(v, str) else list(v)
        elif k in ("by", "mean", "std"):
            r[k] = [str(x).strip() for x in (v if isinstance(v, list) else str(v).split(",")) if str(x).strip()]
    return r


__all__ = ["SynthConfig", "TrainConfig", "AuditConfig", "to_json", "read_recipe"]
