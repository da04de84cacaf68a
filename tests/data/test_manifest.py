from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from debias.data.manifest import ManifestDataset, ManifestError, read_manifest


def _folder(tmp_path, rows):
    for r in rows:
        if isinstance(r.get("image"), str) and not r.pop("_missing", False):
            Image.fromarray(np.full((20, 30, 3), 100, np.uint8)).save(tmp_path / r["image"])
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.csv", index=False)
    return tmp_path


def test_file_dataset_reads_and_resizes(tmp_path):
    root = _folder(tmp_path, [{"image": "a.png", "label": 1, "split": "test", "skin_group": "darker"},
                              {"image": "b.png", "label": 0, "split": "test"}])
    ds = ManifestDataset(root, "test", size=32)
    x, y = ds[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert float(x.max()) == pytest.approx(100 / 255, abs=1e-6) and y.item() == 1.0


def test_packed_dataset(tiny_synth):
    ds = ManifestDataset(tiny_synth, "val")
    x, y = ds[3]
    arr = np.load(tiny_synth / "images.npy")
    assert torch.equal((x * 255).round().byte().permute(1, 2, 0), torch.from_numpy(arr[ds.frame.image[3]]))


@pytest.mark.parametrize("rows,match", [
    ([{"image": "a.png", "split": "test"}], "no column 'label'"),
    ([{"image": "a.png", "label": 1, "split": "test"}, {"image": "b.png", "label": 2, "split": "test"}],
     "line 3: label 2 is not 0 or 1"),
    ([{"image": "a.png", "label": "face", "split": "test"}], "label 'face' is not 0 or 1"),
    ([{"image": "a.png", "label": 1, "split": "holdout"}], "split 'holdout' is not one of"),
    ([{"image": "a.png", "label": 1, "split": "test"}, {"image": "gone.png", "label": 1, "split": "test",
                                                         "_missing": True}], "line 3: image file 'gone.png'"),
])
def test_manifest_validation_names_the_problem(tmp_path, rows, match):
    root = _folder(tmp_path, rows)
    with pytest.raises(ManifestError, match=match):
        read_manifest(root)


def test_missing_manifest_says_how_to_make_one(tmp_path):
    with pytest.raises(ManifestError, match="debias data synth"):
        read_manifest(tmp_path)


def test_packed_index_out_of_range(tiny_synth, tmp_path):
    import shutil

    shutil.copy(tiny_synth / "images.npy", tmp_path / "images.npy")
    m = pd.read_csv(tiny_synth / "manifest.csv")
    m.loc[5, "image"] = 10**6
    m.to_csv(tmp_path / "manifest.csv", index=False)
    with pytest.raises(ManifestError, match="line 7: image index 1000000 is outside"):
        read_manifest(tmp_path)


def test_duplicate_image_rows_are_rejected_with_their_line_numbers(tmp_path):
    rows = [{"image": f"{i}.png", "label": 1, "split": "test"} for i in range(3)]
    root = _folder(tmp_path, rows + [dict(rows[1])])
    with pytest.raises(ManifestError, match=r"image '1.png' appears more than once \(lines 3, 5\)"):
        read_manifest(root)


@pytest.mark.parametrize("content,match", [
    (b"", "has no rows \\(the file is empty\\)"),
    (b"image,label,split\n", "has no rows \\(only a header\\)"),
    (b"image,label,split\na.png,1,test\ncaf\xe9.png,1,test\n", "not UTF-8 text \\(line 3: byte 0xe9\\)"),
    (b"image;label;split\na.png;1;test\n", "separated by ';', not commas.*save it as comma-separated"),
    (b"image\tlabel\tsplit\na.png\t1\ttest\n", "separated by '\\\\t', not commas"),
])
def test_empty_header_only_and_non_utf8_manifests(tmp_path, content, match):
    (tmp_path / "manifest.csv").write_bytes(content)
    with pytest.raises(ManifestError, match=match):
        read_manifest(tmp_path, check_files=False)


def test_packed_images_read_the_rows_numpy_reads(tmp_path):
    import pickle

    from debias.data.manifest import PackedImages, read_rows

    arr = np.random.default_rng(0).integers(0, 256, (50, 4, 5, 3), dtype=np.uint8)
    np.save(tmp_path / "images.npy", arr)
    p = PackedImages(tmp_path / "images.npy")
    assert p.shape == arr.shape and len(p) == 50
    for rows in ([3, 4, 5, 6], [7, 2, 9, 2, 49, 0, 8], [], list(range(50))[::-1], [10]):
        want = np.load(tmp_path / "images.npy")[np.array(rows, dtype=int)]
        got = read_rows(p, np.array(rows, dtype=int))
        assert got.shape == want.shape and np.array_equal(got, want), rows
        assert np.array_equal(read_rows(np.load(tmp_path / "images.npy", mmap_mode="r"), np.array(rows, dtype=int)),
                              want)
    assert np.array_equal(p[17], arr[17])
    assert np.array_equal(pickle.loads(pickle.dumps(p)).rows(np.array([1, 2])), arr[[1, 2]])  # workers reopen
    with pytest.raises(IndexError, match="row 50 is outside"):
        p.rows(np.array([0, 50]))


def test_packed_images_say_so_when_the_file_is_truncated(tmp_path):
    from debias.data.manifest import ManifestError, PackedImages

    np.save(tmp_path / "images.npy", np.zeros((10, 4, 4, 3), np.uint8))
    data = (tmp_path / "images.npy").read_bytes()
    (tmp_path / "images.npy").write_bytes(data[:-100])  # the header still says 10 images
    with pytest.raises(ManifestError, match="truncated"):
        PackedImages(tmp_path / "images.npy").rows(np.arange(10))


def test_device_data_path_converts_uint8_as_numpy_does():
    """The GPU path sends uint8 and converts on the device; the CPU path converts first. Both must give
    numpy's own (B, 3, H, W) float32 x / 255, bit for bit (the conversion the GPU runs is run here on the CPU)."""
    import torch

    from debias.data.manifest import host_batch, on_device, to_tensor

    b = np.random.default_rng(0).integers(0, 256, (3, 5, 4, 3), dtype=np.uint8)
    want = b.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255)
    cpu = torch.device("cpu")
    for x in (to_tensor(b), on_device(host_batch(b, cpu), cpu), on_device(torch.from_numpy(b), cpu)):
        assert x.dtype == torch.float32 and x.shape == (3, 3, 5, 4)
        assert np.array_equal(x.numpy(), want)


def test_prefetch_keeps_order_and_loads_each_batch_once():
    from debias.data.manifest import prefetch

    calls = []

    def load(b):
        calls.append(b)
        return b * 10

    for workers in (0, 1, 3):
        calls.clear()
        assert list(prefetch(range(7), load, workers)) == [0, 10, 20, 30, 40, 50, 60]
        assert sorted(calls) == list(range(7))


def test_a_group_spelled_two_ways_is_an_error_not_two_groups(tmp_path):
    """'Darker', 'darker ' and 'darker' were three groups, each audited on its own share of the faces."""
    rows = [{"image": f"{i}.png", "label": 1, "split": "test", "skin_group": g}
            for i, g in enumerate(["darker", "Darker", "lighter", "darker ", "lighter"])]
    rows.insert(0, {"image": "n.png", "label": 0, "split": "test"})  # a non-face: no skin group, one line more
    root = _folder(tmp_path, rows)
    with pytest.raises(ManifestError, match=r"column 'skin_group' spells one group several ways: 'Darker' \(line 4\), "
                                            r"'darker' \(line 3\), 'darker ' \(line 6\)"):
        read_manifest(root)
    (tmp_path / "ok").mkdir()
    fixed = _folder(tmp_path / "ok", [{**r, "skin_group": r["skin_group"].strip().lower()} for r in rows[1:]])
    assert sorted(read_manifest(fixed).skin_group.unique()) == ["darker", "lighter"]


def test_folder_import_refuses_a_group_spelled_two_ways(tmp_path):
    from PIL import Image

    from debias.data import importers

    for n in ("a", "b"):
        (tmp_path / "f").mkdir(exist_ok=True)
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "f" / f"{n}.png")
    pd.DataFrame({"path": ["a.png", "b.png"], "gender": ["female", "Female"]}).to_csv(tmp_path / "a.csv", index=False)
    with pytest.raises(ManifestError, match="column 'gender' spells one group several ways"):
        importers.get("folder").run(None, tmp_path / "o", faces=[tmp_path / "f"], csv=tmp_path / "a.csv")
    assert not (tmp_path / "o" / "manifest.csv").exists()


def test_a_column_named_twice_is_refused_in_every_csv_read(tmp_path):
    """pandas renamed the second 'label' to 'label.1', which every reader ignored, so the first silently won."""
    from debias.data.manifest import read_csv_checked

    (tmp_path / "manifest.csv").write_text("image,label,split,label\na.png,1,test,0\n")
    with pytest.raises(ManifestError, match=r"two columns named 'label' \(columns 2 and 4 of its header\)"):
        read_manifest(tmp_path, check_files=False)
    (tmp_path / "p.csv").write_text("image, score,score\n1,0.2,0.9\n")
    with pytest.raises(ManifestError, match="two columns named 'score'"):
        read_csv_checked(tmp_path / "p.csv", "{path}{detail}", "{path}{line}{reason}")


def test_a_folder_given_as_a_csv_is_named(tmp_path):
    from debias.data.manifest import read_csv_checked

    with pytest.raises(ManifestError, match="is a folder, not a CSV file"):
        read_csv_checked(tmp_path, "{path}{detail}", "{path}{line}{reason}")
