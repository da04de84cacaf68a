"""How good generated faces are, measured against held-out real faces on a fixed embedding.

- precision, recall, density and coverage (Naeem, Oh, Uh, Choi & Yoo, ICML 2020), each from k-nearest-neighbour
  balls: a real face's ball reaches (not including) its k-th nearest real neighbour, a generated face's its k-th
  nearest generated one. Precision: the share of generated faces inside some real ball (realistic). Recall: the share
  of real faces inside some generated ball (the real variety the generator reaches). Density: how many real balls
  hold a generated face, on average, over k (1 when generated faces sit where real ones do; above 1 where they crowd
  the densest regions). Coverage: the share of real faces whose ball holds a generated face (robust to outliers on
  both sides).
- a real-versus-generated probe: the cross-validated ROC AUC of a logistic regression told to separate the two on the
  same embedding. 0.5: indistinguishable there; 1: any model can learn "generated" as a shortcut.

The embedding is a DB-VAE encoder's latent means when a latent run is given (the space whose rare regions the
generation aims at), else the first principal components of the real faces' pixels (scikit-learn's PCA, fitted on the
real faces only): fixed, deterministic and without weights to download; it sees colour, layout and blur, not
identity.
"""
from __future__ import annotations

import numpy as np


def _kth_radius(x: np.ndarray, k: int) -> np.ndarray:
    """(N,) distance from each row of ``x`` to its k-th nearest other row."""
    from sklearn.neighbors import NearestNeighbors

    d, _ = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)  # column 0 is the point itself
    return d[:, k]


def prdc(real: np.ndarray, fake: np.ndarray, *, k: int = 5) -> dict[str, float]:
    """Precision, recall, density and coverage of ``fake`` (M, d) against ``real`` (N, d) (Naeem et al. 2020).

    Parameters
    ----------
    real : (N, d) embeddings of real faces, N > k.
    fake : (M, d) embeddings of generated faces, M > k.
    k : neighbours that set each ball's radius.

    Returns
    -------
    {"precision", "recall", "density", "coverage"}; precision, recall and coverage in [0, 1], density >= 0.
    """
    from sklearn.metrics import pairwise_distances

    real, fake = np.asarray(real, dtype=np.float64), np.asarray(fake, dtype=np.float64)
    if len(real) <= k or len(fake) <= k:
        raise ValueError(f"precision/recall need more than k={k} real and generated faces, got {len(real)} and "
                         f"{len(fake)}.")
    r_real, r_fake = _kth_radius(real, k), _kth_radius(fake, k)
    d = pairwise_distances(real, fake)  # (N, M)
    inside_real = d < r_real[:, None]  # generated j inside real i's ball
    return {"precision": float(inside_real.any(0).mean()),
            "recall": float((d < r_fake[None, :]).any(1).mean()),
            "density": float(inside_real.sum() / (k * len(fake))),
            "coverage": float((d.min(1) < r_real).mean())}


def probe_auc(real: np.ndarray, fake: np.ndarray, *, folds: int = 5, random_state: int = 0) -> float:
    """Cross-validated ROC AUC of a logistic regression separating ``real`` (N, d) from ``fake`` (M, d), on equally
    many of each (the larger side subsampled with ``random_state``), features standardised within each fold."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(random_state)
    n = min(len(real), len(fake))
    if n < folds:
        raise ValueError(f"the probe needs at least {folds} real and {folds} generated faces, got {len(real)} and "
                         f"{len(fake)}.")
    x = np.concatenate([real[rng.choice(len(real), n, replace=False)], fake[rng.choice(len(fake), n, replace=False)]])
    y = np.r_[np.zeros(n), np.ones(n)]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    cv = StratifiedKFold(folds, shuffle=True, random_state=random_state)
    return float(cross_val_score(model, x, y, cv=cv, scoring="roc_auc").mean())


def pixel_embedding(real_uint8: np.ndarray, fake_uint8: np.ndarray, *, n_components: int = 64,
                    random_state: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Both sets of (N, H, W, 3) uint8 images projected on the first principal components of the real ones."""
    from sklearn.decomposition import PCA

    r = real_uint8.reshape(len(real_uint8), -1).astype(np.float32) / 255.0
    f = fake_uint8.reshape(len(fake_uint8), -1).astype(np.float32) / 255.0
    pca = PCA(n_components=min(n_components, len(r) - 1, r.shape[1]), random_state=random_state).fit(r)
    return pca.transform(r), pca.transform(f)


def quality(real: np.ndarray, fake: np.ndarray, *, k: int = 5, random_state: int = 0) -> dict[str, float]:
    """:func:`prdc` and :func:`probe_auc` of two embedded sets, as one dict (with the counts)."""
    return {**prdc(real, fake, k=k), "probe_auc": probe_auc(real, fake, random_state=random_state),
            "n_real": int(len(real)), "n_generated": int(len(fake)), "k": int(k)}
