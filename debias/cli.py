"""The ``debias`` command line: one small function per command, each calling one library function."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator, List, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

app = typer.Typer(help="Audit face detectors for bias across skin tone, pose and gender, and retrain them "
                       "with debiased (DB-VAE) sampling.", no_args_is_help=True, rich_markup_mode="markdown",
                  pretty_exceptions_show_locals=False)
data_app = typer.Typer(help="Create, import, pack, annotate and preview datasets.", no_args_is_help=True)
report_app = typer.Typer(help="Compare audits side by side, or merge sharded predictions.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(report_app, name="report")
console = Console(stderr=True)


@contextlib.contextmanager
def progress_bar(description: str, total: int | None) -> Iterator:
    """A rich progress bar; yields ``advance(n, **fields)``."""
    cols = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TimeRemainingColumn(), TextColumn("{task.fields[info]}")]
    with Progress(*cols, console=console, transient=False) as p:
        task = p.add_task(description, total=total, info="")

        def advance(n: int = 1, info: str | None = None, total: int | None = None, description: str | None = None):
            kw = {}
            if info is not None:
                kw["info"] = info
            if total is not None:
                kw["total"] = total
            if description is not None:
                kw["description"] = description
            p.update(task, advance=n, **kw)

        yield advance


def fail(msg: str, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {msg}")
    raise typer.Exit(code)


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


# ------------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------------

@data_app.command("synth")
def data_synth(
    out: Path = typer.Option(Path("data/synthfaces"), "--out", "-o", help="Output dataset folder."),
    n_train: int = typer.Option(20_000, help="Training images (faces + non-faces)."),
    n_val: int = typer.Option(2_000, help="Validation images, same biased distribution as train."),
    n_test_per_cell: int = typer.Option(120, help="Test faces per skin group x pose x gender cell (18 cells)."),
    size: int = typer.Option(64, help="Image side in pixels."),
    seed: int = typer.Option(0, help="Random seed; the same seed gives byte-identical output."),
    darker_share: float = typer.Option(0.02, help="Share of MST 7-10 (darker) training faces."),
    medium_share: float = typer.Option(0.05, help="Share of MST 5-6 (medium) training faces."),
    profile_share: float = typer.Option(0.03, help="Share of profile (|yaw|>45) training faces."),
    three_quarter_share: float = typer.Option(0.05, help="Share of three-quarter (15-45) training faces."),
    female_share: float = typer.Option(0.5, help="Share of female-presenting training faces."),
    light_min: float = typer.Option(0.55, help="Lowest light intensity (1 = what the fixed exposure is set for)."),
    light_max: float = typer.Option(1.15, help="Highest light intensity."),
    light_azimuth: float = typer.Option(60.0, help="Light direction range, +- degrees."),
    noise: float = typer.Option(0.02, help="Sensor read noise (std, linear intensity)."),
    png: bool = typer.Option(False, "--png", help="Also write one PNG file per image."),
    workers: int = typer.Option(2, help="Render processes (output does not depend on it)."),
) -> None:
    """Render the embedded synthetic face / non-face benchmark.

    The training split is biased by the share options; the test split is balanced across skin group x
    pose x gender. Writes manifest.csv, images.npy (packed) and config.json.

    Examples:

        debias data synth --out data/synthfaces

        debias data synth --out data/pose-bias --darker-share 0.3 --profile-share 0.01
    """
    from debias.config import SynthConfig
    from debias.data.synth import generate

    try:
        cfg = SynthConfig(n_train=n_train, n_val=n_val, n_test_per_cell=n_test_per_cell, size=size, seed=seed,
                          darker_share=darker_share, medium_share=medium_share, profile_share=profile_share,
                          three_quarter_share=three_quarter_share, female_share=female_share, light_min=light_min,
                          light_max=light_max, light_azimuth=light_azimuth, noise=noise, png=png, workers=workers)
    except ValueError as e:
        fail(str(e))
    total = n_train + n_val + 18 * n_test_per_cell * 2
    with progress_bar("rendering", total) as advance:
        m = generate(cfg, out, progress=advance)
    faces = m[m.label == 1]
    console.print(f"wrote {len(m)} images ({len(faces)} faces) to {out}")


@data_app.command("preview")
def data_preview(
    root: Path = typer.Argument(..., help="Dataset folder (with manifest.csv)."),
    by: str = typer.Option("skin_group,pose", help="Comma-separated attribute columns; one row per combination."),
    out: Path = typer.Option(Path("grid.png"), "--out", "-o", help="Output PNG."),
    split: str = typer.Option("test", help="train, val, test or all."),
    per_row: int = typer.Option(12, help="Images per row."),
    seed: int = typer.Option(0, help="Which random images to show."),
) -> None:
    """Write an image grid with one row per subgroup (and one of non-faces).

    Example:

        debias data preview data/synthfaces --by skin_group,pose --out grid.png
    """
    from debias.data.manifest import ManifestError
    from debias.data.preview import preview_grid

    try:
        p = preview_grid(root, _csv(by), split=split, per_row=per_row, out=out, seed=seed)
    except (ManifestError, KeyError) as e:
        fail(str(e).strip('"'))
    console.print(f"wrote {p}")


@app.command("demo")
def demo(out: Path = typer.Option(Path("demo-output"), "--out", "-o", help="Output folder.")) -> None:
    """Generate the synthetic benchmark and write its preview grid (training and audit come later).

    Example:

        debias demo --out demo-output
    """
    from debias.config import SynthConfig
    from debias.data.preview import preview_grid
    from debias.data.synth import generate

    cfg = SynthConfig()
    with progress_bar("rendering", cfg.n_train + cfg.n_val + 36 * cfg.n_test_per_cell) as advance:
        generate(cfg, out / "data", progress=advance)
    console.print(f"wrote {preview_grid(out / 'data', ('skin_group', 'pose'), out=out / 'preview.png')}")


def main() -> None:  # pragma: no cover
    app()
