"""Why does the frozen smoothed DB-VAE put <1% of its mass on darker faces at 100,000 images? (session 13, seed 0)

    PYTHONPATH=. .venv/bin/python benchmarks/freeze_diagnostic.py /tmp/debias-bench/skin_seed0_n100000 /tmp/diag

(the data set is the benchmark's scale setting, seed 0: `debias data synth --n-train 100000 --n-val 1000 --seed 0`).

H1: the latent is frozen after epoch 1 = 100k images (5x the steps of the 20k setting); the encoder has by then
specialised and no longer makes darker faces rare. H2: the weighting itself (k=50 smoothing, ESS floor) behaves
differently with 5x more faces. Encoders: A = after 100k images (what the benchmark froze), B = after 20k images."""
import sys, time, numpy as np, pandas as pd, torch
from pathlib import Path
from debias.config import TrainConfig
from debias.train import fit, load_run
from debias.data.manifest import read_manifest, ManifestDataset
from debias.train import _image_reader
from debias.models.run import predict_scores
from debias.sampling import latent_weights
from debias.latent import latent_attribute_correlation
torch.set_num_threads(1)
data = Path(sys.argv[1]); out = Path(sys.argv[2]); out.mkdir(exist_ok=True)
base = dict(method="dbvae", rec_region="center", min_ess=0.1, refresh_weights=False, smooth_k=50, epochs=1, seed=0,
            compile=False, device="cpu")
m = read_manifest(data)
ds = ManifestDataset(data, "train", frame=m)
faces = np.flatnonzero(ds.frame.label.to_numpy() == 1)
ff = ds.frame.iloc[faces].reset_index(drop=True)
read = _image_reader(ds)
rows = []
for name, extra in (("A_after_100k", {}), ("B_after_20k", dict(max_train=20000))):
    run = out / name
    if not (run / "model.pt").exists():
        t = time.time(); fit(data, TrainConfig(**base, **extra), run); print(name, "trained", time.time() - t, flush=True)
    model, _ = load_run(run)
    _, mu = predict_scores(model, lambda pos: read(faces[pos]), len(faces), torch.device("cpu"), with_latent=True)
    corr = latent_attribute_correlation(mu, ff, ("skin_tone", "abs_yaw", "light", "gender")).abs().max()
    for k in (0, 50, 250):
        w = latent_weights(mu, bins=10, alpha=0.01, combine="product", min_ess=0.1, smooth_k=k)
        dark = (ff.skin_group == "darker").to_numpy(); prof = (ff.pose == "profile").to_numpy()
        rows.append(dict(encoder=name, smooth_k=k, mass_darker=w.p[dark].sum(), mass_profile=w.p[prof].sum(),
                         ess_raw=w.ess_raw, ess=w.ess, **{f"max_rho_{a}": v for a, v in corr.items()}))
        print(rows[-1], flush=True)
pd.DataFrame(rows).to_csv(Path(__file__).parent / "results" / "freeze_diagnostic.csv", index=False, float_format="%.4g")
