"""The demo: synthetic data with a known bias, three models, one audit comparing them.

Generate the embedded benchmark with its default bias; train ``standard`` and ``dbvae`` (exactly what
``debias train DATA --out RUN`` trains: the two-stage recipe), and with ``--oracle`` the labelled ``balanced``
reference, each with its defaults; audit them on the balanced test split by skin group x pose x gender; write one
comparison report with the DB-VAE's latent analysis.
"""
from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from debias.config import AuditConfig, SynthConfig, TrainConfig


TITLES = {"standard": "standard", "dbvae": "DB-VAE", "balanced": "balanced oracle"}


@dataclass(frozen=True)
class DemoConfig:
    quick: bool = False  # a smaller, faster run (about a minute) for trying the tool
    seed: int = 0  # seed for data, training and bootstrap
    epochs: int = 0  # training epochs per model; 0 = the default (6, the benchmark's short budget)
    compile: bool = True  # torch.compile the training step where it works
    device: str = "auto"
    # the models trained and compared; add "balanced" for the labelled reference (about 90 s more on 2 cores)
    methods: tuple[str, ...] = ("standard", "dbvae")

    def __post_init__(self):  # every model's options checked before any data is rendered (ValueError)
        for method in self.methods:
            self.train(method)

    def synth(self) -> SynthConfig:
        if self.quick:
            return SynthConfig(n_train=4000, n_val=400, n_test_per_cell=40, seed=self.seed)
        return SynthConfig(seed=self.seed)

    def train(self, method: str) -> TrainConfig:
        """Each method with its defaults, as `debias train DATA --method METHOD` trains it."""
        return TrainConfig(method=method, epochs=self.epochs or 6, seed=self.seed, compile=self.compile,
                           device=self.device)

    def audit(self) -> AuditConfig:
        return AuditConfig(by=("skin_group", "pose", "gender"), n_boot=300 if self.quick else 1000, seed=self.seed,
                           min_n=30)


def run_demo(out: str | Path, cfg: DemoConfig = DemoConfig(), *, progress: Callable | None = None,
             log: Callable[[str], None] | None = None):
    """Run the whole demo into ``out``; return ``(AuditResult of the comparison, timings in seconds)``."""
    from debias.report.outputs import run_audit
    from debias.data.preview import preview_grid
    from debias.data.synth import generate
    from debias.latent import analyze, write_figures
    from debias.train import fit

    log = log or (lambda m: None)
    out = Path(out)
    t0 = time.perf_counter()
    timings = {}
    data = out / "data"
    scfg = cfg.synth()
    if progress:
        progress(0, total=scfg.n_train + scfg.n_val + 36 * scfg.n_test_per_cell, description="rendering data")
    generate(scfg, data, progress=progress)
    timings["synth_s"] = time.perf_counter() - t0
    log(f"rendered the synthetic benchmark into {data} ({timings['synth_s']:.1f}s)")
    runs = {}
    for method in cfg.methods:
        t = time.perf_counter()
        run = out / "runs" / method
        fit(data, cfg.train(method), run, overwrite=True, progress=progress,
            log=lambda m, me=method: log(f"[{me}] {m}"))
        runs[method] = run
        timings[f"train_{method}_s"] = time.perf_counter() - t
    t = time.perf_counter()
    sections = []
    if "dbvae" in runs:
        lat = analyze(runs["dbvae"], data, random_state=cfg.seed)
        paths = write_figures(lat, out / "latent")
        figs = [(name.replace("_", " "), base64.b64encode(p.read_bytes()).decode("ascii")) for name, p in paths.items()]
        corr = lat.correlation.abs().max()
        sections.append({"title": "What the DB-VAE learned (latent space)",
                         "text": ("Largest absolute Spearman correlation of any latent dimension with each attribute: "
                                  + ", ".join(f"{k} {v:.2f}" for k, v in corr.items())
                                  + ". Resampling can only upweight what the latent space encodes: a factor no latent "
                                  "dimension tracks cannot be rebalanced without labels."),
                         "figs": figs})
    preview = preview_grid(data, ("skin_group", "pose"), out=out / "preview.png", split="test")
    sections.append({"title": "The data", "text": (
        f"Training faces: {1 - scfg.darker_share - scfg.medium_share:.0%} lighter, {scfg.medium_share:.0%} medium, "
        f"{scfg.darker_share:.0%} darker skin; {1 - scfg.profile_share - scfg.three_quarter_share:.0%} frontal, "
        f"{scfg.three_quarter_share:.0%} three-quarter, {scfg.profile_share:.0%} profile. The test split is balanced. "
        + _training_sentence(cfg)),
        "figs": [("test faces by skin group x pose", base64.b64encode(preview.read_bytes()).decode("ascii"))]})
    # a run: adapter is named after its folder, which is the method's name
    result = run_audit(data, [f"run:{runs[m]}" for m in cfg.methods], cfg.audit(), out, progress=progress,
                       title="debias demo: " + " vs ".join(TITLES.get(m, m) for m in cfg.methods),
                       extra_sections=sections,
                       lead=("dbvae", "skin_group"))
    timings["audit_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0
    timing = {**timings, "quick": cfg.quick}
    (out / "demo_timing.json").write_text(json.dumps(timing, indent=2) + "\n")
    log(f"demo finished in {timings['total_s']:.0f}s")
    return result, timings


def _training_sentence(cfg: DemoConfig) -> str:
    """How the models trained, for the report: what the comparison holds fixed and what differs."""
    t = cfg.train("standard")
    aug = " with flips and small scale and shift jitter (never colour)" if t.augment else ""
    return (f"Every model trained for {t.epochs} epoch{'s' if t.epochs != 1 else ''}{aug}, each with the defaults of "
            f"`debias train`: the DB-VAE's two-stage recipe also trains with sharpness-aware minimisation.")


__all__ = ["DemoConfig", "run_demo"]
