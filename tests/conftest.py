from __future__ import annotations

import pytest

from debias.config import SynthConfig
from debias.data.synth import generate


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory):
    """A small synthetic dataset shared by tests that only read it."""
    root = tmp_path_factory.mktemp("synth")
    cfg = SynthConfig(n_train=600, n_val=100, n_test_per_cell=6, seed=3, workers=1,
                      darker_share=0.1, profile_share=0.1)
    generate(cfg, root)
    return root


@pytest.fixture(scope="session")
def ppb_sample():
    """The 20 real PPB crops shipped beside the repository (../shared/data/ppb-sample)."""
    from pathlib import Path

    p = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ppb-sample"
    if not (p / "labels.csv").exists():
        pytest.skip(f"real-data sample not found at {p}")
    return p


@pytest.fixture(scope="session")
def load_benchmark():
    """Load `benchmarks/<name>.py` as a module (benchmarks/ is not a package): `load_benchmark("debiasing")`."""
    import importlib.util
    from pathlib import Path

    def load(name):
        spec = importlib.util.spec_from_file_location(
            f"bench_{name}", Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    return load


@pytest.fixture(scope="session")
def bench_debiasing(load_benchmark):
    """`benchmarks/debiasing.py` loaded once for the session (tests change it only through `monkeypatch`)."""
    return load_benchmark("debiasing")
