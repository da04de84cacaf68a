"""Importers: one module per source, each turning a source layout into the manifest format.

Every importer has the same contract: ``run(src, out, **options) -> ImportResult``, writing
``out/manifest.csv`` (image paths relative to ``out``) and ``out/import_report.csv`` (problems found:
files without labels, labels without files, malformed names). ``debias data pack`` (or ``--pack``)
then decodes the images into ``out/images.npy``.
"""
from __future__ import annotations

from debias.data.importers._common import ImportResult

FORMATS = ("celeba", "mit-h5", "ppb", "fairface", "utkface", "folder", "skimage-lfw")
NO_SRC_NEEDED = ("folder", "skimage-lfw")  # folder takes `faces` / `non_faces`; skimage-lfw ships its images


def get(fmt: str):
    """The importer module for a format name."""
    import importlib

    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}.")
    return importlib.import_module(f"debias.data.importers.{fmt.replace('-', '_')}")


def run(fmt: str, src, out, *, overwrite: bool = False, **options) -> ImportResult:
    """Import ``src`` in format ``fmt`` into the new dataset folder ``out`` (refused if it holds a dataset,
    unless ``overwrite``). An option the format does not take is an error, never silently ignored
    (``split`` given to celeba, whose split comes from its own partition file, say)."""
    import inspect

    from debias.files import exclusive, prepare_dataset_dir

    mod = get(fmt)
    params = inspect.signature(mod.run).parameters
    unknown = [k for k in options if k not in params]
    if unknown:
        takes = [f"`{k}`" for k in params if k not in ("src", "out")]
        raise ValueError(f"{fmt} does not take {', '.join(f'`{k}`' for k in unknown)}; it takes "
                         f"{', '.join(takes) if takes else 'no options'}.")
    if src is None and fmt not in NO_SRC_NEEDED:
        raise ValueError(f"{fmt} needs a SRC argument: the folder or file to import.")
    prepare_dataset_dir(out, overwrite=overwrite)
    with exclusive(out, "dataset"):
        return mod.run(src, out, **options)


__all__ = ["FORMATS", "get", "run", "ImportResult"]
