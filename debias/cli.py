"""The ``debias`` command line: one small function per command, each calling one library function."""
from __future__ import annotations

import contextlib
import functools
import re
import typing
from pathlib import Path
from typing import Iterator, List, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from debias.errors import DebiasError

class _Typer(typer.Typer):
    """A Typer whose commands turn a DebiasError (input the user can fix) into its message and exit code 2, with no
    traceback, whichever command raised it; anything else is a bug and keeps its traceback."""

    def command(self, *args, **kwargs):
        register = super().command(*args, **kwargs)

        def decorate(f):
            @functools.wraps(f)  # typer reads the options from the wrapped signature
            def run(*a, **k):
                try:
                    return f(*a, **k)
                except DebiasError as e:
                    fail(str(e))

            register(run)
            return f

        return decorate


app = _Typer(help="Audit face detectors for bias across skin tone, pose and gender, and retrain them "
                       "with debiased (DB-VAE) sampling.", no_args_is_help=True, rich_markup_mode="markdown",
                  pretty_exceptions_show_locals=False)
data_app = _Typer(help="Create, import, pack, annotate and preview datasets.", no_args_is_help=True)
report_app = _Typer(help="Compare audits side by side, or merge sharded predictions.", no_args_is_help=True)
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
            if total is not None:  # a new phase (for example the next epoch) restarts the bar
                p.reset(task, total=total)
            kw = {}
            if info is not None:
                kw["info"] = info
            if description is not None:
                kw["description"] = description
            p.update(task, advance=n, **kw)

        yield advance


_OPTION = re.compile(r"`([a-z][a-z0-9_]*)`")
_FLAG_OF = {"rename": "map"}  # keywords whose flag has another name


def as_flags(msg: str) -> str:
    """The library names an option by its keyword in backticks (`min_ess`); on the command line that is --min-ess."""
    return _OPTION.sub(lambda m: "--" + _FLAG_OF.get(m.group(1), m.group(1)).replace("_", "-"), msg)


def fail(msg: str, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {as_flags(msg)}")
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
    scenes: int = typer.Option(0, help="Render this many full scenes instead (each --scene-size pixels, 0-4 faces at "
                               "varied scale with exact boxes and balanced attributes) for box-level audits."),
    scene_size: int = typer.Option(256, help="Scene side in pixels (with --scenes)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a dataset already in --out."),
) -> None:
    """Render the embedded synthetic face / non-face benchmark, or full scenes with face boxes.

    The training split is biased by the share options; the test split is balanced across skin group x
    pose x gender. Writes manifest.csv, images.npy (packed) and config.json.

    Examples:

        debias data synth --out data/synthfaces

        debias data synth --out data/pose-bias --darker-share 0.3 --profile-share 0.01

        debias data synth --scenes 300 --out data/scenes   # then: debias audit data/scenes -m mtcnn --iou 0.5
    """
    from debias.config import SynthConfig
    from debias.data.synth import generate
    from debias.files import prepare_dataset_dir

    if scenes:
        from debias.data.scenes import SceneConfig, generate_scenes

        try:
            scfg = SceneConfig(n_scenes=scenes, size=scene_size, noise=noise, seed=seed)
            prepare_dataset_dir(out, overwrite=overwrite)
        except ValueError as e:
            fail(str(e))
        with progress_bar("rendering scenes", scenes) as advance:
            m = generate_scenes(scfg, out, progress=advance)
        console.print(f"wrote {scenes} scenes with {int((m.label == 1).sum())} faces to {out}")
        return

    try:
        cfg = SynthConfig(n_train=n_train, n_val=n_val, n_test_per_cell=n_test_per_cell, size=size, seed=seed,
                          darker_share=darker_share, medium_share=medium_share, profile_share=profile_share,
                          three_quarter_share=three_quarter_share, female_share=female_share, light_min=light_min,
                          light_max=light_max, light_azimuth=light_azimuth, noise=noise, png=png, workers=workers)
        prepare_dataset_dir(out, overwrite=overwrite)
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


@data_app.command("import")
def data_import(
    fmt: str = typer.Argument(..., help="celeba | mit-h5 | ppb | fairface | utkface | folder | skimage-lfw."),
    src: Optional[Path] = typer.Argument(None, help="Source folder or file (for folder: a face folder, or use --faces)."),
    out: Path = typer.Option(..., "--out", "-o", help="Dataset folder to write."),
    faces: List[Path] = typer.Option([], "--faces", help="folder: a folder of faces (repeatable)."),
    non_faces: List[Path] = typer.Option([], "--non-faces", help="folder: a folder of non-faces (repeatable)."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="folder / ppb: attribute or metadata CSV."),
    key: str = typer.Option("path", help="folder: CSV column with image paths relative to the folder."),
    map_: List[str] = typer.Option([], "--map", help="folder: rename a CSV column, e.g. skin=skin_group (repeatable)."),
    split: str = typer.Option("test", help="folder / ppb / utkface: split given to every image."),
    pack_: bool = typer.Option(False, "--pack", help="Also decode into a packed images.npy."),
    size: int = typer.Option(64, help="--pack: target size."),
    crop: str = typer.Option("center", help="--pack: center (crop) or letterbox (pad)."),
    workers: int = typer.Option(4, help="--pack: decoding threads."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a dataset already in --out."),
) -> None:
    """Import a real dataset into the manifest format (nothing is downloaded).

    Examples:

        debias data import folder --faces ../shared/data/ppb-sample --csv ../shared/data/ppb-sample/labels.csv --out data/ppb-sample

        debias data import celeba ~/data/celeba --out data/celeba --pack

        debias data import utkface ~/data/UTKFace --out data/utk

        debias data import skimage-lfw --out data/lfw-subset   # 100 real faces + 100 non-faces, shipped in scikit-image
    """
    from debias.data import importers
    from debias.data.importers.folder import parse_map

    try:
        # only what the user gave: an option the format does not take is refused, never ignored
        given = {"faces": faces, "non_faces": non_faces, "csv": csv, "key": None if key == "path" else key,
                 "rename": parse_map(map_) if map_ else None, "split": None if split == "test" else split}
        res = importers.run(fmt, src, out, overwrite=overwrite,
                            **{k: v for k, v in given.items() if v not in (None, [])})
    except (ValueError, KeyError, FileNotFoundError, ImportError) as e:
        fail(str(e).strip('"'))
    m = res.manifest
    console.print(f"imported {len(m)} images ({int((m.label == 1).sum())} faces) into {out}/manifest.csv")
    if len(res.report):
        console.print(f"[yellow]{len(res.report)} problem(s) listed in {out}/import_report.csv[/], e.g.:")
        for r in res.report.head(5).itertuples():
            console.print(f"  {r.item}: {r.problem}", markup=False, highlight=False)
    if pack_ and fmt != "mit-h5":
        data_pack(out, size=size, crop=crop, workers=workers)


@data_app.command("pack")
def data_pack(
    root: Path = typer.Argument(..., help="Dataset folder whose manifest points to image files."),
    size: int = typer.Option(64, help="Target side in pixels."),
    crop: str = typer.Option("center", help="center (crop to square) or letterbox (pad to square)."),
    workers: int = typer.Option(4, help="Decoding threads."),
) -> None:
    """Decode image files into one memory-mapped images.npy for fast training.

    Unreadable files are skipped and listed in import_report.csv.

    Example:

        debias data pack data/celeba --size 64
    """
    from debias.data.manifest import ManifestError, read_manifest
    from debias.data.pack import pack

    try:
        before = len(read_manifest(root, check_files=False))
        with progress_bar("packing", None) as advance:
            m = pack(root, size=size, mode=crop, workers=workers, progress=advance)
    except (ManifestError, ValueError, FileNotFoundError) as e:
        fail(str(e))
    skipped = before - len(m)
    console.print(f"packed {len(m)} images into {root}/images.npy" +
                  (f"; [yellow]{skipped} unreadable file(s) skipped, listed in import_report.csv[/]" if skipped else ""))


@data_app.command("pad")
def data_pad(
    src: Path = typer.Argument(..., help="Dataset folder of tight face crops (e.g. an imported PPB)."),
    out: Path = typer.Option(..., "--out", "-o", help="New dataset folder: padded images and face boxes."),
    pad: float = typer.Option(0.5, help="Border on every side, as a fraction of the crop's longer side."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a dataset already in --out."),
) -> None:
    """Pad every crop with a replicated border and record the crop's extent as its face box, so
    detectors can be audited box by box (`debias audit --iou 0.5`).

    Example:

        debias data pad data/ppb-sample --out data/ppb-sample-boxes --pad 0.5
    """
    from debias.data.manifest import ManifestError
    from debias.data.pad import boxes_from_crops

    try:
        with progress_bar("padding", None) as advance:  # boxes_from_crops sets the total once it has read the data
            m = boxes_from_crops(src, out, pad=pad, overwrite=overwrite, progress=advance)
    except (ManifestError, ValueError, OSError) as e:
        fail(str(e))
    console.print(f"wrote {len(m)} padded images ({int((m.label == 1).sum())} face boxes) to {out}; audit them "
                  f"with: debias audit {out} -m DETECTOR --iou 0.5")


@data_app.command("annotate")
def data_annotate(
    root: Path = typer.Argument(..., help="Dataset folder."),
    skin_tone: bool = typer.Option(False, "--skin-tone", help="Estimate skin tone (ITA) for every face."),
) -> None:
    """Add estimated attributes to a manifest: skin_tone_est, skin_group_est (ITA) with a confidence.

    Estimates are labelled as such in every report. ITA is sensitive to lighting: on the embedded benchmark it
    recovers the true skin group for most faces but not all (the synthfaces dataset card in the source repository
    gives the figures).

    Example:

        debias data annotate data/ppb-sample --skin-tone
    """
    from debias.data.manifest import read_manifest
    from debias.data.skin_tone import annotate_manifest

    if not skin_tone:
        fail("nothing to annotate; pass --skin-tone.")
    n_faces = int((read_manifest(root)["label"] == 1).sum())
    with progress_bar("ITA", n_faces) as advance:
        counts = annotate_manifest(root, progress=advance)
    console.print(f"annotated {n_faces} faces in {root}/manifest.csv: " +
                  ", ".join(f"{k} {v}" for k, v in counts.items()))


# ------------------------------------------------------------------------------------------------
# train / export
# ------------------------------------------------------------------------------------------------

_ESSENTIAL, _DBVAE, _LABELS, _TRAINING, _RUNTIME = ("Essentials", "DB-VAE", "Labelled references and other methods",
                                                    "Optimisation and augmentation", "Hardware and run control")


@app.command("train")
def train(
    data: Path = typer.Argument(..., help="Dataset folder (manifest.csv + packed images.npy)."),
    out: Path = typer.Option(..., "--out", "-o", help="Run folder for config.json, model.pt, history.csv, ...",
                             rich_help_panel=_ESSENTIAL),
    method: str = typer.Option("dbvae", help="dbvae (label-free debiasing) | standard | balanced | group-dro | jtt | "
                               "loss-resample | vae-uniform.", rich_help_panel=_ESSENTIAL),
    recipe: str = typer.Option("two-stage", help="--method dbvae: two-stage (a DB-VAE finds the rare faces and saves "
                               "sampling weights, then a classifier trained with sharpness-aware minimisation draws "
                               "its faces by them; both in --out) | paper (Amini et al. 2019: one network, weights "
                               "recomputed every epoch).", rich_help_panel=_ESSENTIAL),
    epochs: int = typer.Option(6, help="Epochs of the classifier.", rich_help_panel=_ESSENTIAL),
    seed: int = typer.Option(0, help="Seed for init, sampling and augmentation.", rich_help_panel=_ESSENTIAL),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its checkpoint.",
                                rich_help_panel=_ESSENTIAL),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a finished or broken run already in --out.",
                                   rich_help_panel=_ESSENTIAL),
    latent_dim: int = typer.Option(100, help="Latent size k.", rich_help_panel=_DBVAE),
    beta: float = typer.Option(5e-4, help="KL weight (beta-VAE).", rich_help_panel=_DBVAE),
    c_rec: float = typer.Option(1.0, help="Reconstruction weight.", rich_help_panel=_DBVAE),
    rec_norm: str = typer.Option("l1", help="l1 | l2 reconstruction.", rich_help_panel=_DBVAE),
    rec_region: Optional[str] = typer.Option(None, help="full | center: reconstruct the whole image or its central "
                                             "half (default: the recipe's, center for two-stage).",
                                             rich_help_panel=_DBVAE),
    bins: int = typer.Option(10, help="Histogram bins per latent dimension.", rich_help_panel=_DBVAE),
    alpha: float = typer.Option(0.01, help="Histogram smoothing (larger = closer to uniform).",
                                rich_help_panel=_DBVAE),
    combine: str = typer.Option("product", help="product (the paper's) | max (the lab's) | tempered: how latent "
                                "dimensions combine.", rich_help_panel=_DBVAE),
    temperature: float = typer.Option(0.0, help="Exponent for --combine tempered (0 = 1/k, the geometric mean).",
                                      rich_help_panel=_DBVAE),
    min_ess: Optional[float] = typer.Option(None, help="Floor on the effective sample size of the weights, as a "
                                            "fraction of the training faces (dbvae, loss-resample); weights are "
                                            "tempered to keep it (default: the recipe's).", rich_help_panel=_DBVAE),
    smooth_k: Optional[int] = typer.Option(None, help="Average each face's log-weight over its k nearest latent "
                                           "neighbours (0 = off; default: the recipe's, 50 for two-stage).",
                                           rich_help_panel=_DBVAE),
    refresh_weights: Optional[bool] = typer.Option(None, "--refresh-weights/--freeze-weights",
                                                   help="Recompute the weights every epoch, or once and keep them "
                                                   "(default: the recipe's).", rich_help_panel=_DBVAE),
    resample_from: int = typer.Option(1, help="First epoch (0-based) that resamples (--recipe paper, "
                                      "loss-resample).", rich_help_panel=_DBVAE),
    weights_from: str = typer.Option("", help="--method standard: draw the faces by the sampling weights another run "
                                     "saved (its folder or sampling_weights.csv), matched by image.",
                                     rich_help_panel=_DBVAE),
    balance_by: str = typer.Option("skin_group", help="Labelled groups for balanced and group-dro.",
                                   rich_help_panel=_LABELS),
    balance_power: float = typer.Option(1.0, help="balanced: p ~ n_group^-power (1 equal mass, 0.5 tempered).",
                                        rich_help_panel=_LABELS),
    dro_eta: float = typer.Option(0.01, help="group-dro: step size of the online group weights.",
                                  rich_help_panel=_LABELS),
    jtt_epochs: int = typer.Option(2, help="jtt: epochs of the identification model.", rich_help_panel=_LABELS),
    jtt_lambda: float = typer.Option(5.0, help="jtt: upweighting of its errors.", rich_help_panel=_LABELS),
    face_ratio: float = typer.Option(0.5, help="Share of faces in each weighted batch.", rich_help_panel=_LABELS),
    sam_rho: Optional[float] = typer.Option(None, help="Sharpness-aware minimisation radius (0 = off; about twice "
                                            "the time a step). Default: 0.05 for the two-stage recipe, else 0.",
                                            rich_help_panel=_TRAINING),
    batch_size: int = typer.Option(64, help="Batch size (global, across DDP ranks).", rich_help_panel=_TRAINING),
    lr: float = typer.Option(5e-4, help="Adam learning rate.", rich_help_panel=_TRAINING),
    swa_from: int = typer.Option(0, help="Save the average of the weights of every epoch from this one (0-based) "
                                 "on, BatchNorm statistics recomputed; 0 = off.", rich_help_panel=_TRAINING),
    augment: bool = typer.Option(True, "--augment/--no-augment",
                                 help="Random flip + scale/shift per image (geometry only, never colour).",
                                 rich_help_panel=_TRAINING),
    aug_scale: float = typer.Option(0.1, help="Augmentation zoom range: each image is scaled by 1 +- up to this.",
                                    rich_help_panel=_TRAINING),
    aug_translate: float = typer.Option(0.1, help="Augmentation shift range, as a fraction of the image side.",
                                        rich_help_panel=_TRAINING),
    aug_rotate: float = typer.Option(0.0, help="Augmentation rotation range in degrees (0 = none, at most 45).",
                                     rich_help_panel=_TRAINING),
    arch: str = typer.Option("cnn", help="cnn (the lab CNN) | resnet18 (torchvision, untrained).",
                             rich_help_panel=_TRAINING),
    width: int = typer.Option(12, help="Lab CNN width n (conv widths n, 2n, 4n, 6n).", rich_help_panel=_TRAINING),
    max_train: int = typer.Option(0, help="Use at most this many training images (0 = all).",
                                  rich_help_panel=_TRAINING),
    extra: str = typer.Option("", help="A folder of generated faces (`debias generate`) that replace --extra-share of "
                              "each batch's faces, drawn uniformly from it (--method standard, or the default "
                              "two-stage recipe's classifier).", rich_help_panel=_TRAINING),
    extra_share: float = typer.Option(0.0, help="Share of each batch's faces taken from --extra, in [0, 1).",
                                      rich_help_panel=_TRAINING),
    device: str = typer.Option("auto", help="auto | cpu | cuda.", rich_help_panel=_RUNTIME),
    workers: int = typer.Option(0, help="Threads prefetching batches from the packed array (0 = none).",
                                rich_help_panel=_RUNTIME),
    precision: str = typer.Option("fp32", help="fp32 | bf16 (autocast; CPUs with avx512_bf16/AMX, CUDA) | fp16 "
                                  "(CUDA only, grad scaling). Losses stay float32.", rich_help_panel=_RUNTIME),
    channels_last: bool = typer.Option(False, "--channels-last/--no-channels-last",
                                       help="NHWC layout for model and batches.", rich_help_panel=_RUNTIME),
    compile: bool = typer.Option(True, "--compile/--no-compile", help="torch.compile the training step where it pays "
                                 "(long runs; eager fallback).", rich_help_panel=_RUNTIME),
) -> None:
    """Train a face classifier, debiased without labels (the default) or with another method.

    With no option but --out, `--method dbvae --recipe two-stage` trains two networks in --out: a DB-VAE that
    finds the faces its latent space holds rare and saves sampling weights (--out/latent/), then the classifier
    (--out/model.pt) that draws its faces by them. The paper's DB-VAE is `--recipe paper`.

    Examples:

        debias train data/synthfaces --out runs/dbvae

        debias train data/synthfaces --method standard --out runs/std

        debias train data/synthfaces --recipe paper --out runs/paper

        torchrun --nproc_per_node=2 -m debias train data/synthfaces --out runs/ddp
    """
    import dataclasses

    from debias.config import TrainConfig
    from debias.data.manifest import ManifestError
    from debias.models.run import distributed
    from debias.train import TrainingError, fit

    options = {k: v for k, v in locals().items() if k in TrainConfig.__dataclass_fields__}
    try:
        cfg = TrainConfig(**{**options, "balance_by": _csv(balance_by)})
    except ValueError as e:
        fail(str(e))
    try:
        with distributed(cfg.device) as (rank, world, dev):
            cfg = dataclasses.replace(cfg, device=dev)
            if rank == 0:
                with progress_bar("training", None) as advance:
                    fit(data, cfg, out, resume=resume, overwrite=overwrite, rank=rank, world=world, progress=advance,
                        log=lambda m: console.print(as_flags(m)))
                console.print(f"wrote {out}/model.pt, history.csv, sampling_weights.csv, config.json")
            else:
                fit(data, cfg, out, resume=resume, overwrite=overwrite, rank=rank, world=world)
    except (ManifestError, TrainingError, KeyError) as e:
        fail(str(e).strip('"'))


@app.command("export")
def export(
    run: Path = typer.Argument(..., help="Run folder written by `debias train`."),
    torchscript: Optional[Path] = typer.Option(None, "--torchscript", help="Output TorchScript file."),
    onnx: Optional[Path] = typer.Option(None, "--onnx", help="Output ONNX file (needs the onnx package)."),
) -> None:
    """Export a trained model as a deployable classifier (images in [0, 1] -> face logit).

    Examples:

        debias export runs/dbvae --torchscript dbvae.pt

        debias export runs/dbvae --onnx dbvae.onnx
    """
    from debias.train import export_onnx, export_torchscript

    if torchscript is None and onnx is None:
        fail("give --torchscript OUT.pt and/or --onnx OUT.onnx.")
    try:
        if torchscript is not None:
            console.print(f"wrote {export_torchscript(run, torchscript)}")
        if onnx is not None:
            console.print(f"wrote {export_onnx(run, onnx)}")
    except FileNotFoundError as e:
        fail(str(e))
    except ImportError as e:
        fail(f"ONNX export needs the onnx package: pip install -e '.[onnx]' ({e})")


# ------------------------------------------------------------------------------------------------
# audit / report
# ------------------------------------------------------------------------------------------------

def _audit_config(by, split, threshold, target_fpr, reference, n_boot, min_n, seed, batch_size, device, size, pad,
                  thumbnails, shard="0/1", scores="auto"):
    from debias.config import AuditConfig

    try:
        k, n = (int(v) for v in shard.split("/"))
    except ValueError:
        fail(f"--shard {shard!r} must look like K/N, for example 0/4.")
    try:
        return AuditConfig(by=_csv(by), split=split, threshold=threshold, target_fpr=target_fpr, reference=reference,
                           n_boot=n_boot, min_n=min_n, seed=seed, batch_size=batch_size, device=device, size=size,
                           pad=pad, thumbnails=thumbnails, shard=(k, n), scores=scores)
    except ValueError as e:
        fail(str(e))


def _normalisation(mean: str, std: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """--mean and --std as numbers, checked (three each, std > 0) before anything is scored."""
    from debias.audit.adapters import check_normalisation

    values = []
    for name, v in (("mean", mean), ("std", std)):
        try:
            values.append([float(x) for x in _csv(v)])
        except ValueError:
            fail(f"--{name} {v!r} must be three numbers, one per channel, e.g. --{name} 0.5,0.5,0.5.")
    return check_normalisation(*values)


def _check_fail_on_syntax(expr: Optional[str]) -> None:
    """Reject a malformed --fail-on, or a bound no gap can exceed, before any work is done."""
    from debias.audit.engine import parse_fail_on

    if expr is not None:
        parse_fail_on(expr)


def _finish_audit(result, out: Path, fail_on: Optional[str]) -> None:
    from debias.audit.engine import check_fail_on, fail_on_judged
    from debias.report.text import headline, verdicts

    for line in verdicts(result.paired):
        console.print(f"[bold]{line}[/]", highlight=False)
    for line in headline(result):
        console.print(f"  {line}", highlight=False, markup=False)
    if len(result.skipped):
        from debias.audit.predict import NO_PREDICTION

        reasons = result.skipped["reason"].astype(str)
        unscored = int(reasons.str.startswith(NO_PREDICTION).sum())
        parts = [f"{len(reasons) - unscored} unreadable image(s) skipped"] * (unscored < len(reasons)) + \
            [f"{unscored} image(s) without a prediction not audited"] * (unscored > 0)
        console.print(f"[yellow]{'; '.join(parts)}; listed in summary.json and the report[/]")
    if result.discovery is not None:
        from debias.report.text import slice_sentences

        console.print(f"[bold]discovered slices[/], in {result.discovery.source}:", highlight=False)
        for line in slice_sentences(result.discovery):
            console.print(f"  {line}", highlight=False, markup=False)
    console.print(f"wrote {out}/report.html, metrics.csv, disparities.csv, predictions.csv, summary.json"
                  + (", slices.csv, rarity.csv" if result.discovery is not None else ""))
    if fail_on:
        try:
            failed = check_fail_on(result, fail_on)
        except ValueError as e:
            fail(str(e))
        if failed:
            console.print(f"[bold red]fairness gate failed[/] ({fail_on}): {len(failed)} group(s)")
            for f in failed[:12]:
                console.print(f"  {f}", highlight=False, markup=False)
            if len(failed) > 12:
                console.print(f"  ... and {len(failed) - 12} more (see disparities.csv)")
            raise typer.Exit(3)
        if not fail_on_judged(result, fail_on):
            console.print(f"[bold yellow]fairness gate not judged[/] ({fail_on}): no group had --min-n faces "
                          f"(or no grouping two such groups), so no gap could be measured; audit more faces, or "
                          f"lower --min-n knowingly.")
            raise typer.Exit(NOT_JUDGED)
        console.print(f"fairness gate passed ({fail_on})")


NOT_JUDGED = 4  # the exit code of a --fail-on gate that could judge no gap (3: it failed)
BY_HELP = "Comma-separated attribute columns; intersections of all of them are audited too."


RECIPE_KEYS = ("data", "model", "predictions", "out", "by", "split", "threshold", "target_fpr", "reference", "n_boot",
               "min_n", "seed", "batch_size", "device", "size", "mean", "std", "pad", "thumbnails", "shard", "fail_on",
               "iou", "fppi", "allow_missing", "discover", "latent_run")


def _apply_recipe(ctx: typer.Context, recipe: Path, values: dict) -> dict:
    """Recipe values fill every option the user did not give on the command line."""
    from debias.config import read_recipe

    r = read_recipe(recipe, RECIPE_KEYS)  # a DebiasError is the command's: message and exit 2 (_Typer)
    kinds = {k: _option_type(t) for k, t in typing.get_type_hints(audit).items()}
    for k, v in r.items():
        source = ctx.get_parameter_source(k)
        if source is None or source.name == "DEFAULT" or values.get(k) is None:
            if k in ("by", "mean", "std"):
                v = ",".join(map(str, v))
            elif kinds[k] in (int, float, bool, str):  # paths and models: read_recipe checked them
                v = _recipe_scalar(recipe, k, kinds[k], v)
            values[k] = v
    return values


def _option_type(hint) -> type:
    """The Python type of an option from its annotation: ``Optional[float]`` -> float."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if typing.get_origin(hint) is typing.Union and len(args) == 1 else hint


def _recipe_scalar(recipe: Path, name: str, kind: type, v):
    """A recipe value converted as the command line converts the flag of type ``kind`` (`n_boot = "20"` is 20,
    `target_fpr = 1` is 1.0); a value the flag would refuse is one error naming the key."""
    words = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    if isinstance(v, (list, dict)):
        raise DebiasError(f"recipe {recipe}: key {name} = {v!r} must be one value ({words[kind]}), not a "
                          f"{'list' if isinstance(v, list) else 'table'}.")
    try:
        if kind is bool:
            if isinstance(v, str) and v.strip().lower() in ("true", "false", "yes", "no", "1", "0"):
                return v.strip().lower() in ("true", "yes", "1")
            if not isinstance(v, bool):
                raise ValueError
            return v
        if kind in (int, float) and isinstance(v, bool):  # TOML true is not a number
            raise ValueError
        if kind is int and isinstance(v, float) and not v.is_integer():  # int(2.5) would silently be 2
            raise ValueError
        return kind(v)
    except (TypeError, ValueError):
        raise DebiasError(f"recipe {recipe}: key {name} = {v!r} must be {words[kind]}.") from None


@app.command("audit")
def audit(
    ctx: typer.Context,
    data: Optional[Path] = typer.Argument(None, help="Dataset folder with manifest.csv (synthetic, imported or packed)."),
    recipe: Optional[Path] = typer.Option(None, "--recipe", help="TOML file of these options (see audits/); "
                                          "options given on the command line win."),
    model: List[str] = typer.Option([], "--model", "-m", help="Model spec (repeatable): run:DIR, torchscript:FILE, "
                                    "onnx:FILE, opencv:haar-frontal-default|-alt|-alt2|profile, or "
                                    "python:MODULE:FUNCTION / python:FILE.py:FUNCTION, which RUNS PYTHON CODE from that "
                                    "module or file, like `python -c` (the current folder is not searched)."),
    predictions: Optional[Path] = typer.Option(None, "--predictions", help="Audit a CSV of predictions made elsewhere "
                                               "(columns image, score or prediction; optional model, label). Every "
                                               "image of --split needs a row: score 0 where no face was found."),
    allow_missing: bool = typer.Option(False, "--allow-missing", help="With --predictions: audit only the images each "
                                       "model has a row for (the rest are listed in the report) instead of stopping."),
    out: Path = typer.Option(Path("audit-output"), "--out", "-o", help="Output folder."),
    by: Optional[str] = typer.Option(None, help=BY_HELP + " Default: those of skin_group, pose, gender that the "
                                     "manifest has."),
    split: str = typer.Option("test", help="train, val, test or all."),
    threshold: Optional[float] = typer.Option(None, help="Fixed score threshold for every group (default: chosen at --target-fpr)."),
    target_fpr: float = typer.Option(0.01, help="Overall false-positive rate the shared threshold is chosen at."),
    reference: str = typer.Option("largest", help="Reference group for gaps: largest, best or a group name."),
    n_boot: int = typer.Option(1000, help="Stratified bootstrap resamples."),
    min_n: int = typer.Option(30, help="Cells with fewer faces are flagged 'too few to judge'."),
    seed: int = typer.Option(0, help="Bootstrap seed."),
    batch_size: int = typer.Option(256, help="Inference batch size."),
    device: str = typer.Option("auto", help="auto | cpu | cuda for neural models."),
    size: int = typer.Option(64, help="Input size for torchscript/onnx/python models."),
    mean: str = typer.Option("0,0,0", help="Normalisation mean for torchscript/onnx inputs in [0, 1]."),
    std: str = typer.Option("1,1,1", help="Normalisation std for torchscript/onnx inputs."),
    pad: float = typer.Option(0.5, help="Context border for OpenCV cascades, as a fraction of the image side."),
    thumbnails: bool = typer.Option(True, "--thumbnails/--no-thumbnails", help="Gallery of worst-missed faces (turn off for private data)."),
    shard: str = typer.Option("0/1", help="K/N: only predict the K-th of N shards; merge with `debias report merge`."),
    fail_on: Optional[str] = typer.Option(None, help="Exit with code 3 when e.g. 'detection_rate_gap>0.05' holds "
                                          "for a group's lower 95% bound (bounds from 0 to 1; code 4 when no group "
                                          "has --min-n faces, so nothing could be judged)."),
    allow_code: bool = typer.Option(False, "--allow-code", help="Let a --recipe name python: models (they run code)."),
    iou: Optional[float] = typer.Option(None, help="Box-level audit: a face is found when a box overlaps its true box "
                                        "with at least this IoU (0.5 is the usual). Needs box_x/y/w/h in the manifest "
                                        "and detector specs (opencv:, skimage:, dlib:hog, mtcnn, sliding:RUN)."),
    fppi: float = typer.Option(0.1, help="Box-level audit: operating point, in false positives per image."),
    scores: str = typer.Option("auto", help="What torchscript/onnx/python models and --predictions scores are: "
                               "prob, logit, or auto (per model: probabilities if every value lies in [0, 1], logits "
                               "if fewer than 95% do, refused as ambiguous in between)."),
    discover: int = typer.Option(0, "--discover", metavar="K", help="Also cut the audited faces into K slices "
                                 "without group labels, in a generative latent of the training faces, and score each "
                                 "face's rarity among them: slices.csv, rarity.csv and a report section. 0: off."),
    latent_run: Optional[Path] = typer.Option(None, "--latent-run", help="With --discover: the DB-VAE run whose latent "
                                              "to use (a run of --method dbvae or vae-uniform on the model's training "
                                              "faces). Default: one fitted on DATA's training faces on first use and "
                                              "cached in DATA/.debias/."),
) -> None:
    """Audit one or more face classifiers by subgroup: rates, intervals, gaps, tests and an HTML report.

    Examples:

        debias audit data/synthfaces -m run:runs/std -m run:runs/dbvae --out audit-output/compare

        debias audit data/ppb -m opencv:haar-frontal-default --by skin_group,gender --min-n 30

        debias audit data/synthfaces --predictions preds.csv --fail-on "detection_rate_gap>0.05"

        debias audit --recipe audits/ppb-sample-haar.toml

        debias audit data/scenes -m mtcnn -m dlib:hog -m sliding:runs/std --iou 0.5 --fppi 0.1

        debias audit data/synthfaces -m run:runs/std --discover 8   # where it fails, without labels
    """
    if recipe is not None:
        (data, model, predictions, out, by, split, threshold, target_fpr, reference, n_boot, min_n, seed, batch_size,
         device, size, mean, std, pad, thumbnails, shard, fail_on, iou, fppi, allow_missing, discover,
         latent_run) = _audit_recipe(ctx, recipe, dict(locals()))
    if data is None:
        fail("give the dataset folder DATA (or a --recipe that names it).")
    if predictions is not None and not predictions.is_file():
        fail(f"predictions file {predictions} does not exist (or is not a file); give the CSV's path.")
    by = _resolve_by(by, data, predictions)
    discovery = _discovery(data, discover, latent_run, seed, iou, shard, device, min_n)
    if iou is not None:
        _box_audit(data, model, out, by=_csv(by), iou=iou, fppi=fppi, split=split, device=device, n_boot=n_boot,
                   seed=seed, thumbnails=thumbnails)
        return
    cfg = _audit_config(by, split, threshold, target_fpr, reference, n_boot, min_n, seed, batch_size, device, size,
                        pad, thumbnails, shard, scores)
    _check_fail_on_syntax(fail_on)
    mean, std = _normalisation(mean, std)
    from debias.files import removed_on_failure
    from debias.report.outputs import prepare_audit_dir

    with removed_on_failure(out):  # a failed audit leaves no empty folder it made
        prepare_audit_dir(out)  # a file, or a folder that cannot be written, fails before anything is scored
        result, world, gather = _scored_audit(data, model, cfg, out, predictions, device, mean, std, allow_missing,
                                              discovery)
    if result is None:  # a torchrun rank other than 0: its shard went to rank 0
        return
    if gather:
        console.print(f"{world} processes scored {world} shards; rank 0 gathered them")
    elif cfg.shard != (0, 1):
        console.print(f"wrote shard {shard} predictions to {out}; merge shards with `debias report merge`")
        return
    _finish_audit(result, out, fail_on)


def _resolve_by(by: str | None, data: Path, predictions: Path | None) -> str:
    """--by checked against the manifest (and a predictions file's header) before anything is scored; by
    default the columns of skin_group, pose, gender that are there, with a note on those left out."""
    import pandas as pd

    from debias.audit.predict import DEFAULT_BY, manifest_columns, resolve_by

    columns = manifest_columns(data)
    where = f"{data / 'manifest.csv'}"
    if predictions is not None and predictions.is_file():
        try:
            columns += [c for c in pd.read_csv(predictions, nrows=0).columns if c not in columns]
            where += f" or {predictions}"
        except ValueError:  # empty or not UTF-8: the predictions reader gives the clear error
            columns = []
    if not columns:  # no readable manifest (or predictions file): reading it later gives the clear error
        return by or ",".join(DEFAULT_BY)
    try:
        chosen, left_out = resolve_by(columns, None if by is None else _csv(by), where=where)
    except KeyError as e:
        fail(e.args[0])  # str() of a KeyError is its repr, quotes included
    if left_out:
        console.print(f"auditing by {', '.join(chosen)} ({where} has no {', '.join(left_out)} column; "
                      f"choose columns with --by)")
    return ",".join(chosen)


def _audit_recipe(ctx: typer.Context, recipe: Path, values: dict) -> tuple:
    """The audit's options with a recipe's values filled in; python: models from a recipe need --allow-code."""
    v = _apply_recipe(ctx, recipe, dict(values))
    from_recipe = [m for m in v["model"] if m not in values["model"] and m.startswith("python:")]
    if from_recipe and not values["allow_code"]:
        fail(f"recipe {recipe} names {', '.join(from_recipe)}, which runs Python code; read the recipe, then "
             f"pass --allow-code to run it.")
    return tuple(v[k] for k in RECIPE_KEYS)


def _discovery(data: Path, k: int, latent_run, seed: int, iou, shard: str, device: str, min_n: int):
    """--discover checked before anything is scored; None when off, else ``discover(result, progress)`` for
    run_audit."""
    from debias.audit.discover import DiscoverConfig

    latent_run = Path(latent_run) if latent_run not in (None, "") else None  # a recipe gives a string
    if not k:
        if latent_run is not None:
            fail("--latent-run is the latent of slice discovery, which --discover 0 leaves off; give --discover K "
                 "(K slices, 2 to 50) with it.")
        return None
    try:
        cfg = DiscoverConfig(k=k, seed=seed, min_n=min_n)
    except ValueError as e:
        fail(str(e))
    if iou is not None or shard != "0/1":
        fail("--discover works on whole crop audits: leave out " + ("--iou" if iou is not None else "--shard") + ".")
    if latent_run is not None and not latent_run.is_dir():
        fail(f"--latent-run {latent_run} is no folder; give the folder of a DB-VAE run (it holds model.pt).")
    if latent_run is not None and not (latent_run / "model.pt").exists() and not (latent_run / "latent").is_dir():
        fail(f"--latent-run {latent_run} holds no trained run (no model.pt); give the folder of a DB-VAE run.")
    from debias.discovery import check_fittable, discover_in_audit, training_source

    try:
        if (data / "manifest.csv").exists() and latent_run is not None:
            training_source(data, latent_run)
        elif (data / "manifest.csv").exists():
            check_fittable(data)
    except ValueError as e:
        fail(str(e))

    def run(result, progress=None):
        return discover_in_audit(result.predictions, result.summary["thresholds"], data, cfg, latent_run=latent_run,
                                 device=device, progress=progress, log=lambda s: console.print(s, highlight=False))
    return run


def _scored_audit(data, model, cfg, out, predictions, device, mean, std, allow_missing=False, discovery=None):
    """run_audit under a progress bar; under torchrun every rank scores a shard and rank 0 gathers them and runs
    the statistics. Returns (result, world size, gathered); result is None on ranks other than 0."""
    import dataclasses

    from debias.data.manifest import ManifestError
    from debias.models.run import distributed, resolve_device
    from debias.report.outputs import run_audit

    try:
        with distributed(device) as (rank, world, dev), \
                (progress_bar("scoring", None) if rank == 0 and (predictions is None or discovery is not None)
                 else contextlib.nullcontext()) as advance:
            gather = world > 1 and predictions is None
            if gather:
                cfg = dataclasses.replace(cfg, shard=(rank, world))
            discover = None if discovery is None else (lambda result: discovery(result, advance))
            return run_audit(data, model, cfg, out, predictions_csv=predictions, progress=advance,
                             torch_device=str(resolve_device(dev)), mean=mean,
                             std=std, gather=gather, allow_missing=allow_missing, discover=discover), world, gather
    except (ManifestError, KeyError, ValueError, FileNotFoundError, ImportError, RuntimeError) as e:
        fail(str(e).strip('"'))


def _box_audit(data, models, out, *, by, iou, fppi, split, device, n_boot, seed, thumbnails) -> None:
    from debias.audit.boxes import run_box_audit
    from debias.models.run import resolve_device
    from debias.report.boxes import verdicts, write_box_outputs
    from debias.report.outputs import image_reader

    if not models:
        fail("a box-level audit (--iou) needs at least one detector: -m mtcnn, -m dlib:hog, -m opencv:haar-frontal-"
             "default, -m skimage:lbp-frontal or -m sliding:RUN_DIR.")
    from debias.report.outputs import prepare_audit_dir

    prepare_audit_dir(out)  # a file, or a folder that cannot be written, fails before any image is read
    try:
        with progress_bar("detecting", None) as advance:  # run_box_audit sets the total once it has read the data
            result = run_box_audit(data, models, by=by, iou=iou, fppi=fppi, split=split,
                                   device=str(resolve_device(device)), n_boot=min(n_boot, 500), seed=seed,
                                   progress=advance)
    except KeyError as e:  # a --by column the faces lack; str() of a KeyError is its quoted repr
        fail(e.args[0])
    except (ValueError, FileNotFoundError, ImportError, RuntimeError) as e:
        fail(str(e).strip('"'))
    path = write_box_outputs(result, out, images=image_reader(data) if thumbnails else None)
    for line in verdicts(result):
        console.print(line)
    console.print(f"report: {path}")


@report_app.command("compare")
def report_compare(
    dirs: List[Path] = typer.Argument(..., help="Audit folders (each with predictions.csv) of the same test set."),
    out: Path = typer.Option(Path("compare-output"), "--out", "-o", help="Output folder."),
    by: str = typer.Option("skin_group,pose,gender", help=BY_HELP),
    target_fpr: Optional[float] = typer.Option(None, help="Choose each model's threshold again, for this overall "
                                               "FPR; default: the threshold each audit used."),
    threshold: Optional[float] = typer.Option(None, help="One fixed threshold for every model instead."),
    n_boot: int = typer.Option(1000, help="Bootstrap resamples."),
    min_n: int = typer.Option(30, help="Minimum faces per judged cell."),
    seed: int = typer.Option(0, help="Bootstrap seed."),
    fail_on: Optional[str] = typer.Option(None, help="Gate, as for `debias audit`."),
) -> None:
    """Side-by-side report of several audits (for example before and after debiasing), with paired tests. Each
    model keeps the threshold its audit used, unless --threshold or --target-fpr asks for another.

    Example:

        debias report compare audit-output/standard audit-output/dbvae --out audit-output/compare
    """
    from debias.audit.engine import audit_table, compare_audits
    from debias.report.outputs import prepare_audit_dir, write_outputs

    cfg = _audit_config(by, "test", threshold, 0.01 if target_fpr is None else target_fpr, "largest", n_boot, min_n,
                        seed, 256, "cpu", 64, 0.5, False)
    _check_fail_on_syntax(fail_on)
    try:
        pred = compare_audits(dirs)
        prepare_audit_dir(out)
        kept = pred.attrs["thresholds"] if threshold is None and target_fpr is None else None
        result = audit_table(pred, cfg, thresholds=kept)
    except (KeyError, ValueError, FileNotFoundError) as e:
        fail(str(e).strip('"'))
    write_outputs(result, out, cfg, title="Face detection fairness: comparison")
    _finish_audit(result, out, fail_on)


@report_app.command("merge")
def report_merge(
    dirs: List[Path] = typer.Argument(..., help="Shard folders written by `debias audit --shard K/N`."),
    out: Path = typer.Option(Path("audit-output"), "--out", "-o", help="Output folder."),
    by: str = typer.Option("skin_group,pose,gender", help=BY_HELP),
    target_fpr: float = typer.Option(0.01, help="Overall FPR for the shared threshold."),
    threshold: Optional[float] = typer.Option(None, help="Fixed threshold instead of --target-fpr."),
    n_boot: int = typer.Option(1000, help="Bootstrap resamples."),
    min_n: int = typer.Option(30, help="Minimum faces per judged cell."),
    seed: int = typer.Option(0, help="Bootstrap seed."),
) -> None:
    """Merge sharded predictions and run the statistics on the whole table.

    Example:

        for k in 0 1 2 3; do debias audit data -m run:r --shard $k/4 --out shards/$k; done

        debias report merge shards/* --out audit
    """
    from debias.audit.engine import audit_table, merge_predictions
    from debias.report.outputs import prepare_audit_dir, write_outputs

    cfg = _audit_config(by, "test", threshold, target_fpr, "largest", n_boot, min_n, seed, 256, "cpu", 64, 0.5, False)
    try:
        pred, skipped, files = merge_predictions(dirs)
        prepare_audit_dir(out)
        result = audit_table(pred, cfg)
    except (KeyError, ValueError, FileNotFoundError) as e:
        fail(str(e).strip('"'))
    result.skipped = skipped
    write_outputs(result, out, cfg, model_files=files)
    _finish_audit(result, out, None)


@app.command("generate")
def generate(
    data: Path = typer.Argument(..., help="Dataset folder whose training faces (label 1, split train) the generator "
                                "learns from; its val and test faces are held out to measure quality."),
    out: Path = typer.Option(..., "--out", "-o", help="New dataset folder for the generated faces."),
    generator: str = typer.Option("dcgan", help="dcgan (trained here on the training faces, 64 x 64) | decoder (a "
                                  "DB-VAE's own decoder; needs --latent-run)."),
    latent_run: str = typer.Option("", "--latent-run", help="A DB-VAE run folder (a default `debias train` run: its "
                                   "latent/ is used). Generated faces are drawn more often where its latent finds "
                                   "training faces rare, and quality is measured on its latent means. Without it the "
                                   "DCGAN's faces are drawn uniformly and quality uses a pixel PCA."),
    n: int = typer.Option(2000, help="Faces to generate."),
    epochs: int = typer.Option(25, help="DCGAN training epochs."),
    width: int = typer.Option(32, help="DCGAN base width: channels of its 32 x 32 layers (the others have 2, 4 and 8 "
                              "times as many)."),
    pool: int = typer.Option(4, help="With --latent-run: draw the faces from pool x n generated ones, by rarity."),
    max_train: int = typer.Option(0, help="Train on at most this many training faces (0 = all)."),
    seed: int = typer.Option(0, help="Seed for the generator, the drawing and the quality subsets."),
    device: str = typer.Option("auto", help="auto | cpu | cuda."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a dataset already in --out."),
) -> None:
    """Generate new training faces with a DCGAN or a DB-VAE's decoder, drawn toward the rare regions of a DB-VAE's
    latent, and measure their quality against held-out real faces.

    Writes --out/manifest.csv (split train, label 1, `generated` true, `source`), images.npy, config.json,
    quality.json (precision, recall, density and coverage, Naeem et al. 2020, and the cross-validated AUC of a
    real-versus-generated probe: 0.5 = indistinguishable) and gallery.png. Add the faces to training with
    `debias train DATA --extra GEN --extra-share 0.25`. An audit refuses generated faces.

    Examples:

        debias generate data/synthfaces --out data/gen --latent-run runs/dbvae

        debias generate data/synthfaces --out data/gen-decoder --generator decoder --latent-run runs/dbvae

        debias train data/synthfaces --method standard --extra data/gen --extra-share 0.25 --out runs/std-gen
    """
    from debias.config import GenerateConfig
    from debias.generative import generate as run_generate

    try:
        cfg = GenerateConfig(generator=generator, latent_run=latent_run, n=n, epochs=epochs, width=width, pool=pool,
                             max_train=max_train, seed=seed, device=device)
    except ValueError as e:
        fail(str(e))
    with progress_bar("generating", None) as advance:
        result = run_generate(data, cfg, out, overwrite=overwrite, progress=advance,
                              log=lambda m: console.print(as_flags(m)))
    q = result.quality
    console.print(f"quality on the {q['embedding']} ({q['n_real']} held-out real and {q['n_generated']} generated "
                  f"faces, k={q['k']}): precision {q['precision']:.3f}, recall {q['recall']:.3f}, density "
                  f"{q['density']:.3f}, coverage {q['coverage']:.3f}; real-vs-generated probe AUC {q['probe_auc']:.3f}"
                  + (f"; {q['rare_share']:.0%} of the faces in the rarest {q['rare_share_train']:.0%} of latent "
                     f"regions" if "rare_share" in q else ""), highlight=False)
    console.print(f"wrote {len(result.manifest)} faces to {out} (manifest.csv, images.npy, quality.json, gallery.png)")


@app.command("latent")
def latent(
    run: Path = typer.Argument(..., help="Run folder of a DB-VAE (--method dbvae or vae-uniform)."),
    data: Path = typer.Argument(..., help="The dataset it was trained on."),
    out: Path = typer.Option(Path("latent-output"), "--out", "-o", help="Output folder for PNGs and CSVs."),
    seed: int = typer.Option(0, help="Seed for prior samples."),
) -> None:
    """What a DB-VAE learned: its active units, which labelled attributes it encodes, the sampling mass its weights
    give each labelled group; traversals, prior samples, rare and common faces, latent-attribute correlations.

    Example:

        debias latent runs/dbvae data/synthfaces --out latent
    """
    from debias.data.manifest import ManifestError
    from debias.latent import analyze, write_figures

    try:
        a = analyze(run, data, random_state=seed)
        paths = write_figures(a, out)
    except (ManifestError, ValueError, FileNotFoundError) as e:
        fail(str(e))
    _print_latent(a)
    console.print("wrote " + ", ".join(str(p) for p in paths.values()))


def _print_latent(a) -> None:
    """The latent analysis's tables: active units, what the latent encodes, the sampling mass per labelled group."""
    import pandas as pd
    from rich.table import Table

    from debias.latent import ACTIVE_KL

    console.print(f"[bold]active units[/]: {int(a.units.active.sum())} of {len(a.units)} latent dimensions (mean KL of "
                  f"q(z|x) from N(0, 1) over the training faces above {ACTIVE_KL:g} nats; per dimension in "
                  "latent_units.csv)", highlight=False)
    if not a.encoding.empty:
        t = Table(title="which labelled attributes the latent encodes (Spearman rho over the training faces)",
                  title_justify="left")
        for c in ("attribute", "max |rho|", "dim", "active", "max |rho|, active dims", "dim"):
            t.add_column(c, justify="left" if c == "attribute" else "right")

        def num(x, fmt: str) -> str:
            return "-" if pd.isna(x) else format(x, fmt)

        for attr, r in a.encoding.iterrows():
            t.add_row(attr, num(r.abs_rho, ".2f"), num(r.dim, "d"), "yes" if r.dim_active else "no",
                      num(r.abs_rho_active, ".2f"), num(r.dim_of_active, "d"))
        console.print(t)
    if not a.shares.empty:
        t = Table(title="sampling mass per labelled group (labels read for this table only; sampling never sees "
                  "them)", title_justify="left")
        for c in ("attribute", "group", "uniform", "debiased", "debiased / uniform"):
            t.add_column(c, justify="left" if c in ("attribute", "group") else "right")
        for r in a.shares.itertuples():
            t.add_row(r.attribute, r.group, f"{r.uniform:.1%}", f"{r.debiased:.1%}", f"{r.debiased / r.uniform:.2f}")
        console.print(t)
    for note in a.notes:
        console.print(as_flags(note), highlight=False, markup=False)


@app.command("demo")
def demo(
    out: Path = typer.Option(Path("demo-output"), "--out", "-o", help="Output folder."),
    quick: bool = typer.Option(False, "--quick", help="A smaller set (4,000 training images, 40 test faces a cell); the "
                               "DB-VAE still reads its latent after about 20,000 training images."),
    seed: int = typer.Option(0, help="Seed for data, training and bootstrap."),
    epochs: int = typer.Option(0, help="Epochs per model (0 = 6, the debiasing benchmark's short budget, quick or not)."),
    compile: bool = typer.Option(True, "--compile/--no-compile", help="torch.compile the training step."),
    device: str = typer.Option("auto", help="auto | cpu | cuda."),
    oracle: bool = typer.Option(False, "--oracle", help="Also train the labelled group-balanced reference "
                                "(`--method balanced`)."),
) -> None:
    """The main job on the embedded data: train standard and the default DB-VAE; audit; compare.

    Writes demo-output/report.html (plus metrics.csv, disparities.csv, paired.csv, summary.json,
    runs/, latent/ and data/).

    Examples:

        debias demo

        debias demo --quick --out /tmp/demo
    """
    from debias.demo import DemoConfig, run_demo

    try:  # DemoConfig checks every model's options before any data is rendered
        cfg = DemoConfig(quick=quick, seed=seed, epochs=epochs, compile=compile, device=device,
                         methods=("standard", "dbvae", "balanced") if oracle else ("standard", "dbvae"))
    except ValueError as e:
        fail(str(e))
    with progress_bar("demo", None) as advance:
        result, timings = run_demo(out, cfg, progress=advance, log=lambda m: console.print(as_flags(m)))
    from debias.report.text import headline, verdicts

    console.print("[bold]Verdict[/]")
    for line in verdicts(result.paired):
        console.print(f"  {line}", highlight=False, markup=False)
    console.print(f"details: {len(headline(result))} findings in {out}/report.html")
    console.print(f"wrote {out}/report.html in {timings['total_s']:.0f}s")


def main() -> None:  # pragma: no cover
    app()
