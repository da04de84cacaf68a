"""Why does the frozen smoothed DB-VAE put <1% of its mass on darker faces at 100,000 images? (seed 0)

    PYTHONPATH=. .venv/bin/python benchmarks/freeze_diagnostic.py /tmp/debias-bench/skin_seed0_n100000 /tmp/diag

(the data set is the benchmark's scale setting, seed 0: `debias data synth --n-train 100000 --n-val 1000 --seed 0`).

H1: the latent is frozen after epoch 1 = 100k images (5x the steps of the 20k setting); the encoder has by then
specialised and no longer makes darker faces rare. H2: the weighting itself (k=50 smoothing, ESS floor) behaves
differently with 5x more faces. Encoders: A = after 100k images (what the benchmark froze), B = after 20k images."""
import dataclasses
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from debias.config import TrainConfig
from debias.latent import latent_attribute_correlation
from debias.models.run import predict_scores
from debias.sampling import latent_weights
from debias.train import load_train_set, fit, load_run

torch.set_num_threads(1)
data, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir(exist_ok=True)
cfg = TrainConfig(method="dbvae", recipe="paper", rec_region="center", min_ess=0.1, refresh_weights=False, smooth_k=50,
                  epochs=1, seed=0, compile=False, device="cpu")
ts = load_train_set(data, cfg)  # every training face of the set, as training reads them
faces = ts.face_frame.reset_index(drop=True)
dark, prof = (faces.skin_group == "darker").to_numpy(), (faces.pose == "profile").to_numpy()
rows = []
for name, extra in (("A_after_100k", {}), ("B_after_20k", dict(max_train=20000))):
    run = out / name
    if not (run / "model.pt").exists():
        t = time.time()
        fit(data, dataclasses.replace(cfg, **extra), run)
        print(name, "trained", time.time() - t, flush=True)
    model, _ = load_run(run)
    _, mu = predict_scores(model, lambda pos: ts.images(ts.face_pos[pos]), len(ts.face_pos), torch.device("cpu"),
                           with_latent=True)
    corr = latent_attribute_correlation(mu, faces, ("skin_tone", "abs_yaw", "light", "gender")).abs().max()
    for k in (0, 50, 250):  # the training's own weighting options, smoothing varied
        w = latent_weights(mu, bins=cfg.bins, alpha=cfg.alpha, combine=cfg.combine, temperature=cfg.temperature,
                           min_ess=cfg.min_ess, smooth_k=k)
        rows.append(dict(encoder=name, smooth_k=k, mass_darker=w.p[dark].sum(), mass_profile=w.p[prof].sum(),
                         ess_raw=w.ess_raw, ess=w.ess, **{f"max_rho_{a}": v for a, v in corr.items()}))
        print(rows[-1], flush=True)
pd.DataFrame(rows).to_csv(Path(__file__).parent / "results" / "freeze_diagnostic.csv", index=False, float_format="%.4g")
