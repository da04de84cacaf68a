"""Importers: one module per source, each turning a source layout into the manifest format.

Every importer has the same contract: ``run(src, out, **options) -> ImportResult``, writing
``out/manifest.csv`` (image paths relative to ``out``) and ``out/import_report.csv`` (problems found:
files without labels, labels without files, malformed names). ``debias data pack`` (or ``--pack``)
then decodes the images into ``out/images.npy``.
"""
from __future__ import annotations

from debias.data.importers._common import ImportResult

FORMATS = ("celeba", "mit-h5", "ppb", "fairface", "utkface", "folder", "skimage-lfw")


def get(fmt: str):
    """The importer module for a format name."""
    import importlib

    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}.")
    return importlib.import_module(f"debias.data.importers.{fmt.replace('-', '_')}")


__all__ = ["FORMATS", "get", "ImportResult"]
