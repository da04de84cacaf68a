"""What a trained DB-VAE learned, and whom it considers rare.

- latent traversals: decode a face while sweeping one latent variable, the others held fixed;
- new faces decoded from prior samples z ~ N(0, I), and around training faces drawn by the weights (rare regions);
- the most and least represented training faces by final sampling probability;
- the correlation of every latent dimension with each known attribute;
- its active units: the dimensions whose posterior q(z|x) departs from the prior N(0, I) (mean KL above
  ``ACTIVE_KL`` nats over the faces), and which known attributes the strongest dimension, active or not,
  tracks;
- the sampling-mass share per subgroup, uniform against debiased.

Functions here compute arrays and tables; :func:`write_figures` draws them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from debias.data.manifest import ManifestDataset, read_manifest
from debias.generative.decoder import decoder_samples
from debias.models.dbvae import DBVAE
from debias.sampling import mass_by_group

# a latent dimension is active when its posterior's mean KL from N(0, 1) over the faces exceeds this many nats: the
# floor of Burda, Grosse & Salakhutdinov's (2016) activity statistic, applied to the KL the loss itself penalises
ACTIVE_KL = 0.01
NOT_A_DBVAE = ("{run} holds a {kind} model; latent analysis needs a DB-VAE (train with `method` dbvae or "
               "vae-uniform).")


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x.clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255 + 0.5).astype(np.uint8)  # (B, H, W, 3)


@torch.no_grad()
def traversals(model: DBVAE, mu: np.ndarray, dims: Sequence[int], *, steps: int = 9, span: float = 2.5) -> np.ndarray:
    """Decoded sweeps, shape (len(dims), steps, H, W, 3).

    The base code is the median face latent; dimension d goes from median - span*sd to median + span*sd
    of that dimension over the faces.
    """
    base = np.median(mu, 0)
    sd = mu.std(0)
    rows = []
    for d in dims:
        z = np.repeat(base[None], steps, 0)
        z[:, d] = base[d] + np.linspace(-span, span, steps) * sd[d]
        rows.append(_to_uint8(model.decode(torch.from_numpy(z).float())))
    return np.stack(rows)


@torch.no_grad()
def prior_samples(model: DBVAE, n: int = 32, *, random_state: int = 0) -> np.ndarray:
    """Faces decoded from z ~ N(0, I), shape (n, H, W, 3)."""
    g = torch.Generator().manual_seed(random_state)
    return _to_uint8(model.decode(torch.randn(n, model.latent_dim, generator=g)))


def encode_faces(model: DBVAE, images: np.ndarray, *, batch_size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """The posterior q(z|x) of every image: (mu, logvar), each (N, k), logvar = log sigma^2 (eval mode), in float64
    for the KL and correlation statistics (:func:`~debias.models.run.encode_posterior`, widened exactly)."""
    from debias.models.run import encode_posterior

    mu, logvar = encode_posterior(model, images, batch_size=batch_size)
    return mu.astype(np.float64), logvar.astype(np.float64)


def active_units(mu: np.ndarray, logvar: np.ndarray, *, floor: float = ACTIVE_KL) -> pd.DataFrame:
    """Per latent dimension: the mean over faces of KL(q(z_d|x) || N(0, 1)) in nats (``kl``), the variance over faces
    of the posterior mean (``mu_var``, Burda et al.'s Cov_x E[z_d|x]) and whether ``kl`` exceeds ``floor``
    (``active``).

    Parameters
    ----------
    mu, logvar : (N, k) posterior means and log-variances of N faces.

    Returns
    -------
    DataFrame indexed by ``latent_dim`` (k rows).
    """
    mu, logvar = np.asarray(mu, np.float64), np.asarray(logvar, np.float64)
    kl = 0.5 * (np.exp(logvar) + mu ** 2 - 1.0 - logvar).mean(0)  # (k,)
    return pd.DataFrame({"kl": kl, "mu_var": mu.var(0), "active": kl > floor},
                        index=pd.Index(range(mu.shape[1]), name="latent_dim"))


def attribute_encoding(correlation: pd.DataFrame, active: pd.Series) -> pd.DataFrame:
    """Which known attributes the latent encodes: per attribute (rows), the strongest |Spearman rho| over all
    dimensions (``abs_rho``), its dimension (``dim``) and whether that one is active (``dim_active``), and the same
    over the active dimensions only (``abs_rho_active``, ``dim_of_active``; NaN when none is active).

    Parameters
    ----------
    correlation : latent dimension x attribute, as :func:`latent_attribute_correlation` returns it.
    active : bool per latent dimension (the ``active`` column of :func:`active_units`).
    """
    def strongest(r: pd.Series) -> tuple[float, float]:  # (|rho|, dim), NaN for no dimension
        return (r.max(), r.idxmax()) if len(r) else (np.nan, np.nan)

    is_active = active.reindex(correlation.index, fill_value=False).to_numpy(bool)
    rows = []
    for a in correlation.columns:
        r = correlation[a].abs()
        rho, dim = strongest(r.dropna())
        rho_a, dim_a = strongest(r[is_active].dropna())
        rows.append({"attribute": a, "abs_rho": rho, "dim": dim, "dim_active": bool(active.get(dim, False)),
                     "abs_rho_active": rho_a, "dim_of_active": dim_a})
    return pd.DataFrame(rows, columns=["attribute", "abs_rho", "dim", "dim_active", "abs_rho_active",
                                       "dim_of_active"]).set_index("attribute").astype(
        {"dim": "Int64", "dim_of_active": "Int64"})


def latent_attribute_correlation(mu: np.ndarray, frame: pd.DataFrame,
                                 attributes: Sequence[str] = ("skin_tone", "yaw", "abs_yaw", "light", "gender")) -> pd.DataFrame:
    """Spearman correlation of every latent dimension (rows) with each known attribute (columns)."""
    cols = {}
    for a in attributes:
        if a == "abs_yaw" and "yaw" in frame:
            v = frame["yaw"].astype(float).abs()
        elif a == "gender" and "gender" in frame:
            v = (frame["gender"] == "female").astype(float).where(frame["gender"].notna())
        elif a in frame:
            v = pd.to_numeric(frame[a], errors="coerce")
        else:
            continue
        v = v.to_numpy(float)
        ok = ~np.isnan(v)
        if ok.sum() > 2 and np.unique(v[ok]).size > 1:
            cols[a] = [spearmanr(mu[ok, d], v[ok]).statistic for d in range(mu.shape[1])]
    return pd.DataFrame(cols, index=pd.Index(range(mu.shape[1]), name="latent_dim"))


def mass_shares(p: np.ndarray, frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Share of sampling mass per subgroup, uniform against the given probabilities."""
    uniform = mass_by_group(np.full(len(p), 1.0 / len(p)), frame, columns)
    debiased = mass_by_group(p, frame, columns)
    return pd.DataFrame([{"attribute": key.split("=", 1)[0], "group": key.split("=", 1)[1], "uniform": share,
                          "debiased": debiased[key]} for key, share in uniform.items()])


@dataclass
class LatentAnalysis:
    traversal_dims: list[int]
    traversals: np.ndarray  # (D, steps, H, W, 3)
    prior: np.ndarray  # (n, H, W, 3)
    rare_samples: np.ndarray  # (n, H, W, 3) decoded around training faces drawn by the weights (rare ones most often)
    rare: np.ndarray  # most upweighted (least represented) training faces
    common: np.ndarray  # least upweighted (most represented) training faces
    correlation: pd.DataFrame  # (k, attributes)
    shares: pd.DataFrame  # attribute, group, uniform, debiased
    units: pd.DataFrame  # (k,) kl, mu_var, active: see active_units
    encoding: pd.DataFrame  # (attributes,) the strongest dimension per attribute: see attribute_encoding
    notes: list[str]  # the mass on rare labelled groups, and any the weights draw less often than uniform sampling
    traversal_labels: list[str]  # per traversed dimension, the attributes it is the strongest dimension for


def analyze(run: str | Path, data: str | Path, *, n_dims: int = 6, n_gallery: int = 16,
            random_state: int = 0) -> LatentAnalysis:
    """Run every analysis for a DB-VAE run folder and its training dataset."""
    from debias.models.run import (RunError, check_input_side, check_trained_on, latent_run, load_run,
                                   read_sampling_weights)
    from debias.train.samplers import rare_group_note
    from debias.train.trainset import DIAGNOSTIC_COLUMNS

    run = latent_run(run)  # a two-stage run's DB-VAE is its first stage
    model, arch = load_run(run)
    if not isinstance(model, DBVAE):
        raise ValueError(NOT_A_DBVAE.format(run=run, kind=arch["kind"]))
    f, weights = read_sampling_weights(run)  # the checks training applies to `weights_from`
    check_trained_on(run, data)
    m = read_manifest(data)
    ds = ManifestDataset(data, "train", frame=m, size=arch["size"])
    # the faces the run trained on (all training faces, or its --max-train subset)
    images = ds.frame["image"].astype(str)
    is_face = (ds.frame["label"] == 1) & images.isin(weights.index)
    faces, face_images = ds.frame[is_face].reset_index(drop=True), images[is_face].to_numpy()
    if len(faces) != len(weights):
        extra = weights.index[~weights.index.isin(face_images)]
        raise RunError(f"{f} holds weights for {len(weights)} faces, {len(extra)} of them not training faces of "
                       f"{data} (e.g. image {extra[0]}); was the run trained on it?")
    imgs = ds.images_uint8(np.flatnonzero(is_face.to_numpy()))
    check_input_side(imgs.shape[1], arch, run, data)
    mu, logvar = encode_faces(model, imgs)
    units = active_units(mu, logvar)
    correlation = latent_attribute_correlation(mu, faces)
    encoding = attribute_encoding(correlation, units.active)
    # traverse the strongest dimension of each attribute, then the widest-spread others
    labels = encoding.reset_index().dropna(subset="dim").groupby("dim", sort=False).attribute.agg(", ".join)
    dims = [int(d) for d in labels.index] + [int(d) for d in np.argsort(mu.std(0))[::-1] if d not in labels.index]
    dims = dims[:max(n_dims, len(labels))]
    w = weights.loc[face_images].to_numpy()
    w = w / w.sum()
    order = np.argsort(w)
    notes: list[str] = []
    rare_group_note(w, faces, notes.append)
    return LatentAnalysis(
        traversal_dims=dims, traversals=traversals(model, mu, dims), prior=prior_samples(
            model, 32, random_state=random_state),
        rare_samples=decoder_samples(model, mu.astype(np.float32), logvar.astype(np.float32), w, 32,
                                     random_state=random_state)[0],
        rare=imgs[order[::-1][:n_gallery]], common=imgs[order[:n_gallery]], correlation=correlation,
        shares=mass_shares(w, faces, DIAGNOSTIC_COLUMNS), units=units, encoding=encoding, notes=notes,
        traversal_labels=[labels.get(d, "") for d in dims])


def write_figures(a: LatentAnalysis, out: str | Path) -> dict[str, Path]:
    """Draw every analysis into PNGs under ``out`` (plus CSVs of the tables). Returns name -> path."""
    import matplotlib.pyplot as plt  # no matplotlib.use(): a notebook's backend stays as it is
    import seaborn as sns

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}

    def grid(imgs: np.ndarray, ncol: int) -> np.ndarray:
        n, h, w, _ = imgs.shape
        nrow = int(np.ceil(n / ncol))
        canvas = np.full((nrow * (h + 2), ncol * (w + 2), 3), 255, np.uint8)
        for i, im in enumerate(imgs):
            r, c = divmod(i, ncol)
            canvas[r * (h + 2):r * (h + 2) + h, c * (w + 2):c * (w + 2) + w] = im
        return canvas

    def save(name, fig):
        p = out / f"{name}.png"
        fig.savefig(p, dpi=100, bbox_inches="tight")
        plt.close(fig)
        paths[name] = p

    D, S = a.traversals.shape[:2]
    fig, ax = plt.subplots(figsize=(S * 0.8 + 1.5, D * 0.8 + 0.6))
    ax.imshow(grid(a.traversals.reshape(-1, *a.traversals.shape[2:]), S))
    h = a.traversals.shape[2] + 2
    ax.set_yticks([i * h + h / 2 for i in range(D)],
                  [f"z{d} ({t})" if t else f"z{d}" for d, t in zip(a.traversal_dims, a.traversal_labels)])
    ax.set_xticks([0, (S - 1) * h + h / 2], ["-2.5 sd", "+2.5 sd"])
    ax.set_title("latent traversals (the strongest dimension of each attribute, then the widest-spread ones)")
    save("traversals", fig)
    for name, imgs, title in (("prior_samples", a.prior, "new faces decoded from z ~ N(0, I)"),
                              ("rare_region_samples", a.rare_samples,
                               "faces decoded around training faces drawn by the weights (rare regions most often)"),
                              ("rare_faces", a.rare, "most upweighted training faces (rare to the model)"),
                              ("common_faces", a.common, "least upweighted training faces (common to the model)")):
        fig, ax = plt.subplots(figsize=(8, 8 * int(np.ceil(len(imgs) / 8)) / 8 + 0.5))
        ax.imshow(grid(imgs, 8))
        ax.axis("off")
        ax.set_title(title)
        save(name, fig)
    if not a.correlation.empty:
        top = a.correlation.abs().max(axis=1).sort_values(ascending=False).index[:20]
        fig, ax = plt.subplots(figsize=(1.2 * a.correlation.shape[1] + 2, 6))
        sns.heatmap(a.correlation.loc[top], vmin=-1, vmax=1, cmap="vlag", annot=True, fmt=".2f", ax=ax)
        ax.set_title("Spearman correlation: latent dimension x attribute (20 most correlated dims)")
        save("latent_correlation", fig)
        a.correlation.to_csv(out / "latent_correlation.csv", float_format="%.4f")
        a.encoding.to_csv(out / "latent_attributes.csv", float_format="%.4f")
    a.units.to_csv(out / "latent_units.csv", float_format="%.6g")
    if not a.shares.empty:
        long = a.shares.melt(id_vars=["attribute", "group"], value_vars=["uniform", "debiased"], var_name="sampling",
                             value_name="share")
        g = sns.catplot(long, x="group", y="share", hue="sampling", col="attribute", kind="bar", sharex=False,
                        height=3, aspect=1.1)
        g.figure.suptitle("share of sampling mass per subgroup (diagnostic; sampling never sees these labels)", y=1.05)
        paths["mass_shares"] = out / "mass_shares.png"
        g.figure.savefig(paths["mass_shares"], dpi=100, bbox_inches="tight")
        plt.close(g.figure)
        a.shares.to_csv(out / "mass_shares.csv", index=False, float_format="%.5f")
    return paths
