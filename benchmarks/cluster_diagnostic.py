"""How the latent clusters of Group DRO without labels hold the darker faces.

    PYTHONPATH=. .venv/bin/python benchmarks/cluster_diagnostic.py --seeds 0 1 2 3 4 \
        --methods "dbvae center ess0.1 frozen cluster-dro resample fixed" "dbvae center ess0.1 frozen cluster-dro20 resample"

Each run trains as ``debiasing.py run`` would until its clusters are found and kept (the start of epoch 2; see
``weights_diagnostic.py``), then stops. Within a cluster every face carries the same sampling weight, so the clusters
are read back from the weights as the groups of equal weight (no test image and no label is used to find them; the
labels only describe them here). Writes ``results/cluster_diagnostic.csv``, one row per setting, method and seed:

- ``n_clusters``: clusters found; ``n_darker``: darker training faces;
- ``top_share``: the share of the darker faces in the cluster that holds the most of them;
- ``top_purity``: the darker share of that cluster's faces; ``top_size``: its size;
- ``n_holding``: the clusters holding at least 10% of the darker faces.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from weights_diagnostic import run_diagnostic  # noqa: E402

OUT = Path(__file__).parent / "results" / "cluster_diagnostic.csv"


def composition(p: np.ndarray, faces: pd.DataFrame) -> dict:
    """The darker faces' spread over the clusters, a cluster being the faces of one (equal) weight."""
    cluster = np.unique(p, return_inverse=True)[1]
    d = (faces.skin_group == "darker").to_numpy()
    per = np.bincount(cluster[d], minlength=cluster.max() + 1)
    size = np.bincount(cluster)
    top = int(per.argmax())
    return dict(n_clusters=len(size), n_darker=int(d.sum()), top_share=per[top] / d.sum(),
                top_purity=per[top] / size[top], top_size=int(size[top]), n_holding=int((per >= 0.1 * d.sum()).sum()))


def main() -> None:
    run_diagnostic(composition, OUT, __doc__, settings=["skin"],
                   methods=["dbvae center ess0.1 frozen cluster-dro resample fixed"])


if __name__ == "__main__":
    main()
