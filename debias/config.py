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


# the DB-VAE recipes (``TrainConfig.recipe``); debias/train/recipes.py resolves what each sets
RECIPES = ("two-stage", "paper")
METHODS = ("standard", "dbvae", "vae-uniform", "balanced", "group-dro", "jtt", "loss-resample")


@dataclass(frozen=True)
class TrainConfig:
    """Training of a standard classifier or a DB-VAE (``debias train``).

    Options left at None are chosen by the method and, for ``dbvae``, by its ``recipe``
    (``debias.train.recipes.resolve``); the run's config.json records the values used.
    """

    method: str = "dbvae"  # standard | dbvae | vae-uniform | balanced | group-dro | jtt | loss-resample
    # dbvae only. two-stage: a DB-VAE finds the rare regions of its latent and saves sampling weights, then a plain
    # classifier with SAM trains drawing its faces by them (both in the run folder). paper: Amini et al.'s DB-VAE,
    # one network, weights recomputed every epoch
    recipe: str = "two-stage"
    arch: str = "cnn"  # cnn (the DB-VAE lab CNN) | resnet18 (torchvision, untrained)
    width: int = 12  # n in the lab CNN's conv widths n, 2n, 4n, 6n
    latent_dim: int = 100  # k, the DB-VAE latent size
    beta: float = 5e-4  # weight of the KL term (beta-VAE); the lab's kl_weight, since rec is a pixel mean
    c_rec: float = 1.0  # weight of the reconstruction term
    rec_norm: str = "l1"  # l1 | l2 per-pixel reconstruction loss (mean over pixels)
    # full image | center: reconstruct only the central half, where a face crop has its face. None: the recipe's
    rec_region: str | None = None
    epochs: int = 6  # passes over the training split (sampled batches count as one epoch's worth)
    batch_size: int = 64  # images per optimisation step
    lr: float = 5e-4  # Adam learning rate
    # average the weights at the end of every epoch from this one (0-based; of the final model for jtt) to the last and
    # save the average, its BatchNorm statistics recomputed over the last epoch's batches: stochastic weight averaging
    # (Izmailov et al. 2018, torch.optim.swa_utils), a flatter solution than the last noisy step's; 0 = off
    swa_from: int = 0
    seed: int = 0  # model init, sampling and augmentation all derive from this
    device: str = "auto"  # auto (cuda if available) | cpu | cuda
    workers: int = 0  # threads that prefetch batches from the packed array; 0 loads in the training loop
    compile: bool = True  # torch.compile the step when the run is long enough to pay for it; eager fallback
    precision: str = "fp32"  # fp32 | bf16 (autocast; CPUs with avx512_bf16/AMX, and CUDA) | fp16 (CUDA AMP, grad scaling)
    channels_last: bool = False  # NHWC memory layout for model and batches (pays together with bf16 on oneDNN)
    augment: bool = True  # random flip + scale/shift jitter per image (debias/data/augment.py); never colour
    aug_scale: float = 0.1  # zoom drawn from [1 - aug_scale, 1 + aug_scale] per image
    aug_translate: float = 0.1  # shift drawn from +-aug_translate of the image side, per axis
    aug_rotate: float = 0.0  # rotation drawn from +-aug_rotate degrees (0: none)
    # resampling (debias/sampling.py)
    bins: int = 10  # histogram bins per latent dimension
    alpha: float = 0.01  # histogram smoothing; large alpha -> uniform sampling
    combine: str = "product"  # product (the paper's) | max (the lab's) | tempered
    temperature: float = 0.0  # tempered exponent; 0 means 1/k, the geometric mean over dimensions
    # floor on effective sample size, as a fraction of training faces (dbvae, loss-resample). None: the recipe's
    min_ess: float | None = None
    # average each face's log-weight over its k nearest latent neighbours; 0 = off (the paper). None: the recipe's
    smooth_k: int | None = None
    resample_from: int = 1  # first epoch (0-based) that resamples (dbvae, loss-resample); earlier epochs are uniform
    # recompute the weights every epoch (the paper) or keep the first ones (dbvae, loss-resample). None: the recipe's
    refresh_weights: bool | None = None
    # dbvae with kept weights: compute them after this many training images (mid-epoch when an epoch is longer); 0 =
    # at the start of epoch resample_from. The encoder's useful early state is a number of optimisation steps, not
    # epochs. None: the recipe's (two-stage: 20,000 images, whatever the size of the set)
    freeze_after: int | None = None
    # dbvae with refresh_weights=False: stop as soon as the kept latent weights are computed and save them, for
    # another run's `weights_from` (the first stage of the two-stage recipe)
    weights_only: bool = False
    face_ratio: float = 0.5  # share of faces in every batch for weighted methods
    # sharpness-aware minimisation (Foret et al. 2021): each step takes its gradient at the weights moved by this radius
    # along the batch's own gradient, w + rho g/|g|, then updates w from there (two forward and backward passes a step;
    # BatchNorm statistics are updated by the first only). 0 = off. None: the recipe's (0 for the other methods)
    sam_rho: float | None = None
    # a run folder (or its sampling_weights.csv) whose saved face sampling weights p this run draws its faces by,
    # matched by image: with method='standard', a plain classifier debiased by another model's weights, e.g. a
    # DB-VAE's (its latent's rare regions, no labels). The weights are read once and kept. '' = off
    weights_from: str = ""
    # labelled references
    balance_by: tuple[str, ...] = ("skin_group",)  # groups for method=balanced and group-dro
    balance_power: float = 1.0  # balanced: p_i ~ n_g^-power; 1 equal group mass, 0.5 a tempered balance
    dro_eta: float = 0.01  # group-dro: step size of the online group weights (Sagawa et al. use 0.01)
    jtt_epochs: int = 2  # epochs of the first (identification) model for method=jtt, before the `epochs` of the final one
    jtt_lambda: float = 5.0  # upweighting factor for the first model's training errors
    max_train: int = 0  # use at most this many training images (0 = all); for quick runs
    # a dataset folder of generated faces (``debias generate``) whose faces replace a share `extra_share` of the faces
    # of every batch, drawn uniformly from it; with method='standard' or the two-stage recipe's classifier. '' = off
    extra: str = ""
    extra_share: float = 0.0  # share of each batch's faces taken from `extra` (on average: rounded at random per batch), in [0, 1)

    def __post_init__(self) -> None:
        if isinstance(self.balance_by, str):  # balance_by="pose" names one column, not four letters
            object.__setattr__(self, "balance_by", tuple(c.strip() for c in self.balance_by.split(",")))
        self._check_choices()
        self._check_numbers()
        self._check_combinations()

    def _check_choices(self) -> None:
        choices = {"method": METHODS, "recipe": RECIPES, "arch": ("cnn", "resnet18"), "rec_norm": ("l1", "l2"),
                   "rec_region": ("full", "center", None), "combine": ("product", "max", "tempered"),
                   "device": ("auto", "cpu", "cuda"), "precision": ("fp32", "bf16", "fp16")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                shown = ", ".join(a for a in allowed if a is not None)
                raise ValueError(f"`{name}`={getattr(self, name)!r} is not one of {shown}.")

    def _check_numbers(self) -> None:
        _positive(self, "width", "latent_dim", "epochs", "bins", "jtt_epochs")
        _finite(self, "beta", "c_rec", "lr", "alpha", "temperature", "balance_power", "dro_eta", "jtt_lambda",
                *(name for name in ("sam_rho", "min_ess") if getattr(self, name) is not None))
        if self.batch_size < 2:
            raise ValueError(f"`batch_size`={self.batch_size} must be at least 2.")
        if not self.lr > 0 or not self.dro_eta > 0 or not self.jtt_lambda > 0:
            raise ValueError(f"`lr`={self.lr}, `dro_eta`={self.dro_eta} and `jtt_lambda`={self.jtt_lambda} must be > 0.")
        if self.beta < 0 or self.c_rec < 0 or self.alpha < 0 or self.temperature < 0 or self.balance_power < 0:
            raise ValueError(f"`beta`={self.beta}, `c_rec`={self.c_rec}, `alpha`={self.alpha}, `temperature`={self.temperature} and "
                             f"`balance_power`={self.balance_power} must be >= 0.")
        if self.min_ess is not None and not 0 < self.min_ess <= 1:
            raise ValueError(f"`min_ess`={self.min_ess} must be in (0, 1].")
        _check_augment_ranges(self, "aug_")
        if not 0 < self.face_ratio <= 1:
            raise ValueError(f"`face_ratio`={self.face_ratio} must be in (0, 1].")
        if not 0 <= self.swa_from < self.epochs:
            raise ValueError(f"`swa_from`={self.swa_from} must be an epoch before the last (0 <= swa_from < `epochs`="
                             f"{self.epochs}; 0 = off).")
        if self.sam_rho is not None and self.sam_rho < 0:
            raise ValueError(f"`sam_rho`={self.sam_rho} must be >= 0 (0 = off; Foret et al. use 0.05).")
        if self.smooth_k is not None and self.smooth_k < 0:
            raise ValueError(f"`smooth_k`={self.smooth_k} must be >= 0.")
        if self.freeze_after is not None and self.freeze_after < 0:
            raise ValueError(f"`freeze_after`={self.freeze_after} must be >= 0 (0 = at `resample_from`).")
        if self.workers < 0 or self.max_train < 0 or self.resample_from < 0:
            raise ValueError(f"`workers`={self.workers}, `max_train`={self.max_train} and `resample_from`="
                             f"{self.resample_from} must be >= 0.")
        if not self.balance_by or any(not c for c in self.balance_by):
            raise ValueError(f"`balance_by`={self.balance_by!r} must name at least one manifest column.")

    def _check_combinations(self) -> None:
        self._check_extra()
        if self.sam_rho and self.precision == "fp16":
            raise ValueError("`sam_rho` is not supported with `precision`='fp16' (its loss scaling would have to be "
                             "undone between the two passes); use 'bf16' or 'fp32'.")
        if self.weights_from and self.method != "standard":
            raise ValueError(f"`weights_from` gives a plain classifier the face weights another run saved; use it with "
                             f"`method`='standard', not {self.method!r} (which chooses its own weights).")
        if self.method == "dbvae" and self.recipe == "two-stage" and self.refresh_weights:
            raise ValueError("the two-stage recipe keeps the latent weights it computes once; leave out "
                             "`refresh_weights` (--refresh-weights), or use `recipe`='paper'.")
        kept = self.method == "dbvae" and (self.refresh_weights is False or (
            self.refresh_weights is None and self.recipe == "two-stage"))
        for option, does in (("freeze_after", "sets when the DB-VAE's kept latent weights are computed"),
                             ("weights_only", "stops once the DB-VAE's kept latent weights are computed")):
            if getattr(self, option) and not kept:
                raise ValueError(f"`{option}` {does}: it needs `method`='dbvae' and refresh_weights=False "
                                 f"(--freeze-weights).")
        if self.weights_only and self.resample_from >= self.epochs:
            raise ValueError(f"`weights_only` stops once the DB-VAE's kept latent weights are computed, at the latest at "
                             f"`resample_from`: it needs `resample_from` ({self.resample_from}) below `epochs` "
                             f"({self.epochs}).")
        if self.weights_only and self.swa_from:
            raise ValueError("`weights_only` saves sampling weights, not a network to use, and stops before the epochs "
                             "that `swa_from` would average; leave it out.")

    def _check_extra(self) -> None:
        if not (math.isfinite(self.extra_share) and 0 <= self.extra_share < 1):
            raise ValueError(f"`extra_share`={self.extra_share} must be in [0, 1): the share of each batch's faces "
                             f"taken from `extra`.")
        if bool(self.extra) != (self.extra_share > 0):
            raise ValueError("`extra` (a folder of generated faces) and `extra_share` (the share of each batch's faces "
                             "taken from it, > 0) go together: give both or neither.")
        two_stage = self.method == "dbvae" and self.recipe == "two-stage"
        if self.extra and self.method != "standard" and not two_stage:
            raise ValueError(f"`extra` adds generated faces to a plain classifier's batches: use it with "
                             f"`method`='standard' or the default two-stage recipe (`method`='dbvae', whose second "
                             f"stage is that classifier), not `method`={self.method!r}"
                             + (f" with `recipe`={self.recipe!r}." if self.method == "dbvae" else "."))

    def augmentation(self) -> AugmentConfig:
        """The ranges of the training augmentation (used when ``augment`` is on)."""
        return AugmentConfig(scale=self.aug_scale, translate=self.aug_translate, rotate=self.aug_rotate)


GENERATORS = ("dcgan", "decoder")


@dataclass(frozen=True)
class GenerateConfig:
    """New training faces from a generative model (``debias generate``): a DCGAN trained on the training faces, or
    a DB-VAE's decoder sampled around them, drawn more often where the DB-VAE's latent finds faces rare."""

    generator: str = "dcgan"  # dcgan (Radford et al. 2016, trained here) | decoder (the DB-VAE's own; blurry)
    # a DB-VAE run folder (a two-stage run's latent/ is found): its encoder weighs generated faces by how rare their
    # latent region is among the training faces, and embeds faces for the quality measures. '' = none (dcgan only)
    latent_run: str = ""
    n: int = 2_000  # generated faces to write
    epochs: int = 25  # DCGAN training epochs over the training faces
    batch_size: int = 64  # DCGAN batch
    width: int = 32  # DCGAN base width: channels of its 32 x 32 layers (the others have 2, 4 and 8 times as many)
    nz: int = 100  # DCGAN noise size
    lr: float = 2e-4  # Adam learning rate of both DCGAN networks (betas 0.5, 0.999, as in the paper)
    pool: int = 4  # dcgan with a latent run: draw the n faces from pool * n generated ones, weighted by rarity
    # floor on the effective sample size of the rarity weights over the pool, as a fraction of it: a product of
    # inverse densities over many latent dimensions would otherwise put the mass on a handful of faces
    min_ess: float = 0.3
    max_train: int = 0  # train on at most this many training faces (0 = all)
    k: int = 5  # nearest neighbours of the precision / recall / density / coverage measures (Naeem et al. use 5)
    n_quality: int = 2_000  # at most this many real and this many generated faces enter the quality measures
    seed: int = 0  # DCGAN init and noise, the drawing from the pool, the decoder's draws and the quality subsets
    device: str = "auto"  # auto (cuda if available) | cpu | cuda

    def __post_init__(self) -> None:
        if self.generator not in GENERATORS:
            raise ValueError(f"`generator`={self.generator!r} is not one of {', '.join(GENERATORS)}.")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"`device`={self.device!r} is not one of auto, cpu, cuda.")
        if self.generator == "decoder" and not self.latent_run:
            raise ValueError("`generator`='decoder' decodes from a DB-VAE's latent: give the DB-VAE run folder as "
                             "`latent_run` (a default `debias train` run folder holds one in latent/).")
        _positive(self, "n", "epochs", "width", "nz", "pool", "k")
        if self.n <= self.k:
            raise ValueError(f"`n`={self.n}: the quality measures compare each face with its {self.k} nearest "
                             f"neighbours; generate at least {self.k + 1} faces.")
        if self.batch_size < 2:
            raise ValueError(f"`batch_size`={self.batch_size} must be at least 2 (BatchNorm needs two images).")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"`lr`={self.lr} must be a number > 0.")
        if not 0 < self.min_ess <= 1:
            raise ValueError(f"`min_ess`={self.min_ess} must be in (0, 1].")
        if self.max_train < 0:
            raise ValueError(f"`max_train`={self.max_train} must be >= 0 (0 = all).")
        if self.n_quality < 2 * self.k + 2:
            raise ValueError(f"`n_quality`={self.n_quality} must be at least 2 * `k` + 2 = {2 * self.k + 2}.")


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
        twice = [c for c in dict.fromkeys(self.by) if list(self.by).count(c) > 1]
        if twice:
            raise ValueError(f"`by` names {', '.join(twice)} more than once; name each attribute column once.")
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


__all__ = ["SynthConfig", "TrainConfig", "GenerateConfig", "GENERATORS", "RECIPES", "METHODS", "AuditConfig", "to_json", "read_recipe"]
