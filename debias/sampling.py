"""Latent-histogram resampling (DB-VAE), the effective-sample-size guard, and reference samplers.

The DB-VAE resamples training faces toward under-represented regions of its latent space: for each
latent dimension i it histograms the faces' means mu_i, smooths the density Q_i with alpha and
inverts it. The paper combines dimensions as a product, W(x) ~ prod_i 1 / (Q_i(z_i) + alpha); the
MIT lab takes the per-dimension maximum. A product over many dimensions is extremely peaked: with 32
dimensions and alpha = 0.01 it can put almost all sampling mass on a handful of faces, and the
classifier then collapses. Every weight vector therefore passes through :func:`ess_guard`, which
tempers the log-weights (w -> w^T, T in (0, 1]) until the effective sample size
ESS = (sum w)^2 / sum w^2 is at least ``min_ess`` times the number of faces. Tempering keeps the
ordering of the faces.

A histogram estimate of a rare region's density is noisy: a handful of faces at the extremes of
several dimensions get most of the mass while their equally rare neighbours get little, and the
classifier memorises the few it sees over and over. ``smooth_k`` replaces each face's log-weight by
the mean over its k nearest neighbours in the latent space (itself included), which spreads the mass
over the rare region rather than its outliers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

COMBINES = ("product", "max", "tempered")


@dataclass(frozen=True)
class Weights:
    """Sampling probabilities over training faces and how they were made."""

    p: np.ndarray  # (N,) probabilities summing to 1
    ess: float  # effective sample size as a fraction of N, after the guard
    ess_raw: float  # ... before the guard
    temper: float  # exponent the guard applied (1.0 = untouched)

    @property
    def guarded(self) -> bool:
        return self.temper < 1.0


def ess_fraction(w: np.ndarray) -> float:
    """Effective sample size (sum w)^2 / sum w^2, divided by len(w). 1 for uniform weights."""
    w = np.asarray(w, dtype=np.float64)
    return float(w.sum() ** 2 / (np.square(w).sum() * len(w)))


def _from_log(logw: np.ndarray) -> np.ndarray:
    w = np.exp(logw - logw.max())
    return w / w.sum()


def ess_guard(logw: np.ndarray, min_ess: float, *, tol: float = 1e-3) -> tuple[np.ndarray, float]:
    """Temper log-weights until ESS >= ``min_ess``. Returns (probabilities, exponent T).

    ESS of w^T falls monotonically as T grows from 0 (uniform, ESS = 1), so bisection finds the
    largest T in (0, 1] that meets the floor.
    """
    if not 0 < min_ess <= 1:
        raise ValueError(f"min_ess={min_ess} must be in (0, 1].")
    p = _from_log(logw)
    if ess_fraction(p) >= min_ess:
        return p, 1.0
    lo, hi = 0.0, 1.0
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if ess_fraction(_from_log(mid * logw)) >= min_ess:
            lo = mid
        else:
            hi = mid
    return _from_log(lo * logw), lo


def smooth_log_weights(logw: np.ndarray, mu: np.ndarray, k: int) -> np.ndarray:
    """Each face's log-weight averaged over its ``k`` nearest latent neighbours (itself included).

    Parameters
    ----------
    logw : (N,) log-weights.
    mu : (N, d) latent means the neighbours are found in (Euclidean).
    k : neighbours; 1 (or 0) leaves ``logw`` unchanged.
    """
    from sklearn.neighbors import NearestNeighbors

    k = min(int(k), len(mu))
    if k <= 1:
        return logw
    nb = NearestNeighbors(n_neighbors=k).fit(mu).kneighbors(mu, return_distance=False)  # (N, k)
    return logw[nb].mean(1)


def density_log_weights(mu: np.ndarray, query: np.ndarray | None = None, *, bins: int = 10, alpha: float = 0.01,
                        combine: str = "product", temperature: float = 0.0) -> np.ndarray:
    """Log-weights, rarer is higher, of the points ``query`` under the per-dimension histograms of ``mu``.

    Parameters
    ----------
    mu : (N, k) latent means the histograms are built from (the training faces).
    query : (M, k) points to weigh; None weighs ``mu`` itself. A point outside a dimension's histogram range
        falls in its nearest end bin.
    bins, alpha, combine, temperature : as :func:`latent_weights`.

    Returns
    -------
    (M,) log-weights (unnormalised).
    """
    mu = np.asarray(mu, dtype=np.float64)
    query = mu if query is None else np.asarray(query, dtype=np.float64)
    if combine not in COMBINES:
        raise ValueError(f"combine={combine!r} is not one of {', '.join(COMBINES)}.")
    n, k = mu.shape
    if query.ndim != 2 or query.shape[1] != k:
        raise ValueError(f"query must be (M, {k}), got shape {query.shape}.")
    inv, ref_sum = np.empty((len(query), k)), np.empty(k)
    for j in range(k):
        counts, edges = np.histogram(mu[:, j], bins=bins)
        q = counts / n  # bin probability mass
        idx = np.clip(np.searchsorted(edges, query[:, j], side="right") - 1, 0, bins - 1)
        inv[:, j] = 1.0 / (q[idx] + alpha)
        ref_sum[j] = (counts / (q + alpha)).sum()  # the sum of inv over the points of mu
    if combine == "max":  # each dimension's inverse densities normalised over mu, as the lab does
        return np.log((inv / ref_sum).max(1))
    logw = np.log(inv).sum(1)
    if combine == "tempered":
        logw = logw * (temperature if temperature > 0 else 1.0 / k)
    return logw


def latent_weights(mu: np.ndarray, *, bins: int = 10, alpha: float = 0.01, combine: str = "product",
                   temperature: float = 0.0, min_ess: float = 0.3, smooth_k: int = 0) -> Weights:
    """Debiasing sampling probabilities from the latent means of the training faces.

    Parameters
    ----------
    mu : (N, k) latent means of the N training faces.
    bins : histogram bins per latent dimension.
    alpha : smoothing added to each dimension's bin probability Q_i (bin mass, in [0, 1]) before
        inverting; alpha -> infinity gives uniform sampling.
    combine : ``product`` (the paper's prod_i 1/(Q_i + alpha), in log space), ``max`` (the lab's
        per-dimension maximum of the normalised inverse densities) or ``tempered`` (the product
        raised to ``temperature``; 0 means 1/k, the geometric mean over dimensions).
    min_ess : floor on ESS as a fraction of N; weights are tempered until it holds.
    smooth_k : average each face's log-weight over its k nearest latent neighbours before the guard
        (:func:`smooth_log_weights`); 0 is the paper's unsmoothed estimate.

    Returns
    -------
    Weights with ``p`` of shape (N,).
    """
    mu = np.asarray(mu, dtype=np.float64)
    if smooth_k < 0:
        raise ValueError(f"smooth_k={smooth_k} must be >= 0.")
    if mu.ndim != 2 or len(mu) == 0:
        raise ValueError(f"mu must be (N, k) with N > 0, got shape {mu.shape}.")
    if combine not in COMBINES:
        raise ValueError(f"combine={combine!r} is not one of {', '.join(COMBINES)}.")
    logw = density_log_weights(mu, bins=bins, alpha=alpha, combine=combine, temperature=temperature)
    logw = smooth_log_weights(logw, mu, smooth_k)
    raw = ess_fraction(_from_log(logw))
    p, t = ess_guard(logw, min_ess)
    return Weights(p=p, ess=ess_fraction(p), ess_raw=raw, temper=t)


def group_keys(frame: pd.DataFrame, by: Sequence[str]) -> pd.Series:
    """One string key per row: the combination of the ``by`` columns (e.g. ``darker|profile``)."""
    missing = [c for c in by if c not in frame.columns]
    if missing:
        raise KeyError(f"balance-by column(s) {missing} not in the manifest "
                       f"(columns: {', '.join(frame.columns)}).")
    return frame[list(by)].astype(str).agg("|".join, axis=1)


def group_balanced_weights(frame: pd.DataFrame, by: Sequence[str], power: float = 1.0) -> np.ndarray:
    """Labelled reference: row i of group g gets p_i ~ n_g^-power. Returns (N,) p.

    ``power`` 1 gives every group (combination of ``by`` columns) equal total mass; 0.5 gives group
    g a total mass ~ sqrt(n_g), a tempered balance that repeats the rarest faces less; 0 is uniform.
    """
    keys = group_keys(frame, by)
    w = keys.map(keys.value_counts()).to_numpy(dtype=np.float64) ** -float(power)
    return w / w.sum()


class GroupDRO:
    """Online group weights on the loss (Sagawa, Koh, Hashimoto & Liang, ICLR 2020, Algorithm 1).

    Each step, for the groups present in the batch: q_g <- q_g * exp(eta * L_g), q <- q / sum(q), where L_g is
    the batch's mean loss over group g; the step then minimises sum_g q_g L_g. A group that keeps a high loss
    gains weight until the model serves it.
    """

    def __init__(self, n_groups: int, eta: float = 0.01) -> None:
        if n_groups < 1 or not eta > 0:
            raise ValueError(f"GroupDRO needs n_groups >= 1 and eta > 0, got {n_groups} and {eta}.")
        self.eta = float(eta)
        self.q = np.full(n_groups, 1.0 / n_groups)  # (G,) group weights, sum 1

    def sample_weights(self, loss: np.ndarray, groups: np.ndarray) -> np.ndarray:
        """Update q with one batch and return per-sample weights w (B,), sum_i w_i loss_i = sum_g q_g L_g.

        Parameters
        ----------
        loss : (B,) per-sample losses (no gradient needed).
        groups : (B,) int group index of each sample, in [0, n_groups).
        """
        loss, groups = np.asarray(loss, dtype=np.float64), np.asarray(groups)
        counts = np.bincount(groups, minlength=len(self.q)).astype(np.float64)  # (G,)
        present = counts > 0
        group_loss = np.bincount(groups, weights=loss, minlength=len(self.q)) / np.maximum(counts, 1)  # (G,)
        self.q = self.q * np.exp(self.eta * group_loss * present)
        self.q /= self.q.sum()
        return self.q[groups] / counts[groups]


def jtt_weights(errors: np.ndarray, lam: float) -> np.ndarray:
    """Just Train Twice: the identification model's training errors get weight lam, others 1."""
    w = np.where(np.asarray(errors, dtype=bool), float(lam), 1.0)
    return w / w.sum()


def loss_weights(loss: np.ndarray, min_ess: float = 0.3) -> Weights:
    """Unlabelled resampling toward the faces the current model gets wrong: p_i ~ loss_i, ESS-guarded.

    The loss is each face's own (its label is 'face', never a group). Faces of a group the model
    serves badly have high loss whatever the representation encodes, so this needs no latent that
    separates the group (a DB-VAE latent need not separate pose). In the spirit of
    learning without demographics by upweighting high-loss examples (Hashimoto et al., ICML 2018);
    refreshed every epoch, so faces the model has learned give their mass back.

    Parameters
    ----------
    loss : (N,) non-negative per-face losses (e.g. -log p(face)).
    min_ess : floor on ESS as a fraction of N; weights are tempered (loss^T) until it holds.

    Returns
    -------
    Weights with ``p`` of shape (N,).
    """
    loss = np.asarray(loss, dtype=np.float64)
    if loss.ndim != 1 or len(loss) == 0 or not np.isfinite(loss).all() or (loss < 0).any():
        raise ValueError(f"loss must be (N,) finite and >= 0, got shape {loss.shape}.")
    logw = np.log(loss + 1e-12)  # a face with loss 0 keeps a vanishing, not an undefined, weight
    raw = ess_fraction(_from_log(logw))
    p, t = ess_guard(logw, min_ess)
    return Weights(p=p, ess=ess_fraction(p), ess_raw=raw, temper=t)


def mass_by_group(p: np.ndarray, frame: pd.DataFrame, columns: Sequence[str]) -> dict[str, float]:
    """Share of sampling mass on each subgroup, e.g. {'skin_group=darker': 0.21, ...}.

    For diagnostics only: sampling never looks at these columns.
    """
    out: dict[str, float] = {}
    for c in columns:
        if c in frame.columns:
            s = pd.Series(p, index=frame.index).groupby(frame[c].astype(str).to_numpy()).sum()
            out.update({f"{c}={g}": float(v) for g, v in s.items()})
    return out


class BatchPlan:
    """Batches of training-set positions with a fixed face share, faces drawn by ``p_face``.

    Every batch of ``batch_size`` has round(batch_size * face_ratio) faces, drawn with replacement
    from ``p_face``, and non-faces drawn uniformly. The draw is a function of (seed, epoch) only, so
    DDP ranks that share the seed draw the same global batch and each keeps its own slice.
    """

    def __init__(self, face_pos: np.ndarray, p_face: np.ndarray, nonface_pos: np.ndarray, *, batch_size: int,
                 face_ratio: float, n_batches: int, seed: int, epoch: int, p_nonface: np.ndarray | None = None):
        self.face_pos, self.p_face = face_pos, p_face
        self.nonface_pos, self.p_nonface = nonface_pos, p_nonface
        self.batch_size, self.n_batches = batch_size, n_batches
        self.n_face = int(round(batch_size * face_ratio)) if len(nonface_pos) else batch_size
        self.rng = np.random.default_rng([seed, epoch, 7])

    def __len__(self) -> int:
        return self.n_batches

    def __iter__(self):
        n_non = self.batch_size - self.n_face
        for _ in range(self.n_batches):
            f = self.face_pos[self.rng.choice(len(self.face_pos), self.n_face, p=self.p_face)]
            if n_non:
                nf = self.nonface_pos[self.rng.choice(len(self.nonface_pos), n_non, p=self.p_nonface)]
                f = np.concatenate([f, nf])
            yield self.rng.permutation(f)


class MixedBatches:
    """``batches`` of training positions with a share of each batch's faces replaced by extra (generated) faces.

    In every batch, share * its faces of its face positions (rounded up or down at random, in proportion, so that the
    share holds on average even where it is under one face a batch), chosen at random, are replaced by positions
    ``n_real`` .. ``n_real + n_extra - 1`` of extra faces drawn uniformly (without repeats within a batch while there
    are enough). Non-faces and the batch size stay as they were. The draw is a function of (seed, epoch) only.
    """

    def __init__(self, batches, is_face: np.ndarray, *, n_real: int, n_extra: int, share: float, seed: int,
                 epoch: int) -> None:
        if not 0 <= share < 1 or n_extra < 1:
            raise ValueError(f"share={share} must be in [0, 1) and n_extra={n_extra} at least 1.")
        self.batches, self.is_face = batches, np.asarray(is_face, dtype=bool)
        self.n_real, self.n_extra, self.share = n_real, n_extra, share
        self.seed, self.epoch = seed, epoch

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch, 13])  # afresh: two passes give the same batches
        for pos in self.batches:
            faces = np.flatnonzero(self.is_face[pos])
            want = self.share * len(faces)
            k = int(want) + int(rng.random() < want - int(want))
            if k:
                pos = np.array(pos, copy=True)
                which = rng.choice(faces, k, replace=False)
                pos[which] = self.n_real + rng.choice(self.n_extra, k, replace=k > self.n_extra)
            yield pos
