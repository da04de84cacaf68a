"""Slice discovery without group labels: where a model misses faces, and how rare those faces were in training.

Every audited face is placed in the latent space of a generative model of the *training* faces (a DB-VAE's
encoder means, standardised and reduced to their leading principal components, whitened). There:

- **rarity** is the face's k-nearest-neighbour density under the training faces, read as the share of
  training faces that lie in denser neighbourhoods (0: as typical as the most typical training face, 1: rarer
  than every training face). The k-NN density estimate is p(x) ~ k / (n V r_k(x)^d), so ranking by the
  distance r_k to the k-th nearest training face ranks by density.
- **slices** are the components of a diagonal Gaussian mixture fitted to the latent coordinates plus the miss
  indicator (times ``miss_weight``) of a random half of the faces: error-aware, as in Domino (Eyuboglu et al.,
  ICLR 2022), so the components gather faces that look alike *and* share an outcome. Every face then joins the
  component its latent coordinates alone make likeliest, so a slice is a region of the latent space, never a pick
  of misses. Slices are numbered worst first by their detection rate on the half the mixture was fitted on, and
  each slice's rate and interval are measured on the other, held-out half (as Domino fits on one split and
  evaluates on another): a rate chosen for being low is never the rate reported.

Nothing here reads images or trains anything: the caller gives the latents (:mod:`debias.discovery` computes
them); this module returns tidy tables.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from debias.audit.stats import wilson_interval
from debias.errors import DebiasError

# label columns that describe a slice's make-up when the manifest has them, in this order
DESCRIBE = ("skin_group", "pose", "gender", "glasses")
MIN_FACES = 4  # a model's audited faces that discovery needs: half find the slices, half measure them
MIN_LIFT = 1.25  # a level is named in a slice's description when its share there is at least this times overall


@dataclass(frozen=True)
class DiscoverConfig:
    """Slice discovery (``debias audit --discover K``)."""

    k: int = 8  # slices the audited faces are cut into, per model
    n_dims: int = 16  # leading principal components of the latent kept for slicing and rarity
    n_neighbors: int = 10  # the k of the k-nearest-neighbour density behind the rarity score
    miss_weight: float = 2.0  # weight of the miss indicator beside the whitened latent coordinates (0: not error-aware)
    seed: int = 0  # mixture initialisation
    min_n: int = 30  # slices with fewer faces are never named the worst (the audit's "too few to judge")

    def __post_init__(self) -> None:
        if not (isinstance(self.k, int) and 2 <= self.k <= 50):
            raise DebiasError(f"`discover`={self.k!r}: give a number of slices from 2 to 50 (8 is a good start).")
        if self.n_dims < 1 or self.n_neighbors < 1 or not self.miss_weight >= 0:
            raise DebiasError(f"`n_dims`={self.n_dims}, `n_neighbors`={self.n_neighbors} must be >= 1 and "
                              f"`miss_weight`={self.miss_weight} >= 0.")


@dataclass
class Discovery:
    """What discovery found, as tables (one model per ``model`` value)."""

    # model, slice (1 = worst), n, fit_rate, n_held_out, detected, detection_rate, ci_low, ci_high (on the held-out
    # faces), rarity, description, share columns
    slices: pd.DataFrame
    rarity: pd.DataFrame  # model, decile (10 = rarest), n, detection_rate, ci_low, ci_high, rarity_low, rarity_high
    faces: pd.DataFrame  # row, model, slice, rarity, held_out: one per audited face
    auc: dict = field(default_factory=dict)  # model -> AUC of rarity against a miss (0.5: rarity says nothing)
    source: str = ""  # which latent the faces were placed in
    config: DiscoverConfig = field(default_factory=DiscoverConfig)  # what was asked (k, min_n, ...)


def knn_radius(reference: np.ndarray, query: np.ndarray, k: int, *, exclude_self: bool = False) -> np.ndarray:
    """Distance from each query point to its k-th nearest reference point, shape (len(query),)."""
    from sklearn.neighbors import NearestNeighbors

    k = min(k, len(reference) - int(exclude_self))
    nn = NearestNeighbors(n_neighbors=k + int(exclude_self)).fit(reference)
    return nn.kneighbors(query)[0][:, -1]


def knn_rarity(train: np.ndarray, query: np.ndarray, k: int = 10) -> np.ndarray:
    """Share of training points whose own k-NN radius (themselves left out) is smaller than the query's.

    Parameters
    ----------
    train : (n, d) latent coordinates of the training faces.
    query : (m, d) coordinates of the faces to score.

    Returns
    -------
    (m,) rarity in [0, 1]; higher is rarer (a lower k-NN density under the training faces).
    """
    return _rarity_and_radius(train, query, k)[0]


def _rarity_and_radius(train: np.ndarray, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(rarity, k-NN radius) of each query point: the radius behind the rarity ranks the faces that rarity ties at 1,
    beyond every training face."""
    k = min(k, len(train) - 1)  # the same k for the training faces (themselves left out) and the queries
    own = np.sort(knn_radius(train, train, k, exclude_self=True))
    radius = knn_radius(train, query, k)
    return np.searchsorted(own, radius, side="left") / len(own), radius


class LatentSpace:
    """The training faces' latent, standardised and reduced to whitened principal components."""

    def __init__(self, train_mu: np.ndarray, *, n_dims: int = 16) -> None:
        from sklearn.decomposition import PCA
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        n_dims = max(1, min(n_dims, train_mu.shape[1], len(train_mu) - 1))
        self.pipeline = make_pipeline(StandardScaler(), PCA(n_dims, whiten=True, random_state=0)).fit(train_mu)
        self.train = self.pipeline.transform(train_mu)

    def transform(self, mu: np.ndarray) -> np.ndarray:
        return self.pipeline.transform(mu)


def error_aware_slices(z: np.ndarray, miss: np.ndarray, k: int, *, miss_weight: float = 2.0,
                       random_state: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(slice of each face 0..k-1, held-out mask): a diagonal mixture fitted to the coordinates ``z`` (n, d) and
    the miss indicator (n,) of a random half of the faces (the mask's False ones); every face assigned by ``z``
    alone, to the component whose marginal over the coordinates makes it likeliest."""
    from sklearn.mixture import GaussianMixture

    z = np.asarray(z, float)
    held = np.zeros(len(z), bool)
    held[np.random.default_rng(random_state).permutation(len(z))[: len(z) // 2]] = True
    x = np.column_stack([z, miss_weight * np.asarray(miss, float)])[~held]
    gm = GaussianMixture(min(k, len(x)), covariance_type="diag", n_init=3, reg_covar=1e-3,
                         random_state=random_state).fit(x)
    mu, var = gm.means_[:, : z.shape[1]], gm.covariances_[:, : z.shape[1]]
    log_p = (np.log(gm.weights_) - 0.5 * np.log(2 * np.pi * var).sum(1)
             - 0.5 * (((z[:, None, :] - mu) ** 2) / var).sum(2))
    return log_p.argmax(1), held


def _rate_table(hit: pd.Series, keys: pd.Series) -> pd.DataFrame:
    g = hit.groupby(keys.to_numpy())
    t = pd.DataFrame({"n": g.size(), "detected": g.sum()})
    t["detection_rate"] = t["detected"] / t["n"]
    t["ci_low"], t["ci_high"] = wilson_interval(t["detected"].to_numpy(), t["n"].to_numpy())
    return t


def _slice_table(hit: pd.Series, labels: pd.Series, held: np.ndarray) -> pd.DataFrame:
    """Per slice, worst first by its rate on the fitting half (``fit_rate``): its faces ``n``, and its detection rate
    with Wilson interval measured on its held-out faces (``n_held_out``, ``detected``)."""
    fit = ~held
    t = _rate_table(hit[held], labels[held]).rename(columns={"n": "n_held_out"})
    t = t.reindex(sorted(labels.unique()))
    t[["n_held_out", "detected"]] = t[["n_held_out", "detected"]].fillna(0).astype(int)
    t.insert(0, "n", labels.value_counts())
    t.insert(1, "fit_rate", hit[fit].groupby(labels[fit].to_numpy()).mean())
    return t.sort_values(["fit_rate", "n"], ascending=[True, False], na_position="last")


def describe(frame: pd.DataFrame, labels: pd.Series, columns=DESCRIBE) -> pd.DataFrame:
    """Per slice (rows), the share of each labelled level (columns ``attribute=level``) and a description naming
    the levels over-represented by at least :data:`MIN_LIFT` ("68% darker (33% overall)")."""
    shares, names = {}, {}
    for c in columns:
        if c not in frame or frame[c].isna().all():
            continue
        values = frame[c].astype(str).where(frame[c].notna())
        overall = values.value_counts(normalize=True)
        table = pd.crosstab(labels.to_numpy(), values.to_numpy(), normalize="index")
        for level in overall.index:
            col = table[level] if level in table else pd.Series(0.0, index=table.index)
            shares[f"{c}={level}"] = col
            for s, v in col.items():
                if v >= MIN_LIFT * overall[level] and v >= 0.2:
                    names.setdefault(s, []).append((v / overall[level], f"{v:.0%} {level} ({overall[level]:.0%} overall)"))
    out = pd.DataFrame(shares, index=pd.Index(sorted(labels.unique()), name="slice"))
    out.insert(0, "description", [", ".join(t for _, t in sorted(names.get(s, []), reverse=True)) for s in out.index])
    return out


def discover(faces: pd.DataFrame, z: np.ndarray, space: LatentSpace, thresholds: dict, cfg: DiscoverConfig,
             *, source: str = "") -> Discovery:
    """Slices, rarity deciles and per-face results for the audited faces of every model.

    Parameters
    ----------
    faces : predictions of the audited faces (``y_true`` 1): ``row``, ``model``, ``y_score`` and any labels.
    z : (len(faces), latent) encoder means, in the order of ``faces``.
    space : the training faces' latent (:class:`LatentSpace`).
    thresholds : model -> the audit's decision threshold.
    """
    from sklearn.metrics import roc_auc_score

    coords = space.transform(z)
    rarity, radius = _rarity_and_radius(space.train, coords, cfg.n_neighbors)  # deciles rank by the radius
    slices, deciles, per_face, auc = [], [], [], {}
    for m, idx in faces.groupby("model", sort=False).indices.items():
        d = faces.iloc[idx]
        hit = (d["y_score"] >= thresholds[m]).astype(int).reset_index(drop=True)
        if len(d) < MIN_FACES:
            raise DebiasError(f"slice discovery needs at least {MIN_FACES} audited faces a model (half to find the "
                              f"slices on, half to measure them); {m} has {len(d)}: audit more faces.")
        found, held = error_aware_slices(coords[idx], 1 - hit.to_numpy(), cfg.k, miss_weight=cfg.miss_weight,
                                         random_state=cfg.seed)
        labels = pd.Series(found)
        t = _slice_table(hit, labels, held)
        renumber = {old: new for new, old in enumerate(t.index, start=1)}  # slice 1 is the worst
        labels = labels.map(renumber)
        t.index = t.index.map(renumber)
        t["rarity"] = pd.Series(rarity[idx]).groupby(labels.to_numpy()).mean()
        t = t.join(describe(d.reset_index(drop=True), labels))
        slices.append(t.rename_axis("slice").reset_index().assign(model=m))
        deciles.append(_deciles(hit, rarity[idx], radius[idx]).assign(model=m))
        auc[m] = float(roc_auc_score(1 - hit, rarity[idx])) if 0 < hit.sum() < len(hit) else float("nan")
        per_face.append(pd.DataFrame({"row": d["row"].to_numpy(), "model": m, "slice": labels.to_numpy(),
                                      "rarity": rarity[idx], "held_out": held}))
    first = ["model", "slice", "n", "fit_rate", "n_held_out", "detected", "detection_rate", "ci_low", "ci_high",
             "rarity", "description"]
    s = pd.concat(slices, ignore_index=True)
    return Discovery(s[first + [c for c in s.columns if c not in first]],
                     pd.concat(deciles, ignore_index=True), pd.concat(per_face, ignore_index=True), auc, source, cfg)


def _deciles(hit: pd.Series, rarity: np.ndarray, radius: np.ndarray) -> pd.DataFrame:
    """Detection rate by decile of rarity among the audited faces (1: most typical, 10: rarest), ranked by the k-NN
    radius behind the rarity (which ties at 1 for every face beyond the rarest training face)."""
    n_bins = min(10, len(hit))
    dec = pd.Series(pd.qcut(pd.Series(radius).rank(method="first"), n_bins, labels=False) + 1)
    t = _rate_table(hit, dec)
    r = pd.Series(rarity).groupby(dec.to_numpy())
    t["rarity_low"], t["rarity_high"] = r.min(), r.max()
    return t.rename_axis("decile").reset_index()


__all__ = ["DiscoverConfig", "Discovery", "LatentSpace", "describe", "discover", "error_aware_slices",
           "knn_radius", "knn_rarity"]
