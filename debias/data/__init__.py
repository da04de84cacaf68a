"""Datasets: the manifest format, the synthetic benchmark, importers, packing and skin-tone estimation."""
from debias.data.manifest import (ManifestDataset, ManifestError, read_manifest, select_split,
                                  to_tensor)

__all__ = ["ManifestDataset", "ManifestError", "read_manifest", "select_split", "to_tensor"]
