"""Can an unlabelled signal see profile faces? Loss and representation of a trained run, per pose.

    .venv/bin/python benchmarks/pose_diagnostic.py RUN DATA

For the training faces of DATA it prints (1) each pose's mean loss -log p(face) under RUN and the AUC
with which that loss ranks profile faces above the others (scikit-learn), and (2) the largest
|Spearman rho| (scipy) between |yaw| and any of the first 64 units of the encoder's penultimate
layer, and any of their 32 leading principal components. Labels are read only to report.
"""
from __future__ import annotations

import sys

import numpy as np
import torch
from scipy.stats import spearmanr
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score

from debias.data.manifest import open_packed, read_manifest, to_tensor
from debias.models.run import load_run


def main(run: str, data: str) -> None:
    model, _ = load_run(run)
    model.eval()
    enc = model.encoder  # the lab CNN, in a classifier and a DB-VAE alike
    m = read_manifest(data)
    faces = m[(m.split == "train") & (m.label == 1)]
    packed = open_packed(data)
    feats, logits = [], []
    with torch.no_grad():
        for s in range(0, len(faces), 512):
            x = to_tensor(packed.rows(faces.image.to_numpy()[s:s + 512]))
            h = enc.head[1](enc.head[0](enc.features(x)))  # (B, 512) penultimate features
            feats.append(h.numpy())
            logits.append(enc.head[2](h)[:, 0].numpy())  # the face logit is output 0 for both model kinds
    f, logit = np.concatenate(feats), np.concatenate(logits)
    loss = np.logaddexp(0, -logit)  # -log sigmoid(logit)
    pose = faces.pose.astype(str).to_numpy()
    for p in sorted(set(pose)):
        print(f"mean loss {p:14s} {loss[pose == p].mean():.3f} ({(pose == p).sum()} faces)")
    print(f"AUC of the loss for profile vs other faces: {roc_auc_score(pose == 'profile', loss):.3f}")
    yaw = faces.yaw.abs().to_numpy()
    z = PCA(32, random_state=0).fit_transform(f)
    for name, x in (("penultimate units (first 64)", f[:, :64]), ("leading 32 principal components", z)):
        rho = np.nanmax([abs(spearmanr(x[:, j], yaw).statistic) for j in range(x.shape[1])])
        print(f"max |Spearman rho| with |yaw|, {name}: {rho:.3f}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
