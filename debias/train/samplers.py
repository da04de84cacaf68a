"""Which faces each epoch's batches hold: uniform, labelled weights, another run's saved weights, Group DRO's
groups, JTT's errors, the loss, or the DB-VAE's latent density (computed every epoch, or once and kept).

The latent weights never read a label. ``rare_group_note`` reads the labels a training set has only to tell the
user how much sampling mass each rare labelled group received.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from debias.config import TrainConfig
from debias.models.run import RunError, predict_scores, read_sampling_weights
from debias.sampling import (BatchPlan, GroupDRO, MixedBatches, ess_fraction, group_balanced_weights, group_keys,
                             jtt_weights, latent_weights, loss_weights, mass_by_group)
from debias.train.loop import build_model, make_optimizer
from debias.train.state import State
from debias.train.trainset import DIAGNOSTIC_COLUMNS, TrainingError, TrainSet

# a labelled group with less than this share of the training faces is "rare" for the latent weights' mass note
RARE_SHARE = 0.10
Log = Callable[[str], None]


@dataclasses.dataclass
class Sampling:
    """Face weights fixed before training and Group DRO's groups: from the labels (balanced, group-dro) or from
    another run's saved weights (standard with ``weights_from``)."""

    p_face: np.ndarray | None = None
    groups: np.ndarray | None = None  # (n,) group code of every training image; non-faces the last
    dro: GroupDRO | None = None
    names: tuple = ()


def read_face_weights(path: str | Path, face_frame: pd.DataFrame) -> np.ndarray:
    """The face sampling weights a run saved (``path``: its folder or its sampling_weights.csv, columns image and p),
    in the order of ``face_frame`` (the training faces of this run, matched by ``image``), normalised to sum to 1.
    Raises TrainingError, naming the file and what to do, when they are malformed or do not fit these faces."""
    try:
        f, by_image = read_sampling_weights(path)
    except RunError as e:
        raise TrainingError(f"`weights_from`: {e}") from None
    images = face_frame["image"].astype(str)
    missing = images[~images.isin(by_image.index)]
    extra = len(by_image) - (len(face_frame) - len(missing))
    if len(missing) or extra:
        raise TrainingError(f"`weights_from`: {f} holds weights for {len(by_image)} faces, and this run trains on "
                            f"{len(face_frame)} ({len(missing)} of them without a weight"
                            + (f", e.g. image {missing.iloc[0]}" if len(missing) else "") + f", {extra} weights for "
                            f"images it does not train on). Use a run trained on the same data, split and "
                            f"`max_train`.")
    q = by_image.loc[images.to_numpy()].to_numpy()
    return q / q.sum()


def fixed_sampling(cfg: TrainConfig, ts: TrainSet, log: Log) -> Sampling:
    """The sampling that is known before training starts (see ``Sampling``)."""
    if cfg.weights_from:
        p = read_face_weights(cfg.weights_from, ts.face_frame)
        log(f"faces drawn by the weights of {cfg.weights_from} (ESS {ess_fraction(p):.3f} of the faces)")
        return Sampling(p)
    if cfg.method not in ("balanced", "group-dro"):
        return Sampling()
    keys = group_keys(ts.face_frame, cfg.balance_by)  # fails early on a missing column
    # Sagawa et al. sample groups uniformly for Group DRO and reweight the loss on top
    p = group_balanced_weights(ts.face_frame, cfg.balance_by, cfg.balance_power if cfg.method == "balanced" else 1.0)
    if cfg.method == "balanced":
        return Sampling(p)
    codes, uniques = pd.factorize(keys, sort=True)
    groups = np.full(len(ts.ds), len(uniques), dtype=np.int64)  # non-faces: one more group
    groups[ts.face_pos] = codes
    log(f"Group DRO over {len(uniques)} face groups ({', '.join(map(str, uniques))}) and non-faces")
    return Sampling(p, groups, GroupDRO(len(uniques) + 1, cfg.dro_eta), (*uniques, "non-face"))


def _guarded(w, cfg: TrainConfig, epoch: int, log: Log) -> np.ndarray:
    """``w.p``, with a line in the log when the ESS guard had to temper the weights."""
    if w.guarded:
        log(f"epoch {epoch + 1}: ESS guard: raw ESS {w.ess_raw:.4f} of faces is below `min_ess` {cfg.min_ess}; "
            f"weights tempered with exponent {w.temper:.3f} -> ESS {w.ess:.3f}")
    return w.p


def _latent_weights(mu: np.ndarray, cfg: TrainConfig, epoch: int, log: Log) -> np.ndarray:
    """The DB-VAE's face weights from the density of the faces' latent means ``mu`` (never the labels)."""
    w = latent_weights(mu, bins=cfg.bins, alpha=cfg.alpha, combine=cfg.combine, temperature=cfg.temperature,
                       min_ess=cfg.min_ess, smooth_k=cfg.smooth_k)
    return _guarded(w, cfg, epoch, log)


def _loss_weights(s: np.ndarray, cfg: TrainConfig, epoch: int, log: Log) -> np.ndarray:
    """``loss-resample``'s face weights ~ each training face's loss -log s under the current model (``s``: its face
    probability; never the groups)."""
    return _guarded(loss_weights(-np.log(np.clip(s.astype(np.float64), 1e-12, 1.0)), cfg.min_ess), cfg, epoch, log)


def _score_faces(st: State, ts: TrainSet, device: torch.device, *, with_latent: bool):
    """One pass of the current model over the training faces: their face probabilities (the loss) and, with
    ``with_latent``, their latent means."""
    return predict_scores(st.model, lambda pos: ts.images(ts.face_pos[pos]), len(ts.face_pos), device,
                          with_latent=with_latent)


def _keep_latent(mu: np.ndarray, cfg: TrainConfig, ts: TrainSet, st: State, epoch: int, log: Log) -> None:
    """The DB-VAE's latent weights from the training faces' latent means ``mu``, into ``st.p_latent``."""
    st.p_latent = _latent_weights(mu, cfg, epoch, log)
    rare_group_note(st.p_latent, ts.face_frame, log)


def rare_group_note(p: np.ndarray, faces: pd.DataFrame, log: Log) -> None:
    """Read label-free latent weights ``p`` against the labels the training faces have (a diagnostic: sampling never
    sees them): the sampling mass on each labelled group with less than RARE_SHARE of the faces, beside that share,
    and a note naming any such group the weights draw less often than uniform sampling would. A latent that encodes
    tone but not pose gives rare profile faces no more than their share, and resampling by it then leaves (or
    widens) the pose gap."""
    natural = mass_by_group(np.full(len(p), 1.0 / len(p)), faces, DIAGNOSTIC_COLUMNS)
    mass = mass_by_group(p, faces, DIAGNOSTIC_COLUMNS)
    rare = {g: n for g, n in natural.items() if n < RARE_SHARE and not g.endswith("=nan")}
    if np.ptp(p) <= 1e-6 * np.max(p):  # uniform (vae-uniform, or tempered flat by the ESS floor): nothing to read
        if rare:
            log("the latent weights are uniform: every face is drawn equally often, so they favour no group")
        return
    _over_sampled_note({g: n for g, n in natural.items() if g not in rare and not g.endswith("=nan")}, mass, log)
    if not rare:
        return
    log("latent weights' mass on the rare labelled groups, beside their share of the training faces (labels read for "
        "this note only): " + ", ".join(f"{g} {mass[g]:.1%} ({n:.1%})" for g, n in rare.items()))
    below = [g for g, n in rare.items() if mass[g] < n * (1 - 1e-3)]
    if below:
        them = "it" if len(below) == 1 else "them"
        log(f"note: the latent weights give {' and '.join(below)} less than {'its' if len(below) == 1 else 'their'} "
            f"share of the training faces, so resampling by them draws {them} less often than uniform sampling: the "
            f"latent does not find {them} rare. With labels, `method`='balanced' with `balance_by`=ATTRIBUTE upweights "
            f"{them}")


OVER_SAMPLED = 1.5  # a group that is not rare and gets this many times its share of the mass is named


def _over_sampled_note(common: dict, mass: dict, log: Log) -> None:
    """A note naming labelled groups that are not rare yet get at least OVER_SAMPLED times their share of the mass:
    the latent holds a group's faces rare for their spread, not their count, and on a set where that group is not
    under-represented, resampling by such weights lowers accuracy for the others."""
    over = [g for g, n in common.items() if mass[g] >= OVER_SAMPLED * n]
    if over:
        log("note: the latent weights give " + ", ".join(f"{g} {mass[g]:.0%} of the mass" for g in over)
            + " though " + ("it holds" if len(over) == 1 else "they hold") + " "
            + ", ".join(f"{common[g]:.0%}" for g in over) + " of the training faces. Where a group is not "
            "under-represented, resampling toward it can lower accuracy for the others: audit this run against "
            "`standard` (debias audit DATA -m run:STANDARD -m run:THIS)")


def freeze_hook(cfg: TrainConfig, ts: TrainSet, st: State, epoch: int, n_batches: int, device: torch.device,
                log: Log) -> Callable[[int], bool] | None:
    """``freeze_after``: a step hook that computes the kept latent weights once ``freeze_after`` training images have
    been seen, if that comes before the start of epoch ``resample_from`` (which otherwise computes them). With
    ``weights_only`` it then ends the epoch (returns True), and so the run."""
    if not cfg.freeze_after or st.p_latent is not None or epoch >= cfg.resample_from:
        return None
    seen_before = epoch * n_batches * cfg.batch_size

    def hook(k: int) -> bool:
        seen = seen_before + k * cfg.batch_size
        if st.p_latent is None and seen >= cfg.freeze_after:
            _, mu = _score_faces(st, ts, device, with_latent=True)
            _keep_latent(mu, cfg, ts, st, epoch, log)
            st.model.train()  # predict_scores left it in eval mode, mid-epoch
            log(f"epoch {epoch + 1}, step {k}: latent weights computed after {seen} training images and kept")
            if cfg.weights_only:
                st.steps = k
                return True
        return False
    return hook


def weights_row(st: State, ts: TrainSet, p: np.ndarray, seen: int, log: Log) -> None:
    """``weights_only``: a last history row for the epoch that would have sampled by the kept weights ``p`` (not
    trained, so no losses): their ESS and the mass each labelled group gets, as a full run's next epoch reports them."""
    mass, ess = mass_by_group(p, ts.face_frame, DIAGNOSTIC_COLUMNS), ess_fraction(p)
    st.history.append({"epoch": st.epoch, "ess": ess, **mass_columns(mass)})
    log(f"latent weights computed after {seen:,} training images (ESS {ess:.3f}"
        + "".join(f", {k} {v:.1%}" for k, v in mass.items()) + ")")


def mass_columns(mass: dict[str, float]) -> dict[str, float]:
    """History columns of ``mass_by_group``'s shares: {'mass[skin_group=darker]': 0.21, ...}."""
    return {f"mass[{k}]": v for k, v in mass.items()}


def _start_jtt_final_model(st: State, cfg: TrainConfig, ts: TrainSet, device: torch.device,
                           log: Log) -> None:
    """JTT's second stage: record the identification model's errors, then start a fresh model."""
    s, _ = predict_scores(st.model, ts.images, len(ts.ds), device)
    st.jtt_err = (s >= 0.5).astype(np.float32) != ts.labels
    log(f"JTT: identification model errs on {int(st.jtt_err.sum())} of {len(ts.ds)} training images; "
        f"upweighting them x{cfg.jtt_lambda} and retraining from scratch")
    torch.manual_seed(cfg.seed + 1)
    st.model.load_state_dict(build_model(cfg, ts.size).to(device).state_dict())
    st.opt = make_optimizer(st.model, cfg)


def epoch_batches(cfg: TrainConfig, ts: TrainSet, st: State, fixed: Sampling, epoch: int, n_batches: int,
                  device: torch.device, log: Log) -> tuple[list | BatchPlan, np.ndarray, float]:
    """This epoch's batches, the face sampling distribution they follow, and the seconds spent resampling."""
    if cfg.method == "jtt" and epoch == cfg.jtt_epochs and st.jtt_err is None:
        _start_jtt_final_model(st, cfg, ts, device, log)
    resample_s, p_nonface = 0.0, None
    p_face = np.full(len(ts.face_pos), 1.0 / len(ts.face_pos))
    if cfg.method in ("dbvae", "loss-resample") and epoch >= cfg.resample_from:
        if st.p_latent is None or cfg.refresh_weights:  # --freeze-weights keeps the first resampling's weights
            tr = time.perf_counter()
            s, mu = _score_faces(st, ts, device, with_latent=cfg.method == "dbvae")
            if cfg.method == "dbvae":
                _keep_latent(mu, cfg, ts, st, epoch, log)
            else:
                st.p_latent = _loss_weights(s, cfg, epoch, log)
            resample_s = time.perf_counter() - tr
        p_face = st.p_latent
    elif fixed.p_face is not None:
        p_face = fixed.p_face
    elif cfg.method == "jtt" and st.jtt_err is not None:
        p_face = jtt_weights(st.jtt_err[ts.face_pos], cfg.jtt_lambda)
        p_nonface = jtt_weights(st.jtt_err[ts.nonface_pos], cfg.jtt_lambda)
    if (cfg.method == "standard" and fixed.p_face is None) or (cfg.method == "jtt" and st.jtt_err is None):
        perm = np.random.default_rng([cfg.seed, epoch, 7]).permutation(len(ts.ds))
        batches = [perm[i:i + cfg.batch_size] for i in range(0, n_batches * cfg.batch_size, cfg.batch_size)]
    else:
        batches = BatchPlan(ts.face_pos, p_face, ts.nonface_pos, batch_size=cfg.batch_size, face_ratio=cfg.face_ratio,
                            n_batches=n_batches, seed=cfg.seed, epoch=epoch, p_nonface=p_nonface)
    if cfg.extra_share and ts.extra is not None:
        batches = MixedBatches(batches, ts.labels == 1, n_real=len(ts.ds), n_extra=len(ts.extra),
                               share=cfg.extra_share, seed=cfg.seed, epoch=epoch)
    return batches, p_face, resample_s
