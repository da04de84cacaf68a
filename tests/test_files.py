"""Output folders: the lock that keeps two writers apart."""
from __future__ import annotations

import pytest

from debias.errors import DebiasError
from debias.files import exclusive


def test_a_refused_writer_leaves_the_holders_lock_in_place(tmp_path):
    """A refused second writer removed the first one's .lock on its way out, so a third writer got the lock while
    the first still held it, and two trained into one folder at once."""
    with exclusive(tmp_path, "training run"):
        for _ in range(2):  # the second writer, then a third
            with pytest.raises(DebiasError, match="another process is writing a training run"):
                with exclusive(tmp_path, "training run"):
                    pass
            assert (tmp_path / ".lock").exists()
    assert not (tmp_path / ".lock").exists()  # the holder removes its own lock
    with exclusive(tmp_path, "training run"):  # and the folder can be locked again
        pass


def test_overwriting_a_dataset_removes_every_file_it_wrote_the_covariate_cache_too(tmp_path):
    from debias.files import prepare_dataset_dir

    for f in ("manifest.csv", "images.npy", "config.json", "covariates.npz", "quality.json", "notes.txt"):
        (tmp_path / f).write_text("old")
    prepare_dataset_dir(tmp_path, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # a file no dataset writes is left alone
