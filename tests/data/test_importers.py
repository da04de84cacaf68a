"""Each importer runs over a tiny fake copy of its source layout, written here (torchvision's pattern)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from debias.cli import app
from debias.data import importers
from debias.data.manifest import ManifestDataset, read_manifest
from debias.data.pack import pack


def _img(path, size=(30, 40), value=120):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(path)


def _corrupt(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")


def test_celeba(tmp_path):
    src = tmp_path / "celeba"
    for f in ("000001.jpg", "000002.jpg", "000003.jpg"):
        _img(src / "img_align_celeba" / f)
    _corrupt(src / "img_align_celeba" / "000004.jpg")
    names = "5_o_Clock_Shadow Male Pale_Skin Young Eyeglasses"
    (src / "list_attr_celeba.txt").write_text(
        f"4\n{names}\n000001.jpg -1 1 -1 1 -1\n000002.jpg 1 -1 1 1 -1\n000003.jpg -1 1 -1 -1 1\n"
        "000004.jpg -1 -1 -1 1 -1\n")
    (src / "list_eval_partition.txt").write_text("000001.jpg 0\n000002.jpg 1\n000003.jpg 2\n000004.jpg 0\n")
    res = importers.get("celeba").run(tmp_path, tmp_path / "out")
    m = res.manifest.set_index(res.manifest.image.str[-10:])
    assert m.loc["000001.jpg", "gender"] == "male" and m.loc["000002.jpg", "gender"] == "female"
    assert m.loc["000002.jpg", "pale_skin"] == 1 and "skin_tone" not in m.columns  # Pale_Skin is not a tone
    # the corrupt 000004.jpg is left out at import (its header does not decode) and listed in the report
    assert m.split.tolist() == ["train", "val", "test"] and (m.label == 1).all()
    packed = pack(tmp_path / "out", size=16, workers=2)
    assert len(packed) == 3 and np.load(tmp_path / "out" / "images.npy").shape == (3, 16, 16, 3)
    rep = pd.read_csv(tmp_path / "out" / "import_report.csv")
    assert rep.item.str.contains("000004.jpg").any() and rep.problem.str.contains("not a readable image").any()
    ds = ManifestDataset(tmp_path / "out", "train")
    assert len(ds) == 1 and ds[0][0].shape == (3, 16, 16)


def test_celeba_missing_file_says_what_is_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="list_attr_celeba.txt not found.*datasets/celeba/README.md"):
        importers.get("celeba").run(tmp_path, tmp_path / "out")


def test_mit_h5_keeps_labels_and_converts_bgr(tmp_path):
    h5py = pytest.importorskip("h5py")
    imgs = np.zeros((6, 64, 64, 3), np.uint8)
    imgs[..., 0] = 200  # blue in BGR
    with h5py.File(tmp_path / "train_face.h5", "w") as f:
        f["images"] = imgs
        f["labels"] = np.array([[1], [0], [1], [0], [1], [1]], np.float32)
    res = importers.get("mit-h5").run(tmp_path / "train_face.h5", tmp_path / "out", val_fraction=0.0)
    assert res.manifest.label.tolist() == [1, 0, 1, 0, 1, 1]
    arr = np.load(tmp_path / "out" / "images.npy")
    assert arr[0, 0, 0].tolist() == [0, 0, 200]  # now RGB: blue last
    read_manifest(tmp_path / "out")
    with h5py.File(tmp_path / "rgba.h5", "w") as f:  # four channels: refused, not imported as if RGB
        f["images"] = np.zeros((2, 64, 64, 4), np.uint8)
        f["labels"] = np.array([1, 0])
    with pytest.raises(ValueError, match=r"rgba.h5: images has shape \(2, 64, 64, 4\); expected N x H x W x 3"):
        importers.get("mit-h5").run(tmp_path / "rgba.h5", tmp_path / "out2", val_fraction=0.0)


def test_ppb_maps_fitzpatrick(tmp_path):
    src = tmp_path / "ppb"
    for f in ("a.jpg", "b.jpg", "c.jpg"):
        _img(src / f)
    pd.DataFrame({"id": [1, 2, 3, 4], "filename": ["a.jpg", "b.jpg", "c.jpg", "missing.jpg"],
                  "gender": ["Female", "Male", "Male", "Female"], "numeric": [1, 4, "VI", 2]}).to_csv(
        src / "PPB-2017-metadata.csv", index=False)
    res = importers.get("ppb").run(src, tmp_path / "out")
    m = res.manifest
    assert m.skin_tone.tolist() == ["I", "IV", "VI"] and m.skin_group.tolist() == ["lighter", "darker", "darker"]
    assert m.gender.tolist() == ["female", "male", "male"]
    assert "missing.jpg" in res.report.item.tolist()


def test_ppb_metadata_without_a_column(tmp_path):
    src = tmp_path / "ppb"
    _img(src / "a.jpg")
    pd.DataFrame({"filename": ["a.jpg"], "gender": ["Female"]}).to_csv(src / "meta.csv", index=False)
    with pytest.raises(KeyError, match="Fitzpatrick type column.*columns: filename, gender"):
        importers.get("ppb").run(src, tmp_path / "out", csv=src / "meta.csv")


def test_fairface_keeps_race_separate(tmp_path):
    src = tmp_path / "ff"
    _img(src / "train" / "1.jpg")
    _img(src / "val" / "1.jpg")
    pd.DataFrame({"file": ["train/1.jpg", "train/2.jpg"], "age": ["20-29", "3-9"], "gender": ["Male", "Female"],
                  "race": ["Black", "White"], "service_test": [True, False]}).to_csv(src / "fairface_label_train.csv", index=False)
    pd.DataFrame({"file": ["val/1.jpg"], "age": ["50-59"], "gender": ["Female"], "race": ["East Asian"]}).to_csv(
        src / "fairface_label_val.csv", index=False)
    res = importers.get("fairface").run(src, tmp_path / "out")
    m = res.manifest
    assert m.race.tolist() == ["Black", "East Asian"] and "skin_tone" not in m and "skin_group" not in m
    assert m.split.tolist() == ["train", "test"]
    assert res.report.item.tolist() == ["train/2.jpg"]


def test_utkface_parses_names_and_reports_malformed(tmp_path):
    src = tmp_path / "utk"
    _img(src / "25_0_1_20170116174525125.jpg")
    _img(src / "61_1_3_20170109150557335.jpg.chip.jpg")
    _img(src / "holiday_photo.jpg")
    _img(src / "39_1_20170116174525125.jpg")  # race missing
    res = importers.get("utkface").run(src, tmp_path / "out")
    m = res.manifest.sort_values("age")
    assert m.age.tolist() == [25, 61] and m.gender.tolist() == ["male", "female"]
    assert m.race.tolist() == ["Black", "Indian"]
    assert sorted(res.report.item) == ["39_1_20170116174525125.jpg", "holiday_photo.jpg"]


def test_folder_with_csv_label_map_and_mismatches(tmp_path):
    faces, non = tmp_path / "faces", tmp_path / "neg"
    _img(faces / "x" / "a.png")
    _img(faces / "b.png")
    _img(faces / "c.png")
    _img(non / "n1.jpg")
    pd.DataFrame({"file": ["x/a.png", "b.png", "ghost.png", "c.png"], "skin": ["darker", "lighter", "darker", None],
                  "label": [1, 1, 1, 0]}).to_csv(tmp_path / "attrs.csv", index=False)
    res = importers.get("folder").run(None, tmp_path / "out", faces=[faces], non_faces=[non], csv=tmp_path / "attrs.csv",
                                      key="file", rename={"skin": "skin_group"})
    m = read_manifest(tmp_path / "out")
    assert len(m) == 4 and "skin_group" in m.columns
    by = dict(zip(m.image.str.split("/").str[-1], m.label))
    assert by == {"a.png": 1, "b.png": 1, "c.png": 0, "n1.jpg": 0}  # the CSV's label column decides c.png
    problems = dict(zip(res.report.item.str.split("/").str[-1], res.report.problem))
    assert problems["ghost.png"] == "CSV row has no image file"
    assert problems["n1.jpg"] == "image has no row in the attribute CSV"


def test_folder_csv_missing_key_column(tmp_path):
    _img(tmp_path / "f" / "a.png")
    pd.DataFrame({"name": ["a.png"]}).to_csv(tmp_path / "a.csv", index=False)
    with pytest.raises(KeyError, match="no 'path' column.*`key`"):
        importers.get("folder").run(None, tmp_path / "o", faces=[tmp_path / "f"], csv=tmp_path / "a.csv")


def test_cli_import_ppb_sample_and_pack(tmp_path, ppb_sample):
    r = CliRunner().invoke(app, ["data", "import", "folder", "--faces", str(ppb_sample), "--csv",
                                 str(ppb_sample / "labels.csv"), "--out", str(tmp_path / "ppb"), "--pack", "--size", "32"])
    assert r.exit_code == 0, r.output
    m = read_manifest(tmp_path / "ppb")
    assert len(m) == 20 and m.groupby(["skin_group", "gender"]).size().tolist() == [5, 5, 5, 5]
    assert np.load(tmp_path / "ppb" / "images.npy").shape == (20, 32, 32, 3)


def test_folder_import_lists_unreadable_files_and_counts_only_readable_ones(tmp_path):
    from typer.testing import CliRunner

    from debias.cli import app

    faces = tmp_path / "faces"
    faces.mkdir()
    for i in range(6):
        Image.fromarray(np.full((8, 8, 3), 50, np.uint8)).save(faces / f"{i}.png")
    for i in range(3):
        (faces / f"bad{i}.jpg").write_bytes(b"\xff\xd8 truncated nonsense")
    r = CliRunner().invoke(app, ["data", "import", "folder", "--faces", str(faces), "--out", str(tmp_path / "d")])
    assert r.exit_code == 0, r.output
    assert "imported 6 images" in r.output
    rep = pd.read_csv(tmp_path / "d" / "import_report.csv")
    assert sorted(Path(p).name for p in rep["item"]) == ["bad0.jpg", "bad1.jpg", "bad2.jpg"]
    assert rep["problem"].str.contains("not a readable image").all()


def test_an_option_the_format_does_not_take_is_refused_not_ignored(tmp_path):
    from typer.testing import CliRunner

    from debias.cli import app
    from debias.data import importers

    with pytest.raises(ValueError, match="celeba does not take `split`; it takes no options"):
        importers.run("celeba", tmp_path, tmp_path / "o", split="train")
    assert not (tmp_path / "o").exists()  # refused before anything is written
    r = CliRunner().invoke(app, ["data", "import", "ppb", str(tmp_path), "--out", str(tmp_path / "o"), "--map", "a=b"])
    assert r.exit_code == 2 and "ppb does not take --map; it takes --csv, --split" in " ".join(r.output.split())
    r = CliRunner().invoke(app, ["data", "import", "utkface", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "utkface needs a SRC argument" in r.output


# ---- CSV rows are matched to images by their path, never loosely ----------------------------------

def _two_ones(tmp_path):
    """LF/1.png and LM/1.png: two images that share a bare file name."""
    faces = tmp_path / "faces"
    _img(faces / "LF" / "1.png")
    _img(faces / "LM" / "1.png")
    return faces


def _import(tmp_path, faces, rows, **kw):
    pd.DataFrame(rows).to_csv(tmp_path / "labels.csv", index=False)
    return CliRunner().invoke(app, ["data", "import", "folder", "--faces", str(faces), "--csv",
                                    str(tmp_path / "labels.csv"), "--out", str(tmp_path / "out"), *kw.get("args", [])])


def _refused(r, *needles):
    assert r.exit_code == 2, r.output
    text = " ".join(r.output.split())
    assert "Traceback" not in text
    for n in needles:
        assert n in text, (n, text)
    return text


def test_csv_paths_written_with_a_leading_dot_slash_label_their_own_images(tmp_path):
    """./LF/1.png was matched by its bare name 1.png, which LM/1.png's row also has: LF/1.png was relabelled."""
    faces = _two_ones(tmp_path)
    r = _import(tmp_path, faces, {"path": ["./LF/1.png", "./LM/1.png"], "gender": ["female", "male"]})
    assert r.exit_code == 0, r.output
    m = read_manifest(tmp_path / "out")
    assert dict(zip(m.image.str.split("/").str[-2], m.gender)) == {"LF": "female", "LM": "male"}
    assert len(pd.read_csv(tmp_path / "out" / "import_report.csv")) == 0


def test_a_csv_row_naming_a_file_name_shared_by_two_images_is_refused(tmp_path):
    """One row "1.png" labelled both LF/1.png and LM/1.png."""
    faces = _two_ones(tmp_path)
    _refused(_import(tmp_path, faces, {"path": ["1.png"], "gender": ["female"]}),
             "line 2", "'1.png'", "LF/1.png", "LM/1.png")
    assert not (tmp_path / "out" / "manifest.csv").exists()


def test_a_csv_none_of_whose_rows_names_an_image_is_refused(tmp_path):
    """Paths written in another case matched no image: the import went through, every group "(missing)", and the
    audit ran on it with exit 0."""
    faces = _two_ones(tmp_path)
    _refused(_import(tmp_path, faces, {"path": ["lf/1.PNG", "lm/1.PNG"], "gender": ["female", "male"]}),
             "none of its 2 rows names an image", "'lf/1.PNG'", "case")
    assert not (tmp_path / "out" / "manifest.csv").exists()


def test_two_csv_rows_for_one_image_are_refused(tmp_path):
    faces = _two_ones(tmp_path)
    _refused(_import(tmp_path, faces, {"path": ["LF/1.png", "LM/1.png", "./LF/1.png"], "gender": ["f", "m", "m"]}),
             "lines 2 and 4", "LF/1.png")


@pytest.mark.parametrize("column,value,needles", [
    ("label", 0.7, ["line 3", "label 0.7 is not 0 or 1"]),
    ("label", "no", ["line 3", "label 'no' is not 0 or 1"]),
    ("label", 2, ["line 3", "label 2 is not 0 or 1"]),
    ("split", "Test", ["line 3", "split 'Test' is not one of train, val, test"]),
])
def test_a_label_or_split_the_manifest_would_refuse_is_refused_at_import_naming_the_line(tmp_path, column, value,
                                                                                          needles):
    """0.7 became 0, 'no' became the folder's label, 2 was kept, and 'Test' became a split of its own."""
    faces = _two_ones(tmp_path)
    good = {"label": 1, "split": "test"}[column]
    _refused(_import(tmp_path, faces, {"path": ["LF/1.png", "LM/1.png"], column: [good, value]}),
             "labels.csv", *needles)
    assert not (tmp_path / "out" / "manifest.csv").exists()


def test_an_image_under_a_face_and_a_non_face_folder_is_refused(tmp_path):
    faces = _two_ones(tmp_path)
    r = CliRunner().invoke(app, ["data", "import", "folder", "--faces", str(faces), "--non-faces", str(faces / "LM"),
                                 "--out", str(tmp_path / "out")])
    _refused(r, "LM/1.png", "listed twice", "--faces and --non-faces")
    assert not (tmp_path / "out" / "manifest.csv").exists()


def test_every_importer_writes_only_a_manifest_that_reads_back(tmp_path):
    """The last check before manifest.csv is written: a split the manifest refuses never reaches the disk."""
    from debias.data.importers._common import write
    from debias.errors import DebiasError

    _img(tmp_path / "a.png")
    rows = pd.DataFrame({"image": [tmp_path / "a.png"], "label": [1], "split": ["Train"]})
    with pytest.raises(DebiasError, match="a.png.*split 'Train'"):
        write(tmp_path / "out", rows, [])
    assert not (tmp_path / "out" / "manifest.csv").exists()


def test_ppb_metadata_matches_by_path_and_refuses_a_name_two_images_share(tmp_path):
    """PPB matched its metadata by bare file name: of LF/1.png and LM/1.png one silently took the other's row."""
    src = _two_ones(tmp_path)
    meta = pd.DataFrame({"filename": ["./LF/1.png", "LM/1.png"], "gender": ["Female", "Male"], "numeric": [1, 5]})
    meta.to_csv(tmp_path / "meta.csv", index=False)
    m = importers.get("ppb").run(src, tmp_path / "out", csv=tmp_path / "meta.csv").manifest
    assert dict(zip(m.image.map(lambda p: Path(p).parent.name), zip(m.gender, m.skin_group))) == {
        "LF": ("female", "lighter"), "LM": ("male", "darker")}
    meta.assign(filename=["1.png", "LM/1.png"]).to_csv(tmp_path / "meta.csv", index=False)
    from debias.errors import DebiasError

    with pytest.raises(DebiasError, match=r"meta.csv, line 2: '1.png' matches 2 images \(LF/1.png, LM/1.png\)"):
        importers.get("ppb").run(src, tmp_path / "out2", csv=tmp_path / "meta.csv")


@pytest.mark.parametrize("content,needles", [
    ("path,gender,gender\nLF/1.png,female,male\n", ["two columns named 'gender'"]),
    ("path;gender\nLF/1.png;female\n", ["separated by ';', not commas"]),
    (None, ["is a folder, not a CSV file"]),
])
def test_a_labels_csv_that_cannot_be_read_as_meant_is_named(tmp_path, content, needles):
    """A labels CSV with a column twice was read with the second renamed and ignored; a ;-separated one failed as
    'no path column'; --csv naming a folder gave an IsADirectoryError traceback."""
    faces = _two_ones(tmp_path)
    csv = tmp_path / "labels.csv"
    if content is None:
        csv.mkdir()
    else:
        csv.write_text(content)
    r = CliRunner().invoke(app, ["data", "import", "folder", "--faces", str(faces), "--csv", str(csv),
                                 "--out", str(tmp_path / "out")])
    _refused(r, "labels.csv", *needles)


def _png_header(path, width, height):
    """A PNG that declares width x height pixels (a decompression bomb's header; no pixel data is needed)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IEND", b""))


def test_a_decompression_bomb_is_listed_as_unreadable_not_a_traceback(tmp_path):
    faces = tmp_path / "faces"
    _img(faces / "ok.png")
    _png_header(faces / "bomb.png", 30000, 30000)
    r = CliRunner().invoke(app, ["data", "import", "folder", "--faces", str(faces), "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert "imported 1 images" in r.output
    rep = pd.read_csv(tmp_path / "out" / "import_report.csv")
    assert rep.item.str.endswith("bomb.png").all() and rep.problem.str.contains("too large to decode safely").all()


def test_a_dataset_another_process_is_writing_is_not_written_into(tmp_path):
    """Imports, packing and annotation took no lock: two writers into one folder mixed their files."""
    from debias.errors import DebiasError
    from debias.files import exclusive

    _img(tmp_path / "faces" / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    with exclusive(out, "dataset"):
        with pytest.raises(DebiasError, match="another process is writing a dataset"):
            importers.run("folder", tmp_path / "faces", out)
    importers.run("folder", tmp_path / "faces", out)
    with exclusive(out, "dataset"):
        with pytest.raises(DebiasError, match="another process is writing a dataset"):
            pack(out, size=8)
    assert not (out / "images.npy").exists() and len(read_manifest(out)) == 1
